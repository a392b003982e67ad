/**
 * The node's append-only, tamper-evident log store (RFC 9162 Merkle tree, C2SP checkpoints) and
 * the evidence kept with its records, on SQLite.
 *
 * `SqliteLogStore` is the embedded backend (better-sqlite3, WAL, synchronous=FULL) of the
 * `LogStore` and `EvidenceStore` interfaces (storage.ts): one file holds the leaves, the tree, the
 * checkpoints and the evidence, and evidence rows ride in the same transaction as their records.
 * Disclosures are sealed with the evidence key (sealing.ts) by the writer, on its thread.
 *
 * Group commit ("log before answer", docs/DESIGN.md): appends are queued; the first append after an
 * idle period waits `windowMs` (default 0 = the rest of the current event-loop turn) so concurrent
 * appends join it, then up to `maxBatch` leaves go to the writer as ONE transaction. Appends that
 * arrive while a transaction is being made durable queue up and form the next batch as soon as it
 * returns, so under load batches grow by themselves and nobody waits for a timer. Each promise
 * resolves only after its transaction is durable.
 *
 * Where the writer runs (measured with bench/log.ts, 20k appends with 256 in flight, on the 2-core
 * dev machine while it was shared with other jobs, load average ~10): better-sqlite3 is
 * synchronous and a commit blocks its thread for the inserts and the fsync (~4 ms for one row here,
 * ~12 ms for a 256-leaf batch). The default `writer: 'worker'` owns the write connection on a
 * dedicated worker thread (WorkerPool of size 1); the main thread keeps accepting requests and
 * queueing the next batch while the previous one is fsynced. Measured: worker 19-29k appends/s,
 * p50 8 ms, p99 26-60 ms, event-loop p99 8-15 ms; inline 10-17k appends/s, p50 12-20 ms, p99
 * 60-100 ms, event-loop p99 40-90 ms (every commit stalls all other requests). Hence the worker.
 * `writer: 'inline'` runs the same writer on the main thread: fine for CLI tools and tests.
 *
 * The default, `writer: 'auto'`, adds a second write connection on the main thread for one case:
 * a lone append (at most INLINE_COMMIT_MAX_LEAVES leaves, arriving more than 2 ms after the
 * previous one, with nothing queued or in flight) is committed there, one event-loop turn after it
 * was queued. Without load the two hand-offs to the writer thread cost about half as much as the
 * commit itself (bench oprf: commit ~0.65 ms, hand-offs ~0.2 ms each way, more when the woken
 * thread competes with the event loop for one of two cores), and a single private check makes
 * three commits in a row. Measured on one federation, alternating per request: single-check p50
 * 10.06 ms against 10.63 ms (plain mode 7.36 against 7.59). Under load appends never come after a
 * pause, so group commits stay on the writer thread. The two connections never commit at once
 * (one batch in flight at a time) and each reads back what the other wrote (log-writer.ts).
 * The price: an inline commit holds the event loop for its fsync, and no timeout can cut it short.
 *
 * Fail closed: if a commit throws (I/O error, disk full, a crashed worker, a commit that does not
 * return within `commitTimeoutMs`), the transaction is rolled back as a whole, every append of that
 * batch and every queued append rejects with `VN_ERR_LOG_UNAVAILABLE`, and the store refuses all
 * further writes until `reopen` succeeds (or it is closed and opened again). Reads of already
 * committed data keep working. `reopen` makes a trial write (`probeBytes`, written and removed
 * again, once the file system reports `reopenFreeBytes` available), reads size and right border
 * back from the file, and accepts writes again only if the caller's check of that stored tree
 * passes; a writer that is gone (crashed, or stuck past the timeout) is replaced first.
 *
 * Reads use a second, read-only connection on the main thread. Leaves and perfect-subtree hashes
 * are immutable once committed and reads never go beyond the committed size, so a read can never
 * see a half-written batch; proofs and historical roots are O(log n) point reads.
 */
import { VnError } from '../errors.js'
import { WorkerPool, workerPath } from '../util/worker-pool.js'
import { HASH_SIZE, assembleProof, foldRange, planConsistencyProof, planInclusionProof, planRoot, hashEquals, type NodeId } from './merkle.js'
import { parseCheckpoint, parseNote } from './checkpoint.js'
import { LogWriter, openDatabase, type BatchResult, type OpenResult, type WriteBatch } from './log-writer.js'
import type Database from 'better-sqlite3'
import { QuietClock } from '../util/quiet-clock.js'
import type { EvidenceRow } from './evidence.js'
import { checkEvidenceKey, decryptDisclosures, decryptReceived } from './sealing.js'
import { MAX_ENTRIES_PER_READ, checkAppendInput, type AppendResult, type EvidenceStore, type LogStore, type NodeStores, type StoredCheckpoint, type StoredDisclosures, type StoredJws, type StoredReceived, type StoredTree } from './storage.js'
import { MemoryQuotaStore, MemoryReplayMemory } from './memory-store.js'

export interface SqliteLogStoreOptions {
  /**
   * Where commits run: `auto` (default) a dedicated worker thread for group commits and this thread
   * for a lone small commit after a quiet spell (see "Where the writer runs"); `worker` always the
   * worker thread; `inline` always this thread.
   */
  writer?: 'auto' | 'worker' | 'inline'
  /** How long the first append after an idle period waits for company, in ms (default 0). */
  windowMs?: number
  /** Most leaves in one transaction (default 512). */
  maxBatch?: number
  /** Largest accepted leaf in bytes (default 1 MiB). */
  maxLeafBytes?: number
  /** A commit that does not return in this time fails the store closed (default 30 s). */
  commitTimeoutMs?: number
  /** Size of `reopen`'s trial write in bytes (default 64 KiB: room for a few group commits). */
  probeBytes?: number
  /** `reopen` waits until the log's file system has this many bytes available (default 1 MiB). */
  reopenFreeBytes?: number
  /**
   * The node's 32-byte evidence key: the writer seals disclosure rows with it (on its own thread)
   * and `getDisclosures` opens them. Without it, disclosure rows are refused.
   */
  evidenceKey?: Uint8Array
}

/** A batch of at most this many leaves may be committed inline (`writer: 'auto'`). */
export const INLINE_COMMIT_MAX_LEAVES = 8

interface Op {
  /** came after a quiet spell, with nothing queued or being committed */
  lone: boolean
  leaves: readonly Uint8Array[]
  evidence: readonly EvidenceRow[]
  checkpoint?: { size: number; note: string; savedMs: number }
  purgeBeforeMs?: number
  resolve: (r: OpResult) => void
  reject: (e: unknown) => void
}

interface OpResult {
  appended: AppendResult[]
  purged: number
}

interface WriterHandle {
  open(path: string, sealKey: Uint8Array | undefined): Promise<OpenResult>
  commit(batch: WriteBatch): Promise<BatchResult>
  /** The trial write of `reopen` (log-writer.ts `probe`). */
  probe(bytes: number, minFreeBytes: number, simulateFailure: boolean): Promise<void>
  /** Size and right border read back from the file (after a failure; checks for gaps). */
  reload(): Promise<OpenResult>
  /** Commits on the calling thread, or undefined when this handle has no inline writer. */
  readonly inline?: InlineWriter
  close(): Promise<void>
}

class WorkerWriter implements WriterHandle {
  private readonly pool = new WorkerPool(workerPath(import.meta.url, 'log-writer-worker'), 1)
  open(path: string, sealKey: Uint8Array | undefined): Promise<OpenResult> {
    return this.pool.run<OpenResult>('open', sealKey === undefined ? { path } : { path, sealKey })
  }
  commit(batch: WriteBatch): Promise<BatchResult> {
    return this.pool.run<BatchResult>('commit', batch, [batch.leafData.buffer as ArrayBuffer])
  }
  async probe(bytes: number, minFreeBytes: number, simulateFailure: boolean): Promise<void> {
    await this.pool.run('probe', { bytes, minFreeBytes, simulateFailure })
  }
  reload(): Promise<OpenResult> {
    return this.pool.run<OpenResult>('reload', null)
  }
  async close(): Promise<void> {
    // Let the worker close its connection (checkpointing the WAL); a crashed worker never
    // answers, so do not wait for it forever. pool.close() then rejects anything still queued.
    let timer: NodeJS.Timeout | undefined
    const gaveUp = new Promise<void>((r) => {
      timer = setTimeout(r, 2000)
    })
    await Promise.race([this.pool.run('close', null).catch(() => undefined), gaveUp])
    clearTimeout(timer)
    await this.pool.close()
  }
}

class InlineWriter implements WriterHandle {
  private writer: LogWriter | undefined
  constructor(private readonly checkGaps = true) {}
  async open(path: string, sealKey: Uint8Array | undefined): Promise<OpenResult> {
    this.writer = new LogWriter(path, sealKey, { checkGaps: this.checkGaps })
    return this.writer.state()
  }
  async commit(batch: WriteBatch): Promise<BatchResult> {
    return this.commitNow(batch)
  }
  commitNow(batch: WriteBatch): BatchResult {
    return this.open_().commit(batch)
  }
  async probe(bytes: number, minFreeBytes: number, simulateFailure: boolean): Promise<void> {
    this.open_().probe(bytes, minFreeBytes, simulateFailure)
  }
  async reload(): Promise<OpenResult> {
    return this.open_().reload()
  }
  private open_(): LogWriter {
    if (this.writer === undefined) throw new VnError('VN_ERR_LOG_UNAVAILABLE', 'writer not open')
    return this.writer
  }
  async close(): Promise<void> {
    this.writer?.close()
    this.writer = undefined
  }
}

/**
 * `writer: 'auto'`: the worker thread's writer, plus a second connection on this thread for lone
 * commits. The store never runs two commits at once, and each LogWriter reads back what the other
 * committed (log-writer.ts), so the two build one tree.
 */
class AutoWriter implements WriterHandle {
  private readonly worker = new WorkerWriter()
  readonly inline = new InlineWriter(false)
  async open(path: string, sealKey: Uint8Array | undefined): Promise<OpenResult> {
    const state = await this.worker.open(path, sealKey) // creates the schema, checks the table
    await this.inline.open(path, sealKey)
    return state
  }
  commit(batch: WriteBatch): Promise<BatchResult> {
    return this.worker.commit(batch)
  }
  probe(bytes: number, minFreeBytes: number, simulateFailure: boolean): Promise<void> {
    return this.worker.probe(bytes, minFreeBytes, simulateFailure)
  }
  async reload(): Promise<OpenResult> {
    const state = await this.worker.reload()
    await this.inline.reload()
    return state
  }
  async close(): Promise<void> {
    await this.inline.close()
    await this.worker.close()
  }
}

const unavailable = (detail: string, cause?: unknown): VnError =>
  new VnError('VN_ERR_LOG_UNAVAILABLE', detail, cause === undefined ? undefined : { cause })

function checkIndex(name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new VnError('VN_ERR_LOG_PROOF', `${name}: must be a non-negative integer`)
}

function checkRecordIndex(index: number): void {
  if (!Number.isSafeInteger(index) || index < 0) throw new VnError('VN_ERR_EVIDENCE_INVALID', 'index: must be a non-negative integer')
}

/** A failure the writer itself reported (its file system refused the write): the writer is still usable. */
const refusedWrite = (e: unknown): boolean => e instanceof VnError && e.code === 'VN_ERR_LOG_UNAVAILABLE'

export class SqliteLogStore implements LogStore, EvidenceStore {
  private writer: WriterHandle
  private readonly makeWriter: () => WriterHandle
  private path = ''
  private readonly probeBytes: number
  private readonly reopenFreeBytes: number
  private readonly windowMs: number
  private readonly maxBatch: number
  private readonly maxLeafBytes: number
  private readonly commitTimeoutMs: number
  private readonly evidenceKey: Uint8Array | undefined
  private reader!: Database.Database
  private stmts!: {
    leafHash: Database.Statement
    node: Database.Statement
    leaf: Database.Statement
    entries: Database.Statement
    latestCheckpoint: Database.Statement
    checkpointAt: Database.Statement
    jws: Database.Statement
    disclosures: Database.Statement
    received: Database.Statement
  }
  private committedSize = 0
  private committedRoot: Uint8Array = new Uint8Array(HASH_SIZE)
  private readonly queue: Op[] = []
  private inFlight = false
  private timer: NodeJS.Timeout | NodeJS.Immediate | undefined
  private failure: VnError | undefined
  /** the writer is gone (crashed, or stuck in a commit past the timeout): `reopen` replaces it */
  private writerGone = false
  private reopening: Promise<void> | undefined
  private closed = false
  private failNext = false
  private drained: (() => void)[] = []
  /** tells a lone append after a pause from a steady stream (see `inlineFor`) */
  private readonly quiet = new QuietClock()
  /** the lone op at the head of the queue already waited one extra turn (see `flush`) */
  private waited = false
  private readonly counters = { commits: 0, leaves: 0, largestBatch: 0, inline: 0 }

  private constructor(opts: SqliteLogStoreOptions) {
    this.windowMs = opts.windowMs ?? 0
    this.maxBatch = opts.maxBatch ?? 512
    this.maxLeafBytes = opts.maxLeafBytes ?? 1024 * 1024
    this.commitTimeoutMs = opts.commitTimeoutMs ?? 30_000
    this.probeBytes = opts.probeBytes ?? 64 * 1024
    this.reopenFreeBytes = opts.reopenFreeBytes ?? 1024 * 1024
    if (opts.evidenceKey !== undefined) checkEvidenceKey(opts.evidenceKey, 'log store: evidenceKey')
    this.evidenceKey = opts.evidenceKey === undefined ? undefined : new Uint8Array(opts.evidenceKey)
    if (!(this.windowMs >= 0) || !Number.isSafeInteger(this.maxBatch) || this.maxBatch < 1) {
      throw new VnError('VN_ERR_CONFIG_INVALID', 'log store: windowMs must be ≥ 0 and maxBatch ≥ 1')
    }
    // Last: a refused option must not leave a writer thread behind.
    this.makeWriter = () => opts.writer === 'inline' ? new InlineWriter() : opts.writer === 'worker' ? new WorkerWriter() : new AutoWriter()
    this.writer = this.makeWriter()
  }

  /** Open (creating if needed) the log database at `path` and recover its size and root. */
  static async open(path: string, opts: SqliteLogStoreOptions = {}): Promise<SqliteLogStore> {
    const s = new SqliteLogStore(opts)
    s.path = path
    let state: OpenResult
    try {
      state = await s.writer.open(path, s.evidenceKey)
    } catch (e) {
      await s.writer.close().catch(() => undefined)
      throw e instanceof VnError && e.code.startsWith('VN_ERR_LOG_') ? e : unavailable('cannot open log database', e)
    }
    s.committedSize = state.size
    s.committedRoot = new Uint8Array(state.root)
    s.reader = openDatabase(path, true)
    s.stmts = {
      leafHash: s.reader.prepare('SELECT hash FROM leaves WHERE idx = ?').pluck(),
      node: s.reader.prepare('SELECT hash FROM nodes WHERE level = ? AND idx = ?').pluck(),
      leaf: s.reader.prepare('SELECT data FROM leaves WHERE idx = ?').pluck(),
      entries: s.reader.prepare('SELECT data FROM leaves WHERE idx >= ? AND idx < ? ORDER BY idx').pluck(),
      latestCheckpoint: s.reader.prepare('SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1'),
      checkpointAt: s.reader.prepare('SELECT note FROM checkpoints WHERE size = ?').pluck(),
      jws: s.reader.prepare('SELECT digest, jws FROM evidence_jws WHERE leaf = ?'),
      disclosures: s.reader.prepare('SELECT xid, nonce, ciphertext, expires_ms FROM evidence_disclosures WHERE leaf = ?'),
      received: s.reader.prepare('SELECT xid, digest, nonce, ciphertext, expires_ms FROM evidence_received WHERE leaf = ?'),
    }
    return s
  }

  /** False once a commit failed (fail closed) or the store was closed. For readiness checks. */
  get writable(): boolean {
    return this.failure === undefined && !this.closed
  }

  /**
   * Group-commit counters: transactions committed, leaves appended, largest batch (leaves), and how
   * many of the commits a `writer: 'auto'` store ran on its own thread.
   */
  get stats(): { readonly commits: number; readonly leaves: number; readonly largestBatch: number; readonly inline: number } {
    return { ...this.counters }
  }

  /** Appends (and checkpoint writes) queued for a group commit, not yet handed to the writer (metrics). */
  get queued(): number {
    return this.queue.length
  }

  /**
   * After a failed write: make a trial write, read size and right border back from the file, and
   * accept writes again once `verify` resolves on that stored tree (until then the store keeps
   * refusing writes and keeps serving the state it had). Resolves at once on a writable store.
   * @throws VN_ERR_LOG_UNAVAILABLE (still closed) when the trial write or the read-back fails, or
   *   the store was closed; whatever `verify` throws (still closed)
   */
  reopen(verify: (stored: StoredTree) => Promise<void>): Promise<void> {
    if (this.closed) return Promise.reject(unavailable('store is closed'))
    if (this.failure === undefined) return Promise.resolve()
    this.reopening ??= this.tryReopen(verify).finally(() => {
      this.reopening = undefined
    })
    return this.reopening
  }

  private async tryReopen(verify: (stored: StoredTree) => Promise<void>): Promise<void> {
    let state: OpenResult
    try {
      if (this.writerGone) {
        // A crashed worker never answers and one stuck in a commit holds its thread: start afresh.
        await this.writer.close().catch(() => undefined)
        this.writer = this.makeWriter()
        await this.writer.open(this.path, this.evidenceKey)
        this.writerGone = false
      }
      const simulate = this.failNext
      this.failNext = false
      await this.withTimeout(this.writer.probe(this.probeBytes, this.reopenFreeBytes, simulate))
      state = await this.withTimeout(this.writer.reload())
    } catch (e) {
      if (!refusedWrite(e)) this.writerGone = true
      throw unavailable('trial write failed; the store still refuses writes', e)
    }
    if (this.closed) throw unavailable('store is closed')
    const size = state.size
    const root = new Uint8Array(state.root)
    await verify({
      size,
      rootHash: async (at: number) => {
        checkIndex('size', at)
        if (at > size) throw new VnError('VN_ERR_LOG_PROOF', 'size: beyond the stored log')
        return at === size ? new Uint8Array(root) : foldRange(this.fetchNodes(planRoot(at)))
      },
    })
    if (this.closed) throw unavailable('store is closed')
    this.committedSize = size
    this.committedRoot = root
    this.failure = undefined
  }

  /** Test hook: the next commit throws inside its transaction (after writing its rows). */
  failNextCommit(): void {
    this.failNext = true
  }

  // -------------------------------------------------------------------------------------------
  // Writes

  append(leaf: Uint8Array): Promise<AppendResult> {
    return this.appendMany([leaf]).then((r) => r[0] as AppendResult)
  }

  /**
   * Append leaves, and write their evidence rows in the same transaction, so the exchange's log
   * entries and its evidence become durable together before the answer is released.
   */
  async appendMany(leaves: readonly Uint8Array[], evidence: readonly EvidenceRow[] = []): Promise<AppendResult[]> {
    checkAppendInput(leaves, evidence, { maxLeafBytes: this.maxLeafBytes, maxBatch: this.maxBatch, canSeal: this.evidenceKey !== undefined })
    if (leaves.length === 0) return []
    return (await this.submit({ leaves, evidence })).appended
  }

  /** Delete sealed disclosures that expired at or before `nowMs`; resolves with how many. */
  async purgeExpired(nowMs: number): Promise<number> {
    if (!Number.isSafeInteger(nowMs)) throw new VnError('VN_ERR_EVIDENCE_INVALID', 'nowMs: must be an integer')
    return (await this.submit({ leaves: [], evidence: [], purgeBeforeMs: nowMs })).purged
  }

  async saveCheckpoint(size: number, note: string): Promise<void> {
    checkIndex('size', size)
    if (size > this.committedSize) throw new VnError('VN_ERR_LOG_PROOF', 'size: beyond the committed log')
    // Never store a checkpoint that contradicts the log (its signature is the caller's business).
    const cp = parseCheckpoint(parseNote(note).text)
    if (cp.size !== size) throw new VnError('VN_ERR_LOG_NOTE_MALFORMED', 'note: checkpoint size differs from size')
    if (!hashEquals(cp.rootHash, await this.rootHash(size))) throw new VnError('VN_ERR_LOG_NOTE_MALFORMED', 'note: checkpoint root differs from the log root at that size')
    await this.submit({ leaves: [], evidence: [], checkpoint: { size, note, savedMs: Date.now() } })
  }

  private submit(op: Omit<Op, 'resolve' | 'reject' | 'lone'>): Promise<OpResult> {
    if (this.closed) return Promise.reject(unavailable('store is closed'))
    if (this.failure !== undefined) return Promise.reject(this.failure)
    const paused = this.quiet.paused()
    const lone = paused && !this.inFlight && this.queue.length === 0
    return new Promise<OpResult>((resolve, reject) => {
      this.queue.push({ ...op, lone, resolve, reject })
      this.schedule()
    })
  }

  /**
   * A batch this thread commits itself (`writer: 'auto'`): one small op that came after a quiet
   * spell. Two hand-offs to the writer thread cost about as much as the commit's own work here,
   * and with the thread's CPU shared with request handling, more; under load ops never come after
   * a pause, so group commits stay on the worker thread and never stall the event loop.
   */
  private inlineFor(ops: readonly Op[], leaves: number): InlineWriter | undefined {
    const only = ops[0]
    return ops.length === 1 && only?.lone === true && leaves <= INLINE_COMMIT_MAX_LEAVES ? this.writer.inline : undefined
  }

  private schedule(): void {
    if (this.inFlight || this.timer !== undefined) return
    const pendingLeaves = this.queue.reduce((n, o) => n + o.leaves.length, 0)
    if (this.windowMs === 0 || pendingLeaves >= this.maxBatch) this.timer = setImmediate(() => void this.flush())
    else this.timer = setTimeout(() => void this.flush(), this.windowMs)
  }

  private async flush(): Promise<void> {
    this.timer = undefined
    if (this.inFlight || this.queue.length === 0) return
    if (!this.waited && this.queue.length === 1 && this.inlineFor(this.queue, (this.queue[0] as Op).leaves.length) !== undefined) {
      // An inline commit holds this thread through its fsync. One more turn first, so work begun
      // in this one (a consumer's OPRF proof check hands part of its multiplications to a worker
      // right after logging the response) is under way before the thread stops.
      this.waited = true
      this.timer = setImmediate(() => void this.flush())
      return
    }
    this.waited = false
    // Take whole ops until the batch is full (an op is never split across transactions).
    const ops: Op[] = []
    let count = 0
    while (this.queue.length > 0) {
      const next = this.queue[0] as Op
      if (ops.length > 0 && count + next.leaves.length > this.maxBatch) break
      ops.push(this.queue.shift() as Op)
      count += next.leaves.length
    }
    const batch = this.buildBatch(ops)
    const inline = this.inlineFor(ops, count)
    this.inFlight = true
    let result: BatchResult
    try {
      // Inline, no timeout can help: a commit that hangs holds the thread (and /healthz with it).
      result = inline !== undefined ? inline.commitNow(batch) : await this.commitWithTimeout(batch)
    } catch (e) {
      this.inFlight = false
      this.failClosed(ops, e)
      return
    }
    this.inFlight = false
    if (inline !== undefined) {
      this.quiet.restart()
      this.counters.inline++
    }
    this.counters.commits++
    this.counters.leaves += count
    this.counters.largestBatch = Math.max(this.counters.largestBatch, count)
    this.committedSize = result.size
    this.committedRoot = new Uint8Array(result.root)
    let idx = result.firstIndex
    let off = 0
    for (const op of ops) {
      const appended = op.leaves.map(() => {
        const r = { index: idx++, leafHash: result.leafHashes.slice(off, off + HASH_SIZE) }
        off += HASH_SIZE
        return r
      })
      op.resolve({ appended, purged: result.purged })
    }
    if (this.queue.length > 0) void this.flush()
    else for (const d of this.drained.splice(0)) d()
  }

  private buildBatch(ops: readonly Op[]): WriteBatch {
    const leaves = ops.flatMap((o) => o.leaves)
    const total = leaves.reduce((n, l) => n + l.length, 0)
    const leafData = new Uint8Array(total)
    let off = 0
    for (const l of leaves) {
      leafData.set(l, off)
      off += l.length
    }
    const batch: WriteBatch = { leafData, leafLengths: leaves.map((l) => l.length), evidence: [], checkpoints: [] }
    let first = 0 // the op's first leaf, as an offset in the batch
    for (const o of ops) {
      for (const e of o.evidence) batch.evidence.push(first === 0 ? e : { ...e, record: first + e.record })
      first += o.leaves.length
      if (o.checkpoint !== undefined) batch.checkpoints.push(o.checkpoint)
      if (o.purgeBeforeMs !== undefined) batch.purgeBeforeMs = Math.max(batch.purgeBeforeMs ?? -Infinity, o.purgeBeforeMs)
    }
    if (this.failNext) {
      batch.simulateFailure = true
      this.failNext = false
    }
    return batch
  }

  private commitWithTimeout(batch: WriteBatch): Promise<BatchResult> {
    return this.withTimeout(this.writer.commit(batch))
  }

  private withTimeout<T>(work: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('commit timed out')), this.commitTimeoutMs)
      work.then(
        (r) => {
          clearTimeout(t)
          resolve(r)
        },
        (e: unknown) => {
          clearTimeout(t)
          reject(e)
        },
      )
    })
  }

  private failClosed(ops: readonly Op[], cause: unknown): void {
    if (!refusedWrite(cause)) this.writerGone = true
    this.failure = unavailable(`a log commit failed${cause instanceof VnError && cause.detail !== undefined ? ` (${cause.detail})` : ''}; the store refuses writes until reopened`, cause)
    for (const op of [...ops, ...this.queue.splice(0)]) op.reject(this.failure)
    for (const d of this.drained.splice(0)) d()
  }

  // -------------------------------------------------------------------------------------------
  // Reads

  async size(): Promise<number> {
    return this.committedSize
  }

  private fetchNodes = (ids: readonly NodeId[]): Uint8Array[] =>
    ids.map((id) => {
      const h = (id.level === 0 ? this.stmts.leafHash.get(id.index) : this.stmts.node.get(id.level, id.index)) as Buffer | undefined
      if (h === undefined) throw unavailable('stored tree is missing a node')
      return h
    })

  async rootHash(size?: number): Promise<Uint8Array> {
    if (size === undefined || size === this.committedSize) return new Uint8Array(this.committedRoot)
    checkIndex('size', size)
    if (size > this.committedSize) throw new VnError('VN_ERR_LOG_PROOF', 'size: beyond the committed log')
    return foldRange(this.fetchNodes(planRoot(size)))
  }

  async leaf(index: number): Promise<Uint8Array> {
    checkIndex('index', index)
    if (index >= this.committedSize) throw new VnError('VN_ERR_LOG_PROOF', 'index: beyond the committed log')
    return this.stmts.leaf.get(index) as Buffer
  }

  async entries(start: number, end: number): Promise<Uint8Array[]> {
    checkIndex('start', start)
    checkIndex('end', end)
    if (start > end || end > this.committedSize) throw new VnError('VN_ERR_LOG_PROOF', 'start/end: must satisfy start ≤ end ≤ size')
    if (end - start > MAX_ENTRIES_PER_READ) throw new VnError('VN_ERR_LOG_PROOF', `end: at most ${MAX_ENTRIES_PER_READ} entries per read`)
    return this.stmts.entries.all(start, end) as Buffer[]
  }

  async inclusionProof(index: number, treeSize: number): Promise<Uint8Array[]> {
    if (treeSize > this.committedSize) throw new VnError('VN_ERR_LOG_PROOF', 'treeSize: beyond the committed log')
    const plan = planInclusionProof(index, treeSize)
    return assembleProof(plan, this.fetchNodes(plan.nodes))
  }

  async consistencyProof(first: number, second: number): Promise<Uint8Array[]> {
    if (second > this.committedSize) throw new VnError('VN_ERR_LOG_PROOF', 'second: beyond the committed log')
    const plan = planConsistencyProof(first, second)
    return assembleProof(plan, this.fetchNodes(plan.nodes))
  }

  async latestCheckpoint(): Promise<StoredCheckpoint | undefined> {
    const row = this.stmts.latestCheckpoint.get() as { size: number; note: string } | undefined
    return row === undefined ? undefined : { size: row.size, note: row.note }
  }

  async checkpointAt(size: number): Promise<string | undefined> {
    checkIndex('size', size)
    return this.stmts.checkpointAt.get(size) as string | undefined
  }

  // -------------------------------------------------------------------------------------------
  // Evidence reads

  async getJws(index: number): Promise<StoredJws | undefined> {
    checkRecordIndex(index)
    const row = this.stmts.jws.get(index) as StoredJws | undefined
    return row === undefined ? undefined : { digest: row.digest, jws: row.jws }
  }

  /** The disclosures kept with the record at `index`, or undefined if none are kept or they expired (as of `nowMs`). */
  async getDisclosures(index: number, nowMs: number = Date.now()): Promise<StoredDisclosures | undefined> {
    checkRecordIndex(index)
    const row = this.stmts.disclosures.get(index) as { xid: string; nonce: Buffer; ciphertext: Buffer; expires_ms: number } | undefined
    if (row === undefined || row.expires_ms <= nowMs) return undefined
    if (this.evidenceKey === undefined) throw new VnError('VN_ERR_CONFIG_INVALID', 'log store: opened without the evidence key')
    return { xid: row.xid, disclosures: decryptDisclosures(this.evidenceKey, row.xid, row.nonce, row.ciphertext) }
  }

  /** The bytes of a refused peer answer kept with the record at `index`, or undefined if none are kept or they expired (as of `nowMs`). */
  async getReceived(index: number, nowMs: number = Date.now()): Promise<StoredReceived | undefined> {
    checkRecordIndex(index)
    const row = this.stmts.received.get(index) as { xid: string; digest: string; nonce: Buffer; ciphertext: Buffer; expires_ms: number } | undefined
    if (row === undefined || row.expires_ms <= nowMs) return undefined
    if (this.evidenceKey === undefined) throw new VnError('VN_ERR_CONFIG_INVALID', 'log store: opened without the evidence key')
    return { xid: row.xid, digest: row.digest, bytes: decryptReceived(this.evidenceKey, row.xid, row.nonce, row.ciphertext) }
  }

  /**
   * Wait for queued writes, then close the read connection and the writer, in that order: the last
   * connection to close checkpoints the write-ahead log into the database file and removes it, and
   * a read-only connection cannot, so the writer closes last. A stopped node then leaves one
   * self-contained file (a plain copy of it is a whole backup).
   */
  async close(): Promise<void> {
    if (this.closed) return
    if (this.queue.length > 0 || this.inFlight) await new Promise<void>((r) => this.drained.push(r))
    await this.reopening?.catch(() => undefined)
    this.closed = true
    if (this.timer !== undefined) {
      clearTimeout(this.timer as NodeJS.Timeout)
      clearImmediate(this.timer as NodeJS.Immediate)
    }
    this.reader.close()
    await this.writer.close()
  }
}

/**
 * The SQLite backend's four stores: log and evidence in one SQLite file, replay memory and quota
 * counts in this process (rebuilt from the log at start-up, node/runtime.ts).
 */
export async function openSqliteNodeStores(path: string, opts: SqliteLogStoreOptions & { replayMaxEntries?: number } = {}): Promise<NodeStores & { readonly log: SqliteLogStore; readonly evidence: SqliteLogStore; readonly replay: MemoryReplayMemory }> {
  const store = await SqliteLogStore.open(path, opts)
  return { log: store, evidence: store, replay: new MemoryReplayMemory(opts.replayMaxEntries === undefined ? {} : { maxEntries: opts.replayMaxEntries }), quotas: new MemoryQuotaStore(), close: () => store.close() }
}
