/**
 * Numbers in URLs. Only canonical decimal integers are numbers here: `Number()` and `z.coerce`
 * would also read `0x1`, `1e0`, `" 1"` and the empty string, so two spellings of one request
 * could mean the same index and an empty one could mean 0.
 */
import { z } from 'zod'

const CANONICAL_INT = /^(0|[1-9][0-9]*)$/

/** A non-negative safe integer written as canonical decimal digits (no sign, no leading zero). */
export const canonicalInt = z.string()
  .regex(CANONICAL_INT, 'expected a non-negative decimal integer without sign, spaces or leading zeros')
  .transform(Number)
  .refine(Number.isSafeInteger, 'expected a safe integer (at most 2^53 - 1)')

/** `s` as a canonical non-negative integer, or undefined. */
export function parseCanonicalInt(s: string): number | undefined {
  const r = canonicalInt.safeParse(s)
  return r.success ? r.data : undefined
}
