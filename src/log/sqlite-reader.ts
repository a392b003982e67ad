/**
 * The SQLite backend's `LogReader` (storage.ts): a read-only connection to a node's log database,
 * for `log export`, which may run while the node keeps appending.
 *
 * A snapshot is one read transaction: under WAL, every read inside it sees the database as of its
 * first read, whatever other connections commit meanwhile, and the writer commits leaves with their
 * evidence in one transaction (log-writer.ts), so the snapshot never holds a leaf without its
 * evidence. The transaction is rolled back (nothing was written) when `read` settles.
 */
import type Database from 'better-sqlite3'
import { VnError } from '../errors.js'
import { openDatabase } from './log-writer.js'
import { SNAPSHOT_CHUNK, type LogReader, type LogSnapshot, type StoredCheckpoint, type StoredJws, type StoredSealedDisclosures, type StoredSealedReceived } from './storage.js'

function* chunks<R, T>(rows: IterableIterator<R>, map: (row: R) => T): Generator<T[]> {
  let chunk: T[] = []
  for (const row of rows) {
    chunk.push(map(row))
    if (chunk.length === SNAPSHOT_CHUNK) {
      yield chunk
      chunk = []
    }
  }
  if (chunk.length > 0) yield chunk
}

/** An async iterable over a synchronous statement iterator (better-sqlite3 reads are synchronous). */
async function* asAsync<T>(gen: Generator<T>): AsyncGenerator<T> {
  yield* gen
}

class SqliteSnapshot implements LogSnapshot {
  constructor(
    private readonly db: Database.Database,
    readonly size: number,
  ) {}

  leaves(): AsyncIterable<readonly Uint8Array[]> {
    const size = this.size
    let next = 0
    const rows = this.db.prepare('SELECT idx, data FROM leaves WHERE idx < ? ORDER BY idx').iterate(size) as IterableIterator<{ idx: number; data: Buffer }>
    return asAsync(
      (function* () {
        for (const chunk of chunks(rows, (row) => {
          if (row.idx !== next) throw new VnError('VN_ERR_AUDIT_EXPORT_INVALID', `leaves: index ${next} is missing`)
          next++
          return new Uint8Array(row.data.buffer, row.data.byteOffset, row.data.byteLength)
        })) yield chunk
        if (next !== size) throw new VnError('VN_ERR_AUDIT_EXPORT_INVALID', `leaves: index ${next} is missing`)
      })(),
    )
  }

  jws(): AsyncIterable<readonly StoredJws[]> {
    const rows = this.db.prepare('SELECT digest, jws FROM evidence_jws WHERE leaf < ? ORDER BY leaf').iterate(this.size) as IterableIterator<{ digest: string; jws: string }>
    return asAsync(chunks(rows, (row) => ({ digest: row.digest, jws: row.jws })))
  }

  sealedDisclosures(nowMs: number): AsyncIterable<readonly StoredSealedDisclosures[]> {
    const rows = this.db
      .prepare('SELECT xid, nonce, ciphertext FROM evidence_disclosures WHERE leaf < ? AND expires_ms > ? ORDER BY leaf')
      .iterate(this.size, nowMs) as IterableIterator<{ xid: string; nonce: Buffer; ciphertext: Buffer }>
    return asAsync(chunks(rows, (row) => ({ xid: row.xid, nonce: row.nonce, ciphertext: row.ciphertext })))
  }

  sealedReceived(nowMs: number): AsyncIterable<readonly StoredSealedReceived[]> {
    // A database last opened by a build from before refused answers were kept has no such table.
    const exists = this.db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'evidence_received'").get() !== undefined
    if (!exists) return asAsync(chunks([][Symbol.iterator](), (row: never) => row))
    const rows = this.db
      .prepare('SELECT xid, digest, nonce, ciphertext FROM evidence_received WHERE leaf < ? AND expires_ms > ? ORDER BY leaf')
      .iterate(this.size, nowMs) as IterableIterator<{ xid: string; digest: string; nonce: Buffer; ciphertext: Buffer }>
    return asAsync(chunks(rows, (row) => ({ xid: row.xid, digest: row.digest, nonce: row.nonce, ciphertext: row.ciphertext })))
  }

  async countDisclosures(nowMs: number): Promise<number> {
    return this.db.prepare('SELECT COUNT(*) FROM evidence_disclosures WHERE leaf < ? AND expires_ms > ?').pluck().get(this.size, nowMs) as number
  }

  async checkpoints(): Promise<StoredCheckpoint[]> {
    return this.db.prepare('SELECT size, note FROM checkpoints WHERE size <= ? ORDER BY size').all(this.size) as StoredCheckpoint[]
  }
}

export class SqliteLogReader implements LogReader {
  private constructor(private readonly db: Database.Database) {}

  /** @throws VN_ERR_AUDIT_EXPORT_INVALID when the file is missing or not a log database */
  static async open(path: string): Promise<SqliteLogReader> {
    try {
      return new SqliteLogReader(openDatabase(path, true))
    } catch (e) {
      throw new VnError('VN_ERR_AUDIT_EXPORT_INVALID', `${path}: cannot be opened read-only`, { cause: e })
    }
  }

  async snapshot<T>(read: (s: LogSnapshot) => Promise<T>): Promise<T> {
    this.db.exec('BEGIN')
    try {
      // The first read fixes the snapshot; the size is one past the highest index (a gap shows up
      // as a missing index when the leaves are read).
      const max = this.db.prepare('SELECT MAX(idx) FROM leaves').pluck().get() as number | null
      return await read(new SqliteSnapshot(this.db, max === null ? 0 : max + 1))
    } finally {
      this.db.exec('ROLLBACK')
    }
  }

  async close(): Promise<void> {
    this.db.close()
  }
}
