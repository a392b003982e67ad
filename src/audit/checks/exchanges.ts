/**
 * Exchanges in log order (verify.ts steps 4-6): per exchange, the leaves agree with the signed
 * messages (signatures.ts) and with each other; the response is bound to the request (reqDigest,
 * xid, aud, iss); a provider's answer follows its decision (decisions.ts); a consumer's request-out
 * has a response-in (else "no answer recorded"). Also dispatches every record to its check, and
 * keeps the exchanges in log order for the report.
 */
import type { DecisionRecord, LogRecord, RequestInRecord, RequestOutRecord, ResponseInRecord, ResponseOutRecord, ResponseRefusedRecord } from '../../log/records.js'
import { REQUEST_TYP, RESPONSE_TYP } from '../../protocol/envelope.js'
import type { Where } from '../findings.js'
import { digestEquals, mismatch, type AuditContext } from './context.js'
import type { DecisionCheck } from './decisions.js'
import type { EvidenceCheck } from './evidence.js'
import { checkKeyEvent } from './key-events.js'
import type { SignatureCheck } from './signatures.js'
import { checkForkEvidence, checkPeerCheckpoint } from './witnessing.js'

/**
 * A leaf of an exchange: its index, its byte offset in entries.jsonl, and its record while the
 * exchange is open. Once the exchange has ended (its response-out, or its response-in, is
 * checked) the record is dropped and read back from the export if a late leaf of the same
 * exchange needs it (a duplicate: rare). An audit holds every exchange of the log to the end, and
 * with their records the main thread's heap grew by ~2.3 KB an exchange: ~0.8 GB at 10^6 leaves,
 * more than a default heap at 10^7.
 */
export interface Held<R> {
  i: number
  off: number
  r: R | undefined
}

export interface ProviderExchange {
  xid: string
  iss: string
  indices: number[]
  reqIn?: Held<RequestInRecord>
  decision?: Held<DecisionRecord>
  respOut?: Held<ResponseOutRecord>
}

export interface ConsumerExchange {
  xid: string
  aud: string
  indices: number[]
  reqOut?: Held<RequestOutRecord>
  respIn?: Held<ResponseInRecord>
  refused?: Held<ResponseRefusedRecord>
}

export type LoggedExchange = { role: 'provider'; ex: ProviderExchange } | { role: 'consumer'; ex: ConsumerExchange }

const key = (peer: string, xid: string): string => `${peer}|${xid}`

/** The leaves of an exchange whose last leaf was checked: their records are dropped (see Held). */
function dropRecords(...leaves: (Held<unknown> | undefined)[]): void {
  for (const h of leaves) if (h !== undefined) h.r = undefined
}

export class ExchangeCheck {
  private readonly provider = new Map<string, ProviderExchange>()
  private readonly consumer = new Map<string, ConsumerExchange>()
  readonly order: LoggedExchange[] = []
  /** refused answers (response-in status refused): the digest of the bytes received → xid and leaf */
  readonly refusedAnswers = new Map<string, { xid: string; i: number }>()
  /** the chunk of leaves being checked (evidence.ts keeps what it names) */
  chunk = 0

  /** the byte offset in entries.jsonl of the leaf `onRecord` is checking */
  private off = 0

  constructor(
    private readonly ctx: AuditContext, private readonly sig: SignatureCheck, private readonly evidence: EvidenceCheck, private readonly decisions: DecisionCheck,
    /** the record of the leaf at this byte offset of entries.jsonl, read again */
    private readonly readBack: (off: number) => LogRecord | undefined,
  ) {}

  /** A held leaf's record: kept, or read back. */
  private rec<R>(h: Held<R>): R {
    if (h.r !== undefined) return h.r
    const r = this.readBack(h.off)
    // The same bytes were a valid record of this type when first checked (the export's digest
    // check reports a file changed under the audit).
    if (r === undefined) throw new Error(`entries.jsonl: leaf ${h.i} no longer reads as it did`)
    return r as R
  }

  private held<R>(i: number, r: R): Held<R> {
    return { i, off: this.off, r }
  }

  /**
   * Before the chunk's leaves are checked: the JWS each will check, so their signatures can be
   * verified in one batch meanwhile (signatures.ts). Must name what `onRecord` will check.
   */
  prepare(r: LogRecord, chunk: number): void {
    switch (r.t) {
      case 'decision':
        if (this.evidence.has(r.reqDigest)) this.sig.prepare(r.reqDigest, REQUEST_TYP, chunk)
        return
      case 'response-out':
        this.sig.prepare(r.reqDigest, REQUEST_TYP, chunk)
        this.sig.prepare(r.respDigest, RESPONSE_TYP, chunk)
        return
      case 'request-out':
        this.sig.prepare(r.reqDigest, REQUEST_TYP, chunk)
        return
      case 'response-in':
        if ((r.status === 'ok' || r.status === 'denied') && r.respDigest !== undefined) this.sig.prepare(r.respDigest, RESPONSE_TYP, chunk)
        return
      default:
    }
  }

  /** Leaf `i`, at byte offset `off` of entries.jsonl. */
  onRecord(i: number, r: LogRecord, off: number): void {
    this.off = off
    switch (r.t) {
      case 'key-event':
        this.sig.loaded.onKeyEvent(r)
        this.decisions.onManifest(this.sig.loaded.current())
        return checkKeyEvent(this.ctx, i, r)
      case 'agreements': return this.decisions.onAgreements(i, r)
      case 'sharing-rules': return this.decisions.onSharingRules(i, r)
      case 'request-in': return this.onRequestIn(i, r)
      case 'decision': return this.onDecision(i, r)
      case 'response-out': {
        this.onResponseOut(i, r)
        const ex = this.provider.get(key(r.aud, r.xid))
        return dropRecords(ex?.reqIn, ex?.decision, ex?.respOut)
      }
      case 'request-out': return this.onRequestOut(i, r)
      case 'response-in': {
        this.onResponseIn(i, r)
        const ex = this.consumer.get(key(r.iss, r.xid))
        return dropRecords(ex?.reqOut, ex?.respIn, ex?.refused)
      }
      case 'response-refused': return this.onResponseRefused(i, r)
      case 'fork-evidence': return checkForkEvidence(this.ctx, i, r)
      case 'peer-checkpoint': return checkPeerCheckpoint(this.ctx, i, r)
      default:
    }
  }

  private checkSkew(iat: number, at: number, what: string, where: Where): void {
    if (Math.abs(iat - at) > this.ctx.maxSkewMs) this.ctx.findings.add('AUDIT_IAT_SKEW', `${what}: iat is ${Math.round((iat - at) / 1000)} s from the logged instant`, where)
  }

  private provExchange(iss: string, xid: string): ProviderExchange {
    let ex = this.provider.get(key(iss, xid))
    if (ex === undefined) {
      ex = { xid, iss, indices: [] }
      this.provider.set(key(iss, xid), ex)
      this.order.push({ role: 'provider', ex })
    }
    return ex
  }

  private onRequestIn(i: number, r: RequestInRecord): void {
    const w: Where = { xid: r.xid, role: 'provider', index: i }
    let ex = this.provider.get(key(r.iss, r.xid))
    if (ex?.reqIn !== undefined) {
      this.ctx.findings.add('AUDIT_DUPLICATE_EXCHANGE', `leaf ${i}: a second request-in for this xid (first at leaf ${ex.reqIn.i})`, w)
      ex = { xid: r.xid, iss: r.iss, indices: [] }
      this.provider.set(key(r.iss, r.xid), ex)
      this.order.push({ role: 'provider', ex })
    }
    ex ??= this.provExchange(r.iss, r.xid)
    ex.reqIn = this.held(i, r)
    ex.indices.push(i)
  }

  private onDecision(i: number, r: DecisionRecord): void {
    const { findings } = this.ctx
    const w: Where = { xid: r.xid, role: 'provider', index: i }
    const ex = this.provExchange(r.iss, r.xid)
    ex.indices.push(i)
    if (ex.reqIn === undefined) findings.add('AUDIT_ORPHAN_ENTRY', `leaf ${i}: decision without a request-in before it`, w)
    else {
      const q = this.rec(ex.reqIn)
      const bad = mismatch('reqDigest', r.reqDigest, q.reqDigest, 'count', r.count, q.count)
      if (bad.length > 0) findings.add('AUDIT_BINDING_MISMATCH', `leaf ${i}: decision differs from request-in (leaf ${ex.reqIn.i}) in ${bad.join(', ')}`, w)
    }
    if (ex.decision !== undefined) findings.add('AUDIT_DUPLICATE_EXCHANGE', `leaf ${i}: a second decision for this xid (first at leaf ${ex.decision.i})`, w)
    ex.decision = this.held(i, r)
    // Replay: the signed request when the evidence has it, else the request-in record.
    const signedOf = () => (this.evidence.has(r.reqDigest) ? this.sig.verifiedRequest(r.reqDigest, w, this.chunk) : undefined)
    this.decisions.onDecision(i, r, w, signedOf, ex.reqIn === undefined ? undefined : this.rec(ex.reqIn))
  }

  private onResponseOut(i: number, r: ResponseOutRecord): void {
    const { findings, member } = this.ctx
    const w: Where = { xid: r.xid, role: 'provider', index: i }
    const ex = this.provExchange(r.aud, r.xid)
    ex.indices.push(i)
    if (ex.reqIn === undefined) findings.add('AUDIT_ORPHAN_ENTRY', `leaf ${i}: response-out without a request-in before it`, w)
    else {
      const bad = mismatch('requestIndex', r.requestIndex, ex.reqIn.i, 'reqDigest', r.reqDigest, this.rec(ex.reqIn).reqDigest)
      if (bad.length > 0) findings.add('AUDIT_BINDING_MISMATCH', `leaf ${i}: response-out differs from request-in (leaf ${ex.reqIn.i}) in ${bad.join(', ')}`, w)
    }
    if (ex.respOut !== undefined) findings.add('AUDIT_DUPLICATE_EXCHANGE', `leaf ${i}: a second response-out for this xid (first at leaf ${ex.respOut.i})`, w)
    ex.respOut = this.held(i, r)

    // Step 5: an answer follows a permit for this very request.
    const d = ex.decision === undefined ? undefined : { i: ex.decision.i, r: this.rec(ex.decision) }
    this.decisions.onAnswer(i, r, w, d)

    // Step 4: the signed request (by its issuer) and the signed response (by this provider).
    const req = this.sig.verifiedRequest(r.reqDigest, w, this.chunk)
    if (req !== undefined) {
      if (ex.reqIn !== undefined) {
        const q = this.rec(ex.reqIn)
        const bad = mismatch('xid', req.xid, q.xid, 'iss', req.iss, q.iss, 'svc', req.svc, q.svc, 'mode', req.mode, q.mode, 'purpose', req.purpose, q.purpose, 'basis', req.basis, q.basis)
        const n = this.sig.subjectCount(req, `request ${r.reqDigest}`, w)
        if (n !== undefined && n !== q.count) bad.push('count')
        if (bad.length > 0) findings.add('AUDIT_BINDING_MISMATCH', `leaf ${ex.reqIn.i}: request-in differs from the signed request in ${bad.join(', ')}`, w)
        this.checkSkew(req.iat, q.at, `request ${r.reqDigest}`, w)
      }
      if (req.aud !== member) findings.add('AUDIT_BINDING_MISMATCH', `leaf ${i}: the signed request is addressed to ${req.aud}, not ${member}`, w)
    }
    const resp = this.sig.verifiedResponse(r.respDigest, w, this.chunk, member)
    if (resp === undefined) return
    const unbound = mismatch('reqDigest', resp.reqDigest, r.reqDigest, 'xid', resp.xid, r.xid, 'aud', resp.aud, r.aud, 'iss', resp.iss, member)
    if (req !== undefined && resp.aud !== req.iss) unbound.push('aud (request iss)')
    if (unbound.length > 0) findings.add('AUDIT_RESPONSE_UNBOUND', `leaf ${i}: the signed response differs in ${unbound.join(', ')}`, w)
    const bad = mismatch('status', resp.status, r.status, 'log.index', resp.log.index, r.requestIndex)
    if (d !== undefined && digestEquals(d.r.reqDigest, r.reqDigest)) {
      bad.push(...mismatch('policy', resp.policy, d.r.policy, 'agreement', resp.agreement, d.r.agreement))
      if (!d.r.permit && resp.error?.code !== d.r.code) bad.push('error.code')
    }
    if (bad.length > 0) findings.add('AUDIT_BINDING_MISMATCH', `leaf ${i}: response-out and decision differ from the signed response in ${bad.join(', ')}`, w)
    this.checkSkew(resp.iat, r.at, `response ${r.respDigest}`, w)
  }

  private onRequestOut(i: number, r: RequestOutRecord): void {
    const { findings, member } = this.ctx
    const w: Where = { xid: r.xid, role: 'consumer', index: i }
    const prev = this.consumer.get(key(r.aud, r.xid))
    if (prev !== undefined) findings.add('AUDIT_DUPLICATE_EXCHANGE', `leaf ${i}: a second request-out for this xid (first at leaf ${prev.reqOut?.i ?? '?'})`, w)
    const ex: ConsumerExchange = { xid: r.xid, aud: r.aud, indices: [i], reqOut: this.held(i, r) }
    this.consumer.set(key(r.aud, r.xid), ex)
    this.order.push({ role: 'consumer', ex })
    const req = this.sig.verifiedRequest(r.reqDigest, w, this.chunk, member)
    if (req === undefined) return
    const bad = mismatch('xid', req.xid, r.xid, 'aud', req.aud, r.aud, 'svc', req.svc, r.svc, 'mode', req.mode, r.mode, 'purpose', req.purpose, r.purpose, 'basis', req.basis, r.basis)
    const n = this.sig.subjectCount(req, `request ${r.reqDigest}`, w)
    if (n !== undefined && n !== r.count) bad.push('count')
    if (bad.length > 0) findings.add('AUDIT_BINDING_MISMATCH', `leaf ${i}: request-out differs from the signed request in ${bad.join(', ')}`, w)
    this.checkSkew(req.iat, r.at, `request ${r.reqDigest}`, w)
  }

  private onResponseIn(i: number, r: ResponseInRecord): void {
    const { findings, member } = this.ctx
    const w: Where = { xid: r.xid, role: 'consumer', index: i }
    const ex = this.consumer.get(key(r.iss, r.xid))
    if (ex === undefined) {
      findings.add('AUDIT_ORPHAN_ENTRY', `leaf ${i}: response-in without a request-out before it`, w)
    } else {
      ex.indices.push(i)
      if (ex.respIn !== undefined) findings.add('AUDIT_DUPLICATE_EXCHANGE', `leaf ${i}: a second response-in for this xid (first at leaf ${ex.respIn.i})`, w)
      ex.respIn = this.held(i, r)
      if (ex.reqOut !== undefined && !digestEquals(this.rec(ex.reqOut).reqDigest, r.reqDigest)) {
        findings.add('AUDIT_BINDING_MISMATCH', `leaf ${i}: reqDigest differs from request-out (leaf ${ex.reqOut.i})`, w)
      }
    }
    if (r.status === 'error') return // an unsigned transport or protocol failure: nothing to verify
    if (r.status === 'refused') {
      // What the peer sent was not accepted as its signed answer, and this node says so. The bytes
      // are sealed evidence (not in evidence.jsonl): nothing to verify here, and a bad signature
      // in them is the peer's doing (or whoever stood in its place), not an error of this log.
      // With --with-disclosures their digest is checked (disclosures.ts, checkReceived).
      findings.add('AUDIT_PEER_ANSWER_REFUSED', `leaf ${i}: the answer received from ${r.iss} was refused (${r.code ?? 'no code'}); the bytes received (SHA-256 ${r.respDigest ?? '?'}) are kept sealed by the node`, w)
      if (r.respDigest !== undefined) this.refusedAnswers.set(r.respDigest, { xid: r.xid, i })
      return
    }
    if (r.respDigest === undefined) {
      findings.add('AUDIT_LEAF_INVALID', `leaf ${i}: a signed ${r.status} response-in without respDigest`, w)
      return
    }
    const resp = this.sig.verifiedResponse(r.respDigest, w, this.chunk, r.iss)
    if (resp === undefined) return
    const unbound = mismatch('reqDigest', resp.reqDigest, r.reqDigest, 'xid', resp.xid, r.xid, 'aud', resp.aud, member, 'iss', resp.iss, r.iss)
    if (unbound.length > 0) findings.add('AUDIT_RESPONSE_UNBOUND', `leaf ${i}: the signed response differs in ${unbound.join(', ')}`, w)
    const bad = mismatch('status', resp.status, r.status, 'peerIndex', resp.log.index, r.peerIndex, 'code', resp.error?.code, r.code)
    if (bad.length > 0) findings.add('AUDIT_BINDING_MISMATCH', `leaf ${i}: response-in differs from the signed response in ${bad.join(', ')}`, w)
    this.checkSkew(resp.iat, r.at, `response ${r.respDigest}`, w)
  }

  // A refusal follows the signed ok response-in it refuses (same xid and digests), once.
  private onResponseRefused(i: number, r: ResponseRefusedRecord): void {
    const { findings } = this.ctx
    const w: Where = { xid: r.xid, role: 'consumer', index: i }
    const ex = this.consumer.get(key(r.iss, r.xid))
    const respIn = ex?.respIn
    if (ex === undefined || respIn === undefined) {
      findings.add('AUDIT_ORPHAN_ENTRY', `leaf ${i}: response-refused without a response-in before it`, w)
      return
    }
    ex.indices.push(i)
    if (ex.refused !== undefined) findings.add('AUDIT_DUPLICATE_EXCHANGE', `leaf ${i}: a second response-refused for this xid (first at leaf ${ex.refused.i})`, w)
    ex.refused = this.held(i, r)
    const ri = this.rec(respIn)
    const bad = mismatch('status', 'ok', ri.status, 'reqDigest', ri.reqDigest, r.reqDigest, 'respDigest', ri.respDigest, r.respDigest)
    if (bad.length > 0) findings.add('AUDIT_BINDING_MISMATCH', `leaf ${i}: response-refused differs from the response-in at leaf ${respIn.i} in ${bad.join(', ')}`, w)
  }

  /** Steps 5-6, what is missing at the end of the log. */
  finish(): void {
    const { findings } = this.ctx
    for (const e of this.order) {
      if (e.role === 'provider' && e.ex.reqIn !== undefined && e.ex.respOut === undefined) {
        findings.add('AUDIT_NO_RESPONSE_LOGGED', `leaf ${e.ex.reqIn.i}: request-in has no response-out`, { xid: e.ex.xid, role: 'provider', index: e.ex.reqIn.i })
      }
      if (e.role === 'consumer' && e.ex.reqOut !== undefined && e.ex.respIn === undefined) {
        findings.add('AUDIT_NO_ANSWER_RECORDED', `leaf ${e.ex.reqOut.i}: no answer recorded for request-out`, { xid: e.ex.xid, role: 'consumer', index: e.ex.reqOut.i })
      }
    }
  }
}
