/**
 * The consumer side of an exchange: validate and canonicalize subjects against the provider's signed
 * catalog, make salted-digest disclosures, sign, log `request-out` (durable before the request
 * leaves), send with bounded same-xid retries, verify the signed response (signature, issuer,
 * audience, xid, request digest), store evidence, log `response-in`, and only then hand the answer
 * back to the caller.
 *
 * A peer that answers wrongly (docs/OPERATIONS.md "A peer that answers wrongly"): an answer that is
 * not JSON, too long, a malformed JWS, a signature that does not verify under the peer's key, or a
 * response bound to another request is logged as a `refused` response-in with the bytes received
 * kept sealed as evidence, and the caller gets `VN_ERR_PEER_ANSWER_REFUSED` (502, the reason in the
 * detail); a peer's unsigned error is logged with its code and reaches the caller wrapped as
 * `VN_ERR_PEER_ERROR` (502, the peer's code and status in `peer`), never as this node's own code.
 */
import { randomBytes } from 'node:crypto'
import { setImmediate } from 'node:timers/promises'
import { jwsDigest } from '../protocol/jws-digest.js'
import { VnError, ERRORS, type ErrorCode, type PeerProblem } from '../errors.js'
import { signJwsJson, verifyJwsJson, type KeyResolver } from '../crypto/jws.js'
import { REQUEST_TYP, RESPONSE_TYP, CATALOG_TYP, ResponsePayloadSchema, type RequestPayload } from '../protocol/envelope.js'
import type { Mode } from '../protocol/vocabulary.js'
import { canonicalizeSubject } from '../protocol/canonicalize.js'
import { CatalogSchema, type Catalog, type CatalogService } from './catalog.js'
import type { PeerClient, PeerReply } from '../peers/client.js'
import type { NodeLog } from '../log/node-log.js'
import { receivedDigest, type EvidenceRow } from '../log/evidence.js'
import type { ConsumerMode } from './modes/types.js'
import type { Signer } from './signer.js'
import type { ResponseInRecord } from '../log/records.js'

export interface ConsumerDeps {
  self: string
  signer: () => Signer
  resolver: (at: number) => KeyResolver
  endpointOf: (member: string) => string
  client: PeerClient
  /** the modes this node can ask in */
  modes: ReadonlyMap<Mode, ConsumerMode>
  log: NodeLog
  /**
   * `inFlight`: most verifications in progress at once (default 1024); beyond it VN_ERR_EXCH_BUSY.
   * `bodyBytes` (default 1 MiB): a peer's exchange answer is read up to 4× this (as the local API's body limit)
   */
  limits: { batchMax: number; retentionDays: number; inFlight?: number; bodyBytes?: number }
  now?: () => number
  catalogTtlMs?: number
  /**
   * Called once per verification that got past the in-flight bound (metrics): `decision` is
   * `permit` for an answer, the signed denial's code, or the code of the error the application got.
   */
  observe?: (o: { provider: string; service: string; mode: Mode; decision: string; seconds: number }) => void
  /** whether a request to `peer` got an HTTP answer (true) or could not reach it (false) (metrics) */
  peerReached?: (peer: string, reached: boolean) => void
}

const DEFAULT_BODY_BYTES = 1024 * 1024
/** A peer's exchange answer may be as large as the local API's body limit: 4× `limits.bodyBytes`. */
const REPLY_BYTES_PER_BODY_BYTE = 4

export interface VerifyRequest {
  provider: string
  service: string
  purpose: string
  basis: string
  mode?: Mode
  subjects: readonly unknown[]
}

export interface VerifyResult {
  xid: string
  provider: string
  service: string
  status: 'ok' | 'denied'
  results?: Record<string, unknown>[]
  error?: { code: string; title: string; status: number; detail?: string | undefined }
  agreement?: string
  /** the provider's log index for this exchange (a receipt can be asked for later) */
  providerLogIndex: number
  /** this node's log indices of request-out and response-in */
  logIndex: { request: number; response: number }
  reqDigest: string
  respDigest: string
  /** the provider's signed response (compact JWS): the department's proof of the answer */
  jws: string
}

/**
 * A fresh exchange id: 128 random bits, base64url. One in 64 would start with '-', which command
 * lines (`verinode audit prove <dir> <xid>`) read as an option, so those are drawn again.
 */
export function newXid(): string {
  for (;;) {
    const xid = randomBytes(16).toString('base64url')
    if (xid[0] !== '-') return xid
  }
}

export class Consumer {
  private readonly d: ConsumerDeps
  private readonly now: () => number
  private readonly catalogs = new Map<string, { at: number; catalog: Catalog }>()

  /** verifications in progress (each holds a pooled connection to its provider, or waits for one) */
  private active = 0

  constructor(deps: ConsumerDeps) {
    this.d = deps
    this.now = deps.now ?? Date.now
  }

  /** Verifications in progress right now (metrics). */
  get inFlight(): number {
    return this.active
  }

  /** The provider's verified catalog (cached for a few minutes). */
  async catalog(provider: string, fresh = false): Promise<Catalog> {
    const hit = this.catalogs.get(provider)
    const ttl = this.d.catalogTtlMs ?? 300_000
    if (!fresh && hit !== undefined && this.now() - hit.at < ttl) return hit.catalog
    let reply: PeerReply
    try {
      reply = await this.d.client.get(this.d.endpointOf(provider), '/v1/catalog')
    } catch (e) {
      if (e instanceof VnError && e.code === 'VN_ERR_PEER_UNREACHABLE') this.d.peerReached?.(provider, false)
      throw e
    }
    this.d.peerReached?.(provider, true)
    const jws = (reply.json as { jws?: unknown } | null)?.jws
    if (reply.statusCode !== 200 || typeof jws !== 'string') {
      throw new VnError('VN_ERR_PEER_BAD_RESPONSE', `catalog: HTTP ${reply.statusCode}`)
    }
    const keys = this.d.resolver(this.now())
    let v: ReturnType<typeof verifyJwsJson>
    try {
      v = verifyJwsJson(jws, keys, CATALOG_TYP)
    } catch (e) {
      // A catalog that does not verify is the peer's fault, not the application's (no 4xx).
      const code = e instanceof VnError ? e.code : 'VN_ERR_JWS_MALFORMED'
      throw new VnError('VN_ERR_PEER_ANSWER_REFUSED', `the catalog of ${provider} was refused: ${ERRORS[code].title.toLowerCase()} (${code})`)
    }
    if (!v.kid.startsWith(`${provider}#`)) throw new VnError('VN_ERR_PEER_BAD_RESPONSE', 'catalog signed by another member')
    const c = CatalogSchema.safeParse(v.claims)
    if (!c.success || c.data.iss !== provider) throw new VnError('VN_ERR_PEER_BAD_RESPONSE', 'catalog does not match its schema')
    this.catalogs.set(provider, { at: this.now(), catalog: c.data })
    return c.data
  }

  /**
   * Canonicalizes subjects for a service with the one `canonicalizeSubject`; an empty optional
   * field is left out. Errors name `subjects[i].field`, never the value.
   */
  static canonicalSubjects(svc: CatalogService, subjects: readonly unknown[]): Record<string, string>[] {
    return subjects.map((raw, i) => canonicalizeSubject(svc.fields, raw, `subjects[${i}]`, { emptyIsAbsent: true }))
  }

  /**
   * One verification for the department's application.
   * @throws VN_ERR_EXCH_BUSY (503) when `limits.inFlight` are already in progress: refused before
   *   anything is signed or logged, so requests never queue without bound for a pooled connection
   */
  async verify(r: VerifyRequest): Promise<VerifyResult> {
    const max = this.d.limits.inFlight ?? 1024
    if (this.active >= max) throw new VnError('VN_ERR_EXCH_BUSY', `${this.active} verifications in progress (limits.inFlight)`)
    this.active++
    const started = performance.now()
    const seen = (decision: string): void => {
      this.d.observe?.({ provider: r.provider, service: r.service, mode: r.mode ?? 'plain', decision, seconds: (performance.now() - started) / 1000 })
    }
    try {
      const out = await this.verifyOne(r)
      seen(out.status === 'ok' ? 'permit' : (out.error?.code ?? 'denied'))
      return out
    } catch (e) {
      seen(e instanceof VnError ? e.code : 'VN_ERR_INTERNAL')
      throw e
    } finally {
      this.active--
    }
  }

  private async verifyOne(r: VerifyRequest): Promise<VerifyResult> {
    // Nothing is signed or logged unless the node could send it: a manifest in force that names
    // the provider's endpoint (VN_ERR_FED_MANIFEST_EXPIRED, VN_ERR_FED_UNKNOWN_MEMBER) and a message
    // key the manifest still allows (VN_ERR_FED_OWN_KEY_REVOKED).
    this.d.endpointOf(r.provider)
    this.d.signer()
    const mode = r.mode ?? 'plain'
    const handler = this.d.modes.get(mode)
    if (handler === undefined) throw new VnError('VN_ERR_EXCH_MODE', `${mode} mode is not available on this node`)
    const catalog = await this.catalog(r.provider)
    const svc = catalog.services.find((s) => s.id === r.service)
    if (svc === undefined) throw new VnError('VN_ERR_POLICY_UNKNOWN_SERVICE', `${r.provider} offers no ${r.service}`)
    if (!svc.modes.includes(mode)) throw new VnError('VN_ERR_EXCH_MODE', `${r.service} does not offer ${mode}`)
    const limit = Math.min(this.d.limits.batchMax, catalog.limits.batchMax)
    if (r.subjects.length === 0) throw new VnError('VN_ERR_SUBJECT_INVALID', 'subjects: at least one is needed')
    if (r.subjects.length > limit) throw new VnError('VN_ERR_REQ_BATCH_TOO_LARGE', `${r.subjects.length} subjects, limit ${limit}`)
    const canonical = Consumer.canonicalSubjects(svc, r.subjects)

    const built = await handler.build(svc, canonical, { provider: r.provider, now: this.now() })
    // Checked again after the mode's build (an he or oprf build can take a while): still in force?
    const endpoint = this.d.endpointOf(r.provider)
    const disclosures = built.disclosures ?? []
    const xid = newXid()
    const payload: RequestPayload = {
      v: 1, xid, iat: this.now(), iss: this.d.self, aud: r.provider, svc: r.service,
      purpose: r.purpose, basis: r.basis, mode, q: built.q,
    }
    const s = this.d.signer()
    const jws = signJwsJson(payload, s.privateKey, s.kid, REQUEST_TYP)
    const reqDigest = jwsDigest(jws)
    const at = this.now()
    const evidence: EvidenceRow[] = [{ kind: 'jws', record: 0, digest: reqDigest, jws }]
    if (disclosures.length > 0) evidence.push({ kind: 'disclosures', record: 0, xid, disclosures, expiresAt: at + this.d.limits.retentionDays * 86_400_000 })
    const [requestIndex] = await this.d.log.append(
      [{ v: 1, at, t: 'request-out', xid, aud: r.provider, svc: r.service, mode, purpose: r.purpose, basis: r.basis, count: built.count, reqDigest }],
      evidence,
    )

    const replyLimit = REPLY_BYTES_PER_BODY_BYTE * (this.d.limits.bodyBytes ?? DEFAULT_BODY_BYTES)
    let reply: PeerReply
    try {
      reply = await this.d.client.post(endpoint, '/v1/exchange', JSON.stringify(disclosures.length > 0 ? { jws, disclosures } : { jws }), { maxBytes: replyLimit })
    } catch (e) {
      const code = e instanceof VnError ? e.code : 'VN_ERR_PEER_UNREACHABLE'
      if (code === 'VN_ERR_PEER_UNREACHABLE') this.d.peerReached?.(r.provider, false)
      await this.d.log.append([{ v: 1, at: this.now(), t: 'response-in', xid, iss: r.provider, reqDigest, status: 'error', code }])
      throw e
    }
    this.d.peerReached?.(r.provider, true)
    // The keys to check the answer with: a failure here is this node's own (its manifest), not the peer's.
    const keys = this.d.resolver(this.now())

    /**
     * The peer's answer is not accepted: it is logged as a refused response-in, the bytes received
     * kept sealed as evidence (they may hold anything), and the application gets a 502 saying why.
     * Neither the bytes nor anything taken from them reach an error detail or the node's own log.
     */
    const refuse = async (code: ErrorCode, why: string): Promise<never> => {
      const received = reply.raw ?? Buffer.from(JSON.stringify(reply.json ?? null), 'utf8')
      const bytes = received.subarray(0, replyLimit)
      const digest = receivedDigest(bytes)
      const at = this.now()
      await this.d.log.append(
        [{ v: 1, at, t: 'response-in', xid, iss: r.provider, reqDigest, status: 'refused', respDigest: digest, code }],
        [{ kind: 'received', record: 0, xid, digest, bytes, expiresAt: at + this.d.limits.retentionDays * 86_400_000 }],
      )
      throw new VnError('VN_ERR_PEER_ANSWER_REFUSED', `the answer of ${r.provider} was refused: ${why} (${code})`)
    }

    if (reply.truncated === true) return refuse('VN_ERR_PEER_BAD_RESPONSE', `longer than ${replyLimit} bytes`)
    if (reply.json === undefined) return refuse('VN_ERR_PEER_BAD_RESPONSE', 'not JSON')
    const body = reply.json !== null && typeof reply.json === 'object' && !Array.isArray(reply.json) ? (reply.json as { jws?: unknown; code?: unknown }) : undefined
    const claimsAnAnswer = reply.statusCode >= 200 && reply.statusCode < 300
    if (body === undefined || body.jws === undefined) {
      if (claimsAnAnswer) return refuse('VN_ERR_PEER_BAD_RESPONSE', 'no signed response in it')
      // An unsigned problem: the provider refused before authentication, or failed. Wrapped, so
      // the application can tell the peer's failure from its own node's (the peer's code and
      // status travel in `peer`; its free-text detail is not repeated: it is the peer's to keep).
      const known = typeof body?.code === 'string' && Object.hasOwn(ERRORS, body.code) ? (body.code as ErrorCode) : undefined
      const code = known ?? 'VN_ERR_PEER_BAD_RESPONSE'
      await this.d.log.append([{ v: 1, at: this.now(), t: 'response-in', xid, iss: r.provider, reqDigest, status: 'error', code }])
      handler.refused?.(r.provider, r.service, code)
      const peer: PeerProblem = { member: r.provider, status: reply.statusCode, ...(known === undefined ? {} : { code: known }) }
      throw new VnError('VN_ERR_PEER_ERROR', `${r.provider} answered HTTP ${reply.statusCode} ${known ?? 'without a known VN_ERR code'}`, { peer })
    }
    if (typeof body.jws !== 'string') return refuse('VN_ERR_JWS_MALFORMED', 'its jws is not a string')
    const respJws = body.jws
    let v: ReturnType<typeof verifyJwsJson>
    try {
      v = verifyJwsJson(respJws, keys, RESPONSE_TYP)
    } catch (e) {
      // The JWS checks' own details may quote the header; only the code and its title are used.
      const code = e instanceof VnError ? e.code : 'VN_ERR_JWS_MALFORMED'
      return refuse(code, ERRORS[code].title.toLowerCase())
    }
    const p = ResponsePayloadSchema.safeParse(v.claims)
    if (!p.success) return refuse('VN_ERR_PEER_BAD_RESPONSE', 'its payload does not match the response schema')
    const resp = p.data
    if (!v.kid.startsWith(`${r.provider}#`) || resp.iss !== r.provider) return refuse('VN_ERR_EXCH_RESPONSE_UNBOUND', 'signed by another member')
    const unbound = [['aud', resp.aud === this.d.self], ['xid', resp.xid === xid], ['reqDigest', resp.reqDigest === reqDigest]].filter(([, ok]) => ok === false).map(([f]) => f)
    if (unbound.length > 0) return refuse('VN_ERR_EXCH_RESPONSE_UNBOUND', `bound to another request (${unbound.join(', ')} differ from the request sent)`)
    // The signed response is logged as received while the mode checks the answer (an OPRF proof
    // check or a BFV decryption takes about as long as the durable commit, so they overlap). An
    // answer the mode refuses is still evidence: a response-refused record follows, and only then
    // does the caller hear the error. Nothing is released before both are durable.
    const respDigest = jwsDigest(respJws)
    const respIn: ResponseInRecord = { v: 1, at: this.now(), t: 'response-in', xid, iss: r.provider, reqDigest, status: resp.status, respDigest, peerIndex: resp.log.index }
    if (resp.error) respIn.code = resp.error.code
    const logged = this.d.log.append([respIn], [{ kind: 'jws', record: 0, digest: respDigest, jws: respJws }])
    logged.catch(() => undefined) // awaited below, after the mode's check
    let answers: Record<string, unknown>[] | undefined
    let finishError: unknown
    if (resp.status === 'ok') {
      // One turn of the event loop first: the log store hands its batch to the writer thread on
      // setImmediate, and a heavy check would hold this thread for a millisecond or more. (A lone
      // response-in is committed on this thread one turn later still, once the check has handed
      // its worker's share over: see SqliteLogStore.flush.)
      if (built.heavyFinish === true) await setImmediate()
      const got: { results?: Record<string, unknown>[]; r?: Record<string, unknown> } = {}
      if (resp.results !== undefined) got.results = resp.results
      if (resp.r !== undefined) got.r = resp.r
      try {
        answers = await built.finish(got)
      } catch (e) {
        finishError = e
      }
    }
    const [responseIndex] = await logged
    if (finishError !== undefined) {
      const code = finishError instanceof VnError ? finishError.code : 'VN_ERR_PEER_BAD_RESPONSE'
      await this.d.log.append([{ v: 1, at: this.now(), t: 'response-refused', xid, iss: r.provider, reqDigest, respDigest, code }])
      throw finishError
    }
    const out: VerifyResult = {
      xid, provider: r.provider, service: r.service, status: resp.status,
      providerLogIndex: resp.log.index, logIndex: { request: requestIndex as number, response: responseIndex as number }, reqDigest, respDigest,
      jws: respJws,
    }
    if (answers !== undefined) out.results = answers
    if (resp.error !== undefined) out.error = resp.error
    if (resp.agreement !== undefined) out.agreement = resp.agreement
    return out
  }
}
