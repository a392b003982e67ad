/**
 * Authorization decisions (docs/DESIGN.md "Authorization"): deny by default; permit only when an
 * agreement in force covers the consumer, service, purpose, mode and legal basis and its daily
 * quota still has room for the whole batch.
 *
 * `decide` is deterministic: its result depends only on the request (including its instant `at`),
 * the agreement set and the quota counter's state, and its only effect is counting a permitted
 * batch in that counter. The auditor re-runs it (`replayDecision`) against the agreement set in
 * force at that point of the log and a counter rebuilt from the earlier permits, and must get the
 * same answer the node logged.
 *
 * Rules, checked per agreement in this order:
 *  1. `consumer` equals the agreement's consumer (the caller has already checked membership);
 *  2. `service` is listed (the caller has already checked the service exists on this node);
 *  3. `purpose` is listed (exact string);
 *  4. `mode` is listed;
 *  5. legal basis: if the request states one it must equal the agreement's exactly; it may be
 *     omitted only in `oprf` and `he` modes, where the agreement's basis then applies and is
 *     returned with the permit so the log records it. In `plain` mode the subject is disclosed,
 *     and docs/DESIGN.md makes purpose and basis mandatory;
 *  6. `at` is inside `[validFrom, validUntil)`.
 * Of the agreements passing 1-6, taken in id order, the first whose quota fits the whole batch
 * permits; a batch is never split across agreements. None passing → VN_ERR_POLICY_NO_AGREEMENT
 * with the rule that failed furthest along; all passing but full → VN_ERR_POLICY_QUOTA_EXHAUSTED.
 *
 * The sharing rules (docs/GOVERNANCE.md), when a `SharingRules` view is given, come first and then widen
 * or narrow the agreements:
 *  G1. a service that is not shared (不予共享), whose item is negative-listed as not shared, whose
 *      item has another authoritative source, or that is classified core, is denied
 *      (VN_ERR_POLICY_NOT_SHARED) whatever the agreements say;
 *  G2. important data and sensitive personal information asked in `plain` mode count against at
 *      most `gradedDailyQuota` a day, whatever quota the agreement gives;
 *  G3. an unconditional service (无条件共享) not negative-listed as conditional and not sensitive
 *      is answered without an agreement to any department member that states a purpose and a
 *      legal basis, under a per-consumer daily quota (`unconditionalDailyQuota`, capped by G2),
 *      counted under the id `uncond:<consumer>:<service>`; it is tried after the agreements.
 *
 * Reasons are PII-free and ASCII (they go into signed responses, which the auditor scans for CJK text): they name member ids, service ids, modes, agreement ids, instants and
 * counts, and never echo the free-text purpose or basis a consumer sent.
 */
import type { Agreement } from './agreements.js'
import type { Mode } from '../protocol/vocabulary.js'
import { sortAgreements } from './agreements.js'
import { utcDay, type QuotaCounter, type QuotaRecord, type QuotaStore } from './quota.js'
import { isGraded, neverAnswered, unconditionalQuotaId, type SharingRules } from './sharing.js'

export interface DecisionRequest {
  consumer: string
  service: string
  purpose: string
  /** legal basis stated by the consumer; see rule 5 */
  basis?: string | undefined
  mode: Mode
  /** subjects (plain, he) or evaluations (oprf) in this request, ≥ 1 */
  count: number
  /** the request instant, ms (the node's clock at decision time) */
  at: number
}

export type DenyCode = 'VN_ERR_POLICY_NO_AGREEMENT' | 'VN_ERR_POLICY_QUOTA_EXHAUSTED' | 'VN_ERR_POLICY_NOT_SHARED'

export type Decision =
  | {
      permit: true
      agreementId: string
      /** units left today under that agreement after this batch */
      remaining: number
      /** the UTC day the batch was counted on */
      day: string
      /** the legal basis the request is served under (the agreement's) */
      basis: string
    }
  | { permit: false; code: DenyCode; reason: string }

const iso = (at: number): string => new Date(at).toISOString()

/** Steps 1-6 for one agreement: the number of rules passed (6 = all) and why it stopped. */
function evaluate({ a, from, until }: SortedAgreement, r: DecisionRequest): { passed: number; reason: string } {
  if (a.consumer !== r.consumer) return { passed: 0, reason: `no agreement with consumer ${r.consumer}` }
  if (!a.services.includes(r.service)) return { passed: 1, reason: `no agreement of consumer ${r.consumer} covers service ${r.service}` }
  if (!a.purposes.includes(r.purpose)) return { passed: 2, reason: `the stated purpose is not agreed for ${r.consumer} on ${r.service}` }
  if (!a.modes.includes(r.mode)) return { passed: 3, reason: `mode ${r.mode} is not agreed for ${r.consumer} on ${r.service}` }
  if (r.basis === undefined || r.basis === '') {
    if (r.mode === 'plain') return { passed: 4, reason: 'a legal basis is mandatory in plain mode' }
  } else if (r.basis !== a.basis) {
    return { passed: 4, reason: `the stated legal basis differs from agreement ${a.id}` }
  }
  if (r.at < from) return { passed: 5, reason: `agreement ${a.id} is not in force before ${iso(from)}` }
  if (r.at >= until) return { passed: 5, reason: `agreement ${a.id} expired at ${iso(until)}` }
  return { passed: 6, reason: '' }
}


/** An agreement with its validity window read, as `inForceFor` goes through them. */
interface SortedAgreement { a: Agreement; from: number; until: number }

/**
 * Each agreement set, sorted by id with its windows read, once. A set in force is a value (the
 * `policy` hash the log names is its hash; the node replaces it whole, never edits it), and the
 * node decides every request and the auditor replays every decision against the same few sets.
 */
const sortedSets = new WeakMap<readonly Agreement[], readonly SortedAgreement[]>()

function sortedSet(agreements: readonly Agreement[]): readonly SortedAgreement[] {
  let s = sortedSets.get(agreements)
  if (s === undefined) {
    s = sortAgreements(agreements).map((a) => ({ a, from: Date.parse(a.validFrom), until: Date.parse(a.validUntil) }))
    sortedSets.set(agreements, s)
  }
  return s
}

/** A quota to count against: an agreement's, or the unconditional one (G3), with the G2 cap. */
interface Candidate { id: string; limit: number; basis: string }

/** Rules G1-G3 and 1-6: the candidates in force for the request, in order, or why none is. */
function inForceFor(request: DecisionRequest, agreements: readonly Agreement[], gov?: SharingRules): { day: string; inForce: Candidate[]; denied?: Decision } {
  if (!Number.isSafeInteger(request.count) || request.count < 1) throw new RangeError('request.count: expected a positive integer')
  const day = utcDay(request.at)
  const no = neverAnswered(gov, request.service)
  if (no !== undefined) return { day, inForce: [], denied: { permit: false, code: 'VN_ERR_POLICY_NOT_SHARED', reason: no } }
  const rules = gov?.services[request.service]
  const cap = rules !== undefined && gov !== undefined && request.mode === 'plain' && isGraded(rules) ? gov.gradedDailyQuota : Number.MAX_SAFE_INTEGER
  let best = { passed: -1, reason: `no agreement with consumer ${request.consumer}` }
  const inForce: Candidate[] = []
  for (const s of sortedSet(agreements)) {
    const e = evaluate(s, request)
    const a = s.a
    if (e.passed === 6) inForce.push({ id: a.id, limit: Math.min(a.dailyQuota, cap), basis: a.basis })
    else if (e.passed > best.passed) best = e
  }
  if (gov !== undefined && rules?.sharing === 'unconditional' && rules.negative === undefined && rules.personalInfo !== 'sensitive') {
    if (!gov.departments.includes(request.consumer)) {
      if (inForce.length === 0) best = { passed: 7, reason: `unconditional service ${request.service} is answered to department members only, not ${request.consumer}` }
    } else if (request.basis === undefined || request.basis === '') {
      if (inForce.length === 0) best = { passed: 7, reason: `unconditional service ${request.service} needs a stated legal basis` }
    } else {
      inForce.push({ id: unconditionalQuotaId(request.consumer, request.service), limit: Math.min(gov.unconditionalDailyQuota, cap), basis: request.basis })
    }
  }
  if (inForce.length === 0) return { day, inForce, denied: { permit: false, code: 'VN_ERR_POLICY_NO_AGREEMENT', reason: best.reason } }
  return { day, inForce }
}

const quotaDenial = (request: DecisionRequest, day: string, full: readonly string[]): Decision => ({
  permit: false,
  code: 'VN_ERR_POLICY_QUOTA_EXHAUSTED',
  reason: `batch of ${request.count} does not fit the daily quota on ${day} of ${full.join(', ')}`,
})

/**
 * Decides one request and, on permit, counts the batch in `quotas`. Without `gov` only the
 * agreements apply (rules 1-6, as before governance).
 * @throws RangeError when `count` is not a positive integer or `at` is not a valid instant
 */
export function decide(request: DecisionRequest, agreements: readonly Agreement[], quotas: QuotaCounter, gov?: SharingRules): Decision {
  const { day, inForce, denied } = inForceFor(request, agreements, gov)
  if (denied !== undefined) return denied
  const full: string[] = []
  for (const a of inForce) {
    const c = quotas.tryConsume(a.id, day, request.count, a.limit)
    if (c.ok) return { permit: true, agreementId: a.id, remaining: c.remaining, day, basis: a.basis }
    full.push(`${a.id} (${c.used}/${a.limit} used)`)
  }
  return quotaDenial(request, day, full)
}

/**
 * `decide` with the counts kept in a `QuotaStore` (the provider's path: the store may be shared by
 * several replicas). Same rules, same order, same reasons.
 */
export async function decideAsync(request: DecisionRequest, agreements: readonly Agreement[], quotas: QuotaStore, gov?: SharingRules): Promise<Decision> {
  const { day, inForce, denied } = inForceFor(request, agreements, gov)
  if (denied !== undefined) return denied
  const full: string[] = []
  for (const a of inForce) {
    const c = await quotas.tryConsume(a.id, day, request.count, a.limit)
    if (c.ok) return { permit: true, agreementId: a.id, remaining: c.remaining, day, basis: a.basis }
    full.push(`${a.id} (${c.used}/${a.limit} used)`)
  }
  return quotaDenial(request, day, full)
}

/**
 * The auditor's re-run of a logged decision: the same function, against the agreement set in
 * force at that log position and a counter holding the permits replayed before it.
 */
export const replayDecision: typeof decide = decide

/** The quota record a decision contributes (undefined for a denial): what the log must keep. */
export function quotaRecordOf(decision: Decision, request: Pick<DecisionRequest, 'count'>): QuotaRecord | undefined {
  return decision.permit ? { agreementId: decision.agreementId, day: decision.day, count: request.count } : undefined
}
