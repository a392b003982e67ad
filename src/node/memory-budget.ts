/**
 * Whether the V8 heap this process may grow to holds a full replay memory (docs/OPERATIONS.md
 * "Memory and latency under sustained load").
 *
 * The in-process replay memory (log/memory-store.ts) costs about 150 bytes of heap per exchange
 * it holds (measured: 300,000 claimed and settled entries, 145-148 bytes each after a full
 * collection on Node 20 and 24, plus 48 bytes of array buffers outside the heap),
 * and at most `limits.replayMaxEntries` are held. A heap limit set lower (`--max-old-space-size`,
 * which the container image sets to keep the resident set small) would end in an out-of-memory
 * crash when traffic fills the replay memory, so the node says so at start-up instead.
 */
import { getHeapStatistics } from 'node:v8'

/** Heap per replay entry: about 147 bytes measured on Node 20 and 24, with room (test/node/memory-budget.test.ts measures it). */
export const REPLAY_ENTRY_HEAP_BYTES = 170
/** Heap a provider uses besides its replay memory under load (measured: about 45 MB live at 630 exchanges/s), with room. */
export const BASE_HEAP_BYTES = 64 * 1024 * 1024

export interface MemoryBudget {
  /** the V8 heap limit, bytes */
  heapLimit: number
  /** what a full replay memory plus the rest needs, bytes */
  needed: number
  fits: boolean
}

/** The budget for `replayMaxEntries` against `heapLimit` (default: this process's V8 limit). */
export function memoryBudget(replayMaxEntries: number, heapLimit = getHeapStatistics().heap_size_limit): MemoryBudget {
  const needed = BASE_HEAP_BYTES + replayMaxEntries * REPLAY_ENTRY_HEAP_BYTES
  return { heapLimit, needed, fits: heapLimit >= needed }
}
