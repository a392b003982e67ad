/**
 * OPRF tag sets: per service and epoch, the provider's truncated RFC 9497 Evaluate outputs of every
 * record, published (signed) so a consumer can probe its own finalized OPRF outputs locally.
 *
 * ## OPRF input encoding (`oprfInput`)
 * All integers big-endian; strings UTF-8 (well-formed, already canonicalized by the shared
 * canonicalization function used by plain lookups):
 * ```
 * u16 16 ‖ "verinode-oprf-v1" ‖ u16 len(svc) ‖ svc ‖ u32 version ‖ u16 nFields ‖ (u16 len(f) ‖ f)*
 * ```
 * Every variable part is length-prefixed and the field count is explicit, so two different
 * (service, version, fields) tuples can never encode to the same bytes. The whole input must fit
 * RFC 9497's 2^16 - 1 byte limit. For `threshold`/`tier` services the tier is one more field.
 *
 * ## Tag length (false-positive budget)
 * A probe is a false positive when an absent subject's tag equals one of the N published tags:
 * probability ≈ N / 2^(8L) for L-byte tags. Over Q probes in an epoch the expected number of false
 * positives is Q·N / 2^(8L). verinode's budget is at most 10^-3 expected false positives per epoch
 * at Q = 10^5 probes, i.e. L = ⌈log2(Q·N / 10^-3) / 8⌉ bytes, clamped to 4..8 (`tagLengthFor`).
 * For N = 10^6: Q·N/budget = 10^14 ≈ 2^46.5 → L = 6 bytes (48 bits): 3.6·10^-4 expected false
 * positives per epoch, 6 bytes per record (6 MB per 10^6 records, fetched once per epoch).
 * A Golomb-coded set would need about log2(Q/budget)+1.5 ≈ 28 bits per record for the same budget
 * (~40% smaller) but has to be decoded sequentially or indexed; sorted fixed-width tags allow an
 * O(log N) binary search with no decode step, which is what a consumer probing 10^5 subjects
 * wants. Longer tags leak nothing more: without the epoch key an OPRF output is pseudorandom.
 *
 * ## Binary format v1 (big-endian)
 * ```
 * off  len  field
 *   0    4  magic "VNTS"
 *   4    1  format version = 1
 *   5    1  OPRF mode (1 = VOPRF)
 *   6    1  tag length L (4..8)
 *   7    1  service id length S (1..128)
 *   8    4  epoch
 *  12    4  tag count N
 *  16   32  epoch public key pkS (the key consumers check BlindEvaluate proofs against)
 *  48    S  service id (ASCII)
 * 48+S N·L  tags, strictly ascending (unsigned byte order)
 * ```
 * The whole byte string is signed: Ed25519 (node:crypto) over "verinode/tagset/v1\0" ‖
 * SHA-256(bytes). The prefix keeps the signature from being replayable as any other message the
 * node key signs.
 *
 * ## Epoch keys
 * `deriveEpochKey(masterSeed, service, epoch)` = DeriveKeyPair(masterSeed, info, VOPRF) with
 * info = u16 21 ‖ "verinode-epoch-key-v1" ‖ u16 len(svc) ‖ svc ‖ u32 epoch, so every (service,
 * epoch) has its own key and rotating the epoch rotates the key. The master seed is therefore as
 * sensitive as every epoch key it derives: keep it with the node's private keys.
 *
 * ## Builds
 * `buildTagSet` evaluates chunks on the OPRF worker pool (never on the event loop when a pool is
 * given), reports progress per chunk, and can checkpoint: with `checkpointDir`, every finished
 * chunk is written as a run file keyed by its sequence number and a SHA-256 of its inputs; a
 * restarted build with the same service, epoch and key re-reads matching runs instead of
 * re-evaluating them (the enumeration must produce the same chunks in the same order to benefit;
 * any chunk whose inputs changed is simply recomputed).
 */
import { createHash, type KeyObject } from 'node:crypto'
import { activeProfile, digest, profileOfKey, signBytes, verifyBytes } from '../crypto/profile.js'
import { readSync } from 'node:fs'
import { mkdir, open, readFile, readdir, rename, rm, writeFile, type FileHandle } from 'node:fs/promises'
import { Readable } from 'node:stream'
import { join } from 'node:path'
import { setImmediate as yieldLoop } from 'node:timers/promises'
import { VnError } from '../errors.js'
import { deriveKeyPair, deserializeElement, MODE_VOPRF, OUTPUT_BYTES, type OprfKeyPair } from '../crypto/oprf.js'
import type { WorkerPool } from '../util/worker-pool.js'
import { poolEvaluatePrefixes } from './oprf-pool.js'
import { evaluatePrefixes, PREFIX_BYTES } from './prefixes.js'

const TAGSET_MAGIC = 'VNTS'
const TAGSET_VERSION = 1
const TAGSET_HEADER_BYTES = 48
const MIN_TAG_BYTES = 4
const MAX_TAG_BYTES = PREFIX_BYTES
/** Expected false positives per epoch that the default tag length allows. */
const DEFAULT_FP_BUDGET = 1e-3
/** Probes per epoch the default budget is computed for (one consumer's 10^5-subject batch). */
const DEFAULT_PROBES_PER_EPOCH = 1e5
const TAGSET_SIGNATURE_CONTEXT = 'verinode/tagset/v1\0'

const OPRF_INPUT_DOMAIN = 'verinode-oprf-v1'
const EPOCH_KEY_DOMAIN = 'verinode-epoch-key-v1'
const SERVICE_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/
const enc = new TextEncoder()
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

function u16(n: number): Uint8Array {
  return Uint8Array.of((n >>> 8) & 0xff, n & 0xff)
}
function u32(n: number): Uint8Array {
  return Uint8Array.of((n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff)
}
function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.length
  }
  return out
}

export function checkService(service: unknown, code: 'VN_ERR_OPRF_INPUT' | 'VN_ERR_OPRF_TAGSET' = 'VN_ERR_OPRF_INPUT'): string {
  if (typeof service !== 'string' || !SERVICE_RE.test(service)) throw new VnError(code, 'service: not a valid service id')
  return service
}

function checkU32(n: unknown, field: string): number {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 0xffffffff) {
    throw new VnError('VN_ERR_OPRF_INPUT', `${field}: expected an integer in 0..2^32-1`)
  }
  return n
}

/** The domain-separated OPRF input for one record or subject (format in the module comment). */
export function oprfInput(serviceId: string, version: number, canonicalFields: readonly string[]): Uint8Array {
  const svc = enc.encode(checkService(serviceId))
  checkU32(version, 'version')
  if (!Array.isArray(canonicalFields) || canonicalFields.length === 0 || canonicalFields.length > 0xffff) {
    throw new VnError('VN_ERR_OPRF_INPUT', 'canonicalFields: expected 1..65535 strings')
  }
  const parts: Uint8Array[] = [u16(OPRF_INPUT_DOMAIN.length), enc.encode(OPRF_INPUT_DOMAIN), u16(svc.length), svc, u32(version), u16(canonicalFields.length)]
  canonicalFields.forEach((f, i) => {
    // A lone surrogate would be replaced by U+FFFD when encoded, so two inputs could collide.
    if (typeof f !== 'string' || LONE_SURROGATE.test(f)) throw new VnError('VN_ERR_OPRF_INPUT', `canonicalFields[${i}]: not a well-formed string`)
    const b = enc.encode(f)
    if (b.length > 0xffff) throw new VnError('VN_ERR_OPRF_INPUT', `canonicalFields[${i}]: too long`)
    parts.push(u16(b.length), b)
  })
  const out = concat(parts)
  if (out.length > 0xffff) throw new VnError('VN_ERR_OPRF_INPUT', 'canonicalFields: encoded input exceeds 65535 bytes')
  return out
}

/** The epoch's VOPRF key pair, derived from the node's master OPRF seed (module comment). */
export function deriveEpochKey(masterSeed: Uint8Array, service: string, epoch: number): OprfKeyPair {
  const svc = enc.encode(checkService(service))
  checkU32(epoch, 'epoch')
  const info = concat([u16(EPOCH_KEY_DOMAIN.length), enc.encode(EPOCH_KEY_DOMAIN), u16(svc.length), svc, u32(epoch)])
  return deriveKeyPair(masterSeed, info, MODE_VOPRF)
}

/** Tag length in bytes for N records under the false-positive budget (module comment). */
export function tagLengthFor(records: number, probesPerEpoch = DEFAULT_PROBES_PER_EPOCH, fpBudget = DEFAULT_FP_BUDGET): number {
  if (!(records >= 0) || !(probesPerEpoch >= 0) || !(fpBudget > 0)) throw new VnError('VN_ERR_OPRF_INPUT', 'tagLengthFor: arguments out of range')
  const bits = Math.log2(Math.max(1, records * probesPerEpoch) / fpBudget)
  return Math.min(MAX_TAG_BYTES, Math.max(MIN_TAG_BYTES, Math.ceil(bits / 8)))
}

/** The tag of a finalized OPRF output: its first `tagLength` bytes. */
export function tagOf(oprfOutput: Uint8Array, tagLength: number): Uint8Array {
  if (!(oprfOutput instanceof Uint8Array) || oprfOutput.length !== OUTPUT_BYTES) throw new VnError('VN_ERR_OPRF_INPUT', `oprfOutput: expected ${OUTPUT_BYTES} bytes`)
  if (!Number.isInteger(tagLength) || tagLength < MIN_TAG_BYTES || tagLength > MAX_TAG_BYTES) throw new VnError('VN_ERR_OPRF_INPUT', 'tagLength: out of range')
  return oprfOutput.slice(0, tagLength)
}

function compareAt(a: Uint8Array, ai: number, b: Uint8Array, bi: number, len: number): number {
  for (let j = 0; j < len; j++) {
    const d = (a[ai + j] as number) - (b[bi + j] as number)
    if (d !== 0) return d
  }
  return 0
}

/** Index of the first pair of packed tags that is not strictly ascending, or -1. */
export function firstUnordered(tags: Uint8Array, tagLength: number): number {
  const count = tags.length / tagLength
  for (let i = 1; i < count; i++) if (compareAt(tags, (i - 1) * tagLength, tags, i * tagLength, tagLength) >= 0) return i
  return -1
}

/** Binary search in packed, strictly ascending tags. */
export function sortedHas(tags: Uint8Array, tagLength: number, tag: Uint8Array): boolean {
  let lo = 0
  let hi = tags.length / tagLength - 1
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1
    const c = compareAt(tags, mid * tagLength, tag, 0, tagLength)
    if (c === 0) return true
    if (c < 0) lo = mid + 1
    else hi = mid - 1
  }
  return false
}

export interface TagSetHeader {
  service: string
  epoch: number
  tagLength: number
  publicKey: Uint8Array
}

/** Serialize a tag set from tags that are already sorted strictly ascending and packed. */
export function encodeTagSet(h: TagSetHeader, packedTags: Uint8Array): Uint8Array {
  const svc = enc.encode(checkService(h.service))
  checkU32(h.epoch, 'epoch')
  if (!Number.isInteger(h.tagLength) || h.tagLength < MIN_TAG_BYTES || h.tagLength > MAX_TAG_BYTES) throw new VnError('VN_ERR_OPRF_INPUT', 'tagLength: out of range')
  if (packedTags.length % h.tagLength !== 0) throw new VnError('VN_ERR_OPRF_INPUT', 'packedTags: not a multiple of tagLength')
  const pk = deserializeElement(h.publicKey, 'publicKey')
  const count = packedTags.length / h.tagLength
  const out = new Uint8Array(TAGSET_HEADER_BYTES + svc.length + packedTags.length)
  out.set(enc.encode(TAGSET_MAGIC), 0)
  out[4] = TAGSET_VERSION
  out[5] = MODE_VOPRF
  out[6] = h.tagLength
  out[7] = svc.length
  const dv = new DataView(out.buffer)
  dv.setUint32(8, h.epoch)
  dv.setUint32(12, count)
  out.set(pk, 16)
  out.set(svc, TAGSET_HEADER_BYTES)
  out.set(packedTags, TAGSET_HEADER_BYTES + svc.length)
  return out
}

/** A parsed, immutable tag set. `parse` is strict: any deviation is VN_ERR_OPRF_TAGSET. */
export class TagSet implements TagSetHeader {
  readonly service: string
  readonly epoch: number
  readonly tagLength: number
  readonly publicKey: Uint8Array
  readonly count: number
  readonly mode: number
  private readonly tags: Uint8Array

  private constructor(h: TagSetHeader & { count: number; mode: number }, tags: Uint8Array) {
    this.service = h.service
    this.epoch = h.epoch
    this.tagLength = h.tagLength
    this.publicKey = h.publicKey
    this.count = h.count
    this.mode = h.mode
    this.tags = tags
  }

  static parse(bytes: Uint8Array): TagSet {
    const bad = (what: string): VnError => new VnError('VN_ERR_OPRF_TAGSET', `tagset: ${what}`)
    if (!(bytes instanceof Uint8Array)) throw bad('expected bytes')
    if (bytes.length < TAGSET_HEADER_BYTES) throw bad('shorter than its header')
    if (Buffer.from(bytes.buffer, bytes.byteOffset, 4).toString('latin1') !== TAGSET_MAGIC) throw bad('bad magic')
    if (bytes[4] !== TAGSET_VERSION) throw bad(`unsupported format version ${bytes[4]}`)
    const mode = bytes[5] as number
    if (mode !== MODE_VOPRF) throw bad(`unsupported OPRF mode ${mode}`)
    const tagLength = bytes[6] as number
    if (tagLength < MIN_TAG_BYTES || tagLength > MAX_TAG_BYTES) throw bad(`tag length ${tagLength} out of range`)
    const svcLen = bytes[7] as number
    if (svcLen < 1 || svcLen > 128) throw bad('service id length out of range')
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    const epoch = dv.getUint32(8)
    const count = dv.getUint32(12)
    const expected = TAGSET_HEADER_BYTES + svcLen + count * tagLength
    if (bytes.length !== expected) throw bad(`length ${bytes.length} does not match header (${expected})`)
    let publicKey: Uint8Array
    try {
      publicKey = deserializeElement(bytes.slice(16, 48), 'publicKey')
    } catch {
      throw bad('public key is not a valid element')
    }
    const svcBytes = bytes.subarray(TAGSET_HEADER_BYTES, TAGSET_HEADER_BYTES + svcLen)
    const service = Buffer.from(svcBytes).toString('latin1')
    if (!SERVICE_RE.test(service)) throw bad('service id malformed')
    const tags = bytes.slice(TAGSET_HEADER_BYTES + svcLen)
    const unordered = firstUnordered(tags, tagLength)
    if (unordered >= 0) throw bad(`tags not strictly ascending at ${unordered}`)
    return new TagSet({ service, epoch, tagLength, publicKey, count, mode }, tags)
  }

  /** Binary search for a tag of exactly `tagLength` bytes. */
  has(tag: Uint8Array): boolean {
    if (!(tag instanceof Uint8Array) || tag.length !== this.tagLength) throw new VnError('VN_ERR_OPRF_INPUT', `tag: expected ${this.tagLength} bytes`)
    return sortedHas(this.tags, this.tagLength, tag)
  }

  /** Probe with a finalized 64-byte OPRF output. */
  hasOutput(oprfOutput: Uint8Array): boolean {
    return this.has(tagOf(oprfOutput, this.tagLength))
  }
}

function signedMessage(bytes: Uint8Array): Buffer {
  return signedMessageOfDigest(digest(bytes))
}

const signedMessageOfDigest = (d: Uint8Array): Buffer => Buffer.concat([Buffer.from(TAGSET_SIGNATURE_CONTEXT, 'latin1'), d])

function checkEd25519(key: KeyObject, type: 'private' | 'public'): void {
  if (key?.type !== type || profileOfKey(key) === undefined) {
    throw new VnError('VN_ERR_CONFIG_INVALID', `${type}Key: expected an Ed25519 or SM2 ${type} KeyObject`)
  }
}

/** Ed25519 (SM2/SM3 with an SM2 key) detached signature (64 bytes) over the tag set (see the module comment). */
export function signTagSet(bytes: Uint8Array, privateKey: KeyObject): Uint8Array {
  checkEd25519(privateKey, 'private')
  return new Uint8Array(signBytes(signedMessage(bytes), privateKey))
}

/**
 * `signTagSet` for a set known by its digest (the profile's hash of its bytes, computed while the
 * file is read from disk): the same signature, without the bytes in memory.
 */
export function signTagSetDigest(bytesDigest: Uint8Array, privateKey: KeyObject): Uint8Array {
  checkEd25519(privateKey, 'private')
  return new Uint8Array(signBytes(signedMessageOfDigest(bytesDigest), privateKey))
}

/** Verify the signature, then parse strictly. Throws VN_ERR_OPRF_TAGSET on any failure. */
export function verifyTagSet(bytes: Uint8Array, signature: Uint8Array, publicKey: KeyObject): TagSet {
  checkEd25519(publicKey, 'public')
  if (!(bytes instanceof Uint8Array)) throw new VnError('VN_ERR_OPRF_TAGSET', 'tagset: expected bytes')
  if (!(signature instanceof Uint8Array) || signature.length !== 64) throw new VnError('VN_ERR_OPRF_TAGSET', 'signature: expected 64 bytes')
  if (!verifyBytes(signedMessage(bytes), publicKey, signature)) throw new VnError('VN_ERR_OPRF_TAGSET', 'signature: does not verify')
  return TagSet.parse(bytes)
}

/** Strong ETag for the tag-set bytes: "vnts-" and the base64url SHA-256, quoted (RFC 9110 §8.8.3). */
export function tagSetETag(bytes: Uint8Array): string {
  return tagSetETagOfDigest(digest(bytes))
}

/** `tagSetETag` from the digest of the bytes. */
export const tagSetETagOfDigest = (bytesDigest: Uint8Array): string => `"vnts-${Buffer.from(bytesDigest).toString('base64url')}"`

/** Blocks read from a tag-set file at a time (checking it, serving it). */
const FILE_BLOCK_BYTES = 1 << 16

/**
 * A tag set served from disk (issue 19): opened once, checked as strictly as `TagSet.parse` in one
 * streaming pass that also computes the digest the signature and ETag are made from; its bytes are
 * then read from the open file for each download, never held whole. A file renamed over this one
 * (a rebuild) does not change what this handle reads.
 */
export class TagSetFile {
  private constructor(
    private readonly fh: FileHandle,
    readonly header: TagSetHeader & { count: number },
    readonly size: number,
    /** the profile's hash of the whole file (`digest(bytes)`) */
    readonly digest: Buffer,
    readonly mtimeMs: number,
  ) {}

  /** Opens and checks the file; null when absent, damaged, or not the set of this service, epoch and key. */
  static async open(path: string, expect: { service: string; epoch: number; publicKey: Uint8Array }): Promise<TagSetFile | null> {
    const fh = await open(path, 'r').catch(() => null)
    if (fh === null) return null
    try {
      const { size, mtimeMs } = await fh.stat()
      const fixed = Buffer.alloc(Math.min(size, TAGSET_HEADER_BYTES + 128))
      await fh.read(fixed, 0, fixed.length, 0)
      const headLength = TAGSET_HEADER_BYTES + (fixed[7] ?? 0)
      if (size < headLength) throw new Error('short')
      // The header checked by the strict parser, with a count of 0 (the tags are checked below).
      const head = Buffer.from(fixed.subarray(0, headLength))
      const count = head.readUInt32BE(12)
      head.writeUInt32BE(0, 12)
      const parsed = TagSet.parse(new Uint8Array(head))
      if (size !== headLength + count * parsed.tagLength) throw new Error('length')
      if (parsed.service !== expect.service || parsed.epoch !== expect.epoch || !Buffer.from(parsed.publicKey).equals(Buffer.from(expect.publicKey))) throw new Error('another set')
      const h = createHash(activeProfile().hashAlg)
      head.writeUInt32BE(count, 12)
      h.update(head)
      const L = parsed.tagLength
      const block = Buffer.alloc(Math.floor(FILE_BLOCK_BYTES / L) * L + L) // the previous tag, then a block
      let have = 0 // bytes of the previous tag before the block (0 at the start)
      for (let pos = headLength; pos < size;) {
        const want = Math.min(block.length - L, size - pos)
        const { bytesRead } = await fh.read(block, L, want, pos)
        if (bytesRead !== want) throw new Error('short read')
        h.update(block.subarray(L, L + want))
        const tags = block.subarray(L - have, L + want)
        if (firstUnordered(tags, L) >= 0) throw new Error('unordered')
        block.copy(block, 0, L + want - L, L + want)
        have = L
        pos += want
      }
      return new TagSetFile(fh, { service: parsed.service, epoch: parsed.epoch, tagLength: L, publicKey: parsed.publicKey, count }, size, h.digest(), mtimeMs)
    } catch {
      await fh.close()
      return null
    }
  }

  /** The file's bytes as a stream of blocks (positional reads: any number of readers at once). */
  stream(): Readable {
    const { fh, size } = this
    async function* blocks(): AsyncGenerator<Buffer> {
      for (let pos = 0; pos < size;) {
        const b = Buffer.allocUnsafe(Math.min(FILE_BLOCK_BYTES, size - pos))
        const { bytesRead } = await fh.read(b, 0, b.length, pos)
        if (bytesRead !== b.length) throw new VnError('VN_ERR_OPRF_TAGSET', 'tag-set file: short read')
        yield b
        pos += b.length
      }
    }
    return Readable.from(blocks(), { objectMode: false })
  }

  /** The whole file, read synchronously: for tests and tools, never on a request path. */
  readAllSync(): Buffer {
    const b = Buffer.alloc(this.size)
    if (readSync(this.fh.fd, b, 0, b.length, 0) !== b.length) throw new VnError('VN_ERR_OPRF_TAGSET', 'tag-set file: short read')
    return b
  }

  async close(): Promise<void> {
    await this.fh.close()
  }
}

// ---------------------------------------------------------------------------------------------
// Builds

export interface BuildProgress {
  /** Records evaluated (or restored from checkpoints) so far. */
  records: number
  chunks: number
  resumedChunks: number
  elapsedMs: number
}

export interface BuildTagSetOptions {
  service: string
  epoch: number
  key: OprfKeyPair
  /**
   * Record inputs (from `oprfInput`) in chunks, e.g. one chunk per page of the enumeration query.
   * A chunk may carry each record's 32-bit shard hash (`shardHashes[i]` for `inputs[i]`,
   * src/oprf/tagshards.ts); with `shardRecords` every chunk must.
   */
  inputs: AsyncIterable<BuildChunk> | Iterable<BuildChunk>
  /**
   * Records per shard aimed at (src/oprf/tagshards.ts `shardBitsFor`): the result then also holds
   * the tags grouped by shard. Absent: the full set only.
   */
  shardRecords?: number
  /** OPRF worker pool (`createOprfPool`). Without one, chunks run in-thread between event-loop turns. */
  pool?: WorkerPool
  /** Fixed tag length in bytes; default `tagLengthFor(count, probesPerEpoch, fpBudget)`. */
  tagLength?: number
  probesPerEpoch?: number
  fpBudget?: number
  /** Directory for resumable run files. Removed after success unless `keepCheckpoint`. */
  checkpointDir?: string
  keepCheckpoint?: boolean
  /** Chunks in flight at once; default twice the pool size. */
  maxInFlight?: number
  onProgress?: (p: BuildProgress) => void
  signal?: AbortSignal
}

/**
 * One chunk of records: their inputs, optionally with their shard hashes; or a chunk whose records
 * are only known once it is evaluated (`DeferredChunk`).
 */
export type BuildChunk = Uint8Array[] | { inputs: Uint8Array[]; shardHashes: Uint32Array } | DeferredChunk

/**
 * A chunk evaluated where its records are made (enumerated rows canonicalized on a worker,
 * src/oprf/tagset-rows.ts): `digest` names its content in the run files (so a resumed build
 * reuses its run without evaluating it again), `evaluate` gives the prefixes and shard hashes of
 * its records, however many of its rows turn out to be records.
 */
export interface DeferredChunk {
  digest: Buffer
  evaluate: () => Promise<{ prefixes: Uint8Array; hashes: Uint32Array }>
}

const isDeferred = (c: BuildChunk): c is DeferredChunk => !Array.isArray(c) && typeof (c as Partial<DeferredChunk>).evaluate === 'function'

/** The tags grouped by shard: shard s holds tags `offsets[s]..offsets[s+1]` of `packed`, ascending. */
export interface ShardedTags {
  bits: number
  offsets: Uint32Array
  packed: Uint8Array
}

export interface BuildTagSetResult {
  bytes: Uint8Array
  /** with `shardRecords`: the same tags grouped by shard */
  sharded?: ShardedTags
  /** Distinct tags in the set (≤ records: duplicate records collapse). */
  count: number
  records: number
  tagLength: number
  resumedChunks: number
  elapsedMs: number
}

const RUN_MAGIC = 'VNTR'
/** A run that also carries the chunk's shard hashes (bounded builds, src/oprf/tagset-build.ts). */
const RUN_MAGIC_HASHES = 'VNTH'
const RUN_HEADER = 4 + 4 + 32

function chunkDigest(inputs: readonly Uint8Array[]): Buffer {
  const h = createHash(activeProfile().hashAlg)
  const len = Buffer.alloc(4)
  for (const x of inputs) {
    len.writeUInt32BE(x.length)
    h.update(len).update(x)
  }
  return h.digest()
}

const runName = (seq: number): string => `chunk-${String(seq).padStart(8, '0')}.run`

async function prepareCheckpoint(dir: string, o: BuildTagSetOptions): Promise<void> {
  await mkdir(dir, { recursive: true })
  const manifest = JSON.stringify({
    format: 1,
    service: o.service,
    epoch: o.epoch,
    publicKey: Buffer.from(o.key.publicKey).toString('hex'),
  })
  const existing = await readFile(join(dir, 'manifest.json'), 'utf8').catch(() => null)
  if (existing !== manifest) {
    // Another service, epoch or key: none of the runs may be reused.
    for (const f of await readdir(dir)) if (f.endsWith('.run') || f.endsWith('.tmp')) await rm(join(dir, f), { force: true })
    await writeFile(join(dir, 'manifest.json'), manifest)
  }
}

/** A run's body: n prefixes, then (a run with hashes) n big-endian u32 shard hashes. */
const runBytes = (n: number, withHashes: boolean): number => RUN_HEADER + n * (PREFIX_BYTES + (withHashes ? 4 : 0))

/**
 * A run's prefixes (and shard hashes, if it has them) if it is the run of these inputs (one with
 * hashes serves a build without, not the reverse); `n` undefined: a deferred chunk's, any count.
 */
async function readRun(dir: string, seq: number, digest: Buffer, n: number | undefined, withHashes: boolean): Promise<{ prefixes: Uint8Array; hashes: Uint32Array | undefined } | null> {
  const b = await readFile(join(dir, runName(seq))).catch(() => null)
  if (b === null || b.length < RUN_HEADER) return null
  const hashed = b.toString('latin1', 0, 4) === RUN_MAGIC_HASHES
  if (!hashed && (withHashes || b.toString('latin1', 0, 4) !== RUN_MAGIC)) return null
  const count = b.readUInt32BE(4)
  if ((n !== undefined && count !== n) || b.length !== runBytes(count, hashed) || !b.subarray(8, 40).equals(digest)) return null
  const prefixes = new Uint8Array(b.buffer, b.byteOffset + RUN_HEADER, count * PREFIX_BYTES)
  if (!hashed) return { prefixes, hashes: undefined }
  const hashes = new Uint32Array(count)
  for (let i = 0; i < count; i++) hashes[i] = b.readUInt32BE(RUN_HEADER + count * PREFIX_BYTES + 4 * i)
  return { prefixes, hashes }
}

async function writeRun(dir: string, seq: number, digest: Buffer, prefixes: Uint8Array, hashes: Uint32Array | undefined): Promise<void> {
  const n = prefixes.length / PREFIX_BYTES
  const b = Buffer.alloc(runBytes(n, hashes !== undefined))
  b.write(hashes === undefined ? RUN_MAGIC : RUN_MAGIC_HASHES, 0, 'latin1')
  b.writeUInt32BE(n, 4)
  digest.copy(b, 8)
  b.set(prefixes, RUN_HEADER)
  if (hashes !== undefined) for (let i = 0; i < n; i++) b.writeUInt32BE(hashes[i] as number, RUN_HEADER + n * PREFIX_BYTES + 4 * i)
  const tmp = join(dir, `${runName(seq)}.tmp`)
  await writeFile(tmp, b)
  await rename(tmp, join(dir, runName(seq))) // atomic: a crash never leaves a half run
}

/**
 * The path of run `seq` in a checkpoint folder, and how to read it back: n prefixes at
 * `RUN_HEADER`, then n big-endian shard hashes (runs written with `hashesInRuns`).
 */
export const runFile = (dir: string, seq: number): { path: string; prefixesAt: number } => ({ path: join(dir, runName(seq)), prefixesAt: RUN_HEADER })

/** What `evaluateChunks` hands over for each finished chunk (in completion order, not `seq` order). */
export interface EvaluatedChunk {
  seq: number
  prefixes: Uint8Array
  hashes: Uint32Array | undefined
}

export interface EvaluatedChunks {
  records: number
  /** records per chunk, by sequence number */
  sizes: number[]
  resumedChunks: number
}

/**
 * The evaluation stage of a build: reads `o.inputs` chunk by chunk, evaluates each on the pool
 * (at most `maxInFlight` at once), checkpoints it as a run file, and hands it to `sink`. With
 * `hashesInRuns` the runs keep the chunk's shard hashes too (a bounded build reads them back).
 */
export async function evaluateChunks(o: BuildTagSetOptions, t0: number, sink: (c: EvaluatedChunk) => void, hashesInRuns = false): Promise<EvaluatedChunks> {
  checkService(o.service)
  checkU32(o.epoch, 'epoch')
  deserializeElement(o.key.publicKey, 'key.publicKey')
  if (o.tagLength !== undefined && (!Number.isInteger(o.tagLength) || o.tagLength < MIN_TAG_BYTES || o.tagLength > MAX_TAG_BYTES)) {
    throw new VnError('VN_ERR_OPRF_INPUT', 'tagLength: out of range')
  }
  const dir = o.checkpointDir
  if (dir !== undefined) await prepareCheckpoint(dir, o)
  const maxInFlight = Math.max(1, o.maxInFlight ?? (o.pool === undefined ? 1 : o.pool.size * 2))
  const sizes: number[] = []
  const progress: BuildProgress = { records: 0, chunks: 0, resumedChunks: 0, elapsedMs: 0 }
  const pending = new Set<Promise<void>>()
  let failure: { error: unknown } | undefined
  let seq = 0

  const processChunk = async (i: number, c: BuildChunk): Promise<void> => {
    let prefixes: Uint8Array | null = null
    let hashes: Uint32Array | undefined
    if (isDeferred(c)) {
      const run = dir === undefined ? null : await readRun(dir, i, c.digest, undefined, true)
      if (run !== null) {
        progress.resumedChunks++
        prefixes = run.prefixes
        hashes = run.hashes
      } else {
        const r = await c.evaluate()
        prefixes = r.prefixes
        hashes = r.hashes
        if (hashes.length * PREFIX_BYTES !== prefixes.length) throw new VnError('VN_ERR_INTERNAL', `inputs: chunk ${i}: one shard hash per record`)
        if (dir !== undefined) await writeRun(dir, i, c.digest, prefixes, hashes) // always with its hashes: they cannot be recomputed here
      }
    } else {
      const chunk = Array.isArray(c) ? c : c.inputs
      hashes = Array.isArray(c) ? undefined : c.shardHashes
      const withHashes = hashesInRuns && hashes !== undefined
      const digest = dir === undefined ? null : chunkDigest(chunk)
      prefixes = dir === undefined || digest === null ? null : ((await readRun(dir, i, digest, chunk.length, withHashes))?.prefixes ?? null)
      if (prefixes !== null) progress.resumedChunks++
      else {
        if (o.pool !== undefined) prefixes = await poolEvaluatePrefixes(o.pool, o.key.secretKey, chunk)
        else {
          await yieldLoop()
          prefixes = evaluatePrefixes(o.key.secretKey, chunk)
        }
        if (dir !== undefined && digest !== null) await writeRun(dir, i, digest, prefixes, withHashes ? hashes : undefined)
      }
    }
    const n = prefixes.length / PREFIX_BYTES
    sizes[i] = n
    sink({ seq: i, prefixes, hashes })
    progress.records += n
    progress.chunks++
    progress.elapsedMs = performance.now() - t0
    o.onProgress?.({ ...progress })
  }

  const enqueue = (c: BuildChunk): void => {
    sizes[seq] = 0 // set when the chunk is done
    const p: Promise<void> = processChunk(seq++, c)
      .catch((error: unknown) => {
        failure ??= { error }
      })
      .finally(() => pending.delete(p))
    pending.add(p)
  }

  const enqueueAll = async (): Promise<void> => {
    for await (const c of o.inputs) {
      o.signal?.throwIfAborted()
      if (failure !== undefined) break
      if (c !== null && typeof c === 'object' && isDeferred(c)) {
        if (!Buffer.isBuffer(c.digest) || c.digest.length !== 32) throw new VnError('VN_ERR_OPRF_INPUT', `inputs: chunk ${seq}: a deferred chunk needs its 32-byte digest`)
        enqueue(c)
        while (pending.size >= maxInFlight) await Promise.race(pending)
        continue
      }
      const chunk = Array.isArray(c) ? c : c?.inputs
      if (!Array.isArray(chunk)) throw new VnError('VN_ERR_OPRF_INPUT', `inputs: chunk ${seq} is not an array`)
      const h = Array.isArray(c) ? undefined : c.shardHashes
      if (h !== undefined && (!(h instanceof Uint32Array) || h.length !== chunk.length)) throw new VnError('VN_ERR_OPRF_INPUT', `inputs: chunk ${seq}: one shard hash per input`)
      if (o.shardRecords !== undefined && h === undefined) throw new VnError('VN_ERR_OPRF_INPUT', `inputs: chunk ${seq}: shard hashes missing`)
      if (chunk.length === 0) continue
      enqueue(c)
      while (pending.size >= maxInFlight) await Promise.race(pending)
    }
  }

  // A build that stops (aborted, or the inputs fail) settles its chunks in flight before it
  // throws: none may still be writing a run file once the caller has moved on (a node that closes
  // and whose folder is then removed, a retry that starts over the same checkpoint).
  try {
    await enqueueAll()
  } finally {
    await Promise.all(pending)
  }
  if (failure !== undefined) throw failure.error
  o.signal?.throwIfAborted()
  return { records: progress.records, sizes, resumedChunks: progress.resumedChunks }
}

/**
 * Build the tag set for one service and epoch in memory. Returns the encoded (unsigned) bytes; sign
 * them with `signTagSet`. Its memory grows with the record count (~40 bytes per record at the
 * merge): a node builds with `buildTagSetFiles` (src/oprf/tagset-build.ts), bounded, instead.
 */
export async function buildTagSet(o: BuildTagSetOptions): Promise<BuildTagSetResult> {
  const t0 = performance.now()
  const results: Uint8Array[] = []
  const hashes: (Uint32Array | undefined)[] = []
  const ev = await evaluateChunks(o, t0, (c) => {
    results[c.seq] = c.prefixes
    hashes[c.seq] = c.hashes
  })
  const dir = o.checkpointDir

  // Merge: sort the 8-byte prefixes as unsigned 64-bit integers (= byte order), drop duplicates,
  // then keep the first tagLength bytes of each (a prefix of a sorted key keeps the order).
  const records = ev.records
  const all = new BigUint64Array(records)
  let k = 0
  for (const r of results) {
    const dv = new DataView(r.buffer, r.byteOffset, r.byteLength)
    for (let off = 0; off < r.length; off += PREFIX_BYTES) all[k++] = dv.getBigUint64(off)
  }
  results.length = 0 // the chunks are in `all` now: let them go before the next copies
  const tagLength = o.tagLength ?? tagLengthFor(records, o.probesPerEpoch, o.fpBudget)
  const sharded = o.shardRecords === undefined ? undefined : groupByShard(all, hashes, shardBitsFor(records, o.shardRecords), tagLength)
  hashes.length = 0
  all.sort()
  const packed = new Uint8Array(records * tagLength)
  const count = packDistinct(all, tagLength, packed, 0)
  const bytes = encodeTagSet({ service: o.service, epoch: o.epoch, tagLength, publicKey: o.key.publicKey }, packed.subarray(0, count * tagLength))
  if (dir !== undefined && o.keepCheckpoint !== true) await rm(dir, { recursive: true, force: true })
  return { bytes, ...(sharded === undefined ? {} : { sharded }), count, records, tagLength, resumedChunks: ev.resumedChunks, elapsedMs: performance.now() - t0 }
}

/**
 * Sorted 8-byte prefixes → their first `tagLength` bytes, duplicates (after truncation) dropped,
 * written to `packed` from tag number `count` on (a prefix of a sorted key keeps the order).
 * Returns the tag count after them.
 */
export function packDistinct(sorted: BigUint64Array, tagLength: number, packed: Uint8Array, count: number): number {
  const shift = BigInt(8 * (PREFIX_BYTES - tagLength))
  const tmp = new DataView(new ArrayBuffer(8))
  const tmpBytes = new Uint8Array(tmp.buffer)
  let last = -1n
  for (let i = 0; i < sorted.length; i++) {
    const v = (sorted[i] as bigint) >> shift
    if (v === last) continue
    last = v
    tmp.setBigUint64(0, v << shift)
    packed.set(tmpBytes.subarray(0, tagLength), count * tagLength)
    count++
  }
  return count
}

/** Shards hold 2^32 / 2^bits consecutive hash values; at most 2^24 shards. */
const MAX_SHARD_BITS = 24

/**
 * Shard bits for N records and a target of `shardRecords` per shard: the largest b with
 * N / 2^b ≥ shardRecords (so an average shard never holds fewer than the target), 0 when N is
 * below twice the target (one shard: the full set).
 */
export function shardBitsFor(records: number, shardRecords: number): number {
  if (!(records >= 0) || !(shardRecords >= 1)) throw new VnError('VN_ERR_OPRF_INPUT', 'shardBitsFor: arguments out of range')
  if (records < 2 * shardRecords) return 0
  return Math.min(MAX_SHARD_BITS, Math.floor(Math.log2(records / shardRecords)))
}

/** The shard of a 32-bit shard hash: its top `bits` bits. */
export const shardOfHash = (hash: number, bits: number): number => (bits === 0 ? 0 : hash >>> (32 - bits))

/**
 * Counting sort of the 8-byte prefixes by shard, then each shard's prefixes sorted, truncated to
 * `tagLength` and deduplicated (equal records have equal shard hashes, so duplicates meet).
 */
function groupByShard(all: BigUint64Array, hashes: readonly (Uint32Array | undefined)[], bits: number, tagLength: number): ShardedTags {
  const shards = 2 ** bits
  const starts = new Uint32Array(shards + 1)
  const shardOf = new Uint32Array(all.length)
  let k = 0
  for (const h of hashes) {
    if (h === undefined) continue
    for (let i = 0; i < h.length; i++) {
      const s = shardOfHash(h[i] as number, bits)
      shardOf[k++] = s
      starts[s + 1] = (starts[s + 1] as number) + 1
    }
  }
  for (let s = 0; s < shards; s++) starts[s + 1] = (starts[s + 1] as number) + (starts[s] as number)
  const fill = starts.slice(0, shards)
  const grouped = new BigUint64Array(all.length)
  for (let i = 0; i < all.length; i++) {
    const s = shardOf[i] as number
    grouped[fill[s] as number] = all[i] as bigint
    fill[s] = (fill[s] as number) + 1
  }
  const packed = new Uint8Array(all.length * tagLength)
  const offsets = new Uint32Array(shards + 1)
  let count = 0
  for (let s = 0; s < shards; s++) {
    count = packDistinct(grouped.subarray(starts[s], starts[s + 1]).sort(), tagLength, packed, count)
    offsets[s + 1] = count
  }
  return { bits, offsets, packed: packed.subarray(0, count * tagLength) }
}
