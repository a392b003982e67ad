/**
 * Hidden-threshold comparison under BFV: the consumer learns [v >= g_T] (or [g_lo <= v < g_hi])
 * per subject and nothing else about v; the provider learns nothing about T.
 *
 * Protocol (docs/HE.md §Protocol), per subject one segment of GRID_SIZE = 64 batching slots, 128
 * subjects per ciphertext (N = 8192 slots, used as one flat vector; the 2 x N/2 matrix layout of
 * BFV batching only matters for rotations, which this protocol never does):
 * 1. Consumer: Enc(q) where q is one-hot at its bound's grid index T (threshold), or the indicator
 *    of [lo, hi) (range). Symmetric (secret-key) encryption, seeded, so a query is half size.
 * 2. Provider, per slot j of a subject with value v: s_j = r_j * [v >= g_j] (threshold) or
 *    s_j = r_j * [bucket(v) = j] (range), r_j uniform in Z_t \ {0}, fresh per slot and query.
 *    It computes Enc(q (.) s) by multiply-plain, adds a plaintext mask whose slots in each segment
 *    are uniform subject to summing to 0, re-randomizes and switches to the last level.
 * 3. Consumer decrypts and sums each segment mod t: sum = r_T * [v >= g_T] (honest threshold),
 *    non-zero exactly when the bit is 1. The segment is otherwise a uniform vector of that sum.
 * This is the randomized-comparison-vector technique of private comparison protocols (e.g.
 * Damgård–Geisler–Krøigaard, "Efficient and secure comparison for on-line auctions", ACISP 2007;
 * the per-position random multipliers and zero-sum masking follow the same idea as in their
 * DGK comparison), moved into BFV's SIMD slots as in SEAL's batching examples
 * (examples/2_encoders.cpp).
 *
 * Malicious queries: for any plaintext q, the threshold sum is sum_j q_j r_j [v >= g_j]; with
 * independent r_j it is 0 if no supported slot is satisfied and (close to) uniform otherwise, so
 * it reveals only [v >= g_min(support(q))] (statistical slack < 1/(t-1) when two or more
 * supported slots are satisfied). Range evaluation has one non-zero slot per segment, so it
 * reveals exactly [bucket(v) in support(q)]: one bit, of a set the consumer chose.
 *
 * Circuit privacy (against a consumer who encrypts honestly): a fresh public-key encryption of
 * zero, multiplied by a random plaintext polynomial, is added (Gentry, STOC 2009, §5 "circuit
 * privacy" by re-randomization), then the ciphertext is switched down three levels: the
 * data-dependent noise is scaled by ~2^-131 and drowned by the rounding noise of modulus
 * switching (the flooding argument of Gentry 2009 and Ducas–Stehlé, "Sanitization of FHE
 * ciphertexts", EUROCRYPT 2016, in its single-round form). SEAL exposes no way to sample wide
 * flooding noise directly; docs/HE.md states what this does and does not give (ill-formed
 * queries are not covered).
 *
 * Every SEAL object is freed on every path (WASM memory is not garbage collected).
 */
import { randomFillSync } from 'node:crypto'
import type { CipherText } from 'node-seal/implementation/cipher-text.js'
import type { Decryptor } from 'node-seal/implementation/decryptor.js'
import type { Encryptor } from 'node-seal/implementation/encryptor.js'
import type { PlainText } from 'node-seal/implementation/plain-text.js'
import type { PublicKey } from 'node-seal/implementation/public-key.js'
import type { SecretKey } from 'node-seal/implementation/secret-key.js'
import { VnError } from '../errors.js'
import { createHeContext, type HeContext } from './context.js'
import { GRID_SIZE, bucketIndex, checkIndex } from './grid.js'
import { loadCiphertext, loadPublicKey, publicKeyDigest, saveSealObject } from './serialization.js'

/** Which step function the provider applies: [v >= g_j] (threshold) or [bucket(v) = j] (range). */
export type HeEvalKind = 'threshold' | 'range'

/** A range query [g_lo <= v < g_hi]; hi = GRID_SIZE means "no upper bound". */
export interface GridRange {
  lo: number
  hi: number
}

/** Subjects carried by one ciphertext (N / GRID_SIZE = 128). */
export function subjectsPerCiphertext(he: HeContext): number {
  return he.slotCount / GRID_SIZE
}

/** Number of ciphertexts for `count` subjects. */
export function ciphertextCount(he: HeContext, count: number): number {
  return Math.ceil(count / subjectsPerCiphertext(he))
}

// ---------------------------------------------------------------------------------------------
// uniform sampling mod t

/** Fill `out` with uniform values in [0, m) (plus `offset`), by rejection sampling 32-bit words. */
function fillUniform(out: Uint32Array, m: number, offset: number): void {
  const limit = Math.floor(0x1_0000_0000 / m) * m
  randomFillSync(out)
  const spare = new Uint32Array(16)
  let s = spare.length
  for (let i = 0; i < out.length; i++) {
    let x = out[i] as number
    while (x >= limit) {
      if (s === spare.length) {
        randomFillSync(spare)
        s = 0
      }
      x = spare[s++] as number
    }
    out[i] = (x % m) + offset
  }
}

// ---------------------------------------------------------------------------------------------
// consumer

/** The consumer side: owns a BFV key pair, builds queries, reads answers. */
export class HeClient {
  private readonly pkBytes: Uint8Array
  private deleted = false

  private constructor(
    readonly he: HeContext,
    private readonly secretKey: SecretKey,
    private readonly encryptor: Encryptor,
    private readonly decryptor: Decryptor,
    private readonly plain: PlainText,
    pkBytes: Uint8Array,
  ) {
    this.pkBytes = pkBytes
  }

  /** A fresh key pair (the secret key never leaves this object). */
  static async create(he?: HeContext): Promise<HeClient> {
    const ctx = he ?? (await createHeContext())
    const kg = ctx.seal.KeyGenerator(ctx.context)
    let sk: SecretKey | undefined
    let pk: PublicKey | undefined
    let encryptor: Encryptor | undefined
    let decryptor: Decryptor | undefined
    try {
      sk = kg.secretKey()
      const pkSer = kg.createPublicKeySerializable()
      let pkBytes: Uint8Array
      try {
        pkBytes = saveSealObject(pkSer, ctx)
      } finally {
        pkSer.delete()
      }
      pk = kg.createPublicKey() // the Encryptor wants one; it keeps its own copy
      encryptor = ctx.seal.Encryptor(ctx.context, pk, sk)
      decryptor = ctx.seal.Decryptor(ctx.context, sk)
      return new HeClient(ctx, sk, encryptor, decryptor, ctx.seal.PlainText(), pkBytes)
    } catch (e) {
      sk?.delete()
      encryptor?.delete()
      decryptor?.delete()
      throw e
    } finally {
      pk?.delete()
      kg.delete()
    }
  }

  /** The seeded public key in wire form, to send (signed) to providers once per epoch. */
  publicKeyBytes(): Uint8Array {
    return this.pkBytes
  }

  /** SHA-256 (hex) of `publicKeyBytes()`: how a provider refers to the cached key. */
  publicKeyDigest(): string {
    return publicKeyDigest(this.pkBytes)
  }

  /** Threshold queries: one grid index T per subject, asking [v >= g_T]. */
  encryptBounds(boundIndices: readonly number[]): Uint8Array[] {
    boundIndices.forEach((t, i) => checkIndex(t, `bounds[${i}]`))
    return this.encryptSegments(boundIndices.length, (seg, i) => {
      seg[boundIndices[i] as number] = 1
    })
  }

  /** Range queries: per subject [g_lo <= v < g_hi], 0 <= lo < hi <= GRID_SIZE. */
  encryptRanges(ranges: readonly GridRange[]): Uint8Array[] {
    ranges.forEach((r, i) => {
      checkIndex(r?.lo, `ranges[${i}].lo`)
      checkIndex(r.hi, `ranges[${i}].hi`, GRID_SIZE)
      if (r.hi <= r.lo) throw new VnError('VN_ERR_HE_BOUND', `ranges[${i}]: hi must be above lo`)
    })
    return this.encryptSegments(ranges.length, (seg, i) => {
      const r = ranges[i] as GridRange
      seg.fill(1, r.lo, r.hi)
    })
  }

  /** Decrypt answers for `count` subjects: true = the bit [v >= g_T] (or in range) is 1. */
  decryptBits(ciphertexts: readonly Uint8Array[], count: number): boolean[] {
    this.alive()
    checkCount(this.he, ciphertexts.length, count)
    const t = this.he.plainModulus
    const per = subjectsPerCiphertext(this.he)
    const bits: boolean[] = []
    ciphertexts.forEach((bytes, c) => {
      const slots = this.decryptSlots(bytes, `ciphertexts[${c}]`)
      for (let i = c * per; i < Math.min(count, (c + 1) * per); i++) {
        const base = (i - c * per) * GRID_SIZE
        let sum = 0
        for (let j = 0; j < GRID_SIZE; j++) sum += slots[base + j] as number // < 2^26, exact
        bits.push(sum % t !== 0)
      }
    })
    return bits
  }

  /** Remaining invariant noise budget (bits) of each answer ciphertext; > 0 means it decrypts. */
  noiseBudgets(ciphertexts: readonly Uint8Array[]): number[] {
    this.alive()
    return ciphertexts.map((bytes, c) => {
      const ct = loadCiphertext(this.he, bytes, 'result', `ciphertexts[${c}]`)
      try {
        return this.decryptor.invariantNoiseBudget(ct)
      } finally {
        ct.delete()
      }
    })
  }

  /** The raw decrypted slots of one answer (tests and diagnostics). */
  decryptSlots(bytes: Uint8Array, field = 'ciphertext'): Uint32Array {
    this.alive()
    const ct = loadCiphertext(this.he, bytes, 'result', field)
    try {
      // A ciphertext whose noise has overflowed decrypts to garbage: refuse it instead.
      if (this.decryptor.invariantNoiseBudget(ct) <= 0) throw new VnError('VN_ERR_HE_CIPHERTEXT', `${field}: noise budget exhausted`)
      this.decryptor.decrypt(ct, this.plain)
      return Uint32Array.from(this.he.encoder.decode(this.plain, false))
    } finally {
      ct.delete()
    }
  }

  /** Encrypt an arbitrary slot vector (tests of malicious queries use it). */
  encryptSlots(slots: Uint32Array): Uint8Array {
    this.alive()
    if (slots.length !== this.he.slotCount) throw new VnError('VN_ERR_HE_BOUND', 'slots: wrong length')
    this.he.encoder.encode(slots, this.plain)
    const ser = this.encryptor.encryptSymmetricSerializable(this.plain)
    try {
      return saveSealObject(ser, this.he)
    } finally {
      ser.delete()
    }
  }

  /** Free the WASM objects. The client is unusable afterwards. */
  delete(): void {
    if (this.deleted) return
    this.deleted = true
    this.plain.delete()
    this.decryptor.delete()
    this.encryptor.delete()
    this.secretKey.delete()
  }

  private encryptSegments(count: number, fill: (segment: Uint32Array, subject: number) => void): Uint8Array[] {
    this.alive()
    const per = subjectsPerCiphertext(this.he)
    const out: Uint8Array[] = []
    for (let c = 0; c * per < count; c++) {
      const slots = new Uint32Array(this.he.slotCount)
      for (let i = c * per; i < Math.min(count, (c + 1) * per); i++) {
        fill(slots.subarray((i - c * per) * GRID_SIZE, (i - c * per + 1) * GRID_SIZE), i)
      }
      out.push(this.encryptSlots(slots))
    }
    return out
  }

  private alive(): void {
    if (this.deleted) throw new VnError('VN_ERR_INTERNAL', 'HeClient used after delete()')
  }
}

function checkCount(he: HeContext, ciphertexts: number, count: number): void {
  if (!Number.isSafeInteger(count) || count < 0) throw new VnError('VN_ERR_INTERNAL', 'count: not a non-negative integer')
  const want = ciphertextCount(he, count)
  if (ciphertexts !== want) {
    throw new VnError('VN_ERR_HE_CIPHERTEXT', `ciphertexts: expected ${want} for ${count} subjects, got ${ciphertexts}`)
  }
}

// ---------------------------------------------------------------------------------------------
// provider

interface CachedKey {
  publicKey: PublicKey
  encryptor: Encryptor
}

export interface HeProviderOptions {
  /** How many consumer public keys to keep loaded (LRU). Each costs ~0.7 MB of WASM memory. */
  keyCacheSize?: number
}

/** A provider value: an amount in fen, or null when there is no record (every bit is then 0). */
export type HeValue = number | null

/** The provider side: evaluates queries against its values under a consumer's public key. */
export class HeProvider {
  private readonly keys = new Map<string, CachedKey>()
  private readonly keyCacheSize: number
  private readonly step: PlainText
  private readonly flood: PlainText
  private readonly mask: PlainText
  private readonly zero: CipherText
  private deleted = false

  constructor(
    readonly he: HeContext,
    options: HeProviderOptions = {},
  ) {
    this.keyCacheSize = Math.max(1, options.keyCacheSize ?? 32)
    this.step = he.seal.PlainText()
    this.flood = he.seal.PlainText()
    this.mask = he.seal.PlainText()
    this.zero = he.seal.CipherText()
  }

  static async create(options: HeProviderOptions = {}): Promise<HeProvider> {
    return new HeProvider(await createHeContext(), options)
  }

  /** Check, load and cache a consumer public key; returns its digest (the cache handle). */
  loadKey(publicKeyBytes: Uint8Array, expectedDigest?: string): string {
    this.alive()
    const digest = publicKeyDigest(publicKeyBytes)
    if (expectedDigest !== undefined && expectedDigest !== digest) throw new VnError('VN_ERR_HE_KEY', 'publicKey: digest does not match')
    if (this.cached(digest) === undefined) this.insert(digest, publicKeyBytes)
    return digest
  }

  /** Whether a key with this digest is loaded. */
  hasKey(digest: string): boolean {
    return this.keys.has(digest)
  }

  /**
   * Answer the queries for `values.length` subjects under the consumer key given by bytes or by the
   * digest of a key loaded before. Returns one result ciphertext per query ciphertext.
   */
  evaluate(key: Uint8Array | string, queries: readonly Uint8Array[], values: readonly HeValue[], kind: HeEvalKind = 'threshold'): Uint8Array[] {
    this.alive()
    if (kind !== 'threshold' && kind !== 'range') throw new VnError('VN_ERR_INTERNAL', 'kind: not threshold or range')
    values.forEach((v, i) => {
      if (v !== null && !Number.isFinite(v)) throw new VnError('VN_ERR_INTERNAL', `values[${i}]: not a finite number`)
    })
    if (!Array.isArray(queries)) throw new VnError('VN_ERR_HE_CIPHERTEXT', 'queries: not a list')
    checkCount(this.he, queries.length, values.length)
    const k = typeof key === 'string' ? this.cached(key) : this.cached(this.loadKey(key))
    if (k === undefined) throw new VnError('VN_ERR_HE_KEY', 'publicKey: not loaded; send the key')
    return queries.map((q, c) => this.evaluateOne(k.encryptor, q, values, c, kind))
  }

  /** Free every WASM object, cached keys included. */
  delete(): void {
    if (this.deleted) return
    this.deleted = true
    for (const k of this.keys.values()) freeKey(k)
    this.keys.clear()
    this.step.delete()
    this.flood.delete()
    this.mask.delete()
    this.zero.delete()
  }

  private evaluateOne(encryptor: Encryptor, query: Uint8Array, values: readonly HeValue[], c: number, kind: HeEvalKind): Uint8Array {
    const he = this.he
    const n = he.slotCount
    const t = he.plainModulus
    const per = subjectsPerCiphertext(he)

    // Plaintexts first (pure JS + encode), so the ciphertext is loaded only once they exist.
    const r = new Uint32Array(n)
    fillUniform(r, t - 1, 1) // r_j in [1, t-1]
    const s = new Uint32Array(n)
    let nonZero = false
    for (let i = c * per; i < Math.min(values.length, (c + 1) * per); i++) {
      const v = values[i]
      const b = v === null || v === undefined ? -1 : bucketIndex(v)
      if (b < 0) continue
      const base = (i - c * per) * GRID_SIZE
      nonZero = true
      if (kind === 'threshold') s.set(r.subarray(base, base + b + 1), base)
      else s[base + b] = r[base + b] as number
    }
    const m = new Uint32Array(n)
    fillUniform(m, t, 0)
    for (let base = 0; base < n; base += GRID_SIZE) {
      let sum = 0
      for (let j = base; j < base + GRID_SIZE - 1; j++) sum += m[j] as number
      m[base + GRID_SIZE - 1] = (t - (sum % t)) % t // each segment of the mask sums to 0 mod t
    }
    const f = r // reuse the buffer: r is consumed
    fillUniform(f, t, 0)
    // An all-zero s (no subject here has a non-negative value) would make SEAL's product
    // transparent, which the throwing build refuses. Then the product is computed with a random
    // plaintext and discarded, so the work (and its timing) is the same as usual.
    he.encoder.encode(nonZero ? s : f, this.step)
    he.encoder.encode(m, this.mask)
    he.encoder.encode(f, this.flood)

    const ct = loadCiphertext(he, query, 'query', `queries[${c}]`)
    try {
      const ev = he.evaluator
      ev.multiplyPlain(ct, this.step, ct) // Enc(q (.) s)
      // Re-randomize: + Enc_pk(0) * F with F a uniformly random plaintext polynomial.
      encryptor.encryptZero(this.zero)
      ev.multiplyPlain(this.zero, this.flood, this.zero)
      if (nonZero) ev.add(ct, this.zero, ct)
      else ct.copy(this.zero) // q (.) 0 = 0: the answer is the re-randomizer alone
      ev.addPlain(ct, this.mask, ct)
      // Down to the last level: drowns the data-dependent noise, shrinks the answer 4x.
      while (ct.coeffModulusSize > he.lastLevelPrimes) ev.cipherModSwitchToNext(ct, ct)
      return saveSealObject(ct, he)
    } finally {
      ct.delete()
    }
  }

  private cached(digest: string): CachedKey | undefined {
    const k = this.keys.get(digest)
    if (k !== undefined) {
      this.keys.delete(digest) // LRU: move to the back
      this.keys.set(digest, k)
    }
    return k
  }

  private insert(digest: string, bytes: Uint8Array): CachedKey {
    const publicKey = loadPublicKey(this.he, bytes)
    let encryptor: Encryptor
    try {
      encryptor = this.he.seal.Encryptor(this.he.context, publicKey)
    } catch {
      publicKey.delete()
      throw new VnError('VN_ERR_HE_KEY', 'publicKey: SEAL rejected the public key')
    }
    const k = { publicKey, encryptor }
    this.keys.set(digest, k)
    while (this.keys.size > this.keyCacheSize) {
      const [oldest, ok] = this.keys.entries().next().value as [string, CachedKey]
      this.keys.delete(oldest)
      freeKey(ok)
    }
    return k
  }

  private alive(): void {
    if (this.deleted) throw new VnError('VN_ERR_INTERNAL', 'HeProvider used after delete()')
  }
}

function freeKey(k: CachedKey): void {
  k.encryptor.delete()
  k.publicKey.delete()
}
