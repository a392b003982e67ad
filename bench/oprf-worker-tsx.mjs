// Worker entry for benchmarks run with tsx: Node 20 does not apply tsx's loader to worker
// threads, so register it here and then load the TypeScript worker module.
import { register } from 'tsx/esm/api'

register()
await import('../src/oprf/oprf-worker.ts')
