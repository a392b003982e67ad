/**
 * The worker threads of `audit verify` (one per core by default): each runs precheck-worker.ts and
 * answers chunks of leaves and batches of evidence JWS with precheck.ts's summaries.
 */
import type { KeyObject } from 'node:crypto'
import { WorkerPool, workerPath } from '../util/worker-pool.js'
import type { JwsItem, JwsPre, LeafChunkPre } from './precheck-types.js'

export class PrecheckPool {
  private readonly pool: WorkerPool

  constructor(workers: number, texts: readonly { name: string; jws: string }[], anchor: KeyObject) {
    const der = new Uint8Array(anchor.export({ format: 'der', type: 'spki' }))
    this.pool = new WorkerPool(workerPath(import.meta.url, 'precheck-worker'), Math.max(1, workers), { workerData: { texts, anchor: der }, depth: 2 })
  }

  get size(): number {
    return this.pool.size
  }

  /** Leaves [first, first + lines.length). */
  leaves(first: number, lines: readonly Uint8Array[]): Promise<LeafChunkPre> {
    let total = 0
    for (const l of lines) total += l.length
    const bytes = new Uint8Array(total)
    const ends = new Uint32Array(lines.length)
    let at = 0
    lines.forEach((l, k) => {
      bytes.set(l, at)
      at += l.length
      ends[k] = at
    })
    return this.pool.run<LeafChunkPre>('leaves', { first, bytes, ends }, [bytes.buffer, ends.buffer])
  }

  jws(items: JwsItem[]): Promise<JwsPre[]> {
    return this.pool.run<JwsPre[]>('jws', items)
  }

  close(): Promise<void> {
    return this.pool.close()
  }
}
