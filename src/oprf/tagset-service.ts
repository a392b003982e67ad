/**
 * Tag sets in a running federation (docs/PROTOCOL.md "oprf mode"): the provider's per-service,
 * per-epoch builder, store and publisher (`TagSetPublisher`), the HTTP representation of a set
 * (headers, ETag), the node's OPRF master seed file, and the mapping from a service's records and
 * subjects to RFC 9497 inputs that both sides must compute identically. The consumer's verified
 * per-epoch cache fetches over the peer client: src/peers/tagset-cache.ts.
 *
 * ## Inputs (`oprfFields`, `oprfLabels`, `recordInputs`)
 * The OPRF input of a record or subject is `oprfInput(service, 1, fields)` (src/oprf/tagset.ts)
 * over canonical field values (the shared `canonicalizeField`) in a fixed order: the field names
 * sorted by UTF-16 code unit, so the order does not depend on how a config or a catalog happens to
 * list them.
 * - `match`: every field of the service (for identity.match: id and name), so a probe answers only
 *   "do these belong together";
 * - `membership`: the key fields (the list's identifier);
 * - `status`, `tier`, `threshold`: the key fields followed by one label from a fixed menu (the
 *   service's `statuses` or `tiers` ids). The enumeration query returns the label in a `status`
 *   (status services) or `tier` (tier, threshold) column, one row per satisfied label; the consumer
 *   sends one blinded element per menu entry and reads the answer from which labels hit.
 * The enumeration query names its columns after the fields (`SELECT id_number AS id, name ...`).
 *
 * ## Epochs
 * epoch = floor(now / epochLength), epochs aligned to the Unix epoch; key =
 * `deriveEpochKey(seed, service, epoch)`. The publisher builds the current epoch's set at start and
 * the next one `leadMs` before the boundary, serves only the current epoch's set, and deletes older
 * files after rotation.
 *
 * ## Files (in `<dataDir>/tagsets/`)
 * `<service>@<epoch>.vnts`: the unsigned tag-set bytes (format v1 of src/oprf/tagset.ts), written
 * atomically; `<service>@<epoch>.vnsh`: the same tags in shards under a Merkle root
 * (src/oprf/tagshards.ts), written first, read per request; `<service>@<epoch>.build/`: resumable
 * run files of an unfinished build. The node
 * signs a set when it loads it. `verinode tagset build` writes the same files, so a set built on
 * demand is picked up by a running node at its next check (a newer file for the current epoch
 * replaces the one in memory).
 */
import type { KeyObject } from 'node:crypto'
import { mkdir, readdir, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { VnError } from '../errors.js'
import type { DataSource, Row } from '../sources/types.js'
import type { OprfKeyPair } from '../crypto/oprf.js'
import type { WorkerPool } from '../util/worker-pool.js'
import { loadSecretFile, writeSecretFile } from '../crypto/keys.js'
import type { Readable } from 'node:stream'
import {
  deriveEpochKey,
  oprfInput,
  signTagSetDigest,
  TagSetFile,
  tagSetETag,
  tagSetETagOfDigest,
  type BuildChunk,
  type DeferredChunk,
  type BuildProgress,
} from './tagset.js'
import { buildTagSetFiles } from './tagset-build.js'
import { shardHash, ShardFile, signShardRoot } from './tagshards.js'
import { evaluateRows, OPRF_INPUT_VERSION, poolEvaluateRows, oprfFields, oprfLabels, packRows, rowRecords, rowsDigest, rowSpec, type OprfServiceShape } from './tagset-rows.js'
import { setImmediate as yieldLoop } from 'node:timers/promises'

export { labelColumn, oprfFields, oprfLabels, type OprfServiceShape } from './tagset-rows.js'

const DEFAULT_EPOCH_HOURS = 24
const HOUR_MS = 3_600_000
/** Rows per enumeration batch = records per build chunk (stable, so builds can resume). */
const BUILD_CHUNK_ROWS = 4096
/** Sets up to this many rows are built in-thread (no worker start-up, no run files). */
const SMALL_SET_ROWS = 1024
/** In-thread builds evaluate this many records between event-loop turns (~10 ms of work). */
const IN_THREAD_SLICE = 64

/** Services as the provider configures them (plus their oprf block and enumeration SQL). */
export interface OprfProviderService extends OprfServiceShape {
  modes: readonly string[]
  enumerate?: string | undefined
  oprf?: {
    epochHours: number
    tagBytes?: number | undefined
    evaluationsPerSecond?: number | undefined
    shardRecords?: number | undefined
    minAnonymitySet?: number | undefined
  } | undefined
}

/** Records per shard aimed at, by default (docs/SECURITY.md "oprf mode": the anonymity set). */
const DEFAULT_SHARD_RECORDS = 10_000
/** The smallest shard size a node accepts, by default. */
const DEFAULT_MIN_ANONYMITY_SET = 1_000

const shardRecordsOf = (svc: OprfProviderService): number => svc.oprf?.shardRecords ?? DEFAULT_SHARD_RECORDS

/**
 * Refuses a service whose shards would hold fewer records than the anonymity floor: a single
 * check tells the provider the subject's shard, i.e. that it is one of about shardRecords records.
 * @throws VN_ERR_CONFIG_OPRF_ANONYMITY
 */
export function checkShardConfig(svc: OprfProviderService): void {
  const records = shardRecordsOf(svc)
  const floor = svc.oprf?.minAnonymitySet ?? DEFAULT_MIN_ANONYMITY_SET
  if (!Number.isInteger(records) || records < floor) {
    throw new VnError('VN_ERR_CONFIG_OPRF_ANONYMITY', `service ${svc.id}: oprf.shardRecords ${records} is below the anonymity floor ${floor} (oprf.minAnonymitySet)`)
  }
}

/**
 * OPRF inputs of one canonical subject: one input, or one per label of the menu (in menu order).
 * Every field named by `oprfFields` must be present (in oprf mode optional fields are not optional:
 * the tag covers the whole tuple).
 */
export function subjectInputs(svc: OprfServiceShape, subject: Readonly<Record<string, string>>, path: string): Uint8Array[] {
  const values = oprfFields(svc).map((f) => {
    const v = subject[f]
    if (v === undefined) throw new VnError('VN_ERR_SUBJECT_INVALID', `${path}.${f}: required in oprf mode`)
    return v
  })
  const labels = oprfLabels(svc)
  if (labels === undefined) return [oprfInput(svc.id, OPRF_INPUT_VERSION, values)]
  return labels.map((l) => oprfInput(svc.id, OPRF_INPUT_VERSION, [...values, l]))
}

/** The key field values of a canonical subject, in OPRF input order (for its shard hash). */
function keyValues(svc: OprfServiceShape, fields: readonly string[], values: readonly string[]): string[] {
  return values.filter((_, i) => svc.fields[fields[i] as string]?.key === true)
}

/** The shard hash of a canonical subject (src/oprf/tagshards.ts): over its key fields only. */
export function subjectShardHash(svc: OprfServiceShape, subject: Readonly<Record<string, string>>): number {
  const fields = oprfFields(svc)
  return shardHash(svc.id, keyValues(svc, fields, fields.map((f) => subject[f] ?? '')))
}

/**
 * The OPRF input of one enumerated row, or null when the row cannot be a record (a field that does
 * not canonicalize, a label outside the menu): such rows can never be matched by a valid subject.
 */
export function rowInput(svc: OprfServiceShape, row: Row): Uint8Array | null {
  const x = rowRecords(rowSpec(svc), [row]).inputs[0]
  return x === undefined ? null : new Uint8Array(x) // its own bytes, not a view of the writer's block
}

/** Per-subject answers from probe hits (`hits[i]` for subject i: one flag per input). */
export function answersFromHits(svc: OprfServiceShape, hits: readonly boolean[][]): Record<string, unknown>[] {
  const labels = oprfLabels(svc)
  return hits.map((h) => {
    switch (svc.kind) {
      case 'match':
        return { match: h[0] === true }
      case 'membership':
        return { listed: h[0] === true }
      case 'status': {
        const i = h.indexOf(true)
        return i < 0 ? { found: false } : { found: true, status: labels?.[i] }
      }
      case 'tier':
      case 'threshold': {
        // the highest satisfied tier (menus are lowest first)
        const i = h.lastIndexOf(true)
        return { tier: i < 0 ? null : labels?.[i] ?? null }
      }
    }
  })
}

// ---------------------------------------------------------------------------------------------
// Epochs and the master seed

export const epochLengthMs = (svc: OprfProviderService): number => (svc.oprf?.epochHours ?? DEFAULT_EPOCH_HOURS) * HOUR_MS
export const epochAt = (now: number, epochMs: number): number => Math.floor(now / epochMs)

/** keys/oprf.seed: 32 random bytes, base64, mode 0600 (the root of every epoch key). */
export const oprfSeedFile = (keysDir: string): string => join(keysDir, 'oprf.seed')

export const createOprfSeed = (path: string): Promise<void> => writeSecretFile(path)

/** Reads the seed (creating it when `create` and it is missing); refuses a group/world-readable file. */
export async function loadOprfSeed(path: string, opts: { create?: boolean } = {}): Promise<Uint8Array> {
  if (opts.create === true && (await stat(path).catch(() => null)) === null) await createOprfSeed(path)
  return loadSecretFile(path)
}

// ---------------------------------------------------------------------------------------------
// Building one set into the store

export const tagSetFile = (dir: string, service: string, epoch: number): string => join(dir, `${service}@${epoch}.vnts`)
/** The sharded form of the same set (src/oprf/tagshards.ts), written before the full one. */
export const shardFilePath = (dir: string, service: string, epoch: number): string => join(dir, `${service}@${epoch}.vnsh`)
const buildDir = (dir: string, service: string, epoch: number): string => join(dir, `${service}@${epoch}.build`)

export interface ServiceBuildOptions {
  svc: OprfProviderService
  source: DataSource
  /** the epoch's key (`deriveEpochKey(seed, svc.id, epoch)`) */
  key: OprfKeyPair
  epoch: number
  /** the tag-set store folder (`<dataDir>/tagsets`) */
  dir: string
  /** the worker pool (or a getter, called only when needed) for sets larger than SMALL_SET_ROWS; none: in-thread */
  pool?: WorkerPool | (() => WorkerPool | undefined) | undefined
  onProgress?: (p: BuildProgress) => void
  signal?: AbortSignal
}

export interface ServiceBuildResult {
  path: string
  /** bytes of the full set's file (the set itself stays on disk) */
  size: number
  records: number
  /** enumerated rows that could not be records (bad identifier, label outside the menu) */
  skipped: number
  count: number
  tagLength: number
  /** the shard bits b of the sharded file (2^b shards) */
  shardBits: number
  resumedChunks: number
  elapsedMs: number
}

/**
 * Enumerates the service's records (its `enumerate` SQL, read in place), evaluates them with the
 * epoch key on the pool (resumable: run files in `<service>@<epoch>.build/`), and writes the set
 * and its shards in bounded memory (src/oprf/tagset-build.ts).
 */
export async function buildServiceTagSet(o: ServiceBuildOptions): Promise<ServiceBuildResult> {
  const sql = o.svc.enumerate
  if (sql === undefined) throw new VnError('VN_ERR_CONFIG_INVALID', `service ${o.svc.id}: oprf mode needs an enumerate query`)
  await mkdir(o.dir, { recursive: true, mode: 0o700 })
  const svc = o.svc
  const spec = rowSpec(svc)
  let rows = 0
  const toInputs = (batch: readonly Row[]): { inputs: Uint8Array[]; shardHashes: Uint32Array } => {
    rows += batch.length
    return rowRecords(spec, batch)
  }
  // A pool build hands each batch over packed: the workers canonicalize, evaluate and shard-hash
  // (src/oprf/tagset-rows.ts), this thread reads rows and writes run files.
  const deferred = (batch: readonly Row[]): DeferredChunk => {
    rows += batch.length
    const packed = packRows(spec, batch)
    return {
      digest: rowsDigest(spec, packed),
      evaluate: async () => {
        if (pool !== undefined) return poolEvaluateRows(pool, o.key.secretKey, spec, packed)
        await yieldLoop()
        return evaluateRows(o.key.secretKey, spec, packed)
      },
    }
  }
  // Look at the first two batches: a small set (at most SMALL_SET_ROWS rows) is evaluated in this
  // thread in slices of IN_THREAD_SLICE, yielding between slices, without starting worker threads
  // or writing run files; anything larger goes to the pool, resumable.
  const it = o.source.iterate(sql, {}, BUILD_CHUNK_ROWS)[Symbol.asyncIterator]()
  const first = await it.next()
  const second = first.done === true ? first : await it.next()
  const small = second.done === true && (first.done === true || first.value.length <= SMALL_SET_ROWS)
  const pool = small ? undefined : typeof o.pool === 'function' ? o.pool() : o.pool
  async function* inputs(): AsyncGenerator<BuildChunk> {
    try {
      if (small) {
        const all = first.done === true ? { inputs: [], shardHashes: new Uint32Array(0) } : toInputs(first.value)
        for (let i = 0; i < all.inputs.length; i += IN_THREAD_SLICE) {
          yield { inputs: all.inputs.slice(i, i + IN_THREAD_SLICE), shardHashes: all.shardHashes.slice(i, i + IN_THREAD_SLICE) }
        }
        return
      }
      if (first.done !== true) yield deferred(first.value)
      if (second.done !== true) yield deferred(second.value)
      for (;;) {
        const n = await it.next()
        if (n.done === true) return
        yield deferred(n.value)
      }
    } finally {
      await it.return?.() // closes the enumeration's connection when a build stops early
    }
  }
  // Both files are written atomically, the sharded one first: a full set on disk always has its
  // shards beside it. The work folder (runs, buckets) goes after success.
  const path = tagSetFile(o.dir, svc.id, o.epoch)
  const r = await buildTagSetFiles({
    service: svc.id,
    epoch: o.epoch,
    key: o.key,
    inputs: inputs(),
    shardRecords: shardRecordsOf(svc),
    checkpointDir: buildDir(o.dir, svc.id, o.epoch),
    setPath: path,
    shardPath: shardFilePath(o.dir, svc.id, o.epoch),
    ...(pool !== undefined ? { pool } : {}),
    ...(svc.oprf?.tagBytes !== undefined ? { tagLength: svc.oprf.tagBytes } : {}),
    ...(o.onProgress !== undefined ? { onProgress: o.onProgress } : {}),
    ...(o.signal !== undefined ? { signal: o.signal } : {}),
  })
  return {
    path, size: r.size, records: r.records, skipped: rows - r.records, count: r.count, tagLength: r.tagLength, shardBits: r.shardBits,
    resumedChunks: r.resumedChunks, elapsedMs: r.elapsedMs,
  }
}

/**
 * Opens a stored set and checks it belongs to this service, epoch and key (one streaming pass, the
 * set is not read into memory); null if absent or not. Close it when done.
 */
export function openStoredTagSet(dir: string, service: string, epoch: number, key: OprfKeyPair): Promise<TagSetFile | null> {
  return TagSetFile.open(tagSetFile(dir, service, epoch), { service, epoch, publicKey: key.publicKey })
}

// ---------------------------------------------------------------------------------------------
// Provider: build, rotate, publish

/** One signed, servable tag set: its bytes stay in the file (issue 19), streamed per download. */
export interface PublishedTagSet {
  service: string
  epoch: number
  /** bytes of the set */
  size: number
  /** the set's bytes, read from the open file (positional reads; a rebuild does not disturb it) */
  body(): Readable
  /** the whole set, read synchronously from the file: tests and tools only, never a request path */
  readonly bytes: Buffer
  file: TagSetFile
  /** Ed25519 signature (`signTagSet`), base64url */
  signature: string
  kid: string
  etag: string
  count: number
  /** when the epoch ends (ms since the Unix epoch): the set is not served after that */
  endsAt: number
}

/** What the response headers of a published set or epoch header carry. */
type SignedPublication = Pick<PublishedTagSet, 'etag' | 'signature' | 'kid' | 'epoch' | 'endsAt'>

/** The signed epoch header of a sharded set, and the file its shards are read from. */
export interface PublishedShards {
  service: string
  epoch: number
  /** the encoded header (src/oprf/tagshards.ts) */
  header: Buffer
  /** Ed25519 signature (`signShardRoot`), base64url */
  signature: string
  kid: string
  etag: string
  bits: number
  /** the tree head over the shards (in the header) */
  root: Uint8Array
  endsAt: number
  file: ShardFile
}

interface EpochEntry {
  epoch: number
  key: OprfKeyPair
  published?: PublishedTagSet
  shards?: PublishedShards
  mtimeMs?: number
  building?: Promise<void> | undefined
  progress?: BuildProgress
  abort?: AbortController | undefined
  /** the last build's failure (retried at the next check) */
  failed?: unknown
}

/**
 * The message key that signs published sets: the node's Signer (src/exchange/signer.ts), named by
 * shape here so that oprf/ needs nothing from exchange/.
 */
export interface TagSetSigner {
  kid: string
  privateKey: KeyObject
}

export interface TagSetPublisherOptions {
  services: readonly OprfProviderService[]
  source: DataSource | undefined
  seed: Uint8Array
  /** the node's current message key and its kid (a newer manifest may change it) */
  signer: () => TagSetSigner
  /** the OPRF worker pool for builds; undefined: build in-thread between event-loop turns (tests) */
  pool: () => WorkerPool | undefined
  dir: string
  logger: Logger
  now?: () => number
  /** how often rotation and on-demand rebuilds are checked (default 30 s; 0: only on `tick()`) */
  tickMs?: number
  /** how long before an epoch boundary the next set is built (default min(epoch/4, 2 h)) */
  leadMs?: number
}

export class TagSetPublisher {
  private readonly o: TagSetPublisherOptions
  private readonly now: () => number
  private readonly services: Map<string, OprfProviderService>
  private readonly epochs = new Map<string, Map<number, EpochEntry>>()
  /** builds run one at a time (they share the pool with request handling) */
  private queue: Promise<void> = Promise.resolve()
  private timer: NodeJS.Timeout | undefined
  private closed = false

  constructor(o: TagSetPublisherOptions) {
    this.o = o
    this.now = o.now ?? Date.now
    this.services = new Map(o.services.filter((s) => s.modes.includes('oprf')).map((s) => [s.id, s]))
    for (const s of this.services.values()) {
      if (s.enumerate === undefined) throw new VnError('VN_ERR_CONFIG_INVALID', `service ${s.id}: oprf mode needs an enumerate query`)
      oprfLabels(s) // fails early on a labelled service without its menu
      checkShardConfig(s)
    }
  }

  /** Starts the first builds (off the request path) and the rotation timer. */
  start(): void {
    void this.tick()
    const every = this.o.tickMs ?? 30_000
    if (every > 0) {
      this.timer = setInterval(() => void this.tick(), every)
      this.timer.unref()
    }
  }

  /** The current epoch of a service offering oprf. */
  currentEpoch(service: string): number {
    return epochAt(this.now(), epochLengthMs(this.service(service)))
  }

  /** The epoch key of a service (derived, cached while the epoch is kept). */
  key(service: string, epoch: number): OprfKeyPair {
    return this.entry(this.service(service), epoch).key
  }

  /**
   * The set to serve now: only the current epoch's. Throws VN_ERR_OPRF_TAGSET_PENDING while its
   * first build runs (the detail gives the progress, a count of records).
   */
  current(service: string): PublishedTagSet {
    const svc = this.service(service)
    const e = epochAt(this.now(), epochLengthMs(svc))
    const en = this.entry(svc, e)
    if (en.published === undefined) {
      this.ensure(svc, en)
      throw new VnError('VN_ERR_OPRF_TAGSET_PENDING', `${service} epoch ${e}: ${en.progress?.records ?? 0} records evaluated so far`)
    }
    const s = this.o.signer()
    if (s.kid !== en.published.kid) en.published = this.sign(svc, en, en.published.file)
    return en.published
  }

  /**
   * The signed epoch header of the current epoch's sharded set (its shards are read with
   * `readShards`). Throws VN_ERR_OPRF_TAGSET_PENDING while the first build runs.
   */
  currentShards(service: string): PublishedShards {
    this.current(service) // the same pending rule, and re-signing after a key change
    const svc = this.service(service)
    const en = this.entry(svc, epochAt(this.now(), epochLengthMs(svc)))
    const sh = en.shards
    if (sh === undefined) throw new VnError('VN_ERR_OPRF_TAGSET_PENDING', `${service} epoch ${en.epoch}: shards not loaded yet`)
    if (sh.kid !== this.o.signer().kid) en.shards = this.signShards(svc, en, sh.file)
    return en.shards as PublishedShards
  }

  /** HTTP headers for a published set (200 and 304 alike), max-age up to the epoch's end. */
  responseHeaders(p: SignedPublication): Record<string, string> {
    return tagSetResponseHeaders(p, this.now())
  }

  /** Build state per service, for readiness and operators. */
  status(): Record<string, { epoch: number; ready: boolean; records?: number; count?: number }> {
    const out: Record<string, { epoch: number; ready: boolean; records?: number; count?: number }> = {}
    for (const svc of this.services.values()) {
      const e = epochAt(this.now(), epochLengthMs(svc))
      const en = this.epochs.get(svc.id)?.get(e)
      const st: { epoch: number; ready: boolean; records?: number; count?: number } = { epoch: e, ready: en?.published !== undefined }
      if (en?.published !== undefined) st.count = en.published.count
      else if (en?.progress !== undefined) st.records = en.progress.records
      out[svc.id] = st
    }
    return out
  }

  /** Waits until every service's current set is published (tests, `tagset build` in-process). */
  async whenReady(): Promise<void> {
    for (;;) {
      await this.tick()
      const pending = [...this.services.values()].map((s) => this.entry(s, epochAt(this.now(), epochLengthMs(s))))
      if (pending.every((en) => en.published !== undefined)) return
      await Promise.all(pending.map((en) => en.building))
      if (this.closed) throw new VnError('VN_ERR_INTERNAL', 'tag-set publisher closed')
      const failed = pending.find((en) => en.published === undefined && en.failed !== undefined)
      if (failed !== undefined) throw failed.failed
    }
  }

  /**
   * One scheduling pass: make sure the current epoch's set exists (or is being built), pick up a
   * newer stored file (a `verinode tagset build` on demand), build the next epoch's set when the
   * boundary is near, and forget and delete older epochs (they are never served again).
   */
  async tick(): Promise<void> {
    if (this.closed) return
    const now = this.now()
    for (const svc of this.services.values()) {
      const ms = epochLengthMs(svc)
      const e = epochAt(now, ms)
      const cur = this.entry(svc, e)
      if (cur.published !== undefined && cur.building === undefined) await this.reloadIfNewer(svc, cur)
      this.ensure(svc, cur)
      const lead = this.o.leadMs ?? Math.min(ms / 4, 2 * HOUR_MS)
      if (now >= (e + 1) * ms - lead) this.ensure(svc, this.entry(svc, e + 1))
      const map = this.epochs.get(svc.id)
      for (const [old, en] of map ?? []) {
        if (old >= e) continue
        en.abort?.abort()
        map?.delete(old)
        await en.shards?.file.close().catch(() => undefined)
        await en.published?.file.close().catch(() => undefined)
        await this.removeFiles(svc.id, old)
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true
    if (this.timer !== undefined) clearInterval(this.timer)
    for (const m of this.epochs.values()) for (const en of m.values()) en.abort?.abort()
    await this.queue.catch(() => undefined)
    for (const m of this.epochs.values()) {
      for (const en of m.values()) {
        await en.shards?.file.close().catch(() => undefined)
        await en.published?.file.close().catch(() => undefined)
      }
    }
  }

  private service(id: string): OprfProviderService {
    const svc = this.services.get(id)
    if (svc === undefined) throw new VnError('VN_ERR_POLICY_UNKNOWN_SERVICE', `no oprf service ${id}`)
    return svc
  }

  private entry(svc: OprfProviderService, epoch: number): EpochEntry {
    let m = this.epochs.get(svc.id)
    if (m === undefined) this.epochs.set(svc.id, (m = new Map()))
    let en = m.get(epoch)
    if (en === undefined) {
      en = { epoch, key: deriveEpochKey(this.o.seed, svc.id, epoch) }
      m.set(epoch, en)
    }
    return en
  }

  private ensure(svc: OprfProviderService, en: EpochEntry): void {
    if (this.closed || en.published !== undefined || en.building !== undefined) return
    const abort = new AbortController()
    en.abort = abort
    const run = async (): Promise<void> => {
      if (abort.signal.aborted) return
      const stored = await openStoredTagSet(this.o.dir, svc.id, en.epoch, en.key)
      const storedShards = stored === null ? null : await this.openShards(svc, en)
      if (stored !== null && storedShards !== null) {
        en.published = this.sign(svc, en, stored)
        en.shards = this.signShards(svc, en, storedShards)
        en.mtimeMs = stored.mtimeMs
        this.o.logger.info({ service: svc.id, epoch: en.epoch, count: stored.header.count, shardBits: storedShards.root.bits }, 'tag set loaded')
        return
      }
      await stored?.close()
      if (this.o.source === undefined) throw new VnError('VN_ERR_CONFIG_INVALID', 'oprf mode needs a data source')
      const r = await buildServiceTagSet({
        svc, source: this.o.source, key: en.key, epoch: en.epoch, dir: this.o.dir, pool: this.o.pool, signal: abort.signal,
        onProgress: (p) => { en.progress = p },
      })
      const built = await this.openShards(svc, en)
      const file = await openStoredTagSet(this.o.dir, svc.id, en.epoch, en.key)
      if (built === null || file === null) {
        await built?.close()
        await file?.close()
        throw new VnError('VN_ERR_INTERNAL', `${svc.id} epoch ${en.epoch}: the set just written does not open`)
      }
      en.published = this.sign(svc, en, file)
      en.shards = this.signShards(svc, en, built)
      en.mtimeMs = file.mtimeMs
      this.o.logger.info({ service: svc.id, epoch: en.epoch, records: r.records, skipped: r.skipped, count: r.count, shardBits: r.shardBits, resumedChunks: r.resumedChunks, ms: Math.round(r.elapsedMs) }, 'tag set built')
    }
    en.failed = undefined
    const p = this.queue.then(run).catch((err: unknown) => {
      en.failed = err
      if (!abort.signal.aborted) this.o.logger.error({ err, service: svc.id, epoch: en.epoch }, 'tag set build failed; retried at the next check')
    }).finally(() => {
      en.building = undefined
      en.abort = undefined
    })
    en.building = p
    this.queue = p
  }

  private async reloadIfNewer(svc: OprfProviderService, en: EpochEntry): Promise<void> {
    const st = await stat(tagSetFile(this.o.dir, svc.id, en.epoch)).catch(() => null)
    if (st === null || en.mtimeMs === undefined || st.mtimeMs <= en.mtimeMs) return
    const stored = await openStoredTagSet(this.o.dir, svc.id, en.epoch, en.key)
    if (stored === null) return
    const shards = await this.openShards(svc, en)
    if (shards === null) {
      await stored.close()
      return
    }
    const old = en.shards?.file
    const oldSet = en.published?.file
    en.published = this.sign(svc, en, stored)
    en.shards = this.signShards(svc, en, shards)
    en.mtimeMs = stored.mtimeMs
    // Reads of the old files may be in flight (a download of the whole set: longer): closed later.
    if (old !== undefined) setTimeout(() => void old.close().catch(() => undefined), 60_000).unref()
    if (oldSet !== undefined) setTimeout(() => void oldSet.close().catch(() => undefined), 10 * 60_000).unref()
    this.o.logger.info({ service: svc.id, epoch: en.epoch, count: stored.header.count }, 'tag set reloaded (rebuilt on demand)')
  }

  private sign(svc: OprfProviderService, en: EpochEntry, file: TagSetFile): PublishedTagSet {
    const s = this.o.signer()
    return {
      service: svc.id,
      epoch: en.epoch,
      size: file.size,
      body: () => file.stream(),
      get bytes() {
        return file.readAllSync()
      },
      file,
      signature: Buffer.from(signTagSetDigest(file.digest, s.privateKey)).toString('base64url'),
      kid: s.kid,
      etag: tagSetETagOfDigest(file.digest),
      count: file.header.count,
      endsAt: (en.epoch + 1) * epochLengthMs(svc),
    }
  }

  private openShards(svc: OprfProviderService, en: EpochEntry): Promise<ShardFile | null> {
    return ShardFile.open(shardFilePath(this.o.dir, svc.id, en.epoch), { service: svc.id, epoch: en.epoch, publicKey: en.key.publicKey })
  }

  private signShards(svc: OprfProviderService, en: EpochEntry, file: ShardFile): PublishedShards {
    const s = this.o.signer()
    const header = Buffer.from(file.root.bytes)
    return {
      service: svc.id,
      epoch: en.epoch,
      header,
      signature: Buffer.from(signShardRoot(header, s.privateKey)).toString('base64url'),
      kid: s.kid,
      etag: tagSetETag(header),
      bits: file.root.bits,
      root: file.root.root,
      endsAt: (en.epoch + 1) * epochLengthMs(svc),
      file,
    }
  }

  private async removeFiles(service: string, epoch: number): Promise<void> {
    await rm(shardFilePath(this.o.dir, service, epoch), { force: true }).catch(() => undefined)
    await rm(tagSetFile(this.o.dir, service, epoch), { force: true }).catch(() => undefined)
    await rm(buildDir(this.o.dir, service, epoch), { recursive: true, force: true }).catch(() => undefined)
  }
}

/** Deletes stored sets of epochs before `epoch` (used by the CLI after a build). */
export async function pruneStoredTagSets(dir: string, service: string, epoch: number): Promise<void> {
  for (const f of await readdir(dir).catch(() => [] as string[])) {
    const m = /^(.+)@(\d+)\.(vnts|vnsh|build)$/.exec(f)
    if (m !== null && m[1] === service && Number(m[2]) < epoch) await rm(join(dir, f), { recursive: true, force: true })
  }
}

// ---------------------------------------------------------------------------------------------
// The HTTP representation (GET /v1/services/:svc/tagset)

/** Response headers carrying what the binary body cannot: signature, signer, epoch and its end. */
export const TAGSET_HEADERS = {
  signature: 'x-verinode-signature',
  kid: 'x-verinode-kid',
  epoch: 'x-verinode-epoch',
  epochEnds: 'x-verinode-epoch-ends',
} as const

/** The headers for one published set (200 and 304 alike). */
function tagSetResponseHeaders(p: SignedPublication, now: number): Record<string, string> {
  const maxAge = Math.max(0, Math.floor((p.endsAt - now) / 1000))
  return {
    etag: p.etag,
    'cache-control': `public, max-age=${maxAge}`,
    [TAGSET_HEADERS.signature]: p.signature,
    [TAGSET_HEADERS.kid]: p.kid,
    [TAGSET_HEADERS.epoch]: String(p.epoch),
    [TAGSET_HEADERS.epochEnds]: String(p.endsAt),
  }
}

/** RFC 9110 §13.1.2 If-None-Match: does the header name this ETag (or `*`)? */
export function etagMatches(ifNoneMatch: string | string[] | undefined, etag: string): boolean {
  if (ifNoneMatch === undefined) return false
  const v = Array.isArray(ifNoneMatch) ? ifNoneMatch.join(',') : ifNoneMatch
  return v.split(',').some((x) => {
    const t = x.trim()
    return t === '*' || t === etag || t === `W/${etag}`
  })
}
