/**
 * Compact JWS (RFC 7515) with EdDSA/Ed25519 (RFC 8037) over node:crypto, or, under the `sm` crypto
 * profile (profile.ts), with `alg: SM2SM3`: SM2 with SM3 and the default ID, r ‖ s (64 bytes).
 * The key decides the algorithm: a header whose `alg` is not the signing key's is refused.
 *
 * jose is the reference for JWS rules (test/crypto/jws.test.ts proves jose accepts everything this
 * signs and this rejects everything jose rejects); this thin path exists because the exchange path
 * signs and verifies on every request and jose's async WebCrypto round trip costs a third of the
 * throughput (FACTS.md). Only `alg: EdDSA` and `alg: SM2SM3` are accepted (each only with a key of
 * its kind), `crit` is refused, `b64: false` is refused. jose knows no SM2, so SM2SM3 tokens are
 * checked by this code alone, under the same rules.
 */
import { sign, verify, type KeyObject } from 'node:crypto'
import { PROFILES, profileOfKey, signBytes, verifyBytes } from './profile.js'
import { VnError } from '../errors.js'
import { b64u, fromB64u } from '../util/base64url.js'
import { parseStrictJson, StrictJsonError } from '../util/strict-json.js'
import type { Ed25519Batcher, Ed25519Call } from './ed25519-batch.js'

export interface JwsHeader {
  alg: 'EdDSA' | 'SM2SM3'
  kid: string
  typ?: string
  [k: string]: unknown
}

export interface VerifiedJws {
  header: JwsHeader
  payload: Buffer
  /** the signing input's SHA-256 is not computed here; callers digest the compact string */
  kid: string
}

/** Looks up the public key for a `kid`; throws a VnError (unknown or not valid) when there is none. */
export type KeyResolver = (kid: string, header: JwsHeader) => KeyObject

export const MAX_JWS_LENGTH = 16 * 1024 * 1024

/** The `alg` of a signing key: EdDSA for Ed25519, SM2SM3 for SM2. */
function algOf(key: KeyObject): string {
  const p = profileOfKey(key)
  if (p === undefined) throw new VnError('VN_ERR_PROFILE_MISMATCH', 'signing key: neither an Ed25519 nor an SM2 key')
  return PROFILES[p].jwsAlg
}

function signingInput(payload: Uint8Array | string, kid: string, typ: string | undefined, key: KeyObject): string {
  // Fixed member order keeps the header bytes stable for a given key; RFC 7515 does not require it.
  const alg = algOf(key)
  const header = typ === undefined ? { alg, kid } : { alg, kid, typ }
  const h = Buffer.from(JSON.stringify(header)).toString('base64url')
  const p = typeof payload === 'string' ? Buffer.from(payload).toString('base64url') : b64u(payload)
  return `${h}.${p}`
}

export function signJws(payload: Uint8Array | string, privateKey: KeyObject, kid: string, typ?: string): string {
  const input = signingInput(payload, kid, typ, privateKey)
  const sig = signBytes(Buffer.from(input, 'ascii'), privateKey)
  return `${input}.${sig.toString('base64url')}`
}

export const signJwsJson = (payload: unknown, privateKey: KeyObject, kid: string, typ?: string): string =>
  signJws(JSON.stringify(payload), privateKey, kid, typ)

/**
 * signJws with the Ed25519 signature made off the event loop: on `ed`'s worker when given (batched,
 * see ed25519-batch.ts), else on libuv's thread pool (see verifyJwsAsync).
 */
export async function signJwsJsonAsync(payload: unknown, privateKey: KeyObject, kid: string, typ?: string, ed?: Ed25519Batcher, call?: Ed25519Call): Promise<string> {
  const input = signingInput(JSON.stringify(payload), kid, typ, privateKey)
  const data = Buffer.from(input, 'ascii')
  // SM2 (the `sm` profile) on `ed`'s workers too; without them, on this thread: node:crypto's own
  // SM2 signs with an empty ID (docs/NATIONAL-ALGORITHMS.md), so its callback form is never used.
  const sig = ed !== undefined
    ? await ed.sign(data, privateKey, call)
    : profileOfKey(privateKey) === 'sm'
    ? signBytes(data, privateKey)
    : await new Promise<Buffer>((resolve, reject) => {
      sign(null, data, privateKey, (err, result) => (err === null ? resolve(result) : reject(err)))
    })
  return `${input}.${sig.toString('base64url')}`
}

/** Parses the protected header without verifying: used to find the signer before key lookup. */
export function peekJws(jws: unknown): { header: JwsHeader; parts: [string, string, string] } {
  if (typeof jws !== 'string' || jws.length === 0) throw new VnError('VN_ERR_JWS_MALFORMED', 'expected a compact JWS string')
  if (jws.length > MAX_JWS_LENGTH) throw new VnError('VN_ERR_JWS_MALFORMED', 'JWS too long')
  const parts = jws.split('.')
  if (parts.length !== 3) throw new VnError('VN_ERR_JWS_MALFORMED', 'compact JWS must have three parts')
  const [h, p, s] = parts as [string, string, string]
  const hb = fromB64u(h)
  if (hb === undefined || h.length === 0) throw new VnError('VN_ERR_JWS_MALFORMED', 'protected header is not base64url')
  const header = parseJwsJson(hb, 'protected header')
  if (header === null || typeof header !== 'object' || Array.isArray(header)) {
    throw new VnError('VN_ERR_JWS_MALFORMED', 'protected header is not a JSON object')
  }
  const hd = header as Record<string, unknown>
  // RFC 7515 §4.1.1 / RFC 8725 §3.1: never let the token choose the algorithm.
  if (hd.alg !== 'EdDSA' && hd.alg !== 'SM2SM3') throw new VnError('VN_ERR_JWS_ALG', `alg ${JSON.stringify(String(hd.alg)).slice(0, 40)} is not allowed`)
  // RFC 7515 §4.1.11: we understand no extension, so any crit must be refused.
  if ('crit' in hd) throw new VnError('VN_ERR_JWS_HEADER', 'crit is not supported')
  if ('b64' in hd) throw new VnError('VN_ERR_JWS_HEADER', 'unencoded payload (b64) is not supported')
  if ('jwk' in hd || 'jku' in hd || 'x5u' in hd || 'x5c' in hd) {
    throw new VnError('VN_ERR_JWS_HEADER', 'embedded or referenced keys are not accepted; keys come from the manifest')
  }
  if (typeof hd.kid !== 'string' || hd.kid.length === 0 || hd.kid.length > 200) {
    throw new VnError('VN_ERR_JWS_HEADER', 'kid must be a non-empty string')
  }
  if ('typ' in hd && typeof hd.typ !== 'string') throw new VnError('VN_ERR_JWS_HEADER', 'typ must be a string')
  return { header: hd as JwsHeader, parts: [h, p, s] }
}

export interface PreparedVerify {
  header: JwsHeader
  payload: Buffer
  input: Buffer
  sig: Buffer
  key: KeyObject
}

/**
 * Everything before the signature check: structure, header rules, typ, key lookup (same errors as
 * verifyJws). The offline auditor prepares many, then checks their signatures in batches.
 */
export function prepareVerify(
  jws: unknown, resolveKey: KeyResolver, expectTyp: string | undefined,
  /** what the caller already has of this very `jws`: peekJws's result and the decoded payload */
  known?: { peeked: ReturnType<typeof peekJws>; payload: Buffer },
): PreparedVerify {
  const { header, parts } = known?.peeked ?? peekJws(jws)
  const [h, p, s] = parts
  if (expectTyp !== undefined && header.typ !== expectTyp) {
    throw new VnError('VN_ERR_JWS_HEADER', `typ must be ${expectTyp}`)
  }
  const payload = known?.payload ?? fromB64u(p)
  if (payload === undefined) throw new VnError('VN_ERR_JWS_MALFORMED', 'payload is not base64url')
  const sig = fromB64u(s)
  if (sig === undefined || sig.length !== 64) throw new VnError('VN_ERR_JWS_MALFORMED', 'signature is not 64 bytes of base64url')
  const key = resolveKey(header.kid, header)
  // The key, not the token, decides the algorithm (RFC 8725 §3.1).
  if (header.alg !== algOf(key)) throw new VnError('VN_ERR_JWS_ALG', `alg ${header.alg} does not match the ${header.alg === 'EdDSA' ? 'SM2' : 'Ed25519'} key of ${header.kid}`)
  return { header, payload, input: Buffer.from(`${h}.${p}`, 'ascii'), sig, key }
}

/**
 * Verifies a compact JWS (RFC 7515 §5.2): structure, header rules, key lookup, signature.
 * Throws VnError with a VN_ERR_JWS_* code (or whatever the resolver throws).
 */
export function verifyJws(jws: unknown, resolveKey: KeyResolver, expectTyp?: string): VerifiedJws {
  const v = prepareVerify(jws, resolveKey, expectTyp)
  if (!verifyBytes(v.input, v.key, v.sig)) throw new VnError('VN_ERR_JWS_SIGNATURE')
  return { header: v.header, payload: v.payload, kid: v.header.kid }
}

/**
 * verifyJws with the Ed25519 check off the event loop, so it is free for other requests while the
 * check runs: on `ed`'s workers when given (batched, see ed25519-batch.ts; the provider's hot
 * path), else on libuv's thread pool (node:crypto's callback form). Same checks, same errors, as
 * verifyJws.
 */
export async function verifyJwsAsync(jws: unknown, resolveKey: KeyResolver, expectTyp?: string, ed?: Ed25519Batcher, call?: Ed25519Call): Promise<VerifiedJws> {
  const v = prepareVerify(jws, resolveKey, expectTyp)
  const ok = ed !== undefined
    ? await ed.verify(v.input, v.key, v.sig, call)
    : v.header.alg === 'SM2SM3'
    ? verifyBytes(v.input, v.key, v.sig)
    : await new Promise<boolean>((resolve, reject) => {
      verify(null, v.input, v.key, v.sig, (err, result) => (err === null ? resolve(result) : reject(err)))
    })
  if (!ok) throw new VnError('VN_ERR_JWS_SIGNATURE')
  return { header: v.header, payload: v.payload, kid: v.header.kid }
}

/**
 * A JWS part's JSON (RFC 7515 §5.2 steps 3 and 8): strict UTF-8, and no object with a member name
 * twice (step 4), so every reader of the signed bytes, the auditor's included, sees the same values.
 * @throws VnError VN_ERR_JWS_MALFORMED naming the part and the problem.
 */
export function parseJwsJson(bytes: Uint8Array, part: 'protected header' | 'payload'): unknown {
  try {
    return parseStrictJson(bytes)
  } catch (e) {
    if (e instanceof StrictJsonError) throw new VnError('VN_ERR_JWS_MALFORMED', `${part} is ${e.problem === 'duplicate member names' ? 'JSON with duplicate member names' : e.problem}`)
    throw e
  }
}

/** The JSON payload of a compact JWS without verifying it (the auditor reads before it verifies). */
export function unverifiedJwsPayload(jws: string): unknown {
  const p = jws.split('.')
  const b = p.length === 3 ? fromB64u(p[1] as string) : undefined
  if (b === undefined) throw new VnError('VN_ERR_JWS_MALFORMED', 'payload is not base64url')
  return parseJwsJson(b, 'payload')
}

function parseClaims(v: VerifiedJws): VerifiedJws & { claims: unknown } {
  return { ...v, claims: parseJwsJson(v.payload, 'payload') }
}

/** verifyJws, then parse the payload as a JSON object. */
export function verifyJwsJson(jws: unknown, resolveKey: KeyResolver, expectTyp?: string): VerifiedJws & { claims: unknown } {
  return parseClaims(verifyJws(jws, resolveKey, expectTyp))
}

/** verifyJwsAsync, then parse the payload as a JSON object. */
export async function verifyJwsJsonAsync(jws: unknown, resolveKey: KeyResolver, expectTyp?: string, ed?: Ed25519Batcher, call?: Ed25519Call): Promise<VerifiedJws & { claims: unknown }> {
  return parseClaims(await verifyJwsAsync(jws, resolveKey, expectTyp, ed, call))
}
