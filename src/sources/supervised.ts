/**
 * A data source that notices when the database changes under the node or stops answering, and
 * recovers by itself.
 *
 * Database servers (PostgreSQL, MySQL: sources without `changed()`) are watched the same way minus
 * the file: a server that does not answer `ping` (down, unreachable, refusing the login) makes the
 * source unavailable, with the backend's reason (`postgres: database unavailable (ECONNREFUSED)`),
 * and each later check opens a new pool until the server answers and the statements pass again.
 * A lookup that fails as unavailable (connection lost, statement timeout) triggers a check, not a
 * forced re-open: a server that is only slow keeps its pool and answers the next lookup. Reasons
 * then say "database" where a file source says "data file".
 *
 * The node opens its department's database once, at start-up, and holds the connection. If the
 * file is unlinked or renamed over, that connection keeps reading the old, deleted file; if it is
 * truncated or overwritten in place, queries fail. This wrapper holds the open source (`inner`)
 * and stops using it as soon as it is seen to be:
 * - no longer the configured file (`inner.changed()`: SQLite stats the path, device and inode),
 * - not a readable database (`inner.ping()`), or
 * - no longer fit for the configured statements (`fits`, the start-up service checks), or
 * - broken by a query (the backend reports VN_ERR_SOURCE_UNAVAILABLE: SQLITE_CORRUPT, NOTADB, IOERR).
 *
 * Then it opens the configured source again (`open`: the same checks as at start-up) and uses it
 * if that works (a valid file renamed into place), or else is *unavailable*: every call rejects
 * with VN_ERR_SOURCE_UNAVAILABLE (503) naming the reason, and each later check tries `open` again
 * until one succeeds. Checks run on the node's timer, on every readiness probe, on every query
 * error, and (one stat, no query) before every answer: `assertCurrent`. Reasons name conditions
 * and SQLite/VN codes, never the path or data.
 */
import { VnError, isVnError } from '../errors.js'
import type { DataSource, Row, SqlParams } from './types.js'

/** A change of state, for the node's operational log. */
export type SourceTransition =
  /** Available again (`replaced`: the open source was swapped for the configured one at once, never unavailable). */
  | { readonly available: true; readonly replaced?: string }
  /** Unavailable: `reason` is the state of the configured file now, `noticed` what was seen on the open one. */
  | { readonly available: false; readonly reason: string; readonly noticed?: string | undefined; readonly error?: unknown }

export interface SupervisedSourceOptions {
  /** Open the configured source again, with every start-up check (throws when it cannot). */
  open(): Promise<DataSource>
  /** The start-up checks that need the open source (service statements); throws when unfit. */
  fits?(source: DataSource): Promise<void>
  /** Called on every change of state (and when the reason for being unavailable changes). */
  onTransition?(t: SourceTransition): void
}

interface Fault { readonly reason: string; readonly error?: unknown }

function codeOf(e: unknown): string {
  if (isVnError(e)) return e.code
  const code = (e as { code?: unknown } | null)?.code
  return typeof code === 'string' && /^[A-Z_0-9]+$/.test(code) ? code : 'error'
}

/** A short, data-free reason: the backend's own detail when it is unavailable, else the code. */
function reasonOf(e: unknown, what: string): string {
  if (isVnError(e)) {
    if (e.code === 'VN_ERR_SOURCE_UNAVAILABLE' && e.detail !== undefined) return e.detail
    if (e.code === 'VN_ERR_CONFIG_INVALID' || e.code === 'VN_ERR_SOURCE_NOT_READONLY' || e.code === 'VN_ERR_SOURCE_SQL_INVALID') return `${what} does not fit the configured statements (${e.code})`
  }
  return `${what} cannot be used (${codeOf(e)})`
}

export class SupervisedSource implements DataSource {
  readonly kind: string
  /** `data file` for a file source (it has `changed()`), `database` for a server. */
  readonly #what: string
  readonly #o: SupervisedSourceOptions
  #inner: DataSource | undefined
  /** Why the source is unavailable; undefined while it is available. */
  #reason: string | undefined
  #checking: Promise<void> | undefined
  #closed = false

  constructor(inner: DataSource, opts: SupervisedSourceOptions) {
    this.kind = inner.kind
    this.#what = inner.changed !== undefined ? 'data file' : 'database'
    this.#inner = inner
    this.#o = opts
  }

  /** Undefined while available; else why not (no personal data: files, SQLite and VN_ERR codes). */
  get unavailable(): string | undefined {
    return this.#inner === undefined ? (this.#reason ?? 'data source is closed') : undefined
  }

  #live(): DataSource {
    const inner = this.#inner
    if (inner === undefined) throw new VnError('VN_ERR_SOURCE_UNAVAILABLE', this.unavailable)
    return inner
  }

  /**
   * Look at the source now: if it changed, broke or no longer fits, or is unavailable, open the
   * configured one again (with the start-up checks) and use it, or become unavailable. One check
   * at a time; callers during one share it.
   */
  check(): Promise<void> {
    this.#checking ??= this.#check().finally(() => {
      this.#checking = undefined
    })
    return this.#checking
  }

  /** `inner` failed a query in a way that shows its file is broken: stop using it now. */
  async #broken(inner: DataSource, fault: Fault): Promise<void> {
    await this.#checking?.catch(() => undefined)
    if (this.#inner !== inner) return
    this.#checking ??= this.#check(fault).finally(() => {
      this.#checking = undefined
    })
    await this.#checking
  }

  async #check(forced?: Fault): Promise<void> {
    if (this.#closed) return
    const inner = this.#inner
    let fault: Fault | undefined
    if (inner !== undefined) {
      fault = forced ?? (await this.#fault(inner))
      if (fault === undefined) return
    }
    let next: DataSource
    try {
      next = await this.#o.open()
    } catch (e) {
      const reason = reasonOf(e, this.#what)
      if (inner !== undefined && this.#inner === inner) {
        this.#inner = undefined
        await inner.close().catch(() => undefined)
      }
      if (fault !== undefined || reason !== this.#reason) {
        this.#reason = reason
        this.#o.onTransition?.({ available: false, reason, noticed: fault?.reason, error: fault?.error ?? e })
      }
      return
    }
    if (this.#closed) {
      await next.close()
      return
    }
    const old = this.#inner
    this.#inner = next
    this.#reason = undefined
    this.#o.onTransition?.(fault !== undefined ? { available: true, replaced: fault.reason } : { available: true })
    await old?.close().catch(() => undefined)
  }

  async #fault(inner: DataSource): Promise<Fault | undefined> {
    const changed = inner.changed?.()
    if (changed !== undefined) return { reason: changed }
    try {
      await inner.ping()
    } catch (e) {
      return { reason: `${this.#what} does not answer (${codeOf(e)})`, error: e }
    }
    try {
      await this.#o.fits?.(inner)
    } catch (e) {
      return { reason: `${this.#what} no longer fits the configured statements (${codeOf(e)})`, error: e }
    }
    return undefined
  }

  changed(): string | undefined {
    return this.unavailable ?? this.#inner?.changed?.()
  }

  async assertCurrent(): Promise<void> {
    const inner = this.#inner
    // The hot path: one stat, nothing else.
    if (inner !== undefined && inner.changed?.() === undefined) return
    await this.check()
    this.#live()
  }

  async assertReadOnly(sql: string, label: string): Promise<void> {
    return this.#live().assertReadOnly(sql, label)
  }

  async describe(sql: string, label: string, params: readonly string[]): Promise<{ columns: string[] }> {
    return this.#live().describe(sql, label, params)
  }

  async query(sql: string, params: SqlParams): Promise<Row[]> {
    const inner = this.#live()
    try {
      return await inner.query(sql, params)
    } catch (e) {
      if (!isVnError(e) || (e.code !== 'VN_ERR_SOURCE_UNAVAILABLE' && e.code !== 'VN_ERR_SOURCE_QUERY')) throw e
      // The file itself is broken: stop using it at once. Any other failure: look at the file
      // (a truncated database fails as "no such table", not as a corrupt one).
      // A server that drops the connection or cancels a slow statement may answer the next
      // lookup on the same pool: look at it (ping), do not force a re-open.
      if (e.code === 'VN_ERR_SOURCE_UNAVAILABLE' && inner.changed !== undefined) await this.#broken(inner, { reason: `data file broke under a query (${e.detail?.replace(/^sqlite: /, '').split(':')[0] ?? e.code})`, error: e })
      else await this.check()
      // Not answered from a file dropped meanwhile, nor from its replacement mid-answer.
      if (this.#inner !== inner) throw new VnError('VN_ERR_SOURCE_UNAVAILABLE', this.unavailable ?? `${this.#what} changed during the answer`, { cause: e })
      throw e
    }
  }

  async *iterate(sql: string, params: SqlParams, batchSize?: number): AsyncIterable<Row[]> {
    yield * this.#live().iterate(sql, params, batchSize)
  }

  async ping(): Promise<void> {
    await this.check()
    this.#live()
  }

  async close(): Promise<void> {
    this.#closed = true
    await this.#checking?.catch(() => undefined)
    const inner = this.#inner
    this.#inner = undefined
    this.#reason = 'data source is closed'
    await inner?.close()
  }
}
