/**
 * Every permit names an agreement in force at that point of the log (docs/GOVERNANCE.md "What the
 * auditor checks"): one approved through an application before the decision and not suspended or
 * revoked since, or one of the node's config agreements (the hand-written ones, listed by the
 * agreements record a node writes when it starts) not suspended or revoked since. The decision
 * replay (decisions.ts) re-runs the decision against the `agreements` record in force; this check
 * ties that record to the signed governance steps, so an agreement slipped into the set without an
 * approval, or kept in use after a suspension or revocation, is caught.
 */
import type { DecisionRecord } from '../../log/records.js'
import type { GovernanceBook } from '../../policy/governance.js'
import { UNCONDITIONAL_PREFIX } from '../../policy/sharing.js'
import type { Where } from '../findings.js'
import type { AuditContext } from './context.js'

export class AgreementsInForceCheck {
  /** the config's agreement ids, from the last start-up's agreements record */
  private config = new Set<string>()
  private startup = true

  constructor(private readonly ctx: AuditContext, private readonly book: GovernanceBook) {}

  /** a `node-started` key event: the next agreements record is the config's (plus the approved ones) */
  onNodeStarted(): void {
    this.startup = true
  }

  onAgreements(ids: readonly string[]): void {
    if (!this.startup) return
    this.startup = false
    this.config = new Set(ids.filter((id) => this.book.agreements.get(id)?.source !== 'application'))
  }

  onDecision(i: number, r: DecisionRecord, w: Where): void {
    if (!r.permit || r.agreement === undefined) return
    // An unconditional item answered without an agreement is counted under a quota id of its own;
    // the sharing rules check (decisions.ts) judges those permits.
    if (r.agreement.startsWith(UNCONDITIONAL_PREFIX)) return
    const e = this.book.agreements.get(r.agreement)
    if (e !== undefined) {
      if (e.state !== 'active') this.ctx.findings.add('AUDIT_AGREEMENT_NOT_IN_FORCE', `leaf ${i}: permit under agreement ${r.agreement}, ${e.state} at that point`, w)
    } else if (!this.config.has(r.agreement)) {
      this.ctx.findings.add('AUDIT_AGREEMENT_NOT_IN_FORCE', `leaf ${i}: permit under agreement ${r.agreement}, neither approved before nor in the config the node started with`, w)
    }
  }
}
