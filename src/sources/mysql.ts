/**
 * MySQL / MariaDB data source over `mysql2` (a connection pool, server-side prepared statements).
 *
 * Read-only in layers, so one slip does not become a write:
 * 1. the node logs in with an account granted SELECT only (docs/OPERATIONS.md has the SQL);
 * 2. every session runs `SET SESSION TRANSACTION READ ONLY` before its first statement (a
 *    connection where that fails is dropped), and enumerations run in `START TRANSACTION READ ONLY`;
 * 3. every declared statement is checked at start-up: one statement, beginning with SELECT, WITH,
 *    VALUES or TABLE, with no writing or locking word (INSERT, UPDATE, DELETE, INTO, FOR UPDATE,
 *    LOCK IN SHARE MODE) and no executable comment (`/*! *\/`), and the server must accept it as a
 *    derived table (`SELECT * FROM (<statement>) LIMIT 0`, prepared and run with NULL parameters
 *    inside `START TRANSACTION READ ONLY`, rolled back), which also yields its result columns.
 *
 * Named parameters (`:id`) become `?` (./sql-text.ts) and are sent with the binary protocol
 * (`execute`, a server-side prepared statement), never formatted into the text; a `:name` in a
 * literal or comment stays text. Dates and JSON are read as the server's text, DECIMAL as text,
 * integers as numbers (beyond 2^53 as text).
 *
 * Enumerations stream rows over one connection (`execute(...).stream()`), pausing the socket when
 * the consumer is behind, so memory stays bounded by the batch size. A lookup past
 * `statementTimeoutMs` is stopped by the server (MariaDB `max_statement_time`, MySQL
 * `max_execution_time`) or else by the client, and gives VN_ERR_SOURCE_UNAVAILABLE, as does a
 * server that cannot be reached; other SQL errors are VN_ERR_SOURCE_QUERY with the error code only
 * (MySQL's messages may quote a bound value). The pool opens new connections by itself when the
 * server is back.
 */
import mysql from 'mysql2/promise'
import type { Connection as CoreConnection } from 'mysql2'
import { VnError } from '../errors.js'
import type { DataSource, Row, SqlParams } from './types.js'
import { assertParamsAllowed, assertReadOnlyText, bindValues, checkParams, type TranslatedSql } from './sql-text.js'
import {
  checkBatchSize, DEFAULT_BATCH, driverCode, refuseUrlPassword, resolvePassword, tlsSettings, TranslationCache, type ServerSourceOptions,
} from './server-common.js'

export type MysqlSourceOptions = ServerSourceOptions

/** Error codes that mean the server or the account, not the statement. */
const UNAVAILABLE_CODES = new Set([
  'ER_ACCESS_DENIED_ERROR', 'ER_DBACCESS_DENIED_ERROR', 'ER_BAD_DB_ERROR', 'ER_CON_COUNT_ERROR', 'ER_SERVER_SHUTDOWN',
  'ER_QUERY_INTERRUPTED', 'ER_STATEMENT_TIMEOUT', 'ER_QUERY_TIMEOUT', 'ER_CLIENT_INTERACTION_TIMEOUT', 'ER_TOO_MANY_USER_CONNECTIONS',
  'ER_USER_LIMIT_REACHED', 'ER_HOST_IS_BLOCKED', 'ER_HOST_NOT_PRIVILEGED', 'ER_CONNECTION_KILLED', 'ER_OPTION_PREVENTS_STATEMENT',
])
const TIMEOUT_CODES = new Set(['ER_STATEMENT_TIMEOUT', 'ER_QUERY_TIMEOUT', 'ER_QUERY_INTERRUPTED', 'PROTOCOL_SEQUENCE_TIMEOUT'])

/** mysql2 names MySQL's error numbers; MariaDB's own (1969: max_statement_time exceeded) it leaves unnamed. */
const MARIADB_CODES: Readonly<Record<number, string>> = { 1969: 'ER_STATEMENT_TIMEOUT', 4031: 'ER_CLIENT_INTERACTION_TIMEOUT' }

function mysqlCode(e: unknown): string {
  const errno = (e as { errno?: unknown } | null)?.errno
  const code = (e as { code?: unknown } | null)?.code
  if (typeof code !== 'string' && typeof errno === 'number') return MARIADB_CODES[errno] ?? `ER_${errno}`
  return driverCode(e)
}

function isSqlError(e: unknown): boolean {
  const code = mysqlCode(e)
  const state = (e as { sqlState?: unknown } | null)?.sqlState
  return code.startsWith('ER_') && !UNAVAILABLE_CODES.has(code) && !(typeof state === 'string' && state.startsWith('08'))
}

/** A data-free VnError for a driver error during a lookup or an enumeration. */
function runtimeError(e: unknown): VnError {
  if (e instanceof VnError) return e
  const code = mysqlCode(e)
  if (TIMEOUT_CODES.has(code)) return new VnError('VN_ERR_SOURCE_UNAVAILABLE', `mysql: statement timeout (${code})`, { cause: e })
  // The message may quote a bound value (Incorrect integer value: '...'): the code only.
  if (isSqlError(e)) return new VnError('VN_ERR_SOURCE_QUERY', `mysql: query failed (${code})`, { cause: e })
  return new VnError('VN_ERR_SOURCE_UNAVAILABLE', `mysql: database unavailable (${code})`, { cause: e })
}

/** The statement itself is wrong (syntax, unknown table, column, function or database), not a write. */
const SQL_INVALID_CODES = new Set(['ER_PARSE_ERROR', 'ER_NO_SUCH_TABLE', 'ER_BAD_FIELD_ERROR', 'ER_BAD_TABLE_ERROR', 'ER_SP_DOES_NOT_EXIST', 'ER_BAD_DB_ERROR', 'ER_WRONG_VALUE_COUNT_ON_ROW'])

/** At start-up no value is bound, so the server's message is safe to show and helps the operator. */
function checkError(e: unknown, label: string): VnError {
  if (e instanceof VnError) return e
  if (isSqlError(e) && SQL_INVALID_CODES.has(mysqlCode(e))) {
    return new VnError('VN_ERR_SOURCE_SQL_INVALID', `${label}: statement does not compile (${mysqlCode(e)}: ${(e as Error).message})`, { cause: e })
  }
  if (isSqlError(e)) {
    return new VnError('VN_ERR_SOURCE_NOT_READONLY', `${label}: statement does not compile as one read-only query (${mysqlCode(e)}: ${(e as Error).message})`, { cause: e })
  }
  return runtimeError(e)
}


interface Enumeration { conn: mysql.PoolConnection; released: boolean }

export class MysqlSource implements DataSource {
  readonly kind = 'mysql'
  readonly #pool: mysql.Pool
  readonly #cache: TranslationCache
  readonly #checked = new WeakSet<TranslatedSql>()
  readonly #timeoutMs: number
  /** The session statement that restores the lookup timeout after an enumeration lifted it. */
  #restoreTimeout: string | undefined
  readonly #enumerations = new Set<Enumeration>()
  #closed = false

  private constructor(pool: mysql.Pool, opts: MysqlSourceOptions) {
    this.#pool = pool
    this.#cache = new TranslationCache('mysql', opts.statementCacheSize)
    this.#timeoutMs = opts.statementTimeoutMs ?? 5000
  }

  /**
   * Connect (one connection, to see the server answer) and return the source.
   * @throws VnError VN_ERR_SOURCE_UNAVAILABLE when the server cannot be reached or refuses the login.
   */
  static async open(opts: MysqlSourceOptions): Promise<MysqlSource> {
    refuseUrlPassword(opts.url)
    if (opts.schema !== undefined) throw new VnError('VN_ERR_CONFIG_INVALID', 'dataSource.schema: PostgreSQL only; a MySQL source names its database in `database` or the URL')
    const ssl = await tlsSettings('mysql', opts.tls)
    const password = await resolvePassword('mysql', opts.password)
    const config: mysql.PoolOptions = {
      connectionLimit: opts.poolSize ?? 4,
      connectTimeout: opts.connectTimeoutMs ?? 5000,
      maxIdle: opts.poolSize ?? 4,
      idleTimeout: 30_000,
      enableKeepAlive: true,
      multipleStatements: false,
      dateStrings: true,
      supportBigNumbers: true,
      jsonStrings: true,
      // What a node prepares is a handful of lookups; enumerations prepare once each.
      maxPreparedStatements: 256,
    }
    if (opts.url !== undefined) config.uri = opts.url
    if (opts.host !== undefined) config.host = opts.host
    if (opts.port !== undefined) config.port = opts.port
    if (opts.database !== undefined) config.database = opts.database
    if (opts.user !== undefined) config.user = opts.user
    if (password !== undefined) config.password = password
    if (ssl !== undefined) config.ssl = ssl
    const pool = mysql.createPool(config)
    const src = new MysqlSource(pool, opts)
    const seconds = (src.#timeoutMs / 1000).toFixed(3)
    // Every new session: read-only before its first statement (commands queue in order on a
    // connection), and the lookup timeout. A session that cannot be made read-only is dropped.
    pool.on('connection', (c) => {
      // The promise pool passes the core connection on, not its promise wrapper.
      const conn = c as unknown as CoreConnection
      conn.on('error', () => undefined) // a dropped idle connection must not end the process
      const mariadb = (conn as unknown as { _isMariaDB?: boolean })._isMariaDB === true
      const timeout = mariadb ? `SET SESSION max_statement_time = ${seconds}` : `SET SESSION max_execution_time = ${src.#timeoutMs}`
      src.#restoreTimeout ??= timeout
      // Queued now, so they run before the statement the connection was taken for.
      conn.query('SET SESSION TRANSACTION READ ONLY', (err: Error | null) => {
        if (err !== null) conn.destroy()
      })
      conn.query(timeout, () => undefined)
    })
    try {
      await src.ping()
    } catch (e) {
      await pool.end().catch(() => undefined)
      throw e
    }
    return src
  }

  #live(): mysql.Pool {
    if (this.#closed) throw new VnError('VN_ERR_SOURCE_UNAVAILABLE', 'mysql: data source is closed')
    return this.#pool
  }

  #statement(sql: string, label: string): TranslatedSql {
    const t = this.#cache.get(sql, label)
    if (!this.#checked.has(t)) {
      assertReadOnlyText(sql, t, label)
      this.#checked.add(t)
    }
    return t
  }

  async #connect(): Promise<mysql.PoolConnection> {
    try {
      return await this.#live().getConnection()
    } catch (e) {
      throw runtimeError(e)
    }
  }

  /** Prepares and runs the statement as a derived table that reads no row, in a read-only transaction. */
  async #examine(t: TranslatedSql, label: string): Promise<string[]> {
    const conn = await this.#connect()
    const wrapped = `SELECT * FROM (\n${t.text}\n) AS vn_describe LIMIT 0`
    let broken = false
    try {
      await conn.query('START TRANSACTION READ ONLY')
      const [, fields] = await conn.execute({ sql: wrapped, timeout: this.#timeoutMs + 2000 }, t.order.map(() => null))
      return (fields ?? []).map((f) => f.name)
    } catch (e) {
      broken = !isSqlError(e)
      throw checkError(e, label)
    } finally {
      conn.unprepare(wrapped)
      if (!broken) await conn.query('ROLLBACK').catch(() => { broken = true })
      if (broken) conn.destroy()
      else conn.release()
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
    const values = bindValues('mysql', t, params)
    try {
      const [rows] = await pool.execute({ sql: t.text, timeout: this.#timeoutMs + 2000 }, values)
      return rows as Row[]
    } catch (e) {
      throw runtimeError(e)
    }
  }

  async *iterate(sql: string, params: SqlParams, batchSize = DEFAULT_BATCH): AsyncIterable<Row[]> {
    checkBatchSize(batchSize)
    this.#live()
    const t = this.#statement(sql, 'iterate')
    checkParams(params)
    const values = bindValues('mysql', t, params)
    const conn = await this.#connect()
    const e: Enumeration = { conn, released: false }
    this.#enumerations.add(e)
    let clean = false
    try {
      let stream: AsyncIterable<Row>
      try {
        // One consistent snapshot, read-only; no statement timeout on the enumeration (a tag-set
        // build reads for minutes), restored for the lookups when the connection goes back.
        if (this.#restoreTimeout !== undefined) await conn.query(this.#restoreTimeout.replace(/= .*$/, '= 0'))
        await conn.query('START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY')
        const core = (conn as unknown as { connection: CoreConnection }).connection
        stream = core.execute(t.text, values).stream({ highWaterMark: batchSize }) as unknown as AsyncIterable<Row>
      } catch (err) {
        throw runtimeError(err)
      }
      let batch: Row[] = []
      try {
        for await (const row of stream) {
          batch.push(row)
          if (batch.length >= batchSize) {
            const full = batch
            batch = []
            yield full
            if (this.#closed || e.released) throw new VnError('VN_ERR_SOURCE_UNAVAILABLE', 'mysql: data source closed during iteration')
          }
        }
      } catch (err) {
        if (err instanceof VnError) throw err
        throw this.#closed ? new VnError('VN_ERR_SOURCE_UNAVAILABLE', 'mysql: data source closed during iteration', { cause: err }) : runtimeError(err)
      }
      if (batch.length > 0) yield batch
      await conn.query('COMMIT')
      if (this.#restoreTimeout !== undefined) await conn.query(this.#restoreTimeout)
      conn.unprepare(t.text)
      clean = true
    } finally {
      this.#enumerations.delete(e)
      if (!e.released) {
        e.released = true
        // Stopped early or failed: the rest of the result would have to be read off the socket
        // first; dropping the connection ends it at once.
        if (clean) conn.release()
        else conn.destroy()
      }
    }
  }

  async ping(): Promise<void> {
    const pool = this.#live()
    try {
      await pool.query({ sql: 'SELECT 1', timeout: this.#timeoutMs + 2000 })
    } catch (e) {
      throw runtimeError(e)
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#cache.clear()
    for (const e of this.#enumerations) {
      if (!e.released) {
        e.released = true
        e.conn.destroy()
      }
    }
    this.#enumerations.clear()
    await this.#pool.end().catch(() => undefined)
  }
}
