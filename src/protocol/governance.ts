/**
 * The vocabulary of data-sharing governance (docs/GOVERNANCE.md): sharing types, grading levels,
 * personal-information sensitivity, data items, and the manifest's catalogue section (one
 * authoritative source per item, the negative list). Defined once here, below both the manifest
 * (src/federation) and the policy (src/policy) that use them.
 */
import { z } from 'zod'
import { memberIdSchema, SERVICE_ID_RE } from './vocabulary.js'

/** 无条件共享 / 有条件共享 / 不予共享 */
export const SHARING_TYPES = ['unconditional', 'conditional', 'not-shared'] as const
export type SharingType = (typeof SHARING_TYPES)[number]
export const sharingSchema = z.enum(SHARING_TYPES)

/** GB/T 43697-2024: 一般 / 重要 / 核心 */
export const CLASSIFICATIONS = ['general', 'important', 'core'] as const
export type Classification = (typeof CLASSIFICATIONS)[number]
export const classificationSchema = z.enum(CLASSIFICATIONS)

/** none / 个人信息 / 敏感个人信息 */
export const PERSONAL_INFO = ['none', 'personal', 'sensitive'] as const
export type PersonalInfo = (typeof PERSONAL_INFO)[number]
export const personalInfoSchema = z.enum(PERSONAL_INFO)

/** A data item id: the grammar of a service id (`population.resident-identity`). */
export const dataItemSchema = z.string().regex(SERVICE_ID_RE, 'must be a data item id such as population.identity')

/** The stricter of two values in one of the ordered lists above (later is stricter). */
export function stricter<T extends string>(order: readonly T[], a: T, b: T): T {
  return order.indexOf(b) > order.indexOf(a) ? b : a
}

const NO_CONTROL_RE = /^[^\p{Cc}]+$/u

/**
 * An entry of the negative list (负面清单): `not-shared` items are never answered by anyone;
 * `conditional` items are shared only under an agreement in force, under the stated conditions.
 */
const NegativeEntrySchema = z.strictObject({
  item: dataItemSchema,
  rule: z.enum(['not-shared', 'conditional']),
  /** the stated conditions or the reason (free text, no personal data) */
  conditions: z.string().min(1).max(500).regex(NO_CONTROL_RE, 'must not contain control characters').optional(),
})
export type NegativeEntry = z.infer<typeof NegativeEntrySchema>

/** The authority's catalogue section of the manifest: 一数一源 and 负面清单. */
export const ManifestGovernanceSchema = z
  .strictObject({
    /** the one authoritative source member of each data item */
    sources: z.array(z.strictObject({ item: dataItemSchema, member: memberIdSchema })).max(10_000).default([]),
    negativeList: z.array(NegativeEntrySchema).max(10_000).default([]),
  })
  .superRefine((g, ctx) => {
    const seen = new Set<string>()
    g.sources.forEach((s, i) => {
      if (seen.has(s.item)) ctx.addIssue({ code: 'custom', message: `item ${s.item} has more than one authoritative source`, path: ['sources', i, 'item'] })
      seen.add(s.item)
    })
    const neg = new Set<string>()
    g.negativeList.forEach((n, i) => {
      if (neg.has(n.item)) ctx.addIssue({ code: 'custom', message: `item ${n.item} is listed twice`, path: ['negativeList', i, 'item'] })
      neg.add(n.item)
    })
  })
export type ManifestGovernance = z.infer<typeof ManifestGovernanceSchema>
