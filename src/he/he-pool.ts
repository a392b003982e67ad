/**
 * Provider-side BFV evaluation on a worker-thread pool (src/util/worker-pool.ts).
 *
 * `evaluate` has the same contract as `HeProvider.evaluate` and keeps its error codes
 * (VN_ERR_HE_CIPHERTEXT, VN_ERR_HE_KEY) across the thread boundary. Big batches are split per
 * ciphertext-chunk so several workers share one request.
 */
import { availableParallelism } from 'node:os'
import { WorkerPool, workerPath } from '../util/worker-pool.js'
import { VnError } from '../errors.js'
import { publicKeyDigest } from './serialization.js'
import { GRID_SIZE } from './grid.js'
import { HE_PARAMS } from './context.js'
import type { HeEvalKind, HeValue } from './threshold.js'
import type { EvaluateTask } from './he-worker.js'

/** Subjects per ciphertext for the fixed parameter set. */
const PER_CT = HE_PARAMS.polyModulusDegree / GRID_SIZE
/** Ciphertexts per worker task: small enough to spread a large batch over the pool. */
const CTS_PER_TASK = 4

export class HeEvaluatorPool {
  private readonly pool: WorkerPool
  private readonly digests = new WeakMap<Uint8Array, string>()

  constructor(size = Math.max(1, availableParallelism() - 1)) {
    this.pool = new WorkerPool(workerPath(import.meta.url, 'he-worker'), size)
  }

  get size(): number {
    return this.pool.size
  }

  /** Evaluate queries for `values.length` subjects on the pool (see HeProvider.evaluate). */
  async evaluate(publicKey: Uint8Array, queries: readonly Uint8Array[], values: readonly HeValue[], kind: HeEvalKind = 'threshold'): Promise<Uint8Array[]> {
    if (!(publicKey instanceof Uint8Array)) throw new VnError('VN_ERR_HE_KEY', 'publicKey: not binary')
    let digest = this.digests.get(publicKey)
    if (digest === undefined) {
      digest = publicKeyDigest(publicKey)
      this.digests.set(publicKey, digest)
    }
    if (!Array.isArray(queries) || queries.length !== Math.ceil(values.length / PER_CT)) {
      throw new VnError('VN_ERR_HE_CIPHERTEXT', `ciphertexts: expected ${Math.ceil(values.length / PER_CT)} for ${values.length} subjects`)
    }
    const tasks: Promise<Uint8Array[]>[] = []
    for (let c = 0; c < queries.length; c += CTS_PER_TASK) {
      const task: EvaluateTask = {
        publicKey,
        digest,
        queries: queries.slice(c, c + CTS_PER_TASK),
        values: values.slice(c * PER_CT, (c + CTS_PER_TASK) * PER_CT),
        kind,
      }
      tasks.push(this.pool.run<Uint8Array[]>('evaluate', task))
    }
    return (await Promise.all(tasks)).flat()
  }

  /** process.memoryUsage() as seen from a worker (RSS is per process; WASM heaps are in arrayBuffers). */
  memoryUsage(): Promise<NodeJS.MemoryUsage> {
    return this.pool.run<NodeJS.MemoryUsage>('memory', null)
  }

  close(): Promise<void> {
    return this.pool.close()
  }
}
