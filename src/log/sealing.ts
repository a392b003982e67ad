/**
 * Sealing of disclosures with the node's evidence key (docs/DESIGN.md "The log").
 *
 * The SD-JWT-style disclosures of a `plain` exchange hold personal data, so they are never at rest
 * in the clear: AES-256-GCM under the node's 32-byte evidence key (NIST SP 800-38D), a random
 * 96-bit nonce per row (under the `sm` profile SM4-CTR + HMAC-SM3, crypto/sm4-aead.ts, 128-bit nonce), and the exchange's xid as additional authenticated data so a row cannot be
 * moved to another exchange. A store seals the rows it is given (evidence.ts validated them) and
 * opens them again for the auditor's export; this module knows nothing about where they are kept.
 *
 * JavaScript cannot zeroize the key or plaintext buffers; keep the evidence key in a file only the
 * node reads, and do not log this module's inputs.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { VnError } from '../errors.js'
import { activeProfile } from '../crypto/profile.js'
import { sm4Open, sm4Seal } from '../crypto/sm4-aead.js'

const EVIDENCE_KEY_BYTES = 32
const NONCE_BYTES = 12
const TAG_BYTES = 16

/** A sealed row: the nonce and the ciphertext ‖ tag. */
export interface SealedDisclosures {
  nonce: Uint8Array
  ciphertext: Uint8Array
}

/** @throws VN_ERR_CONFIG_INVALID unless `key` is a 32-byte Uint8Array (named `what` in the message) */
export function checkEvidenceKey(key: unknown, what: string): asserts key is Uint8Array {
  if (!(key instanceof Uint8Array) || key.length !== EVIDENCE_KEY_BYTES) throw new VnError('VN_ERR_CONFIG_INVALID', `${what}: must be ${EVIDENCE_KEY_BYTES} bytes`)
}

/**
 * Random nonces drawn 256 at a time: one `randomBytes` call costs as much as the AES-GCM seal
 * itself. Each nonce is still 96 fresh random bits used once (the pool is never reused), so the
 * random-nonce bound of NIST SP 800-38D §8.3 applies unchanged.
 */
const noncePool = { bytes: new Uint8Array(0), used: 0 }
function freshNonce(): Uint8Array {
  if (noncePool.used + NONCE_BYTES > noncePool.bytes.length) {
    noncePool.bytes = new Uint8Array(randomBytes(NONCE_BYTES * 256))
    noncePool.used = 0
  }
  // a copy, not a view: a sealed row may be cloned to another thread, which would copy the whole pool
  const nonce = noncePool.bytes.slice(noncePool.used, noncePool.used + NONCE_BYTES)
  noncePool.bytes.fill(0, noncePool.used, noncePool.used + NONCE_BYTES)
  noncePool.used += NONCE_BYTES
  return nonce
}

/** AES-256-GCM (`intl`) or SM4-CTR + HMAC-SM3 (`sm`, crypto/sm4-aead.ts) under the process's profile. */
function seal(key: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): SealedDisclosures {
  if (activeProfile().name === 'sm') return sm4Seal(key, plaintext, aad)
  const nonce = freshNonce()
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES })
  cipher.setAAD(aad)
  const ct = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()])
  return { nonce, ciphertext: new Uint8Array(ct) }
}

/** Opens what `seal` made; throws VN_ERR_EVIDENCE_CORRUPT (`what` names the row's kind) on any change. */
function open(key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, aad: Uint8Array, what: string): Buffer {
  if (activeProfile().name === 'sm') {
    try {
      return Buffer.from(sm4Open(key, nonce, ciphertext, aad))
    } catch (e) {
      throw new VnError('VN_ERR_EVIDENCE_CORRUPT', `${what}: authentication failed`, { cause: e })
    }
  }
  if (nonce.length !== NONCE_BYTES || ciphertext.length < TAG_BYTES) throw new VnError('VN_ERR_EVIDENCE_CORRUPT', `${what}: stored row has the wrong shape`)
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES })
    decipher.setAAD(aad)
    decipher.setAuthTag(ciphertext.subarray(ciphertext.length - TAG_BYTES))
    return Buffer.concat([decipher.update(ciphertext.subarray(0, ciphertext.length - TAG_BYTES)), decipher.final()])
  } catch (e) {
    throw new VnError('VN_ERR_EVIDENCE_CORRUPT', `${what}: authentication failed`, { cause: e })
  }
}

/**
 * Seal disclosures: AES-256-GCM (SM4 under `sm`), random nonce, AAD = xid. The row was validated
 * when it reached the store (evidence.ts `checkEvidenceRows`), so it is not checked again here.
 */
export function encryptDisclosures(key: Uint8Array, xid: string, disclosures: readonly string[]): SealedDisclosures {
  return seal(key, Buffer.from(JSON.stringify(disclosures), 'utf8'), Buffer.from(xid, 'utf8'))
}

/**
 * The additional data of sealed received bytes: the xid under a label of its own, so a sealed row
 * can be moved neither to another exchange nor into the disclosures (whose AAD is the bare xid;
 * an xid never holds a NUL).
 */
const receivedAad = (xid: string): Buffer => Buffer.from(`verinode/received\0${xid}`, 'utf8')

/** Seal the bytes of a refused peer answer: AES-256-GCM (SM4 under `sm`), random nonce, AAD bound to the xid. */
export function encryptReceived(key: Uint8Array, xid: string, bytes: Uint8Array): SealedDisclosures {
  return seal(key, bytes, receivedAad(xid))
}

/** Open sealed received bytes; any change to nonce, ciphertext, tag or xid fails with VN_ERR_EVIDENCE_CORRUPT. */
export function decryptReceived(key: Uint8Array, xid: string, nonce: Uint8Array, ciphertext: Uint8Array): Uint8Array {
  return new Uint8Array(open(key, nonce, ciphertext, receivedAad(xid), 'received bytes'))
}

/** Open sealed disclosures; any change to nonce, ciphertext, tag or xid fails with VN_ERR_EVIDENCE_CORRUPT. */
export function decryptDisclosures(key: Uint8Array, xid: string, nonce: Uint8Array, ciphertext: Uint8Array): string[] {
  const pt = open(key, nonce, ciphertext, Buffer.from(xid, 'utf8'), 'disclosures')
  try {
    const v: unknown = JSON.parse(pt.toString('utf8'))
    if (!Array.isArray(v) || v.some((d) => typeof d !== 'string')) throw new Error('not a string array')
    return v as string[]
  } catch (e) {
    throw new VnError('VN_ERR_EVIDENCE_CORRUPT', 'disclosures: authentication failed', { cause: e })
  }
}
