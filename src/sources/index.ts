/**
 * Choosing a data-source backend from config (the @fastify/rate-limit store pattern).
 *
 * Extension point: a new backend (PostgreSQL via `pg`, MySQL/MariaDB via `mysql2`) adds its config
 * type to `DataSourceConfig` and one entry to `BACKENDS`; the rest of the node only sees the
 * `DataSource` interface. Those backends are not implemented yet.
 */
import { VnError } from '../errors.js'
import { SqliteSource, type SqliteSourceOptions } from './sqlite.js'
import type { DataSource } from './types.js'

export type { DataSource, Row, SqlParam, SqlParams, SqlValue } from './types.js'
export { SqliteSource, type SqliteSourceOptions } from './sqlite.js'
export { SupervisedSource, type SupervisedSourceOptions, type SourceTransition } from './supervised.js'

export interface SqliteSourceConfig extends SqliteSourceOptions {
  readonly kind: 'sqlite'
  /** Path of an existing SQLite database file; opened read-only. */
  readonly path: string
}

// Later: | PostgresSourceConfig (kind 'postgres', connection string of a read-only role)
//        | MysqlSourceConfig (kind 'mysql').
export type DataSourceConfig = SqliteSourceConfig

type Backends = { readonly [K in DataSourceConfig['kind']]: (cfg: Extract<DataSourceConfig, { kind: K }>) => Promise<DataSource> }

const BACKENDS: Backends = {
  sqlite: async (cfg) => {
    const opts: { statementCacheSize?: number; busyTimeoutMs?: number } = {}
    if (cfg.statementCacheSize !== undefined) opts.statementCacheSize = cfg.statementCacheSize
    if (cfg.busyTimeoutMs !== undefined) opts.busyTimeoutMs = cfg.busyTimeoutMs
    return SqliteSource.open(cfg.path, opts)
  },
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
  const open = typeof kind === 'string' && Object.hasOwn(BACKENDS, kind) ? BACKENDS[kind as DataSourceConfig['kind']] : undefined
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
