/**
 * The data-source interface: how a node reads its department's own database in place.
 *
 * Modelled on @fastify/rate-limit's store pattern: one small interface, interchangeable backends
 * chosen by config (`./index.ts`). SQLite (better-sqlite3) is the embedded default; PostgreSQL
 * (./postgres.ts) and MySQL/MariaDB (./mysql.ts) sit behind the same interface.
 *
 * Contract every backend keeps (docs/DESIGN.md "Data in place"):
 * - read-only: the connection cannot write (read-only open / read-only account and session), and
 *   every statement is checked to be a read-only query before it runs;
 * - named parameters only (`:id` in SQL, `{ id }` in `params`): subject values are always bound,
 *   never spliced into SQL text;
 * - errors are `VnError`s (`VN_ERR_SOURCE_*`) whose details never contain bound values.
 */

/** A value bound to a named parameter. */
export type SqlParam = string | number | null

/** Named parameters: `{ id: '...' }` for `:id` in the SQL text. */
export type SqlParams = Readonly<Record<string, SqlParam>>

/** A column value as read back from the database. */
export type SqlValue = string | number | bigint | Uint8Array | null

/** One result row, keyed by column name (use `AS` to name computed columns). */
export type Row = Record<string, SqlValue>

export interface DataSource {
  /** Backend name: `sqlite`, `postgres` or `mysql`. */
  readonly kind: string
  /**
   * Throw `VN_ERR_SOURCE_SQL_INVALID` when `sql` does not compile, `VN_ERR_SOURCE_NOT_READONLY` unless `sql` is a single read-only query; `label` names the
   * statement in the error (e.g. `services.identity.match.lookup`). Called at open time for every
   * declared statement, so a misconfigured node fails at start, not on its first request.
   */
  assertReadOnly(sql: string, label: string): Promise<void>
  /**
   * What a declared read-only query needs and returns, without running it: throws like
   * `assertReadOnly`, throws VN_ERR_CONFIG_INVALID when the SQL names a parameter outside
   * `params`, and resolves with the names of its result columns. Start-up checks a service's
   * lookups with it (src/exchange/service-checks.ts), so a lookup its question kind cannot
   * answer from stops the node instead of failing every request.
   */
  describe(sql: string, label: string, params: readonly string[]): Promise<{ columns: string[] }>
  /** All rows of a read-only query (plain-mode lookups: a handful of rows). */
  query(sql: string, params: SqlParams): Promise<Row[]>
  /**
   * Rows of a read-only query in batches of at most `batchSize` (tag-set builds over a whole
   * table). Yields to the event loop between batches and does not block other queries.
   */
  iterate(sql: string, params: SqlParams, batchSize?: number): AsyncIterable<Row[]>
  /** Resolve when the database answers (readiness probe); reject with VN_ERR_SOURCE_UNAVAILABLE. */
  ping(): Promise<void>
  /**
   * Why the open connection no longer reads the configured database (a file unlinked or replaced
   * under the node), or undefined while it does. Cheap (SQLite: one stat), no query. Backends
   * without a file (a server connection) leave it out.
   */
  changed?(): string | undefined
  /**
   * Resolve when the source still reads the configured database, switching to it first if it
   * was replaced by a valid one; reject with VN_ERR_SOURCE_UNAVAILABLE otherwise. Called once per
   * answer, before its lookups, so no answer comes from a file that is no longer the configured
   * one (./supervised.ts).
   */
  assertCurrent?(): Promise<void>
  /** Release connections. Idempotent; later calls to other methods reject. */
  close(): Promise<void>
}
