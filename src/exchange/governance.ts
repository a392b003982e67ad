/**
 * Applications, agreement changes and disputes between two nodes (docs/GOVERNANCE.md,
 * docs/PROTOCOL.md "Governance messages"): the consumer's and the provider's steps.
 *
 * Every step is a compact JWS (typ `vn-gov+jws`, src/policy/governance.ts) signed by the member
 * who takes it, sent member-to-member over the peer client (`POST /v1/governance`) and logged by
 * both nodes as a `governance` record with the JWS as evidence; an application's contact and a
 * dispute's note travel as disclosures beside the JWS and are kept sealed. The receiver checks
 * everything before it writes anything: signature under the key the manifest lists for the issuer,
 * audience, the issuer's role in the application or dispute, the state it is in, the disputed
 * exchange in its own log. Refused input is a coded error and leaves no trace in the log.
 *
 * The state (`GovernanceBook`) is derived from the log alone: `open` replays every governance record
 * at start-up, and `refresh` reads the records appended since (replicas sharing a PostgreSQL log
 * learn of another replica's decisions that way, on the housekeeping timer). The provider's
 * agreements in force are the book's `activeAgreements`: whenever a step changes them, the new
 * set is logged as an `agreements` record in the same commit as the step, so decide() sees it at
 * once (no restart) and the auditor replays decisions against it.
 *
 * Decisions are pushed to the consumer once logged; a consumer whose node was down asks for them
 * again (`status`, a signed GET of `/v1/governance/<kind>/<id>`), and takes in what it had missed.
 */
import type { Logger } from 'pino'
import { z } from 'zod'
import { VnError, isVnError, ERRORS, type ErrorCode } from '../errors.js'
import { signJwsJson, verifyJwsJson } from '../crypto/jws.js'
import type { Federation } from '../federation/federation.js'
import type { EvidenceRow } from '../log/evidence.js'
import type { NodeLog } from '../log/node-log.js'
import type { GovernanceRecord, LogRecord } from '../log/records.js'
import type { EvidenceStore } from '../log/storage.js'
import type { PeerClient } from '../peers/client.js'
import { signGetRequest } from '../peers/member-auth.js'
import { AgreementSchema, agreementSetHash, type Agreement } from '../policy/agreements.js'
import {
  GOV_TYP, GovernanceBook, GovernanceMessageSchema, agreementFromApplication, eventOf, DISPUTE_REASONS,
  type ApplicationEntry, type ApplicationMessage, type DisputeEntry, type GovernanceEvent, type GovernanceMessage,
} from '../policy/governance.js'
import { addWorkingDays, workingDaysLeft, type WorkingDays } from '../policy/working-days.js'
import { makeDisclosure, openDisclosure } from '../protocol/disclosures.js'
import { jwsDigest } from '../protocol/jws-digest.js'
import { agreementIdSchema, memberIdSchema, modeSchema, serviceIdSchema, xidSchema } from '../protocol/vocabulary.js'
import { newXid } from './consumer.js'
import type { Signer } from './signer.js'

export interface GovernanceDeadlines {
  reviewDays: number
  answerDays: number
  disputeDays: number
  calendar: WorkingDays
}

/** What the log offers governance besides appends: reads of leaves (start-up, polling, disputed exchanges). */
export interface GovernanceLogReader {
  size(): Promise<number>
  entries(start: number, end: number): Promise<Uint8Array[]>
}

export interface GovernanceDeps {
  self: string
  signer: () => Signer
  federation: () => Federation
  client: PeerClient
  log: NodeLog
  reader: GovernanceLogReader
  evidence: EvidenceStore
  /** the services this node offers (an application names only those) */
  services: readonly string[]
  /** the agreements of the config file (before applications; they keep working) */
  config: readonly Agreement[]
  /** why a service can never be answered under the sharing rules in force (policy/sharing.ts `neverAnswered`), or undefined */
  neverAnswered?: (service: string) => string | undefined
  deadlines: GovernanceDeadlines
  /** how long the sealed contact or note is kept, ms */
  retentionMs: number
  skewMs: number
  now: () => number
  logger: Logger
}

const GovernanceBodySchema = z.strictObject({
  jws: z.string().min(1).max(64 * 1024),
  disclosures: z.array(z.string().min(1).max(4096)).max(1).optional(),
})

const Text = (max: number) => z.string().min(1).max(max).regex(/^[^\p{Cc}]+$/u, 'must not contain control characters')

/** The local API's application (`POST /local/v1/applications`). */
export const LocalApplicationSchema = z.strictObject({
  provider: memberIdSchema,
  services: z.array(serviceIdSchema).min(1).max(64),
  purposes: z.array(Text(200)).min(1).max(32),
  basis: Text(500),
  dailyQuota: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  modes: z.array(modeSchema).min(1).default(['plain']),
  validFrom: z.iso.datetime({ offset: true }).optional(),
  validUntil: z.iso.datetime({ offset: true }),
  /** who to call about it (a name, a phone number): sealed, never logged in the clear */
  contact: Text(500),
})
export type LocalApplication = z.input<typeof LocalApplicationSchema>

/** approve | amend | refuse (`POST /local/v1/applications/:id/<action>`). */
export const LocalDecisionSchema = z.strictObject({
  reason: Text(1000).optional(),
  /** the id the agreement gets (default `apl-<application id>`) */
  agreementId: agreementIdSchema.optional(),
  /** amend: the terms that differ from the application */
  terms: z.strictObject({
    services: z.array(serviceIdSchema).min(1).optional(),
    purposes: z.array(Text(200)).min(1).optional(),
    basis: Text(500).optional(),
    dailyQuota: z.number().int().min(1).optional(),
    modes: z.array(modeSchema).min(1).optional(),
    validFrom: z.iso.datetime({ offset: true }).optional(),
    validUntil: z.iso.datetime({ offset: true }).optional(),
  }).optional(),
})
export type LocalDecision = z.infer<typeof LocalDecisionSchema>

export const LocalReasonSchema = z.strictObject({ reason: Text(1000) })

/** The local API's dispute (`POST /local/v1/disputes`). */
export const LocalDisputeSchema = z.strictObject({
  provider: memberIdSchema,
  xid: xidSchema,
  /** the provider's log index of the exchange (its signed response's `log.index`, `providerLogIndex` of the verify answer) */
  index: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  reason: z.enum(DISPUTE_REASONS),
  /** what is wrong, in the consumer's words: sealed, never logged in the clear */
  note: Text(2000),
})
export type LocalDispute = z.infer<typeof LocalDisputeSchema>

export interface Delivery {
  /** whether the counterpart took the message in now (else it learns of it when it asks: `status`) */
  delivered: boolean
  code?: string
}

const GOVERNANCE_TAG = Buffer.from('"t":"governance"')

const parseJson = (leaf: Uint8Array): unknown => {
  try {
    return JSON.parse(Buffer.from(leaf).toString('utf8'))
  } catch {
    return undefined
  }
}

const peerErrorOf = (member: string, status: number, json: unknown): VnError => {
  const b = (json !== null && typeof json === 'object' ? json : {}) as Record<string, unknown>
  const code = typeof b.code === 'string' && Object.hasOwn(ERRORS, b.code) ? (b.code as ErrorCode) : undefined
  return new VnError('VN_ERR_PEER_ERROR', `${member} answered ${status}${code === undefined ? '' : ` ${code}`}`, { peer: { member, status, ...(code === undefined ? {} : { code }) } })
}

export class Governance {
  readonly book: GovernanceBook
  private active: Agreement[]
  private policyHash: string
  /** the next leaf `refresh` reads */
  private scanned = 0
  /** indices this process applied itself (refresh skips them) */
  private readonly own = new Set<number>()
  private queue: Promise<unknown> = Promise.resolve()

  private constructor(private readonly d: GovernanceDeps) {
    this.book = new GovernanceBook(d.config, d.self)
    this.active = this.book.activeAgreements(d.self)
    this.policyHash = agreementSetHash(this.active)
  }

  /** Rebuilds the book from every governance record of the log. */
  static async open(d: GovernanceDeps): Promise<Governance> {
    const g = new Governance(d)
    await g.refresh()
    return g
  }

  /** The provider's agreements in force (config and approved, minus suspended and revoked). */
  agreements(): readonly Agreement[] {
    return this.active
  }

  policy(): string {
    return this.policyHash
  }

  /** Reads the leaves appended since the last call and applies their governance records (another replica's steps). */
  async refresh(): Promise<void> {
    await this.serial(async () => {
      const size = await this.d.reader.size()
      for (let start = this.scanned; start < size; start += 1024) {
        const end = Math.min(size, start + 1024)
        const leaves = await this.d.reader.entries(start, end)
        leaves.forEach((leaf, k) => {
          const i = start + k
          if (this.own.delete(i)) return
          // canonical JSON writes `"t":"governance"` as is: most leaves are skipped unparsed
          if (Buffer.from(leaf.buffer, leaf.byteOffset, leaf.byteLength).indexOf(GOVERNANCE_TAG) < 0) return
          const r = parseJson(leaf) as { t?: unknown; at?: unknown } | undefined
          if (r?.t !== 'governance') return
          const rec = r as GovernanceRecord
          try {
            this.book.apply(rec, i, rec.at)
          } catch (e) {
            this.d.logger.warn({ index: i, code: isVnError(e) ? e.code : undefined }, 'governance record in the log not applicable; skipped')
          }
        })
        this.scanned = end
      }
      this.recompute()
    })
  }

  private recompute(): boolean {
    const next = this.book.activeAgreements(this.d.self)
    const hash = agreementSetHash(next)
    if (hash === this.policyHash) return false
    this.active = next
    this.policyHash = hash
    return true
  }

  /** Runs `fn` after every earlier step: check-then-append-then-apply is one step. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn)
    this.queue = run.catch(() => undefined)
    return run
  }

  private sign(payload: GovernanceMessage): string {
    const s = this.d.signer()
    return signJwsJson(payload, s.privateKey, s.kid, GOV_TYP)
  }

  /**
   * Logs `event` (checked against the book first: a refusal writes nothing) with its JWS and
   * sealed disclosure; when the provider's agreements in force change, the new set is logged in
   * the same commit. Then applies it. Call inside `serial`.
   */
  private async commit(events: GovernanceEvent[], jws: string, disclosure?: { id: string; disclosures: string[] }): Promise<number[]> {
    const now = this.d.now()
    // each event checked against the book as it will be after the ones before it; then the set in force after them all
    const after = this.book.clone()
    for (const [k, e] of events.entries()) {
      const refusal = after.check(e)
      if (refusal !== undefined) throw refusal
      after.apply(e, -1 - k, now)
    }
    const last = events.length - 1
    const records: LogRecord[] = events.map((e) => ({ v: 1, at: now, t: 'governance', ...e }))
    const evidence: EvidenceRow[] = [{ kind: 'jws', record: last, digest: jwsDigest(jws), jws }]
    if (disclosure !== undefined) evidence.push({ kind: 'disclosures', record: 0, xid: disclosure.id, disclosures: disclosure.disclosures, expiresAt: now + this.d.retentionMs })
    const next = after.activeAgreements(this.d.self)
    const hash = agreementSetHash(next)
    if (hash !== this.policyHash) records.push({ v: 1, at: now, t: 'agreements', policy: hash, agreements: next })
    const indices = await this.d.log.append(records, evidence)
    events.forEach((e, k) => {
      const i = indices[k] as number
      this.own.add(i)
      this.book.apply(e, i, now)
    })
    if (records.length > events.length) this.own.add(indices[events.length] as number)
    this.recompute()
    return indices.slice(0, events.length)
  }

  // --- the receiving side (POST /v1/governance) --------------------------------------------------

  /**
   * A signed governance message from a peer: verified, checked against the book and logged, or
   * refused with a coded error and nothing written. A message already logged is answered again.
   */
  async receive(body: unknown, tlsMember?: string): Promise<{ index: number; state: string; reviewDue?: number; due?: number }> {
    const b = GovernanceBodySchema.safeParse(body)
    if (!b.success) throw new VnError('VN_ERR_GOV_INVALID', 'body: expected { jws, disclosures? }')
    const now = this.d.now()
    const fed = this.d.federation()
    const v = verifyJwsJson(b.data.jws, fed.messageKeyResolver(now), GOV_TYP)
    const m = GovernanceMessageSchema.safeParse(v.claims)
    if (!m.success) throw new VnError('VN_ERR_GOV_INVALID', m.error.issues.map((i) => `${i.path.join('.') || '$'}: ${i.message}`).join('; ').slice(0, 500))
    const msg = m.data
    if (!v.kid.startsWith(`${msg.iss}#`)) throw new VnError('VN_ERR_EXCH_ISSUER_MISMATCH', 'iss does not match the signing key')
    if (tlsMember !== undefined && tlsMember !== msg.iss) throw new VnError('VN_ERR_TLS_CLIENT_NOT_ISSUER', `signed by ${msg.iss}, TLS client certificate of ${tlsMember}`)
    if (msg.aud !== this.d.self) throw new VnError('VN_ERR_GOV_WRONG_MEMBER', `addressed to ${msg.aud}, not ${this.d.self}`)
    if (msg.iss === this.d.self || !fed.has(msg.iss) || fed.member(msg.iss).role !== 'department') throw new VnError('VN_ERR_GOV_WRONG_MEMBER', `${msg.iss} is not another department`)
    if (msg.iat > now + this.d.skewMs) throw new VnError('VN_ERR_EXCH_STALE', 'iat is in the future')
    const digest = jwsDigest(b.data.jws)
    return this.serial(async () => {
      const again = this.known(msg, digest)
      if (again !== undefined) return again
      const disclosures = b.data.disclosures ?? []
      const event = eventOf(msg, digest)
      switch (msg.t) {
        case 'application': {
          const unknown = msg.services.filter((s) => !this.d.services.includes(s))
          if (unknown.length > 0) throw new VnError('VN_ERR_POLICY_UNKNOWN_SERVICE', `${this.d.self} offers no ${unknown.join(', ')}`)
          // An application cannot open what the sharing rules close (not shared, negative-listed, core, another source).
          for (const s of msg.services) {
            const why = this.d.neverAnswered?.(s)
            if (why !== undefined) throw new VnError('VN_ERR_POLICY_NOT_SHARED', `no agreement can cover ${s}: ${why}`)
          }
          this.sealed(disclosures, msg.contact, 'contact')
          event.reviewDue = addWorkingDays(now, this.d.deadlines.reviewDays, this.d.deadlines.calendar)
          event.due = addWorkingDays(now, this.d.deadlines.answerDays, this.d.deadlines.calendar)
          const [index] = await this.commit([event], b.data.jws, { id: msg.id, disclosures })
          return { index: index as number, state: 'filed', reviewDue: event.reviewDue, due: event.due }
        }
        case 'dispute': {
          this.sealed(disclosures, msg.note, 'note')
          await this.assertExchange(msg.iss, msg.xid, msg.index)
          event.due = addWorkingDays(now, this.d.deadlines.disputeDays, this.d.deadlines.calendar)
          const [index] = await this.commit([event], b.data.jws, { id: msg.id, disclosures })
          return { index: index as number, state: 'filed', due: event.due }
        }
        default: {
          if (disclosures.length > 0) throw new VnError('VN_ERR_EXCH_DISCLOSURE_UNEXPECTED', `a ${msg.t} carries no disclosure`)
          // who may take this step in this state first (the wrong member is told so), then what it names
          const refusal = msg.t === 'agreement-change' ? undefined : this.book.check(event)
          if (refusal !== undefined) throw refusal
          // the decision names the very application (or dispute) this node filed
          if (msg.t === 'application-review' || msg.t === 'application-decision') {
            const a = this.book.applications.get(msg.id)
            if (a !== undefined && a.consumer === this.d.self && a.digest !== msg.app) throw new VnError('VN_ERR_GOV_INVALID', 'app: not the digest of the application filed')
          }
          if (msg.t === 'dispute-resolution') {
            const dsp = this.book.disputes.get(msg.id)
            if (dsp !== undefined && dsp.consumer === this.d.self && dsp.digest !== msg.dispute) throw new VnError('VN_ERR_GOV_INVALID', 'dispute: not the digest of the dispute filed')
          }
          if (msg.t === 'agreement-change') {
            const e = this.book.agreements.get(msg.agreement)
            if (e === undefined || e.agreement.consumer !== this.d.self) throw new VnError('VN_ERR_GOV_UNKNOWN', `no agreement ${msg.agreement} with ${msg.iss} known here`)
          }
          const events = msg.t === 'dispute-resolution' && msg.outcome === 'corrected'
            ? [correctionOf(event), event]
            : [event]
          const indices = await this.commit(events, b.data.jws)
          return { index: indices[indices.length - 1] as number, state: this.stateOf(msg) }
        }
      }
    })
  }

  /** The answer to a message already logged (a retry, or a poll bringing what a push had brought). */
  private known(msg: GovernanceMessage, digest: string): { index: number; state: string; reviewDue?: number; due?: number } | undefined {
    if (msg.t === 'application') {
      const a = this.book.applications.get(msg.id)
      if (a !== undefined && a.digest === digest) return { index: a.index, state: a.state, ...(a.reviewDue === undefined ? {} : { reviewDue: a.reviewDue }), ...(a.due === undefined ? {} : { due: a.due }) }
    } else if (msg.t === 'dispute') {
      const x = this.book.disputes.get(msg.id)
      if (x !== undefined && x.digest === digest) return { index: x.index, state: x.state, ...(x.due === undefined ? {} : { due: x.due }) }
    } else {
      const seen = this.book.digests.get(digest)
      if (seen !== undefined) return { index: seen, state: this.stateOf(msg) }
    }
    return undefined
  }

  private stateOf(msg: GovernanceMessage): string {
    if (msg.t === 'application-review' || msg.t === 'application-decision') return this.book.applications.get(msg.id)?.state ?? 'unknown'
    if (msg.t === 'dispute-resolution' || msg.t === 'dispute') return this.book.disputes.get(msg.id)?.state ?? 'unknown'
    if (msg.t === 'agreement-change') return this.book.agreements.get(msg.agreement)?.state ?? 'unknown'
    return this.book.applications.get(msg.id)?.state ?? 'unknown'
  }

  /** Exactly one disclosure of `field` matching the signed digest. */
  private sealed(disclosures: readonly string[], digest: string, field: 'contact' | 'note'): void {
    if (disclosures.length !== 1) throw new VnError('VN_ERR_EXCH_DISCLOSURE', `expected the ${field}'s disclosure beside the JWS`)
    const o = openDisclosure(disclosures[0], digest, 'disclosures[0]')
    if (o.field !== field || typeof o.value !== 'string') throw new VnError('VN_ERR_EXCH_DISCLOSURE', `disclosures[0]: expected the ${field} as text`)
  }

  /** The disputed exchange is a request-in this node logged at `index`, for `consumer` and `xid`. */
  private async assertExchange(consumer: string, xid: string, index: number): Promise<void> {
    const size = await this.d.reader.size()
    if (index >= size) throw new VnError('VN_ERR_GOV_UNKNOWN_EXCHANGE', `no log entry ${index}`)
    const [leaf] = await this.d.reader.entries(index, index + 1)
    const r = leaf === undefined ? undefined : parseJson(leaf) as { t?: unknown; xid?: unknown; iss?: unknown } | undefined
    if (r?.t !== 'request-in' || r.xid !== xid || r.iss !== consumer) throw new VnError('VN_ERR_GOV_UNKNOWN_EXCHANGE', `log entry ${index} is not the request of exchange ${xid} from ${consumer}`)
  }

  // --- the consumer's steps ----------------------------------------------------------------------

  /** Files an application with its provider; logged here once the provider has logged it. */
  async apply(input: LocalApplication): Promise<{ id: string; provider: string; state: string; index: number; providerIndex: number; reviewDue?: number; due?: number }> {
    const p = LocalApplicationSchema.safeParse(input)
    if (!p.success) throw new VnError('VN_ERR_GOV_INVALID', p.error.issues.map((i) => `${i.path.join('.') || '$'}: ${i.message}`).join('; ').slice(0, 500))
    const a = p.data
    this.assertPeer(a.provider)
    const now = this.d.now()
    const contact = makeDisclosure('contact', a.contact)
    const msg: ApplicationMessage = {
      v: 1, t: 'application', id: newXid(), iat: now, iss: this.d.self, aud: a.provider,
      services: a.services, purposes: a.purposes, basis: a.basis, dailyQuota: a.dailyQuota, modes: a.modes,
      validFrom: a.validFrom ?? new Date(now).toISOString(), validUntil: a.validUntil, contact: contact.digest,
    }
    const checked = GovernanceMessageSchema.safeParse(msg)
    if (!checked.success) throw new VnError('VN_ERR_GOV_INVALID', checked.error.issues.map((i) => `${i.path.join('.') || '$'}: ${i.message}`).join('; ').slice(0, 500))
    const jws = this.sign(msg)
    const reply = await this.send(a.provider, jws, [contact.disclosure])
    const r = z.object({ index: z.number().int().nonnegative(), reviewDue: z.number().optional(), due: z.number().optional() }).safeParse(reply)
    if (!r.success) throw new VnError('VN_ERR_PEER_BAD_RESPONSE', 'governance: the provider did not say where it logged the application')
    const event: GovernanceEvent = { ...eventOf(msg, jwsDigest(jws)), ...(r.data.reviewDue === undefined ? {} : { reviewDue: r.data.reviewDue }), ...(r.data.due === undefined ? {} : { due: r.data.due }) }
    const [index] = await this.serial(() => this.commit([event], jws, { id: msg.id, disclosures: [contact.disclosure] }))
    return { id: msg.id, provider: a.provider, state: 'filed', index: index as number, providerIndex: r.data.index, ...(r.data.reviewDue === undefined ? {} : { reviewDue: r.data.reviewDue }), ...(r.data.due === undefined ? {} : { due: r.data.due }) }
  }

  /** Files a dispute about one exchange this node asked; logged here once the provider has logged it. */
  async dispute(input: LocalDispute): Promise<{ id: string; provider: string; state: string; index: number; providerIndex: number; due?: number }> {
    const p = LocalDisputeSchema.safeParse(input)
    if (!p.success) throw new VnError('VN_ERR_GOV_INVALID', p.error.issues.map((i) => `${i.path.join('.') || '$'}: ${i.message}`).join('; ').slice(0, 500))
    const x = p.data
    this.assertPeer(x.provider)
    const dup = this.book.check({ kind: 'dispute', id: '-', iss: this.d.self, aud: x.provider, digest: '-', xid: x.xid })
    if (dup !== undefined) throw dup
    const now = this.d.now()
    const note = makeDisclosure('note', x.note)
    const msg: GovernanceMessage = { v: 1, t: 'dispute', id: newXid(), iat: now, iss: this.d.self, aud: x.provider, xid: x.xid, index: x.index, reason: x.reason, note: note.digest }
    const jws = this.sign(msg)
    const reply = await this.send(x.provider, jws, [note.disclosure])
    const r = z.object({ index: z.number().int().nonnegative(), due: z.number().optional() }).safeParse(reply)
    if (!r.success) throw new VnError('VN_ERR_PEER_BAD_RESPONSE', 'governance: the provider did not say where it logged the dispute')
    const event: GovernanceEvent = { ...eventOf(msg, jwsDigest(jws)), ...(r.data.due === undefined ? {} : { due: r.data.due }) }
    const [index] = await this.serial(() => this.commit([event], jws, { id: msg.id, disclosures: [note.disclosure] }))
    return { id: msg.id, provider: x.provider, state: 'filed', index: index as number, providerIndex: r.data.index, ...(r.data.due === undefined ? {} : { due: r.data.due }) }
  }

  private assertPeer(member: string): void {
    const fed = this.d.federation()
    if (member === this.d.self || !fed.has(member) || fed.member(member).role !== 'department') throw new VnError('VN_ERR_GOV_WRONG_MEMBER', `${member} is not another department`)
  }

  /** POSTs a governance message to `member`; its JSON answer, or the peer's refusal as VN_ERR_PEER_ERROR. */
  private async send(member: string, jws: string, disclosures?: string[]): Promise<unknown> {
    const body = JSON.stringify(disclosures === undefined ? { jws } : { jws, disclosures })
    const reply = await this.d.client.post(this.d.federation().endpoint(member), '/v1/governance', body)
    if (reply.statusCode < 200 || reply.statusCode > 299) throw peerErrorOf(member, reply.statusCode, reply.json)
    return reply.json
  }

  /** Pushes a logged message to the counterpart; a failure is reported, not thrown (the counterpart can ask). */
  private async push(member: string, jws: string): Promise<Delivery> {
    try {
      await this.send(member, jws)
      return { delivered: true }
    } catch (e) {
      const code = isVnError(e) ? (e.peer?.code ?? e.code) : 'VN_ERR_PEER_UNREACHABLE'
      this.d.logger.warn({ peer: member, code }, 'governance message not delivered; the peer can fetch it')
      return { delivered: false, code }
    }
  }

  // --- the provider's operator ---------------------------------------------------------------------

  private ownApplication(id: string): ApplicationEntry {
    const a = this.book.applications.get(id)
    if (a === undefined) throw new VnError('VN_ERR_GOV_UNKNOWN', `no application ${id}`)
    if (a.provider !== this.d.self) throw new VnError('VN_ERR_GOV_WRONG_MEMBER', `application ${id} is addressed to ${a.provider}; only it decides`)
    return a
  }

  /** The first review (受理): the application is taken up. */
  async review(id: string): Promise<{ id: string; state: string; index: number } & Delivery> {
    const { jws, to, index } = await this.serial(async () => {
      const a = this.ownApplication(id)
      const msg: GovernanceMessage = { v: 1, t: 'application-review', id, iat: this.d.now(), iss: this.d.self, aud: a.consumer, app: a.digest }
      const jws = this.sign(msg)
      const [index] = await this.commit([eventOf(msg, jwsDigest(jws))], jws)
      return { jws, to: a.consumer, index: index as number }
    })
    return { id, state: 'under-review', index, ...(await this.push(to, jws)) }
  }

  /** Approves (as asked), amends (other terms) or refuses an application; an approval puts its agreement in force now. */
  async decide(id: string, decision: 'approved' | 'amended' | 'refused', input: unknown): Promise<{ id: string; state: string; index: number; agreement?: Agreement; policy: string } & Delivery> {
    const p = LocalDecisionSchema.safeParse(input ?? {})
    if (!p.success) throw new VnError('VN_ERR_GOV_INVALID', p.error.issues.map((i) => `${i.path.join('.') || '$'}: ${i.message}`).join('; ').slice(0, 500))
    const o = p.data
    if (decision === 'refused' && o.reason === undefined) throw new VnError('VN_ERR_GOV_INVALID', 'reason: a refusal states its reason')
    if (decision === 'amended' && (o.reason === undefined || o.terms === undefined)) throw new VnError('VN_ERR_GOV_INVALID', 'an amendment states its reason and the terms that differ')
    const { jws, to, index, agreement } = await this.serial(async () => {
      const a = this.ownApplication(id)
      const refusal = this.book.check({ kind: 'application-decision', id, iss: this.d.self, aud: a.consumer, digest: '-', outcome: 'refused' })
      if (refusal !== undefined) throw refusal
      let agreement: Agreement | undefined
      if (decision !== 'refused') {
        const app = await this.applicationMessage(a)
        const base = agreementFromApplication(app, o.agreementId ?? `apl-${id}`)
        const amended = AgreementSchema.safeParse({ ...base, ...(decision === 'amended' ? o.terms : {}) })
        if (!amended.success) throw new VnError('VN_ERR_GOV_INVALID', `terms: ${amended.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`.slice(0, 500))
        agreement = amended.data
        const unknown = agreement.services.filter((s) => !this.d.services.includes(s))
        if (unknown.length > 0) throw new VnError('VN_ERR_POLICY_UNKNOWN_SERVICE', `${this.d.self} offers no ${unknown.join(', ')}`)
        // The rules may have closed a service since the application was filed (a new manifest).
        for (const s of agreement.services) {
          const why = this.d.neverAnswered?.(s)
          if (why !== undefined) throw new VnError('VN_ERR_POLICY_NOT_SHARED', `an agreement for ${s} cannot be approved: ${why}`)
        }
      }
      const msg: GovernanceMessage = {
        v: 1, t: 'application-decision', id, iat: this.d.now(), iss: this.d.self, aud: a.consumer, app: a.digest, decision,
        ...(o.reason === undefined ? {} : { reason: o.reason }), ...(agreement === undefined ? {} : { agreement }),
      }
      const jws = this.sign(msg)
      const [index] = await this.commit([eventOf(msg, jwsDigest(jws))], jws)
      return { jws, to: a.consumer, index: index as number, agreement }
    })
    return { id, state: decision, index, ...(agreement === undefined ? {} : { agreement }), policy: this.policyHash, ...(await this.push(to, jws)) }
  }

  /** The application message as filed (from the evidence kept with its record). */
  private async applicationMessage(a: ApplicationEntry): Promise<ApplicationMessage> {
    const stored = await this.d.evidence.getJws(a.index)
    const claims = stored === undefined ? undefined : JSON.parse(Buffer.from(stored.jws.split('.')[1] ?? '', 'base64url').toString('utf8')) as unknown
    const m = GovernanceMessageSchema.safeParse(claims)
    if (!m.success || m.data.t !== 'application') throw new VnError('VN_ERR_INTERNAL', `the evidence of application ${a.id} is missing`)
    return m.data
  }

  /** Suspends, resumes or revokes an agreement (approved, or of the config) of this provider; in force at once. */
  async changeAgreement(agreementId: string, action: 'suspend' | 'resume' | 'revoke', input: unknown): Promise<{ agreement: string; state: string; index: number; policy: string } & Delivery> {
    const p = LocalReasonSchema.safeParse(input ?? {})
    if (!p.success) throw new VnError('VN_ERR_GOV_INVALID', 'reason: required (1-1000 characters)')
    if (!agreementIdSchema.safeParse(agreementId).success) throw new VnError('VN_ERR_GOV_INVALID', 'agreement: not an agreement id')
    const { jws, to, index } = await this.serial(async () => {
      const e = this.book.agreementEntry(agreementId)
      if (e === undefined) throw new VnError('VN_ERR_GOV_UNKNOWN', `no agreement ${agreementId}`)
      if (e.provider !== this.d.self) throw new VnError('VN_ERR_GOV_WRONG_MEMBER', `agreement ${agreementId} is ${e.provider}'s`)
      const msg: GovernanceMessage = { v: 1, t: 'agreement-change', agreement: agreementId, action, reason: p.data.reason, iat: this.d.now(), iss: this.d.self, aud: e.agreement.consumer }
      const jws = this.sign(msg)
      const [index] = await this.commit([eventOf(msg, jwsDigest(jws))], jws)
      return { jws, to: e.agreement.consumer, index: index as number }
    })
    const state = action === 'suspend' ? 'suspended' : action === 'resume' ? 'active' : 'revoked'
    return { agreement: agreementId, state, index, policy: this.policyHash, ...(await this.push(to, jws)) }
  }

  /** Confirms and corrects (a correction record naming the dispute, then the resolution) or rejects a dispute. */
  async resolve(id: string, outcome: 'corrected' | 'rejected', input: unknown): Promise<{ id: string; state: string; index: number; correctionIndex?: number } & Delivery> {
    const p = LocalReasonSchema.safeParse(input ?? {})
    if (!p.success) throw new VnError('VN_ERR_GOV_INVALID', 'reason: required (1-1000 characters)')
    const { jws, to, indices } = await this.serial(async () => {
      const x = this.book.disputes.get(id)
      if (x === undefined) throw new VnError('VN_ERR_GOV_UNKNOWN', `no dispute ${id}`)
      if (x.provider !== this.d.self) throw new VnError('VN_ERR_GOV_WRONG_MEMBER', `dispute ${id} is addressed to ${x.provider}; only it resolves`)
      const msg: GovernanceMessage = { v: 1, t: 'dispute-resolution', id, dispute: x.digest, outcome, reason: p.data.reason, iat: this.d.now(), iss: this.d.self, aud: x.consumer }
      const jws = this.sign(msg)
      const ev = eventOf(msg, jwsDigest(jws))
      const events = outcome === 'corrected' ? [{ ...correctionOf(ev), xid: x.xid, ref: x.ref }, ev] : [ev]
      const indices = await this.commit(events, jws)
      return { jws, to: x.consumer, indices }
    })
    const index = indices[indices.length - 1] as number
    return { id, state: outcome, index, ...(indices.length > 1 ? { correctionIndex: indices[0] as number } : {}), ...(await this.push(to, jws)) }
  }

  // --- reading the state (local API; and a peer's poll) ------------------------------------------

  /**
   * Applications and disputes this node filed or received, with their deadlines, the working days
   * left before each deadline still open (`reviewDaysLeft`, `dueDaysLeft`: the working days after
   * today that end by it, under this node's calendar) and whether they are overdue.
   */
  list(): { applications: (ApplicationEntry & { role: 'consumer' | 'provider'; overdue: boolean; reviewDaysLeft?: number; dueDaysLeft?: number })[]; disputes: (DisputeEntry & { role: 'consumer' | 'provider'; overdue: boolean; dueDaysLeft?: number })[] } {
    const now = this.d.now()
    const role = (provider: string): 'consumer' | 'provider' => (provider === this.d.self ? 'provider' : 'consumer')
    const left = (open: boolean, due: number | undefined): number | undefined => (open && due !== undefined ? workingDaysLeft(now, due, this.d.deadlines.calendar) : undefined)
    const opt = (name: string, n: number | undefined): Record<string, number> => (n === undefined ? {} : { [name]: n })
    return {
      applications: [...this.book.applications.values()].map((a) => ({
        ...a, events: [...a.events], role: role(a.provider),
        overdue: (a.state === 'filed' && a.reviewDue !== undefined && now > a.reviewDue) || ((a.state === 'filed' || a.state === 'under-review') && a.due !== undefined && now > a.due),
        ...opt('reviewDaysLeft', left(a.state === 'filed', a.reviewDue)),
        ...opt('dueDaysLeft', left(a.state === 'filed' || a.state === 'under-review', a.due)),
      })),
      disputes: [...this.book.disputes.values()].map((x) => ({
        ...x, events: [...x.events], role: role(x.provider), overdue: x.state === 'filed' && x.due !== undefined && now > x.due,
        ...opt('dueDaysLeft', left(x.state === 'filed', x.due)),
      })),
    }
  }

  /** How many of this provider's applications and disputes are past a deadline now (the metric). */
  overdueCounts(): { review: number; answer: number; dispute: number } {
    const o = this.book.overdue(this.d.now(), this.d.self)
    return { review: o.review.length, answer: o.answer.length, dispute: o.disputes.length }
  }

  /**
   * One application or dispute with every signed message about it (their payloads), and, for this
   * node's operator only, the sealed contact or note opened. A consumer's pending item is first
   * brought up to date from the provider.
   */
  async show(kind: 'application' | 'dispute', id: string, opts: { poll?: boolean } = {}): Promise<Record<string, unknown>> {
    const entry = (): ApplicationEntry | DisputeEntry | undefined => (kind === 'application' ? this.book.applications.get(id) : this.book.disputes.get(id))
    const e0 = entry()
    if (e0 === undefined) throw new VnError('VN_ERR_GOV_UNKNOWN', `no ${kind} ${id}`)
    let polled: Delivery | undefined
    const pending = e0.state === 'filed' || e0.state === 'under-review'
    if (opts.poll !== false && pending && e0.consumer === this.d.self) polled = await this.poll(kind, id, e0.provider)
    const e = entry() as ApplicationEntry | DisputeEntry
    const messages: unknown[] = []
    for (const i of e.events) {
      const s = await this.d.evidence.getJws(i)
      if (s !== undefined) messages.push({ index: i, jws: s.jws, payload: JSON.parse(Buffer.from(s.jws.split('.')[1] ?? '', 'base64url').toString('utf8')) as unknown })
    }
    const sealed = await this.d.evidence.getDisclosures(e.index).catch(() => undefined)
    let text: string | undefined
    if (sealed?.disclosures[0] !== undefined) {
      const field = kind === 'application' ? 'contact' : 'note'
      try {
        const payload = (messages[0] as { payload?: Record<string, unknown> } | undefined)?.payload
        const o = openDisclosure(sealed.disclosures[0], payload?.[field], 'sealed')
        if (typeof o.value === 'string') text = o.value
      } catch {
        text = undefined
      }
    }
    const { events: _events, ...rest } = e
    return { kind, ...rest, role: e.provider === this.d.self ? 'provider' : 'consumer', messages, ...(text === undefined ? {} : { [kind === 'application' ? 'contact' : 'note']: text }), ...(polled === undefined ? {} : { polled }) }
  }

  /** The consumer asks the provider for the signed messages about `id` and takes in those it lacks. */
  private async poll(kind: 'application' | 'dispute', id: string, provider: string): Promise<Delivery> {
    try {
      const path = `/v1/governance/${kind}/${id}`
      const auth = signGetRequest(this.d.signer(), this.d.self, provider, path, this.d.now())
      const reply = await this.d.client.get(this.d.federation().endpoint(provider), path, { authorization: auth })
      if (reply.statusCode !== 200) throw peerErrorOf(provider, reply.statusCode, reply.json)
      const list = z.object({ messages: z.array(z.string()).max(16) }).safeParse(reply.json)
      if (!list.success) throw new VnError('VN_ERR_PEER_BAD_RESPONSE', 'governance: not a message list')
      for (const jws of list.data.messages) await this.receive({ jws }).catch((err: unknown) => {
        this.d.logger.warn({ peer: provider, code: isVnError(err) ? err.code : undefined }, 'a polled governance message was refused')
      })
      return { delivered: true }
    } catch (e) {
      return { delivered: false, code: isVnError(e) ? e.code : 'VN_ERR_PEER_UNREACHABLE' }
    }
  }

  /** For a peer's signed poll: the messages this node signed about `id`, if `member` is the consumer. */
  async signedFor(member: string, kind: string, id: string): Promise<{ messages: string[] }> {
    const e = kind === 'application' ? this.book.applications.get(id) : kind === 'dispute' ? this.book.disputes.get(id) : undefined
    if (e === undefined) throw new VnError('VN_ERR_GOV_UNKNOWN', `no ${kind} ${id}`)
    if (e.consumer !== member) throw new VnError('VN_ERR_GOV_WRONG_MEMBER', `${kind} ${id} is not ${member}'s`)
    const messages: string[] = []
    for (const i of e.events.slice(1)) {
      const s = await this.d.evidence.getJws(i)
      if (s !== undefined && !messages.includes(s.jws)) messages.push(s.jws)
    }
    return { messages }
  }
}

/** The correction event a `corrected` resolution is logged after: it names the dispute (and, at the provider, the exchange corrected). */
function correctionOf(resolution: GovernanceEvent): GovernanceEvent {
  const { outcome: _outcome, ...rest } = resolution
  return { ...rest, kind: 'correction' }
}
