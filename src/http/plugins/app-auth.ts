/**
 * The local app's access check. Every request but the OpenAPI description, /metrics, the console's
 * static files and the console sign-in needs either `Authorization: Bearer <token>` of a configured
 * application or a console session cookie (./console-session.ts); the request then carries the
 * application's name as `request.appName` and its role as `request.appRole`. A session's
 * state-changing request (anything but GET and HEAD) must carry the session's CSRF token and must
 * not come from another site (Origin, Sec-Fetch-Site). An `auditor` may only read (GET) and run
 * audits. Not encapsulated, so it guards the whole app.
 */
import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'
import { VnError } from '../../errors.js'
import { CSRF_HEADER, ConsoleSessions, cookieValue, sameSecret, sessionCookieName } from './console-session.js'

export const OPENAPI_PATH = '/local/v1/openapi.json'
export const SESSION_PATH = '/local/v1/session'
export const AUDIT_PATH = '/local/v1/audit/verify'
export const AUDIT_UPLOAD_PATH = '/local/v1/audit/upload'
export const CONSOLE_PREFIX = '/console'
/** Prometheus scrapes without a token: the metrics carry ids and counts, never personal data. */
const OPEN_PATHS = new Set([OPENAPI_PATH, '/metrics'])
/** What an auditor may do besides reading: run an audit (of a folder here or of an uploaded export), and sign out. */
const AUDITOR_ACTIONS = new Set([`POST ${AUDIT_PATH}`, `POST ${AUDIT_UPLOAD_PATH}`, `DELETE ${SESSION_PATH}`])

const SAFE = new Set(['GET', 'HEAD'])

declare module 'fastify' {
  interface FastifyInstance {
    consoleSessions: ConsoleSessions
  }
  interface FastifyRequest {
    /** the role of `appName` */
    appRole: 'operator' | 'auditor'
    /** the console session the request came with (undefined: a bearer token) */
    sessionId: string | undefined
  }
}

/** True when the request says it comes from another site (or from an origin that is not this host). */
function crossSite(req: FastifyRequest): boolean {
  if (req.headers['sec-fetch-site'] === 'cross-site') return true
  const origin = req.headers.origin
  if (origin === undefined) return false
  try {
    return new URL(origin).host !== req.headers.host
  } catch {
    return true
  }
}

export const appAuth = fp(async (app) => {
  app.decorate('consoleSessions', new ConsoleSessions())
  app.decorateRequest('appRole', 'auditor')
  app.decorateRequest('sessionId', undefined)
  app.addHook('onRequest', async (req, reply) => {
    const path = req.url.split('?', 1)[0] as string
    if (OPEN_PATHS.has(path) || path === CONSOLE_PREFIX || path.startsWith(`${CONSOLE_PREFIX}/`)) return
    // Signing in: the token travels in the body; a sign-in from another site is refused (login CSRF).
    if (path === SESSION_PATH && req.method === 'POST') {
      if (crossSite(req)) throw new VnError('VN_ERR_LOCAL_CSRF', 'sign-in from another site')
      return
    }
    const h = req.headers.authorization
    const token = typeof h === 'string' && h.startsWith('Bearer ') ? h.slice(7) : undefined
    const session = token === undefined ? app.consoleSessions.get(cookieValue(req.headers.cookie, sessionCookieName(req.headers.host))) : undefined
    if (session !== undefined) {
      if (!SAFE.has(req.method)) {
        if (crossSite(req)) throw new VnError('VN_ERR_LOCAL_CSRF', 'request from another site')
        const sent = req.headers[CSRF_HEADER]
        if (!sameSecret(typeof sent === 'string' ? sent : undefined, session.csrf)) throw new VnError('VN_ERR_LOCAL_CSRF', `no valid ${CSRF_HEADER} header`)
      }
      req.appName = session.name
      req.appRole = session.role
      req.sessionId = session.id
    } else {
      try {
        req.appName = app.authenticateApp(token)
      } catch (e) {
        // RFC 9110 §11.6.1: a 401 names the scheme that would work (RFC 6750 for bearer tokens).
        reply.header('www-authenticate', token === undefined ? 'Bearer realm="verinode-local"' : 'Bearer realm="verinode-local", error="invalid_token"')
        throw e
      }
      req.appRole = app.appRole(req.appName)
    }
    if (req.appRole === 'auditor' && !SAFE.has(req.method) && !AUDITOR_ACTIONS.has(`${req.method} ${path}`)) {
      throw new VnError('VN_ERR_LOCAL_FORBIDDEN', `${req.method} ${path}: the auditor role only reads and runs audits`)
    }
  })
}, { name: 'verinode-app-auth', fastify: '5.x', dependencies: ['verinode-local-services'] })
