/**
 * The node's data source, opened with every start-up check and watched while the node runs.
 *
 * The same `open` serves start-up and recovery: the SQLite file opened read-only (or a pool to the
 * PostgreSQL / MySQL server, logged in with its read-only role), every declared
 * statement a read-only query, every service's lookups fitting its question kind. The source is
 * a `SupervisedSource` (src/sources/supervised.ts): when the file is unlinked, replaced, truncated
 * or overwritten it becomes unavailable (readiness false, exchanges 503 VN_ERR_SOURCE_UNAVAILABLE)
 * and it re-opens by itself once a valid file is at the configured path; a database server that
 * stops answering makes it unavailable the same way until the server answers again. A timer checks it every
 * `everyMs` (besides the checks on each answer, query error and readiness probe), so an idle node
 * notices and recovers too. Transitions are logged: reasons and codes, never data.
 */
import { readFile } from 'node:fs/promises'
import type { Logger } from 'pino'
import type { LoadedConfig } from '../config/load.js'
import type { Config } from '../config/schema.js'
import { VnError, isVnError } from '../errors.js'
import { checkServiceStatements } from '../exchange/service-checks.js'
import { openDataSource, SupervisedSource, type DataSourceConfig } from '../sources/index.js'
import type { DataSource } from '../sources/types.js'

/** Default interval of the data-source check, ms. */
const SOURCE_CHECK_EVERY_MS = 1000

export interface WatchedSource {
  readonly source: SupervisedSource
  /** Stop the timer (the source itself is closed by its owner). */
  stop(): void
}

/**
 * The configured data source as the backends take it: paths resolved against the config file's
 * folder; for a database server, the password read from `passwordFile` (on every new connection,
 * so a rotated file is picked up) or `passwordEnv`, never from verinode.json.
 * @throws VnError VN_ERR_CONFIG_INVALID when `passwordEnv` names an unset variable.
 */
export function dataSourceConfig(ds: NonNullable<Config['dataSource']>, loaded: LoadedConfig): DataSourceConfig {
  if (ds.kind === 'sqlite') return { ...ds, path: loaded.path(ds.path) }
  const { passwordFile, passwordEnv, password: _never, tls, ...rest } = ds
  const out: Record<string, unknown> = { ...rest }
  if (tls !== undefined) out.tls = tls.ca === undefined ? { ...tls } : { ...tls, ca: loaded.path(tls.ca) }
  if (passwordEnv !== undefined) {
    const value = loaded.env(passwordEnv)
    if (value === undefined || value === '') throw new VnError('VN_ERR_CONFIG_INVALID', `dataSource.passwordEnv: the environment variable ${passwordEnv} is not set`)
    out.password = value
  } else if (passwordFile !== undefined) {
    const file = loaded.path(passwordFile)
    out.password = async (): Promise<string> => (await readFile(file, 'utf8')).replace(/\r?\n$/, '')
  }
  return out as unknown as DataSourceConfig
}

/** The declared statements, by label, as the start-up check names them. */
export function declaredStatements(cfg: Config): Record<string, string> {
  const statements: Record<string, string> = {}
  for (const s of cfg.services) {
    statements[`services.${s.id}.lookup`] = s.lookup
    if (s.enumerate !== undefined) statements[`services.${s.id}.enumerate`] = s.enumerate
    if (s.he !== undefined) statements[`services.${s.id}.he.valueLookup`] = s.he.valueLookup
  }
  return statements
}

/**
 * Opens the data source with every configured statement checked (read-only SQL, fitting its
 * service), and starts watching it. Undefined when the config has no data source.
 * @throws VnError as at start-up: VN_ERR_SOURCE_UNAVAILABLE, VN_ERR_SOURCE_NOT_READONLY, VN_ERR_CONFIG_INVALID.
 */
export async function openWatchedSource(cfg: Config, loaded: LoadedConfig, logger: Logger, everyMs = SOURCE_CHECK_EVERY_MS): Promise<WatchedSource | undefined> {
  const dataSource = cfg.dataSource
  if (dataSource === undefined) return undefined
  const sourceCfg = dataSourceConfig(dataSource, loaded)
  const server = dataSource.kind !== 'sqlite'
  const statements = declaredStatements(cfg)
  const fits = (source: DataSource): Promise<void> => checkServiceStatements(cfg.services, source)
  const open = async (): Promise<DataSource> => {
    const source = await openDataSource(sourceCfg, { statements })
    // A lookup its service cannot answer from stops start-up (VN_ERR_CONFIG_INVALID), not each request.
    await fits(source).catch(async (e: unknown) => {
      await source.close()
      throw e
    })
    return source
  }
  // At start-up a SQLite file that cannot be opened is named by its path (the operator's own
  // config-relative file, not personal data), so the fix is obvious; while running the reason stays
  // generic (it reaches /readyz on the public listener).
  const first = await open().catch((e: unknown) => {
    if (!server && isVnError(e) && e.code === 'VN_ERR_SOURCE_UNAVAILABLE') {
      throw new VnError('VN_ERR_SOURCE_UNAVAILABLE', `dataSource.path ${JSON.stringify(dataSource.path)} (${loaded.path(dataSource.path)}): ${e.detail ?? e.message}`, { cause: e })
    }
    throw e
  })
  const source = new SupervisedSource(first, {
    open,
    fits,
    onTransition(t) {
      if (!t.available) {
        logger.error({ dataSource: 'unavailable', reason: t.reason, noticed: t.noticed, err: t.error },
          server
            ? 'data source unavailable: exchanges answer 503 VN_ERR_SOURCE_UNAVAILABLE until the database answers and passes the start-up checks'
            : 'data source unavailable: exchanges answer 503 VN_ERR_SOURCE_UNAVAILABLE until a valid file is at the configured path')
      } else if (t.replaced !== undefined) {
        logger.warn({ dataSource: 'reopened', noticed: t.replaced }, server
          ? 'data source re-opened: the database connections were replaced and pass the start-up checks'
          : 'data source re-opened: the file at the configured path changed and passes the start-up checks')
      } else {
        logger.info({ dataSource: 'available' }, server ? 'data source available again: the database answers' : 'data source available again: answering from the configured file')
      }
    },
  })
  let timer: NodeJS.Timeout | undefined
  if (everyMs > 0) {
    timer = setInterval(() => {
      source.check().catch((err: unknown) => logger.error({ err }, 'data source check failed'))
    }, everyMs)
    timer.unref()
  }
  return {
    source,
    stop() {
      if (timer !== undefined) clearInterval(timer)
    },
  }
}
