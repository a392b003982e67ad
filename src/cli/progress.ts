/**
 * Progress reporting for long CLI runs (`verinode verify-batch`), always on stderr so stdout stays
 * clean for results and `--json`.
 *
 * On a terminal it redraws one bar line (rows done / total, rate, ETA) at most every
 * `ttyIntervalMs`, moving the cursor up over the previous line with ECMA-48 CUU + EL
 * (`ESC [ 1 A`, `ESC [ 2 K`), since the CLI's stderr sink writes whole lines. Anywhere else (CI
 * logs, files) it writes a plain line at most every `intervalMs`, so a log is not flooded.
 *
 * The total may be an estimate while the input is still being read (`estimated`); it is shown
 * with a `~` then, and as `?` while there is no estimate at all.
 */

export interface ProgressOptions {
  /** what is counted ("rows") */
  unit: string
  tty: boolean
  /** writes one line to stderr */
  write(line: string): void
  now?: () => number
  /** plain mode: at most one line per this many ms (default 5,000) */
  intervalMs?: number
  /** terminal mode: at most one redraw per this many ms (default 100) */
  ttyIntervalMs?: number
  /** width of the bar in characters (default 24) */
  barWidth?: number
}

const CURSOR_UP_ERASE = '\x1b[1A\x1b[2K'

/** `1h02m`, `3m05s`, `12s`, `0.4s` */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?'
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)}s`
  const s = Math.round(ms / 1000)
  if (s < 3600) return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`
}

/** `1,234` */
export const formatCount = (n: number): string => Math.round(n).toLocaleString('en-US')

export class Progress {
  private readonly o: Required<Omit<ProgressOptions, 'now'>> & { now: () => number }
  private readonly started: number
  private last = -Infinity
  private drawn = false

  constructor(opts: ProgressOptions) {
    this.o = { intervalMs: 5000, ttyIntervalMs: 100, barWidth: 24, now: Date.now, ...opts }
    this.started = this.o.now()
  }

  /** Reports progress; draws only if the interval for this kind of output has passed. */
  update(done: number, total: number | undefined, estimated = false): void {
    const t = this.o.now()
    if (t - this.last < (this.o.tty ? this.o.ttyIntervalMs : this.o.intervalMs)) return
    this.last = t
    this.draw(done, total, estimated, t)
  }

  /** Draws the final state (always, whatever the interval). */
  finish(done: number, total: number): void {
    const t = this.o.now()
    // Plain mode: the summary that follows says it all; only a terminal needs its bar completed.
    if (this.o.tty) this.draw(done, total, false, t)
  }

  /** The text of one progress line (without the terminal control sequences). */
  line(done: number, total: number | undefined, estimated: boolean, at: number): string {
    const elapsed = Math.max(at - this.started, 1)
    const rate = (done * 1000) / elapsed
    const frac = total === undefined ? 0 : total > 0 ? Math.min(done / total, 1) : 1
    const pct = `${total === undefined ? '?' : Math.floor(frac * 100)}%`.padStart(4)
    const eta = total === undefined ? '?' : done >= total ? '0s' : rate > 0 ? formatDuration(((total - done) / rate) * 1000) : '?'
    const counts = `${formatCount(done)}/${total === undefined ? '?' : `${estimated ? '~' : ''}${formatCount(total)}`} ${this.o.unit}`
    const stats = `${formatCount(rate)} ${this.o.unit}/s, ETA ${eta}`
    if (!this.o.tty) return `progress: ${counts} (${pct.trim()}), ${stats}`
    const filled = Math.round(frac * this.o.barWidth)
    return `[${'#'.repeat(filled)}${'.'.repeat(this.o.barWidth - filled)}] ${pct} ${counts}  ${stats}`
  }

  private draw(done: number, total: number | undefined, estimated: boolean, at: number): void {
    const text = this.line(done, total, estimated, at)
    if (this.o.tty) {
      this.o.write(`${this.drawn ? CURSOR_UP_ERASE : ''}${text}`)
      this.drawn = true
    } else {
      this.o.write(text)
    }
  }
}
