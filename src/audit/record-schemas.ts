/**
 * Strict zod schemas of the PII-free log records (src/log/records.ts), for the offline auditor.
 *
 * The node writes these records; the auditor trusts nothing it did not check, so every leaf must
 * parse as exactly one known record type with no unknown fields (`z.strictObject`). A leaf that
 * carries an extra member could smuggle personal data past the PII scan's field rules, so an
 * unknown field is an error, not a curiosity. The `satisfies` checks at the bottom keep these
 * schemas and the writer's TypeScript types from drifting apart.
 */
import { z } from 'zod'
import type {
  AgreementsRecord,
  DecisionRecord,
  SharingRulesRecord,
  KeyEventRecord,
  LogRecord,
  PeerCheckpointRecord,
  ForkEvidenceRecord,
  DisclosureExportRecord,
  GovernanceRecord,
  RequestInRecord,
  RequestOutRecord,
  ResponseInRecord,
  ResponseOutRecord,
} from '../log/records.js'
import { DISPUTE_REASONS, GOVERNANCE_KINDS } from '../policy/governance.js'
import {
  AGREEMENT_ID_RE, agreementIdSchema, digestSchema as digest, hashBase64Schema, publicKeySchema, ed25519SignatureSchema, memberIdSchema as memberId, modeSchema,
  serviceIdSchema as serviceId, xidSchema,
} from '../protocol/vocabulary.js'

const at = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER)
const count = z.number().int().positive().max(Number.MAX_SAFE_INTEGER)
const index = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER)
const errorCode = z.string().regex(/^VN_ERR_[A-Z0-9_]{1,80}$/, 'a VN_ERR_* code')
const freeText = (max: number) => z.string().min(1).max(max)
const base = { v: z.literal(1), at }

export const RequestInSchema = z.strictObject({
  ...base,
  t: z.literal('request-in'),
  xid: xidSchema,
  iss: memberId,
  svc: serviceId,
  mode: modeSchema,
  purpose: freeText(200),
  basis: freeText(300),
  count,
  reqDigest: digest,
})

export const DecisionSchema = z.strictObject({
  ...base,
  t: z.literal('decision'),
  xid: xidSchema,
  iss: memberId,
  reqDigest: digest,
  permit: z.boolean(),
  agreement: agreementIdSchema.optional(),
  code: errorCode.optional(),
  policy: digest,
  rules: digest.optional(),
  count,
  day: z.string().regex(/^[0-9]{4}-[0-9]{2}-[0-9]{2}$/, 'YYYY-MM-DD'),
})

const ResponseOutSchema = z.strictObject({
  ...base,
  t: z.literal('response-out'),
  xid: xidSchema,
  aud: memberId,
  reqDigest: digest,
  respDigest: digest,
  status: z.enum(['ok', 'denied']),
  requestIndex: index,
})

const RequestOutSchema = z.strictObject({
  ...base,
  t: z.literal('request-out'),
  xid: xidSchema,
  aud: memberId,
  svc: serviceId,
  mode: modeSchema,
  purpose: freeText(200),
  basis: freeText(300),
  count,
  reqDigest: digest,
})

const ResponseInSchema = z.strictObject({
  ...base,
  t: z.literal('response-in'),
  xid: xidSchema,
  iss: memberId,
  reqDigest: digest,
  status: z.enum(['ok', 'denied', 'error', 'refused']),
  respDigest: digest.optional(),
  code: errorCode.optional(),
  peerIndex: index.optional(),
}).refine((r) => r.status !== 'refused' || (r.respDigest !== undefined && r.code !== undefined && r.peerIndex === undefined), {
  message: 'a refused response-in has respDigest and code, and no peerIndex',
})

const ResponseRefusedSchema = z.strictObject({
  ...base,
  t: z.literal('response-refused'),
  xid: xidSchema,
  iss: memberId,
  reqDigest: digest,
  respDigest: digest,
  code: errorCode,
})

const AgreementsRecordSchema = z.strictObject({
  ...base,
  t: z.literal('agreements'),
  policy: digest,
  // Parsed against AgreementSetSchema by the auditor (with the policy hash check).
  agreements: z.array(z.unknown()),
})

const SharingRulesRecordSchema = z.strictObject({
  ...base,
  t: z.literal('sharing-rules'),
  hash: digest,
  // Parsed against SharingRulesSchema by the auditor (with the hash check).
  rules: z.unknown(),
})

const KeyEventSchema = z.strictObject({
  ...base,
  t: z.literal('key-event'),
  event: z.enum(['node-started', 'rotated', 'manifest-loaded']),
  member: memberId,
  messageKid: z.string().min(3).max(200),
  messageKey: publicKeySchema,
  logKey: publicKeySchema,
  manifestSeq: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  manifestHash: digest,
  // the node stopped signing: the manifest named does not allow its message key
  messageKeyRevoked: z.literal(true).optional(),
  // event 'rotated' only (checked by the auditor: both signatures over the rotation statement)
  rotated: z.enum(['message', 'log', 'tls']).optional(),
  // rotated 'tls' only: the old TLS key (the message and log keys above stay the same)
  tlsKey: publicKeySchema.optional(),
  newKey: publicKeySchema.optional(),
  oldSig: ed25519SignatureSchema.optional(),
  newSig: ed25519SignatureSchema.optional(),
})

const PeerCheckpointSchema = z.strictObject({
  ...base,
  t: z.literal('peer-checkpoint'),
  peer: memberId,
  size: index,
  rootHash: hashBase64Schema,
  noteHash: digest,
  note: freeText(64 * 1024).optional(),
})

const ForkEvidenceSchema = z.strictObject({
  ...base,
  t: z.literal('fork-evidence'),
  peer: memberId,
  notes: z.tuple([freeText(64 * 1024), freeText(64 * 1024)]),
})

const DisclosureExportSchema = z.strictObject({
  ...base,
  t: z.literal('disclosure-export'),
  reasonDigest: digest,
  count: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  received: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).optional(),
})

const GovernanceRecordSchema = z.strictObject({
  ...base,
  t: z.literal('governance'),
  kind: z.enum(GOVERNANCE_KINDS),
  // an application or dispute id (an xid) or an agreement id
  id: z.union([xidSchema, z.string().regex(AGREEMENT_ID_RE)], 'an application, dispute or agreement id'),
  iss: memberId,
  aud: memberId,
  digest,
  services: z.array(serviceId).min(1).optional(),
  reviewDue: at.optional(),
  due: at.optional(),
  outcome: z.enum(['approved', 'amended', 'refused', 'suspend', 'resume', 'revoke', 'corrected', 'rejected']).optional(),
  // Parsed against AgreementSchema by the auditor's governance check.
  agreement: z.unknown().optional(),
  xid: xidSchema.optional(),
  ref: index.optional(),
  reason: z.enum(DISPUTE_REASONS).optional(),
})

export const LogRecordSchema = z.discriminatedUnion('t', [
  RequestInSchema,
  DecisionSchema,
  ResponseOutSchema,
  RequestOutSchema,
  ResponseInSchema,
  ResponseRefusedSchema,
  AgreementsRecordSchema,
  SharingRulesRecordSchema,
  KeyEventSchema,
  PeerCheckpointSchema,
  ForkEvidenceSchema,
  DisclosureExportSchema,
  GovernanceRecordSchema,
])

export const RECORD_TYPES = ['request-in', 'decision', 'response-out', 'request-out', 'response-in', 'response-refused', 'agreements', 'sharing-rules', 'key-event', 'peer-checkpoint', 'fork-evidence', 'disclosure-export', 'governance'] as const

/** Free-text fields: the only places where CJK text is not by itself a finding (see pii.ts). */
export const FREE_TEXT_FIELDS: Readonly<Record<string, readonly string[]>> = {
  'request-in': ['purpose', 'basis'],
  'request-out': ['purpose', 'basis'],
  // the approved agreement's purposes and basis, vetted by the agreements record logged with it
  governance: ['agreement'],
}

/**
 * Free-text fields of a signed payload (a request's purpose and basis; governance messages
 * (src/policy/governance.ts): an application's purposes and basis, an approval's agreement, an
 * operator's reason). One list for the main thread and the audit's worker threads.
 */
export const PAYLOAD_FREE_TEXT = ['purpose', 'basis', 'purposes', 'agreement', 'reason'] as const

// Compile-time drift checks: each schema has exactly the fields of the writer's record type.
type SameKeys<S extends z.ZodType, R> = [keyof z.infer<S>] extends [keyof R] ? ([keyof R] extends [keyof z.infer<S>] ? true : false) : false
true satisfies SameKeys<typeof RequestInSchema, RequestInRecord>
true satisfies SameKeys<typeof DecisionSchema, DecisionRecord>
true satisfies SameKeys<typeof ResponseOutSchema, ResponseOutRecord>
true satisfies SameKeys<typeof RequestOutSchema, RequestOutRecord>
true satisfies SameKeys<typeof ResponseInSchema, ResponseInRecord>
true satisfies SameKeys<typeof AgreementsRecordSchema, AgreementsRecord>
true satisfies SameKeys<typeof SharingRulesRecordSchema, SharingRulesRecord>
true satisfies SameKeys<typeof KeyEventSchema, KeyEventRecord>
true satisfies SameKeys<typeof PeerCheckpointSchema, PeerCheckpointRecord>
true satisfies SameKeys<typeof ForkEvidenceSchema, ForkEvidenceRecord>
true satisfies SameKeys<typeof DisclosureExportSchema, DisclosureExportRecord>
true satisfies SameKeys<typeof GovernanceRecordSchema, GovernanceRecord>
true satisfies (LogRecord['t'] extends (typeof RECORD_TYPES)[number] ? ((typeof RECORD_TYPES)[number] extends LogRecord['t'] ? true : false) : false)
