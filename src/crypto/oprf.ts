/**
 * RFC 9497 OPRF and VOPRF, suite ristretto255-SHA512, on libsodium's WASM ristretto255.
 *
 * Modes: OPRF (0x00) and VOPRF (0x01, a batched DLEQ proof shows the server used the key whose
 * public half the client holds). POPRF is not used by verinode and not implemented.
 *
 * Why libsodium and not @noble/curves: the provider's work (BlindEvaluate for consumers, Evaluate
 * for every record of a tag set) is dominated by variable-base scalar multiplication, which
 * libsodium-wrappers-sumo does several times faster (FACTS.md: ~8,500 Evaluate/s against ~1,100 with
 * noble). It is also the safer choice for the long-lived server key: libsodium's
 * `crypto_scalarmult_ristretto255` is constant-time, whereas noble documents that its
 * variable-base multiplication on Edwards curves is not blinded against timing. @noble/curves'
 * `ristretto255_oprf` stays the reference implementation: the tests prove both agree byte for byte,
 * and both agree with the RFC 9497 appendix A.1.1 / A.1.2 vectors.
 *
 * Building blocks (RFC 9497 §4.1, ristretto255-SHA512):
 * - HashToGroup(x) = ristretto255 one-way map (RFC 9496 §4.3.4, libsodium
 *   `crypto_core_ristretto255_from_hash`) of expand_message_xmd(SHA-512, x, DST, 64) (RFC 9380 §5.3.1);
 * - HashToScalar(x) = expand_message_xmd(SHA-512, x, DST, 64) reduced mod the group order, read
 *   little-endian;
 * - SerializeElement / SerializeScalar: 32-byte ristretto255 encoding / 32-byte little-endian.
 *
 * Batch proofs follow §2.2: the server uses ComputeCompositesFast (Z = k·M), the client
 * ComputeComposites (two sums). The composite weights index elements with I2OSP(i, 2), so a batch
 * can never exceed 65535 elements; verinode caps it lower (`DEFAULT_MAX_BATCH`).
 *
 * The multi-scalar sums M and Z are computed as n separate scalar multiplications plus additions
 * (libsodium has no multi-scalar API), so a VOPRF batch costs the server about 2 multiplications
 * per element and the client about 4. All inputs to those sums are public.
 *
 * JavaScript cannot promise to zeroize: the secret key is copied into a scratch area of the WASM
 * heap for each call and that area is overwritten when the call returns, but copies made by the
 * caller (Uint8Array, structured clone to workers) are the caller's to manage.
 */
import { createHash, hash, randomBytes, timingSafeEqual } from 'node:crypto'
import sodium from 'libsodium-wrappers-sumo'
import { VnError } from '../errors.js'

await sodium.ready

/** The raw Emscripten module under libsodium-wrappers: direct calls on a fixed scratch area. */
interface SodiumRaw {
  HEAPU8: Uint8Array
  _malloc(n: number): number
  _crypto_scalarmult_ristretto255(q: number, n: number, p: number): number
  _crypto_scalarmult_ristretto255_base(q: number, n: number): number
  _crypto_core_ristretto255_add(r: number, p: number, q: number): number
  _crypto_core_ristretto255_from_hash(p: number, r: number): number
  _crypto_core_ristretto255_is_valid_point(p: number): number
  _crypto_core_ristretto255_scalar_invert(recip: number, s: number): number
  _crypto_core_ristretto255_scalar_mul(z: number, x: number, y: number): void
  _crypto_core_ristretto255_scalar_sub(z: number, x: number, y: number): void
  _crypto_core_ristretto255_scalar_reduce(r: number, s: number): void
}

const raw = (sodium as unknown as { libsodium?: SodiumRaw }).libsodium
if (raw === undefined || typeof raw._crypto_scalarmult_ristretto255 !== 'function') {
  throw new Error('libsodium-wrappers-sumo does not expose the ristretto255 functions this module needs')
}
const S: SodiumRaw = raw

// Scratch layout in the WASM heap (one area; every public function below is synchronous).
const BASE = S._malloc(256)
const SA = BASE // scalar a
const SB = BASE + 32 // scalar b
const PA = BASE + 64 // point a
const PB = BASE + 96 // point b
const OUT = BASE + 128 // 32-byte result
const WIDE = BASE + 160 // 64-byte hash input

export const MODE_OPRF = 0x00
export const MODE_VOPRF = 0x01
export type OprfMode = typeof MODE_OPRF | typeof MODE_VOPRF
const SUITE_ID = 'ristretto255-SHA512'
export const ELEMENT_BYTES = 32
const SCALAR_BYTES = 32
export const OUTPUT_BYTES = 64
export const PROOF_BYTES = 64
/** RFC 9497 §1.2: private inputs are length-prefixed with two bytes. */
const MAX_INPUT_BYTES = 0xffff
/** Default cap on elements per BlindEvaluate batch. RFC limit is 65535 (I2OSP(i, 2)). */
export const DEFAULT_MAX_BATCH = 4096
const RFC_MAX_BATCH = 0xffff

export interface OprfKeyPair {
  /** skS, SerializeScalar (32 bytes little-endian). Secret. */
  secretKey: Uint8Array
  /** pkS = skS·G, SerializeElement (32 bytes). */
  publicKey: Uint8Array
}

export interface BlindResult {
  /** Secret per-input blind scalars; keep until finalize, never send. */
  blinds: Uint8Array[]
  /** Elements to send to the server, one per input. */
  blindedElements: Uint8Array[]
}

export interface BlindEvaluateResult {
  evaluatedElements: Uint8Array[]
  /** One batched DLEQ proof (c ‖ s, 64 bytes) over all elements. */
  proof: Uint8Array
}

const enc = new TextEncoder()
const ascii = (s: string): Uint8Array => enc.encode(s)

function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0
  for (const p of parts) n += p.length
  const out = new Uint8Array(n)
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.length
  }
  return out
}

function i2osp2(n: number): Uint8Array {
  return Uint8Array.of((n >>> 8) & 0xff, n & 0xff)
}

/** len(x) as I2OSP(·, 2) followed by x: the framing used by every RFC 9497 transcript. */
function lp(x: Uint8Array): Uint8Array[] {
  return [i2osp2(x.length), x]
}

/** RFC 9497 §3.1: contextString = "OPRFV1-" ‖ I2OSP(mode, 1) ‖ "-" ‖ identifier. */
function contextString(mode: OprfMode): Uint8Array {
  return concat([ascii('OPRFV1-'), Uint8Array.of(mode), ascii('-' + SUITE_ID)])
}

interface ModeDsts {
  ctx: Uint8Array
  hashToGroup: Uint8Array
  hashToScalar: Uint8Array
  deriveKeyPair: Uint8Array
  seed: Uint8Array
}
const DSTS: Record<OprfMode, ModeDsts> = {
  [MODE_OPRF]: dsts(MODE_OPRF),
  [MODE_VOPRF]: dsts(MODE_VOPRF),
}
function dsts(mode: OprfMode): ModeDsts {
  const ctx = contextString(mode)
  return {
    ctx,
    hashToGroup: concat([ascii('HashToGroup-'), ctx]),
    hashToScalar: concat([ascii('HashToScalar-'), ctx]),
    deriveKeyPair: concat([ascii('DeriveKeyPair'), ctx]),
    seed: concat([ascii('Seed-'), ctx]),
  }
}

function checkMode(mode: number): OprfMode {
  if (mode !== MODE_OPRF && mode !== MODE_VOPRF) throw new VnError('VN_ERR_OPRF_INPUT', 'mode: must be 0 (OPRF) or 1 (VOPRF)')
  return mode
}


/**
 * RFC 9380 §5.3.1 expand_message_xmd with SHA-512 (b_in_bytes 64, r_in_bytes 128).
 * node:crypto's SHA-512 is used for speed; the tests compare it with @noble/curves' version.
 */
export function expandMessageXmd(msg: Uint8Array, dst: Uint8Array, lenInBytes: number): Uint8Array {
  if (dst.length > 255) throw new VnError('VN_ERR_OPRF_INPUT', 'dst: longer than 255 bytes')
  const ell = Math.ceil(lenInBytes / 64)
  if (ell > 255 || lenInBytes > 0xffff || lenInBytes < 1) throw new VnError('VN_ERR_OPRF_INPUT', 'lenInBytes: out of range')
  // One-shot SHA-512 over assembled buffers: a streaming hash per block (createHash + five
  // updates) cost ~10% of an evaluation, and this runs for every OPRF input.
  const dl = dst.length
  const m = new Uint8Array(128 + msg.length + 3 + dl + 1) // Z_pad ‖ msg ‖ I2OSP(len, 2) ‖ 0 ‖ DST_prime
  m.set(msg, 128)
  const o = 128 + msg.length
  m[o] = lenInBytes >>> 8
  m[o + 1] = lenInBytes & 0xff
  m[o + 2] = 0
  m.set(dst, o + 3)
  m[o + 3 + dl] = dl
  const b0 = hash('sha512', m, 'buffer')
  const out = new Uint8Array(ell * 64)
  const bi = new Uint8Array(64 + 1 + dl + 1) // (b_0 XOR b_(i-1)) ‖ I2OSP(i, 1) ‖ DST_prime
  bi.set(b0, 0)
  bi[64] = 1
  bi.set(dst, 65)
  bi[65 + dl] = dl
  let prev = hash('sha512', bi, 'buffer')
  out.set(prev, 0)
  for (let i = 2; i <= ell; i++) {
    for (let j = 0; j < 64; j++) bi[j] = (b0[j] as number) ^ (prev[j] as number)
    bi[64] = i
    prev = hash('sha512', bi, 'buffer')
    out.set(prev, (i - 1) * 64)
  }
  return out.subarray(0, lenInBytes)
}

// ---------------------------------------------------------------------------------------------
// Group and scalar primitives on the scratch area. A `null` point result is the identity.

function heap(): Uint8Array {
  return S.HEAPU8 // re-read each time: the view is replaced when WASM memory grows
}

function wipeScratch(): void {
  heap().fill(0, BASE, BASE + 256)
}

/** HashToGroup (RFC 9497 §4.1): ristretto255 map of 64 uniform bytes. Returns 32 bytes. */
function hashToGroup(input: Uint8Array, dst: Uint8Array): Uint8Array {
  const h = heap()
  h.set(expandMessageXmd(input, dst, 64), WIDE)
  S._crypto_core_ristretto255_from_hash(OUT, WIDE)
  return heap().slice(OUT, OUT + 32)
}

/** HashToScalar (RFC 9497 §4.1): 64 uniform bytes reduced mod the group order, little-endian. */
function hashToScalar(msg: Uint8Array, dst: Uint8Array): Uint8Array {
  heap().set(expandMessageXmd(msg, dst, 64), WIDE)
  S._crypto_core_ristretto255_scalar_reduce(OUT, WIDE)
  return heap().slice(OUT, OUT + 32)
}

/** k·P for a point that is known to be valid; `null` when the product is the identity (k = 0). */
function mul(k: Uint8Array, p: Uint8Array): Uint8Array | null {
  const h = heap()
  h.set(k, SA)
  h.set(p, PA)
  if (S._crypto_scalarmult_ristretto255(OUT, SA, PA) !== 0) return null
  return heap().slice(OUT, OUT + 32)
}

function mulBase(k: Uint8Array): Uint8Array | null {
  heap().set(k, SA)
  if (S._crypto_scalarmult_ristretto255_base(OUT, SA) !== 0) return null
  return heap().slice(OUT, OUT + 32)
}

const IDENTITY = new Uint8Array(32)

function add(p: Uint8Array | null, q: Uint8Array | null): Uint8Array | null {
  if (p === null) return q
  if (q === null) return p
  const h = heap()
  h.set(p, PA)
  h.set(q, PB)
  S._crypto_core_ristretto255_add(OUT, PA, PB)
  const r = heap().slice(OUT, OUT + 32)
  return isZero(r) ? null : r
}

function scalarInvert(s: Uint8Array): Uint8Array | null {
  heap().set(s, SA)
  if (S._crypto_core_ristretto255_scalar_invert(OUT, SA) !== 0) return null
  return heap().slice(OUT, OUT + 32)
}

function scalarMul(x: Uint8Array, y: Uint8Array): Uint8Array {
  const h = heap()
  h.set(x, SA)
  h.set(y, SB)
  S._crypto_core_ristretto255_scalar_mul(OUT, SA, SB)
  return heap().slice(OUT, OUT + 32)
}

function scalarSub(x: Uint8Array, y: Uint8Array): Uint8Array {
  const h = heap()
  h.set(x, SA)
  h.set(y, SB)
  S._crypto_core_ristretto255_scalar_sub(OUT, SA, SB)
  return heap().slice(OUT, OUT + 32)
}

function isZero(b: Uint8Array): boolean {
  let acc = 0
  for (let i = 0; i < b.length; i++) acc |= b[i] as number
  return acc === 0
}

// Group order L = 2^252 + 27742317777372353535851937790883648493, little-endian.
const ORDER_LE = Uint8Array.from([
  0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
])

/** True when 32 little-endian bytes encode an integer below the group order. */
function isCanonicalScalar(b: Uint8Array): boolean {
  for (let i = 31; i >= 0; i--) {
    const x = b[i] as number
    const l = ORDER_LE[i] as number
    if (x < l) return true
    if (x > l) return false
  }
  return false // equal to L
}

/** RandomScalar (RFC 9497 §2.1): uniform nonzero scalar from the CSPRNG (64 bytes reduced). */
function randomScalar(): Uint8Array {
  for (;;) {
    heap().set(randomBytes(64), WIDE)
    S._crypto_core_ristretto255_scalar_reduce(OUT, WIDE)
    const s = heap().slice(OUT, OUT + 32)
    heap().fill(0, WIDE, WIDE + 64)
    if (!isZero(s)) return s
  }
}

// ---------------------------------------------------------------------------------------------
// Input checks (RFC 9497 §2.1 DeserializeElement / DeserializeScalar, §3.3 identity rejection).

function asBytes(x: unknown, field: string, code: 'VN_ERR_OPRF_POINT' | 'VN_ERR_OPRF_INPUT' | 'VN_ERR_OPRF_KEY'): Uint8Array {
  if (!(x instanceof Uint8Array)) throw new VnError(code, `${field}: expected bytes`)
  return x
}

/**
 * DeserializeElement for untrusted bytes: exactly 32 bytes, a canonical ristretto255 encoding
 * (RFC 9496 §4.3.1 decode rejects non-canonical field elements, negative s and non-square
 * cases), and not the identity (RFC 9497 §3.3: MUST reject the group identity from the wire).
 */
export function deserializeElement(x: unknown, field: string): Uint8Array {
  const b = asBytes(x, field, 'VN_ERR_OPRF_POINT')
  if (b.length !== ELEMENT_BYTES) throw new VnError('VN_ERR_OPRF_POINT', `${field}: expected ${ELEMENT_BYTES} bytes, got ${b.length}`)
  if (isZero(b)) throw new VnError('VN_ERR_OPRF_POINT', `${field}: identity element`)
  heap().set(b, PA)
  if (S._crypto_core_ristretto255_is_valid_point(PA) !== 1) {
    throw new VnError('VN_ERR_OPRF_POINT', `${field}: not a canonical ristretto255 encoding`)
  }
  return b
}

/** Cheap shape checks only (length, identity); the full decode happens inside the multiply. */
function elementShape(x: unknown, field: string): Uint8Array {
  const b = asBytes(x, field, 'VN_ERR_OPRF_POINT')
  if (b.length !== ELEMENT_BYTES) throw new VnError('VN_ERR_OPRF_POINT', `${field}: expected ${ELEMENT_BYTES} bytes, got ${b.length}`)
  if (isZero(b)) throw new VnError('VN_ERR_OPRF_POINT', `${field}: identity element`)
  return b
}

function deserializeSecretKey(x: unknown): Uint8Array {
  const b = asBytes(x, 'secretKey', 'VN_ERR_OPRF_KEY')
  if (b.length !== SCALAR_BYTES || !isCanonicalScalar(b) || isZero(b)) {
    throw new VnError('VN_ERR_OPRF_KEY', 'secretKey: not a nonzero canonical scalar')
  }
  return b
}

function deserializeBlind(x: unknown, field: string): Uint8Array {
  const b = asBytes(x, field, 'VN_ERR_OPRF_INPUT')
  if (b.length !== SCALAR_BYTES || !isCanonicalScalar(b) || isZero(b)) {
    throw new VnError('VN_ERR_OPRF_INPUT', `${field}: not a nonzero canonical scalar`)
  }
  return b
}

function checkInput(x: unknown, field: string): Uint8Array {
  const b = asBytes(x, field, 'VN_ERR_OPRF_INPUT')
  if (b.length > MAX_INPUT_BYTES) throw new VnError('VN_ERR_OPRF_INPUT', `${field}: longer than ${MAX_INPUT_BYTES} bytes`)
  return b
}

function checkBatch(xs: unknown, field: string, maxBatch: number): unknown[] {
  if (!Array.isArray(xs)) throw new VnError('VN_ERR_OPRF_INPUT', `${field}: expected an array`)
  if (xs.length === 0) throw new VnError('VN_ERR_OPRF_INPUT', `${field}: empty batch`)
  const cap = Math.min(maxBatch, RFC_MAX_BATCH)
  if (xs.length > cap) throw new VnError('VN_ERR_REQ_BATCH_TOO_LARGE', `${field}: ${xs.length} elements, at most ${cap} allowed`)
  return xs
}

// ---------------------------------------------------------------------------------------------
// Keys (RFC 9497 §3.2)

/** GenerateKeyPair (§3.2): random nonzero skS, pkS = skS·G. */
export function generateKeyPair(mode: OprfMode = MODE_VOPRF): OprfKeyPair {
  checkMode(mode)
  const secretKey = randomScalar()
  const publicKey = mulBase(secretKey)
  wipeScratch()
  if (publicKey === null) throw new VnError('VN_ERR_INTERNAL', 'generateKeyPair: identity public key')
  return { secretKey, publicKey }
}

/**
 * DeriveKeyPair (§3.2.1): skS = HashToScalar(seed ‖ I2OSP(len(info), 2) ‖ info ‖ I2OSP(counter, 1),
 * DST = "DeriveKeyPair" ‖ contextString), retrying on zero. The mode is part of the DST, so the
 * same seed gives different keys per mode.
 */
export function deriveKeyPair(seed: Uint8Array, info: Uint8Array, mode: OprfMode = MODE_VOPRF): OprfKeyPair {
  const d = DSTS[checkMode(mode)]
  const s = asBytes(seed, 'seed', 'VN_ERR_OPRF_KEY')
  if (s.length !== 32) throw new VnError('VN_ERR_OPRF_KEY', `seed: expected 32 bytes, got ${s.length}`)
  const inf = asBytes(info, 'info', 'VN_ERR_OPRF_KEY')
  if (inf.length > MAX_INPUT_BYTES) throw new VnError('VN_ERR_OPRF_KEY', `info: longer than ${MAX_INPUT_BYTES} bytes`)
  const msg = concat([s, ...lp(inf), Uint8Array.of(0)])
  try {
    for (let counter = 0; counter <= 255; counter++) {
      msg[msg.length - 1] = counter
      const secretKey = hashToScalar(msg, d.deriveKeyPair)
      if (isZero(secretKey)) continue
      const publicKey = mulBase(secretKey)
      if (publicKey === null) continue
      return { secretKey, publicKey }
    }
  } finally {
    msg.fill(0)
    wipeScratch()
  }
  throw new VnError('VN_ERR_OPRF_KEY', 'seed: DeriveKeyPair found no key in 256 attempts')
}

// ---------------------------------------------------------------------------------------------
// Client (RFC 9497 §3.3.1 / §3.3.2)

/**
 * Blind (§3.3.1): for each input, blind ← RandomScalar(), blindedElement = blind·HashToGroup(input).
 * `opts.blinds` injects blinds (tests reproducing the RFC vectors only).
 */
export function blind(
  inputs: readonly Uint8Array[],
  opts: { mode?: OprfMode; blinds?: readonly Uint8Array[]; maxBatch?: number } = {},
): BlindResult {
  const d = DSTS[checkMode(opts.mode ?? MODE_VOPRF)]
  const xs = checkBatch(inputs, 'inputs', opts.maxBatch ?? DEFAULT_MAX_BATCH)
  if (opts.blinds !== undefined && opts.blinds.length !== xs.length) {
    throw new VnError('VN_ERR_OPRF_INPUT', 'blinds: length differs from inputs')
  }
  const blinds: Uint8Array[] = []
  const blindedElements: Uint8Array[] = []
  try {
    for (let i = 0; i < xs.length; i++) {
      const input = checkInput(xs[i], `inputs[${i}]`)
      const r = opts.blinds !== undefined ? deserializeBlind(opts.blinds[i], `blinds[${i}]`) : randomScalar()
      const p = hashToGroup(input, d.hashToGroup)
      // §3.3.1: an input that maps to the identity is an InvalidInputError.
      const b = isZero(p) ? null : mul(r, p)
      if (b === null) throw new VnError('VN_ERR_OPRF_INPUT', `inputs[${i}]: maps to the identity element`)
      blinds.push(r)
      blindedElements.push(b)
    }
  } finally {
    wipeScratch()
  }
  return { blinds, blindedElements }
}

const FINALIZE = new TextEncoder().encode('Finalize')

/** RFC 9497 §3.3.1 Finalize's hash: I2OSP(len(input), 2) ‖ input ‖ [info] ‖ I2OSP(len(el), 2) ‖ el ‖ "Finalize". */
function finalizeHash(input: Uint8Array, unblinded: Uint8Array, info?: Uint8Array): Uint8Array {
  const il = info === undefined ? 0 : 2 + info.length
  const m = new Uint8Array(2 + input.length + il + 2 + unblinded.length + FINALIZE.length)
  let o = 0
  const put = (b: Uint8Array, withLength: boolean): void => {
    if (withLength) {
      m[o] = b.length >>> 8
      m[o + 1] = b.length & 0xff
      o += 2
    }
    m.set(b, o)
    o += b.length
  }
  put(input, true)
  if (info !== undefined) put(info, true)
  put(unblinded, true)
  put(FINALIZE, false)
  return new Uint8Array(hash('sha512', m, 'buffer'))
}

function unblindAll(
  inputs: readonly unknown[],
  blinds: readonly unknown[],
  evaluated: readonly Uint8Array[],
): Uint8Array[] {
  const out: Uint8Array[] = []
  for (let i = 0; i < evaluated.length; i++) {
    const input = checkInput(inputs[i], `inputs[${i}]`)
    const inv = scalarInvert(deserializeBlind(blinds[i], `blinds[${i}]`))
    const n = inv === null ? null : mul(inv, evaluated[i] as Uint8Array)
    if (n === null) throw new VnError('VN_ERR_OPRF_INPUT', `blinds[${i}]: not invertible`)
    out.push(finalizeHash(input, n))
  }
  return out
}

function sameLengths(n: number, arrays: Record<string, readonly unknown[]>): void {
  for (const [name, a] of Object.entries(arrays)) {
    if (!Array.isArray(a)) throw new VnError('VN_ERR_OPRF_INPUT', `${name}: expected an array`)
    if (a.length !== n) throw new VnError('VN_ERR_OPRF_INPUT', `${name}: ${a.length} entries, expected ${n}`)
  }
}

/** Finalize in OPRF mode (§3.3.1): no proof; output = Hash(len ‖ input ‖ len ‖ blind⁻¹·evaluated ‖ "Finalize"). */
export function finalize(
  inputs: readonly Uint8Array[],
  blinds: readonly Uint8Array[],
  evaluatedElements: readonly Uint8Array[],
  opts: { maxBatch?: number } = {},
): Uint8Array[] {
  const ev = checkBatch(evaluatedElements, 'evaluatedElements', opts.maxBatch ?? DEFAULT_MAX_BATCH)
  sameLengths(ev.length, { inputs, blinds })
  try {
    const points = ev.map((e, i) => deserializeElement(e, `evaluatedElements[${i}]`))
    return unblindAll(inputs, blinds, points)
  } finally {
    wipeScratch()
  }
}

/**
 * Finalize in VOPRF mode (§3.3.2): first VerifyProof over the whole batch (ComputeComposites on the
 * client side), then unblind every element. A proof that does not verify is VN_ERR_OPRF_PROOF and
 * nothing is returned.
 */
export function finalizeBatch(
  inputs: readonly Uint8Array[],
  blinds: readonly Uint8Array[],
  evaluatedElements: readonly Uint8Array[],
  blindedElements: readonly Uint8Array[],
  publicKey: Uint8Array,
  proof: Uint8Array,
  opts: { maxBatch?: number } = {},
): Uint8Array[] {
  const ev = checkBatch(evaluatedElements, 'evaluatedElements', opts.maxBatch ?? DEFAULT_MAX_BATCH)
  sameLengths(ev.length, { inputs, blinds, blindedElements })
  try {
    const pk = deserializeElement(publicKey, 'publicKey')
    const C = blindedElements.map((e, i) => deserializeElement(e, `blindedElements[${i}]`))
    const D = ev.map((e, i) => deserializeElement(e, `evaluatedElements[${i}]`))
    verifyProof(pk, C, D, proof)
    return unblindAll(inputs, blinds, D)
  } finally {
    wipeScratch()
  }
}

/**
 * VOPRF Finalize of ONE element with its proof check split in two, so the parts can run on two
 * threads at once (the consumer's single private check). For n = 1 VerifyProof's
 * t3 = s·M + c·Z, with M = d·C and Z = d·D, equals (s·d)·C + (c·d)·D, so no multiplication waits
 * for another:
 *
 *   const plan = planSingleProof(B, C, D, proof)            // checks, composite weight d (hashing only)
 *   const part = offloadSingleProof(plan, input, blind)     // M, Z, t2 and the unblinded output (a worker)
 *   const fin = finishSingleProof(plan)                     // t3: two multiplications (meanwhile, here)
 *   fin.check(await part)                                   // the challenge; only then the output
 *
 * The worker's share is the larger (four multiplications, one of them by the base point, and a
 * hash): the thread that checks also makes the response durable in the meantime.
 * Same accept/reject decisions and outputs as `finalizeBatch` for one element (tests compare them,
 * tampered proofs included). Every point multiplied is public; the blind is the consumer's own.
 */
export interface SingleProofPlan {
  publicKey: Uint8Array
  blinded: Uint8Array
  evaluated: Uint8Array
  c: Uint8Array
  s: Uint8Array
  d: Uint8Array
}

/** What `offloadSingleProof` computes (null: the identity element). */
export interface SingleProofPart {
  M: Uint8Array | null
  Z: Uint8Array | null
  t2: Uint8Array | null
  /** Finalize(input, blind⁻¹·D): released by `check` only when the proof holds */
  output: Uint8Array
}

export function planSingleProof(publicKey: Uint8Array, blindedElement: Uint8Array, evaluatedElement: Uint8Array, proof: unknown): SingleProofPlan {
  try {
    const B = deserializeElement(publicKey, 'publicKey')
    const C = deserializeElement(blindedElement, 'blindedElements[0]')
    const D = deserializeElement(evaluatedElement, 'evaluatedElements[0]')
    const { c, s } = parseProof(proof)
    return { publicKey: B, blinded: C, evaluated: D, c, s, d: compositeWeights(B, [C], [D])[0] as Uint8Array }
  } finally {
    wipeScratch()
  }
}

/**
 * The worker's share of a planned single-element check: the composites M = d·C and Z = d·D,
 * t2 = s·G + c·B, and the unblinded output.
 */
export function offloadSingleProof(plan: SingleProofPlan, input: Uint8Array, blind: Uint8Array): SingleProofPart {
  try {
    const C = elementShape(plan.blinded, 'blinded')
    const D = elementShape(plan.evaluated, 'evaluated')
    const B = elementShape(plan.publicKey, 'publicKey')
    const M = mul(plan.d, C)
    const Z = mul(plan.d, D)
    const t2 = add(mulBase(plan.s), mul(plan.c, B))
    return { M, Z, t2, output: unblindAll([input], [blind], [D])[0] as Uint8Array }
  } finally {
    wipeScratch()
  }
}

/**
 * The checking thread's share, computed while the worker does its own: t3 = (s·d)·C + (c·d)·D.
 * `check(part)` then recomputes the challenge over (B, M, Z, t2, t3): it returns the output only
 * when the challenge is c, else throws VN_ERR_OPRF_PROOF.
 */
export function finishSingleProof(plan: SingleProofPlan): { check(part: SingleProofPart): Uint8Array } {
  let t3: Uint8Array | null
  try {
    t3 = add(mul(scalarMul(plan.s, plan.d), plan.blinded), mul(scalarMul(plan.c, plan.d), plan.evaluated))
  } finally {
    wipeScratch()
  }
  return {
    check(part) {
      const expected = challenge(plan.publicKey, part.M, part.Z, part.t2, t3)
      if (!timingSafeEqual(expected, plan.c)) throw new VnError('VN_ERR_OPRF_PROOF', 'proof: challenge does not match')
      return part.output
    },
  }
}

// ---------------------------------------------------------------------------------------------
// Server (RFC 9497 §3.3.1 BlindEvaluate, §3.3.2 VOPRF BlindEvaluate with proof, §3.3.1 Evaluate)

/**
 * BlindEvaluate for OPRF mode (no proof): evaluatedElement = skS·blindedElement. Each element is
 * checked (length, identity; the canonical decode happens inside libsodium's multiply, which fails
 * on any invalid encoding) and an error names its index.
 */
export function blindEvaluate(secretKey: Uint8Array, blindedElements: readonly Uint8Array[], opts: { maxBatch?: number } = {}): Uint8Array[] {
  const k = deserializeSecretKey(secretKey)
  const xs = checkBatch(blindedElements, 'blindedElements', opts.maxBatch ?? DEFAULT_MAX_BATCH)
  try {
    return evaluateElements(k, xs)
  } finally {
    wipeScratch()
  }
}

function evaluateElements(k: Uint8Array, xs: readonly unknown[]): Uint8Array[] {
  const out: Uint8Array[] = []
  heap().set(k, SA)
  for (let i = 0; i < xs.length; i++) {
    const b = elementShape(xs[i], `blindedElements[${i}]`)
    const h = heap()
    h.set(b, PA)
    // Fails exactly when PA is not a canonical encoding: PA is not the identity and k ≠ 0.
    if (S._crypto_scalarmult_ristretto255(OUT, SA, PA) !== 0) {
      throw new VnError('VN_ERR_OPRF_POINT', `blindedElements[${i}]: not a canonical ristretto255 encoding`)
    }
    out.push(heap().slice(OUT, OUT + 32))
  }
  return out
}

/**
 * VOPRF BlindEvaluate for a batch (§3.3.2 with the batched GenerateProof of §2.2.1): one DLEQ proof
 * that every evaluatedElement[i] = skS·blindedElement[i] for the same skS as pkS = skS·G.
 * `opts.proofRandomScalar` injects the proof's r (tests reproducing the RFC vectors only); in
 * production r always comes from the CSPRNG.
 */
export function blindEvaluateBatch(
  secretKey: Uint8Array,
  publicKey: Uint8Array,
  blindedElements: readonly Uint8Array[],
  opts: { maxBatch?: number; proofRandomScalar?: Uint8Array } = {},
): BlindEvaluateResult {
  const k = deserializeSecretKey(secretKey)
  const pk = deserializeElement(publicKey, 'publicKey')
  const xs = checkBatch(blindedElements, 'blindedElements', opts.maxBatch ?? DEFAULT_MAX_BATCH)
  try {
    const D = evaluateElements(k, xs)
    const proof = generateProof(k, pk, xs as Uint8Array[], D, opts.proofRandomScalar)
    return { evaluatedElements: D, proof }
  } finally {
    wipeScratch()
  }
}

/**
 * VOPRF BlindEvaluate of ONE element with its proof split in two, the provider's counterpart of
 * `planSingleProof` (a single private check). After D = k·C and the composite weight d, the
 * proof's four remaining multiplications are independent: M = d·C and Z = d·D here, and
 * t2 = r·G, t3 = r·M = (r·d)·C on a worker:
 *
 *   const plan = planSingleEvaluation(k, B, C)        // D = k·C, d, r (this thread)
 *   const part = offloadSingleEvaluation(plan)        // t2, t3 (a worker)
 *   const fin = finishSingleEvaluation(plan)          // M, Z (meanwhile, here)
 *   const { evaluatedElements, proof } = fin.complete(await part)   // c, s = r − c·k
 *
 * The same bytes as `blindEvaluateBatch` for one element with the same r (tests compare them and
 * the RFC 9497 vector). The plan holds the key and r: it never leaves the node's own threads, and
 * `complete` wipes r.
 */
export interface SingleEvaluationPlan {
  secretKey: Uint8Array
  publicKey: Uint8Array
  blinded: Uint8Array
  evaluated: Uint8Array
  d: Uint8Array
  r: Uint8Array
}

export function planSingleEvaluation(
  secretKey: Uint8Array,
  publicKey: Uint8Array,
  blindedElement: unknown,
  opts: { proofRandomScalar?: Uint8Array } = {},
): SingleEvaluationPlan {
  const k = deserializeSecretKey(secretKey)
  const B = deserializeElement(publicKey, 'publicKey')
  const xs = checkBatch([blindedElement], 'blindedElements', 1)
  try {
    const D = evaluateElements(k, xs)[0] as Uint8Array
    const C = xs[0] as Uint8Array
    const r = opts.proofRandomScalar !== undefined ? deserializeBlind(opts.proofRandomScalar, 'proofRandomScalar').slice() : randomScalar()
    return { secretKey: k, publicKey: B, blinded: C, evaluated: D, d: compositeWeights(B, [C], [D])[0] as Uint8Array, r }
  } finally {
    wipeScratch()
  }
}

/** The worker's share of a planned single evaluation: t2 = r·G and t3 = (r·d)·C. */
export function offloadSingleEvaluation(plan: Pick<SingleEvaluationPlan, 'blinded' | 'd' | 'r'>): { t2: Uint8Array | null; t3: Uint8Array | null } {
  try {
    const C = elementShape(plan.blinded, 'blinded')
    return { t2: mulBase(plan.r), t3: mul(scalarMul(plan.r, plan.d), C) }
  } finally {
    wipeScratch()
  }
}

/** This thread's share (M = d·C, Z = d·D), then `complete` makes the proof from the worker's. */
export function finishSingleEvaluation(plan: SingleEvaluationPlan): { complete(part: { t2: Uint8Array | null; t3: Uint8Array | null }): BlindEvaluateResult } {
  let M: Uint8Array | null
  let Z: Uint8Array | null
  try {
    M = mul(plan.d, plan.blinded)
    Z = mul(plan.d, plan.evaluated)
  } finally {
    wipeScratch()
  }
  if (M === null) throw new VnError('VN_ERR_INTERNAL', 'composite element is the identity')
  return {
    complete(part) {
      try {
        const c = challenge(plan.publicKey, M, Z, part.t2, part.t3)
        const s = scalarSub(plan.r, scalarMul(c, plan.secretKey))
        return { evaluatedElements: [plan.evaluated], proof: concat([c, s]) }
      } finally {
        plan.r.fill(0)
        wipeScratch()
      }
    },
  }
}

/**
 * Evaluate (§3.3.1, the server's non-interactive full evaluation, used to build tag sets):
 * Hash(len ‖ input ‖ len ‖ skS·HashToGroup(input) ‖ "Finalize"). Equals what a client gets by
 * Blind → BlindEvaluate → Finalize with the same key and mode.
 */
export function evaluate(secretKey: Uint8Array, input: Uint8Array, mode: OprfMode = MODE_VOPRF): Uint8Array {
  const out = evaluateMany(secretKey, [input], mode)
  return out[0] as Uint8Array
}

/** Evaluate for many inputs with one key (the tag-set hot path). No batch cap: nothing is proved. */
export function evaluateMany(secretKey: Uint8Array, inputs: readonly Uint8Array[], mode: OprfMode = MODE_VOPRF): Uint8Array[] {
  const d = DSTS[checkMode(mode)]
  const k = deserializeSecretKey(secretKey)
  if (!Array.isArray(inputs)) throw new VnError('VN_ERR_OPRF_INPUT', 'inputs: expected an array')
  const out: Uint8Array[] = []
  try {
    for (let i = 0; i < inputs.length; i++) {
      const input = checkInput(inputs[i], `inputs[${i}]`)
      const h = heap()
      h.set(expandMessageXmd(input, d.hashToGroup, 64), WIDE)
      S._crypto_core_ristretto255_from_hash(PA, WIDE)
      h.set(k, SA)
      // A zero PA (identity; negligible probability) makes the multiply fail: InvalidInputError.
      if (S._crypto_scalarmult_ristretto255(OUT, SA, PA) !== 0) {
        throw new VnError('VN_ERR_OPRF_INPUT', `inputs[${i}]: maps to the identity element`)
      }
      out.push(finalizeHash(input, heap().slice(OUT, OUT + 32)))
    }
  } finally {
    wipeScratch()
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// Batched DLEQ proofs (RFC 9497 §2.2)

/** Composite weights d_i (§2.2.1): seed = Hash(len ‖ Bm ‖ len ‖ "Seed-" ‖ ctx), d_i = HashToScalar(...). */
function compositeWeights(Bm: Uint8Array, C: readonly Uint8Array[], D: readonly Uint8Array[]): Uint8Array[] {
  const d = DSTS[MODE_VOPRF]
  const seed = new Uint8Array(createHash('sha512').update(concat([...lp(Bm), ...lp(d.seed)])).digest())
  const composite = ascii('Composite')
  const w: Uint8Array[] = []
  for (let i = 0; i < C.length; i++) {
    const msg = concat([...lp(seed), i2osp2(i), ...lp(C[i] as Uint8Array), ...lp(D[i] as Uint8Array), composite])
    w.push(hashToScalar(msg, d.hashToScalar))
  }
  return w
}

/** Σ w_i·P_i over valid points, as separate multiplications (public inputs only). */
function sumProducts(w: readonly Uint8Array[], P: readonly Uint8Array[]): Uint8Array | null {
  let acc: Uint8Array | null = null
  for (let i = 0; i < P.length; i++) acc = add(acc, mul(w[i] as Uint8Array, P[i] as Uint8Array))
  return acc
}

function challenge(Bm: Uint8Array, M: Uint8Array | null, Z: Uint8Array | null, t2: Uint8Array | null, t3: Uint8Array | null): Uint8Array {
  const parts = [Bm, M, Z, t2, t3].map((p) => p ?? IDENTITY)
  const msg = concat([...parts.flatMap((p) => lp(p)), ascii('Challenge')])
  return hashToScalar(msg, DSTS[MODE_VOPRF].hashToScalar)
}

/** GenerateProof (§2.2.1) with ComputeCompositesFast: Z = k·M instead of a second sum. */
function generateProof(k: Uint8Array, B: Uint8Array, C: readonly Uint8Array[], D: readonly Uint8Array[], injectedR?: Uint8Array): Uint8Array {
  const w = compositeWeights(B, C, D)
  const M = sumProducts(w, C)
  if (M === null) throw new VnError('VN_ERR_INTERNAL', 'composite element is the identity')
  const Z = mul(k, M)
  const r = injectedR !== undefined ? deserializeBlind(injectedR, 'proofRandomScalar') : randomScalar()
  const t2 = mulBase(r)
  const t3 = mul(r, M)
  const c = challenge(B, M, Z, t2, t3)
  const s = scalarSub(r, scalarMul(c, k))
  if (injectedR === undefined) r.fill(0) // never wipe a caller's array
  return concat([c, s])
}

/** A proof's (c, s); DeserializeScalar (§4.1) rejects values at or above the group order. */
function parseProof(proof: unknown): { c: Uint8Array; s: Uint8Array } {
  if (!(proof instanceof Uint8Array) || proof.length !== PROOF_BYTES) {
    throw new VnError('VN_ERR_OPRF_PROOF', `proof: expected ${PROOF_BYTES} bytes`)
  }
  const c = proof.slice(0, 32)
  const s = proof.slice(32, 64)
  if (!isCanonicalScalar(c) || !isCanonicalScalar(s)) throw new VnError('VN_ERR_OPRF_PROOF', 'proof: scalar not canonical')
  return { c, s }
}

/** VerifyProof (§2.2.2) with ComputeComposites: t2 = s·G + c·B, t3 = s·M + c·Z, recompute c. */
function verifyProof(B: Uint8Array, C: readonly Uint8Array[], D: readonly Uint8Array[], proof: unknown): void {
  const { c, s } = parseProof(proof)
  const w = compositeWeights(B, C, D)
  const M = sumProducts(w, C)
  const Z = sumProducts(w, D)
  const t2 = add(mulBase(s), mul(c, B))
  const t3 = add(M === null ? null : mul(s, M), Z === null ? null : mul(c, Z))
  const expected = challenge(B, M, Z, t2, t3)
  if (!timingSafeEqual(expected, c)) throw new VnError('VN_ERR_OPRF_PROOF', 'proof: challenge does not match')
}
