/**
 * Authenticated encryption with SM4 (GB/T 32907-2016) for the national-algorithm profile.
 *
 * Node 20's OpenSSL 3.0 has no SM4-GCM, so sealing is encrypt-then-MAC (the generic composition
 * proven secure by Bellare and Namprempre, and the one ISO/IEC 19772 lists):
 *
 * - from the 32-byte sealing key K, two keys: K_enc = HMAC-SM3(K, "verinode/sm4-ctr")[0..16) and
 *   K_mac = HMAC-SM3(K, "verinode/hmac-sm3"), so neither is used for two purposes;
 * - a fresh random 16-byte initial counter block IV; C = SM4-CTR(K_enc, IV, P);
 * - T = HMAC-SM3(K_mac, len(AAD) as 8 bytes big-endian ‖ AAD ‖ IV ‖ C), 32 bytes;
 * - the sealed form is IV (the nonce) and C ‖ T. Opening checks T in constant time before any
 *   decryption, and fails as a whole on any change to IV, C, T or AAD.
 *
 * A random 128-bit counter block per message keeps counter blocks apart with overwhelming
 * probability for any realistic number of messages (each message spans far fewer than 2^32 blocks).
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { VnError } from '../errors.js'

const SM4_SEAL_KEY_BYTES = 32
const SM4_NONCE_BYTES = 16
const SM4_TAG_BYTES = 32

interface Keys { enc: Buffer; mac: Buffer }

const derived = new WeakMap<Uint8Array, Keys>()

function keysOf(key: Uint8Array): Keys {
  if (!(key instanceof Uint8Array) || key.length !== SM4_SEAL_KEY_BYTES) throw new VnError('VN_ERR_CONFIG_INVALID', `SM4 sealing key: must be ${SM4_SEAL_KEY_BYTES} bytes`)
  let k = derived.get(key)
  if (k === undefined) {
    k = {
      enc: createHmac('sm3', key).update('verinode/sm4-ctr').digest().subarray(0, 16),
      mac: createHmac('sm3', key).update('verinode/hmac-sm3').digest(),
    }
    derived.set(key, k)
  }
  return k
}

function tag(mac: Buffer, aad: Uint8Array, nonce: Uint8Array, ct: Uint8Array): Buffer {
  const len = Buffer.alloc(8)
  len.writeBigUInt64BE(BigInt(aad.length))
  return createHmac('sm3', mac).update(len).update(aad).update(nonce).update(ct).digest()
}

/** Seals `plaintext` bound to `aad`: the nonce, and the ciphertext followed by its 32-byte tag. */
export function sm4Seal(key: Uint8Array, plaintext: Uint8Array, aad: Uint8Array, nonce: Uint8Array = randomBytes(SM4_NONCE_BYTES)): { nonce: Uint8Array; ciphertext: Uint8Array } {
  const k = keysOf(key)
  if (nonce.length !== SM4_NONCE_BYTES) throw new VnError('VN_ERR_CONFIG_INVALID', `SM4 nonce: must be ${SM4_NONCE_BYTES} bytes`)
  const cipher = createCipheriv('sm4-ctr', k.enc, nonce)
  const ct = Buffer.concat([cipher.update(plaintext), cipher.final()])
  return { nonce: new Uint8Array(nonce), ciphertext: new Uint8Array(Buffer.concat([ct, tag(k.mac, aad, nonce, ct)])) }
}

/** Opens what `sm4Seal` made; any change to nonce, ciphertext, tag or `aad` fails with VN_ERR_SM_SEAL_AUTH. */
export function sm4Open(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Uint8Array {
  const k = keysOf(key)
  if (nonce.length !== SM4_NONCE_BYTES || sealed.length < SM4_TAG_BYTES) throw new VnError('VN_ERR_SM_SEAL_AUTH', 'SM4 sealed data has the wrong shape')
  const ct = sealed.subarray(0, sealed.length - SM4_TAG_BYTES)
  const expected = tag(k.mac, aad, nonce, ct)
  if (!timingSafeEqual(expected, sealed.subarray(sealed.length - SM4_TAG_BYTES))) throw new VnError('VN_ERR_SM_SEAL_AUTH', 'SM4 sealed data does not authenticate')
  const decipher = createDecipheriv('sm4-ctr', k.enc, nonce)
  return new Uint8Array(Buffer.concat([decipher.update(ct), decipher.final()]))
}
