/**
 * A small fixed-size worker-thread pool for CPU-heavy work (OPRF evaluation, tag-set builds, BFV).
 *
 * A worker module calls `serveWorker(handlers)`; the pool posts `{ id, op, args }` and the worker
 * answers `{ id, ok, value | error }`. Errors keep their `code` so a VnError thrown in a worker
 * comes back as a VnError with the same code. Tasks queue when all workers are busy.
 */
import { Worker, parentPort, type TransferListItem } from 'node:worker_threads'
import { fileURLToPath } from 'node:url'
import { availableParallelism } from 'node:os'
import { VnError, ERRORS, type ErrorCode } from '../errors.js'

interface Task {
  id: number
  op: string
  args: unknown
  transfer: readonly TransferListItem[]
  resolve: (v: unknown) => void
  reject: (e: unknown) => void
}

interface Reply {
  id: number
  ok: boolean
  value?: unknown
  error?: { message: string; code?: string; detail?: string }
}

/**
 * Resolve a worker module next to the caller. Under a TypeScript loader (tests, tsx) the caller is a
 * `.ts` file and so is the worker; in the built package both are `.js`.
 */
export function workerPath(callerUrl: string, baseName: string): string {
  const ext = callerUrl.endsWith('.ts') ? '.ts' : '.js'
  return fileURLToPath(new URL(`./${baseName}${ext}`, callerUrl))
}

export interface WorkerPoolOptions {
  /** passed to each worker as `workerData` */
  workerData?: unknown
  /**
   * Tasks a worker holds at once (default 1). With 2, a worker has its next task in hand when it
   * answers one, instead of waiting for this thread to read the answer and send another: worth it
   * when this thread runs long synchronous stretches between awaits (the auditor).
   */
  depth?: number
}

export class WorkerPool {
  readonly size: number
  private readonly depth: number
  private readonly workers: Worker[] = []
  private readonly queue: Task[] = []
  /** per worker, the tasks it holds, in the order sent (a worker answers in that order) */
  private readonly running = new Map<Worker, Task[]>()
  private nextId = 1
  private closed = false

  constructor(modulePath: string, size = Math.max(1, availableParallelism() - 1), opts: WorkerPoolOptions = {}) {
    this.size = size
    this.depth = Math.max(1, opts.depth ?? 1)
    for (let i = 0; i < size; i++) {
      const w = new Worker(modulePath, { workerData: opts.workerData })
      w.on('message', (m: Reply) => this.onReply(w, m))
      w.on('error', (e) => this.onCrash(w, e))
      w.unref()
      this.workers.push(w)
      this.running.set(w, [])
    }
  }

  /** True while any task is queued or running. */
  get busy(): boolean {
    if (this.queue.length > 0) return true
    for (const held of this.running.values()) if (held.length > 0) return true
    return false
  }

  run<T>(op: string, args: unknown, transfer: readonly TransferListItem[] = []): Promise<T> {
    if (this.closed) return Promise.reject(new VnError('VN_ERR_INTERNAL', 'worker pool closed'))
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ id: this.nextId++, op, args, transfer, resolve: resolve as (v: unknown) => void, reject })
      this.pump()
    })
  }

  async close(): Promise<void> {
    this.closed = true
    for (const t of this.queue.splice(0)) t.reject(new VnError('VN_ERR_INTERNAL', 'worker pool closed'))
    await Promise.all(this.workers.map((w) => w.terminate()))
  }

  /** Hands queued tasks to the least loaded workers, up to `depth` each. */
  private pump(): void {
    while (this.queue.length > 0) {
      let w: Worker | undefined
      let held = this.depth
      for (const x of this.workers) {
        const n = (this.running.get(x) as Task[]).length
        if (n < held) {
          w = x
          held = n
        }
      }
      if (w === undefined) return
      const t = this.queue.shift() as Task
      const tasks = this.running.get(w) as Task[]
      if (tasks.length === 0) w.ref()
      tasks.push(t)
      w.postMessage({ id: t.id, op: t.op, args: t.args }, t.transfer)
    }
  }

  private onReply(w: Worker, m: Reply): void {
    const tasks = this.running.get(w) ?? []
    const at = tasks.findIndex((x) => x.id === m.id)
    const t = at < 0 ? undefined : tasks.splice(at, 1)[0]
    if (tasks.length === 0) w.unref()
    if (t !== undefined) {
      if (m.ok) t.resolve(m.value)
      else t.reject(reviveError(m.error))
    }
    this.pump()
  }

  private onCrash(w: Worker, e: unknown): void {
    for (const t of this.running.get(w) ?? []) t.reject(new VnError('VN_ERR_INTERNAL', 'worker crashed', { cause: e }))
    this.running.delete(w)
    const i = this.workers.indexOf(w)
    if (i >= 0) this.workers.splice(i, 1)
  }
}

function reviveError(e: Reply['error']): Error {
  if (e?.code !== undefined && e.code in ERRORS) return new VnError(e.code as ErrorCode, e.detail)
  return new VnError('VN_ERR_INTERNAL', 'worker task failed')
}

export type Handler = (args: any) => unknown | Promise<unknown> // eslint-disable-line @typescript-eslint/no-explicit-any

/** Call from a worker module: answers the pool's tasks with the named handlers. */
export function serveWorker(handlers: Record<string, Handler>): void {
  const port = parentPort
  if (port === null) throw new Error('serveWorker must run in a worker thread')
  port.on('message', async (m: { id: number; op: string; args: unknown }) => {
    try {
      const h = handlers[m.op]
      if (h === undefined) throw new VnError('VN_ERR_INTERNAL', `unknown worker op ${m.op}`)
      const value = await h(m.args)
      port.postMessage({ id: m.id, ok: true, value })
    } catch (err) {
      const e = err as { message?: string; code?: string; detail?: string }
      const error: Reply['error'] = { message: String(e?.message ?? err) }
      if (typeof e?.code === 'string') error.code = e.code
      if (typeof e?.detail === 'string') error.detail = e.detail
      port.postMessage({ id: m.id, ok: false, error })
    }
  })
}
