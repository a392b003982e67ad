/**
 * Daily quotas per agreement (docs/DESIGN.md "Authorization": daily quota; "oprf": quotas bound
 * enumeration).
 *
 * Counts live in memory per (agreement id, UTC day). `tryConsume` is an atomic check-and-add: a
 * batch of n subjects either fits wholly under the limit and is counted, or is refused and nothing
 * is counted (a batch is never half-served). JavaScript runs it without interleaving, so one node
 * process needs no lock; replicas behind a load balancer share their counts in PostgreSQL
 * (src/log/pg-store.ts `PgQuotaStore`).
 *
 * After a restart the node rebuilds the counts by replaying the decision entries of its log:
 * `restore` takes the minimal record `{ agreementId, day, count }` of every permit.
 *
 * `QuotaStore` is the interface the provider's decisions count through (`decideAsync`): the
 * embedded backend keeps a `QuotaCounter` per process (src/log/memory-store.ts); a backend shared
 * by several replicas keeps the counts where all of them see them.
 */

/** What a permit contributes to the counter; the node logs it with every permit decision. */
export interface QuotaRecord {
  agreementId: string
  /** UTC day, YYYY-MM-DD */
  day: string
  /** subjects or evaluations counted */
  count: number
}

export type ConsumeResult =
  | { ok: true; used: number; remaining: number }
  | { ok: false; used: number; remaining: number }

/** The UTC day (YYYY-MM-DD) of an instant in ms. @throws RangeError naming `at` */
export function utcDay(at: number): string {
  if (!Number.isSafeInteger(at) || at < 0) throw new RangeError('at: expected a non-negative integer of ms')
  // JavaScript time has no leap seconds: every UTC day is exactly DAY_MS long, so the day number
  // identifies the date and the last one formatted can be reused (this runs on every exchange).
  const n = Math.floor(at / DAY_MS)
  if (n === lastDay.n) return lastDay.s
  const d = new Date(at)
  if (Number.isNaN(d.getTime())) throw new RangeError('at: outside the representable range')
  const s = d.toISOString().slice(0, 10)
  lastDay.n = n
  lastDay.s = s
  return s
}
const DAY_MS = 86_400_000
const lastDay = { n: -1, s: '' }

const DAY_RE = /^[0-9]{4}-[0-9]{2}-[0-9]{2}$/

function checkCount(n: number, field: string): void {
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`${field}: expected a positive integer`)
}

/**
 * Where a node's quota counts live. Every count a provider's decision makes goes through it.
 * `tryConsume` must be atomic across everyone sharing the store: a batch fits wholly and is
 * counted, or nothing is counted.
 */
export interface QuotaStore {
  /** Atomically counts `n` units of (agreement, day) if `used + n <= limit`; otherwise counts nothing. */
  tryConsume(agreementId: string, day: string, n: number, limit: number): Promise<ConsumeResult>
  /** Units already counted for (agreement, day). */
  used(agreementId: string, day: string): Promise<number>
  /**
   * Start-up: adds the permits replayed from the node's own log (see `QuotaCounter.restore`). A
   * store that keeps its counts durably and shared may ignore it.
   */
  restore(records: Iterable<QuotaRecord>, onlyDay?: string): Promise<void>
}

export class QuotaCounter {
  readonly #counts = new Map<string, number>()
  /** `fork`: the counter read through for the keys this one has not counted */
  readonly #base: QuotaCounter | undefined

  constructor(base?: QuotaCounter) {
    this.#base = base
  }

  #get(key: string): number {
    const own = this.#counts.get(key)
    if (own !== undefined) return own
    return this.#base === undefined ? 0 : this.#base.#get(key)
  }

  static #key(agreementId: string, day: string): string {
    return `${day}\u0000${agreementId}`
  }

  /** Units already counted for (agreement, day). */
  used(agreementId: string, day: string): number {
    return this.#get(QuotaCounter.#key(agreementId, day))
  }

  /** Atomically counts `n` units if `used + n <= limit`; otherwise counts nothing. */
  tryConsume(agreementId: string, day: string, n: number, limit: number): ConsumeResult {
    checkCount(n, 'n')
    checkCount(limit, 'limit')
    if (!DAY_RE.test(day)) throw new RangeError('day: expected YYYY-MM-DD')
    const key = QuotaCounter.#key(agreementId, day)
    const used = this.#get(key)
    if (used + n > limit) return { ok: false, used, remaining: Math.max(0, limit - used) }
    this.#counts.set(key, used + n)
    return { ok: true, used: used + n, remaining: limit - used - n }
  }

  /**
   * Adds replayed permit records (from the log's decision entries). With `onlyDay`, records of
   * other days are skipped, which is what a restarting node wants: only today's counts matter.
   */
  restore(records: Iterable<QuotaRecord>, onlyDay?: string): void {
    for (const r of records) {
      checkCount(r.count, 'record.count')
      if (!DAY_RE.test(r.day)) throw new RangeError('record.day: expected YYYY-MM-DD')
      if (onlyDay !== undefined && r.day !== onlyDay) continue
      const key = QuotaCounter.#key(r.agreementId, r.day)
      this.#counts.set(key, this.#get(key) + r.count)
    }
  }

  /** Drops days before `day` so the map does not grow without bound. */
  prune(beforeDay: string): void {
    if (this.#base !== undefined) throw new RangeError('prune: not on a fork')
    for (const key of this.#counts.keys()) if (key.slice(0, 10) < beforeDay) this.#counts.delete(key)
  }

  /** A copy of the current counts (a fork's with its base's), for tests and the auditor's replay. */
  snapshot(): QuotaRecord[] {
    const all = new Map(this.#base === undefined ? [] : this.#base.snapshot().map((r) => [QuotaCounter.#key(r.agreementId, r.day), r.count]))
    for (const [key, count] of this.#counts) all.set(key, count)
    return [...all].map(([key, count]) => ({ agreementId: key.slice(11), day: key.slice(0, 10), count }))
  }

  /**
   * A counter that starts with this one's counts without copying them: it reads through to this
   * one and counts into its own map. What `decide` needs for a replay that must not touch the
   * counter (the auditor runs one per decision; `clone` would copy every count each time). Valid
   * while this counter does not change; a fork of a fork is not needed and not supported.
   */
  fork(): QuotaCounter {
    return new QuotaCounter(this)
  }

  /** An independent counter with the same counts (replay without touching the live one). */
  clone(): QuotaCounter {
    const c = new QuotaCounter()
    c.restore(this.snapshot())
    return c
  }
}
