/**
 * What the server backends (./postgres.ts, ./mysql.ts) share: their connection settings as the
 * node hands them over (the password already out of the config file), the bounded cache of
 * translated statements, and turning a driver's error into a data-free `VnError`.
 */
import { readFile } from 'node:fs/promises'
import { VnError } from '../errors.js'
import { translateSql, type Dialect, type TranslatedSql } from './sql-text.js'

export interface ServerSourceOptions {
  /**
   * `postgres://user@host:port/db` / `mysql://user@host:port/db`, without a password (the config
   * schema refuses one there), or the fields below; a field given besides the URL wins.
   */
  readonly url?: string
  readonly host?: string
  readonly port?: number
  readonly database?: string
  readonly user?: string
  /** PostgreSQL only: the schema unqualified table names are read from (its `search_path`). */
  readonly schema?: string
  /** The password, or how to get it on each (re)connection (read from a file, an env variable). */
  readonly password?: string | (() => Promise<string>)
  /** Connections in the pool (default 4). An enumeration holds one for its whole run. */
  readonly poolSize?: number
  /** A lookup running longer is cancelled by the server: VN_ERR_SOURCE_UNAVAILABLE (default 5000). */
  readonly statementTimeoutMs?: number
  /** How long to wait for a connection (default 5000). */
  readonly connectTimeoutMs?: number
  /** TLS to the database server: `ca` is a PEM file's path; `rejectUnauthorized` defaults to true. */
  readonly tls?: { readonly ca?: string; readonly rejectUnauthorized?: boolean }
  /** Translated statements kept (default 256). */
  readonly statementCacheSize?: number
}

/** A schema name that goes into a connection option as it is: letters, digits, `_`. */
export const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/

export const DEFAULT_BATCH = 1000
const MAX_BATCH = 100_000

export function checkBatchSize(batchSize: number): void {
  if (!Number.isSafeInteger(batchSize) || batchSize < 1 || batchSize > MAX_BATCH) {
    throw new RangeError(`batchSize: expected an integer from 1 to ${MAX_BATCH}`)
  }
}

/** Loads the CA file of `tls` (a PEM path), or undefined without TLS. */
export async function tlsSettings(kind: string, tls: ServerSourceOptions['tls']): Promise<{ ca?: string; rejectUnauthorized: boolean } | undefined> {
  if (tls === undefined) return undefined
  const out: { ca?: string; rejectUnauthorized: boolean } = { rejectUnauthorized: tls.rejectUnauthorized ?? true }
  if (tls.ca !== undefined) {
    try {
      out.ca = await readFile(tls.ca, 'utf8')
    } catch (e) {
      throw new VnError('VN_ERR_SOURCE_UNAVAILABLE', `${kind}: the tls.ca file cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'})`, { cause: e })
    }
  }
  return out
}

export async function resolvePassword(kind: string, p: ServerSourceOptions['password']): Promise<string | undefined> {
  if (p === undefined || typeof p === 'string') return p
  try {
    return await p()
  } catch (e) {
    if (e instanceof VnError) throw e
    throw new VnError('VN_ERR_SOURCE_UNAVAILABLE', `${kind}: the database password cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'})`, { cause: e })
  }
}

/**
 * The connection fields of a pg pool config from the options: a field given besides the URL wins,
 * and the password is asked for on every new connection (a rotated password file is read again).
 */
export function pgConnectionFields(kind: string, o: Pick<ServerSourceOptions, 'url' | 'host' | 'port' | 'database' | 'user' | 'password'>): {
  connectionString?: string; host?: string; port?: number; database?: string; user?: string; password?: () => Promise<string>
} {
  const password = o.password
  return {
    ...(o.url === undefined ? {} : { connectionString: o.url }),
    ...(o.host === undefined ? {} : { host: o.host }),
    ...(o.port === undefined ? {} : { port: o.port }),
    ...(o.database === undefined ? {} : { database: o.database }),
    ...(o.user === undefined ? {} : { user: o.user }),
    ...(password === undefined ? {} : { password: async () => (await resolvePassword(kind, password)) ?? '' }),
  }
}

/** @throws VN_ERR_CONFIG_INVALID when `url` (of `field`) is not a URL or carries a password */
export function refuseUrlPassword(url: string | undefined, field = 'dataSource.url'): void {
  if (url === undefined) return
  let u: URL
  try {
    u = new URL(url)
  } catch {
    throw new VnError('VN_ERR_CONFIG_INVALID', `${field}: not a URL`)
  }
  if (u.password !== '' || u.searchParams.has('password')) {
    throw new VnError('VN_ERR_CONFIG_INVALID', `${field}: must not contain a password (use passwordFile or passwordEnv)`)
  }
}

/** A bounded LRU of translated statements, keyed by their text. */
export class TranslationCache {
  readonly #map = new Map<string, TranslatedSql>()
  readonly #size: number
  readonly #dialect: Dialect

  constructor(dialect: Dialect, size = 256) {
    this.#dialect = dialect
    this.#size = Math.max(1, size)
  }

  get(sql: string, label: string): TranslatedSql {
    const hit = this.#map.get(sql)
    if (hit !== undefined) {
      this.#map.delete(sql)
      this.#map.set(sql, hit)
      return hit
    }
    if (typeof sql !== 'string' || sql.trim() === '') throw new VnError('VN_ERR_SOURCE_NOT_READONLY', `${label}: empty SQL`)
    const t = translateSql(sql, this.#dialect, label)
    this.#map.set(sql, t)
    if (this.#map.size > this.#size) {
      const oldest = this.#map.keys().next().value
      if (oldest !== undefined) this.#map.delete(oldest)
    }
    return t
  }

  clear(): void {
    this.#map.clear()
  }
}

/** A driver's error code, when it looks like one (`ECONNREFUSED`, `57014`, `ER_NO_SUCH_TABLE`). */
export function driverCode(e: unknown): string {
  const code = (e as { code?: unknown } | null)?.code
  if (typeof code === 'string' && /^[A-Z0-9_]+$/.test(code)) return code
  if (typeof code === 'number') return String(code)
  const msg = (e as { message?: unknown } | null)?.message
  if (typeof msg === 'string') {
    if (/timeout/i.test(msg)) return 'TIMEOUT'
    if (/terminated|closed|ended/i.test(msg)) return 'CONNECTION_LOST'
  }
  return 'error'
}
