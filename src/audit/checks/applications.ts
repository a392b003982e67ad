/**
 * Applications listed with their lifecycle, and flagged when answered late or never (docs/GOVERNANCE.md
 * "Applications"). Runs after the last leaf over the book governance.ts replayed: the first review
 * (a review, or the decision itself) is due by `reviewDue`, the decision by `due`, both as the
 * provider computed and logged them in working days when the application arrived. An item still
 * open is judged against the instant of the export's last leaf.
 */
import type { ApplicationEntry, GovernanceBook } from '../../policy/governance.js'
import type { AuditContext } from './context.js'

export interface ApplicationReport {
  id: string
  consumer: string
  provider: string
  services: string[]
  state: string
  filedAt: number
  reviewDue: number | null
  due: number | null
  reviewedAt: number | null
  decidedAt: number | null
  agreement: string | null
  /** leaves of the records about it, in order */
  indices: number[]
  late: boolean
  unanswered: boolean
}

const iso = (ms: number): string => new Date(ms).toISOString()

export function checkApplications(ctx: AuditContext, book: GovernanceBook, asOf: number): ApplicationReport[] {
  const out: ApplicationReport[] = []
  for (const a of book.applications.values()) {
    const w = { index: a.index }
    let late = false
    let unanswered = false
    const open = a.state === 'filed' || a.state === 'under-review'
    if (a.reviewDue !== undefined) {
      if (a.reviewedAt !== undefined && a.reviewedAt > a.reviewDue) {
        late = true
        ctx.findings.add('AUDIT_APPLICATION_LATE', `application ${a.id} (${a.consumer} → ${a.provider}): first reviewed at ${iso(a.reviewedAt)}, due ${iso(a.reviewDue)}`, w)
      } else if (a.reviewedAt === undefined && asOf > a.reviewDue) {
        unanswered = true
        ctx.findings.add('AUDIT_APPLICATION_UNANSWERED', `application ${a.id} (${a.consumer} → ${a.provider}): not reviewed by ${iso(a.reviewDue)}`, w)
      }
    }
    if (a.due !== undefined) {
      if (a.decidedAt !== undefined && a.decidedAt > a.due) {
        late = true
        ctx.findings.add('AUDIT_APPLICATION_LATE', `application ${a.id} (${a.consumer} → ${a.provider}): answered at ${iso(a.decidedAt)}, due ${iso(a.due)}`, w)
      } else if (open && asOf > a.due) {
        unanswered = true
        ctx.findings.add('AUDIT_APPLICATION_UNANSWERED', `application ${a.id} (${a.consumer} → ${a.provider}): not answered by ${iso(a.due)}`, w)
      }
    }
    out.push(reportOf(a, late, unanswered))
  }
  return out
}

function reportOf(a: ApplicationEntry, late: boolean, unanswered: boolean): ApplicationReport {
  return {
    id: a.id, consumer: a.consumer, provider: a.provider, services: [...a.services], state: a.state, filedAt: a.filedAt,
    reviewDue: a.reviewDue ?? null, due: a.due ?? null, reviewedAt: a.reviewedAt ?? null, decidedAt: a.decidedAt ?? null,
    agreement: a.agreement ?? null, indices: [...a.events], late, unanswered,
  }
}
