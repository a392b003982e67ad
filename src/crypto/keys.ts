/**
 * Key handling over node:crypto for both crypto profiles (profile.ts): Ed25519 (RFC 8032 keys,
 * RFC 8037 OKP JWK form) under `intl`, SM2 (EC keys on the curve SM2, OID 1.2.156.10197.1.301)
 * under `sm`.
 *
 * Private keys live in PKCS#8 PEM files with mode 0600 inside the node's `keys/` folder and are never
 * logged. Public keys travel in base64url: 32 raw bytes for Ed25519 (the JWK `x` member), the
 * 65-byte uncompressed point 04 ‖ x ‖ y for SM2. The length tells the two apart.
 */
import { generateKeyPairSync, createPrivateKey, createPublicKey, randomBytes, type KeyObject } from 'node:crypto'
import { readFile, writeFile, stat, mkdir } from 'node:fs/promises'
import { dirname } from 'node:path'
import { VnError } from '../errors.js'
import { fromB64u } from '../util/base64url.js'
import { profileOfKey, type ProfileName } from './profile.js'
import { generateSm2 } from './sm2.js'

export interface Ed25519KeyPair {
  privateKey: KeyObject
  publicKey: KeyObject
}

export function generateEd25519(): Ed25519KeyPair {
  return generateKeyPairSync('ed25519')
}

/** A fresh signing key pair of `profile`: Ed25519 (`intl`) or SM2 (`sm`). */
export const generateKeyPairFor = (profile: ProfileName): Ed25519KeyPair => (profile === 'sm' ? generateSm2() : generateEd25519())

// SubjectPublicKeyInfo of an SM2 key (id-ecPublicKey, named curve SM2) up to the point.
const SM2_SPKI_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a811ccf5501822d034200', 'hex')

/** The raw public key: 32 bytes (Ed25519) or the 65-byte uncompressed point (SM2). */
export function rawPublicKey(key: KeyObject): Buffer {
  const pub = key.type === 'private' ? createPublicKey(key) : key
  const p = profileOfKey(pub)
  if (p === 'sm') {
    const der = pub.export({ format: 'der', type: 'spki' })
    if (der.length !== SM2_SPKI_PREFIX.length + 65 || !der.subarray(0, SM2_SPKI_PREFIX.length).equals(SM2_SPKI_PREFIX)) throw new TypeError('key: unexpected SM2 SubjectPublicKeyInfo')
    return der.subarray(SM2_SPKI_PREFIX.length)
  }
  const jwk = pub.export({ format: 'jwk' })
  if (p !== 'intl' || typeof jwk.x !== 'string') throw new TypeError('key: neither an Ed25519 nor an SM2 key')
  return Buffer.from(jwk.x, 'base64url')
}

/** The raw public key (see rawPublicKey), base64url. */
export const publicKeyToB64u = (key: KeyObject): string => rawPublicKey(key).toString('base64url')

/**
 * Builds a public KeyObject from its raw bytes (base64url): 32 bytes are an Ed25519 key, 65 bytes
 * starting 04 an SM2 point (checked to be on the curve); throws TypeError naming `field`.
 */
export function publicKeyFromB64u(x: string, field = 'publicKey'): KeyObject {
  const raw = fromB64u(x)
  if (raw !== undefined && raw.length === 65 && raw[0] === 0x04) {
    try {
      return createPublicKey({ key: Buffer.concat([SM2_SPKI_PREFIX, raw]), format: 'der', type: 'spki' })
    } catch {
      throw new TypeError(`${field}: not a point of the SM2 curve`)
    }
  }
  if (raw === undefined || raw.length !== 32) throw new TypeError(`${field}: expected 32 (Ed25519) or 65 (SM2) bytes of base64url`)
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' })
}

/** Writes a private key as PKCS#8 PEM with mode 0600; refuses to overwrite an existing file. */
export async function writePrivateKey(path: string, key: KeyObject): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 })
  const pem = key.export({ format: 'pem', type: 'pkcs8' })
  await writeFile(path, pem, { mode: 0o600, flag: 'wx' })
}

export async function writePublicKey(path: string, key: KeyObject): Promise<void> {
  await mkdir(dirname(path), { recursive: true })
  await writeFile(path, `${publicKeyToB64u(key)}\n`, { mode: 0o644 })
}

/**
 * Loads an Ed25519 or SM2 PKCS#8 PEM private key. Refuses files readable by group or others, as ssh does,
 * so a key copied with the wrong mode is noticed before it is used.
 */
export async function loadPrivateKey(path: string): Promise<KeyObject> {
  let mode: number
  let pem: string
  try {
    mode = (await stat(path)).mode
    pem = await readFile(path, 'utf8')
  } catch (e) {
    throw new VnError('VN_ERR_KEY_FILE', `${path}: cannot be read`, { cause: e })
  }
  if (process.platform !== 'win32' && (mode & 0o077) !== 0) {
    throw new VnError('VN_ERR_KEY_FILE', `${path}: mode ${(mode & 0o777).toString(8)} is too permissive (want 0600)`)
  }
  let key: KeyObject
  try {
    key = createPrivateKey({ key: pem, format: 'pem' })
  } catch (e) {
    throw new VnError('VN_ERR_KEY_FILE', `${path}: not a PKCS#8 PEM private key`, { cause: e })
  }
  if (profileOfKey(key) === undefined) throw new VnError('VN_ERR_KEY_FILE', `${path}: neither an Ed25519 nor an SM2 key`)
  return key
}

/** Reads a public key file written by writePublicKey (one line of base64url). */
export async function loadPublicKey(path: string): Promise<KeyObject> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (e) {
    throw new VnError('VN_ERR_KEY_FILE', `${path}: cannot be read`, { cause: e })
  }
  try {
    return publicKeyFromB64u(text.trim(), path)
  } catch (e) {
    throw new VnError('VN_ERR_KEY_FILE', `${path}: not a base64url Ed25519 or SM2 public key`, { cause: e })
  }
}

/**
 * Loads a symmetric secret (the evidence key, the OPRF master seed) kept as one line of base64 in a
 * 0600 file. Refuses group/world-readable files and wrong lengths.
 */
export async function loadSecretFile(path: string, length = 32): Promise<Uint8Array> {
  let text: string
  try {
    if (process.platform !== 'win32' && ((await stat(path)).mode & 0o077) !== 0) {
      throw new VnError('VN_ERR_KEY_FILE', `${path}: mode is too permissive (want 0600)`)
    }
    text = await readFile(path, 'utf8')
  } catch (e) {
    if (e instanceof VnError) throw e
    throw new VnError('VN_ERR_KEY_FILE', `${path}: cannot be read`, { cause: e })
  }
  const key = Buffer.from(text.trim(), 'base64')
  if (key.length !== length) throw new VnError('VN_ERR_KEY_FILE', `${path}: expected ${length} bytes of base64`)
  return new Uint8Array(key)
}

/** Writes a fresh random secret of `length` bytes as base64 to a new 0600 file (never overwrites). */
export async function writeSecretFile(path: string, length = 32): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 })
  await writeFile(path, `${randomBytes(length).toString('base64')}\n`, { mode: 0o600, flag: 'wx' })
}
