/**
 * Worker-thread entry of `audit verify`'s prechecks (precheck.ts, driven by precheck-pool.ts). The
 * key history is rebuilt here from the same manifests and trust anchor as on the main thread, so
 * each JWS is judged against the same keys; what the manifests themselves are worth is reported by
 * the main thread, not here.
 */
import { createPublicKey } from 'node:crypto'
import { workerData } from 'node:worker_threads'
import { serveWorker } from '../util/worker-pool.js'
import { Findings, keyHistoryOf } from './export-reader.js'
import { precheckJws, precheckLeaves } from './precheck.js'
import type { JwsItem } from './precheck-types.js'

// Each JWS decodes into a few small Buffers (payload, signature, signing input: ~1.2 KB), which
// node:buffer carves from a shared 8 KiB pool, allocating a new pool every ~7 JWS: 3% of a
// one-thread audit's CPU went to those allocations. This thread only audits, and keeps no Buffer
// beyond its batch, so a larger pool costs nothing.
Buffer.poolSize = 1024 * 1024

const init = workerData as { texts: { name: string; jws: string }[]; anchor: Uint8Array }
const anchor = createPublicKey({ key: Buffer.from(init.anchor), format: 'der', type: 'spki' })
const history = keyHistoryOf(init.texts, anchor, new Findings(), { dedupe: false })

serveWorker({
  leaves: (a: { first: number; bytes: Uint8Array; ends: Uint32Array }) => precheckLeaves(a.first, a.bytes, a.ends),
  jws: (items: JwsItem[]) => precheckJws(history, items),
})
