/**
 * The provider side of one exchange (POST /v1/exchange), independent of HTTP.
 *
 * Steps, in the order docs/PROTOCOL.md gives them:
 *  1. parse the body; verify the JWS against the sender's key valid now (manifest);
 *  2. check issuer = signer, audience = this node, iat within the skew;
 *  3. replay: the same (iss, xid) with the same request digest gets the first response again;
 *     with a different digest it is refused;
 *  4. service and mode exist; the mode's handler (src/exchange/modes/) validates the query fully:
 *     the batch fits, every disclosure matches its digest, every field canonicalizes, every group
 *     element or ciphertext is well formed (before any lookup);
 *  5. decide under the agreement set in force (deny by default, quota);
 *  6. answer (look up in place, evaluate, or compute under encryption) only when permitted;
 *  7. sign the response bound to the request digest; log request-in, decision and response-out
 *     with the evidence in one group commit; release the response only once it is durable.
 *
 * Failures in steps 1-4 are the consumer's to fix: they get an unsigned RFC 9457 problem and nothing
 * is written. Policy denials (step 5) are signed and logged like answers.
 */
import { VnError, ERRORS, type ErrorCode } from '../errors.js'
import { verifyJwsJsonAsync, signJwsJsonAsync, type KeyResolver } from '../crypto/jws.js'
import type { Ed25519Batcher, Ed25519Call } from '../crypto/ed25519-batch.js'
import {
  ExchangeBodySchema,
  RequestPayloadSchema,
  REQUEST_TYP,
  RESPONSE_TYP,
  ResponsePayloadSchema,
  type RequestPayload,
  type ResponsePayload,
} from '../protocol/envelope.js'
import type { Mode } from '../protocol/vocabulary.js'
import type { ServiceConfig } from '../config/schema.js'
import type { DataSource } from '../sources/types.js'
import type { ProviderMode } from './modes/types.js'
import type { DecisionRecord } from '../log/records.js'
import type { NodeLog } from '../log/node-log.js'
import type { EvidenceRow } from '../log/evidence.js'
import type { EvidenceStore, ReplayMemory } from '../log/storage.js'
import { jwsDigest } from '../protocol/jws-digest.js'
import { utcDay } from '../policy/quota.js'
import { formatZodIssues } from '../config/load.js'
import type { Signer } from './signer.js'

export interface AuthorizationRequest {
  consumer: string
  service: string
  purpose: string
  basis: string
  mode: Mode
  count: number
  at: number
}

export type AuthorizationResult =
  | { permit: true; agreementId: string }
  | { permit: false; code: ErrorCode; reason: string; agreementId?: string }

export interface ProviderDeps {
  self: string
  signer: () => Signer
  /** key resolver for message keys valid at `at` (the current manifest) */
  resolver: (at: number) => KeyResolver
  services: ReadonlyMap<string, ServiceConfig>
  /** the decision of step 5 (counts a permitted batch against its quota) */
  authorize: (r: AuthorizationRequest) => AuthorizationResult | Promise<AuthorizationResult>
  policyHash: () => string
  /** hash of the sharing rules in force (docs/GOVERNANCE.md), named by each decision; none before governance */
  sharingRulesHash?: () => string | undefined
  source: DataSource | undefined
  /** the modes this node answers in (plain always; oprf, he when configured) */
  modes: ReadonlyMap<Mode, ProviderMode>
  log: NodeLog
  /** step 3: who sent which xid with which request, for twice the skew window */
  replay: ReplayMemory
  /** where a retry's answer is read back from: the signed response kept with its response-out record */
  evidence: Pick<EvidenceStore, 'getJws'>
  /** `inFlight`: most exchanges in progress at once (default 1024); beyond it VN_ERR_EXCH_BUSY */
  limits: { batchMax: number; skewMs: number; retentionDays: number; inFlight?: number }
  now?: () => number
  /** batched Ed25519 on worker threads (else node:crypto's callback form on libuv's pool) */
  ed25519?: Ed25519Batcher
  /** called once per released response (metrics) */
  observe?: (o: { service: string; mode: Mode; decision: string; seconds: number }) => void
}

/** What the HTTP layer sends back: a status and a JSON body (the signed response or a problem). */
export interface ExchangeReply {
  status: number
  body: Record<string, unknown>
  problem: boolean
  xid?: string
}


/** What the transport knows about the sender of a request. */
export interface ExchangeFrom {
  /** the member whose pinned TLS client certificate the connection presented (mutual TLS) */
  tlsMember?: string | undefined
}

export class Provider {
  private readonly d: ProviderDeps
  private readonly now: () => number
  /** exchanges being handled right now; with just one, its Ed25519 work may run inline */
  private active = 0
  /**
   * First requests still being handled, by "iss|xid": a retry that arrives meanwhile waits for the
   * same answer. At most `limits.inFlight` entries (each is an exchange in progress).
   */
  private readonly pending = new Map<string, { reqDigest: string; answer: Promise<ExchangeReply> }>()
  private readonly maxInFlight: number

  constructor(deps: ProviderDeps) {
    this.d = deps
    this.now = deps.now ?? Date.now
    this.maxInFlight = deps.limits.inFlight ?? 1024
  }

  /** Exchanges in progress right now (metrics). */
  get inFlight(): number {
    return this.active
  }

  /**
   * Handles one POST /v1/exchange body (already JSON-parsed by the HTTP layer).
   * @throws VN_ERR_EXCH_BUSY (503) when `limits.inFlight` exchanges are already in progress:
   *   refused before any work, so an overloaded node sheds load instead of queueing without bound
   */
  async handle(body: unknown, from: ExchangeFrom = {}): Promise<ExchangeReply> {
    if (this.active >= this.maxInFlight) throw new VnError('VN_ERR_EXCH_BUSY', `${this.active} exchanges in progress (limits.inFlight)`)
    this.active++
    try {
      return await this.handleOne(body, from)
    } finally {
      this.active--
    }
  }

  /** A lone exchange signs and verifies on the event loop instead of waiting on a worker hand-off. */
  private ed25519Call(): Ed25519Call {
    return { lone: this.active === 1 }
  }

  private async handleOne(body: unknown, from: ExchangeFrom): Promise<ExchangeReply> {
    const started = performance.now()
    const now = this.now()
    // 0. this node can sign the answer: a node whose own key is revoked refuses before it claims,
    // counts or logs anything (VN_ERR_FED_OWN_KEY_REVOKED, unsigned)
    const s = this.d.signer()

    // 1. body and signature
    const b = ExchangeBodySchema.safeParse(body)
    if (!b.success) throw new VnError('VN_ERR_REQ_INVALID', formatZodIssues(b.error))
    const verified = await verifyJwsJsonAsync(b.data.jws, this.d.resolver(now), REQUEST_TYP, this.d.ed25519, this.ed25519Call())
    const p = RequestPayloadSchema.safeParse(verified.claims)
    if (!p.success) throw new VnError('VN_ERR_REQ_INVALID', formatZodIssues(p.error))
    const req = p.data

    // 2. who, to whom, when
    const signer = verified.kid.slice(0, verified.kid.indexOf('#'))
    if (signer !== req.iss) throw new VnError('VN_ERR_EXCH_ISSUER_MISMATCH', 'iss does not match the signing key')
    // mutual TLS: only the member whose certificate the connection presented may ask over it
    if (from.tlsMember !== undefined && from.tlsMember !== req.iss) {
      throw new VnError('VN_ERR_TLS_CLIENT_NOT_ISSUER', `signed by ${req.iss}, TLS client certificate of ${from.tlsMember}`)
    }
    if (req.aud !== this.d.self) throw new VnError('VN_ERR_EXCH_WRONG_AUDIENCE', `aud is not ${this.d.self}`)
    if (Math.abs(now - req.iat) > this.d.limits.skewMs) {
      throw new VnError('VN_ERR_EXCH_STALE', `iat is ${Math.round((now - req.iat) / 1000)} s away from now`)
    }

    // 3. replay / idempotent retry: the (iss, xid) is claimed for twice the skew window, so every
    // replay inside it is caught. A retry of a first request still in progress here waits for its
    // answer; one of an answered exchange gets the signed response back from the log's evidence.
    const reqDigest = jwsDigest(b.data.jws)
    const key = `${req.iss}|${req.xid}`
    const inProgress = this.pending.get(key)
    if (inProgress !== undefined) {
      if (inProgress.reqDigest !== reqDigest) throw new VnError('VN_ERR_EXCH_REPLAY', 'xid was already used with another request')
      return inProgress.answer
    }
    // Registered before the claim (synchronously after the check above), so a duplicate arriving
    // while the claim is awaited finds it.
    let settle!: { resolve: (r: ExchangeReply) => void; reject: (e: unknown) => void }
    const answer = new Promise<ExchangeReply>((resolve, reject) => (settle = { resolve, reject }))
    this.pending.set(key, { reqDigest, answer })
    let prior
    try {
      prior = await this.d.replay.claim(req.iss, req.xid, { reqDigest, expiresAt: now + 2 * this.d.limits.skewMs }, now)
    } catch (e) {
      // (full): refused, and so is any duplicate that found this request pending meanwhile
      this.pending.delete(key)
      settle.reject(e)
      return answer
    }
    if (prior !== undefined) {
      const first = prior.reqDigest !== reqDigest
        ? Promise.reject(new VnError('VN_ERR_EXCH_REPLAY', 'xid was already used with another request'))
        : prior.index !== undefined
          ? this.replyAt(prior.index)
          // claimed, unanswered and not in progress here: another replica sharing the replay memory has it
          : Promise.reject(new VnError('VN_ERR_EXCH_BUSY', 'the first request with this xid is still in progress'))
      first.then(settle.resolve, settle.reject).finally(() => this.pending.delete(key))
      return answer
    }
    this.execute(req, b.data.jws, reqDigest, b.data.disclosures ?? [], now, started, s).then(
      async ({ reply, index }) => {
        // The answer is durable and signed: it is released even if a shared replay memory could
        // not record where it is (a retry then gets VN_ERR_EXCH_BUSY until the entry expires).
        await this.d.replay.settle(req.iss, req.xid, reqDigest, index).catch(() => undefined)
        this.pending.delete(key)
        return reply
      },
      async (e: unknown) => {
        // A request that failed validation or logging wrote nothing, so it may be retried with the same xid.
        await this.d.replay.release(req.iss, req.xid, reqDigest).catch(() => undefined)
        this.pending.delete(key)
        throw e
      },
    ).then(settle.resolve, settle.reject)
    return answer
  }

  /** The reply released for the exchange whose response-out record is at `index` (a retry's answer). */
  private async replyAt(index: number): Promise<ExchangeReply> {
    const e = await this.d.evidence.getJws(index)
    if (e === undefined) throw new VnError('VN_ERR_INTERNAL', `no signed response kept with log record ${index}`)
    return replyFromResponseJws(e.jws)
  }

  private async execute(req: RequestPayload, jws: string, reqDigest: string, disclosures: string[], now: number, started: number, s: Signer): Promise<{ reply: ExchangeReply; index: number }> {
    // 4. service, mode and subjects: everything the consumer could have checked itself
    const svc = this.d.services.get(req.svc)
    if (svc === undefined) throw new VnError('VN_ERR_POLICY_UNKNOWN_SERVICE', `no service ${req.svc}`)
    if (!svc.modes.includes(req.mode)) throw new VnError('VN_ERR_EXCH_MODE', `${req.svc} does not offer ${req.mode}`)
    const handler = this.d.modes.get(req.mode)
    if (handler === undefined) throw new VnError('VN_ERR_EXCH_MODE', `${req.mode} mode is not available on this node`)
    if (!handler.takesDisclosures && disclosures.length > 0) {
      throw new VnError('VN_ERR_EXCH_DISCLOSURE_UNEXPECTED', `${req.mode} mode takes no disclosures; send the JWS alone`)
    }
    const prepared = await handler.prepare(svc, req, disclosures, { source: this.d.source, limits: this.d.limits, now })

    // 5. decision
    const count = prepared.count
    const decision = await this.d.authorize({ consumer: req.iss, service: req.svc, purpose: req.purpose, basis: req.basis, mode: req.mode, count, at: now })
    const policy = this.d.policyHash()
    const rules = this.d.sharingRulesHash?.()

    // 6. answer in place (only when permitted)
    const reply = decision.permit ? await prepared.answer() : {}

    // 7. sign the response bound to the request digest and naming the request entry's log index,
    // then log request-in, decision and response-out with their evidence in one group commit,
    // and release the response only once that commit is durable (log before answer).
    // The log assigns the three indices; over a log this process alone writes they are reserved
    // now, over one shared by replicas they are assigned inside the commit (NodeLog.appendWith).
    let problem: VnError | undefined
    let reason = ''
    if (!decision.permit) {
      problem = new VnError(decision.code, decision.reason)
      reason = decision.reason
    }
    let respJws = ''
    const [requestIndex] = await this.d.log.appendWith(3, async (requestIndex) => {
      const payload: ResponsePayload = {
        v: 1, xid: req.xid, reqDigest, iat: this.now(), iss: this.d.self, aud: req.iss,
        status: decision.permit ? 'ok' : 'denied',
        policy,
        log: { index: requestIndex },
      }
      if (reply.results !== undefined) payload.results = reply.results
      if (reply.r !== undefined) payload.r = reply.r
      if (decision.agreementId !== undefined) payload.agreement = decision.agreementId
      if (problem !== undefined) payload.error = { code: problem.code, title: problem.title, status: problem.statusCode, detail: reason }
      // on the Ed25519 workers while other exchanges are in progress (the event loop serves them
      // meanwhile); a lone exchange signs inline. A failed signature abandons the reservation
      // (a loaded Ed25519 key does not fail to sign; if it does, stop: fail closed).
      respJws = await signJwsJsonAsync(payload, s.privateKey, s.kid, RESPONSE_TYP, this.d.ed25519, this.ed25519Call())
      const respDigest = jwsDigest(respJws)
      const evidence: EvidenceRow[] = [
        { kind: 'jws', record: 0, digest: reqDigest, jws }, // with request-in
        { kind: 'jws', record: 2, digest: respDigest, jws: respJws }, // with response-out
      ]
      // Only what the mode opened against a signed digest is kept as what the consumer disclosed.
      const disclosed = prepared.disclosures ?? []
      if (disclosed.length > 0) {
        evidence.push({ kind: 'disclosures', record: 0, xid: req.xid, disclosures: [...disclosed], expiresAt: now + this.d.limits.retentionDays * 86_400_000 })
      }
      // Records are written out member by member: object spread here cost ~30 µs per exchange (profiled).
      const decided: DecisionRecord = {
        v: 1, at: now, t: 'decision', xid: req.xid, iss: req.iss, reqDigest, permit: decision.permit, policy, count, day: utcDay(now),
      }
      if (decision.agreementId !== undefined) decided.agreement = decision.agreementId
      if (rules !== undefined) decided.rules = rules
      if (!decision.permit) decided.code = decision.code
      return {
        records: [
          { v: 1, at: now, t: 'request-in', xid: req.xid, iss: req.iss, svc: req.svc, mode: req.mode, purpose: req.purpose, basis: req.basis, count, reqDigest },
          decided,
          { v: 1, at: now, t: 'response-out', xid: req.xid, aud: req.iss, reqDigest, respDigest, status: payload.status, requestIndex },
        ],
        evidence,
      }
    }) as [number, number, number]
    this.d.observe?.({ service: req.svc, mode: req.mode, decision: decision.permit ? 'permit' : decision.code, seconds: (performance.now() - started) / 1000 })
    const index = requestIndex + 2 // response-out, whose evidence is the signed response
    if (problem === undefined) return { reply: { status: 200, body: { jws: respJws }, problem: false, xid: req.xid }, index }
    return { reply: { status: problem.statusCode, body: { ...problem.toProblem(), jws: respJws }, problem: true, xid: req.xid }, index }
  }

  /**
   * After a restart: re-arm replay protection with an exchange answered within the replay window
   * (its response-out record is at `index`), so a retry still gets the first response and a replay
   * with another body is still refused.
   */
  remember(iss: string, xid: string, reqDigest: string, index: number, at: number): Promise<void> {
    return this.d.replay.remember(iss, xid, { reqDigest, index, expiresAt: at + 2 * this.d.limits.skewMs })
  }
}

/** Rebuilds the reply a response JWS was released with (a retry's answer, read back from the log's evidence). */
function replyFromResponseJws(jws: string): ExchangeReply {
  const payload = ResponsePayloadSchema.parse(JSON.parse(Buffer.from(jws.split('.')[1] ?? '', 'base64url').toString('utf8')))
  if (payload.status === 'ok' || payload.error === undefined) return { status: 200, body: { jws }, problem: false, xid: payload.xid }
  const code = (payload.error.code in ERRORS ? payload.error.code : 'VN_ERR_POLICY_NO_AGREEMENT') as ErrorCode
  const e = new VnError(code, payload.error.detail)
  return { status: e.statusCode, body: { ...e.toProblem(), jws }, problem: true, xid: payload.xid }
}
