/**
 * Worker-thread entry for provider-side BFV evaluation (served by `serveWorker`, driven by
 * `HeEvaluatorPool`), so the ~40 ms of HE work per ciphertext never blocks the event loop.
 *
 * Each worker owns one SEAL context and one HeProvider whose LRU cache keeps consumer public keys
 * loaded by digest: the key bytes travel with every task (a cheap copy), but are parsed and
 * loaded into WASM only the first time a worker sees that digest.
 */
import { serveWorker } from '../util/worker-pool.js'
import { HeProvider, type HeEvalKind, type HeValue } from './threshold.js'

export interface EvaluateTask {
  publicKey: Uint8Array
  digest: string
  queries: Uint8Array[]
  values: HeValue[]
  kind: HeEvalKind
}

let provider: Promise<HeProvider> | undefined
const getProvider = (): Promise<HeProvider> => (provider ??= HeProvider.create())

serveWorker({
  evaluate: async (a: EvaluateTask): Promise<Uint8Array[]> => {
    const p = await getProvider()
    if (!p.hasKey(a.digest)) p.loadKey(a.publicKey, a.digest)
    return p.evaluate(a.digest, a.queries, a.values, a.kind)
  },
  memory: (): NodeJS.MemoryUsage => process.memoryUsage(),
})
