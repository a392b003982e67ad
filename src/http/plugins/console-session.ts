/**
 * Console sessions: a person signs in with a local API token (POST /local/v1/session) and gets an
 * httpOnly, SameSite=Strict cookie naming a session held here in memory (never the token), and a
 * CSRF token that every state-changing request of that session must echo in `x-csrf-token`
 * (docs/CONSOLE.md). Sessions end after `SESSION_MS` or at sign-out; a restart ends them all.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto'
import type { AppRole } from '../../node/types.js'

const SESSION_COOKIE = 'vn_session'

/**
 * The session cookie's name on the listener at `host` (the Host header): `vn_session_<port>`.
 * Browsers scope cookies by host, not port, so two nodes on one machine (the demo) would otherwise
 * overwrite each other's sessions.
 */
export function sessionCookieName(host: string | undefined): string {
  return `${SESSION_COOKIE}_${/:(\d+)$/.exec(host ?? '')?.[1] ?? '80'}`
}
export const CSRF_HEADER = 'x-csrf-token'
const SESSION_MS = 8 * 3_600_000
/** Sessions held at most; the oldest is dropped beyond this. */
const MAX_SESSIONS = 1000

export interface Session {
  id: string
  name: string
  role: AppRole
  csrf: string
  expires: number
}

export class ConsoleSessions {
  readonly #sessions = new Map<string, Session>()

  constructor(private readonly now: () => number = Date.now) {}

  create(name: string, role: AppRole): Session {
    const s: Session = { id: randomBytes(32).toString('base64url'), name, role, csrf: randomBytes(32).toString('base64url'), expires: this.now() + SESSION_MS }
    this.#sessions.set(s.id, s)
    if (this.#sessions.size > MAX_SESSIONS) this.#sessions.delete(this.#sessions.keys().next().value as string)
    return s
  }

  get(id: string | undefined): Session | undefined {
    if (id === undefined) return undefined
    const s = this.#sessions.get(id)
    if (s === undefined) return undefined
    if (s.expires <= this.now()) {
      this.#sessions.delete(id)
      return undefined
    }
    return s
  }

  end(id: string): void {
    this.#sessions.delete(id)
  }
}

/** The value of cookie `name` in a Cookie header (RFC 6265 §5.4), or undefined. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq < 0) continue
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
  }
  return undefined
}

/** The Set-Cookie value for a session (or its removal when `s` is undefined). */
export function sessionCookie(name: string, s: Session | undefined, secure: boolean): string {
  const attrs = `Path=/; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`
  return s === undefined ? `${name}=; ${attrs}; Max-Age=0` : `${name}=${s.id}; ${attrs}; Max-Age=${Math.floor(SESSION_MS / 1000)}`
}

export function sameSecret(a: string | undefined, b: string): boolean {
  if (a === undefined) return false
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}
