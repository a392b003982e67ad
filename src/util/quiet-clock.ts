/**
 * Tells a lone request after a pause from a steady load, for work that may then run on the
 * caller's thread instead of paying two hand-offs to a worker (~0.3 ms each on a small machine):
 * the Ed25519 batcher, the OPRF provider's evaluation and the log store's inline commits use it.
 *
 * `paused()` is true when the previous call, or the end of the last inline work (`restart()`), was
 * more than `ms` ago. Every call restarts the clock, so within a burst or a steady load it is
 * false: that work is never done on the event loop.
 */
export class QuietClock {
  private last = Number.NEGATIVE_INFINITY

  constructor(private readonly ms = 2) {}

  paused(): boolean {
    const t = performance.now()
    const paused = t - this.last > this.ms
    this.last = t
    return paused
  }

  /** Inline work just ended: what waited behind it did not come after a pause. */
  restart(): void {
    this.last = performance.now()
  }
}
