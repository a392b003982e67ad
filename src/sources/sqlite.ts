/**
 * SQLite data source over better-sqlite3: the embedded default backend.
 *
 * Read-only in three layers, so one slip does not become a write:
 * 1. the file is opened with `readonly: true, fileMustExist: true` (SQLITE_OPEN_READONLY);
 * 2. `PRAGMA query_only = ON` makes SQLite refuse any statement that would change the file;
 * 3. every statement must be a single query that returns rows (`stmt.reader`) and does not modify
 *    the database (`stmt.readonly`, i.e. sqlite3_stmt_readonly). `reader` alone is not enough:
 *    `INSERT ... RETURNING` returns rows.
 *
 * Parameters are bound by name (`:id`), never interpolated; positional `?` parameters are refused
 * by better-sqlite3 when only a named object is passed. Prepared statements are cached (LRU).
 *
 * better-sqlite3 is synchronous: point lookups by key take microseconds, which is fine on the
 * event loop. `iterate` (tag-set builds over whole tables) uses its own connection, so the main one
 * stays free for lookups, and yields to the event loop between batches. On a database in
 * rollback-journal mode that long read holds a shared lock that delays the department's writers:
 * put such databases in WAL mode.
 */
import Database from 'better-sqlite3'
import { statSync } from 'node:fs'
import { setImmediate as yieldToEventLoop } from 'node:timers/promises'
import { VnError } from '../errors.js'
import type { DataSource, Row, SqlParams } from './types.js'

type Db = Database.Database
type Stmt = Database.Statement<[SqlParams], Row>

export interface SqliteSourceOptions {
  /** Prepared statements kept per connection (default 64). */
  readonly statementCacheSize?: number
  /** How long a query waits for a writer's lock, in ms (default 5000). */
  readonly busyTimeoutMs?: number
}

const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/
const DEFAULT_BATCH = 1000
const MAX_BATCH = 100_000

function sqliteCode(e: unknown): string {
  const code = (e as { code?: unknown } | null)?.code
  return typeof code === 'string' && /^[A-Z_0-9]+$/.test(code) ? code : 'error'
}

/**
 * SQLite result codes that mean the file itself is broken or gone (not the query): the source is
 * then unavailable (VN_ERR_SOURCE_UNAVAILABLE, 503), not failing one query (VN_ERR_SOURCE_QUERY).
 * Extended codes (SQLITE_IOERR_SHORT_READ, SQLITE_CORRUPT_INDEX, ...) start with these.
 */
const FILE_FAULT = /^SQLITE_(CORRUPT|NOTADB|IOERR|CANTOPEN)/

/** Which file a path names now: device and inode, or undefined when there is none. */
interface FileIdentity { readonly dev: number; readonly ino: number }

function fileIdentity(path: string): FileIdentity | undefined {
  // A path through a regular file (ENOTDIR) names no file either. Node 20 throws it past
  // throwIfNoEntry while later versions return undefined; both read "missing" here.
  let st
  try {
    st = statSync(path, { throwIfNoEntry: false })
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined
    throw e
  }
  return st === undefined ? undefined : { dev: st.dev, ino: st.ino }
}

function openReadOnly(path: string, busyTimeoutMs: number): Db {
  let db: Db
  try {
    db = new Database(path, { readonly: true, fileMustExist: true, timeout: busyTimeoutMs })
  } catch (e) {
    throw new VnError('VN_ERR_SOURCE_UNAVAILABLE', `sqlite: cannot open the database file read-only (${sqliteCode(e)})`, { cause: e })
  }
  try {
    db.pragma('query_only = ON')
  } catch (e) {
    db.close()
    throw new VnError('VN_ERR_SOURCE_UNAVAILABLE', `sqlite: cannot set query_only (${sqliteCode(e)})`, { cause: e })
  }
  return db
}

/** Prepare `sql` and check it is one read-only query; `label` names it in errors. */
function prepareReader(db: Db, sql: string, label: string): Stmt {
  if (typeof sql !== 'string' || sql.trim() === '') throw new VnError('VN_ERR_SOURCE_NOT_READONLY', `${label}: empty SQL`)
  let stmt: Stmt
  try {
    stmt = db.prepare<[SqlParams], Row>(sql)
  } catch (e) {
    // SQLite's own refusal (syntax errors, unknown tables or columns) is a statement that does not
    // compile; better-sqlite3's RangeError (several statements in one string) is not one query.
    const code = sqliteCode(e)
    if (code.startsWith('SQLITE_')) throw new VnError('VN_ERR_SOURCE_SQL_INVALID', `${label}: statement does not compile (${code}: ${(e as Error).message})`, { cause: e })
    throw new VnError('VN_ERR_SOURCE_NOT_READONLY', `${label}: statement does not compile as one query (${code}: ${(e as Error).message})`, { cause: e })
  }
  if (!stmt.reader || !stmt.readonly) {
    throw new VnError('VN_ERR_SOURCE_NOT_READONLY', `${label}: statement is not a read-only query (it must return rows and modify nothing)`)
  }
  return stmt
}

function checkParams(params: SqlParams): SqlParams {
  if (typeof params !== 'object' || params === null || Array.isArray(params)) {
    throw new TypeError('params: expected an object of named parameters')
  }
  for (const [k, v] of Object.entries(params)) {
    if (!PARAM_NAME.test(k)) throw new TypeError(`params: parameter name ${JSON.stringify(k)} is not an identifier`)
    if (!(v === null || typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v)))) {
      throw new TypeError(`params.${k}: expected a string, a finite number or null`)
    }
  }
  return params
}

export class SqliteSource implements DataSource {
  readonly kind = 'sqlite'
  readonly #path: string
  readonly #busyTimeoutMs: number
  readonly #cacheSize: number
  readonly #cache = new Map<string, Stmt>()
  /** Open enumeration connections and their row iterators, closed by `close()`. */
  readonly #iterators = new Map<Db, Iterator<Row> | undefined>()
  /** The file the connection has open (its device and inode when it was opened). */
  readonly #file: FileIdentity
  #db: Db | undefined

  private constructor(path: string, db: Db, file: FileIdentity, opts: SqliteSourceOptions) {
    this.#path = path
    this.#db = db
    this.#file = file
    this.#busyTimeoutMs = opts.busyTimeoutMs ?? 5000
    this.#cacheSize = Math.max(1, opts.statementCacheSize ?? 64)
  }

  /**
   * Open an existing SQLite file read-only.
   * @throws VnError VN_ERR_SOURCE_UNAVAILABLE when the file is missing or not a database.
   */
  static open(path: string, opts: SqliteSourceOptions = {}): SqliteSource {
    // The file named before and after the open is the one the connection holds: if the path was
    // replaced in between, refuse (the caller tries again) rather than watch the wrong inode.
    let before: FileIdentity | undefined
    try {
      before = fileIdentity(path)
    } catch (e) {
      throw new VnError('VN_ERR_SOURCE_UNAVAILABLE', `sqlite: data file cannot be examined (${sqliteCode(e)})`, { cause: e })
    }
    if (before === undefined) throw new VnError('VN_ERR_SOURCE_UNAVAILABLE', 'sqlite: data file missing at the configured path')
    const db = openReadOnly(path, opts.busyTimeoutMs ?? 5000)
    try {
      // A non-database file opens lazily; touch the schema so the error surfaces now.
      db.prepare('SELECT count(*) FROM sqlite_schema').get()
    } catch (e) {
      db.close()
      throw new VnError('VN_ERR_SOURCE_UNAVAILABLE', `sqlite: file is not a readable database (${sqliteCode(e)})`, { cause: e })
    }
    let after: FileIdentity | undefined
    try {
      after = fileIdentity(path)
    } catch {
      after = undefined
    }
    if (after === undefined || before.dev !== after.dev || before.ino !== after.ino) {
      db.close()
      throw new VnError('VN_ERR_SOURCE_UNAVAILABLE', 'sqlite: the database file was replaced while it was being opened')
    }
    return new SqliteSource(path, db, after, opts)
  }

  /**
   * Why the open connection no longer reads the configured file, or undefined while it does: one
   * stat of the configured path, compared (device, inode) with the file opened. An unlinked or
   * renamed-over file stays readable through the open connection, so only this notices it.
   */
  changed(): string | undefined {
    if (this.#db === undefined) return 'data source is closed'
    let now: FileIdentity | undefined
    try {
      now = fileIdentity(this.#path)
    } catch (e) {
      return `data file cannot be examined (${sqliteCode(e)})`
    }
    if (now === undefined) return 'data file missing at the configured path'
    if (now.dev !== this.#file.dev || now.ino !== this.#file.ino) return 'data file at the configured path was replaced'
    return undefined
  }

  #conn(): Db {
    if (this.#db === undefined) throw new VnError('VN_ERR_SOURCE_UNAVAILABLE', 'sqlite: data source is closed')
    return this.#db
  }

  #statement(sql: string, label: string): Stmt {
    const cached = this.#cache.get(sql)
    if (cached !== undefined) {
      // Refresh its place in the LRU order.
      this.#cache.delete(sql)
      this.#cache.set(sql, cached)
      return cached
    }
    const stmt = prepareReader(this.#conn(), sql, label)
    this.#cache.set(sql, stmt)
    if (this.#cache.size > this.#cacheSize) {
      const oldest = this.#cache.keys().next().value
      if (oldest !== undefined) this.#cache.delete(oldest)
    }
    return stmt
  }

  async assertReadOnly(sql: string, label: string): Promise<void> {
    this.#statement(sql, label)
  }

  async describe(sql: string, label: string, params: readonly string[]): Promise<{ columns: string[] }> {
    // A statement of its own: binding is permanent, and the cached one must stay unbound.
    const stmt = prepareReader(this.#conn(), sql, label)
    try {
      stmt.bind(Object.fromEntries(params.map((p) => [p, null])))
    } catch (e) {
      // better-sqlite3: 'Missing named parameter "x"'; positional `?` parameters land here too.
      throw new VnError('VN_ERR_CONFIG_INVALID', `${label}: ${(e as Error).message} (bound parameters: ${params.join(', ') || 'none'})`, { cause: e })
    }
    return { columns: stmt.columns().map((c) => c.name) }
  }

  async query(sql: string, params: SqlParams): Promise<Row[]> {
    const stmt = this.#statement(sql, 'query')
    checkParams(params)
    try {
      return stmt.all(params)
    } catch (e) {
      // better-sqlite3's messages name parameters and SQLite codes, never bound values.
      const code = sqliteCode(e)
      throw new VnError(FILE_FAULT.test(code) ? 'VN_ERR_SOURCE_UNAVAILABLE' : 'VN_ERR_SOURCE_QUERY', `sqlite: ${code}: ${(e as Error).message}`, { cause: e })
    }
  }

  async *iterate(sql: string, params: SqlParams, batchSize = DEFAULT_BATCH): AsyncIterable<Row[]> {
    if (!Number.isSafeInteger(batchSize) || batchSize < 1 || batchSize > MAX_BATCH) {
      throw new RangeError(`batchSize: expected an integer from 1 to ${MAX_BATCH}`)
    }
    this.#conn()
    checkParams(params)
    const db = openReadOnly(this.#path, this.#busyTimeoutMs)
    this.#iterators.set(db, undefined)
    try {
      const stmt = prepareReader(db, sql, 'iterate')
      let rows: Iterator<Row>
      try {
        rows = stmt.iterate(params)
        this.#iterators.set(db, rows)
      } catch (e) {
        throw new VnError('VN_ERR_SOURCE_QUERY', `sqlite: ${sqliteCode(e)}: ${(e as Error).message}`, { cause: e })
      }
      try {
        for (;;) {
          const batch: Row[] = []
          let done = false
          try {
            while (batch.length < batchSize) {
              const r = rows.next()
              if (r.done === true) {
                done = true
                break
              }
              batch.push(r.value)
            }
          } catch (e) {
            throw new VnError('VN_ERR_SOURCE_QUERY', `sqlite: ${sqliteCode(e)}: ${(e as Error).message}`, { cause: e })
          }
          if (batch.length > 0) yield batch
          if (done) return
          if (!db.open) throw new VnError('VN_ERR_SOURCE_UNAVAILABLE', 'sqlite: data source closed during iteration')
          await yieldToEventLoop()
        }
      } finally {
        rows.return?.()
      }
    } finally {
      this.#iterators.delete(db)
      if (db.open) db.close()
    }
  }

  async ping(): Promise<void> {
    const db = this.#conn()
    try {
      // Reads the schema page, so a file replaced or corrupted under the node is noticed.
      db.prepare('SELECT count(*) FROM sqlite_schema').get()
    } catch (e) {
      throw new VnError('VN_ERR_SOURCE_UNAVAILABLE', `sqlite: ${sqliteCode(e)}`, { cause: e })
    }
  }

  async close(): Promise<void> {
    this.#cache.clear()
    const db = this.#db
    this.#db = undefined
    // An enumeration suspended between batches: end its statement, then its connection (SQLite
    // refuses to close a connection with a running statement). It notices when it resumes.
    for (const [it, rows] of this.#iterators) {
      rows?.return?.()
      if (it.open) it.close()
    }
    this.#iterators.clear()
    if (db?.open === true) db.close()
  }
}
