/**
 * The log's closed state and its reopening (docs/OPERATIONS.md "The log's disk fills").
 *
 * The log is closed while its store refuses writes (a commit failed: disk full, I/O error, a lost
 * writer) or the node's write path broke its index sequence (an abandoned slot): exchanges answer
 * 503 VN_ERR_LOG_UNAVAILABLE and /readyz reports the log, while reads of what was committed
 * (checkpoint, proofs, entries, exports) keep working. This part notices it (once a second, or
 * when /readyz asks), then tries to reopen with backoff (after 1 s, 2 s, 4 s, then every 5 s):
 *
 * 1. the store makes a trial write and reads its tree back from storage (`LogStore.reopen`);
 * 2. that stored tree must be the one last committed (same size, same root) and still hold the
 *    last signed checkpoints, the latest stored one and one signed while closed
 *    (`checkStoredTree`); if not, the log stays closed for good (until a
 *    restart after investigation) and the node says so loudly: that is tampering or corruption;
 * 3. the checkpoint signed while closed is stored, and the write path starts again at the
 *    store's size.
 *
 * Then the log is open again: `verinode_log_closed` goes back to 0, the closed time is added to
 * `verinode_log_closed_seconds_total`, and "log reopened after N s" is logged.
 */
import type { Logger } from 'pino'
import { VnError } from '../errors.js'
import type { NoteVerifier } from '../log/checkpoint.js'
import type { StoreNodeLog } from '../log/node-log.js'
import type { LogStore } from '../log/storage.js'
import type { Checkpointer } from './checkpointer.js'
import type { Metrics } from './metrics.js'
import { checkStoredTree } from './recovery.js'

export interface LogReopenDeps {
  store: Pick<LogStore, 'writable' | 'reopen' | 'size' | 'rootHash' | 'latestCheckpoint' | 'shared'>
  nodeLog: Pick<StoreNodeLog, 'failure' | 'resume'>
  checkpointer: Pick<Checkpointer, 'held' | 'flushHeld'>
  /** the node's log keys (its own, and those the manifest lists for it) */
  verifiers: () => readonly NoteVerifier[]
  metrics: Pick<Metrics, 'logClosed' | 'logClosedSeconds' | 'logReopens'>
  logger: Logger
  now?: () => number
  /** first retry after this many ms, doubling up to `maxRetryMs` (defaults 1 s and 5 s) */
  firstRetryMs?: number
  maxRetryMs?: number
}

export interface LogStatus {
  ok: boolean
  detail?: string
}

interface Closed {
  since: number
  retryMs: number
  nextAt: number
  attempts: number
  /** the stored tree did not match: no more attempts */
  mismatch?: VnError
}

const codeOf = (e: unknown): string => (e instanceof VnError ? e.code : 'VN_ERR_INTERNAL')
const detailOf = (e: unknown): string | undefined => (e instanceof VnError ? e.detail : undefined)

export class LogReopener {
  private closed: Closed | undefined
  private timer: NodeJS.Timeout | undefined
  private running: Promise<void> | undefined
  private readonly now: () => number
  private readonly firstRetryMs: number
  private readonly maxRetryMs: number

  constructor(private readonly d: LogReopenDeps) {
    this.now = d.now ?? Date.now
    this.firstRetryMs = d.firstRetryMs ?? 1000
    this.maxRetryMs = d.maxRetryMs ?? 5000
  }

  /** The log accepts writes right now. */
  get open(): boolean {
    return this.d.store.writable && this.d.nodeLog.failure === undefined
  }

  /** For /readyz (a closed log not noticed yet is noticed now). */
  status(): LogStatus {
    if (this.open && this.closed === undefined) return { ok: true }
    const c = this.notice()
    if (c.mismatch !== undefined) return { ok: false, detail: `closed: ${c.mismatch.message}; restart only after investigating` }
    return { ok: false, detail: `closed since ${new Date(c.since).toISOString()}: writes refused (fail closed); reopens by itself once a trial write succeeds` }
  }

  /** The closed state, entered (metric, log line) if this is the first time it is seen. */
  private notice(): Closed {
    if (this.closed !== undefined) return this.closed
    const now = this.now()
    const failure = this.d.nodeLog.failure
    const cause = failure?.cause
    const c: Closed = { since: now, retryMs: this.firstRetryMs, nextAt: now + this.firstRetryMs, attempts: 0 }
    this.closed = c
    this.d.metrics.logClosed.set(1)
    this.d.logger.error(
      { code: 'VN_ERR_LOG_UNAVAILABLE', detail: failure?.detail, cause: detailOf(cause) ?? (cause instanceof Error ? cause.message : undefined) },
      'log closed: writes refused, exchanges answer 503; reads of committed data go on; reopening by itself once a trial write succeeds',
    )
    return c
  }

  /** Checks once a `firstRetryMs` (unref'd timer). */
  start(): void {
    if (this.timer !== undefined) return
    this.timer = setInterval(() => void this.tick(), this.firstRetryMs)
    this.timer.unref()
  }

  async stop(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
    await this.running
  }

  /** One check: notice a closed log, or try to reopen it when its retry is due. */
  tick(): Promise<void> {
    this.running ??= this.step().finally(() => {
      this.running = undefined
    })
    return this.running
  }

  private async step(): Promise<void> {
    if (this.closed === undefined) {
      if (!this.open) this.notice()
      return
    }
    const c = this.closed
    if (c.mismatch !== undefined || this.now() < c.nextAt) return
    c.attempts++
    try {
      const verify = async (stored: Parameters<typeof checkStoredTree>[0]): Promise<void> => {
        const latest = await this.d.store.latestCheckpoint()
        const notes = [latest?.note, this.d.checkpointer.held?.note].filter((n): n is string => n !== undefined)
        const committed = { size: await this.d.store.size(), root: await this.d.store.rootHash() }
        await checkStoredTree(stored, notes, this.d.verifiers(), committed, this.d.store.shared === true)
      }
      if (this.d.store.writable) await verify({ size: await this.d.store.size(), rootHash: (at) => this.d.store.rootHash(at) })
      else await this.d.store.reopen(verify)
      await this.d.checkpointer.flushHeld()
      await this.d.nodeLog.resume()
    } catch (e) {
      if (e instanceof VnError && e.code === 'VN_ERR_LOG_TREE_MISMATCH') {
        c.mismatch = e
        this.d.logger.fatal({ code: e.code, detail: e.detail }, 'ALERT: the stored log tree does not match the last signed checkpoint (tampering or corruption); the log stays closed')
        return
      }
      c.retryMs = Math.min(c.retryMs * 2, this.maxRetryMs)
      c.nextAt = this.now() + c.retryMs
      const cause = (e as { cause?: unknown }).cause
      this.d.logger.warn(
        { code: codeOf(e), detail: detailOf(e), cause: detailOf(cause), attempt: c.attempts, retryInMs: c.retryMs },
        'log still closed: the trial write failed',
      )
      return
    }
    const seconds = Math.max(0, (this.now() - c.since) / 1000)
    this.closed = undefined
    this.d.metrics.logClosed.set(0)
    this.d.metrics.logClosedSeconds.inc(seconds)
    this.d.metrics.logReopens.inc()
    this.d.logger.warn({ closedSeconds: seconds, attempts: c.attempts }, `log reopened after ${seconds.toFixed(1)} s`)
  }
}
