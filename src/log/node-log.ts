/**
 * The node's view of its log: typed PII-free records in, RFC 8785 canonical JSON leaves out, written
 * with their evidence in one group commit (log before answer), with the wait measured for /metrics;
 * indices can be reserved before the records are written.
 *
 * `NodeLog` is what the exchange (provider, consumer) and witnessing write through; `StoreNodeLog`
 * implements it over any `LogStore` (storage.ts), so the same write path serves every backend.
 */
import { canonicalJsonBytes } from '../protocol/canonical-json.js'
import type { LogRecord } from './records.js'
import type { EvidenceRow } from './evidence.js'
import type { AppendResult, LogStore } from './storage.js'
import { VnError } from '../errors.js'

export interface NodeLog {
  /**
   * Appends records in order, with their evidence, in one group commit; resolves with the records'
   * indices once durable. Rejects with VN_ERR_LOG_UNAVAILABLE when the log cannot be written.
   */
  append(records: readonly LogRecord[], evidence?: readonly EvidenceRow[]): Promise<number[]>
  /**
   * Reserves the next `count` indices, so a record's index can be signed before the record is
   * written (the provider names its request entry in the response). Records are committed in
   * index order: a later slot waits for every earlier one to be filled.
   */
  reserve(count: number): LogSlot
  /**
   * Appends `count` records that `build` makes once their first index is known (the provider signs
   * its response naming its request entry's index), with their evidence, in one group commit;
   * resolves with the indices once durable. Over a log this process alone writes, that is a
   * reservation filled by `build` (a `build` that throws abandons it: the log fails closed); over
   * a log shared by replicas (`SharedNodeLog`) the index is assigned inside the commit's
   * transaction and `build` runs there.
   */
  appendWith(count: number, build: (first: number) => Promise<BuiltRecords>): Promise<number[]>
}

/** What `NodeLog.appendWith` builds. */
export interface BuiltRecords {
  readonly records: readonly LogRecord[]
  readonly evidence?: readonly EvidenceRow[]
}

export interface LogSlot {
  /** the first reserved index */
  readonly index: number
  /** `append` for exactly the reserved number of records */
  append(records: readonly LogRecord[], evidence?: readonly EvidenceRow[]): Promise<number[]>
  /** Gives the slot up unfilled. The log cannot have a gap, so this fails the log closed. */
  abandon(cause: unknown): void
}

interface Filled {
  records: readonly LogRecord[]
  evidence: readonly EvidenceRow[]
  resolve: (indices: number[]) => void
  reject: (e: unknown) => void
}

export class StoreNodeLog implements NodeLog {
  /**
   * Index reservations. The store commits appends in call order and this wrapper is its only
   * writer, so indices can be handed out before the records exist: `reserve` gives the next ones
   * away, and filled slots go to the store strictly in index order (a filled slot waits for every
   * earlier slot). A provider reserves its three records, signs the response naming the request
   * entry's index, then fills the slot, and request, decision and response go in one group commit.
   * Any failed append, or an abandoned slot, breaks the sequence, so the log then refuses all
   * further writes (fail closed), as the store itself does, until `resume` starts a new sequence
   * at the store's size once the store accepts writes again. Slots handed out before that are void.
   */
  private next: number
  /** the next index to hand to the store */
  private submitted: number
  private readonly filled = new Map<number, Filled>()
  private broken: VnError | undefined
  /** bumped by `resume`: a slot of an earlier generation can no longer be filled */
  private generation = 0
  /** appends handed to the store and not yet settled */
  private readonly inFlight = new Set<Promise<unknown>>()

  private constructor(
    private readonly store: LogStore,
    private readonly observeCommit: ((seconds: number) => void) | undefined,
    size: number,
  ) {
    this.next = size
    this.submitted = size
  }

  static async open(store: LogStore, observeCommit?: (seconds: number) => void): Promise<StoreNodeLog> {
    return new StoreNodeLog(store, observeCommit, await store.size())
  }

  /** Why the log refuses writes (undefined while it accepts them). */
  get failure(): VnError | undefined {
    return this.broken
  }

  /**
   * After a failure, once the store accepts writes again (`LogStore.reopen`): waits for appends
   * still in flight to settle, then starts a new sequence at the store's size. Slots reserved
   * before stay void (filling one rejects, abandoning one does nothing).
   */
  async resume(): Promise<void> {
    if (this.broken === undefined) return
    if (!this.store.writable) throw this.broken
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight])
    const size = await this.store.size()
    this.generation++
    this.filled.clear()
    this.next = size
    this.submitted = size
    this.broken = undefined
  }

  append(records: readonly LogRecord[], evidence: readonly EvidenceRow[] = []): Promise<number[]> {
    if (this.broken !== undefined) return Promise.reject(this.broken)
    if (records.length === 0) {
      // Evidence always belongs to a record (it is stored under that record's index).
      return evidence.length === 0 ? Promise.resolve([]) : Promise.reject(new VnError('VN_ERR_EVIDENCE_INVALID', 'evidence without a record'))
    }
    return this.reserve(records.length).append(records, evidence)
  }

  async appendWith(count: number, build: (first: number) => Promise<BuiltRecords>): Promise<number[]> {
    const slot = this.reserve(count)
    let built: BuiltRecords
    try {
      built = await build(slot.index)
    } catch (e) {
      slot.abandon(e)
      throw e
    }
    return slot.append(built.records, built.evidence)
  }

  reserve(count: number): LogSlot {
    if (this.broken !== undefined) throw this.broken
    if (!Number.isSafeInteger(count) || count < 1) throw new VnError('VN_ERR_LOG_ENTRY_INVALID', 'reserve: count must be a positive integer')
    const index = this.next
    this.next += count
    const generation = this.generation
    let used = false
    return {
      index,
      append: (records, evidence = []) => {
        if (used) return Promise.reject(new VnError('VN_ERR_INTERNAL', 'log slot used twice'))
        used = true
        if (generation !== this.generation) return Promise.reject(new VnError('VN_ERR_LOG_UNAVAILABLE', 'the log failed after this slot was reserved'))
        if (records.length !== count) {
          return Promise.reject(this.fail(new VnError('VN_ERR_LOG_UNAVAILABLE', `log slot of ${count} filled with ${records.length} records`)))
        }
        return this.fill(index, records, evidence)
      },
      abandon: (cause) => {
        if (used) return
        used = true
        if (generation !== this.generation) return
        this.fail(new VnError('VN_ERR_LOG_UNAVAILABLE', 'a reserved log slot was abandoned', { cause }))
      },
    }
  }

  private fill(index: number, records: readonly LogRecord[], evidence: readonly EvidenceRow[]): Promise<number[]> {
    if (this.broken !== undefined) return Promise.reject(this.broken)
    return new Promise<number[]>((resolve, reject) => {
      this.filled.set(index, { records, evidence, resolve, reject })
      for (let f = this.filled.get(this.submitted); f !== undefined; f = this.filled.get(this.submitted)) {
        this.filled.delete(this.submitted)
        const expected = this.submitted
        this.submitted += f.records.length
        const p = this.commit(expected, f)
        this.inFlight.add(p)
        p.then(f.resolve, f.reject).finally(() => this.inFlight.delete(p))
      }
    })
  }

  /** Hands one filled slot to the store (synchronously, so the store sees index order). */
  private async commit(expected: number, f: Filled): Promise<number[]> {
    if (this.broken !== undefined) throw this.broken
    let r: AppendResult[]
    const t0 = performance.now()
    try {
      // evidence rows go to the store as they are: it checks them once (evidence.ts)
      r = await this.store.appendMany(f.records.map((rec) => canonicalJsonBytes(rec)), f.evidence)
    } catch (e) {
      throw this.fail(e instanceof VnError && e.code === 'VN_ERR_LOG_UNAVAILABLE' ? e : new VnError('VN_ERR_LOG_UNAVAILABLE', 'append failed', { cause: e }))
    }
    this.observeCommit?.((performance.now() - t0) / 1000)
    if (r.length > 0 && r[0]?.index !== expected) throw this.fail(new VnError('VN_ERR_LOG_UNAVAILABLE', 'log index prediction broke (another writer?)'))
    return r.map((x) => x.index)
  }

  /** Fail closed: remember the first error and reject every slot still waiting. */
  private fail(e: VnError): VnError {
    this.broken ??= e
    for (const f of this.filled.values()) f.reject(this.broken)
    this.filled.clear()
    return this.broken
  }
}

/** The part of a shared store `SharedNodeLog` writes through (pg-store.ts `PgLogStore`). */
export interface SharedLogStore extends LogStore {
  appendWith(count: number, build: (first: number) => Promise<{ leaves: readonly Uint8Array[]; evidence?: readonly EvidenceRow[]; settles?: readonly { iss: string; xid: string; reqDigest: string; record: number }[] }>): Promise<AppendResult[]>
}

/**
 * The node's write path over a log several replicas of the node append to (pg-store.ts): the
 * database assigns each batch its indices inside the commit's transaction, so nothing is predicted
 * here and nothing is reserved ahead; records that must name their own index are built in that
 * transaction (`appendWith`). The store fails closed by itself; this wrapper reports it.
 */
export class SharedNodeLog implements NodeLog {
  constructor(private readonly store: SharedLogStore, private readonly observeCommit?: (seconds: number) => void) {}

  /** Why the log refuses writes (undefined while it accepts them). */
  get failure(): VnError | undefined {
    return this.store.writable ? undefined : new VnError('VN_ERR_LOG_UNAVAILABLE', 'the shared log refuses writes (fail closed)')
  }

  /** Nothing to restart: indices come from the database. Refuses while the store does. */
  async resume(): Promise<void> {
    if (!this.store.writable) throw new VnError('VN_ERR_LOG_UNAVAILABLE', 'the shared log refuses writes (fail closed)')
  }

  async append(records: readonly LogRecord[], evidence: readonly EvidenceRow[] = []): Promise<number[]> {
    if (records.length === 0) {
      if (evidence.length === 0) return []
      throw new VnError('VN_ERR_EVIDENCE_INVALID', 'evidence without a record')
    }
    const t0 = performance.now()
    const r = await this.wrap(this.store.appendMany(records.map((rec) => canonicalJsonBytes(rec)), evidence))
    this.observeCommit?.((performance.now() - t0) / 1000)
    return r.map((x) => x.index)
  }

  async appendWith(count: number, build: (first: number) => Promise<BuiltRecords>): Promise<number[]> {
    const t0 = performance.now()
    const r = await this.wrap(this.store.appendWith(count, async (first) => {
      const b = await build(first)
      // the answers among them: the shared replay memory learns their index in the same commit
      const settles = b.records.flatMap((rec, record) => (rec.t === 'response-out' ? [{ iss: rec.aud, xid: rec.xid, reqDigest: rec.reqDigest, record }] : []))
      return { leaves: b.records.map((rec) => canonicalJsonBytes(rec)), evidence: b.evidence ?? [], settles }
    }))
    this.observeCommit?.((performance.now() - t0) / 1000)
    return r.map((x) => x.index)
  }

  /** A shared log has no reservations: indices are known only inside the commit (`appendWith`). */
  reserve(): LogSlot {
    throw new VnError('VN_ERR_INTERNAL', 'a shared log assigns indices at commit: use appendWith')
  }

  private async wrap<T>(p: Promise<T>): Promise<T> {
    try {
      return await p
    } catch (e) {
      if (e instanceof VnError) throw e
      throw new VnError('VN_ERR_LOG_UNAVAILABLE', 'append failed', { cause: e })
    }
  }
}

/** Parses one leaf back into a record (auditor, restart recovery). */
export const parseLeaf = (leaf: Uint8Array): LogRecord => JSON.parse(Buffer.from(leaf).toString('utf8')) as LogRecord
