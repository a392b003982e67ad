/**
 * Ed25519 key handling over node:crypto (RFC 8032 keys, RFC 8037 OKP JWK form).
 *
 * Private keys live in PKCS#8 PEM files with mode 0600 inside the node's `keys/` folder and are never
 * logged. Public keys travel as 32 raw bytes in base64url (the JWK `x` member).
 */
import { generateKeyPairSync, createPrivateKey, createPublicKey, randomBytes, type KeyObject } from 'node:crypto'
import { readFile, writeFile, stat, mkdir } from 'node:fs/promises'
import { dirname } from 'node:path'
import { VnError } from '../errors.js'
import { fromB64u } from '../util/base64url.js'

export interface Ed25519KeyPair {
  privateKey: KeyObject
  publicKey: KeyObject
}

export function generateEd25519(): Ed25519KeyPair {
  return generateKeyPairSync('ed25519')
}

/** 32 raw public-key bytes, base64url. */
export function publicKeyToB64u(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key
  const jwk = pub.export({ format: 'jwk' })
  if (jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') throw new TypeError('key: not an Ed25519 key')
  return jwk.x
}

/** Builds a public KeyObject from 32 raw bytes (base64url); throws TypeError naming `field`. */
export function publicKeyFromB64u(x: string, field = 'publicKey'): KeyObject {
  const raw = fromB64u(x)
  if (raw === undefined || raw.length !== 32) throw new TypeError(`${field}: expected 32 bytes of base64url`)
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
 * Loads an Ed25519 PKCS#8 PEM private key. Refuses files readable by group or others, as ssh does,
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
  if (key.asymmetricKeyType !== 'ed25519') throw new VnError('VN_ERR_KEY_FILE', `${path}: not an Ed25519 key`)
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
    throw new VnError('VN_ERR_KEY_FILE', `${path}: not a base64url Ed25519 public key`, { cause: e })
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
