/**
 * Ed25519 off the event loop, in batches, on a few dedicated worker threads.
 *
 * Why not node:crypto's callback form (libuv's pool)? Each callback-form call is its own libuv job,
 * and on this kind of 2-vCPU machine every job handed to a sleeping pool thread wakes it from the
 * event loop's own `uv_queue_work` call; measured with strace under bench:plain load, that futex
 * wake returned after 0.1–0.9 ms (the woken thread takes the core, or the hypervisor's wake-up IPI
 * is slow), two jobs per exchange. Here the operations asked for while every worker is busy wait
 * and go over together as one message to the next worker free, so under load a worker is woken
 * once per batch, not twice per exchange, and replies land on an event loop that is awake anyway.
 * A lone operation after a quiet spell, or one whose caller says it is alone, runs on the caller's
 * thread instead (see `inlineNow`).
 *
 * Same results as `sign`/`verify` from node:crypto: the workers run exactly those on the same key
 * material (passed once per key and worker, as DER). SM2 keys (the `sm` crypto profile) go the
 * same way, the workers running profile.ts's SM2 with SM3; an SM2 operation (about a millisecond)
 * is never run inline on the caller's thread, and has no callback form (once broken, it runs
 * inline). One set of workers serves the whole process
 * (`acquireEd25519` / `release`), like libuv's pool. If a worker dies, pending operations reject
 * and later ones fall back to the callback form.
 */
import { Worker } from 'node:worker_threads'
import { availableParallelism } from 'node:os'
import { sign, verify, type KeyObject } from 'node:crypto'
import { profileOfKey, signBytes, verifyBytes } from './profile.js'
import { VnError } from '../errors.js'
import { workerPath } from '../util/worker-pool.js'
import { QuietClock } from '../util/quiet-clock.js'

/** One operation as sent to the worker: a signature to check (`sig` set) or to make. */
export interface Ed25519Op {
  key: number
  data: Uint8Array
  sig?: Uint8Array
}

/** true/false: verification result; bytes: a signature; null: the operation failed. */
export type Ed25519Reply = boolean | Uint8Array | null

interface Pending {
  op: Ed25519Op
  resolve: (r: Ed25519Reply) => void
  reject: (e: unknown) => void
}

/** What a caller knows about its own load. */
export interface Ed25519Call {
  /**
   * The caller has just this one request in progress (the provider with a single exchange in
   * flight): with nothing queued or out, the operation runs inline even right after another.
   */
  lone?: boolean
}

/** Exact-size copy: a Buffer may be a view into Node's 8 KiB pool, which a postMessage would copy whole. */
const own = (b: Uint8Array): Uint8Array => (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength ? b : b.slice())

/**
 * A packed batch of verifications (`verifyMany`): all the bytes in one transferred ArrayBuffer,
 * answered by one Uint8Array (1 valid, 0 invalid, 2 could not run): no object, promise or copy per
 * operation on either side.
 */
export interface PackedVerify {
  /** per operation: key id, data offset, data length, signature offset, signature length */
  meta: Uint32Array
  bytes: Uint8Array
}

interface PackedPending {
  n: number
  resolve: (r: Uint8Array) => void
  reject: (e: unknown) => void
}

type InFlight = Pending[] | PackedPending

interface Lane {
  readonly worker: Worker
  /** batches posted and not answered yet, oldest first (the worker answers in order) */
  inFlight: InFlight[]
  /** keys [0, known) of `keys` have been sent to this worker */
  known: number
}

export class Ed25519Batcher {
  private readonly lanes: Lane[] = []
  private queue: Pending[] = []
  private keyIds = new WeakMap<KeyObject, number>()
  private readonly byDer = new Map<string, number>()
  /** every distinct key so far; a key's id is its index */
  private readonly keys: { id: number; der: Uint8Array; private: boolean }[] = []
  private broken = false
  /** batches sent, operations they carried, operations run on the caller's thread (tests, diagnostics) */
  readonly stats = { batches: 0, ops: 0, inline: 0 }
  /** an operation after a 2 ms pause, with nothing out, runs inline (see `inlineNow`) */
  private readonly clock = new QuietClock()

  /**
   * `workers`: batches worked on at the same time, one per worker thread. Default: one per core
   * beyond the event loop, but at least 2 (with one, a batch waits for the one in flight and the
   * worker was the stage that saturated first under bench:plain) and at most 4.
   */
  constructor(workers = Math.min(4, Math.max(2, availableParallelism() - 1))) {
    for (let i = 0; i < Math.max(1, workers); i++) {
      const lane: Lane = { worker: new Worker(workerPath(import.meta.url, 'ed25519-worker')), inFlight: [], known: 0 }
      lane.worker.unref()
      lane.worker.on('message', (r: Ed25519Reply[]) => this.onReply(lane, r))
      lane.worker.on('error', (e) => this.onCrash(e))
      lane.worker.on('exit', () => this.onCrash(new Error('ed25519 worker exited')))
      this.lanes.push(lane)
    }
  }

  /**
   * Whether an operation runs on the caller's thread (~0.1 ms) rather than in a batch, sparing a
   * single request two thread hand-offs (~0.3 ms each here). Only with nothing queued or out, and
   * either after a pause (`QuietClock`) or when the caller says it is alone: the provider's
   * verify and sign of one exchange come ~1 ms apart, so the pause alone would send the sign to a
   * worker. Under a steady load the provider has several exchanges in progress and operations come
   * closer than the pause, so they are never signed on the event loop.
   */
  private inlineNow(call: Ed25519Call | undefined, key: KeyObject): boolean {
    if (profileOfKey(key) === 'sm') return false
    const paused = this.clock.paused()
    const idle = this.queue.length === 0 && this.lanes.every((l) => l.inFlight.length === 0)
    return idle && (call?.lone === true || paused)
  }

  /** Ed25519 verification of `sig` over `data` with a public key: resolves true or false. */
  verify(data: Uint8Array, key: KeyObject, sig: Uint8Array, call?: Ed25519Call): Promise<boolean> {
    return this.run(key, 'signature check', call, {
      inline: () => verifyBytes(data, key, sig),
      callback: (cb) => (profileOfKey(key) === 'sm' ? cb(null, verifyBytes(data, key, sig)) : verify(null, data, key, sig, cb)),
      op: (id) => ({ key: id, data: own(data), sig: own(sig) }),
      take: (r) => (typeof r === 'boolean' ? r : undefined),
    })
  }

  /** Ed25519 signature over `data` with a private key. */
  sign(data: Uint8Array, key: KeyObject, call?: Ed25519Call): Promise<Buffer> {
    return this.run<Buffer>(key, 'signing', call, {
      inline: () => signBytes(data, key),
      callback: (cb) => (profileOfKey(key) === 'sm' ? cb(null, signBytes(data, key)) : sign(null, data, key, cb)),
      op: (id) => ({ key: id, data: own(data) }),
      take: (r) => (r instanceof Uint8Array ? Buffer.from(r.buffer, r.byteOffset, r.byteLength) : undefined),
    })
  }

  /** One operation: the callback form once broken, inline when quiet, else the next batch. */
  private run<T>(key: KeyObject, what: string, call: Ed25519Call | undefined, how: {
    inline: () => T
    callback: (cb: (err: Error | null, r: T) => void) => void
    op: (keyId: number) => Ed25519Op
    take: (r: Ed25519Reply) => T | undefined
  }): Promise<T> {
    if (this.broken) return new Promise((resolve, reject) => how.callback((err, r) => (err === null ? resolve(r) : reject(err))))
    const id = this.keyId(key)
    if (this.inlineNow(call, key)) {
      this.stats.inline++
      try {
        return Promise.resolve(how.inline())
      } catch (e) {
        return Promise.reject(new VnError('VN_ERR_INTERNAL', `${what} failed to run`, { cause: e }))
      } finally {
        this.clock.restart()
      }
    }
    return this.submit(how.op(id)).then((r) => {
      const v = how.take(r)
      if (v === undefined) throw new VnError('VN_ERR_INTERNAL', `${what} failed to run`)
      return v
    })
  }

  /**
   * Many verifications at once (the offline auditor): split evenly over the workers and posted
   * right away, behind whatever each worker already has, so the workers stay busy while the
   * caller's thread does other work and seldom returns to its event loop. Resolves to one result
   * per item: true/false, or null when the check could not run (the caller may run it itself).
   */
  async verifyMany(items: readonly { data: Uint8Array; key: KeyObject; sig: Uint8Array }[]): Promise<(boolean | null)[]> {
    if (items.length === 0) return []
    if (this.broken) return items.map((it) => verifyOrNull(it.data, it.key, it.sig))
    const keyIds = items.map((it) => this.keyId(it.key))
    const parts = Math.min(this.lanes.length, items.length)
    const per = Math.ceil(items.length / parts)
    const replies: Promise<Uint8Array>[] = []
    for (let p = 0; p < parts; p++) {
      const from = p * per
      const to = Math.min(items.length, from + per)
      if (to <= from) continue
      let size = 0
      for (let k = from; k < to; k++) size += (items[k] as { data: Uint8Array }).data.length + (items[k] as { sig: Uint8Array }).sig.length
      const meta = new Uint32Array(5 * (to - from))
      const bytes = new Uint8Array(size)
      let at = 0
      for (let k = from; k < to; k++) {
        const it = items[k] as { data: Uint8Array; sig: Uint8Array }
        const m = 5 * (k - from)
        meta[m] = keyIds[k] as number
        meta[m + 1] = at
        meta[m + 2] = it.data.length
        bytes.set(it.data, at)
        at += it.data.length
        meta[m + 3] = at
        meta[m + 4] = it.sig.length
        bytes.set(it.sig, at)
        at += it.sig.length
      }
      // the lane with the least work outstanding
      const lane = this.lanes.reduce((a, b) => (outstanding(b) < outstanding(a) ? b : a))
      replies.push(new Promise((resolve, reject) => this.postPacked(lane, { n: to - from, resolve, reject }, { meta, bytes })))
    }
    const out: (boolean | null)[] = []
    for (const r of await Promise.all(replies)) for (const x of r) out.push(x === 1 ? true : x === 0 ? false : null)
    return out
  }

  async close(): Promise<void> {
    this.broken = true
    this.fail(new VnError('VN_ERR_INTERNAL', 'ed25519 worker closed'))
    await Promise.all(this.lanes.map((l) => l.worker.terminate()))
  }

  private keyId(key: KeyObject): number {
    let id = this.keyIds.get(key)
    if (id === undefined) {
      if (profileOfKey(key) === undefined) throw new VnError('VN_ERR_INTERNAL', 'not an Ed25519 or SM2 key')
      const priv = key.type === 'private'
      const der = priv ? key.export({ format: 'der', type: 'pkcs8' }) : key.export({ format: 'der', type: 'spki' })
      // A reloaded manifest parses the same keys into new KeyObjects: the workers learn each key once.
      const name = `${priv ? 'k' : 'p'}${der.toString('base64')}`
      id = this.byDer.get(name)
      if (id === undefined) {
        id = this.keys.length
        this.byDer.set(name, id)
        this.keys.push({ id, der: new Uint8Array(der), private: priv })
      }
      this.keyIds.set(key, id)
    }
    return id
  }

  private submit(op: Ed25519Op): Promise<Ed25519Reply> {
    return new Promise((resolve, reject) => {
      this.queue.push({ op, resolve, reject })
      this.pump()
    })
  }

  /** Hands everything queued to an idle worker, if there is one. */
  private pump(): void {
    if (this.queue.length === 0) return
    const lane = this.lanes.find((l) => l.inFlight.length === 0)
    if (lane === undefined) return // the queue goes with the next batch that returns
    const batch = this.queue
    this.queue = []
    this.post(lane, batch)
  }

  private post(lane: Lane, batch: Pending[]): void {
    this.send(lane, batch, batch.length, { ops: batch.map((p) => p.op) })
  }

  private postPacked(lane: Lane, pending: PackedPending, packed: PackedVerify): void {
    this.send(lane, pending, pending.n, { packed }, [packed.meta.buffer as ArrayBuffer, packed.bytes.buffer as ArrayBuffer])
  }

  /** Hands one batch to a lane's worker, with the keys that worker has not seen yet. */
  private send(lane: Lane, entry: Lane['inFlight'][number], ops: number, message: object, transfer?: ArrayBuffer[]): void {
    lane.inFlight.push(entry)
    this.stats.batches++
    this.stats.ops += ops
    const keys = this.keys.slice(lane.known)
    lane.known = this.keys.length
    lane.worker.ref()
    lane.worker.postMessage({ keys, ...message }, transfer)
  }

  private onReply(lane: Lane, r: Ed25519Reply[] | Uint8Array): void {
    const batch = lane.inFlight.shift() ?? []
    if (lane.inFlight.length === 0) lane.worker.unref()
    if (Array.isArray(batch)) batch.forEach((p, i) => p.resolve((r as Ed25519Reply[])[i] ?? null))
    else batch.resolve(r instanceof Uint8Array ? r : new Uint8Array(batch.n).fill(2))
    this.pump()
  }

  private onCrash(cause: unknown): void {
    if (this.broken) return
    this.broken = true
    this.fail(new VnError('VN_ERR_INTERNAL', 'ed25519 worker failed', { cause }))
    for (const l of this.lanes) void l.worker.terminate()
  }

  private fail(e: VnError): void {
    const all = [...this.lanes.flatMap((l) => l.inFlight), this.queue]
    for (const l of this.lanes) l.inFlight = []
    this.queue = []
    for (const b of all) {
      if (Array.isArray(b)) for (const p of b) p.reject(e)
      else b.reject(e)
    }
  }
}

const outstanding = (l: Lane): number => l.inFlight.reduce((n, b) => n + (Array.isArray(b) ? b.length : b.n), 0)

function verifyOrNull(data: Uint8Array, key: KeyObject, sig: Uint8Array): boolean | null {
  try {
    return verifyBytes(data, key, sig)
  } catch {
    return null
  }
}

let shared: { batcher: Ed25519Batcher; users: number } | undefined

/** The process-wide batcher (started on first use); call `release` when done with it. */
export function acquireEd25519(): { batcher: Ed25519Batcher; release: () => Promise<void> } {
  if (shared === undefined) shared = { batcher: new Ed25519Batcher(), users: 0 }
  const s = shared
  s.users++
  let released = false
  return {
    batcher: s.batcher,
    release: async () => {
      if (released) return
      released = true
      s.users--
      if (s.users === 0) {
        if (shared === s) shared = undefined
        await s.batcher.close()
      }
    },
  }
}
