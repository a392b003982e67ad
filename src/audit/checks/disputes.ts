/**
 * Disputes listed with their lifecycle, and flagged when resolved late or never (docs/GOVERNANCE.md
 * "Disputes"). Runs after the last leaf over the book governance.ts replayed; the deadline is the
 * one the provider computed in working days and logged when the dispute arrived. A correction is
 * a record of its own naming the dispute, right before the resolution.
 */
import type { DisputeEntry, GovernanceBook } from '../../policy/governance.js'
import type { AuditContext } from './context.js'
import { XID_RE } from '../../protocol/vocabulary.js'

/** One dispute as the report lists it: the book's entry (the exchange disputed is `xid`, and `ref` the provider's log index of its request), with absent times as null. */
export interface DisputeReport extends Pick<DisputeEntry, 'id' | 'consumer' | 'provider' | 'xid' | 'ref' | 'reason' | 'state' | 'filedAt'> {
  due: number | null
  resolvedAt: number | null
  correctionIndex: number | null
  indices: number[]
  late: boolean
  unanswered: boolean
}

const iso = (ms: number): string => new Date(ms).toISOString()

export function checkDisputes(ctx: AuditContext, book: GovernanceBook, asOf: number): DisputeReport[] {
  const out: DisputeReport[] = []
  for (const d of book.disputes.values()) {
    const w = { index: d.index, ...(XID_RE.test(d.xid) ? { xid: d.xid } : {}) }
    let late = false
    let unanswered = false
    if (d.due !== undefined) {
      if (d.resolvedAt !== undefined && d.resolvedAt > d.due) {
        late = true
        ctx.findings.add('AUDIT_DISPUTE_LATE', `dispute ${d.id} (${d.consumer} → ${d.provider}): resolved at ${iso(d.resolvedAt)}, due ${iso(d.due)}`, w)
      } else if (d.resolvedAt === undefined && asOf > d.due) {
        unanswered = true
        ctx.findings.add('AUDIT_DISPUTE_UNANSWERED', `dispute ${d.id} (${d.consumer} → ${d.provider}): not resolved by ${iso(d.due)}`, w)
      }
    }
    out.push({
      id: d.id, consumer: d.consumer, provider: d.provider, xid: d.xid, ref: d.ref, reason: d.reason, state: d.state, filedAt: d.filedAt,
      due: d.due ?? null, resolvedAt: d.resolvedAt ?? null, correctionIndex: d.correctionIndex ?? null, indices: [...d.events], late, unanswered,
    })
  }
  return out
}
