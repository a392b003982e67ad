/**
 * The node's periodic work: signing checkpoints, witnessing peers, housekeeping. Each timer is
 * unref'd (it never keeps the process alive) and a failed run is logged, never thrown.
 */
import type { Logger } from 'pino'

export interface NodeTimerJobs {
  checkpoint: () => Promise<unknown>
  witnessAll: () => Promise<void>
  housekeeping: () => Promise<void>
}

/** Intervals in ms; 0 disables a timer. */
export interface NodeTimerIntervals {
  checkpointEveryMs: number
  witnessEveryMs: number
  housekeepingEveryMs: number
}

export interface NodeTimers {
  stop(): void
}

function every(ms: number, run: () => void): NodeJS.Timeout | undefined {
  if (ms <= 0) return undefined
  const t = setInterval(run, ms)
  t.unref()
  return t
}

export function startTimers(jobs: NodeTimerJobs, ms: NodeTimerIntervals, logger: Logger): NodeTimers {
  const timers = [
    every(ms.checkpointEveryMs, () => { jobs.checkpoint().catch((err: unknown) => logger.error({ err }, 'checkpoint failed')) }),
    // witnessAll logs each peer's failure itself
    every(ms.witnessEveryMs, () => void jobs.witnessAll()),
    every(ms.housekeepingEveryMs, () => { jobs.housekeeping().catch((err: unknown) => logger.error({ err }, 'housekeeping failed')) }),
  ]
  return {
    stop() {
      for (const t of timers) if (t !== undefined) clearInterval(t)
    },
  }
}
