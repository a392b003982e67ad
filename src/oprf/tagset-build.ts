/**
 * Tag-set builds in bounded memory (issue 19): the same `.vnts` and `.vnsh` bytes as `buildTagSet`
 * + `encodeShardFile` (src/oprf/tagset.ts, src/oprf/tagshards.ts), written to disk without ever
 * holding more than one bucket of records, however many records the data source has.
 *
 * ## Stages
 * 1. **Evaluate** (`evaluateChunks`): the enumeration is read chunk by chunk, each chunk evaluated
 *    on the OPRF worker pool (a service build hands the worker the rows' raw values, which it
 *    canonicalizes and shard-hashes there too: src/oprf/tagset-rows.ts) and written as a run file
 *    in the work folder (its 8-byte prefixes and shard hashes). Nothing of a finished chunk stays in memory; a killed build restarts from its
 *    run files (resumable, as before).
 * 2. **Distribute**: once the record count N is known, the run files are read in order and every
 *    record is appended to two families of bucket files: by the top `bf` bits of its prefix (the
 *    full set: the sorted set is the concatenation of the sorted buckets) and by the top `bs` bits
 *    of its shard hash (the sharded set: every bucket holds whole shards, since shards are the top
 *    `bits` ≥ `bs` bits). `bf` and `bs` are the smallest with N / 2^b ≤ bucketRecords / 2 (at most
 *    2^12 buckets; `bs` at most the shard bits), so a bucket holds bucketRecords / 2 records on
 *    average and more than bucketRecords only with negligible probability (records are spread by a
 *    pseudorandom output and a hash).
 * 3. **Pack**: one bucket at a time is read, sorted, truncated to the tag length, deduplicated and
 *    written at its place in the output file (tags first, then the header and offsets, which need
 *    the count and the Merkle head, at the front); the file is renamed into place, the sharded file
 *    before the full set.
 *
 * Memory: the bucket in hand (~30 bytes per record: 12 read, 8 sorted, 8 packed), the per-bucket
 * write buffers of stage 2 (at most 8 MiB together), and per shard its leaf hash and offset (what
 * the node keeps of a `.vnsh` anyway). Disk: 12 bytes per record of runs, 20 of buckets (removed
 * after the pack), and the two outputs (~2 × tag length per record).
 */
import { mkdir, open, readFile, rename, rm, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { VnError } from '../errors.js'
import { PREFIX_BYTES } from './prefixes.js'
import {
  encodeTagSet,
  evaluateChunks,
  packDistinct,
  runFile,
  shardBitsFor,
  shardOfHash,
  tagLengthFor,
  type BuildTagSetOptions,
} from './tagset.js'
import { encodeShardRoot, shardLeafHash, shardTreeHead } from './tagshards.js'

/** Records per bucket aimed at, by default: 2^19 (~16 MB in hand while one is packed). */
const DEFAULT_BUCKET_RECORDS = 1 << 19
/** At most 2^12 bucket files per family (beyond ~10^9 records at the default, buckets grow). */
const MAX_BUCKET_BITS = 12
/** Write buffers of all buckets of stage 2 together. */
const SPILL_BUFFER_BYTES = 8 << 20
const SHARD_RECORD_BYTES = PREFIX_BYTES + 4

export interface BuildTagSetFilesOptions extends BuildTagSetOptions {
  /** The work folder: run files (resumable) and buckets. Removed after success unless `keepCheckpoint`. */
  checkpointDir: string
  /** Where the full set is written (atomically; the `.vnts` file). */
  setPath: string
  /** Where the sharded set is written (atomically, before the full set), with `shardRecords`. */
  shardPath?: string
  /** Records per bucket aimed at (module comment); default 2^19. */
  bucketRecords?: number
}

export interface BuildTagSetFilesResult {
  /** Distinct tags in the full set. */
  count: number
  records: number
  tagLength: number
  /** the shard bits b of the sharded file (0 without `shardPath`) */
  shardBits: number
  /** bytes of the full set's file */
  size: number
  resumedChunks: number
  elapsedMs: number
  /** buckets per family, and the most records one bucket held (the memory bound in practice) */
  buckets: { full: number; shards: number; maxRecords: number }
}

/** Bucket bits for N records: the smallest b with N / 2^b ≤ bucketRecords / 2 (module comment). */
export function bucketBitsFor(records: number, bucketRecords: number): number {
  if (!(records >= 0) || !Number.isInteger(bucketRecords) || bucketRecords < 2) throw new VnError('VN_ERR_OPRF_INPUT', 'bucketBitsFor: arguments out of range')
  let b = 0
  while (b < MAX_BUCKET_BITS && records / 2 ** b > bucketRecords / 2) b++
  return b
}

/** Appends fixed-size records to 2^bits bucket files through one write buffer each. */
class BucketSpill {
  private readonly handles: FileHandle[] = []
  private readonly bufs: Buffer[] = []
  private readonly fill: number[] = []
  readonly counts: number[] = []

  private constructor(readonly paths: string[], private readonly recordBytes: number) {}

  static async open(dir: string, family: string, bits: number, recordBytes: number): Promise<BucketSpill> {
    const n = 2 ** bits
    const s = new BucketSpill(Array.from({ length: n }, (_, i) => join(dir, `${family}-${String(i).padStart(4, '0')}.bucket`)), recordBytes)
    const bufBytes = Math.max(1, Math.floor(Math.min(1 << 16, SPILL_BUFFER_BYTES / 2 / n) / recordBytes)) * recordBytes
    for (const p of s.paths) {
      s.handles.push(await open(p, 'w', 0o600))
      s.bufs.push(Buffer.allocUnsafe(bufBytes))
      s.fill.push(0)
      s.counts.push(0)
    }
    return s
  }

  /**
   * Appends one record: the 8-byte prefix of `src` at `at`, then `hash` (u32) when the records
   * carry one. Returns a promise only when the bucket's buffer was full and is being written.
   */
  add(bucket: number, src: Buffer, at: number, hash?: number): Promise<unknown> | undefined {
    const buf = this.bufs[bucket] as Buffer
    let f = this.fill[bucket] as number
    src.copy(buf, f, at, at + PREFIX_BYTES)
    if (hash !== undefined) buf.writeUInt32BE(hash, f + PREFIX_BYTES)
    f += this.recordBytes
    this.counts[bucket] = (this.counts[bucket] as number) + 1
    this.fill[bucket] = f === buf.length ? 0 : f
    return f === buf.length ? (this.handles[bucket] as FileHandle).write(buf, 0, f) : undefined
  }

  async close(): Promise<void> {
    for (let i = 0; i < this.handles.length; i++) {
      const fh = this.handles[i] as FileHandle
      if ((this.fill[i] as number) > 0) await fh.write(this.bufs[i] as Buffer, 0, this.fill[i])
      await fh.close()
    }
    this.bufs.length = 0
  }
}

/** Reads a bucket file whole (one bucket is what the build holds at a time). */
async function readBucket(path: string, recordBytes: number, expected: number): Promise<Buffer> {
  const b = await readFile(path)
  if (b.length !== expected * recordBytes) throw new VnError('VN_ERR_INTERNAL', 'tag-set build: a bucket file is not the length written')
  return b
}

/** Writes `bytes` at `position` in full. */
async function writeAt(fh: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0
  while (done < bytes.length) {
    const { bytesWritten } = await fh.write(bytes, done, bytes.length - done, position + done)
    done += bytesWritten
  }
}

/**
 * Builds the tag set of one service and epoch into files, in memory bounded by `bucketRecords`
 * (module comment), byte for byte what `buildTagSet` and `encodeShardFile` give.
 */
export async function buildTagSetFiles(o: BuildTagSetFilesOptions): Promise<BuildTagSetFilesResult> {
  const t0 = performance.now()
  const bucketRecords = o.bucketRecords ?? DEFAULT_BUCKET_RECORDS
  if (!Number.isInteger(bucketRecords) || bucketRecords < 2) throw new VnError('VN_ERR_OPRF_INPUT', 'bucketRecords: expected an integer ≥ 2')
  if (o.shardPath !== undefined && o.shardRecords === undefined) throw new VnError('VN_ERR_OPRF_INPUT', 'shardPath: needs shardRecords')
  const sharded = o.shardPath !== undefined
  const dir = o.checkpointDir
  // 1. Evaluate: every finished chunk goes to its run file; nothing of it is kept here.
  const ev = await evaluateChunks(o, t0, () => undefined, sharded)
  const records = ev.records
  const tagLength = o.tagLength ?? tagLengthFor(records, o.probesPerEpoch, o.fpBudget)
  const bits = sharded ? shardBitsFor(records, o.shardRecords as number) : 0
  const bf = bucketBitsFor(records, bucketRecords)
  const bs = Math.min(bits, bf)

  // 2. Distribute the runs into the two bucket families.
  const bucketDir = join(dir, 'buckets')
  await rm(bucketDir, { recursive: true, force: true })
  await mkdir(bucketDir, { recursive: true })
  const full = await BucketSpill.open(bucketDir, 'full', bf, PREFIX_BYTES)
  const shards = sharded ? await BucketSpill.open(bucketDir, 'shards', bs, SHARD_RECORD_BYTES) : undefined
  try {
    for (let seq = 0; seq < ev.sizes.length; seq++) {
      o.signal?.throwIfAborted()
      const n = ev.sizes[seq] as number
      const { path, prefixesAt } = runFile(dir, seq)
      const run = await readFile(path)
      const hashesAt = prefixesAt + n * PREFIX_BYTES
      if (run.length !== hashesAt + 4 * n && (sharded || run.length !== hashesAt)) throw new VnError('VN_ERR_INTERNAL', 'tag-set build: a run file is not the length written')
      for (let i = 0; i < n; i++) {
        const at = prefixesAt + i * PREFIX_BYTES
        const w = full.add(shardOfHash(run.readUInt32BE(at), bf), run, at)
        if (w !== undefined) await w
        if (shards !== undefined) {
          const h = run.readUInt32BE(hashesAt + 4 * i)
          const ws = shards.add(shardOfHash(h, bs), run, at, h)
          if (ws !== undefined) await ws
        }
      }
    }
  } finally {
    await full.close()
    await shards?.close()
  }
  let maxRecords = 0
  const header = { service: o.service, epoch: o.epoch, tagLength, publicKey: o.key.publicKey }

  // 3. Pack: the sharded file first (a full set on disk always has its shards beside it).
  if (shards !== undefined && o.shardPath !== undefined) {
    const nShards = 2 ** bits
    const per = 2 ** (bits - bs)
    const headLength = encodeShardRoot({ ...header, count: 0, bits, root: new Uint8Array(32) }).length
    const dataStart = headLength + 4 * (nShards + 1)
    const offsets = new Uint8Array(4 * (nShards + 1))
    const odv = new DataView(offsets.buffer)
    const leaves: Uint8Array[] = []
    const tmp = `${o.shardPath}.${process.pid}.tmp`
    const fh = await open(tmp, 'w', 0o600)
    let count = 0
    let written = false
    try {
      for (let j = 0; j < shards.paths.length; j++) {
        o.signal?.throwIfAborted()
        const n = shards.counts[j] as number
        maxRecords = Math.max(maxRecords, n)
        const b = await readBucket(shards.paths[j] as string, SHARD_RECORD_BYTES, n)
        // Counting sort by shard within the bucket, then each shard sorted (as `groupByShard`).
        const starts = new Uint32Array(per + 1)
        const local = new Uint32Array(n)
        for (let i = 0; i < n; i++) {
          const s = shardOfHash(b.readUInt32BE(i * SHARD_RECORD_BYTES + PREFIX_BYTES), bits) - j * per
          local[i] = s
          starts[s + 1] = (starts[s + 1] as number) + 1
        }
        for (let s = 0; s < per; s++) starts[s + 1] = (starts[s + 1] as number) + (starts[s] as number)
        const fill = starts.slice(0, per)
        const grouped = new BigUint64Array(n)
        for (let i = 0; i < n; i++) {
          const s = local[i] as number
          grouped[fill[s] as number] = b.readBigUInt64BE(i * SHARD_RECORD_BYTES)
          fill[s] = (fill[s] as number) + 1
        }
        const packed = new Uint8Array(n * tagLength)
        let c = 0
        for (let s = 0; s < per; s++) {
          const before = c
          c = packDistinct(grouped.subarray(starts[s], starts[s + 1]).sort(), tagLength, packed, c)
          leaves.push(shardLeafHash(j * per + s, packed.subarray(before * tagLength, c * tagLength)))
          odv.setUint32(4 * (j * per + s + 1), count + c)
        }
        await writeAt(fh, packed.subarray(0, c * tagLength), dataStart + count * tagLength)
        count += c
      }
      const head = encodeShardRoot({ ...header, count, bits, root: shardTreeHead(leaves) })
      await writeAt(fh, head, 0)
      await writeAt(fh, offsets, headLength)
      await fh.truncate(dataStart + count * tagLength) // an empty last bucket wrote nothing
      written = true
    } finally {
      await fh.close()
      if (!written) await rm(tmp, { force: true })
    }
    await rename(tmp, o.shardPath)
  }

  const setHead = encodeTagSet(header, new Uint8Array(0))
  const tmp = `${o.setPath}.${process.pid}.tmp`
  const fh = await open(tmp, 'w', 0o600)
  let count = 0
  let written = false
  try {
    for (let j = 0; j < full.paths.length; j++) {
      o.signal?.throwIfAborted()
      const n = full.counts[j] as number
      maxRecords = Math.max(maxRecords, n)
      const b = await readBucket(full.paths[j] as string, PREFIX_BYTES, n)
      const sorted = new BigUint64Array(n)
      for (let i = 0; i < n; i++) sorted[i] = b.readBigUInt64BE(i * PREFIX_BYTES)
      sorted.sort()
      const packed = new Uint8Array(n * tagLength)
      const c = packDistinct(sorted, tagLength, packed, 0)
      await writeAt(fh, packed.subarray(0, c * tagLength), setHead.length + count * tagLength)
      count += c
    }
    new DataView(setHead.buffer).setUint32(12, count)
    await writeAt(fh, setHead, 0)
    await fh.truncate(setHead.length + count * tagLength)
    written = true
  } finally {
    await fh.close()
    if (!written) await rm(tmp, { force: true }) // stopped (aborted, disk full): no half file left
  }
  await rename(tmp, o.setPath)
  await rm(bucketDir, { recursive: true, force: true })
  if (o.keepCheckpoint !== true) await rm(dir, { recursive: true, force: true })
  return {
    count, records, tagLength, shardBits: bits, size: setHead.length + count * tagLength, resumedChunks: ev.resumedChunks, elapsedMs: performance.now() - t0,
    buckets: { full: full.paths.length, shards: shards?.paths.length ?? 0, maxRecords },
  }
}
