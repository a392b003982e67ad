/**
 * Salted-digest disclosures for subject fields (docs/DESIGN.md "Personal data is never signed in the
 * clear"), following SD-JWT, RFC 9901 §4.2.1 (Disclosures for object properties) and §4.2.3
 * (hashing Disclosures).
 *
 * A disclosure is `base64url(UTF-8(JSON([salt, field, value])))`; its digest is
 * `base64url(SHA-256(ASCII(disclosure)))`. The signed request carries only digests; the
 * disclosures travel beside the JWS. Once disclosures are purged, the signed log entries still
 * verify but no longer reveal the subject: the 128-bit salt (RFC 9901 §9.3 recommends at least
 * 128 bits) makes the digest of a 18-digit ID number unguessable.
 *
 * Opening checks, in this order: the inputs' shapes and sizes; the digest of the disclosure
 * string exactly as received (RFC 9901 §7.1 step 3: the digest is over the encoded form, so no
 * re-encoding) compared in constant time; then the decoded content: strict base64url, strict
 * UTF-8, a JSON array of exactly three elements, a salt of at least 128 bits, a field name, and a JSON scalar
 * value. Every failure is `VN_ERR_EXCH_DISCLOSURE` naming the path, never the content.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto'
import { activeProfile, digest, digestB64u } from '../crypto/profile.js'
import { VnError } from '../errors.js'
import { FIELD_NAME_RE, isFieldName } from './vocabulary.js'

export type DisclosedValue = string | number | boolean | null

export interface Disclosure {
  /** base64url(UTF-8 JSON `[salt, field, value]`), sent beside the JWS. */
  readonly disclosure: string
  /** base64url(SHA-256(ASCII(disclosure))), placed in the signed payload. */
  readonly digest: string
}

export interface OpenedDisclosure {
  readonly field: string
  readonly value: DisclosedValue
}

const SALT_BYTES = 16
/**
 * A received salt is any base64url string of at least 22 characters (128 bits, RFC 9901 §9.3);
 * its bits are not decoded, as RFC 9901 treats the salt as an opaque string.
 */
const SALT = /^[A-Za-z0-9_-]{22,86}$/
/** base64url length of a SHA-256 digest without padding. */
const DIGEST_CHARS = 43
/** A subject field disclosure is small; this bounds hashing and parsing of hostile input. */
export const MAX_DISCLOSURE_CHARS = 4096
const BASE64URL = /^[A-Za-z0-9_-]*$/

function fail(path: string, why: string): VnError {
  return new VnError('VN_ERR_EXCH_DISCLOSURE', `${path}: ${why}`)
}

/** Strict base64url (RFC 4648 §5, no padding, no stray bits), or undefined. */
function decodeBase64url(s: string): Buffer | undefined {
  if (!BASE64URL.test(s) || s.length % 4 === 1) return undefined
  const b = Buffer.from(s, 'base64url')
  return b.toString('base64url') === s ? b : undefined
}

/** base64url(SHA-256(ASCII(disclosure))), RFC 9901 §4.2.3 (SM3 under the `sm` profile) (a disclosure is base64url: ASCII = UTF-8). */
export function disclosureDigest(disclosure: string): string {
  return digestB64u(disclosure)
}

function checkValue(value: unknown): value is DisclosedValue {
  return value === null || typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value))
}

/**
 * A fresh disclosure of `field` = `value` with a random 128-bit salt.
 * `opts.salt` exists for known-answer tests only; never pass it in production code.
 */
export function makeDisclosure(field: string, value: DisclosedValue, opts?: { readonly salt?: Uint8Array }): Disclosure {
  if (!isFieldName(field)) throw new TypeError(`field: expected a field name matching ${String(FIELD_NAME_RE)}`)
  if (!checkValue(value)) throw new TypeError('value: expected a string, finite number, boolean or null')
  const salt = opts?.salt ?? randomBytes(SALT_BYTES)
  if (salt.length !== SALT_BYTES) throw new RangeError(`salt: expected ${SALT_BYTES} bytes`)
  const json = JSON.stringify([Buffer.from(salt).toString('base64url'), field, value])
  const disclosure = Buffer.from(json, 'utf8').toString('base64url')
  return { disclosure, digest: disclosureDigest(disclosure) }
}

/**
 * Check `disclosure` against the digest from the signed payload and return its field and value.
 * @param path where the disclosure sits, for error details (`disclosures[2]`).
 * @throws VnError VN_ERR_EXCH_DISCLOSURE on any mismatch or malformed input.
 */
export function openDisclosure(disclosure: unknown, expectedDigest: unknown, path: string): OpenedDisclosure {
  if (typeof disclosure !== 'string' || disclosure.length === 0) throw fail(path, 'disclosure must be a non-empty string')
  if (disclosure.length > MAX_DISCLOSURE_CHARS) throw fail(path, `disclosure longer than ${MAX_DISCLOSURE_CHARS} characters`)
  if (typeof expectedDigest !== 'string' || expectedDigest.length !== DIGEST_CHARS) throw fail(path, 'digest must be 43 base64url characters')
  const expected = decodeBase64url(expectedDigest)
  if (expected === undefined || expected.length !== 32) throw fail(path, `digest is not base64url ${activeProfile().name === 'sm' ? 'SM3' : 'SHA-256'}`)
  const bytes = decodeBase64url(disclosure)
  if (bytes === undefined) throw fail(path, 'disclosure is not base64url')

  // RFC 9901 §7.1 step 3: hash the disclosure as received and compare to the signed digest.
  const actual = digest(disclosure) // ASCII: checked as base64url above
  if (!timingSafeEqual(actual, expected)) throw fail(path, 'disclosure does not match its digest')

  let parsed: unknown
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes))
  } catch {
    throw fail(path, 'disclosure is not UTF-8 JSON')
  }
  if (!Array.isArray(parsed) || parsed.length !== 3) throw fail(path, 'disclosure must be a JSON array [salt, field, value]')
  const [salt, field, value] = parsed as [unknown, unknown, unknown]
  if (typeof salt !== 'string' || !SALT.test(salt)) throw fail(path, 'salt must be at least 128 bits in base64url')
  // A subject field name (vocabulary.ts), which RFC 9901 §4.2.1's reserved `_sd` and `...` are not.
  if (!isFieldName(field)) throw fail(path, 'field name is not acceptable')
  if (!checkValue(value)) throw fail(path, 'value must be a JSON string, number, boolean or null')
  return { field, value }
}
