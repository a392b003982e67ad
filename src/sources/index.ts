/**
 * Choosing a data-source backend from config (the @fastify/rate-limit store pattern).
 *
 * Three backends, one `DataSource` interface the rest of the node sees:
 * - `sqlite` (better-sqlite3, ./sqlite.ts): a file opened read-only, the embedded default;
 * - `postgres` (`pg` pool, `pg-cursor` for enumerations, ./postgres.ts);
 * - `mysql` (`mysql2` pool, also MariaDB, ./mysql.ts).
 * The server backends take a URL or host/port/database/user and the password as a value or a
 * function (the node reads it from `passwordFile` / `passwordEnv`, never from verinode.json).
 *
 * Extension point: a new backend adds its config type to `DataSourceConfig` and one entry to
 * `BACKENDS`.
 */
import { VnError } from '../errors.js'
import { MysqlSource, type MysqlSourceOptions } from './mysql.js'
import { PostgresSource, type PostgresSourceOptions } from './postgres.js'
import { SqliteSource, type SqliteSourceOptions } from './sqlite.js'
import type { DataSource } from './types.js'

export type { DataSource, Row, SqlParam, SqlParams, SqlValue } from './types.js'
export { SqliteSource, type SqliteSourceOptions } from './sqlite.js'
export { type PostgresSourceOptions } from './postgres.js'
export { type MysqlSourceOptions } from './mysql.js'
export type { ServerSourceOptions } from './server-common.js'
export { SupervisedSource, type SupervisedSourceOptions, type SourceTransition } from './supervised.js'

export interface SqliteSourceConfig extends SqliteSourceOptions {
  readonly kind: 'sqlite'
  /** Path of an existing SQLite database file; opened read-only. */
  readonly path: string
}

export interface PostgresSourceConfig extends PostgresSourceOptions {
  readonly kind: 'postgres'
}

export interface MysqlSourceConfig extends MysqlSourceOptions {
  readonly kind: 'mysql'
}

export type DataSourceConfig = SqliteSourceConfig | PostgresSourceConfig | MysqlSourceConfig

type Backends = { readonly [K in DataSourceConfig['kind']]: (cfg: Extract<DataSourceConfig, { kind: K }>) => Promise<DataSource> }

const BACKENDS: Backends = {
  sqlite: async (cfg) => {
    const opts: { statementCacheSize?: number; busyTimeoutMs?: number } = {}
    if (cfg.statementCacheSize !== undefined) opts.statementCacheSize = cfg.statementCacheSize
    if (cfg.busyTimeoutMs !== undefined) opts.busyTimeoutMs = cfg.busyTimeoutMs
    return SqliteSource.open(cfg.path, opts)
  },
  postgres: async ({ kind: _kind, ...opts }) => PostgresSource.open(opts),
  mysql: async ({ kind: _kind, ...opts }) => MysqlSource.open(opts),
}

export interface OpenDataSourceOptions {
  /**
   * The SQL statements the node's services declare, by label (e.g.
   * `{ 'identity.match.lookup': 'SELECT ...' }`). Each must be a read-only query, checked now, so a
   * node with a writing statement in its config refuses to start.
   */
  readonly statements?: Readonly<Record<string, string>>
}

/**
 * Open the configured data source and check the declared statements.
 * @throws VnError VN_ERR_SOURCE_UNAVAILABLE, VN_ERR_SOURCE_NOT_READONLY, VN_ERR_CONFIG_INVALID.
 */
export async function openDataSource(cfg: DataSourceConfig, opts: OpenDataSourceOptions = {}): Promise<DataSource> {
  const kind = (cfg as { kind?: unknown }).kind
  const open = typeof kind === 'string' && Object.hasOwn(BACKENDS, kind)
    ? (BACKENDS[kind as DataSourceConfig['kind']] as (c: DataSourceConfig) => Promise<DataSource>)
    : undefined
  if (open === undefined) {
    throw new VnError('VN_ERR_CONFIG_INVALID', `dataSource.kind: unsupported data source kind (supported: ${Object.keys(BACKENDS).join(', ')})`)
  }
  const source = await open(cfg)
  try {
    for (const [label, sql] of Object.entries(opts.statements ?? {})) await source.assertReadOnly(sql, label)
  } catch (e) {
    await source.close()
    throw e
  }
  return source
}
