/**
 * In-memory implementations of the storage interfaces (storage.ts).
 *
 * - `MemoryLogStore`: log and evidence in memory, for the fast unit tier (provider and consumer
 *   tests without a database file). Same checks, same errors, same fail-closed behaviour as the
 *   SQLite store, and disclosures sealed with the evidence key as they would be at rest; nothing
 *   survives the process. Passes test/log/store-conformance.ts.
 * - `MemoryReplayMemory`, `MemoryQuotaStore`: process-local replay memory and quota counts. The
 *   SQLite backend uses them too: one node process owns its log file, so it keeps both in memory
 *   and rebuilds them from its log at start-up (node/runtime.ts). A backend shared by replicas
 *   keeps them where every replica sees them.
 */
import { VnError } from '../errors.js'
import { assembleProof, foldRange, hashEquals, leafHash, planConsistencyProof, planInclusionProof, planRoot, rootFromLeafHashes, type NodeId } from './merkle.js'
import { parseCheckpoint, parseNote } from './checkpoint.js'
import type { EvidenceRow } from './evidence.js'
import { checkEvidenceKey, decryptDisclosures, decryptReceived, encryptDisclosures, encryptReceived, type SealedDisclosures } from './sealing.js'
import { DEFAULT_REPLAY_MAX_ENTRIES, MAX_ENTRIES_PER_READ, SNAPSHOT_CHUNK, checkAppendInput, type AppendResult, type EvidenceStore, type LogReader, type LogSnapshot, type LogStore, type NodeStores, type ReplayEntry, type ReplayMemory, type StoredCheckpoint, type StoredDisclosures, type StoredJws, type StoredSealedDisclosures, type StoredReceived, type StoredTree } from './storage.js'
import { QuotaCounter, type ConsumeResult, type QuotaRecord, type QuotaStore } from '../policy/quota.js'

export interface MemoryLogStoreOptions {
  /** the 32-byte evidence key; without it disclosure rows are refused (as in the SQLite store) */
  evidenceKey?: Uint8Array
  /** Largest accepted leaf in bytes (default 1 MiB). */
  maxLeafBytes?: number
  /** Most leaves in one call (default 512). */
  maxBatch?: number
}

const unavailable = (detail: string): VnError => new VnError('VN_ERR_LOG_UNAVAILABLE', detail)

function checkIndex(name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new VnError('VN_ERR_LOG_PROOF', `${name}: must be a non-negative integer`)
}

export class MemoryLogStore implements LogStore, EvidenceStore, LogReader {
  private readonly leaves: Uint8Array[] = []
  private readonly leafHashes: Uint8Array[] = []
  private readonly checkpoints = new Map<number, string>()
  private readonly jws = new Map<number, StoredJws>()
  private readonly disclosures = new Map<number, { xid: string; sealed: SealedDisclosures; expiresAt: number }>()
  private readonly received = new Map<number, { xid: string; digest: string; sealed: SealedDisclosures; expiresAt: number }>()
  private readonly evidenceKey: Uint8Array | undefined
  private readonly maxLeafBytes: number
  private readonly maxBatch: number
  private failure: VnError | undefined
  private closed = false
  private failNext = false

  constructor(opts: MemoryLogStoreOptions = {}) {
    if (opts.evidenceKey !== undefined) checkEvidenceKey(opts.evidenceKey, 'log store: evidenceKey')
    this.evidenceKey = opts.evidenceKey === undefined ? undefined : new Uint8Array(opts.evidenceKey)
    this.maxLeafBytes = opts.maxLeafBytes ?? 1024 * 1024
    this.maxBatch = opts.maxBatch ?? 512
  }

  get writable(): boolean {
    return this.failure === undefined && !this.closed
  }

  /** Nothing to read back in memory: the trial write is the `failNextCommit` hook, if set. */
  async reopen(verify: (stored: StoredTree) => Promise<void>): Promise<void> {
    if (this.closed) throw unavailable('store is closed')
    if (this.failure === undefined) return
    if (this.failNext) {
      this.failNext = false
      throw unavailable('trial write failed; the store still refuses writes')
    }
    const size = this.leaves.length
    await verify({ size, rootHash: (at) => this.rootHash(at) })
    if (this.closed) throw unavailable('store is closed')
    this.failure = undefined
  }

  /** Test hook: the next write fails, and the store fails closed (as a failed SQLite commit does). */
  failNextCommit(): void {
    this.failNext = true
  }

  append(leaf: Uint8Array): Promise<AppendResult> {
    return this.appendMany([leaf]).then((r) => r[0] as AppendResult)
  }

  async appendMany(leaves: readonly Uint8Array[], evidence: readonly EvidenceRow[] = []): Promise<AppendResult[]> {
    checkAppendInput(leaves, evidence, { maxLeafBytes: this.maxLeafBytes, maxBatch: this.maxBatch, canSeal: this.evidenceKey !== undefined })
    if (leaves.length === 0) return []
    this.checkWritable()
    const first = this.leaves.length
    const out = leaves.map((l) => this.push(new Uint8Array(l)))
    for (const e of evidence) {
      if (e.kind === 'jws') this.jws.set(first + e.record, { digest: e.digest, jws: e.jws })
      else if (e.kind === 'received') this.received.set(first + e.record, { xid: e.xid, digest: e.digest, sealed: encryptReceived(this.evidenceKey as Uint8Array, e.xid, e.bytes), expiresAt: e.expiresAt })
      else this.disclosures.set(first + e.record, { xid: e.xid, sealed: encryptDisclosures(this.evidenceKey as Uint8Array, e.xid, e.disclosures), expiresAt: e.expiresAt })
    }
    return out
  }

  private checkWritable(): void {
    if (this.closed) throw unavailable('store is closed')
    if (this.failure !== undefined) throw this.failure
    if (this.failNext) {
      this.failNext = false
      this.failure = unavailable('a log commit failed; the store refuses writes until reopened')
      throw this.failure
    }
  }

  private push(leaf: Uint8Array): AppendResult {
    const index = this.leaves.length
    const lh = leafHash(leaf)
    this.leaves.push(leaf)
    this.leafHashes.push(lh)
    return { index, leafHash: lh }
  }

  async purgeExpired(nowMs: number): Promise<number> {
    if (!Number.isSafeInteger(nowMs)) throw new VnError('VN_ERR_EVIDENCE_INVALID', 'nowMs: must be an integer')
    this.checkWritable()
    let n = 0
    for (const rows of [this.disclosures, this.received]) {
      for (const [k, d] of rows) {
        if (d.expiresAt <= nowMs) {
          rows.delete(k)
          n++
        }
      }
    }
    return n
  }

  async saveCheckpoint(size: number, note: string): Promise<void> {
    checkIndex('size', size)
    if (size > this.leaves.length) throw new VnError('VN_ERR_LOG_PROOF', 'size: beyond the committed log')
    const cp = parseCheckpoint(parseNote(note).text)
    if (cp.size !== size) throw new VnError('VN_ERR_LOG_NOTE_MALFORMED', 'note: checkpoint size differs from size')
    if (!hashEquals(cp.rootHash, await this.rootHash(size))) throw new VnError('VN_ERR_LOG_NOTE_MALFORMED', 'note: checkpoint root differs from the log root at that size')
    this.checkWritable()
    this.checkpoints.set(size, note)
  }

  async size(): Promise<number> {
    return this.leaves.length
  }

  /**
   * Perfect-subtree hashes recomputed from the leaf hashes on every read: O(n), fine for the unit
   * tier, and no second copy of the incremental tree code (the SQLite writer keeps the nodes).
   */
  private fetchNodes(ids: readonly NodeId[]): Uint8Array[] {
    return ids.map((id) => {
      const width = 2 ** id.level
      return rootFromLeafHashes(this.leafHashes.slice(id.index * width, (id.index + 1) * width))
    })
  }

  async rootHash(size?: number): Promise<Uint8Array> {
    const n = size ?? this.leaves.length
    checkIndex('size', n)
    if (n > this.leaves.length) throw new VnError('VN_ERR_LOG_PROOF', 'size: beyond the committed log')
    return foldRange(this.fetchNodes(planRoot(n)))
  }

  async leaf(index: number): Promise<Uint8Array> {
    checkIndex('index', index)
    if (index >= this.leaves.length) throw new VnError('VN_ERR_LOG_PROOF', 'index: beyond the committed log')
    return new Uint8Array(this.leaves[index] as Uint8Array)
  }

  async entries(start: number, end: number): Promise<Uint8Array[]> {
    checkIndex('start', start)
    checkIndex('end', end)
    if (start > end || end > this.leaves.length) throw new VnError('VN_ERR_LOG_PROOF', 'start/end: must satisfy start ≤ end ≤ size')
    if (end - start > MAX_ENTRIES_PER_READ) throw new VnError('VN_ERR_LOG_PROOF', `end: at most ${MAX_ENTRIES_PER_READ} entries per read`)
    return this.leaves.slice(start, end).map((l) => new Uint8Array(l))
  }

  async inclusionProof(index: number, treeSize: number): Promise<Uint8Array[]> {
    if (treeSize > this.leaves.length) throw new VnError('VN_ERR_LOG_PROOF', 'treeSize: beyond the committed log')
    const plan = planInclusionProof(index, treeSize)
    return assembleProof(plan, this.fetchNodes(plan.nodes))
  }

  async consistencyProof(first: number, second: number): Promise<Uint8Array[]> {
    if (second > this.leaves.length) throw new VnError('VN_ERR_LOG_PROOF', 'second: beyond the committed log')
    const plan = planConsistencyProof(first, second)
    return assembleProof(plan, this.fetchNodes(plan.nodes))
  }

  async latestCheckpoint(): Promise<StoredCheckpoint | undefined> {
    if (this.checkpoints.size === 0) return undefined
    const size = Math.max(...this.checkpoints.keys())
    return { size, note: this.checkpoints.get(size) as string }
  }

  async checkpointAt(size: number): Promise<string | undefined> {
    checkIndex('size', size)
    return this.checkpoints.get(size)
  }

  async getJws(index: number): Promise<StoredJws | undefined> {
    checkRecordIndex(index)
    const r = this.jws.get(index)
    return r === undefined ? undefined : { ...r }
  }

  async getDisclosures(index: number, nowMs: number = Date.now()): Promise<StoredDisclosures | undefined> {
    checkRecordIndex(index)
    const r = this.disclosures.get(index)
    if (r === undefined || r.expiresAt <= nowMs) return undefined
    return { xid: r.xid, disclosures: decryptDisclosures(this.evidenceKey as Uint8Array, r.xid, r.sealed.nonce, r.sealed.ciphertext) }
  }

  /** A copy of what is committed now: later appends and purges do not change it. */
  async snapshot<T>(read: (s: LogSnapshot) => Promise<T>): Promise<T> {
    const size = this.leaves.length
    const leaves = this.leaves.slice(0, size)
    const byLeaf = <V>(m: Map<number, V>): V[] => [...m].filter(([k]) => k < size).sort((a, b) => a[0] - b[0]).map(([, v]) => v)
    const jws = byLeaf(this.jws).map((r) => ({ ...r }))
    const disclosures = byLeaf(this.disclosures)
    const received = byLeaf(this.received)
    const checkpoints = [...this.checkpoints].filter(([n]) => n <= size).sort((a, b) => a[0] - b[0]).map(([n, note]) => ({ size: n, note }))
    const live = (nowMs: number): StoredSealedDisclosures[] => disclosures.filter((d) => d.expiresAt > nowMs).map((d) => ({ xid: d.xid, nonce: d.sealed.nonce, ciphertext: d.sealed.ciphertext }))
    return read({
      size,
      leaves: () => inChunks(leaves),
      jws: () => inChunks(jws),
      sealedDisclosures: (nowMs) => inChunks(live(nowMs)),
      countDisclosures: async (nowMs) => live(nowMs).length,
      sealedReceived: async function* (nowMs) {
        yield* inChunks(received.filter((d) => d.expiresAt > nowMs).map((d) => ({ xid: d.xid, digest: d.digest, nonce: d.sealed.nonce, ciphertext: d.sealed.ciphertext })))
      },
      checkpoints: async () => checkpoints,
    })
  }

  async getReceived(index: number, nowMs: number = Date.now()): Promise<StoredReceived | undefined> {
    checkRecordIndex(index)
    const r = this.received.get(index)
    if (r === undefined || r.expiresAt <= nowMs) return undefined
    return { xid: r.xid, digest: r.digest, bytes: decryptReceived(this.evidenceKey as Uint8Array, r.xid, r.sealed.nonce, r.sealed.ciphertext) }
  }

  async close(): Promise<void> {
    this.closed = true
  }
}

async function* inChunks<T>(rows: readonly T[]): AsyncGenerator<T[]> {
  for (let i = 0; i < rows.length; i += SNAPSHOT_CHUNK) yield rows.slice(i, i + SNAPSHOT_CHUNK)
}

function checkRecordIndex(index: number): void {
  if (!Number.isSafeInteger(index) || index < 0) throw new VnError('VN_ERR_EVIDENCE_INVALID', 'index: must be a non-negative integer')
}

export interface MemoryReplayMemoryOptions {
  /** most entries held (default DEFAULT_REPLAY_MAX_ENTRIES) */
  maxEntries?: number
}

/**
 * Replay memory in this process: per (iss, xid) the request digest, the log index of the answer and
 * the expiry, nothing else (the signed response stays in the log's evidence). Bounded by
 * `maxEntries`: when that many live entries are held a new claim is refused with
 * VN_ERR_EXCH_REPLAY_FULL, never made room for by forgetting a live entry early.
 *
 * Compact, because a provider holds one entry per exchange of its replay window (hundreds of
 * thousands at a high rate, under the container image's 128 MB old generation): a `Map` from
 * "iss|xid" to a slot number (a small integer: no object per entry), and per slot the digest as
 * 32 raw bytes, the index and the expiry in typed arrays, in pages of 4,096 slots added as needed,
 * with freed slots reused. About 150 bytes of heap an entry, the key string most of it, plus 48
 * outside the heap (an object per entry, with its digest as a string, cost 250-390 bytes of heap;
 * test/node/memory-budget.test.ts measures it). A
 * digest that is not the canonical base64url of 32 bytes (not one a node computes) is kept as its
 * string beside the slot.
 *
 * Entries are queued in insertion order, which is their expiry order while the clock moves forward
 * (every entry lives for the same window), so expired entries are dropped from the head on every
 * claim at O(1) amortized cost. An entry out of that order (the clock stepped back, or one restored
 * at start-up) is dropped when it reaches the head, or by a full sweep, run at most once a second
 * and only when the memory is full; it is never returned once expired.
 */
const PAGE_BITS = 12
/** slots per page of the replay memory's typed arrays */
const PAGE = 1 << PAGE_BITS
const PAGE_MASK = PAGE - 1
/** base64url of 32 bytes, in its one canonical form (the last character carries 4 bits, the rest zero) */
const CANONICAL_DIGEST = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/
const SCRATCH = Buffer.alloc(32)

export class MemoryReplayMemory implements ReplayMemory {
  private readonly slotOf = new Map<string, number>()
  private readonly keys: (string | undefined)[] = []
  /** per slot, in pages of PAGE slots (allocated as needed, never copied): the digest's 32 bytes */
  private readonly digests: Uint8Array[] = []
  /** the answer's log index, or -1 while unsettled */
  private readonly indices: Float64Array[] = []
  private readonly expiries: Float64Array[] = []
  private readonly free: number[] = []
  /** digests that are not 32 bytes of canonical base64url, by slot */
  private readonly odd = new Map<number, string>()
  /**
   * Slots in the order they were held, with the expiry they were held with: the queue the expired
   * head is dropped from. Not the Map's own order: V8 leaves a deleted Map entry as a hole until
   * the table is rebuilt, and every new iterator walks the holes from the start, so dropping the
   * head by iterating the Map cost O(entries dropped since the last rebuild) per claim (about
   * 200 µs at 630 claims/s and a 120 s window, measured), and the latency grew with it. A queued
   * slot that was freed and held again meanwhile carries its new entry's expiry, so the old queue
   * item leaves it alone.
   */
  private queueSlots: number[] = []
  private queueExpiry: number[] = []
  private queueHead = 0
  private lastFullSweep = -Infinity
  readonly capacity: number

  constructor(opts: MemoryReplayMemoryOptions = {}) {
    const n = opts.maxEntries ?? DEFAULT_REPLAY_MAX_ENTRIES
    if (!Number.isSafeInteger(n) || n < 1) throw new VnError('VN_ERR_CONFIG_INVALID', 'replay memory: maxEntries must be a positive integer')
    this.capacity = n
  }

  private static key(iss: string, xid: string): string {
    return `${iss}|${xid}`
  }

  async claim(iss: string, xid: string, entry: ReplayEntry, now: number): Promise<ReplayEntry | undefined> {
    // Synchronous from here to the set: two claims of one key never interleave (one event loop).
    this.dropExpiredHead(now)
    const key = MemoryReplayMemory.key(iss, xid)
    const prior = this.slotOf.get(key)
    // (an expired entry not yet swept is gone all the same)
    if (prior !== undefined && this.expiryAt(prior) >= now) return this.entryAt(prior)
    if (prior === undefined && this.slotOf.size >= this.capacity) {
      if (now - this.lastFullSweep >= 1000) {
        this.lastFullSweep = now
        for (const [k, slot] of this.slotOf) if (this.expiryAt(slot) < now) this.forget(k, slot)
      }
      if (this.slotOf.size >= this.capacity) {
        throw new VnError('VN_ERR_EXCH_REPLAY_FULL', `${this.slotOf.size} exchanges held for the replay window (limits.replayMaxEntries ${this.capacity})`)
      }
    }
    if (prior !== undefined) this.forget(key, prior)
    this.hold(key, entry.reqDigest, -1, entry.expiresAt)
    return undefined
  }

  async settle(iss: string, xid: string, reqDigest: string, index: number): Promise<void> {
    const slot = this.slotOf.get(MemoryReplayMemory.key(iss, xid))
    if (slot !== undefined && this.indexAt(slot) === -1 && this.sameDigest(slot, reqDigest)) (this.indices[slot >>> PAGE_BITS] as Float64Array)[slot & PAGE_MASK] = index
  }

  async release(iss: string, xid: string, reqDigest: string): Promise<void> {
    const key = MemoryReplayMemory.key(iss, xid)
    const slot = this.slotOf.get(key)
    if (slot !== undefined && this.indexAt(slot) === -1 && this.sameDigest(slot, reqDigest)) this.forget(key, slot)
  }

  async remember(iss: string, xid: string, entry: ReplayEntry & { readonly index: number }): Promise<void> {
    const key = MemoryReplayMemory.key(iss, xid)
    const prior = this.slotOf.get(key)
    if (prior !== undefined) this.forget(key, prior)
    this.hold(key, entry.reqDigest, entry.index, entry.expiresAt)
  }

  /** Entries held right now, live or not yet dropped. */
  get size(): number {
    return this.slotOf.size
  }

  private entryAt(slot: number): ReplayEntry {
    const index = this.indexAt(slot)
    const expiresAt = this.expiryAt(slot)
    return index === -1 ? { reqDigest: this.digestAt(slot), expiresAt } : { reqDigest: this.digestAt(slot), index, expiresAt }
  }

  private indexAt(slot: number): number {
    return (this.indices[slot >>> PAGE_BITS] as Float64Array)[slot & PAGE_MASK] as number
  }

  private expiryAt(slot: number): number {
    return (this.expiries[slot >>> PAGE_BITS] as Float64Array)[slot & PAGE_MASK] as number
  }

  /** Whether the slot holds `digest` (compared as bytes: no string made). */
  private sameDigest(slot: number, digest: string): boolean {
    const odd = this.odd.get(slot)
    if (odd !== undefined) return odd === digest
    if (!CANONICAL_DIGEST.test(digest)) return false
    SCRATCH.write(digest, 'base64url')
    const page = this.digests[slot >>> PAGE_BITS] as Uint8Array
    const off = (slot & PAGE_MASK) * 32
    for (let i = 0; i < 32; i++) if (page[off + i] !== SCRATCH[i]) return false
    return true
  }

  private digestAt(slot: number): string {
    const page = this.digests[slot >>> PAGE_BITS] as Uint8Array
    return this.odd.get(slot) ?? Buffer.from(page.buffer, page.byteOffset + (slot & PAGE_MASK) * 32, 32).toString('base64url')
  }

  private hold(key: string, reqDigest: string, index: number, expiresAt: number): void {
    let slot = this.free.pop()
    if (slot === undefined) {
      slot = this.keys.length
      this.keys.push(undefined)
      if (slot >>> PAGE_BITS >= this.expiries.length) {
        this.digests.push(new Uint8Array(PAGE * 32))
        this.indices.push(new Float64Array(PAGE))
        this.expiries.push(new Float64Array(PAGE))
      }
    }
    this.keys[slot] = key
    const page = slot >>> PAGE_BITS
    const at = slot & PAGE_MASK
    ;(this.indices[page] as Float64Array)[at] = index
    ;(this.expiries[page] as Float64Array)[at] = expiresAt
    // Canonical base64url of 32 bytes (what jwsDigest gives) is kept as its bytes; anything else as is.
    if (CANONICAL_DIGEST.test(reqDigest)) {
      SCRATCH.write(reqDigest, 'base64url')
      ;(this.digests[page] as Uint8Array).set(SCRATCH, at * 32)
    } else this.odd.set(slot, reqDigest)
    this.slotOf.set(key, slot)
    this.queueSlots.push(slot)
    this.queueExpiry.push(expiresAt)
  }

  private forget(key: string, slot: number): void {
    this.slotOf.delete(key)
    this.keys[slot] = undefined
    this.odd.delete(slot)
    this.free.push(slot)
  }

  /**
   * Drops entries from the head of the queue while they have expired (held in about expiry order:
   * it stops at the first live one, as a claim of an expired key finds it expired anyway). A queue
   * item whose slot was freed, or freed and held again with a later expiry, leaves it alone.
   */
  private dropExpiredHead(now: number): void {
    const slots = this.queueSlots
    const expiry = this.queueExpiry
    let head = this.queueHead
    while (head < slots.length && (expiry[head] as number) < now) {
      const slot = slots[head] as number
      const key = this.keys[slot]
      if (key !== undefined && this.expiryAt(slot) < now) this.forget(key, slot)
      head++
    }
    // Compact once the dropped head is most of the arrays (amortised O(1) per entry).
    if (head > 1024 && head * 2 > slots.length) {
      this.queueSlots = slots.slice(head)
      this.queueExpiry = expiry.slice(head)
      head = 0
    }
    this.queueHead = head
  }
}

/** Quota counts in this process: a `QuotaCounter` (policy/quota.ts) behind the `QuotaStore` interface. */
export class MemoryQuotaStore implements QuotaStore {
  private readonly counter = new QuotaCounter()

  async tryConsume(agreementId: string, day: string, n: number, limit: number): Promise<ConsumeResult> {
    return this.counter.tryConsume(agreementId, day, n, limit)
  }

  async used(agreementId: string, day: string): Promise<number> {
    return this.counter.used(agreementId, day)
  }

  async restore(records: Iterable<QuotaRecord>, onlyDay?: string): Promise<void> {
    this.counter.restore(records, onlyDay)
  }
}

/** All four stores in memory (unit tests). */
export function memoryNodeStores(opts: MemoryLogStoreOptions & { replayMaxEntries?: number } = {}): NodeStores & { readonly log: MemoryLogStore; readonly evidence: MemoryLogStore; readonly replay: MemoryReplayMemory } {
  const store = new MemoryLogStore(opts)
  return { log: store, evidence: store, replay: new MemoryReplayMemory(opts.replayMaxEntries === undefined ? {} : { maxEntries: opts.replayMaxEntries }), quotas: new MemoryQuotaStore(), close: () => store.close() }
}
