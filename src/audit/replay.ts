/**
 * `verinode audit replay <export-dir>`: re-runs every logged decision against the agreement set in
 * force at that point of the log, and shows every answer that was not preceded by a permit
 * (docs/DESIGN.md "Authorization"; issue 5 §4).
 *
 * The replay is the one `audit verify` performs (verify.ts step 5: `decide` from src/policy on the
 * signed request, or the request-in leaf when the evidence lacks it, with a quota counter rebuilt
 * from the earlier permits), so the two commands can never disagree. This command lists it per
 * decision and per answer, and keeps only the findings about authorization and about whether the
 * log itself can be trusted (manifests, checkpoints, roots, unreadable leaves): signature, evidence
 * and privacy findings are `audit verify`'s.
 */
import type { AuditCode, AuditFinding } from './findings.js'
import { auditExport, type AnswerReplay, type AuditOptions, type DecisionReplay } from './verify.js'

/** The findings `audit replay` reports (and fails on when they are errors). */
const REPLAY_CODES: ReadonlySet<AuditCode> = new Set<AuditCode>([
  // authorization
  'AUDIT_DECISION_REPLAY_MISMATCH',
  'AUDIT_NO_PERMIT',
  'AUDIT_NO_DECISION',
  'AUDIT_STATUS_MISMATCH',
  'AUDIT_POLICY_NOT_IN_FORCE',
  'AUDIT_POLICY_HASH_MISMATCH',
  'AUDIT_ORPHAN_ENTRY',
  'AUDIT_AGREEMENT_NOT_IN_FORCE',
  'AUDIT_GOV_RECORD_INVALID',
  // can the log be trusted at all
  'AUDIT_NO_MANIFEST',
  'AUDIT_MEMBER_UNKNOWN',
  'AUDIT_NO_CHECKPOINT',
  'AUDIT_CHECKPOINT_SIGNATURE',
  'AUDIT_CHECKPOINT_BEYOND_LOG',
  'AUDIT_ROOT_MISMATCH',
  'AUDIT_NOT_CHECKPOINTED',
  'AUDIT_LEAF_INVALID',
])

export interface ReplayReport {
  v: 1
  command: 'audit replay'
  ok: boolean
  dir: string
  member: string
  origin: string
  trustAnchor: { kid: string; source: 'given' | 'export' }
  leaves: number
  /** how many agreement sets (`agreements` records) the decisions were made under */
  policies: number
  decisions: DecisionReplay[]
  answers: AnswerReplay[]
  counts: { decisions: number; replayed: number; disagreements: number; answers: number; unpermitted: number; errors: number; warnings: number; infos: number }
  findings: AuditFinding[]
}

/** @throws VN_ERR_AUDIT_EXPORT_INVALID, VN_ERR_KEY_FILE */
export async function replayExport(dir: string, opts: AuditOptions = {}): Promise<ReplayReport> {
  const r = await auditExport(dir, { ...opts, collectReplay: true })
  const decisions = r.replay?.decisions ?? []
  const answers = r.replay?.answers ?? []
  const findings = r.findings.filter((f) => REPLAY_CODES.has(f.code))
  const count = (s: AuditFinding['severity']): number => findings.filter((f) => f.severity === s).length
  const policies = new Set(decisions.flatMap((d) => (d.policyIndex === null ? [] : [d.policyIndex]))).size
  return {
    v: 1,
    command: 'audit replay',
    ok: count('error') === 0,
    dir: r.dir,
    member: r.member,
    origin: r.origin,
    trustAnchor: r.trustAnchor,
    leaves: r.leaves,
    policies,
    decisions,
    answers,
    counts: {
      decisions: decisions.length,
      replayed: decisions.filter((d) => d.replayed !== null).length,
      disagreements: decisions.filter((d) => d.agrees === false).length,
      answers: answers.length,
      unpermitted: answers.filter((a) => a.status === 'ok' && !a.permitted).length,
      errors: count('error'),
      warnings: count('warning'),
      infos: count('info'),
    },
    findings,
  }
}
