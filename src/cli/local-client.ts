/**
 * A small typed client for a node's local API (docs/DESIGN.md "Endpoints": `POST /local/v1/verify` on the
 * internal listener), used by `verinode catalog`, `verify` and `verify-batch`. The CLI is just another
 * department application: it holds an application token, never a signing key, and goes through the
 * same code path as every other application (the node validates, canonicalizes, signs, exchanges,
 * logs and answers).
 *
 * Answers:
 * - HTTP 200 is a verified answer (`status: "ok"`);
 * - a signed denial arrives with the problem's HTTP status (403, 429) and carries the exchange
 *   (`xid`, `status: "denied"`, `error`, the provider's signed response): it is returned, not thrown,
 *   because it is an answer;
 * - any other problem (RFC 9457) becomes a `VnError` with the node's `code`, so the CLI reports the
 *   same stable code the node logged.
 *
 * No retries: each call to the local API is a new exchange with a new `xid` (the node itself retries
 * towards the peer with the same `xid`), so resending here could execute and count a request twice.
 * The token is sent only in the Authorization header and never appears in an error.
 */
import { Pool, type Dispatcher } from 'undici'
import { z } from 'zod'
import { ERRORS, VnError, type ErrorCode, type PeerProblem } from '../errors.js'
import { UsageError } from './args.js'
import { errorDoc, errorOf, usageText } from './output.js'
import { CatalogSchema, type Catalog } from '../exchange/catalog.js'
import { ManifestGovernanceSchema } from '../protocol/governance.js'

const FederationCatalogueSchema = z.object({
  federation: z.string(),
  seq: z.number().int(),
  governance: ManifestGovernanceSchema,
  members: z.array(z.union([
    z.object({ member: z.string(), name: z.string(), ok: z.literal(true), catalog: CatalogSchema }),
    z.object({ member: z.string(), name: z.string(), ok: z.literal(false), error: z.object({ code: z.string(), detail: z.string().optional() }) }),
  ])),
})
export type FederationCatalogueDoc = z.infer<typeof FederationCatalogueSchema>
import { MEMBER_ID_RE, modeSchema, serviceIdSchema, type Mode } from '../protocol/vocabulary.js'

const DEFAULT_NODE_URL = 'http://127.0.0.1:7180'
const DEFAULT_TIMEOUT_MS = 60_000
/** longest answer read from the node (a 1,000-subject batch answer is well under 1 MiB) */
const MAX_BODY_CHARS = 32 * 1024 * 1024

export interface LocalClientOptions {
  /** base URL of the node's local listener, e.g. http://127.0.0.1:7180 */
  node: string
  /** the application's local API token */
  token: string
  /** headers and body timeout per call (default 60 s) */
  timeoutMs?: number
  /** parallel connections to the node (default 4) */
  connections?: number
  /** swap the HTTP dispatcher (tests) */
  dispatcher?: Dispatcher
}

export interface LocalVerifyRequest {
  provider: string
  service: string
  purpose: string
  basis: string
  mode?: Mode
  subjects: Record<string, string | number>[]
}

/** The node's answer (`VerifyResult` in src/exchange/consumer.ts), checked on arrival. */
const LocalVerifyResultSchema = z.looseObject({
  xid: z.string(),
  provider: z.string(),
  service: z.string(),
  status: z.enum(['ok', 'denied']),
  results: z.array(z.record(z.string(), z.unknown())).optional(),
  error: z.looseObject({ code: z.string(), title: z.string(), status: z.number(), detail: z.string().optional() }).optional(),
  agreement: z.string().optional(),
  providerLogIndex: z.number(),
  logIndex: z.object({ request: z.number(), response: z.number() }),
  reqDigest: z.string(),
  respDigest: z.string(),
  jws: z.string(),
})
export type LocalVerifyResult = z.infer<typeof LocalVerifyResultSchema>

const PeerInfoSchema = z.object({ id: z.string(), name: z.string(), endpoint: z.string().optional() })
export type PeerInfo = z.infer<typeof PeerInfoSchema>

/** Where the node is and which token to use: flags first, then `VERINODE_NODE` / `VERINODE_TOKEN`. */
function nodeSettings(flags: { node?: string | undefined; token?: string | undefined }, env: Record<string, string | undefined>): { node: string; token: string | undefined } {
  const node = flags.node ?? (env.VERINODE_NODE || undefined) ?? DEFAULT_NODE_URL
  let u: URL
  try {
    u = new URL(node)
  } catch {
    throw new UsageError('--node / VERINODE_NODE: not a URL')
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UsageError('--node / VERINODE_NODE: must be an http(s) URL')
  const token = flags.token ?? (env.VERINODE_TOKEN || undefined)
  return { node, token }
}

export class LocalClient {
  private readonly pool: Dispatcher
  private readonly ownPool: boolean
  private readonly base: string
  private readonly origin: string
  private readonly auth: string
  private readonly timeoutMs: number

  constructor(o: LocalClientOptions) {
    const u = new URL(o.node)
    this.origin = u.origin
    this.base = u.pathname.replace(/\/$/, '')
    this.auth = `Bearer ${o.token}`
    this.timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS
    this.ownPool = o.dispatcher === undefined
    this.pool = o.dispatcher ?? new Pool(u.origin, {
      connections: o.connections ?? 4,
      headersTimeout: this.timeoutMs,
      bodyTimeout: this.timeoutMs,
      connectTimeout: Math.min(this.timeoutMs, 5000),
    })
  }

  /** Asks one question about one or more subjects. Returns answers and signed denials. */
  async verify(req: LocalVerifyRequest): Promise<LocalVerifyResult> {
    const { status, body } = await this.call('POST', '/local/v1/verify', JSON.stringify(req))
    if (status === 200 || isDenial(body)) {
      const r = LocalVerifyResultSchema.safeParse(body)
      if (r.success) return r.data
      throw new VnError('VN_ERR_LOCAL_BAD_RESPONSE', `verify: HTTP ${status}, answer does not match the schema`)
    }
    throw problemError(status, body)
  }

  /** The provider's catalog as the node verified it (signature, issuer, schema). */
  async catalog(peer: string): Promise<Catalog> {
    if (!MEMBER_ID_RE.test(peer)) throw new VnError('VN_ERR_PEER_UNKNOWN', 'peer: not a member id')
    const { status, body } = await this.call('GET', `/local/v1/peers/${peer}/catalog`)
    if (status !== 200) throw problemError(status, body)
    const c = CatalogSchema.safeParse(body)
    if (!c.success) throw new VnError('VN_ERR_LOCAL_BAD_RESPONSE', 'catalog does not match its schema')
    return c.data
  }

  /** The federation catalogue: every department's verified catalog, the sources and the negative list. */
  async federationCatalogue(): Promise<FederationCatalogueDoc> {
    const { status, body } = await this.call('GET', '/local/v1/catalog')
    if (status !== 200) throw problemError(status, body)
    const c = FederationCatalogueSchema.safeParse(body)
    if (!c.success) throw new VnError('VN_ERR_LOCAL_BAD_RESPONSE', 'federation catalogue does not match its schema')
    return c.data
  }

  /** The other departments of the federation. */
  async peers(): Promise<PeerInfo[]> {
    const { status, body } = await this.call('GET', '/local/v1/peers')
    if (status !== 200) throw problemError(status, body)
    const p = z.array(PeerInfoSchema).safeParse(body)
    if (!p.success) throw new VnError('VN_ERR_LOCAL_BAD_RESPONSE', 'peer list does not match its schema')
    return p.data
  }

  /**
   * A JSON call to one of the local API's other routes (applications, agreements, disputes): the
   * answer on 2xx, else the node's problem as a VnError with its code.
   */
  async json(method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
    const { status, body: answer } = await this.call(method, path, body === undefined ? undefined : JSON.stringify(body))
    if (status < 200 || status > 299) throw problemError(status, answer)
    return answer
  }

  async close(): Promise<void> {
    if (this.ownPool) await this.pool.close()
  }

  private async call(method: 'GET' | 'POST', path: string, body?: string): Promise<{ status: number; body: unknown }> {
    let res: Dispatcher.ResponseData
    let text: string
    try {
      res = await this.pool.request({
        origin: this.origin,
        path: this.base + path,
        method,
        headers: {
          accept: 'application/json',
          authorization: this.auth,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body }),
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
      })
      text = await res.body.text()
    } catch (e) {
      // undici's codes (UND_ERR_CONNECT_TIMEOUT, ECONNREFUSED, ...) say enough; the token is not in them.
      const code = (e as { code?: unknown }).code
      throw new VnError('VN_ERR_LOCAL_UNREACHABLE', `${this.origin}: ${typeof code === 'string' ? code : (e as Error).name}`, { cause: e })
    }
    if (text.length > MAX_BODY_CHARS) throw new VnError('VN_ERR_LOCAL_BAD_RESPONSE', `${method} ${path}: answer too large`)
    let json: unknown
    try {
      json = text.length === 0 ? null : JSON.parse(text)
    } catch {
      throw new VnError('VN_ERR_LOCAL_BAD_RESPONSE', `${method} ${path}: HTTP ${res.statusCode} with a body that is not JSON`)
    }
    return { status: res.statusCode, body: json }
  }
}

function isDenial(body: unknown): boolean {
  if (body === null || typeof body !== 'object') return false
  const b = body as Record<string, unknown>
  return b.status === 'denied' && typeof b.xid === 'string' && typeof b.jws === 'string'
}

/** The `peer` member of a VN_ERR_PEER_ERROR problem (the peer's member id, HTTP status and code), when well formed. */
function peerOf(v: unknown): { peer: PeerProblem } | undefined {
  const p = (v !== null && typeof v === 'object' ? v : {}) as Record<string, unknown>
  if (typeof p.member !== 'string' || !MEMBER_ID_RE.test(p.member) || !Number.isSafeInteger(p.status)) return undefined
  const code = typeof p.code === 'string' && Object.hasOwn(ERRORS, p.code) ? (p.code as ErrorCode) : undefined
  return { peer: { member: p.member, status: p.status as number, ...(code === undefined ? {} : { code }) } }
}

/** An RFC 9457 problem from the node as a VnError with the node's code. */
function problemError(status: number, body: unknown): VnError {
  const b = (body !== null && typeof body === 'object' ? body : {}) as Record<string, unknown>
  const detail = typeof b.detail === 'string' ? b.detail.slice(0, 500) : undefined
  if (b.code === 'VN_ERR_PEER_ERROR') return new VnError('VN_ERR_PEER_ERROR', detail, peerOf(b.peer))
  if (typeof b.code === 'string' && Object.hasOwn(ERRORS, b.code)) return new VnError(b.code as ErrorCode, detail)
  if (status === 401) return new VnError('VN_ERR_LOCAL_UNAUTHORIZED', detail)
  return new VnError('VN_ERR_LOCAL_BAD_RESPONSE', `HTTP ${status}${typeof b.code === 'string' && /^[A-Z0-9_]{1,64}$/.test(b.code) ? ` ${b.code}` : ''}`)
}

// --- shared by the commands that talk to the local API ------------------------------------------

/** parseArgs options every local-API command takes */
export const LOCAL_API_OPTIONS = {
  node: { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const

/**
 * The arguments every verification command shares: `<peer> <service>` positionals, `--purpose`,
 * `--basis` and `--mode`, checked the same way (UsageError on anything off).
 */
export function questionArgs(
  positionals: readonly string[],
  values: { purpose?: string | undefined; basis?: string | undefined; mode?: string | undefined },
  extraHint = '',
): { peer: string; service: string; purpose: string; basis: string; mode: Mode } {
  const [peer, service, ...more] = positionals
  if (peer === undefined || service === undefined) throw new UsageError('expected <peer> and <service>')
  if (more.length > 0) throw new UsageError(`unexpected argument after <service>${extraHint}`)
  if (!MEMBER_ID_RE.test(peer)) throw new UsageError('<peer>: not a member id')
  if (!serviceIdSchema.safeParse(service).success) throw new UsageError('<service>: not a service id like identity.match')
  if (values.purpose === undefined || values.purpose === '') throw new UsageError('--purpose is required')
  if (values.basis === undefined || values.basis === '') throw new UsageError('--basis is required (the legal basis of the request)')
  const mode = modeSchema.safeParse(values.mode ?? 'plain')
  if (!mode.success) throw new UsageError('--mode: plain, oprf or he')
  return { peer, service, purpose: values.purpose, basis: values.basis, mode: mode.data }
}

/** A client for the node named by the flags or the environment; no token is a usage error. */
export function clientFromFlags(flags: { node?: string | undefined; token?: string | undefined }, env: Record<string, string | undefined>, connections?: number): LocalClient {
  const s = nodeSettings(flags, env)
  if (s.token === undefined) throw new UsageError('no application token: set VERINODE_TOKEN (or pass --token)')
  return new LocalClient({ node: s.node, token: s.token, ...(connections === undefined ? {} : { connections }) })
}

/** The RFC 9457 problem document for an error, as `--json` prints it. */
/** Prints an error as `--json` or as one human line on stderr; returns the exit code. */
export function reportError(e: unknown, io: { json: boolean; out(l: string): void; err(l: string): void }, command: string, usage: string): number {
  if (io.json) io.out(errorDoc(command, errorOf(e)))
  if (e instanceof UsageError) {
    if (!io.json) io.err(`verinode ${command}: ${e.detail}\n${usageText(usage)}`)
    return 2
  }
  if (e instanceof VnError) {
    if (!io.json) io.err(`verinode ${command}: ${e.code}: ${e.message}`)
    return 1
  }
  if (!io.json) io.err(`verinode ${command}: ${(e as Error)?.message ?? String(e)}`)
  return 1
}
