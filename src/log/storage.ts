/**
 * The storage interfaces of a node: every read and write of its log, its evidence, its replay
 * memory and its quota counters goes through these, so a second backend (a PostgreSQL store shared
 * by several replicas of one node) can stand in for the embedded one. The model is
 * @fastify/rate-limit's `store/`: one small interface, interchangeable backends.
 *
 * Backends:
 * - `store.ts`: `SqliteLogStore` (log + evidence in one SQLite file, one writer, group commit);
 *   replay memory and quota counts are process-local (memory-store.ts) and rebuilt from the log at
 *   start-up (node/runtime.ts). `openSqliteNodeStores` assembles the four.
 * - `memory-store.ts`: everything in memory, for the fast unit tier and as the process-local
 *   replay memory and quota counter of the SQLite backend.
 *
 * Every backend must pass test/log/store-conformance.ts.
 */
import { VnError } from '../errors.js'
import { checkEvidenceRows, type EvidenceRow } from './evidence.js'
import type { QuotaStore } from '../policy/quota.js'

/** Most leaves one `entries` read returns (the HTTP endpoint's page size). */
export const MAX_ENTRIES_PER_READ = 1024

/** Where an appended leaf landed. */
export interface AppendResult {
  readonly index: number
  readonly leafHash: Uint8Array
}

export interface StoredCheckpoint {
  readonly size: number
  readonly note: string
}

/** The tree as a store reads it back from its storage when it reopens (see `LogStore.reopen`). */
export interface StoredTree {
  readonly size: number
  /** Root of the first `size` leaves of the stored tree (at most `size`). */
  rootHash(size: number): Promise<Uint8Array>
}

/**
 * The append-only, tamper-evident log (RFC 9162 Merkle tree, C2SP checkpoints). Appends are
 * durable when their promise resolves, land contiguously in call order, and carry their evidence
 * in the same transaction. A store that failed a write refuses all further writes (fail closed)
 * with VN_ERR_LOG_UNAVAILABLE, until `reopen` succeeds; reads of committed data keep working.
 */
export interface LogStore {
  /** Append one leaf (opaque bytes; the node passes RFC 8785 canonical JSON). */
  append(leaf: Uint8Array): Promise<AppendResult>
  /**
   * Append leaves in order, contiguously, with the evidence rows that belong to them (their
   * `record` is an offset into `leaves`), all in one transaction. Rows are checked before anything
   * is queued (evidence.ts `checkEvidenceRows`): a bad row rejects with VN_ERR_EVIDENCE_INVALID and
   * writes nothing.
   */
  appendMany(leaves: readonly Uint8Array[], evidence?: readonly EvidenceRow[]): Promise<AppendResult[]>
  /** Number of durable leaves. */
  size(): Promise<number>
  /** Root hash of the first `size` leaves (default: the current size). */
  rootHash(size?: number): Promise<Uint8Array>
  /** Leaf bytes at `index`. */
  leaf(index: number): Promise<Uint8Array>
  /** Leaf bytes of [start, end), at most `MAX_ENTRIES_PER_READ`. */
  entries(start: number, end: number): Promise<Uint8Array[]>
  /** RFC 9162 §2.1.3.1 inclusion proof of leaf `index` in the tree of `treeSize` leaves. */
  inclusionProof(index: number, treeSize: number): Promise<Uint8Array[]>
  /** RFC 9162 §2.1.4.1 consistency proof between tree sizes `first` < `second`. */
  consistencyProof(first: number, second: number): Promise<Uint8Array[]>
  /** Store a signed checkpoint note for `size` (its body must name that size and its root); replaces an earlier note of that size. */
  saveCheckpoint(size: number, note: string): Promise<void>
  latestCheckpoint(): Promise<StoredCheckpoint | undefined>
  checkpointAt(size: number): Promise<string | undefined>
  /** False once a write failed (fail closed) or the store was closed. For readiness checks. */
  readonly writable: boolean
  /**
   * True when other processes (the replicas of this node) append to the same log: the database
   * assigns indices, and the stored tree may grow past what this process committed.
   */
  readonly shared?: boolean
  /**
   * After a failed write: a trial write must succeed, then the store reads its tree back from
   * storage and hands it to `verify`; only when `verify` resolves does the store take that tree
   * as its state and accept writes again. Until then it refuses writes and serves what it had.
   * Resolves at once on a writable store; never reopens a store closed by `close()`.
   * @throws VN_ERR_LOG_UNAVAILABLE when the trial write fails or the store was closed (still
   *   closed); what `verify` throws (still closed)
   */
  reopen(verify: (stored: StoredTree) => Promise<void>): Promise<void>
  /** Wait for queued writes, then release the store. */
  close(): Promise<void>
}

export interface StoredJws {
  digest: string
  jws: string
}

export interface StoredDisclosures {
  xid: string
  disclosures: string[]
}

/** The bytes of a refused peer answer, opened. */
export interface StoredReceived {
  xid: string
  digest: string
  bytes: Uint8Array
}

/**
 * Reads of the evidence kept with log records (written only through `LogStore.appendMany`), and
 * the purge of disclosures whose retention ended.
 */
export interface EvidenceStore {
  /** The JWS kept with the log record at `index`. */
  getJws(index: number): Promise<StoredJws | undefined>
  /** The disclosures kept with the request record at `index`, opened, unless expired as of `nowMs` (default now). */
  getDisclosures(index: number, nowMs?: number): Promise<StoredDisclosures | undefined>
  /** The bytes of the refused peer answer kept with the response-in at `index`, opened, unless expired as of `nowMs` (default now). */
  getReceived(index: number, nowMs?: number): Promise<StoredReceived | undefined>
  /** Delete disclosures and received bytes whose retention ended at or before `nowMs`; resolves with how many rows. */
  purgeExpired(nowMs: number): Promise<number>
}

/** The bytes of a refused peer answer as stored: sealed (sealing.ts `encryptReceived`), with the digest its record names. */
export interface StoredSealedReceived {
  readonly xid: string
  readonly digest: string
  readonly nonce: Uint8Array
  readonly ciphertext: Uint8Array
}

/** Disclosures as stored: sealed with the evidence key (sealing.ts), opened only by its holder. */
export interface StoredSealedDisclosures {
  readonly xid: string
  readonly nonce: Uint8Array
  readonly ciphertext: Uint8Array
}

/**
 * One consistent read of everything committed, as of one instant: what `log export` carries away.
 * Leaves and their evidence are committed together, so a snapshot never holds a leaf without its
 * evidence. Chunked async reads, so a backend can stream from a cursor.
 */
export interface LogSnapshot {
  /** committed leaves as of the snapshot */
  readonly size: number
  /** the leaf bytes in index order, 0 to size - 1, in chunks; a missing index is VN_ERR_AUDIT_EXPORT_INVALID */
  leaves(): AsyncIterable<readonly Uint8Array[]>
  /** the JWS kept with leaves below size, in leaf order, in chunks */
  jws(): AsyncIterable<readonly StoredJws[]>
  /** the disclosures kept with leaves below size whose retention ends after `nowMs`, sealed, in leaf order */
  sealedDisclosures(nowMs: number): AsyncIterable<readonly StoredSealedDisclosures[]>
  /** how many `sealedDisclosures(nowMs)` yields */
  countDisclosures(nowMs: number): Promise<number>
  /** the bytes of refused peer answers kept with leaves below size whose retention ends after `nowMs`, sealed, in leaf order */
  sealedReceived(nowMs: number): AsyncIterable<readonly StoredSealedReceived[]>
  /** every stored checkpoint of a size up to `size`, by size, as stored */
  checkpoints(): Promise<StoredCheckpoint[]>
}

/**
 * Read-only access to a log that another process may be writing (`log export` while the node
 * runs). `snapshot` runs `read` on one consistent snapshot, valid until its promise settles.
 */
export interface LogReader {
  snapshot<T>(read: (s: LogSnapshot) => Promise<T>): Promise<T>
  close(): Promise<void>
}

/** Rows one snapshot read yields at a time. */
export const SNAPSHOT_CHUNK = 1024

/**
 * What a provider remembers of one exchange, by (issuer, xid), for the replay window: the request's
 * digest and where its answer is in the log, nothing more. The signed response is already kept as
 * evidence with its `response-out` record, so a retry's answer is read back from there.
 */
export interface ReplayEntry {
  readonly reqDigest: string
  /**
   * Log index of the exchange's `response-out` record (whose evidence is the signed response);
   * absent while the first request is still being handled.
   */
  readonly index?: number
  /** ms; the entry may be forgotten after this */
  readonly expiresAt: number
}

/** Default most entries a replay memory holds (docs/OPERATIONS.md, `limits.replayMaxEntries`). */
export const DEFAULT_REPLAY_MAX_ENTRIES = 300_000

/**
 * A provider's replay memory (docs/PROTOCOL.md step 3): the same (iss, xid) with the same request
 * digest gets the first answer again; with another digest it is refused.
 *
 * It is bounded (`capacity` entries) and never forgets a live entry early: forgetting an (iss, xid)
 * before its window ends would let a captured request be replayed. When it holds `capacity` live
 * entries, a new claim is refused (VN_ERR_EXCH_REPLAY_FULL, 503, retryable) and holds nothing.
 */
export interface ReplayMemory {
  /** Most live entries held at once. */
  readonly capacity: number
  /** Entries held right now (live or not yet swept; metrics, tests). */
  readonly size: number
  /**
   * Atomically: the live entry for (iss, xid) if one is held; otherwise holds `entry` and resolves
   * undefined. Entries that expired before `now` are not returned.
   * @throws VN_ERR_EXCH_REPLAY_FULL when `capacity` live entries are held (nothing is held then)
   */
  claim(iss: string, xid: string, entry: ReplayEntry, now: number): Promise<ReplayEntry | undefined>
  /** The claimed exchange with `reqDigest` was answered: its `response-out` record is at `index`. */
  settle(iss: string, xid: string, reqDigest: string, index: number): Promise<void>
  /**
   * Forgets (iss, xid) if it still holds an unsettled claim with `reqDigest` (its request failed
   * and wrote nothing: the xid may be used again).
   */
  release(iss: string, xid: string, reqDigest: string): Promise<void>
  /**
   * Start-up: holds an exchange answered before a restart (found in the log). Held even beyond
   * `capacity` (refusing it would re-open its replay window); claims are refused until it drains.
   */
  remember(iss: string, xid: string, entry: ReplayEntry & { readonly index: number }): Promise<void>
}

/** The four stores one node runs on, from one backend. */
export interface NodeStores {
  readonly log: LogStore
  readonly evidence: EvidenceStore
  readonly replay: ReplayMemory
  readonly quotas: QuotaStore
  close(): Promise<void>
}

/**
 * The one check of an append's input, run by every `LogStore` before anything is queued: leaves
 * are byte arrays within the size and count limits, and the evidence rows pass `checkEvidenceRows`.
 * @throws VN_ERR_LOG_ENTRY_INVALID / VN_ERR_EVIDENCE_INVALID naming the offending index
 */
export function checkAppendInput(
  leaves: readonly Uint8Array[],
  evidence: readonly EvidenceRow[],
  limits: { readonly maxLeafBytes: number; readonly maxBatch: number; readonly canSeal: boolean },
): void {
  if (!Array.isArray(leaves)) throw new VnError('VN_ERR_LOG_ENTRY_INVALID', 'leaves: must be an array')
  leaves.forEach((l, i) => {
    if (!(l instanceof Uint8Array)) throw new VnError('VN_ERR_LOG_ENTRY_INVALID', `leaves[${i}]: must be a Uint8Array`)
    if (l.length > limits.maxLeafBytes) throw new VnError('VN_ERR_LOG_ENTRY_INVALID', `leaves[${i}]: larger than ${limits.maxLeafBytes} bytes`)
  })
  if (leaves.length > limits.maxBatch) throw new VnError('VN_ERR_LOG_ENTRY_INVALID', `leaves: more than ${limits.maxBatch} in one call`)
  checkEvidenceRows(evidence, leaves.length, limits.canSeal)
}
