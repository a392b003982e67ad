/**
 * The single writer of a node's log database (SQLite through better-sqlite3): one transaction per
 * group-commit batch, `journal_mode=WAL` with `synchronous=FULL`, so a batch is on disk (WAL
 * fsynced) when `commit` returns.
 *
 * It is synchronous on purpose and knows nothing about threads: `store.ts` runs it on a dedicated
 * worker thread (see `log-writer-worker.ts`) or, when asked, inline on the main thread.
 *
 * Database layout (one file per node, shared by the log and the evidence store):
 * - `leaves(idx, data, hash)`: the opaque leaf bytes and their RFC 9162 leaf hash (level-0 nodes).
 * - `nodes(level, idx, hash)`: the hash of every perfect subtree of 2^level leaves (level ≥ 1)
 *   starting at leaf idx·2^level. Written once when the subtree becomes complete, never changed,
 *   so any proof or historical root is O(log n) point reads (see merkle.ts).
 * - `checkpoints(size, note, saved_ms)`: signed checkpoints (C2SP signed notes) by tree size.
 * - `evidence_jws(leaf, digest, jws)`: the signed exchange message whose SHA-256 (base64url) the log
 *   record at index `leaf` names (request-in/out: the request; response-out/in: the response).
 * - `evidence_disclosures(leaf, xid, nonce, ciphertext, expires_ms)`: the AES-256-GCM sealed
 *   disclosures of the exchange whose request record is at index `leaf`.
 * - `evidence_received(leaf, xid, digest, nonce, ciphertext, expires_ms)`: the AES-256-GCM sealed
 *   bytes of a peer answer the consumer refused, kept with its `response-in` at index `leaf`
 *   (added within schema 2: the table is created when a database is opened, and nothing else
 *   changes, so a database written before it needs no migration).
 *
 * Every table is keyed by a number that only grows (leaf index, tree level and position, size),
 * so each commit appends at the right edge of its B-trees and writes few pages. Schema 1 keyed the
 * evidence by digest and xid: random keys dirtied one page per row per commit and cost the writer
 * ~60% of its time per exchange (bench:plain); schema 2 keys evidence by its log record.
 *
 * Appending keeps the log's right border in memory (a CompactRange: the perfect subtrees the set bits of
 * the size name), so each leaf costs one leaf hash plus one node hash per subtree it completes.
 *
 * More than one `LogWriter` may hold the same file, as long as their commits never overlap (the
 * store's default runs one on a worker thread and one inline, see store.ts): before each commit a
 * writer asks SQLite whether another connection has committed since it last looked
 * (`PRAGMA data_version`, a counter read) and, if so, reads size and right border back in.
 */
import Database from 'better-sqlite3'
import { statfsSync } from 'node:fs'
import { dirname } from 'node:path'
import { VnError } from '../errors.js'
import { HASH_SIZE, leafHash, rangeNodes } from './merkle.js'
import { CompactRange } from './compact-range.js'
import { encryptDisclosures, encryptReceived } from './sealing.js'
import type { EvidenceRow } from './evidence.js'

const SCHEMA_VERSION = 2

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leaves (idx INTEGER PRIMARY KEY, data BLOB NOT NULL, hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (level, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (size INTEGER PRIMARY KEY, note TEXT NOT NULL, saved_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS evidence_jws (leaf INTEGER PRIMARY KEY, digest TEXT NOT NULL, jws TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS evidence_disclosures (leaf INTEGER PRIMARY KEY, xid TEXT NOT NULL, nonce BLOB NOT NULL, ciphertext BLOB NOT NULL, expires_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS evidence_disclosures_expiry ON evidence_disclosures (expires_ms);
CREATE TABLE IF NOT EXISTS evidence_received (leaf INTEGER PRIMARY KEY, xid TEXT NOT NULL, digest TEXT NOT NULL, nonce BLOB NOT NULL, ciphertext BLOB NOT NULL, expires_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS evidence_received_expiry ON evidence_received (expires_ms);
`

/** Everything one transaction writes. Plain data: it crosses the worker boundary by structured clone. */
export interface WriteBatch {
  /** All leaves of the batch, concatenated (transferred, not copied, to the worker). */
  leafData: Uint8Array
  leafLengths: number[]
  /**
   * Evidence rows as the store was given them (checked there, evidence.ts), with `record` rebased
   * to an offset into the batch's leaves. Disclosures are sealed here, on the writer's thread: the
   * AES set-up costs the main thread ~30 µs per exchange, and this thread has the time.
   */
  evidence: EvidenceRow[]
  checkpoints: { size: number; note: string; savedMs: number }[]
  /** Delete disclosures and received bytes with expires_ms ≤ this (the largest requested in the batch). */
  purgeBeforeMs?: number
  /** Test hook: throw inside the transaction after all rows are written (it must roll back). */
  simulateFailure?: boolean
}

export interface BatchResult {
  firstIndex: number
  size: number
  root: Uint8Array
  /** Leaf hashes of the batch's leaves, concatenated. */
  leafHashes: Uint8Array
  purged: number
}

export interface OpenResult {
  size: number
  root: Uint8Array
}

const buf = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength)

/** Open the database file with the pragmas both the writer and readers rely on. */
export function openDatabase(path: string, readonly = false): Database.Database {
  const db = new Database(path, readonly ? { readonly: true, fileMustExist: true } : {})
  if (!readonly) {
    db.pragma('journal_mode = WAL')
    db.pragma('synchronous = FULL')
  }
  db.pragma('busy_timeout = 5000')
  return db
}

export class LogWriter {
  private readonly db: Database.Database
  /** the right border [0, size): one perfect-subtree hash per set bit of the size */
  private range = CompactRange.empty()
  private readonly insertLeaf: Database.Statement
  private readonly insertNode: Database.Statement
  private readonly insertJws: Database.Statement
  private readonly insertDisclosure: Database.Statement
  private readonly insertReceived: Database.Statement
  private readonly purgeReceived: Database.Statement
  private readonly upsertCheckpoint: Database.Statement
  private readonly purge: Database.Statement
  private readonly dataVersion: Database.Statement
  /** `PRAGMA data_version` when this writer last knew the file's state */
  private seenVersion: unknown
  private readonly sealKey: Uint8Array | undefined

  /**
   * `sealKey`: the evidence key, to seal disclosure rows with (a store without it refuses them).
   * `checkGaps` (default true): count the leaves at open to prove the table has no gaps (a full
   * scan; a second writer on a file the first one just checked skips it).
   */
  constructor(private readonly path: string, sealKey?: Uint8Array, opts: { checkGaps?: boolean } = {}) {
    this.sealKey = sealKey === undefined ? undefined : new Uint8Array(sealKey)
    this.db = openDatabase(path)
    this.db.exec(SCHEMA)
    const v = this.db.prepare('SELECT v FROM meta WHERE k = ?').pluck().get('schema') as string | undefined
    if (v === undefined) this.db.prepare('INSERT INTO meta (k, v) VALUES (?, ?)').run('schema', String(SCHEMA_VERSION))
    else if (v !== String(SCHEMA_VERSION)) {
      throw new VnError('VN_ERR_LOG_UNAVAILABLE', `database schema version ${v} is not supported (this build writes version ${SCHEMA_VERSION}; version 1 came from pre-release builds)`)
    }
    this.insertLeaf = this.db.prepare('INSERT INTO leaves (idx, data, hash) VALUES (?, ?, ?)')
    this.insertNode = this.db.prepare('INSERT INTO nodes (level, idx, hash) VALUES (?, ?, ?)')
    this.insertJws = this.db.prepare('INSERT INTO evidence_jws (leaf, digest, jws) VALUES (?, ?, ?)')
    this.insertDisclosure = this.db.prepare('INSERT INTO evidence_disclosures (leaf, xid, nonce, ciphertext, expires_ms) VALUES (?, ?, ?, ?, ?)')
    this.upsertCheckpoint = this.db.prepare('INSERT OR REPLACE INTO checkpoints (size, note, saved_ms) VALUES (?, ?, ?)')
    this.purge = this.db.prepare('DELETE FROM evidence_disclosures WHERE expires_ms <= ?')
    this.insertReceived = this.db.prepare('INSERT INTO evidence_received (leaf, xid, digest, nonce, ciphertext, expires_ms) VALUES (?, ?, ?, ?, ?, ?)')
    this.purgeReceived = this.db.prepare('DELETE FROM evidence_received WHERE expires_ms <= ?')
    this.dataVersion = this.db.prepare('PRAGMA data_version').pluck()
    this.seenVersion = this.dataVersion.get()
    this.load(opts.checkGaps ?? true)
  }

  /** Recover size and right border from the tables (after a restart, or another writer's commit). */
  private load(checkGaps: boolean): void {
    const max = this.db.prepare('SELECT MAX(idx) FROM leaves').pluck().get() as number | null
    const size = max === null ? 0 : max + 1
    if (checkGaps && (this.db.prepare('SELECT COUNT(*) FROM leaves').pluck().get() as number) !== size) {
      throw new VnError('VN_ERR_LOG_UNAVAILABLE', 'leaves table has gaps')
    }
    const getLeaf = this.db.prepare('SELECT hash FROM leaves WHERE idx = ?').pluck()
    const getNode = this.db.prepare('SELECT hash FROM nodes WHERE level = ? AND idx = ?').pluck()
    const border = rangeNodes(0, size).map((id) => {
      const h = (id.level === 0 ? getLeaf.get(id.index) : getNode.get(id.level, id.index)) as Buffer | undefined
      if (h === undefined || h.length !== HASH_SIZE) throw new VnError('VN_ERR_LOG_UNAVAILABLE', 'stored tree is incomplete')
      return new Uint8Array(h)
    })
    this.range = CompactRange.fromHashes(0, size, border)
  }

  state(): OpenResult {
    return { size: this.range.end, root: this.range.root() }
  }

  commit(batch: WriteBatch): BatchResult {
    const n = batch.leafLengths.length
    const leafHashes = new Uint8Array(n * HASH_SIZE)
    let purged = 0
    // Sealed before the transaction opens; a row the store let through without a key cannot occur.
    const sealed = batch.evidence.map((e) => {
      if (e.kind === 'jws') return undefined
      if (this.sealKey === undefined) throw new VnError('VN_ERR_EVIDENCE_INVALID', 'evidence to seal, but the writer has no key')
      return e.kind === 'received' ? encryptReceived(this.sealKey, e.xid, e.bytes) : encryptDisclosures(this.sealKey, e.xid, e.disclosures)
    })
    let range = this.range
    let firstIndex = 0
    // IMMEDIATE: the write lock is taken before anything is read, so no other connection can
    // commit between the check below and this transaction's own writes.
    writeOrFail(() => this.db.transaction(() => {
      const version = this.dataVersion.get()
      if (version !== this.seenVersion) {
        // Another connection committed (the store's other writer): its leaves are ours to build on.
        this.load(false)
        this.seenVersion = version
      }
      range = this.range.clone()
      firstIndex = range.end
      // each perfect subtree a leaf completes is stored, so a restart reads the border back
      const storeNode = (level: number, index: number, hash: Uint8Array): void => { this.insertNode.run(level, index, buf(hash)) }
      let off = 0
      for (let k = 0; k < n; k++) {
        const len = batch.leafLengths[k] as number
        const leaf = batch.leafData.subarray(off, off + len)
        off += len
        const h = leafHash(leaf)
        leafHashes.set(h, k * HASH_SIZE)
        this.insertLeaf.run(range.end, buf(leaf), buf(h))
        range.append(h, storeNode)
      }
      // Evidence rows name their leaf by its offset in this batch (the store checked it exists).
      batch.evidence.forEach((e, k) => {
        if (e.kind === 'jws') this.insertJws.run(firstIndex + e.record, e.digest, e.jws)
        else {
          const s = sealed[k] as { nonce: Uint8Array; ciphertext: Uint8Array }
          if (e.kind === 'received') this.insertReceived.run(firstIndex + e.record, e.xid, e.digest, buf(s.nonce), buf(s.ciphertext), e.expiresAt)
          else this.insertDisclosure.run(firstIndex + e.record, e.xid, buf(s.nonce), buf(s.ciphertext), e.expiresAt)
        }
      })
      for (const c of batch.checkpoints) this.upsertCheckpoint.run(c.size, c.note, c.savedMs)
      if (batch.purgeBeforeMs !== undefined) purged = this.purge.run(batch.purgeBeforeMs).changes + this.purgeReceived.run(batch.purgeBeforeMs).changes
      if (batch.simulateFailure === true) throw new Error('simulated write failure')
    }).immediate())
    // Only a committed transaction moves the in-memory state.
    this.range = range
    return { firstIndex, size: range.end, root: range.root(), leafHashes, purged }
  }

  /**
   * A trial write, to reopen the store after a failed commit: the file system must report at
   * least `minFreeBytes` available, then `bytes` bytes go into the meta table, durable, and are
   * removed again (two transactions). Leaves, tree and evidence are not touched. The free-space
   * check matters: a commit that failed for want of space leaves its partly written WAL frames
   * allocated, and a small write then fits in them although the file system is still full.
   * @throws VN_ERR_LOG_UNAVAILABLE when space is short or either write fails
   */
  probe(bytes: number, minFreeBytes: number, simulateFailure = false): void {
    const fs = statfsSync(dirname(this.path))
    const free = fs.bavail * fs.bsize
    if (free < minFreeBytes) throw new VnError('VN_ERR_LOG_UNAVAILABLE', `trial write: ${free} bytes free, want ${minFreeBytes}`)
    writeOrFail(() => {
      this.db.prepare('INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)').run('probe', 'x'.repeat(bytes))
      if (simulateFailure) throw new Error('simulated write failure')
      this.db.prepare('DELETE FROM meta WHERE k = ?').run('probe')
    })
  }

  /** Reads size and right border back from the file, checking the leaves for gaps (as at open). */
  reload(): OpenResult {
    this.load(true)
    this.seenVersion = this.dataVersion.get()
    return this.state()
  }

  close(): void {
    this.db.close()
  }
}

/**
 * Runs a write; a failure that is not already a VnError becomes VN_ERR_LOG_UNAVAILABLE naming the
 * SQLite result code (`SQLITE_FULL`, `SQLITE_IOERR_...`), which survives the worker boundary (the
 * store tells a refused write from a writer that is gone by it) and tells the operator what failed.
 */
function writeOrFail<T>(write: () => T): T {
  try {
    return write()
  } catch (e) {
    if (e instanceof VnError) throw e
    const code = (e as { code?: unknown }).code
    throw new VnError('VN_ERR_LOG_UNAVAILABLE', typeof code === 'string' ? `write failed: ${code}` : 'write failed', { cause: e })
  }
}
