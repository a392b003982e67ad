/**
 * PostgreSQL data source over `pg` (a connection pool) and `pg-cursor` (enumerations).
 *
 * Read-only in layers, so one slip does not become a write:
 * 1. the node logs in with a role granted SELECT only (docs/OPERATIONS.md has the SQL);
 * 2. every session starts with `default_transaction_read_only=on`, so each statement runs in a
 *    read-only transaction, and enumerations run in an explicit `BEGIN ... READ ONLY`;
 * 3. every declared statement is checked at start-up: one statement (no `;` between two), that
 *    begins with SELECT, WITH, VALUES or TABLE, without a data-modifying word (INSERT, UPDATE,
 *    DELETE, MERGE, INTO, FOR UPDATE/SHARE), and that the server accepts as a subquery
 *    (`SELECT * FROM (<statement>) LIMIT 0`, run with its parameters NULL inside
 *    `BEGIN READ ONLY` and rolled back): PostgreSQL refuses a data-modifying CTE, `SELECT INTO` or
 *    a second statement there. That run also yields the result columns (`describe`) without
 *    reading a row.
 *
 * Named parameters (`:id`) become `$1..` (./sql-text.ts) and are bound by the driver; a `:name` in
 * a literal or comment stays text. Values read back are numbers for booleans (1/0, like SQLite's
 * comparisons), integers and floats (int8 beyond 2^53 as bigint), Uint8Array for bytea, and the
 * server's text for everything else (numeric, dates, json), so nothing is reinterpreted.
 *
 * Faults: a server that cannot be reached, drops the connection, or cancels a statement past
 * `statementTimeoutMs` gives VN_ERR_SOURCE_UNAVAILABLE (503); other SQL errors VN_ERR_SOURCE_QUERY
 * with the SQLSTATE only, since PostgreSQL's messages may quote a bound value. The pool reconnects
 * by itself when the server is back.
 */
import pg from 'pg'
import Cursor from 'pg-cursor'
import { VnError } from '../errors.js'
import type { DataSource, Row, SqlParams } from './types.js'
import { assertParamsAllowed, assertReadOnlyText, bindValues, checkParams, type TranslatedSql } from './sql-text.js'
import {
  checkBatchSize, DEFAULT_BATCH, driverCode, pgConnectionFields, refuseUrlPassword, SCHEMA_NAME, tlsSettings, TranslationCache, type ServerSourceOptions,
} from './server-common.js'

export type PostgresSourceOptions = ServerSourceOptions

const OID = { bool: 16, bytea: 17, int8: 20, int2: 21, int4: 23, oid: 26, float4: 700, float8: 701 } as const
const identity = (v: string): string => v
const ignore = (): void => undefined
const byteaParser = pg.types.getTypeParser(OID.bytea, 'text') as (v: string) => Buffer

function parseInt8(v: string): number | bigint {
  const n = Number(v)
  return Number.isSafeInteger(n) ? n : BigInt(v)
}

/** The value types the node reads (see the module comment); the same for lookups and cursors. */
const TYPES = {
  getTypeParser(oid: number, format?: string): (v: string) => unknown {
    if (format === 'binary') return pg.types.getTypeParser(oid, 'binary') as (v: string) => unknown
    switch (oid) {
      case OID.bool: return (v) => (v === 't' ? 1 : 0)
      case OID.int2:
      case OID.int4:
      case OID.oid:
      case OID.float4:
      case OID.float8: return Number
      case OID.int8: return parseInt8
      case OID.bytea: return (v) => new Uint8Array(byteaParser(v))
      default: return identity
    }
  },
} as unknown as pg.CustomTypesConfig

/** SQLSTATE classes that mean the server, not the statement: connection, resources, operator, auth, no database. */
const UNAVAILABLE_CLASS = /^(08|53|57|58|28|3D)/
const SQLSTATE = /^[0-9A-Z]{5}$/

/** A data-free VnError for a driver error during a lookup or an enumeration. */
function runtimeError(e: unknown): VnError {
  if (e instanceof VnError) return e
  const code = driverCode(e)
  if (code === '57014') return new VnError('VN_ERR_SOURCE_UNAVAILABLE', 'postgres: statement timeout (57014)', { cause: e })
  if (SQLSTATE.test(code) && !UNAVAILABLE_CLASS.test(code)) {
    // The message may quote a bound value (invalid input syntax for type ...: "..."): the code only.
    return new VnError('VN_ERR_SOURCE_QUERY', `postgres: query failed (SQLSTATE ${code})`, { cause: e })
  }
  return new VnError('VN_ERR_SOURCE_UNAVAILABLE', `postgres: database unavailable (${code})`, { cause: e })
}

/** At start-up no value is bound, so the server's message is safe to show and helps the operator. */
function checkError(e: unknown, label: string): VnError {
  if (e instanceof VnError) return e
  const code = driverCode(e)
  // Class 42 (syntax error, undefined table, column or function), but not 42501 (privilege): the statement is wrong, not a write.
  if (/^42(?!501)/.test(code)) {
    return new VnError('VN_ERR_SOURCE_SQL_INVALID', `${label}: statement does not compile (${code}: ${(e as Error).message})`, { cause: e })
  }
  if (SQLSTATE.test(code) && !UNAVAILABLE_CLASS.test(code)) {
    return new VnError('VN_ERR_SOURCE_NOT_READONLY', `${label}: statement does not compile as one read-only query (${code}: ${(e as Error).message})`, { cause: e })
  }
  return runtimeError(e)
}


interface Enumeration { client: pg.PoolClient; released: boolean }

export class PostgresSource implements DataSource {
  readonly kind = 'postgres'
  readonly #pool: pg.Pool
  readonly #cache: TranslationCache
  readonly #checked = new WeakSet<TranslatedSql>()
  readonly #statementTimeoutMs: number
  readonly #enumerations = new Set<Enumeration>()
  #closed = false

  private constructor(pool: pg.Pool, opts: PostgresSourceOptions) {
    this.#pool = pool
    this.#cache = new TranslationCache('postgres', opts.statementCacheSize)
    this.#statementTimeoutMs = opts.statementTimeoutMs ?? 5000
  }

  /**
   * Connect (one connection, to see the server answer) and return the source.
   * @throws VnError VN_ERR_SOURCE_UNAVAILABLE when the server cannot be reached or refuses the login.
   */
  static async open(opts: PostgresSourceOptions): Promise<PostgresSource> {
    refuseUrlPassword(opts.url)
    if (opts.schema !== undefined && !SCHEMA_NAME.test(opts.schema)) throw new VnError('VN_ERR_CONFIG_INVALID', 'dataSource.schema: expected a plain identifier (letters, digits, _)')
    const ssl = await tlsSettings('postgres', opts.tls)
    const statementTimeoutMs = opts.statementTimeoutMs ?? 5000
    const config: pg.PoolConfig = {
      max: opts.poolSize ?? 4,
      connectionTimeoutMillis: opts.connectTimeoutMs ?? 5000,
      idleTimeoutMillis: 30_000,
      statement_timeout: statementTimeoutMs,
      // Every transaction of every session is read-only unless a statement says otherwise, and
      // the declared statements are checked not to.
      options: `-c default_transaction_read_only=on${opts.schema !== undefined ? ` -c search_path=${opts.schema}` : ''}`,
      application_name: 'verinode',
      keepAlive: true,
      types: TYPES,
    }
    Object.assign(config, pgConnectionFields('postgres', opts))
    if (ssl !== undefined) config.ssl = ssl
    const pool = new pg.Pool(config)
    // An idle connection the server drops (restart, shutdown) is removed by the pool; without a
    // listener that 'error' event would end the process.
    pool.on('error', () => undefined)
    const src = new PostgresSource(pool, opts)
    try {
      await src.ping()
    } catch (e) {
      await pool.end().catch(() => undefined)
      throw e
    }
    return src
  }

  #live(): pg.Pool {
    if (this.#closed) throw new VnError('VN_ERR_SOURCE_UNAVAILABLE', 'postgres: data source is closed')
    return this.#pool
  }

  /** The translated statement, checked (once) to read only. */
  #statement(sql: string, label: string): TranslatedSql {
    const t = this.#cache.get(sql, label)
    if (!this.#checked.has(t)) {
      assertReadOnlyText(sql, t, label)
      this.#checked.add(t)
    }
    return t
  }

  /**
   * A connection of the pool for several statements. A checked-out client that loses its
   * connection between two statements emits 'error', which without a listener would end the
   * process: one listens until `#release`.
   */
  async #connect(): Promise<pg.PoolClient> {
    let client: pg.PoolClient
    try {
      client = await this.#live().connect()
    } catch (e) {
      throw runtimeError(e)
    }
    client.on('error', ignore)
    return client
  }

  #release(client: pg.PoolClient, destroy: boolean): void {
    client.removeListener('error', ignore)
    client.release(destroy)
  }

  /** Runs the statement as a subquery that reads no row, parameters NULL, in a read-only transaction. */
  async #examine(t: TranslatedSql, label: string): Promise<string[]> {
    const client = await this.#connect()
    let broken: unknown
    try {
      await client.query('BEGIN READ ONLY')
      const r = await client.query({
        text: `SELECT * FROM (\n${t.text}\n) AS vn_describe LIMIT 0`,
        values: t.names.map(() => null),
        types: TYPES,
        query_timeout: this.#statementTimeoutMs + 2000,
      } as pg.QueryConfig)
      return r.fields.map((f) => f.name)
    } catch (e) {
      if (!SQLSTATE.test(driverCode(e))) broken = e
      throw checkError(e, label)
    } finally {
      if (broken === undefined) await client.query('ROLLBACK').catch((e: unknown) => { broken = e })
      this.#release(client, broken !== undefined)
    }
  }

  async assertReadOnly(sql: string, label: string): Promise<void> {
    this.#live()
    const t = this.#statement(sql, label)
    assertParamsAllowed(t, label, t.names)
    await this.#examine(t, label)
  }

  async describe(sql: string, label: string, params: readonly string[]): Promise<{ columns: string[] }> {
    this.#live()
    const t = this.#statement(sql, label)
    assertParamsAllowed(t, label, params)
    return { columns: await this.#examine(t, label) }
  }

  async query(sql: string, params: SqlParams): Promise<Row[]> {
    const pool = this.#live()
    const t = this.#statement(sql, 'query')
    checkParams(params)
    const values = bindValues('postgres', t, params)
    try {
      // query_timeout: the client gives up too when the server stops answering altogether.
      const r = await pool.query({ text: t.text, values, types: TYPES, query_timeout: this.#statementTimeoutMs + 2000 } as pg.QueryConfig)
      return r.rows as Row[]
    } catch (e) {
      throw runtimeError(e)
    }
  }

  async *iterate(sql: string, params: SqlParams, batchSize = DEFAULT_BATCH): AsyncIterable<Row[]> {
    checkBatchSize(batchSize)
    this.#live()
    const t = this.#statement(sql, 'iterate')
    checkParams(params)
    const values = bindValues('postgres', t, params)
    const client = await this.#connect()
    const e: Enumeration = { client, released: false }
    this.#enumerations.add(e)
    let cursor: Cursor<Row> | undefined
    let clean = false
    try {
      try {
        // One snapshot for the whole enumeration; no statement timeout on it (a tag-set build over
        // millions of rows reads for minutes), the lookups keep theirs.
        await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
        await client.query('SET LOCAL statement_timeout = 0')
        cursor = client.query(new Cursor<Row>(t.text, values, { types: TYPES }))
      } catch (err) {
        throw runtimeError(err)
      }
      for (;;) {
        if (this.#closed || e.released) throw new VnError('VN_ERR_SOURCE_UNAVAILABLE', 'postgres: data source closed during iteration')
        let rows: Row[]
        try {
          rows = await cursor.read(batchSize)
        } catch (err) {
          throw this.#closed ? new VnError('VN_ERR_SOURCE_UNAVAILABLE', 'postgres: data source closed during iteration', { cause: err }) : runtimeError(err)
        }
        if (rows.length > 0) yield rows
        if (rows.length < batchSize) break
      }
      await cursor.close()
      await client.query('COMMIT')
      clean = true
    } finally {
      if (!clean && !e.released) {
        // Stopped early or failed: end the portal and the transaction, or drop the connection.
        try {
          await cursor?.close()
          await client.query('ROLLBACK')
          clean = true
        } catch {
          clean = false
        }
      }
      this.#enumerations.delete(e)
      if (!e.released) {
        e.released = true
        this.#release(client, !clean)
      }
    }
  }

  async ping(): Promise<void> {
    const pool = this.#live()
    try {
      await pool.query({ text: 'SELECT 1', query_timeout: this.#statementTimeoutMs + 2000 } as pg.QueryConfig)
    } catch (e) {
      throw runtimeError(e)
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#cache.clear()
    // An enumeration suspended between batches would hold its connection (and pool.end) forever:
    // drop its connection; it notices when it resumes.
    for (const e of this.#enumerations) {
      if (!e.released) {
        e.released = true
        this.#release(e.client, true)
      }
    }
    this.#enumerations.clear()
    await this.#pool.end().catch(() => undefined)
  }
}
