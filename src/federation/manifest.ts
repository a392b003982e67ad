/**
 * The federation manifest: the one signed document every member shares (docs/DESIGN.md "Keys and the
 * federation"; the counterpart of X-Road's signed global configuration).
 *
 * It is a compact JWS (RFC 7515, `alg: EdDSA`, or `SM2SM3` under the `sm` profile, `typ:
 * vn-manifest+jws`) signed by the federation
 * root key, whose public half is each node's trust anchor (`keys/federation-root.pub`). The signer's
 * `kid` is `federation-root#<keyid>`; the authority tooling uses the RFC 7638 JWK thumbprint of the
 * root public key as `<keyid>` (see `rootKeyId`), so a kid names exactly one root key.
 *
 * Key ids inside the manifest are bare (`messageKeys[].kid = "k1"`); on the wire a member signs with
 * `kid: "<member id>#<key id>"`. Validity windows are half-open `[nbf, exp)` in milliseconds since
 * the epoch; a key without `exp` is valid until a newer manifest drops it (revocation).
 *
 * Verification walks these steps in order and stops at the first failure:
 *  1. JWS structure, `alg`, `typ`, root `kid` prefix and signature against the trust anchor;
 *  2. the payload schema (`VN_ERR_FED_MANIFEST_INVALID`, the detail names the zod path);
 *  3. expiry (`VN_ERR_FED_MANIFEST_EXPIRED`);
 *  4. rollback: `seq` below the last accepted one (`VN_ERR_FED_MANIFEST_ROLLBACK`).
 *
 * `profile` (absent: `intl`) names the federation's crypto profile (src/crypto/profile.ts). The root
 * key and every listed key must be of that profile; anything else is `VN_ERR_PROFILE_MISMATCH`.
 */
import { hash, type KeyObject } from 'node:crypto'
import { z } from 'zod'
import { signJwsJson, verifyJwsJson } from '../crypto/jws.js'
import { rawPublicKey } from '../crypto/keys.js'
import { PROFILES, profileOfKey, type ProfileName } from '../crypto/profile.js'
import { VnError, isVnError } from '../errors.js'
import { isValidUscc } from '../protocol/identifiers.js'
import { keyIdSchema, memberIdSchema, sha256HexSchema } from '../protocol/vocabulary.js'
import { ManifestGovernanceSchema } from '../protocol/governance.js'
import { fromB64u } from '../util/base64url.js'

export const MANIFEST_TYP = 'vn-manifest+jws'
const ROOT_KID_PREFIX = 'federation-root#'

/**
 * GB 32100-2015 shape: 2 code characters, 6-digit division code, 10 code characters (no I, O, S,
 * V, Z). The check characters are verified by `isValidUscc` (src/protocol/identifiers.ts).
 */
const USCC_RE = /^[0-9A-HJ-NP-RTUWXY]{2}[0-9]{6}[0-9A-HJ-NP-RTUWXY]{10}$/
const NO_CONTROL_RE = /^[^\p{Cc}]+$/u

const Millis = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)

export const ManifestKeySchema = z
  .strictObject({
    kid: keyIdSchema,
    // 32 raw Ed25519 public-key bytes (RFC 8037 §2 `x`), or under `sm` the 65-byte uncompressed SM2
    // point; strict unpadded base64url. Which one the manifest's profile allows is checked below.
    x: z.string().refine((x) => { const n = fromB64u(x)?.length; return n === 32 || n === 65 }, 'must be 32 (Ed25519) or 65 (SM2) bytes of base64url'),
    nbf: Millis,
    exp: Millis.optional(),
  })
  .refine((k) => k.exp === undefined || k.exp > k.nbf, { message: 'exp must be after nbf', path: ['exp'] })

export const MemberSchema = z
  .strictObject({
    id: memberIdSchema,
    name: z.string().min(1).max(200).regex(NO_CONTROL_RE, 'must not contain control characters'),
    uscc: z
      .string()
      .regex(USCC_RE, 'must be an 18-character unified social credit code')
      .refine(isValidUscc, 'check character does not match (GB 32100)'),
    role: z.enum(['department', 'auditor']),
    endpoint: z.url({ protocol: /^https?$/ }).max(2048).optional(),
    messageKeys: z.array(ManifestKeySchema).max(32),
    logKeys: z.array(ManifestKeySchema).max(32),
    /** superseded by `tlsPins`, never checked: kept so that manifests signed with it still parse */
    tlsFingerprint: sha256HexSchema.optional(),
    /**
     * SHA-256 of the SubjectPublicKeyInfo (DER) of each TLS key this member's node may present, as
     * server and as client (src/crypto/tls-cert.ts `spkiPin`). Several during a rotation.
     */
    tlsPins: z.array(sha256HexSchema).min(1).max(8).optional(),
  })
  .superRefine((m, ctx) => {
    // A department runs a node, so peers must know where; an auditor runs none.
    if (m.role === 'department' && m.endpoint === undefined) {
      ctx.addIssue({ code: 'custom', message: 'required for role department', path: ['endpoint'] })
    }
    if (m.role === 'auditor' && m.endpoint !== undefined) {
      ctx.addIssue({ code: 'custom', message: 'an auditor runs no node and has no endpoint', path: ['endpoint'] })
    }
    if (m.tlsPins !== undefined && new Set(m.tlsPins).size !== m.tlsPins.length) {
      ctx.addIssue({ code: 'custom', message: 'duplicate TLS pin', path: ['tlsPins'] })
    }
    // One kid names one key of this member, whichever list it is in.
    const seen = new Set<string>()
    for (const [list, keys] of [['messageKeys', m.messageKeys], ['logKeys', m.logKeys]] as const) {
      keys.forEach((k, i) => {
        if (seen.has(k.kid)) ctx.addIssue({ code: 'custom', message: `duplicate kid ${k.kid}`, path: [list, i, 'kid'] })
        seen.add(k.kid)
      })
    }
  })

export const ManifestSchema = z
  .strictObject({
    v: z.literal(1),
    /** the crypto profile every member follows (src/crypto/profile.ts); absent: `intl` */
    profile: z.enum(['intl', 'sm']).optional(),
    federation: z.string().min(1).max(100).regex(NO_CONTROL_RE, 'must not contain control characters'),
    seq: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
    iat: Millis,
    exp: Millis,
    members: z.array(MemberSchema).max(10_000),
    /**
     * The federation catalogue's rules (docs/GOVERNANCE.md): the one authoritative source member of
     * each data item (一数一源) and the negative list (负面清单). Signed with the rest; absent in
     * manifests made before it, which then name no source and list nothing.
     */
    governance: ManifestGovernanceSchema.optional(),
  })
  .superRefine((m, ctx) => {
    // A source is a department of this federation: only a department runs a node that answers.
    const roles = new Map(m.members.map((mem) => [mem.id, mem.role]))
    m.governance?.sources.forEach((s, i) => {
      const role = roles.get(s.member)
      if (role === undefined) ctx.addIssue({ code: 'custom', message: `member ${s.member} is not in this manifest`, path: ['governance', 'sources', i, 'member'] })
      else if (role !== 'department') ctx.addIssue({ code: 'custom', message: `member ${s.member} is not a department`, path: ['governance', 'sources', i, 'member'] })
    })
    if (m.exp <= m.iat) ctx.addIssue({ code: 'custom', message: 'exp must be after iat', path: ['exp'] })
    const ids = new Set<string>()
    m.members.forEach((mem, i) => {
      if (ids.has(mem.id)) ctx.addIssue({ code: 'custom', message: `duplicate member id ${mem.id}`, path: ['members', i, 'id'] })
      ids.add(mem.id)
    })
    // A TLS key identifies one member: the provider learns the client's member from it.
    const pins = new Map<string, string>()
    m.members.forEach((mem, i) => {
      for (const pin of mem.tlsPins ?? []) {
        const other = pins.get(pin)
        if (other !== undefined) ctx.addIssue({ code: 'custom', message: `TLS pin already listed for member ${other}`, path: ['members', i, 'tlsPins'] })
        pins.set(pin, mem.id)
      }
    })
  })

export type ManifestKey = z.infer<typeof ManifestKeySchema>
export type Member = z.infer<typeof MemberSchema>
export type MemberRole = Member['role']
export type Manifest = z.infer<typeof ManifestSchema>

/** `path.to.field: message` for the first zod issue; manifests hold no personal data. */
export function zodDetail(error: z.ZodError, prefix = ''): string {
  const issue = error.issues[0]
  if (issue === undefined) return `${prefix}invalid`
  const path = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '')
  return `${prefix}${path === '' ? '(root)' : path}: ${issue.message}`
}

/** Parses an untrusted manifest payload; throws VN_ERR_FED_MANIFEST_INVALID naming the zod path. */
function parseManifest(claims: unknown): Manifest {
  const r = ManifestSchema.safeParse(claims)
  if (!r.success) throw new VnError('VN_ERR_FED_MANIFEST_INVALID', zodDetail(r.error))
  assertOneProfile(r.data)
  return r.data
}

/** The manifest's crypto profile (absent: `intl`). */
export const profileOf = (m: Manifest): ProfileName => m.profile ?? 'intl'

/** Every listed key is of the manifest's profile; a mixed federation is refused (VN_ERR_PROFILE_MISMATCH). */
function assertOneProfile(m: Manifest): void {
  const profile = PROFILES[profileOf(m)]
  m.members.forEach((mem, i) => {
    for (const list of ['messageKeys', 'logKeys'] as const) {
      mem[list].forEach((k, j) => {
        if (fromB64u(k.x)?.length !== profile.publicKeyBytes) {
          throw new VnError('VN_ERR_PROFILE_MISMATCH', `members[${i}].${list}[${j}].x: not a key of profile ${profile.name} (${profile.publicKeyBytes} bytes)`)
        }
      })
    }
  })
}

/** Throws VN_ERR_PROFILE_MISMATCH unless the root key is of the manifest's profile. */
function assertRootProfile(m: Manifest, rootKey: KeyObject): void {
  const p = profileOfKey(rootKey)
  if (p !== profileOf(m)) throw new VnError('VN_ERR_PROFILE_MISMATCH', `federation root key: ${p === undefined ? 'of no known kind' : `of profile ${p}`}, the manifest names profile ${profileOf(m)}`)
}

/**
 * RFC 7638 JWK thumbprint (base64url) of a public key: of the OKP JWK with SHA-256 for Ed25519, of
 * the EC JWK (`crv: SM2`) with SM3 for SM2, so an `sm` federation uses no SHA-256.
 */
export function jwkThumbprint(key: KeyObject): string {
  const raw = rawPublicKey(key)
  // RFC 7638 §3.2: required members only, lexicographic order, no whitespace.
  if (profileOfKey(key) === 'sm') {
    const json = `{"crv":"SM2","kty":"EC","x":"${raw.subarray(1, 33).toString('base64url')}","y":"${raw.subarray(33).toString('base64url')}"}`
    return hash('sm3', json, 'base64url')
  }
  const json = `{"crv":"Ed25519","kty":"OKP","x":"${raw.toString('base64url')}"}`
  return hash('sha256', json, 'base64url')
}

/** The root signer's kid: `federation-root#<RFC 7638 thumbprint>`. */
export const rootKeyId = (rootPublicKey: KeyObject): string => `${ROOT_KID_PREFIX}${jwkThumbprint(rootPublicKey)}`

/**
 * A member key id derived from the public key (first 16 characters of its RFC 7638 thumbprint, 96
 * bits), so a node operator and the authority arrive at the same kid without coordinating.
 */
export const keyIdFor = (publicKey: KeyObject): string => jwkThumbprint(publicKey).slice(0, 16)

/** Signs a manifest payload with the federation root key; the payload is schema-checked first. */
export function signManifest(m: Manifest, rootPrivateKey: KeyObject, rootKid: string): string {
  if (!rootKid.startsWith(ROOT_KID_PREFIX) || rootKid.length === ROOT_KID_PREFIX.length) {
    throw new VnError('VN_ERR_FED_MANIFEST_INVALID', `rootKid must start with ${ROOT_KID_PREFIX}`)
  }
  const parsed = parseManifest(m)
  assertRootProfile(parsed, rootPrivateKey)
  return signJwsJson(parsed, rootPrivateKey, rootKid, MANIFEST_TYP)
}

export interface VerifyManifestOptions {
  /** the instant to check expiry against, ms */
  now: number
  /** the lowest acceptable seq (the last one accepted); lower is a rollback */
  minSeq?: number
  /** skip step 3: the auditor checks historical manifests, which have long expired */
  allowExpired?: boolean
}

/** Steps 1-4 of the module comment; returns the parsed payload. */
export function verifyManifest(jws: string, rootPublicKey: KeyObject, opts: VerifyManifestOptions): Manifest {
  // Step 1: signature against the trust anchor. Every JWS failure is a manifest failure here,
  // with the JWS code kept in the detail so an operator can tell a bad signature from a bad file.
  let claims: unknown
  try {
    claims = verifyJwsJson(
      jws,
      (kid) => {
        if (!kid.startsWith(ROOT_KID_PREFIX) || kid.length === ROOT_KID_PREFIX.length) {
          throw new VnError('VN_ERR_JWS_UNKNOWN_KID', `kid must start with ${ROOT_KID_PREFIX}`)
        }
        return rootPublicKey
      },
      MANIFEST_TYP,
    ).claims
  } catch (e) {
    if (isVnError(e)) throw new VnError('VN_ERR_FED_MANIFEST_INVALID', `signature: ${e.code}${e.detail === undefined ? '' : ` (${e.detail})`}`, { cause: e })
    throw e
  }
  // Step 2: schema.
  const m = parseManifest(claims)
  assertRootProfile(m, rootPublicKey)
  // Step 3: expiry; exp is exclusive like every window here.
  if (opts.allowExpired !== true && opts.now >= m.exp) {
    throw new VnError('VN_ERR_FED_MANIFEST_EXPIRED', `seq ${m.seq} expired at ${new Date(m.exp).toISOString()}`)
  }
  // Step 4: rollback. Equal seq is allowed (re-reading the same file); callers that hold a
  // manifest compare hashes to catch two different manifests with one seq.
  if (opts.minSeq !== undefined && m.seq < opts.minSeq) {
    throw new VnError('VN_ERR_FED_MANIFEST_ROLLBACK', `seq ${m.seq} is below ${opts.minSeq}`)
  }
  return m
}
