/**
 * Typed access to the OPRF worker pool (src/oprf/oprf-worker.ts over src/util/worker-pool.ts).
 *
 * The exchange node creates one pool at start-up and passes it to request handlers and tag-set
 * builds. Each call below is one task on one worker; large Evaluate runs are split into chunks so
 * every worker gets a share. A VOPRF batch is one task because its single proof covers the whole
 * batch; concurrent requests spread over the workers.
 */
import { availableParallelism } from 'node:os'
import { WorkerPool, workerPath } from '../util/worker-pool.js'
import type { BlindEvaluateResult, BlindResult, OprfMode, SingleEvaluationPlan, SingleProofPart, SingleProofPlan } from '../crypto/oprf.js'

function oprfWorkerPath(): string {
  return workerPath(import.meta.url, 'oprf-worker')
}

/**
 * A pool running src/oprf/oprf-worker; default size leaves one core for the event loop.
 * `modulePath` overrides the worker entry (bench/oprf-worker-tsx.mjs under tsx, whose loader
 * Node 20 does not apply to worker threads).
 */
export function createOprfPool(size = Math.max(1, availableParallelism() - 1), modulePath = oprfWorkerPath()): WorkerPool {
  return new WorkerPool(modulePath, size)
}

/** Packed 8-byte Evaluate prefixes for a tag-set chunk (see src/oprf/prefixes.ts). */
export function poolEvaluatePrefixes(pool: WorkerPool, secretKey: Uint8Array, inputs: Uint8Array[], mode?: OprfMode): Promise<Uint8Array> {
  return pool.run<Uint8Array>('evaluatePrefixes', mode === undefined ? { secretKey, inputs } : { secretKey, inputs, mode })
}

/** Full Evaluate outputs, split over the workers in chunks of `chunkSize`. */
export async function poolEvaluate(pool: WorkerPool, secretKey: Uint8Array, inputs: Uint8Array[], chunkSize = 1024): Promise<Uint8Array[]> {
  const parts: Promise<Uint8Array[]>[] = []
  for (let i = 0; i < inputs.length; i += chunkSize) {
    parts.push(pool.run<Uint8Array[]>('evaluate', { secretKey, inputs: inputs.slice(i, i + chunkSize) }))
  }
  return (await Promise.all(parts)).flat()
}

/** OPRF-mode BlindEvaluate (no proof) on a worker. */
export function poolBlindEvaluate(pool: WorkerPool, secretKey: Uint8Array, blindedElements: Uint8Array[], maxBatch?: number): Promise<Uint8Array[]> {
  return pool.run<Uint8Array[]>('blindEvaluate', maxBatch === undefined ? { secretKey, blindedElements } : { secretKey, blindedElements, maxBatch })
}

/** VOPRF BlindEvaluate with one batch proof, on a worker. */
export function poolBlindEvaluateBatch(
  pool: WorkerPool,
  secretKey: Uint8Array,
  publicKey: Uint8Array,
  blindedElements: Uint8Array[],
  maxBatch?: number,
): Promise<BlindEvaluateResult> {
  const args = maxBatch === undefined ? { secretKey, publicKey, blindedElements } : { secretKey, publicKey, blindedElements, maxBatch }
  return pool.run<BlindEvaluateResult>('blindEvaluateBatch', args)
}

/** Consumer side: Blind on a worker. */
export function poolBlind(pool: WorkerPool, inputs: Uint8Array[], opts: { mode?: OprfMode; maxBatch?: number } = {}): Promise<BlindResult> {
  return pool.run<BlindResult>('blind', { inputs, ...opts })
}

/** Consumer side: verify the proof and Finalize on a worker. */
export function poolFinalizeBatch(
  pool: WorkerPool,
  args: {
    inputs: Uint8Array[]
    blinds: Uint8Array[]
    evaluatedElements: Uint8Array[]
    blindedElements: Uint8Array[]
    publicKey: Uint8Array
    proof: Uint8Array
    maxBatch?: number
  },
): Promise<Uint8Array[]> {
  return pool.run<Uint8Array[]>('finalizeBatch', args)
}

/** The worker's share of a split single-element evaluation (see `planSingleEvaluation`). */
export function poolOffloadSingleEvaluation(pool: WorkerPool, plan: SingleEvaluationPlan): Promise<{ t2: Uint8Array | null; t3: Uint8Array | null }> {
  return pool.run('offloadSingleEvaluation', { blinded: plan.blinded, d: plan.d, r: plan.r })
}

/** The worker's share of a split single-element proof check (see `planSingleProof`). */
export function poolOffloadSingleProof(pool: WorkerPool, plan: SingleProofPlan, input: Uint8Array, blind: Uint8Array): Promise<SingleProofPart> {
  return pool.run('offloadSingleProof', { plan, input, blind })
}
