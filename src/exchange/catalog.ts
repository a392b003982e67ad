/**
 * The signed service catalog (GET /v1/catalog): what a provider offers, which fields each question
 * takes and how they are canonicalized, so a consumer can validate subjects before it signs anything.
 */
import { z } from 'zod'
import type { ServiceConfig } from '../config/schema.js'
import { FieldKindSchema } from '../config/schema.js'
import { CATALOG_TYP } from '../protocol/envelope.js'
import { fieldMapSchema, memberIdSchema as memberId, modeSchema, serviceIdSchema as serviceId } from '../protocol/vocabulary.js'
import { signJwsJson } from '../crypto/jws.js'
import { effectiveOf } from '../policy/sharing.js'
import { classificationSchema, dataItemSchema, personalInfoSchema } from '../protocol/governance.js'
import type { Signer } from './signer.js'

export const CatalogServiceSchema = z.object({
  id: serviceId,
  title: z.object({ en: z.string(), zh: z.string().optional() }),
  description: z.string(),
  kind: z.enum(['match', 'membership', 'status', 'threshold', 'tier']),
  /** each field with its governance resolved (the service's values where the field names none) */
  fields: fieldMapSchema(z.object({
    kind: FieldKindSchema, key: z.boolean(), required: z.boolean(),
    sharing: z.string().optional(), updateCycle: z.string().optional(), authority: z.string().optional(),
    classification: classificationSchema.optional(), personalInfo: personalInfoSchema.optional(),
  })),
  modes: z.array(modeSchema),
  sharing: z.string(),
  updateCycle: z.string(),
  authority: z.string(),
  // Governance (docs/GOVERNANCE.md); optional so that catalogs of older nodes still parse.
  item: dataItemSchema.optional(),
  classification: classificationSchema.optional(),
  personalInfo: personalInfoSchema.optional(),
  statuses: z.array(z.string()).optional(),
  tiers: z.array(z.object({ id: z.string(), min: z.number() })).optional(),
})
export type CatalogService = z.infer<typeof CatalogServiceSchema>

export const CatalogSchema = z.object({
  v: z.literal(1),
  iss: memberId,
  iat: z.number().int(),
  limits: z.object({ batchMax: z.number().int().positive() }),
  services: z.array(CatalogServiceSchema),
})
export type Catalog = z.infer<typeof CatalogSchema>

export function catalogOf(self: string, services: readonly ServiceConfig[], batchMax: number, now: number): Catalog {
  return {
    v: 1,
    iss: self,
    iat: now,
    limits: { batchMax },
    services: services.map((s) => {
      const fields: CatalogService['fields'] = {}
      for (const [name, f] of Object.entries(s.fields)) {
        fields[name] = {
          kind: f.kind, key: f.key, required: f.required,
          sharing: f.sharing ?? s.sharing, updateCycle: f.updateCycle ?? s.updateCycle, authority: f.authority ?? s.authority,
          classification: f.classification ?? s.classification, personalInfo: f.personalInfo ?? s.personalInfo,
        }
      }
      // the service's governance as enforced: the strictest of its own and its fields' values
      const e = effectiveOf(s)
      const c: CatalogService = {
        id: s.id, title: s.title, description: s.description, kind: s.kind, fields, modes: s.modes,
        sharing: e.sharing, updateCycle: s.updateCycle, authority: s.authority,
        item: e.item, classification: e.classification, personalInfo: e.personalInfo,
      }
      if (s.statuses !== undefined) c.statuses = s.statuses
      if (s.tiers !== undefined) c.tiers = s.tiers
      return c
    }),
  }
}

export const signCatalog = (c: Catalog, s: Signer): string => signJwsJson(c, s.privateKey, s.kid, CATALOG_TYP)
