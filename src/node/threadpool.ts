/**
 * How many threads libuv's pool gets in a node process (UV_THREADPOOL_SIZE), unless the operator
 * sets the variable.
 *
 * The exchange path signs and verifies Ed25519 on libuv's pool (node:crypto's callback form) so the
 * event loop can serve other requests meanwhile. libuv's default of 4 pool threads beside the
 * event loop and the log writer oversubscribes a small machine: on 2 cores, 4 busy pool threads
 * took CPU from the event loop, which is the bottleneck, and cost ~30% of plain-mode throughput
 * (bench:plain). One pool thread per core left after the event loop keeps every core busy without
 * starving it; 4 stays the ceiling (libuv's default).
 *
 * The variable must be set before the pool's first use, so `src/cli/bin.ts` sets it before it
 * loads anything else. This module imports nothing for that reason.
 */
export function defaultThreadpoolSize(cores: number): number {
  return Math.max(1, Math.min(4, Math.floor(cores) - 1))
}
