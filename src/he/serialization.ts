/**
 * Wire form of `he`-mode ciphertexts and public keys, and the strict checks made before SEAL sees
 * a byte of untrusted input.
 *
 * The wire form is SEAL's own serialization (Microsoft SEAL 4.1 `Serialization::Save`): a 16-byte
 * `SEALHeader` (magic 0xA15E, header size 0x10, version 4.1, compression mode, reserved, total
 * size as u64 little-endian) followed by the object's members, compressed with zlib/deflate
 * (compression mode 1, RFC 1950). Any SEAL 4.1 can load it.
 *
 * Why deflate and not SEAL's default zstd: Node 20 has no zstd, so a zstd body could only be
 * decompressed inside the WASM module, after the fact and without an output bound (a
 * decompression bomb would exhaust WASM memory and abort the module). Deflate is decompressed
 * here by node:zlib with a hard `maxOutputLength`, the metadata is checked, and SEAL is handed the
 * uncompressed form (mode 0), which it only parses. zstd would save ~2 % on these random-looking
 * coefficients; not worth the risk. Mode 0 (uncompressed) is accepted too.
 *
 * Checks, in order (all before SEAL): wire length within the kind's maximum; SEALHeader fields;
 * declared size == length; bounded inflate that consumes the whole body; then the members
 * (Ciphertext::save_members layout of SEAL 4.1): parms_id == the expected level of this context
 * (SEAL's hash of the parameter set), NTT flag, size 2, N, number of primes, scale 1, correction
 * factor 1, the coefficient array's own header and length, and for seeded objects the 81-byte
 * PRNG-seed trailer. Queries and public keys must be seeded (half size; for keys it also means
 * the uniform half `a` is expanded by SEAL's PRNG and cannot be chosen by the sender); answers
 * are never seeded. Only then `loadArray` runs, inside try/catch, which
 * also checks every coefficient is reduced (`is_valid_for`). Any failure is a VnError:
 * VN_ERR_HE_CIPHERTEXT for ciphertexts, VN_ERR_HE_KEY for keys.
 */
import { createHash } from 'node:crypto'
import { deflateSync, inflateSync } from 'node:zlib'
import type { CipherText } from 'node-seal/implementation/cipher-text.js'
import type { PublicKey } from 'node-seal/implementation/public-key.js'
import { VnError, type ErrorCode } from '../errors.js'
import { SEAL_VERSION, type HeContext } from './context.js'

/** What a blob is supposed to be; decides the expected level, layout and error code. */
export type HeObjectKind = 'query' | 'result' | 'publicKey'

const MAGIC = 0xa15e
const HEADER = 16
const COMPR_NONE = 0
const COMPR_ZLIB = 1
/** Offsets in Ciphertext::save_members (SEAL 4.1), counted from the start of the blob. */
const OFF_PARMS_ID = 16
const OFF_NTT = 48
const OFF_SIZE = 49
const OFF_N = 57
const OFF_K = 65
const OFF_SCALE = 73
const OFF_CORRECTION = 81
const OFF_DATA_HEADER = 89
const OFF_COUNT = 105
const OFF_DATA = 113
/** SEALHeader + prng_type (1 byte) + 64-byte seed of a seeded (half-size) object. */
const SEED_TRAILER = 81

/** Deflate level for outgoing blobs: 1 is as small as 6 on random coefficients and faster. */
const DEFLATE_LEVEL = 1

interface Layout {
  parmsId: BigUint64Array
  ntt: number
  primes: number
  seeded: readonly boolean[]
}

function layoutOf(he: HeContext, kind: HeObjectKind): Layout {
  switch (kind) {
    case 'query':
      return { parmsId: he.firstParmsId, ntt: 0, primes: he.firstLevelPrimes, seeded: [true] }
    case 'result':
      return { parmsId: he.lastParmsId, ntt: 0, primes: he.lastLevelPrimes, seeded: [false] }
    case 'publicKey':
      return { parmsId: he.keyParmsId, ntt: 1, primes: he.keyLevelPrimes, seeded: [true] }
  }
}

function rawSize(he: HeContext, primes: number, seeded: boolean): number {
  const n = he.slotCount
  return seeded ? OFF_DATA + n * primes * 8 + SEED_TRAILER : OFF_DATA + 2 * n * primes * 8
}

/** Largest wire size accepted for a kind (uncompressed size plus deflate's worst-case overhead). */
export function maxWireBytes(he: HeContext, kind: HeObjectKind): number {
  const l = layoutOf(he, kind)
  const raw = Math.max(...l.seeded.map((s) => rawSize(he, l.primes, s)))
  return raw + Math.ceil(raw / 1000) + 64
}

const codeOf = (kind: HeObjectKind): ErrorCode => (kind === 'publicKey' ? 'VN_ERR_HE_KEY' : 'VN_ERR_HE_CIPHERTEXT')

function writeHeader(out: Uint8Array, compr: number, size: number): void {
  const dv = new DataView(out.buffer, out.byteOffset, HEADER)
  dv.setUint16(0, MAGIC, true)
  out[2] = HEADER
  out[3] = SEAL_VERSION.major
  out[4] = SEAL_VERSION.minor
  out[5] = compr
  dv.setUint16(6, 0, true)
  dv.setBigUint64(8, BigInt(size), true)
}

function headerOk(b: Uint8Array, at: number, compr: number, size: number): boolean {
  if (b.length < at + HEADER) return false
  const dv = new DataView(b.buffer, b.byteOffset + at, HEADER)
  return (
    dv.getUint16(0, true) === MAGIC &&
    b[at + 2] === HEADER &&
    b[at + 3] === SEAL_VERSION.major &&
    b[at + 4] === SEAL_VERSION.minor &&
    b[at + 5] === compr &&
    dv.getUint16(6, true) === 0 &&
    dv.getBigUint64(8, true) === BigInt(size)
  )
}

/** Turn SEAL's uncompressed serialization (mode 0) into the deflated wire form (mode 1). */
export function compressSealBlob(raw: Uint8Array): Uint8Array {
  const body = deflateSync(raw.subarray(HEADER), { level: DEFLATE_LEVEL })
  const out = new Uint8Array(HEADER + body.length)
  writeHeader(out, COMPR_ZLIB, out.length)
  out.set(body, HEADER)
  return out
}

/**
 * Check a wire blob of the given kind and return SEAL's uncompressed form of it, ready for
 * `loadArray`. Throws VN_ERR_HE_CIPHERTEXT / VN_ERR_HE_KEY naming `field`.
 */
export function checkSealBlob(he: HeContext, bytes: unknown, kind: HeObjectKind, field: string): Uint8Array {
  const code = codeOf(kind)
  const fail = (why: string): never => {
    throw new VnError(code, `${field}: ${why}`)
  }
  if (!(bytes instanceof Uint8Array)) return fail('not binary')
  if (bytes.length < HEADER) return fail('shorter than a SEAL header')
  if (bytes.length > maxWireBytes(he, kind)) return fail('larger than the maximum for its kind')
  const compr = bytes[5]
  if (compr !== COMPR_NONE && compr !== COMPR_ZLIB) return fail('compression mode not accepted (only none or zlib)')
  if (!headerOk(bytes, 0, compr, bytes.length)) return fail('bad SEAL header (magic, version or declared size)')

  const layout = layoutOf(he, kind)
  const sizes = layout.seeded.map((s) => rawSize(he, layout.primes, s))
  let raw: Uint8Array
  if (compr === COMPR_NONE) {
    raw = bytes
  } else {
    const maxBody = Math.max(...sizes) - HEADER
    let inflated: { buffer: Buffer; engine: { bytesWritten: number } }
    try {
      inflated = inflateSync(bytes.subarray(HEADER), { maxOutputLength: maxBody, info: true }) as unknown as typeof inflated
    } catch {
      return fail('compressed body is corrupt or inflates beyond the maximum')
    }
    if (inflated.engine.bytesWritten !== bytes.length - HEADER) return fail('trailing bytes after the compressed body')
    raw = new Uint8Array(HEADER + inflated.buffer.length)
    writeHeader(raw, COMPR_NONE, raw.length)
    raw.set(inflated.buffer, HEADER)
  }

  const which = sizes.indexOf(raw.length)
  if (which < 0) return fail('length does not match the parameter set')
  const seeded = layout.seeded[which] as boolean
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength)
  for (let i = 0; i < 4; i++) {
    if (dv.getBigUint64(OFF_PARMS_ID + 8 * i, true) !== layout.parmsId[i]) return fail('parms_id is not this parameter set at the expected level')
  }
  const n = BigInt(he.slotCount)
  const k = BigInt(layout.primes)
  const count = seeded ? n * k : 2n * n * k
  if (
    raw[OFF_NTT] !== layout.ntt ||
    dv.getBigUint64(OFF_SIZE, true) !== 2n ||
    dv.getBigUint64(OFF_N, true) !== n ||
    dv.getBigUint64(OFF_K, true) !== k ||
    dv.getFloat64(OFF_SCALE, true) !== 1 ||
    dv.getBigUint64(OFF_CORRECTION, true) !== 1n ||
    !headerOk(raw, OFF_DATA_HEADER, COMPR_NONE, HEADER + 8 + Number(count) * 8) ||
    dv.getBigUint64(OFF_COUNT, true) !== count
  ) {
    return fail('metadata does not match the parameter set')
  }
  if (seeded) {
    const at = OFF_DATA + Number(count) * 8
    const prng = raw[at + HEADER]
    if (!headerOk(raw, at, COMPR_NONE, SEED_TRAILER) || (prng !== 1 && prng !== 2)) return fail('bad seed trailer')
  }
  return raw
}

/** Load a checked query or result ciphertext. The caller owns (and must delete) the result. */
export function loadCiphertext(he: HeContext, bytes: unknown, kind: 'query' | 'result', field: string): CipherText {
  const raw = checkSealBlob(he, bytes, kind, field)
  const ct = he.seal.CipherText()
  try {
    ct.loadArray(he.context, raw)
    if (ct.isTransparent || ct.size !== 2) throw new Error('unexpected ciphertext shape')
    return ct
  } catch (e) {
    ct.delete()
    if (e instanceof VnError) throw e
    throw new VnError('VN_ERR_HE_CIPHERTEXT', `${field}: SEAL rejected the ciphertext`)
  }
}

/** Load a checked (seeded) public key. The caller owns (and must delete) the result. */
export function loadPublicKey(he: HeContext, bytes: unknown, field = 'publicKey'): PublicKey {
  const raw = checkSealBlob(he, bytes, 'publicKey', field)
  const pk = he.seal.PublicKey()
  try {
    pk.loadArray(he.context, raw)
    return pk
  } catch {
    pk.delete()
    throw new VnError('VN_ERR_HE_KEY', `${field}: SEAL rejected the public key`)
  }
}

/** Wire bytes of a ciphertext (or of a seeded Serializable): SEAL mode 0, then deflate. */
export function saveSealObject(obj: { saveArray: CipherText['saveArray'] }, he: HeContext): Uint8Array {
  return compressSealBlob(obj.saveArray(he.seal.ComprModeType.none))
}

/** SHA-256 (hex) of a public key's wire bytes: the handle a provider caches it under. */
export function publicKeyDigest(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}
