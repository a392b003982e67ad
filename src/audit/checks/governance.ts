/**
 * Governance records replayed (docs/GOVERNANCE.md "What the auditor checks"): the offline
 * auditor runs the node's own state machine (`GovernanceBook`, src/policy/governance.ts) over the
 * `governance` records in log order, so every application, agreement change and dispute must follow
 * from the ones before it exactly as the node would have allowed it (AUDIT_GOV_RECORD_INVALID
 * otherwise). Each record's signed message is taken from the evidence (digest checked by
 * evidence.ts), verified against the key its issuer had at its `iat` in the manifest history, and
 * compared with the record (kind, id, issuer, audience, outcome, agreement).
 *
 * The book this builds is read by applications.ts and disputes.ts (lifecycles, deadlines) and
 * agreements-in-force.ts (decisions under agreements in force).
 */
import { isDeepStrictEqual } from 'node:util'
import { VnError } from '../../errors.js'
import { verifyJwsJson } from '../../crypto/jws.js'
import type { AgreementsRecord, GovernanceRecord } from '../../log/records.js'
import { AgreementSchema, AgreementSetSchema, type Agreement } from '../../policy/agreements.js'
import { GOV_TYP, GovernanceBook, GovernanceMessageSchema, eventOf, type GovernanceEvent } from '../../policy/governance.js'
import type { Where } from '../findings.js'
import type { AuditContext } from './context.js'
import type { EvidenceCheck } from './evidence.js'

export class GovernanceCheck {
  /**
   * Agreements this log put in force other than by an approval (those of the node's config file),
   * as the agreements records list them: a change may suspend or revoke one of them.
   */
  private readonly configAgreements: Agreement[] = []
  readonly book: GovernanceBook
  /** the instant of the last leaf: what "still not answered" is judged against */
  lastAt = 0

  constructor(private readonly ctx: AuditContext, private readonly evidence: EvidenceCheck) {
    this.book = new GovernanceBook(this.configAgreements, ctx.member)
  }

  onAny(at: number): void {
    if (at > this.lastAt) this.lastAt = at
  }

  onAgreements(r: AgreementsRecord): void {
    const a = AgreementSetSchema.safeParse(r.agreements)
    if (!a.success) return
    for (const ag of a.data) {
      if (!this.book.agreements.has(ag.id) && !this.configAgreements.some((c) => c.id === ag.id)) this.configAgreements.push(ag)
    }
  }

  onGovernance(i: number, r: GovernanceRecord, chunk: number): void {
    const { findings } = this.ctx
    const w: Where = { index: i }
    const event: GovernanceEvent = { ...r }
    if (r.agreement !== undefined) {
      const a = AgreementSchema.safeParse(r.agreement)
      if (!a.success) {
        findings.add('AUDIT_GOV_RECORD_INVALID', `leaf ${i}: the agreement is not a valid agreement`, w)
        return
      }
      event.agreement = a.data
    }
    // the signed message (a correction is logged with its resolution's: the next leaf holds the JWS)
    if (r.kind !== 'correction') this.checkMessage(i, r, event, chunk, w)
    try {
      this.book.apply(event, i, r.at)
    } catch (e) {
      findings.add('AUDIT_GOV_RECORD_INVALID', `leaf ${i}: ${r.kind} ${r.id}: ${e instanceof VnError ? `${e.code} (${e.detail ?? e.title})` : String(e)}`, w)
    }
  }

  private checkMessage(i: number, r: GovernanceRecord, event: GovernanceEvent, chunk: number, w: Where): void {
    const { findings } = this.ctx
    const jws = this.evidence.evidenceFor(r.digest, `${r.kind} ${r.id}`, w, chunk)
    if (jws === undefined) return
    let claims: unknown
    try {
      const peek = JSON.parse(Buffer.from(jws.split('.')[1] ?? '', 'base64url').toString('utf8')) as { iss?: unknown; iat?: unknown }
      const iat = typeof peek.iat === 'number' ? peek.iat : r.at
      const v = verifyJwsJson(jws, this.ctx.history.messageKeyResolver(iat, typeof peek.iss === 'string' ? peek.iss : undefined), GOV_TYP)
      if (!v.kid.startsWith(`${String(peek.iss)}#`)) throw new VnError('VN_ERR_EXCH_ISSUER_MISMATCH')
      claims = v.claims
    } catch (e) {
      findings.add('AUDIT_GOV_SIGNATURE_INVALID', `leaf ${i}: ${r.kind} ${r.id}: ${e instanceof VnError ? e.code : 'malformed'}`, w)
      return
    }
    const m = GovernanceMessageSchema.safeParse(claims)
    if (!m.success) {
      findings.add('AUDIT_GOV_SIGNATURE_INVALID', `leaf ${i}: ${r.kind} ${r.id}: the signed message does not match its schema`, w)
      return
    }
    const signed = eventOf(m.data, r.digest)
    const differs = (['kind', 'id', 'iss', 'aud', 'outcome', 'xid', 'ref', 'reason'] as const).filter((k) => signed[k] !== event[k])
    if (signed.agreement !== undefined && !isDeepStrictEqual(signed.agreement, event.agreement)) differs.push('agreement' as never)
    if (differs.length > 0) findings.add('AUDIT_GOV_RECORD_INVALID', `leaf ${i}: ${r.kind} ${r.id}: the record differs from its signed message in ${differs.join(', ')}`, w)
  }
}
