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
 * An exchange as the audit keeps it to the end (for duplicates met later, the exchanges still
 * open at the end, and the report): the leaf index of each of its leaves, nothing more. Its
 * records are held only while it is open (`ExchangeCheck.records`): once its last leaf (its
 * response-out, response-in or response-refused) is checked they are dropped, and read back from entries.jsonl by the leaf's byte
 * offset if a late leaf of the same exchange needs them (a duplicate: rare). An audit holds every
 * exchange of the log to the end: at ~2.3 KB an exchange with its records, and still ~1.2 KB once
 * they were dropped but each leaf kept an object of its own, the main thread's heap outgrew Node's
 * default limit at 10^7 leaves.
 */
export interface ProviderExchange {
  role: 'provider'
  xid: string
  /** the consumer (the request's iss) */
  peer: string
  /** its leaves, in log order */
  indices: number[]
  reqIn: number | undefined
  decision: number | undefined
  respOut: number | undefined
}

export interface ConsumerExchange {
  role: 'consumer'
  xid: string
  /** the provider (the request's aud) */
  peer: string
  indices: number[]
  reqOut: number | undefined
  respIn: number | undefined
  refused: number | undefined
}

export type LoggedExchange = ProviderExchange | ConsumerExchange

/** Exchanges by peer, then xid (no `peer|xid` string per exchange). */
class ByPeer<E> {
  private readonly peers = new Map<string, Map<string, E>>()
  get(peer: string, xid: string): E | undefined {
    return this.peers.get(peer)?.get(xid)
  }
  set(peer: string, xid: string, e: E): void {
    let m = this.peers.get(peer)
    if (m === undefined) this.peers.set(peer, (m = new Map()))
    m.set(xid, e)
  }
}

/** Byte offsets in entries.jsonl by leaf index, in pages (8 bytes a leaf). */
class LeafOffsets {
  private static readonly BITS = 16
  private readonly pages: Float64Array[] = []
  set(i: number, off: number): void {
    const p = i >>> LeafOffsets.BITS
    while (this.pages.length <= p) this.pages.push(new Float64Array(1 << LeafOffsets.BITS).fill(-1))
    ;(this.pages[p] as Float64Array)[i & ((1 << LeafOffsets.BITS) - 1)] = off
  }
  get(i: number): number {
    return this.pages[i >>> LeafOffsets.BITS]?.[i & ((1 << LeafOffsets.BITS) - 1)] ?? -1
  }
}

export class ExchangeCheck {
  private readonly provider = new ByPeer<ProviderExchange>()
  private readonly consumer = new ByPeer<ConsumerExchange>()
  /** every exchange, in log order */
  readonly order: LoggedExchange[] = []
  /** the records of the leaves of open exchanges, by leaf index */
  private readonly records = new Map<number, LogRecord>()
  private readonly offsets = new LeafOffsets()
  /** refused answers (response-in status refused): the digest of the bytes received → xid and leaf */
  readonly refusedAnswers = new Map<string, { xid: string; i: number }>()
  /** the chunk of leaves being checked (evidence.ts keeps what it names) */
  chunk = 0

  constructor(
    private readonly ctx: AuditContext, private readonly sig: SignatureCheck, private readonly evidence: EvidenceCheck, private readonly decisions: DecisionCheck,
    /** the record of the leaf at this byte offset of entries.jsonl, read again */
    private readonly readBack: (off: number) => LogRecord | undefined,
  ) {}

  /** The record of leaf `i` of an exchange: held while the exchange is open, else read back. */
  private rec<R extends LogRecord>(i: number): R {
    const held = this.records.get(i)
    if (held !== undefined) return held as R
    const off = this.offsets.get(i)
    const r = off < 0 ? undefined : this.readBack(off)
    // The same bytes were a valid record of this type when first checked (the export's digest
    // check reports a file changed under the audit).
    if (r === undefined) throw new Error(`entries.jsonl: leaf ${i} no longer reads as it did`)
    return r as R
  }

  /** Leaf `i` (record `r`) joins an open exchange: its record is held until the exchange ends. */
  private hold(i: number, r: LogRecord): number {
    this.records.set(i, r)
    return i
  }

  /** An exchange whose last leaf was checked: its records are dropped, its leaf list trimmed. */
  private end(ex: LoggedExchange | undefined): void {
    if (ex === undefined) return
    for (const i of ex.indices) this.records.delete(i)
    // an array grown by push keeps room for 17 elements; an exchange has 3
    ex.indices = ex.indices.slice()
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
    this.offsets.set(i, off)
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
        return this.end(this.provider.get(r.aud, r.xid))
      }
      case 'request-out': return this.onRequestOut(i, r)
      case 'response-in': {
        this.onResponseIn(i, r)
        return this.end(this.consumer.get(r.iss, r.xid))
      }
      case 'response-refused': {
        // a refusal follows the response-in it refuses: the exchange ends again
        this.onResponseRefused(i, r)
        const ex = this.consumer.get(r.iss, r.xid)
        return ex?.refused === i ? this.end(ex) : undefined
      }
      case 'fork-evidence': return checkForkEvidence(this.ctx, i, r)
      case 'peer-checkpoint': return checkPeerCheckpoint(this.ctx, i, r)
      default:
    }
  }

  private checkSkew(iat: number, at: number, what: string, where: Where): void {
    if (Math.abs(iat - at) > this.ctx.maxSkewMs) this.ctx.findings.add('AUDIT_IAT_SKEW', `${what}: iat is ${Math.round((iat - at) / 1000)} s from the logged instant`, where)
  }

  private provExchange(iss: string, xid: string): ProviderExchange {
    return this.provider.get(iss, xid) ?? this.newProvExchange(iss, xid)
  }

  private newProvExchange(iss: string, xid: string): ProviderExchange {
    const ex: ProviderExchange = { role: 'provider', xid, peer: iss, indices: [], reqIn: undefined, decision: undefined, respOut: undefined }
    this.provider.set(iss, xid, ex)
    this.order.push(ex)
    return ex
  }

  private onRequestIn(i: number, r: RequestInRecord): void {
    const w: Where = { xid: r.xid, role: 'provider', index: i }
    let ex = this.provider.get(r.iss, r.xid)
    if (ex?.reqIn !== undefined) {
      this.ctx.findings.add('AUDIT_DUPLICATE_EXCHANGE', `leaf ${i}: a second request-in for this xid (first at leaf ${ex.reqIn})`, w)
      ex = this.newProvExchange(r.iss, r.xid)
    }
    ex ??= this.newProvExchange(r.iss, r.xid)
    ex.reqIn = this.hold(i, r)
    ex.indices.push(i)
  }

  private onDecision(i: number, r: DecisionRecord): void {
    const { findings } = this.ctx
    const w: Where = { xid: r.xid, role: 'provider', index: i }
    const ex = this.provExchange(r.iss, r.xid)
    ex.indices.push(i)
    if (ex.reqIn === undefined) findings.add('AUDIT_ORPHAN_ENTRY', `leaf ${i}: decision without a request-in before it`, w)
    else {
      const q = this.rec<RequestInRecord>(ex.reqIn)
      const bad = mismatch('reqDigest', r.reqDigest, q.reqDigest, 'count', r.count, q.count)
      if (bad.length > 0) findings.add('AUDIT_BINDING_MISMATCH', `leaf ${i}: decision differs from request-in (leaf ${ex.reqIn}) in ${bad.join(', ')}`, w)
    }
    if (ex.decision !== undefined) findings.add('AUDIT_DUPLICATE_EXCHANGE', `leaf ${i}: a second decision for this xid (first at leaf ${ex.decision})`, w)
    ex.decision = this.hold(i, r)
    // Replay: the signed request when the evidence has it, else the request-in record.
    const signedOf = () => (this.evidence.has(r.reqDigest) ? this.sig.verifiedRequest(r.reqDigest, w, this.chunk) : undefined)
    this.decisions.onDecision(i, r, w, signedOf, ex.reqIn === undefined ? undefined : this.rec<RequestInRecord>(ex.reqIn))
  }

  private onResponseOut(i: number, r: ResponseOutRecord): void {
    const { findings, member } = this.ctx
    const w: Where = { xid: r.xid, role: 'provider', index: i }
    const ex = this.provExchange(r.aud, r.xid)
    ex.indices.push(i)
    if (ex.reqIn === undefined) findings.add('AUDIT_ORPHAN_ENTRY', `leaf ${i}: response-out without a request-in before it`, w)
    else {
      const bad = mismatch('requestIndex', r.requestIndex, ex.reqIn, 'reqDigest', r.reqDigest, this.rec<RequestInRecord>(ex.reqIn).reqDigest)
      if (bad.length > 0) findings.add('AUDIT_BINDING_MISMATCH', `leaf ${i}: response-out differs from request-in (leaf ${ex.reqIn}) in ${bad.join(', ')}`, w)
    }
    if (ex.respOut !== undefined) findings.add('AUDIT_DUPLICATE_EXCHANGE', `leaf ${i}: a second response-out for this xid (first at leaf ${ex.respOut})`, w)
    ex.respOut = this.hold(i, r)

    // Step 5: an answer follows a permit for this very request.
    const d = ex.decision === undefined ? undefined : { i: ex.decision, r: this.rec<DecisionRecord>(ex.decision) }
    this.decisions.onAnswer(i, r, w, d)

    // Step 4: the signed request (by its issuer) and the signed response (by this provider).
    const req = this.sig.verifiedRequest(r.reqDigest, w, this.chunk)
    if (req !== undefined) {
      if (ex.reqIn !== undefined) {
        const q = this.rec<RequestInRecord>(ex.reqIn)
        const bad = mismatch('xid', req.xid, q.xid, 'iss', req.iss, q.iss, 'svc', req.svc, q.svc, 'mode', req.mode, q.mode, 'purpose', req.purpose, q.purpose, 'basis', req.basis, q.basis)
        const n = this.sig.subjectCount(req, `request ${r.reqDigest}`, w)
        if (n !== undefined && n !== q.count) bad.push('count')
        if (bad.length > 0) findings.add('AUDIT_BINDING_MISMATCH', `leaf ${ex.reqIn}: request-in differs from the signed request in ${bad.join(', ')}`, w)
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
    const prev = this.consumer.get(r.aud, r.xid)
    if (prev !== undefined) findings.add('AUDIT_DUPLICATE_EXCHANGE', `leaf ${i}: a second request-out for this xid (first at leaf ${prev.reqOut ?? '?'})`, w)
    const ex: ConsumerExchange = { role: 'consumer', xid: r.xid, peer: r.aud, indices: [i], reqOut: this.hold(i, r), respIn: undefined, refused: undefined }
    this.consumer.set(r.aud, r.xid, ex)
    this.order.push(ex)
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
    const ex = this.consumer.get(r.iss, r.xid)
    if (ex === undefined) {
      findings.add('AUDIT_ORPHAN_ENTRY', `leaf ${i}: response-in without a request-out before it`, w)
    } else {
      ex.indices.push(i)
      if (ex.respIn !== undefined) findings.add('AUDIT_DUPLICATE_EXCHANGE', `leaf ${i}: a second response-in for this xid (first at leaf ${ex.respIn})`, w)
      ex.respIn = this.hold(i, r)
      if (ex.reqOut !== undefined && !digestEquals(this.rec<RequestOutRecord>(ex.reqOut).reqDigest, r.reqDigest)) {
        findings.add('AUDIT_BINDING_MISMATCH', `leaf ${i}: reqDigest differs from request-out (leaf ${ex.reqOut})`, w)
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
    const ex = this.consumer.get(r.iss, r.xid)
    const respIn = ex?.respIn
    if (ex === undefined || respIn === undefined) {
      findings.add('AUDIT_ORPHAN_ENTRY', `leaf ${i}: response-refused without a response-in before it`, w)
      return
    }
    ex.indices.push(i)
    if (ex.refused !== undefined) findings.add('AUDIT_DUPLICATE_EXCHANGE', `leaf ${i}: a second response-refused for this xid (first at leaf ${ex.refused})`, w)
    ex.refused = this.hold(i, r)
    const ri = this.rec<ResponseInRecord>(respIn)
    const bad = mismatch('status', 'ok', ri.status, 'reqDigest', ri.reqDigest, r.reqDigest, 'respDigest', ri.respDigest, r.respDigest)
    if (bad.length > 0) findings.add('AUDIT_BINDING_MISMATCH', `leaf ${i}: response-refused differs from the response-in at leaf ${respIn} in ${bad.join(', ')}`, w)
  }

  /** Steps 5-6, what is missing at the end of the log. */
  finish(): void {
    const { findings } = this.ctx
    for (const e of this.order) {
      if (e.role === 'provider' && e.reqIn !== undefined && e.respOut === undefined) {
        findings.add('AUDIT_NO_RESPONSE_LOGGED', `leaf ${e.reqIn}: request-in has no response-out`, { xid: e.xid, role: 'provider', index: e.reqIn })
      }
      if (e.role === 'consumer' && e.reqOut !== undefined && e.respIn === undefined) {
        findings.add('AUDIT_NO_ANSWER_RECORDED', `leaf ${e.reqOut}: no answer recorded for request-out`, { xid: e.xid, role: 'consumer', index: e.reqOut })
      }
    }
  }
}
