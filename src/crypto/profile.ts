/**
 * The crypto profile of a federation (docs/NATIONAL-ALGORITHMS.md, docs/PROTOCOL.md "Crypto
 * profiles"): which signature, hash and sealing algorithms every member, the auditor and every CLI
 * command use. The authority chooses it in the signed manifest (`profile`, absent = `intl`).
 *
 * | | `intl` | `sm` |
 * |---|---|---|
 * | signatures | Ed25519 (JWS `EdDSA`) | SM2 with SM3, ID 1234567812345678 (JWS `SM2SM3`) |
 * | public key on the wire | 32 raw bytes | 65 bytes, the uncompressed point 04 ‖ x ‖ y |
 * | every digest | SHA-256 | SM3 |
 * | sealing evidence | AES-256-GCM | SM4-CTR + HMAC-SM3 (sm4-aead.ts) |
 * | signed-note types | 0x01, cosignature 0x04 | 0xfe, cosignature 0xfd (verinode's own) |
 *
 * One process serves one federation, so the profile is process-wide: `useProfile` is called once
 * the manifest is known (the node's start, the auditor's export reader, the demo, the CLI), before
 * any digest is made. It is handed to worker threads started afterwards through
 * `setEnvironmentData`, so the log writer and the auditor's workers hash the same way. Signatures
 * do not depend on the process-wide setting: the key decides (`profileOfKey`), and a JWS whose
 * `alg` does not match its key, or a key of the other profile, is refused.
 */
import { hash, sign, verify, type KeyObject } from 'node:crypto'
import { getEnvironmentData, setEnvironmentData } from 'node:worker_threads'
import { VnError } from '../errors.js'
import { sm2PrivateKeyFromKeyObject, sm2PublicKeyFromKeyObject, sm2Sign, sm2Verify, type Sm2PrivateKey, type Sm2PublicKey } from './sm2.js'

export type ProfileName = 'intl' | 'sm'

export interface CryptoProfile {
  readonly name: ProfileName
  /** the JWS `alg` value (RFC 7515 §4.1.1) */
  readonly jwsAlg: 'EdDSA' | 'SM2SM3'
  /** node:crypto's name of the one digest */
  readonly hashAlg: 'sha256' | 'sm3'
  /** length of a public key on the wire (manifest `x`, key files) */
  readonly publicKeyBytes: number
  /** C2SP signed-note signature type of a checkpoint signature, and of a witness cosignature */
  readonly noteSigType: number
  readonly cosignatureSigType: number
}

export const PROFILES: Readonly<Record<ProfileName, CryptoProfile>> = {
  intl: { name: 'intl', jwsAlg: 'EdDSA', hashAlg: 'sha256', publicKeyBytes: 32, noteSigType: 0x01, cosignatureSigType: 0x04 },
  sm: { name: 'sm', jwsAlg: 'SM2SM3', hashAlg: 'sm3', publicKeyBytes: 65, noteSigType: 0xfe, cosignatureSigType: 0xfd },
}

export const isProfileName = (v: unknown): v is ProfileName => v === 'intl' || v === 'sm'

const ENV_KEY = 'verinode/crypto-profile'

function initial(): CryptoProfile {
  const v = getEnvironmentData(ENV_KEY)
  return isProfileName(v) ? PROFILES[v] : PROFILES.intl
}

let active: CryptoProfile = initial()

/** The process's profile (`intl` until `useProfile` says otherwise). */
export const activeProfile = (): CryptoProfile => active

/** Makes `name` the process's profile, for this thread and every worker started after. */
export function useProfile(name: ProfileName | undefined): CryptoProfile {
  active = PROFILES[name ?? 'intl']
  setEnvironmentData(ENV_KEY, active.name)
  return active
}

/** The profile's digest (SHA-256 or SM3) of `data`, 32 bytes. */
export function digest(data: Uint8Array | string): Buffer {
  return hash(active.hashAlg, data, 'buffer')
}

/** digest, base64url */
export const digestB64u = (data: Uint8Array | string): string => hash(active.hashAlg, data, 'base64url')

// DER of the named curve SM2 (OID 1.2.156.10197.1.301), as SPKI and PKCS#8 carry it.
const SM2_CURVE_OID = Buffer.from('06082a811ccf5501822d', 'hex')
const sm2Imported = new WeakMap<KeyObject, boolean>()

/**
 * Which profile a key belongs to, or undefined for any other kind of key. Node names a generated
 * SM2 key `ec` on the curve SM2, but one read from a PKCS#8 or SPKI file has no type it can name
 * (OpenSSL 3 decodes it as an SM2 key): such a key is recognised by the curve OID in its DER.
 */
export function profileOfKey(key: KeyObject): ProfileName | undefined {
  if (key.asymmetricKeyType === 'ed25519') return 'intl'
  if (key.asymmetricKeyType === 'ec') return key.asymmetricKeyDetails?.namedCurve === 'SM2' ? 'sm' : undefined
  if (key.asymmetricKeyType !== undefined || key.type === 'secret') return undefined
  let sm = sm2Imported.get(key)
  if (sm === undefined) {
    try {
      const der = key.type === 'private' ? key.export({ format: 'der', type: 'pkcs8' }) : key.export({ format: 'der', type: 'spki' })
      sm = der.subarray(0, 40).includes(SM2_CURVE_OID)
    } catch {
      sm = false
    }
    sm2Imported.set(key, sm)
  }
  return sm ? 'sm' : undefined
}

/** Throws VN_ERR_PROFILE_MISMATCH unless `key` belongs to `profile`; `what` names the key (no key material). */
export function assertKeyProfile(key: KeyObject, profile: ProfileName, what: string): void {
  const p = profileOfKey(key)
  if (p !== profile) throw new VnError('VN_ERR_PROFILE_MISMATCH', `${what}: ${p === undefined ? 'neither an Ed25519 nor an SM2 key' : `a key of profile ${p}`}, the federation uses profile ${profile}`)
}

/** `make(key)`, made once per KeyObject. */
function memoPerKey<T>(make: (key: KeyObject) => T): (key: KeyObject) => T {
  const made = new WeakMap<KeyObject, T>()
  return (key) => {
    let v = made.get(key)
    if (v === undefined) {
      v = make(key)
      made.set(key, v)
    }
    return v
  }
}

const sm2PrivateOf: (key: KeyObject) => Sm2PrivateKey = memoPerKey(sm2PrivateKeyFromKeyObject)
const sm2PublicOf: (key: KeyObject) => Sm2PublicKey = memoPerKey(sm2PublicKeyFromKeyObject)

/** A 64-byte signature of `data`: Ed25519, or SM2 with SM3 and the default ID (r ‖ s), by the key's kind. */
export function signBytes(data: Uint8Array, privateKey: KeyObject): Buffer {
  const p = profileOfKey(privateKey)
  if (p === 'sm') return Buffer.from(sm2Sign(sm2PrivateOf(privateKey), data))
  if (p === 'intl') return sign(null, data, privateKey)
  throw new VnError('VN_ERR_PROFILE_MISMATCH', 'signing key: neither an Ed25519 nor an SM2 key')
}

/** Whether `sig` is the key's signature of `data` (see signBytes); false for a key of neither kind. */
export function verifyBytes(data: Uint8Array, publicKey: KeyObject, sig: Uint8Array): boolean {
  const p = profileOfKey(publicKey)
  if (p === 'sm') return sm2Verify(sm2PublicOf(publicKey), data, sig)
  if (p === 'intl') return sig.length === 64 && verify(null, data, publicKey, sig)
  return false
}
