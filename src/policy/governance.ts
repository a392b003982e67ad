/**
 * Applications (共享申请), agreement changes and disputes (数据异议, 校核纠错) as signed messages and
 * as the state they build (docs/GOVERNANCE.md, docs/PROTOCOL.md "Governance messages").
 *
 * Every step is a compact JWS (typ `vn-gov+jws`) from one member to another, logged by both as a
 * `governance` record (src/log/records.ts). `GovernanceBook` is the pure state machine over those
 * records: a node rebuilds it from its log at start-up (and a replica by polling the shared log),
 * and the offline auditor replays the very same machine over an export. The agreements in force are
 * derived from it: the config's agreements (the hand-written ones from before applications) plus the
 * approved ones, minus the suspended and revoked ones.
 *
 * Personal data: the contact of an application and the note of a dispute are free text that may
 * name a person, so they travel as SD-JWT-style disclosures beside the JWS (the payload signs their
 * digest) and are kept sealed with the evidence, like the subjects of an exchange.
 */
import { z } from 'zod'
import { VnError } from '../errors.js'
import { agreementIdSchema, digestSchema, memberIdSchema, modeSchema, serviceIdSchema, xidSchema } from '../protocol/vocabulary.js'
import { AgreementSchema, type Agreement } from './agreements.js'

export const GOV_TYP = 'vn-gov+jws'

const NO_CONTROL_RE = /^[^\p{Cc}]+$/u
const Text = (max: number) => z.string().min(1).max(max).regex(NO_CONTROL_RE, 'must not contain control characters')
const IsoDateTime = z.iso.datetime({ offset: true })
const unique = <T extends string>(xs: readonly T[]): boolean => new Set(xs).size === xs.length

/** Reason codes of a dispute (what the consumer believes is wrong with the answer). */
export const DISPUTE_REASONS = ['wrong-answer', 'outdated', 'wrong-subject', 'incomplete', 'other'] as const

const base = {
  v: z.literal(1),
  iat: z.number().int().positive(),
  iss: memberIdSchema,
  aud: memberIdSchema,
}

/** consumer → provider: please agree to this (the future agreement's terms, without its id) */
const ApplicationMessageSchema = z.strictObject({
  ...base,
  t: z.literal('application'),
  id: xidSchema,
  services: z.array(serviceIdSchema).min(1).max(64).refine(unique, 'duplicate service'),
  purposes: z.array(Text(200)).min(1).max(32).refine(unique, 'duplicate purpose'),
  basis: Text(500),
  dailyQuota: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  modes: z.array(modeSchema).min(1).refine(unique, 'duplicate mode'),
  validFrom: IsoDateTime,
  validUntil: IsoDateTime,
  /** digest of the contact's disclosure (field `contact`), which travels beside the JWS */
  contact: digestSchema,
}).refine((a) => Date.parse(a.validUntil) > Date.parse(a.validFrom), { message: 'validUntil must be after validFrom', path: ['validUntil'] })

/** provider → consumer: the application is under review (受理: the first review) */
const ReviewMessageSchema = z.strictObject({
  ...base,
  t: z.literal('application-review'),
  id: xidSchema,
  /** digest of the application JWS */
  app: digestSchema,
})

/** provider → consumer: approved (as asked), amended (approved with other terms) or refused */
const DecisionMessageSchema = z.strictObject({
  ...base,
  t: z.literal('application-decision'),
  id: xidSchema,
  app: digestSchema,
  decision: z.enum(['approved', 'amended', 'refused']),
  reason: Text(1000).optional(),
  /** the agreement put in force (approved, amended); none when refused */
  agreement: z.unknown().optional(),
}).superRefine((d, ctx) => {
  if (d.decision === 'refused') {
    if (d.agreement !== undefined) ctx.addIssue({ code: 'custom', message: 'a refusal carries no agreement', path: ['agreement'] })
    if (d.reason === undefined) ctx.addIssue({ code: 'custom', message: 'a refusal states its reason', path: ['reason'] })
  } else if (!AgreementSchema.safeParse(d.agreement).success) {
    ctx.addIssue({ code: 'custom', message: 'an approval carries a valid agreement', path: ['agreement'] })
  }
  if (d.decision === 'amended' && d.reason === undefined) ctx.addIssue({ code: 'custom', message: 'an amendment states its reason', path: ['reason'] })
})

/** provider → consumer: an agreement suspended, resumed or revoked (revoked is final) */
const AgreementChangeMessageSchema = z.strictObject({
  ...base,
  t: z.literal('agreement-change'),
  agreement: agreementIdSchema,
  action: z.enum(['suspend', 'resume', 'revoke']),
  reason: Text(1000),
})

/** consumer → provider: an objection to one answered exchange */
const DisputeMessageSchema = z.strictObject({
  ...base,
  t: z.literal('dispute'),
  id: xidSchema,
  /** the exchange disputed: its xid and the provider's log index of its request (the signed response's `log.index`) */
  xid: xidSchema,
  index: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  reason: z.enum(DISPUTE_REASONS),
  /** digest of the note's disclosure (field `note`) */
  note: digestSchema,
})

/** provider → consumer: the dispute checked, and the data corrected or the objection rejected */
const ResolutionMessageSchema = z.strictObject({
  ...base,
  t: z.literal('dispute-resolution'),
  id: xidSchema,
  /** digest of the dispute JWS */
  dispute: digestSchema,
  outcome: z.enum(['corrected', 'rejected']),
  reason: Text(1000),
})

export const GovernanceMessageSchema = z.union([
  ApplicationMessageSchema, ReviewMessageSchema, DecisionMessageSchema, AgreementChangeMessageSchema, DisputeMessageSchema, ResolutionMessageSchema,
])
export type ApplicationMessage = z.infer<typeof ApplicationMessageSchema>
export type ReviewMessage = z.infer<typeof ReviewMessageSchema>
export type DecisionMessage = z.infer<typeof DecisionMessageSchema>
export type AgreementChangeMessage = z.infer<typeof AgreementChangeMessageSchema>
export type DisputeMessage = z.infer<typeof DisputeMessageSchema>
export type ResolutionMessage = z.infer<typeof ResolutionMessageSchema>
export type GovernanceMessage = z.infer<typeof GovernanceMessageSchema>

/** The signed message's kinds, plus `correction`: the provider's logged event that corrects the data a dispute names. */
export const GOVERNANCE_KINDS = ['application', 'application-review', 'application-decision', 'agreement-change', 'dispute', 'correction', 'dispute-resolution'] as const
export type GovernanceKind = (typeof GOVERNANCE_KINDS)[number]

/**
 * What a `governance` log record holds besides `v`, `at` and `t` (PII-free: ids, digests, states,
 * instants and, for an approval, the agreement's terms, which every `agreements` record lists too).
 */
export interface GovernanceEvent {
  kind: GovernanceKind
  /** application or dispute id; for `agreement-change`, the agreement id */
  id: string
  /** who signed the message, and to whom */
  iss: string
  aud: string
  /** SHA-256 (base64url) of the message JWS, kept as evidence with the record */
  digest: string
  /** application: the services asked for */
  services?: string[]
  /** application: when the first review (reviewDue) and the answer (due) are due, ms; dispute: its answer (due) */
  reviewDue?: number
  due?: number
  /** application-decision: approved | amended | refused; agreement-change: suspend | resume | revoke; dispute-resolution: corrected | rejected */
  outcome?: string
  /** application-decision (approved, amended): the agreement put in force */
  agreement?: Agreement
  /** dispute: the disputed exchange; correction: the exchange corrected */
  xid?: string
  ref?: number
  reason?: string
}

export type ApplicationState = 'filed' | 'under-review' | 'approved' | 'amended' | 'refused'
export type DisputeState = 'filed' | 'corrected' | 'rejected'
export type AgreementState = 'active' | 'suspended' | 'revoked'

export interface ApplicationEntry {
  id: string
  consumer: string
  provider: string
  services: string[]
  filedAt: number
  /** log index of the application record, and its JWS digest */
  index: number
  digest: string
  reviewDue: number | undefined
  due: number | undefined
  state: ApplicationState
  reviewedAt?: number
  decidedAt?: number
  agreement?: string
  /** log indices of every record about it, in order */
  events: number[]
}

export interface DisputeEntry {
  id: string
  consumer: string
  provider: string
  xid: string
  ref: number
  reason: string
  filedAt: number
  index: number
  digest: string
  due: number | undefined
  state: DisputeState
  resolvedAt?: number
  correctionIndex?: number
  events: number[]
}

export interface AgreementEntry {
  agreement: Agreement
  /** who provides under it and who consumes */
  provider: string
  source: 'config' | 'application'
  application?: string
  state: AgreementState
  /** log index of the approval (or of the first change, for a config agreement) */
  since: number
}

const invalid = (detail: string): VnError => new VnError('VN_ERR_GOV_INVALID', detail)

/**
 * The state of applications, agreements and disputes, built by applying `governance` records in
 * log order. `check` says whether a record may be applied (the node asks before it logs, so refused
 * input writes nothing); `apply` applies one (the auditor applies and reports what `check` refuses).
 */
export class GovernanceBook {
  readonly applications = new Map<string, ApplicationEntry>()
  readonly disputes = new Map<string, DisputeEntry>()
  /** agreements known from applications, and config agreements once a change named them */
  readonly agreements = new Map<string, AgreementEntry>()
  /** `consumer|xid` of every disputed exchange */
  private readonly disputed = new Set<string>()
  /** the JWS digest of every event applied → its log index (a message received twice is answered, not applied twice) */
  readonly digests = new Map<string, number>()

  /** @param config the agreements of the provider's config file (for suspensions and id clashes) */
  constructor(private readonly config: readonly Agreement[] = [], private readonly configProvider?: string) {}

  /** Why `e` cannot be applied now (a VnError), or undefined. */
  check(e: GovernanceEvent): VnError | undefined {
    switch (e.kind) {
      case 'application': {
        if (this.applications.has(e.id)) return new VnError('VN_ERR_GOV_DUPLICATE', `application ${e.id} exists already`)
        return undefined
      }
      case 'application-review':
      case 'application-decision': {
        const a = this.applications.get(e.id)
        if (a === undefined) return new VnError('VN_ERR_GOV_UNKNOWN', `no application ${e.id}`)
        if (a.provider !== e.iss || a.consumer !== e.aud) return new VnError('VN_ERR_GOV_WRONG_MEMBER', `application ${e.id} is from ${a.consumer} to ${a.provider}`)
        if (a.state !== 'filed' && a.state !== 'under-review') return new VnError('VN_ERR_GOV_STATE', `application ${e.id} is ${a.state} already`)
        if (e.kind === 'application-review' && a.state !== 'filed') return new VnError('VN_ERR_GOV_STATE', `application ${e.id} is under review already`)
        if (e.kind === 'application-decision' && e.outcome !== 'refused') {
          if (e.agreement === undefined) return invalid('an approval carries an agreement')
          if (e.agreement.consumer !== a.consumer) return new VnError('VN_ERR_GOV_WRONG_MEMBER', `the agreement's consumer is not ${a.consumer}`)
          if (this.agreements.has(e.agreement.id) || this.config.some((c) => c.id === e.agreement?.id)) {
            return new VnError('VN_ERR_GOV_AGREEMENT_CONFLICT', `agreement id ${e.agreement.id} is taken`)
          }
        }
        return undefined
      }
      case 'agreement-change': {
        const cur = this.agreementEntry(e.id)
        if (cur === undefined) return new VnError('VN_ERR_GOV_UNKNOWN', `no agreement ${e.id}`)
        if (cur.provider !== e.iss || cur.agreement.consumer !== e.aud) return new VnError('VN_ERR_GOV_WRONG_MEMBER', `agreement ${e.id} is between ${cur.provider} and ${cur.agreement.consumer}`)
        const next = e.outcome === 'suspend' ? 'suspended' : e.outcome === 'resume' ? 'active' : 'revoked'
        if (cur.state === 'revoked') return new VnError('VN_ERR_GOV_STATE', `agreement ${e.id} is revoked`)
        if (cur.state === next) return new VnError('VN_ERR_GOV_STATE', `agreement ${e.id} is ${cur.state} already`)
        if (e.outcome === 'resume' && cur.state !== 'suspended') return new VnError('VN_ERR_GOV_STATE', `agreement ${e.id} is not suspended`)
        return undefined
      }
      case 'dispute': {
        if (this.disputes.has(e.id)) return new VnError('VN_ERR_GOV_DUPLICATE', `dispute ${e.id} exists already`)
        if (e.xid !== undefined && this.disputed.has(`${e.iss}|${e.xid}`)) return new VnError('VN_ERR_GOV_DUPLICATE', `exchange ${e.xid} is disputed already`)
        return undefined
      }
      case 'correction':
      case 'dispute-resolution': {
        const d = this.disputes.get(e.id)
        if (d === undefined) return new VnError('VN_ERR_GOV_UNKNOWN', `no dispute ${e.id}`)
        if (d.provider !== e.iss || d.consumer !== e.aud) return new VnError('VN_ERR_GOV_WRONG_MEMBER', `dispute ${e.id} is from ${d.consumer} to ${d.provider}`)
        if (d.state !== 'filed') return new VnError('VN_ERR_GOV_STATE', `dispute ${e.id} is ${d.state} already`)
        if (e.kind === 'correction' && d.correctionIndex !== undefined) return new VnError('VN_ERR_GOV_STATE', `dispute ${e.id} is corrected already`)
        return undefined
      }
    }
  }

  /** Applies `e` logged at `index`, instant `at`. @throws the VnError `check` gives */
  apply(e: GovernanceEvent, index: number, at: number): void {
    const refusal = this.check(e)
    if (refusal !== undefined) throw refusal
    this.digests.set(e.digest, index)
    switch (e.kind) {
      case 'application':
        this.applications.set(e.id, {
          id: e.id, consumer: e.iss, provider: e.aud, services: e.services ?? [], filedAt: at, index, digest: e.digest,
          reviewDue: e.reviewDue, due: e.due, state: 'filed', events: [index],
        })
        return
      case 'application-review': {
        const a = this.applications.get(e.id) as ApplicationEntry
        a.state = 'under-review'
        a.reviewedAt = at
        a.events.push(index)
        return
      }
      case 'application-decision': {
        const a = this.applications.get(e.id) as ApplicationEntry
        a.state = e.outcome === 'refused' ? 'refused' : e.outcome === 'amended' ? 'amended' : 'approved'
        a.decidedAt = at
        a.reviewedAt ??= at
        a.events.push(index)
        if (e.agreement !== undefined && a.state !== 'refused') {
          a.agreement = e.agreement.id
          this.agreements.set(e.agreement.id, { agreement: e.agreement, provider: e.iss, source: 'application', application: e.id, state: 'active', since: index })
        }
        return
      }
      case 'agreement-change': {
        const cur = this.agreementEntry(e.id) as AgreementEntry
        const state: AgreementState = e.outcome === 'suspend' ? 'suspended' : e.outcome === 'resume' ? 'active' : 'revoked'
        this.agreements.set(e.id, { ...cur, state })
        return
      }
      case 'dispute':
        this.disputes.set(e.id, {
          id: e.id, consumer: e.iss, provider: e.aud, xid: e.xid ?? '', ref: e.ref ?? -1, reason: e.reason ?? 'other', filedAt: at, index,
          digest: e.digest, due: e.due, state: 'filed', events: [index],
        })
        if (e.xid !== undefined) this.disputed.add(`${e.iss}|${e.xid}`)
        return
      case 'correction': {
        const d = this.disputes.get(e.id) as DisputeEntry
        d.correctionIndex = index
        d.events.push(index)
        return
      }
      case 'dispute-resolution': {
        const d = this.disputes.get(e.id) as DisputeEntry
        d.state = e.outcome === 'corrected' ? 'corrected' : 'rejected'
        d.resolvedAt = at
        d.events.push(index)
        return
      }
    }
  }

  /** A copy of this book's state, to try steps on. */
  clone(): GovernanceBook {
    const c = new GovernanceBook(this.config, this.configProvider)
    for (const [k, v] of this.applications) c.applications.set(k, { ...v, events: [...v.events] })
    for (const [k, v] of this.disputes) c.disputes.set(k, { ...v, events: [...v.events] })
    for (const [k, v] of this.agreements) c.agreements.set(k, { ...v })
    for (const x of this.disputed) c.disputed.add(x)
    for (const [k, v] of this.digests) c.digests.set(k, v)
    return c
  }

  /** An agreement this book can change: one approved through an application, or one of the config. */
  agreementEntry(id: string): AgreementEntry | undefined {
    const known = this.agreements.get(id)
    if (known !== undefined) return known
    const c = this.config.find((a) => a.id === id)
    if (c === undefined || this.configProvider === undefined) return undefined
    return { agreement: c, provider: this.configProvider, source: 'config', state: 'active', since: -1 }
  }

  /**
   * The agreements in force for provider `self`: the config's (unless suspended or revoked) and the
   * approved ones (unless suspended or revoked), sorted by id. Validity windows are decide()'s.
   */
  activeAgreements(self: string): Agreement[] {
    const out: Agreement[] = []
    for (const c of this.config) {
      const e = this.agreements.get(c.id)
      if (e === undefined || e.state === 'active') out.push(c)
    }
    for (const e of this.agreements.values()) {
      if (e.source === 'application' && e.provider === self && e.state === 'active') out.push(e.agreement)
    }
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  }

  /** Applications of provider `self` not decided yet, and those past a deadline at `now`. */
  overdue(now: number, self: string): { review: ApplicationEntry[]; answer: ApplicationEntry[]; disputes: DisputeEntry[] } {
    const review: ApplicationEntry[] = []
    const answer: ApplicationEntry[] = []
    for (const a of this.applications.values()) {
      if (a.provider !== self) continue
      if (a.state === 'filed' && a.reviewDue !== undefined && now > a.reviewDue) review.push(a)
      if ((a.state === 'filed' || a.state === 'under-review') && a.due !== undefined && now > a.due) answer.push(a)
    }
    const disputes = [...this.disputes.values()].filter((d) => d.provider === self && d.state === 'filed' && d.due !== undefined && now > d.due)
    return { review, answer, disputes }
  }
}

/** The GovernanceEvent a verified message makes (`digest`: of its JWS). */
export function eventOf(m: GovernanceMessage, digest: string): GovernanceEvent {
  const b = { iss: m.iss, aud: m.aud, digest }
  switch (m.t) {
    case 'application': return { ...b, kind: 'application', id: m.id, services: [...m.services] }
    case 'application-review': return { ...b, kind: 'application-review', id: m.id }
    case 'application-decision': return {
      ...b, kind: 'application-decision', id: m.id, outcome: m.decision,
      ...(m.agreement === undefined ? {} : { agreement: AgreementSchema.parse(m.agreement) }),
    }
    case 'agreement-change': return { ...b, kind: 'agreement-change', id: m.agreement, outcome: m.action }
    case 'dispute': return { ...b, kind: 'dispute', id: m.id, xid: m.xid, ref: m.index, reason: m.reason }
    case 'dispute-resolution': return { ...b, kind: 'dispute-resolution', id: m.id, outcome: m.outcome }
  }
}

/** The agreement an application asks for, with the id the provider gives it. */
export function agreementFromApplication(a: ApplicationMessage, id: string): Agreement {
  return AgreementSchema.parse({
    id, consumer: a.iss, services: a.services, purposes: a.purposes, basis: a.basis,
    validFrom: a.validFrom, validUntil: a.validUntil, dailyQuota: a.dailyQuota, modes: a.modes,
  })
}
