/**
 * `verinode audit cross-check <consumer-export> <provider-export>`: do the two sides' logs tell the
 * same story about the exchanges between them (docs/DESIGN.md "Auditor toolkit"; issue 5 §4)?
 *
 * It joins the consumer's `request-out`/`response-in` leaves addressed to the provider with the
 * provider's `request-in`/`decision`/`response-out` leaves issued by the consumer, on `xid`, and
 * reports per exchange:
 *  - missing on one side: a request the consumer logged that the provider's log lacks (an error
 *    when the consumer holds the provider's signed answer to it; a warning when the request may
 *    never have arrived), and a request the provider logged that the consumer never logged;
 *  - altered: the two sides' leaves disagree (request or response digest, status, service, mode,
 *    purpose, basis, count), or their evidence holds different signed messages for one exchange;
 *  - answered without a decision: the consumer holds a signed answer the provider decided nothing on;
 *  - a response not bound to its request (the signed response's reqDigest, xid, aud, iss);
 *  - a `peerIndex` (the provider's log index the signed response names, which the consumer logs
 *    for receipts) that is not the provider's `request-in` leaf of that xid;
 *  - a signed response logged on one side only.
 * Exchanges after the end of the other side's export cannot be joined (info): for a consumer
 * exchange with a signed answer, when the provider's log index that answer names is beyond the
 * provider's export; otherwise, when it starts after the other side's last leaf.
 *
 * Only digests, ids, statuses and counts are compared: no personal data is needed or shown.
 * Each export is first checked with `audit verify` (unless `verify: false`): a join of logs whose
 * signatures or roots do not verify proves little, so a failing export is itself an error finding.
 */
import type { KeyObject } from 'node:crypto'
import { timingSafeEqual } from 'node:crypto'
import { VnError } from '../errors.js'
import type { DecisionRecord, RequestInRecord, RequestOutRecord, ResponseInRecord, ResponseOutRecord } from '../log/records.js'
import { unverifiedJwsPayload } from '../crypto/jws.js'
import { Findings, readExport, type LoadedExport, type Where } from './export-reader.js'
import type { AuditFinding } from './findings.js'
import { auditExport, type AuditOptions } from './verify.js'
import { mismatch } from './checks/context.js'

export interface CrossCheckOptions {
  /** trust anchor for the two `audit verify` runs (default: each export's own copy) */
  rootKey?: KeyObject | string
  /** more manifest JWS texts */
  manifests?: readonly string[]
  /** run audit verify on both exports first (default true) */
  verify?: boolean
}

export interface CrossExchange {
  xid: string
  consumerIndices: number[]
  providerIndices: number[]
  findings: AuditFinding[]
}

export interface CrossCheckReport {
  v: 1
  command: 'audit cross-check'
  ok: boolean
  consumer: { member: string; dir: string; leaves: number; verified: boolean | null }
  provider: { member: string; dir: string; leaves: number; verified: boolean | null }
  counts: { joined: number; consumerOnly: number; providerOnly: number; errors: number; warnings: number; infos: number }
  /** every finding, in consumer-exchange order, then the provider-only ones */
  findings: AuditFinding[]
  /** the exchanges with findings */
  exchanges: CrossExchange[]
}

interface ConsumerSide {
  reqOut: { i: number; r: RequestOutRecord }
  respIn?: { i: number; r: ResponseInRecord }
}

interface ProviderSide {
  reqIn?: { i: number; r: RequestInRecord }
  decision?: { i: number; r: DecisionRecord }
  respOut?: { i: number; r: ResponseOutRecord }
}

const SAFE_XID = /^[A-Za-z0-9_-]{1,64}$/

function same(a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

/** The unverified payload of a compact JWS (signatures are audit verify's job). */
function payloadOf(jws: string | undefined): Record<string, unknown> | undefined {
  if (jws === undefined) return undefined
  try {
    const v: unknown = unverifiedJwsPayload(jws)
    return v !== null && typeof v === 'object' ? (v as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}

const lastAt = (e: LoadedExport): number => e.records.reduce((m, r) => (r === undefined ? m : Math.max(m, r.at)), 0)

/** @throws VN_ERR_AUDIT_EXPORT_INVALID when a folder is not an export; VN_ERR_AUDIT_INPUT_INVALID when both are of one member */
export async function crossCheck(consumerDir: string, providerDir: string, opts: CrossCheckOptions = {}): Promise<CrossCheckReport> {
  const cons = await readExport(consumerDir)
  const prov = await readExport(providerDir)
  const C = cons.member
  const P = prov.member
  if (C === P) throw new VnError('VN_ERR_AUDIT_INPUT_INVALID', `both exports are of ${C}: give the consumer's and the provider's`)
  const findings = new Findings()

  let verified: { consumer: boolean | null; provider: boolean | null } = { consumer: null, provider: null }
  if (opts.verify !== false) {
    const ao: AuditOptions = {}
    if (opts.rootKey !== undefined) ao.rootKey = opts.rootKey
    if (opts.manifests !== undefined) ao.manifests = opts.manifests
    const [rc, rp] = [await auditExport(cons.dir, ao), await auditExport(prov.dir, ao)]
    verified = { consumer: rc.ok, provider: rp.ok }
    for (const [side, r] of [['consumer', rc], ['provider', rp]] as const) {
      if (!r.ok) findings.add('AUDIT_CROSS_EXPORT_FAILED', `the ${side}'s export (${r.member}) fails audit verify with ${r.counts.errors} error(s); run it for details`)
    }
  }

  // The two sides of each exchange between C and P, by xid.
  const consumer = new Map<string, ConsumerSide>()
  const provider = new Map<string, ProviderSide>()
  cons.records.forEach((r, i) => {
    if (r?.t === 'request-out' && r.aud === P && !consumer.has(r.xid)) consumer.set(r.xid, { reqOut: { i, r } })
    if (r?.t === 'response-in' && r.iss === P) {
      const c = consumer.get(r.xid)
      if (c !== undefined) c.respIn = { i, r }
    }
  })
  prov.records.forEach((r, i) => {
    if (r === undefined) return
    const key = r.t === 'request-in' || r.t === 'decision' ? (r.iss === C ? r.xid : undefined) : r.t === 'response-out' && r.aud === C ? r.xid : undefined
    if (key === undefined) return
    let p = provider.get(key)
    if (p === undefined) provider.set(key, (p = {}))
    if (r.t === 'request-in') p.reqIn ??= { i, r }
    else if (r.t === 'decision') p.decision ??= { i, r }
    else if (r.t === 'response-out') p.respOut ??= { i, r }
  })
  const endC = lastAt(cons)
  const endP = lastAt(prov)

  const exchanges: CrossExchange[] = []
  let joined = 0
  let consumerOnly = 0
  let providerOnly = 0

  for (const [xid, c] of consumer) {
    const before = findings.list.length
    const safe = SAFE_XID.test(xid) ? xid : undefined
    const atC = (i: number): Where => ({ ...(safe === undefined ? {} : { xid: safe }), role: 'consumer', index: i })
    const atP = (i: number): Where => ({ ...(safe === undefined ? {} : { xid: safe }), role: 'provider', index: i })
    const q = c.reqOut.r
    const signedAnswer = c.respIn !== undefined && (c.respIn.r.status === 'ok' || c.respIn.r.status === 'denied') && c.respIn.r.respDigest !== undefined
    const refused = c.respIn?.r.status === 'refused'
    const p = provider.get(xid)
    const providerIndices = p === undefined ? [] : [p.reqIn?.i, p.decision?.i, p.respOut?.i].filter((x): x is number => x !== undefined)
    if (p?.reqIn === undefined) {
      consumerOnly++
      // The provider's export covers the exchange when the index its signed answer names is in
      // the export (whatever the clocks say); without a signed answer, by time.
      const peerIndex = c.respIn?.r.peerIndex
      const beyond = signedAnswer && peerIndex !== undefined ? peerIndex >= prov.leaves.length : q.at > endP
      if (beyond) findings.add('AUDIT_CROSS_OUTSIDE_WINDOW', `consumer leaf ${c.reqOut.i}: after the end of the provider's export (${prov.leaves.length} leaves)`, atC(c.reqOut.i))
      else if (signedAnswer) findings.add('AUDIT_CROSS_MISSING_AT_PROVIDER', `consumer leaf ${c.reqOut.i}: ${P} signed an answer (consumer leaf ${c.respIn?.i}), but its log has no request-in for this xid`, atC(c.reqOut.i))
      else findings.add('AUDIT_CROSS_MISSING_AT_PROVIDER', `consumer leaf ${c.reqOut.i}: no request-in at ${P}, and no signed answer either (the request may never have arrived)`, atC(c.reqOut.i), 'warning')
    } else {
      joined++
      const s = p.reqIn.r
      // Altered: the two sides' records of the request.
      const bad = mismatch('reqDigest', q.reqDigest, s.reqDigest, 'svc', q.svc, s.svc, 'mode', q.mode, s.mode, 'purpose', q.purpose, s.purpose, 'basis', q.basis, s.basis, 'count', q.count, s.count)
      if (bad.length > 0) findings.add('AUDIT_CROSS_ALTERED', `consumer leaf ${c.reqOut.i} and provider leaf ${p.reqIn.i} differ in ${bad.join(', ')}`, atC(c.reqOut.i))
      const cj = cons.evidence.get(q.reqDigest)
      const pj = prov.evidence.get(s.reqDigest)
      if (cj !== undefined && pj !== undefined && cj !== pj) findings.add('AUDIT_CROSS_EVIDENCE_DIFFERS', `the two sides hold different signed requests for this exchange`, atC(c.reqOut.i))

      // Answered without a decision.
      const decided = p.decision !== undefined && same(p.decision.r.reqDigest, s.reqDigest)
      if (signedAnswer && !decided) {
        const code = c.respIn?.r.status === 'ok' ? 'AUDIT_NO_PERMIT' : 'AUDIT_NO_DECISION'
        findings.add(code, `consumer leaf ${c.respIn?.i}: a signed ${c.respIn?.r.status} answer, and ${P} logged no decision for this request`, atP(p.reqIn.i))
      }

      // The response on both sides.
      const ri = c.respIn
      const ro = p.respOut
      if (signedAnswer && ro === undefined) {
        findings.add('AUDIT_CROSS_RESPONSE_MISSING', `consumer leaf ${ri?.i}: ${P} signed this answer but never logged a response-out (answer released unlogged)`, atP(p.reqIn.i))
      } else if (ro !== undefined && refused) {
        // The provider logged its signed answer; what reached the consumer was not it (altered in
        // transit, or something stood in the provider's place). Both logs tell the truth.
        findings.add('AUDIT_CROSS_RESPONSE_MISSING', `provider leaf ${ro.i}: a signed response, and the consumer refused what it received instead (consumer leaf ${c.respIn?.i}, ${c.respIn?.r.code ?? 'no code'})`, atC(c.respIn?.i ?? c.reqOut.i), 'warning')
      } else if (ro !== undefined && !signedAnswer) {
        findings.add('AUDIT_CROSS_RESPONSE_MISSING', `provider leaf ${ro.i}: a signed response the consumer never recorded (lost in transit?)`, atC(c.reqOut.i), 'warning')
      } else if (ro !== undefined && ri !== undefined) {
        const diff = mismatch('respDigest', ri.r.respDigest, ro.r.respDigest, 'status', ri.r.status, ro.r.status, 'reqDigest', ri.r.reqDigest, ro.r.reqDigest)
        if (diff.length > 0) findings.add('AUDIT_CROSS_ALTERED', `consumer leaf ${ri.i} and provider leaf ${ro.i} differ in ${diff.join(', ')}`, atC(ri.i))
        const a = ri.r.respDigest === undefined ? undefined : cons.evidence.get(ri.r.respDigest)
        const b = prov.evidence.get(ro.r.respDigest)
        if (a !== undefined && b !== undefined && a !== b) findings.add('AUDIT_CROSS_EVIDENCE_DIFFERS', 'the two sides hold different signed responses for this exchange', atC(ri.i))
      }

      // Bound to its request: the signed response (either side's copy) names this request.
      if (ri !== undefined && signedAnswer) {
        const jws = (ri.r.respDigest === undefined ? undefined : cons.evidence.get(ri.r.respDigest)) ?? (ro === undefined ? undefined : prov.evidence.get(ro.r.respDigest))
        const resp = payloadOf(jws)
        if (resp !== undefined) {
          const unbound = mismatch('reqDigest', resp.reqDigest, q.reqDigest, 'xid', resp.xid, xid, 'aud', resp.aud, C, 'iss', resp.iss, P)
          if (unbound.length > 0) findings.add('AUDIT_RESPONSE_UNBOUND', `consumer leaf ${ri.i}: the signed response differs from the request in ${unbound.join(', ')}`, atC(ri.i))
        }
        // peerIndex: the provider's index for this exchange is its request-in leaf (response log.index).
        if (ri.r.peerIndex !== p.reqIn.i) {
          findings.add('AUDIT_CROSS_PEER_INDEX', `consumer leaf ${ri.i}: peerIndex ${ri.r.peerIndex ?? 'missing'}, the provider's request-in is leaf ${p.reqIn.i}`, atC(ri.i))
        }
      }
    }
    const mine = findings.list.slice(before)
    if (mine.length > 0) {
      exchanges.push({ xid: safe ?? '?', consumerIndices: [c.reqOut.i, ...(c.respIn === undefined ? [] : [c.respIn.i])], providerIndices, findings: mine })
    }
  }

  for (const [xid, p] of provider) {
    if (p.reqIn === undefined || consumer.has(xid)) continue
    providerOnly++
    const safe = SAFE_XID.test(xid) ? xid : undefined
    const w: Where = { ...(safe === undefined ? {} : { xid: safe }), role: 'provider', index: p.reqIn.i }
    const before = findings.list.length
    if (p.reqIn.r.at > endC) findings.add('AUDIT_CROSS_OUTSIDE_WINDOW', `provider leaf ${p.reqIn.i}: received after the consumer's export ends`, w)
    else findings.add('AUDIT_CROSS_MISSING_AT_CONSUMER', `provider leaf ${p.reqIn.i}: a request from ${C} that ${C}'s log never sent`, w)
    exchanges.push({
      xid: safe ?? '?',
      consumerIndices: [],
      providerIndices: [p.reqIn.i, p.decision?.i, p.respOut?.i].filter((x): x is number => x !== undefined),
      findings: findings.list.slice(before),
    })
  }

  const counts = findings.counts()
  return {
    v: 1,
    command: 'audit cross-check',
    ok: findings.ok,
    consumer: { member: C, dir: cons.dir, leaves: cons.leaves.length, verified: verified.consumer },
    provider: { member: P, dir: prov.dir, leaves: prov.leaves.length, verified: verified.provider },
    counts: { joined, consumerOnly, providerOnly, ...counts },
    findings: findings.list,
    exchanges,
  }
}
