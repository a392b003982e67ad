/**
 * The sharing rules of docs/GOVERNANCE.md, as data a node logs and the auditor replays.
 *
 * `checkOffer` is the start-up check (a node refuses to start on the first violation, with a coded
 * error); `sharingRulesOf` builds the `Governance` view that `decide` (./decide.ts) applies to every
 * request: per service its data item, effective sharing type, grading and personal-information
 * sensitivity, the item's authoritative source and negative-list rule from the manifest, the
 * departments of the federation, and the default quotas. The view is logged as a `sharing-rules`
 * record (hashed by `sharingRulesHash`) whenever it changes, so the auditor re-runs each decision
 * under the very rules the node applied.
 *
 * Effective values: a service's sharing type, classification and sensitivity are the strictest of
 * the service's own and those of each of its fields (a service that takes one sensitive field is
 * sensitive as a whole). A service's data item defaults to its id.
 */
import { digestB64u } from '../crypto/profile.js'
import { z } from 'zod'
import { VnError } from '../errors.js'
import { canonicalJson } from '../protocol/canonical-json.js'
import {
  CLASSIFICATIONS, PERSONAL_INFO, SHARING_TYPES, classificationSchema, dataItemSchema, personalInfoSchema, sharingSchema, stricter,
  type Classification, type ManifestGovernance, type PersonalInfo, type SharingType,
} from '../protocol/governance.js'
import { memberIdSchema, serviceIdSchema } from '../protocol/vocabulary.js'

/** What the rules need of one configured service (a structural subset of the config's service). */
export interface ServiceGovernanceInput {
  id: string
  item?: string | undefined
  sharing: SharingType
  classification: Classification
  personalInfo: PersonalInfo
  fields: Readonly<Record<string, { sharing?: SharingType | undefined; classification?: Classification | undefined; personalInfo?: PersonalInfo | undefined }>>
}

const ServiceRulesSchema = z.strictObject({
  item: dataItemSchema,
  sharing: sharingSchema,
  classification: classificationSchema,
  personalInfo: personalInfoSchema,
  /** the item's authoritative source member named by the manifest, if any */
  source: memberIdSchema.optional(),
  /** the item's negative-list rule, if listed */
  negative: z.enum(['not-shared', 'conditional']).optional(),
})
export type ServiceRules = z.infer<typeof ServiceRulesSchema>

export const SharingRulesSchema = z.strictObject({
  /** the provider these rules are for */
  self: memberIdSchema,
  services: z.record(serviceIdSchema, ServiceRulesSchema),
  /** the members that may ask for unconditional items (role department in the manifest) */
  departments: z.array(memberIdSchema),
  /** per consumer, per service and UTC day, for unconditional items without an agreement */
  unconditionalDailyQuota: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  /** the cap on any quota for important or sensitive items asked in plain mode */
  gradedDailyQuota: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
})
export type SharingRules = z.infer<typeof SharingRulesSchema>

export interface SharingDefaults {
  unconditionalDailyQuota: number
  gradedDailyQuota: number
}

/** The strictest sharing type, classification and sensitivity over the service and its fields. */
export function effectiveOf(s: ServiceGovernanceInput): { item: string; sharing: SharingType; classification: Classification; personalInfo: PersonalInfo } {
  let sharing = s.sharing
  let classification = s.classification
  let personalInfo = s.personalInfo
  for (const f of Object.values(s.fields)) {
    if (f.sharing !== undefined) sharing = stricter(SHARING_TYPES, sharing, f.sharing)
    if (f.classification !== undefined) classification = stricter(CLASSIFICATIONS, classification, f.classification)
    if (f.personalInfo !== undefined) personalInfo = stricter(PERSONAL_INFO, personalInfo, f.personalInfo)
  }
  return { item: s.item ?? s.id, sharing, classification, personalInfo }
}

/** Reserved prefix of the quota id under which unconditional requests are counted. */
export const UNCONDITIONAL_PREFIX = 'uncond:'

/** The quota id of one consumer's unconditional requests for one service (an agreement id's grammar). */
export function unconditionalQuotaId(consumer: string, service: string): string {
  const id = `${UNCONDITIONAL_PREFIX}${consumer}:${service}`
  return id.length <= 128 ? id : `${UNCONDITIONAL_PREFIX}${digestB64u(`${consumer}:${service}`)}`
}

/**
 * The start-up check (docs/GOVERNANCE.md): the node refuses to start if it offers core data, an
 * item another member is the authoritative source of, an item the negative list forbids (a
 * `not-shared` entry at all, a `conditional` one as unconditional), or sensitive personal
 * information as unconditional; or if an agreement uses the reserved `uncond:` prefix.
 * @throws VN_ERR_GOV_CORE_DATA, VN_ERR_GOV_NOT_SOURCE, VN_ERR_GOV_NEGATIVE_LISTED, VN_ERR_GOV_GRADING
 */
export function checkOffer(self: string, services: readonly ServiceGovernanceInput[], manifest: ManifestGovernance | undefined, agreementIds: readonly string[] = []): void {
  const sources = new Map((manifest?.sources ?? []).map((s) => [s.item, s.member]))
  const negative = new Map((manifest?.negativeList ?? []).map((n) => [n.item, n.rule]))
  for (const s of services) {
    const e = effectiveOf(s)
    if (e.classification === 'core') {
      throw new VnError('VN_ERR_GOV_CORE_DATA', `service ${s.id}: classified core (GB/T 43697-2024 核心数据); core data is never offered: remove the service`)
    }
    const source = sources.get(e.item)
    if (source !== undefined && source !== self) {
      throw new VnError('VN_ERR_GOV_NOT_SOURCE', `service ${s.id}: the manifest names ${source} as the authoritative source of item ${e.item} (一数一源), not ${self}`)
    }
    const rule = negative.get(e.item)
    if (rule === 'not-shared') {
      throw new VnError('VN_ERR_GOV_NEGATIVE_LISTED', `service ${s.id}: item ${e.item} is on the federation's negative list as not shared (负面清单): remove the service`)
    }
    if (rule === 'conditional' && e.sharing === 'unconditional') {
      throw new VnError('VN_ERR_GOV_NEGATIVE_LISTED', `service ${s.id}: item ${e.item} is on the federation's negative list as shared only under conditions; it cannot be unconditional`)
    }
    if (e.personalInfo === 'sensitive' && e.sharing === 'unconditional') {
      throw new VnError('VN_ERR_GOV_GRADING', `service ${s.id}: sensitive personal information (敏感个人信息) is never shared unconditionally; make it conditional`)
    }
  }
  const reserved = agreementIds.find((id) => id.startsWith(UNCONDITIONAL_PREFIX))
  if (reserved !== undefined) throw new VnError('VN_ERR_CONFIG_INVALID', `agreements: id ${reserved} uses the prefix ${UNCONDITIONAL_PREFIX}, reserved for unconditional sharing`)
}

/** The rules `decide` applies on `self`'s provider, under the manifest's catalogue section. */
export function sharingRulesOf(self: string, services: readonly ServiceGovernanceInput[], manifest: ManifestGovernance | undefined, departments: readonly string[], d: SharingDefaults): SharingRules {
  const sources = new Map((manifest?.sources ?? []).map((s) => [s.item, s.member]))
  const negative = new Map((manifest?.negativeList ?? []).map((n) => [n.item, n.rule]))
  const out: Record<string, ServiceRules> = {}
  for (const s of [...services].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) {
    const e = effectiveOf(s)
    const r: ServiceRules = { ...e }
    const source = sources.get(e.item)
    if (source !== undefined) r.source = source
    const rule = negative.get(e.item)
    if (rule !== undefined) r.negative = rule
    out[s.id] = r
  }
  return { self, services: out, departments: [...departments].sort(), unconditionalDailyQuota: d.unconditionalDailyQuota, gradedDailyQuota: d.gradedDailyQuota }
}

/** base64url SHA-256 (SM3 under `sm`) of the RFC 8785 canonical JSON of the view: the `hash` of a `sharing-rules` record, named as `rules` by each decision. */
export function sharingRulesHash(g: SharingRules): string {
  return digestB64u(Buffer.from(canonicalJson(g), 'utf8'))
}

/** Important data and sensitive personal information: capped quota in plain mode. */
/**
 * Rule G1: why `service` is never answered under these rules (core data, not shared, negative-listed
 * as not shared, or another member is the item's source), or undefined. No agreement changes it, so
 * an application for such a service cannot be approved either.
 */
export function neverAnswered(rules: SharingRules | undefined, service: string): string | undefined {
  const r = rules?.services[service]
  if (rules === undefined || r === undefined) return undefined
  if (r.classification === 'core') return `service ${service} is core data and is never answered`
  if (r.negative === 'not-shared') return `item ${r.item} is on the negative list as not shared`
  if (r.sharing === 'not-shared') return `service ${service} is not shared`
  if (r.source !== undefined && r.source !== rules.self) return `the authoritative source of item ${r.item} is ${r.source}`
  return undefined
}

export const isGraded = (r: Pick<ServiceRules, 'classification' | 'personalInfo'>): boolean => r.classification !== 'general' || r.personalInfo === 'sensitive'
