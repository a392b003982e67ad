/**
 * The federation's vocabulary: every identifier that crosses a trust boundary, each defined once.
 *
 * Each name has a grammar (a `RegExp`, for quick tests and for docs/PROTOCOL.md "Identifiers") and
 * a zod schema built from it. Config, manifest, agreements, envelopes, log records, the auditor's
 * record schemas and the CLI all import these; none writes its own pattern (issue 12 §3). Changing a
 * grammar here changes what the node accepts on the wire and in its log: treat it as a wire format.
 *
 * Field names are used as object keys (subjects, service field maps). RFC 7159 allows any member
 * name, but JavaScript objects inherit `constructor`, `toString`, ... from Object.prototype and
 * treat `__proto__` specially (zod's `z.record` silently drops it), so those names are refused here
 * and every lookup by field name checks own properties (`Object.hasOwn`).
 */
import { z } from 'zod'

// ---------------------------------------------------------------------------------------------
// Members, keys, services, agreements
// ---------------------------------------------------------------------------------------------

/** A member id (docs/DESIGN.md "Words"): lower-case letters, digits and hyphens, 2-63 characters. */
export const MEMBER_ID_PATTERN = '[a-z0-9][a-z0-9-]{1,62}'
export const MEMBER_ID_RE = new RegExp(`^${MEMBER_ID_PATTERN}$`)
export const memberIdSchema = z.string().regex(MEMBER_ID_RE, 'must be a member id (^[a-z0-9][a-z0-9-]{1,62}$)')

/** A bare key id: base64url alphabet, so it can never contain the `#` that separates it from the member. */
const KEY_ID_PATTERN = '[A-Za-z0-9_-]{1,64}'
export const KEY_ID_RE = new RegExp(`^${KEY_ID_PATTERN}$`)
export const keyIdSchema = z.string().regex(KEY_ID_RE, 'must be 1-64 base64url characters')

/** A JWS `kid`: `<member id>#<key id>` (docs/PROTOCOL.md). */
export const KID_RE = new RegExp(`^${MEMBER_ID_PATTERN}#${KEY_ID_PATTERN}$`)

/**
 * A service id: dot-separated lower-case labels, at least two (`identity.match`,
 * `credit.dishonest-debtor`), at most 128 characters. This is the grammar docs/PROTOCOL.md and
 * docs/OPERATIONS.md state; agreements used to accept a looser one (upper case, no dot), which
 * could name a service that no config could declare.
 */
export const SERVICE_ID_RE = /^(?=.{3,128}$)[a-z][a-z0-9]*(\.[a-z][a-z0-9-]*)+$/
export const serviceIdSchema = z.string().regex(SERVICE_ID_RE, 'must be a service id such as tax.compliance')

/** An agreement id: 1-128 characters A-Z a-z 0-9 . _ : - (colons allow `urn:`-style ids). */
export const AGREEMENT_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/
export const agreementIdSchema = z.string().regex(AGREEMENT_ID_RE, 'must be an agreement id (1-128 characters A-Z a-z 0-9 . _ : -)')

/** Exchange modes (docs/PROTOCOL.md, docs/SECURITY.md). */
const MODES = ['plain', 'oprf', 'he'] as const
export type Mode = (typeof MODES)[number]
export const modeSchema = z.enum(MODES)

/** An exchange id: 16-64 base64url characters (the consumer uses 128 random bits). */
export const XID_RE = /^[A-Za-z0-9_-]{16,64}$/
export const xidSchema = z.string().regex(XID_RE, 'xid: 16-64 base64url characters')

// ---------------------------------------------------------------------------------------------
// Digests, keys and signatures as text
// ---------------------------------------------------------------------------------------------

/**
 * 32 bytes in unpadded base64url (43 characters): a SHA-256 digest (`reqDigest`, evidence digests,
 * policy hashes, disclosure digests) or a raw Ed25519 public key (RFC 8037 §2 `x`).
 */
export const DIGEST_RE = /^[A-Za-z0-9_-]{43}$/
export const digestSchema = z.string().regex(DIGEST_RE, 'SHA-256 digest, base64url')
/** A public key as text: 32 raw Ed25519 bytes (43 characters) or, under the `sm` profile, the 65-byte SM2 point (87). */
export const PUBLIC_KEY_RE = /^(?:[A-Za-z0-9_-]{43}|[A-Za-z0-9_-]{87})$/
export const publicKeySchema = z.string().regex(PUBLIC_KEY_RE, '32-byte Ed25519 or 65-byte SM2 public key, base64url')
/** A 64-byte Ed25519 signature in unpadded base64url (86 characters). */
export const ED25519_SIGNATURE_RE = /^[A-Za-z0-9_-]{86}$/
export const ed25519SignatureSchema = z.string().regex(ED25519_SIGNATURE_RE, '64-byte Ed25519 signature, base64url')
/** SHA-256 as 64 lower-case hex digits (token hashes, TLS fingerprints, key hashes). */
export const SHA256_HEX_RE = /^[0-9a-f]{64}$/
export const sha256HexSchema = z.string().regex(SHA256_HEX_RE, 'must be 64 lower-case hex digits (SHA-256)')
/** An SM3 digest in hex (the `sm` profile's hash; same length as SHA-256). */
export const sm3HexSchema = z.string().regex(SHA256_HEX_RE, 'must be 64 lower-case hex digits (SM3)')
/** A 32-byte hash in padded standard base64 (signed-note checkpoints' root hash, C2SP tlog-checkpoint). */
export const HASH_BASE64_RE = /^[A-Za-z0-9+/]{43}=$/
export const hashBase64Schema = z.string().regex(HASH_BASE64_RE, '32-byte hash, base64')
/** A compact JWS (RFC 7515 §7.1): three base64url parts, the payload possibly empty. */
export const COMPACT_JWS_RE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+$/

// ---------------------------------------------------------------------------------------------
// Subject field names
// ---------------------------------------------------------------------------------------------

/** A subject field name as a service declares it: `id`, `name`, `taxYear`. */
export const FIELD_NAME_RE = /^[a-z][a-zA-Z0-9]{0,31}$/

/**
 * Names every plain object inherits from Object.prototype (ECMA-262 §20.1.3), fixed here rather
 * than read at run time so the grammar does not depend on what else a process has loaded.
 * `__proto__` and the `__define*__` names already fail FIELD_NAME_RE; they are listed to be plain.
 */
export const INHERITED_NAMES: ReadonlySet<string> = new Set([
  '__proto__', '__defineGetter__', '__defineSetter__', '__lookupGetter__', '__lookupSetter__',
  'constructor', 'hasOwnProperty', 'isPrototypeOf', 'propertyIsEnumerable', 'toLocaleString', 'toString', 'valueOf',
])

/** True when `s` is an acceptable field name: the grammar, and not a name objects inherit. */
export function isFieldName(s: unknown): s is string {
  return typeof s === 'string' && FIELD_NAME_RE.test(s) && !INHERITED_NAMES.has(s)
}

export const fieldNameSchema = z.string().refine(isFieldName, 'must be a field name (^[a-z][a-zA-Z0-9]{0,31}$, not an inherited name such as constructor)')

/**
 * A `{ <field name>: value }` map. The keys are checked on the raw input, before `z.record` builds
 * its output: zod skips a `__proto__` member without a word, and a signed query must not carry a
 * member the node then silently ignores. A key that is not a field name is not echoed in the issue
 * (it might be personal data); an inherited name is.
 */
export function fieldMapSchema<V extends z.ZodType>(value: V) {
  return z
    .unknown()
    .superRefine((raw, ctx) => {
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return // z.record reports it
      for (const key of Object.keys(raw)) {
        if (isFieldName(key)) continue
        if (INHERITED_NAMES.has(key)) ctx.addIssue({ code: 'custom', message: `${key} is an inherited name, not a field name`, input: raw })
        else ctx.addIssue({ code: 'custom', message: 'has a member whose name is not a field name', input: raw })
        return
      }
    })
    // The keys are checked above; a second check per key in z.record would cost as much again.
    .pipe(z.record(z.string(), value))
}
