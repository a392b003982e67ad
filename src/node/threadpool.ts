/**
 * How many threads libuv's pool gets in a node process (UV_THREADPOOL_SIZE), unless the operator
 * sets the variable.
 *
 * libuv's default of 4 pool threads beside the event loop, the log writer and the Ed25519 workers
 * oversubscribes a small machine: when the exchange path still signed and verified on libuv's pool,
 * 4 busy pool threads on 2 cores took CPU from the event loop and cost ~30% of plain-mode
 * throughput (bench:plain). The provider's Ed25519 now has its own workers
 * (src/crypto/ed25519-batch.ts); the pool keeps file I/O, DNS and the callback-form fallbacks.
 * One pool thread per core left after the event loop; 4 stays the ceiling (libuv's default).
 *
 * The variable must be set before the pool's first use, so `src/cli/bin.ts` sets it before it
 * loads anything else. This module imports nothing for that reason.
 */
export function defaultThreadpoolSize(cores: number): number {
  return Math.max(1, Math.min(4, Math.floor(cores) - 1))
}
