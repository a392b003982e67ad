/**
 * Sharing agreements (docs/DESIGN.md "Authorization"): which consumer may ask which services of this
 * node, for which purposes, under which legal basis, in which modes, how often per day and until
 * when. They are part of the node config; whatever no agreement permits is denied.
 *
 * The agreement set is identified by `agreementSetHash`: base64url SHA-256 of the RFC 8785
 * canonical JSON of the agreements sorted by id. Each decision and each signed response carries it
 * (`policy`), so an auditor can re-run a decision against exactly the set that was in force.
 */
import { digestB64u } from '../crypto/profile.js'
import { z } from 'zod'
import { VnError } from '../errors.js'
import { canonicalJson } from '../protocol/canonical-json.js'
import { agreementIdSchema, memberIdSchema, modeSchema, serviceIdSchema } from '../protocol/vocabulary.js'

const NO_CONTROL_RE = /^[^\p{Cc}]+$/u

const IsoDateTime = z.iso.datetime({ offset: true })
const Text = (max: number) => z.string().min(1).max(max).regex(NO_CONTROL_RE, 'must not contain control characters')

function uniqueStrings<T extends string>(name: string) {
  return (xs: readonly T[], ctx: z.RefinementCtx) => {
    const seen = new Set<string>()
    xs.forEach((x, i) => {
      if (seen.has(x)) ctx.addIssue({ code: 'custom', message: `duplicate ${name}`, path: [i] })
      seen.add(x)
    })
  }
}

export const AgreementSchema = z
  .strictObject({
    id: agreementIdSchema,
    consumer: memberIdSchema,
    services: z.array(serviceIdSchema).min(1).superRefine(uniqueStrings('service')),
    purposes: z.array(Text(200)).min(1).superRefine(uniqueStrings('purpose')),
    /** the legal basis (law and article) under which the consumer asks */
    basis: Text(500),
    validFrom: IsoDateTime,
    validUntil: IsoDateTime,
    /** per UTC day, counted in subjects (plain, he) or evaluations (oprf) */
    dailyQuota: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
    modes: z.array(modeSchema).min(1).superRefine(uniqueStrings('mode')),
  })
  .superRefine((a, ctx) => {
    if (Date.parse(a.validUntil) <= Date.parse(a.validFrom)) {
      ctx.addIssue({ code: 'custom', message: 'must be after validFrom', path: ['validUntil'] })
    }
  })

export type Agreement = z.infer<typeof AgreementSchema>

export const AgreementSetSchema = z.array(AgreementSchema).superRefine((as, ctx) => {
  const seen = new Set<string>()
  as.forEach((a, i) => {
    if (seen.has(a.id)) ctx.addIssue({ code: 'custom', message: `duplicate agreement id ${a.id}`, path: [i, 'id'] })
    seen.add(a.id)
  })
})

/** Parses an agreement set from config. @throws VN_ERR_CONFIG_INVALID naming the path (`agreements[2].dailyQuota: ...`) */
export function parseAgreements(input: unknown, field = 'agreements'): Agreement[] {
  const r = AgreementSetSchema.safeParse(input)
  if (!r.success) {
    const issue = r.error.issues[0]
    const path = (issue?.path ?? []).map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('')
    throw new VnError('VN_ERR_CONFIG_INVALID', `${field}${path}: ${issue?.message ?? 'invalid'}`)
  }
  return r.data
}

/** The agreement set sorted by id: the form that is hashed and logged. */
export function sortAgreements(agreements: readonly Agreement[]): Agreement[] {
  return [...agreements].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
}

/** base64url SHA-256 (SM3 under the `sm` profile) of RFC 8785 canonical JSON of the set sorted by id; independent of input order. */
export function agreementSetHash(agreements: readonly Agreement[]): string {
  return digestB64u(Buffer.from(canonicalJson(sortAgreements(agreements)), 'utf8'))
}
