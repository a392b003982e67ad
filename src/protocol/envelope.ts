/**
 * The exchange envelope: request and response payloads signed as compact JWS (docs/PROTOCOL.md).
 *
 * Personal data is never signed in the clear: in `plain` mode each subject field is the SD-JWT-style
 * salted digest of a disclosure that travels beside the JWS (src/protocol/disclosures.ts).
 */
import { z } from 'zod'
import { digestSchema as digest, fieldMapSchema, memberIdSchema, modeSchema, serviceIdSchema, xidSchema } from './vocabulary.js'

export const REQUEST_TYP = 'vn-req+jws'
export const RESPONSE_TYP = 'vn-resp+jws'
export const CATALOG_TYP = 'vn-catalog+jws'

/** plain mode: one object per subject, mapping each disclosed field to its disclosure digest */
export const PlainQuerySchema = z.strictObject({
  subjects: z.array(fieldMapSchema(digest)).min(1),
})

export const RequestPayloadSchema = z.strictObject({
  v: z.literal(1),
  xid: xidSchema,
  iat: z.number().int().positive(),
  iss: memberIdSchema,
  aud: memberIdSchema,
  svc: serviceIdSchema,
  purpose: z.string().min(1).max(200),
  basis: z.string().min(1).max(300),
  mode: modeSchema,
  q: z.record(z.string(), z.unknown()),
})
export type RequestPayload = z.infer<typeof RequestPayloadSchema>

export const ExchangeBodySchema = z.strictObject({
  jws: z.string().min(1),
  disclosures: z.array(z.string().min(1).max(4096)).optional(),
})
export type ExchangeBody = z.infer<typeof ExchangeBodySchema>

const ProblemSchema = z.object({
  code: z.string(),
  title: z.string(),
  status: z.number().int(),
  detail: z.string().optional(),
})

export const ResponsePayloadSchema = z.strictObject({
  v: z.literal(1),
  xid: xidSchema,
  reqDigest: digest,
  iat: z.number().int().positive(),
  iss: memberIdSchema,
  aud: memberIdSchema,
  status: z.enum(['ok', 'denied']),
  results: z.array(z.record(z.string(), z.unknown())).optional(),
  /** mode-specific reply (oprf: evaluated elements and proof; he: result ciphertexts) */
  r: z.record(z.string(), z.unknown()).optional(),
  error: ProblemSchema.optional(),
  policy: digest,
  agreement: z.string().optional(),
  log: z.strictObject({ index: z.number().int().nonnegative() }),
})
export type ResponsePayload = z.infer<typeof ResponsePayloadSchema>
