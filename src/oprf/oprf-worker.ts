/**
 * Worker-thread module for OPRF work, served by `serveWorker` (src/util/worker-pool.ts).
 *
 * The provider's heavy operations (tag-set Evaluate, BlindEvaluate with its batch proof) and the
 * consumer's (Blind, Finalize with proof verification) run here so the event loop that answers
 * HTTP requests is never blocked. Every op is a thin call into src/crypto/oprf.ts: the pool path
 * and the in-thread path compute the same bytes (test/oprf/oprf-pool.test.ts checks it).
 */
import { serveWorker } from '../util/worker-pool.js'
import {
  blind,
  blindEvaluate,
  blindEvaluateBatch,
  evaluateMany,
  finalizeBatch,
  offloadSingleEvaluation,
  offloadSingleProof,
  type SingleProofPlan,
  type OprfMode,
} from '../crypto/oprf.js'
import { evaluatePrefixes } from './prefixes.js'
import { evaluateRows, type RowSpec } from './tagset-rows.js'

interface KeyArgs {
  secretKey: Uint8Array
}

serveWorker({
  /** Tag-set chunk: the first 8 bytes of Evaluate(skS, input) for each input, packed. */
  evaluatePrefixes: (a: KeyArgs & { inputs: Uint8Array[]; mode?: OprfMode }) => evaluatePrefixes(a.secretKey, a.inputs, a.mode),
  /** Tag-set chunk of enumerated rows: canonicalized, evaluated and shard-hashed here (src/oprf/tagset-rows.ts). */
  evaluateRows: (a: KeyArgs & { spec: RowSpec; packed: string }) => evaluateRows(a.secretKey, a.spec, a.packed),
  /** Full 64-byte Evaluate outputs. */
  evaluate: (a: KeyArgs & { inputs: Uint8Array[]; mode?: OprfMode }) => evaluateMany(a.secretKey, a.inputs, a.mode),
  /** OPRF-mode BlindEvaluate (no proof). */
  blindEvaluate: (a: KeyArgs & { blindedElements: Uint8Array[]; maxBatch?: number }) =>
    blindEvaluate(a.secretKey, a.blindedElements, a.maxBatch === undefined ? {} : { maxBatch: a.maxBatch }),
  /** VOPRF BlindEvaluate with one batch proof. */
  blindEvaluateBatch: (a: KeyArgs & { publicKey: Uint8Array; blindedElements: Uint8Array[]; maxBatch?: number }) =>
    blindEvaluateBatch(a.secretKey, a.publicKey, a.blindedElements, a.maxBatch === undefined ? {} : { maxBatch: a.maxBatch }),
  /** Provider side, single element: the worker's share of a split proof (see planSingleEvaluation). */
  offloadSingleEvaluation: (a: { blinded: Uint8Array; d: Uint8Array; r: Uint8Array }) => {
    try {
      return offloadSingleEvaluation(a)
    } finally {
      a.r.fill(0) // this thread's copy of the proof's randomness
    }
  },
  /** Consumer side: Blind. */
  blind: (a: { inputs: Uint8Array[]; mode?: OprfMode; maxBatch?: number }) => {
    const opts: { mode?: OprfMode; maxBatch?: number } = {}
    if (a.mode !== undefined) opts.mode = a.mode
    if (a.maxBatch !== undefined) opts.maxBatch = a.maxBatch
    return blind(a.inputs, opts)
  },
  /** Consumer side, single element: the worker's share of a split proof check (see planSingleProof). */
  offloadSingleProof: (a: { plan: SingleProofPlan; input: Uint8Array; blind: Uint8Array }) => offloadSingleProof(a.plan, a.input, a.blind),
  /** Consumer side: verify the batch proof, then Finalize. */
  finalizeBatch: (a: {
    inputs: Uint8Array[]
    blinds: Uint8Array[]
    evaluatedElements: Uint8Array[]
    blindedElements: Uint8Array[]
    publicKey: Uint8Array
    proof: Uint8Array
    maxBatch?: number
  }) =>
    finalizeBatch(a.inputs, a.blinds, a.evaluatedElements, a.blindedElements, a.publicKey, a.proof, a.maxBatch === undefined ? {} : { maxBatch: a.maxBatch }),
})
