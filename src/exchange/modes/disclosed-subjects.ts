/**
 * Subjects disclosed to the provider, shared by every mode that discloses them (`plain`, `he`).
 *
 * Each subject field travels as an SD-JWT-style disclosure beside the JWS (RFC 9901 §4.2.1), and
 * the signed query carries only `subjects: [{ field: digest }]` (docs/DESIGN.md "Personal data is never
 * signed in the clear"). The provider matches disclosures to digests (not by position), opens and
 * checks each one (src/protocol/disclosures.ts), and canonicalizes the subject with the one shared
 * `canonicalizeSubject`. Every disclosure must be used exactly once.
 */
import { z } from 'zod'
import { VnError } from '../../errors.js'
import { makeDisclosure, openDisclosure, disclosureDigest, type DisclosedValue } from '../../protocol/disclosures.js'
import { canonicalizeSubject } from '../../protocol/canonicalize.js'
import { INHERITED_NAMES, isFieldName } from '../../protocol/vocabulary.js'
import type { ServiceConfig } from '../../config/schema.js'
import { PlainQuerySchema } from '../../protocol/envelope.js'

/** `q.subjects` of a mode that discloses subjects: one `{ field: digest }` map per subject. */
export const DisclosedSubjectsSchema: z.ZodType<Record<string, string>[]> = PlainQuerySchema.shape.subjects

export interface OpenSubjectsOptions {
  /**
   * Fields that may be disclosed (default: every field of the service). A disclosed field outside
   * this set is refused with VN_ERR_SUBJECT_INVALID; a required field outside it is not required.
   */
  disclosable?: (field: string) => boolean
  /** why a field is not disclosable, for the error detail (`is encrypted in he mode`) */
  notDisclosableReason?: string
}

/**
 * Opens the disclosed subjects of a request: returns one canonical record per subject.
 * Errors: VN_ERR_EXCH_DISCLOSURE (missing, duplicate, unused or mismatching disclosure),
 * VN_ERR_SUBJECT_INVALID (missing or unknown field) and the canonicalization codes.
 */
export function openDisclosedSubjects(
  svc: ServiceConfig,
  list: readonly Readonly<Record<string, string>>[],
  disclosures: readonly string[],
  opts: OpenSubjectsOptions = {},
): Record<string, string>[] {
  const disclosable = opts.disclosable ?? (() => true)
  // A field that may not be disclosed is not required either.
  const fields = Object.fromEntries(Object.entries(svc.fields).filter(([field]) => disclosable(field)))
  // Disclosures are matched by digest, not position; each must be used exactly once.
  const byDigest = new Map<string, string>()
  for (const d of disclosures) byDigest.set(disclosureDigest(d), d)
  if (byDigest.size !== disclosures.length) throw new VnError('VN_ERR_EXCH_DISCLOSURE', 'disclosures: duplicates')
  let used = 0
  const subjects = list.map((digests, i) => {
    // Own properties only: `constructor` is in every object, and is no field of any service.
    const opened: [string, DisclosedValue][] = []
    for (const [field, dg] of Object.entries(digests)) {
      const path = `subjects[${i}].${field}`
      if (!Object.hasOwn(svc.fields, field)) throw new VnError('VN_ERR_SUBJECT_INVALID', `subjects[${i}]: unknown field${isFieldName(field) || INHERITED_NAMES.has(field) ? ` ${field}` : ''}`)
      if (!disclosable(field)) throw new VnError('VN_ERR_SUBJECT_INVALID', `${path}: ${opts.notDisclosableReason ?? 'may not be disclosed'}`)
      const disclosure = byDigest.get(dg)
      if (disclosure === undefined) throw new VnError('VN_ERR_EXCH_DISCLOSURE', `${path}: no disclosure for its digest`)
      used++
      const d = openDisclosure(disclosure, dg, path)
      if (d.field !== field) throw new VnError('VN_ERR_EXCH_DISCLOSURE', `${path}: disclosure names another field`)
      opened.push([field, d.value])
    }
    // The one subject canonicalization, as the consumer ran it before signing.
    return canonicalizeSubject(fields, Object.fromEntries(opened), `subjects[${i}]`)
  })
  if (used !== disclosures.length) throw new VnError('VN_ERR_EXCH_DISCLOSURE', 'disclosures: some are not referenced by any digest')
  return subjects
}

/** Consumer side: fresh salted disclosures of every field of every subject, and their digests. */
export function discloseSubjects(subjects: readonly Readonly<Record<string, string>>[]): { digests: Record<string, string>[]; disclosures: string[] } {
  const disclosures: string[] = []
  const digests = subjects.map((s) => {
    const m: Record<string, string> = {}
    for (const [field, value] of Object.entries(s)) {
      const d = makeDisclosure(field, value)
      disclosures.push(d.disclosure)
      m[field] = d.digest
    }
    return m
  })
  return { digests, disclosures }
}
