/**
 * Decisions replayed (verify.ts step 5, provider side): every released answer (`response-out` ok)
 * follows a `decision` permitting that very request, whose `policy` is the agreement set in force
 * (the latest `agreements` record before it); the decision is re-run with `decide`
 * (src/policy/decide.ts) on the signed request against that set, with a QuotaCounter replayed from
 * the earlier permits, and any disagreement is reported. With `collectReplay`, every decision's
 * replay and every answer's permit are also listed (audit replay).
 */
import { formatZodIssues } from '../../config/load.js'
import type { AgreementsRecord, DecisionRecord, SharingRulesRecord, RequestInRecord, ResponseOutRecord } from '../../log/records.js'
import { SharingRulesSchema, UNCONDITIONAL_PREFIX, sharingRulesHash, sharingRulesOf, type SharingRules } from '../../policy/sharing.js'
import type { Federation } from '../../federation/federation.js'
import { AgreementSetSchema, agreementSetHash, type Agreement } from '../../policy/agreements.js'
import { decide, type DecisionRequest } from '../../policy/decide.js'
import { QuotaCounter, utcDay } from '../../policy/quota.js'
import type { RequestPayload } from '../../protocol/envelope.js'
import type { Where } from '../findings.js'
import { digestEquals, type AuditContext } from './context.js'

/** One decision re-run against the agreement set in force at its point of the log (audit replay). */
export interface DecisionReplay {
  xid: string
  index: number
  consumer: string
  service: string | null
  /** the policy hash the decision names, and the leaf of the agreements record in force (null: none) */
  policy: string
  policyIndex: number | null
  logged: { permit: boolean; agreement?: string; code?: string }
  /** null when the decision cannot be re-run (no agreements in force, or no request to re-run) */
  replayed: { permit: boolean; agreement?: string; code?: string } | null
  /** what was re-run: the signed request from the evidence, or only the request-in leaf */
  source: 'signed request' | 'request-in record' | null
  /** null when not replayed */
  agrees: boolean | null
}

/** One released response and the decision it followed (audit replay). */
export interface AnswerReplay {
  xid: string
  index: number
  status: 'ok' | 'denied'
  /** the leaf of the decision for this very request before it, or null */
  decisionIndex: number | null
  /** an `ok` answer needs a preceding permit for the same request */
  permitted: boolean
}

export class DecisionCheck {
  private policy: { hash: string; agreements: Agreement[] | undefined; index: number } | undefined
  /** the sharing rules in force (docs/GOVERNANCE.md): the latest `sharing-rules` record */
  private gov: { hash: string; rules: SharingRules | undefined; index: number } | undefined
  /** the manifest the node had loaded last (its latest key event), and whether the rules in force were compared with it */
  private manifest: { f: Federation; checked: boolean } | undefined
  private readonly quotas = new QuotaCounter()
  /** the day of the decision the counter was last pruned at (pruning once a day is enough) */
  private prunedOn = ''
  readonly replay: { decisions: DecisionReplay[]; answers: AnswerReplay[] } | undefined

  constructor(private readonly ctx: AuditContext, collectReplay: boolean) {
    this.replay = collectReplay ? { decisions: [], answers: [] } : undefined
  }

  onAgreements(i: number, r: AgreementsRecord): void {
    const { findings } = this.ctx
    const a = AgreementSetSchema.safeParse(r.agreements)
    if (!a.success) findings.add('AUDIT_LEAF_INVALID', `leaf ${i}: agreements: ${formatZodIssues(a.error)}`, { index: i })
    else if (!digestEquals(agreementSetHash(a.data), r.policy)) findings.add('AUDIT_POLICY_HASH_MISMATCH', `leaf ${i}: policy ${r.policy} is not the hash of the agreements listed`, { index: i })
    this.policy = { hash: r.policy, agreements: a.success ? a.data : undefined, index: i }
  }

  /** A key event: the node had `f` loaded from then on; the rules in force must agree with it. */
  onManifest(f: Federation | undefined): void {
    if (f !== undefined && f !== this.manifest?.f) this.manifest = { f, checked: false }
  }

  /**
   * The rules in force against the manifest loaded: each item's source and negative-list rule and
   * the departments must be the manifest's (the node logs the rules a new manifest implies in the
   * same commit as its key event, so the first sharing-rules record or decision after it can tell).
   */
  private checkAgainstManifest(i: number): void {
    const m = this.manifest
    const g = this.gov
    if (m === undefined || m.checked || g?.rules === undefined) return
    m.checked = true
    const r = g.rules
    const services = Object.entries(r.services).map(([id, s]) => ({ id, item: s.item, sharing: s.sharing, classification: s.classification, personalInfo: s.personalInfo, fields: {} }))
    const expected = sharingRulesOf(r.self, services, m.f.manifest.governance, m.f.departments().map((d) => d.id), r)
    if (sharingRulesHash(expected) !== sharingRulesHash(r)) {
      const diff = Object.keys(r.services).filter((id) => r.services[id]?.source !== expected.services[id]?.source || r.services[id]?.negative !== expected.services[id]?.negative)
      const what = diff.length > 0 ? `the source or negative-list rule of ${diff.join(', ')}` : 'the departments'
      this.ctx.findings.add('AUDIT_SHARING_RULES_INVALID', `leaf ${i}: the sharing rules of leaf ${g.index} differ from manifest seq ${m.f.seq} the node had loaded in ${what}`, { index: i })
    }
  }

  onSharingRules(i: number, r: SharingRulesRecord): void {
    const { findings } = this.ctx
    const g = SharingRulesSchema.safeParse(r.rules)
    if (!g.success) findings.add('AUDIT_SHARING_RULES_INVALID', `leaf ${i}: rules: ${formatZodIssues(g.error)}`, { index: i })
    else if (!digestEquals(sharingRulesHash(g.data), r.hash)) findings.add('AUDIT_SHARING_RULES_INVALID', `leaf ${i}: hash ${r.hash} is not the hash of the rules listed`, { index: i })
    this.gov = { hash: r.hash, rules: g.success ? g.data : undefined, index: i }
    if (this.manifest !== undefined) this.manifest.checked = false
    this.checkAgainstManifest(i)
  }

  /**
   * A decision's own fields, the policy in force, and its replay on the signed request (`signedOf`:
   * the verified request from the evidence, checked at this point of the report) or else the
   * request-in record.
   */
  onDecision(i: number, r: DecisionRecord, w: Where, signedOf: () => RequestPayload | undefined, reqIn: RequestInRecord | undefined): void {
    const { findings } = this.ctx
    const policy = this.policy
    if (r.day !== utcDay(r.at)) findings.add('AUDIT_BINDING_MISMATCH', `leaf ${i}: day ${r.day} is not the UTC day of at`, w)
    if (r.permit && r.agreement === undefined) findings.add('AUDIT_LEAF_INVALID', `leaf ${i}: a permit that names no agreement`, w)
    if (!r.permit && r.code === undefined) findings.add('AUDIT_LEAF_INVALID', `leaf ${i}: a denial without a code`, w)

    // The policy in force is the latest agreements record before this decision.
    if (policy === undefined) findings.add('AUDIT_POLICY_NOT_IN_FORCE', `leaf ${i}: no agreements record before this decision`, w)
    else if (!digestEquals(policy.hash, r.policy)) findings.add('AUDIT_POLICY_NOT_IN_FORCE', `leaf ${i}: policy ${r.policy} is not ${policy.hash} put in force at leaf ${policy.index}`, w)

    // The sharing rules in force are the latest sharing-rules record before this decision.
    this.checkAgainstManifest(i)
    const gov = this.gov
    if (gov === undefined) {
      if (r.rules !== undefined) findings.add('AUDIT_SHARING_RULES_NOT_IN_FORCE', `leaf ${i}: rules ${r.rules} named, no sharing-rules record before this decision`, w)
    } else if (r.rules === undefined) findings.add('AUDIT_SHARING_RULES_NOT_IN_FORCE', `leaf ${i}: names no sharing rules although those of leaf ${gov.index} are in force`, w)
    else if (!digestEquals(gov.hash, r.rules)) findings.add('AUDIT_SHARING_RULES_NOT_IN_FORCE', `leaf ${i}: rules ${r.rules} are not ${gov.hash} put in force at leaf ${gov.index}`, w)

    const signed = signedOf()
    const src = signed ?? reqIn
    const row: DecisionReplay | undefined = this.replay === undefined ? undefined : {
      xid: r.xid, index: i, consumer: r.iss, service: src?.svc ?? null, policy: r.policy, policyIndex: policy?.index ?? null,
      logged: r.permit ? { permit: true, ...(r.agreement === undefined ? {} : { agreement: r.agreement }) } : { permit: false, ...(r.code === undefined ? {} : { code: r.code }) },
      replayed: null, source: null, agrees: null,
    }
    if (row !== undefined) this.replay?.decisions.push(row)
    if (policy?.agreements !== undefined && src !== undefined) {
      const req: DecisionRequest = { consumer: src.iss, service: src.svc, purpose: src.purpose, basis: src.basis, mode: src.mode, count: r.count, at: r.at }
      // Only today's counts matter (and yesterday's, for entries logged out of order around
      // midnight); pruning keeps each clone small on a long log.
      if (r.day !== this.prunedOn) {
        this.quotas.prune(utcDay(Math.max(0, r.at - 86_400_000)))
        this.prunedOn = r.day
      }
      const replay = decide(req, policy.agreements, this.quotas.fork(), gov?.rules)
      const same = r.permit ? replay.permit && replay.agreementId === r.agreement : !replay.permit && replay.code === r.code
      if (row !== undefined) {
        row.replayed = replay.permit ? { permit: true, agreement: replay.agreementId } : { permit: false, code: replay.code }
        row.source = signed !== undefined ? 'signed request' : 'request-in record'
        row.agrees = same
      }
      if (!same) {
        const got = replay.permit ? `permit under ${replay.agreementId}` : `${replay.code} (${replay.reason})`
        const logged = r.permit ? `permit under ${r.agreement ?? '?'}` : (r.code ?? 'denial')
        // Answering what should have been denied is the failure an audit exists for; denying what
        // could have been permitted is over-cautious (e.g. quota counted for a failed lookup).
        findings.add('AUDIT_DECISION_REPLAY_MISMATCH', `leaf ${i}: logged ${logged}, replay gives ${got}`, w, r.permit ? 'error' : 'warning')
        // A permit that the sharing rules forbid, named as such: a G1 denial, an unconditional
        // permit (no agreement) the rules refuse, or a quota only the graded cap exhausts.
        if (r.permit && !replay.permit && gov?.rules !== undefined) {
          const byRules = replay.code === 'VN_ERR_POLICY_NOT_SHARED' ||
            r.agreement?.startsWith(UNCONDITIONAL_PREFIX) === true ||
            decide(req, policy.agreements, this.quotas.fork()).permit
          if (byRules) findings.add('AUDIT_SHARING_FORBIDDEN', `leaf ${i}: permitted, but the sharing rules of leaf ${gov.index} give ${replay.code} (${replay.reason})`, w)
        }
      }
    }
    if (r.permit && r.agreement !== undefined) this.quotas.restore([{ agreementId: r.agreement, day: r.day, count: r.count }])
  }

  /** An answer follows a permit for this very request (`d`: the exchange's decision, if any). */
  onAnswer(i: number, r: ResponseOutRecord, w: Where, d: { i: number; r: DecisionRecord } | undefined): void {
    const { findings } = this.ctx
    if (d === undefined) {
      if (r.status === 'ok') findings.add('AUDIT_NO_PERMIT', `leaf ${i}: answer released with no decision before it`, w)
      else findings.add('AUDIT_NO_DECISION', `leaf ${i}: denial logged with no decision before it`, w)
    } else if (!digestEquals(d.r.reqDigest, r.reqDigest)) {
      if (r.status === 'ok') findings.add('AUDIT_NO_PERMIT', `leaf ${i}: the decision at leaf ${d.i} is for another request`, w)
      else findings.add('AUDIT_BINDING_MISMATCH', `leaf ${i}: the decision at leaf ${d.i} is for another request`, w)
    } else if (r.status === 'ok' && !d.r.permit) findings.add('AUDIT_NO_PERMIT', `leaf ${i}: answer released although the decision at leaf ${d.i} denied`, w)
    else if (r.status === 'denied' && d.r.permit) findings.add('AUDIT_STATUS_MISMATCH', `leaf ${i}: denial logged although the decision at leaf ${d.i} permitted`, w)
    if (this.replay !== undefined) {
      const forThis = d !== undefined && digestEquals(d.r.reqDigest, r.reqDigest)
      this.replay.answers.push({ xid: r.xid, index: i, status: r.status, decisionIndex: forThis ? d.i : null, permitted: forThis && d.r.permit })
    }
  }
}
