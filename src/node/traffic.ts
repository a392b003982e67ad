/**
 * Traffic counts for the console and `GET /local/v1/status/traffic`: exchanges per minute, hour
 * and day by role, service, peer, mode and decision, and latency percentiles, aggregated
 * incrementally from the node's own log. Each `refresh()` reads only the leaves appended since the
 * last one (a tail cursor), so a page load costs the new entries, never the whole log; the node
 * starts one catch-up read in the background at start-up.
 *
 * What counts as one exchange (the same rule a reader of the log applies, see docs/CONSOLE.md):
 * on the provider side a `response-out` (decision = its status, `ok` or `denied`), joined on
 * (consumer, xid) to its `request-in` for service and mode; on the consumer side a `response-in`
 * (decision = its status: ok, denied, error, refused), joined on (provider, xid) to its
 * `request-out`. Latency is the time between the two records. Only ids, counts and times are kept.
 */
import { MAX_ENTRIES_PER_READ, type LogStore } from '../log/storage.js'
import { parseLeaf } from '../log/node-log.js'
import type { LogRecord } from '../log/records.js'

export type TrafficStep = 'minute' | 'hour' | 'day'
export type TrafficDimension = 'service' | 'peer' | 'mode' | 'decision' | 'role'

const STEP_MS: Record<TrafficStep, number> = { minute: 60_000, hour: 3_600_000, day: 86_400_000 }
/** How long buckets of each step are kept (minutes for two days, hours for 62 days, days for ever). */
const KEEP_MS: Record<TrafficStep, number> = { minute: 2 * 86_400_000, hour: 62 * 86_400_000, day: Number.POSITIVE_INFINITY }
/** A request record whose answer never came is forgotten after this long. */
const PENDING_MS = 10 * 60_000
/** Latency histogram: bucket i holds latencies in [2^(i/4) - 1, 2^((i+1)/4) - 1) ms, up to ~10 min. */
const LAT_BINS = 80

const binOf = (ms: number): number => Math.min(LAT_BINS - 1, Math.max(0, Math.floor(4 * Math.log2(Math.max(0, ms) + 1))))
const binUpper = (i: number): number => Math.round(2 ** ((i + 1) / 4) - 1)

interface Pending {
  at: number
  svc: string
  mode: string
}

interface Bucket {
  /** key `${role}\t${svc}\t${peer}\t${mode}\t${decision}` → exchanges */
  counts: Map<string, number>
  /** role → latency histogram */
  lat: Map<string, Uint32Array>
}

export interface TrafficSeries {
  step: TrafficStep
  by: TrafficDimension
  /** bucket start times (ms since the epoch), oldest first, every step present */
  times: number[]
  /** one array of counts per value of the dimension, aligned with `times` */
  series: { name: string; counts: number[] }[]
  total: number
}

export interface TrafficSummary {
  /** log leaves read so far (the tail cursor) */
  leaves: number
  /** exchanges counted, by role */
  exchanges: { provider: number; consumer: number }
  /** latency percentiles (ms, upper bound of the histogram bin) per role over the whole window kept by minute (2 days) */
  latency: { role: string; count: number; p50: number; p90: number; p99: number }[]
  /** fork-evidence records seen */
  forkEvidence: number
  /** the newest fork-evidence record: its leaf index and peer */
  lastFork?: { index: number; peer: string; at: number } | undefined
  /** `peer-checkpoint` records: the last one per peer (size and time) */
  peerCheckpoints: Record<string, { size: number; at: number; index: number }>
}

export type TrafficStore = Pick<LogStore, 'size' | 'entries'>

export class TrafficStats {
  #cursor = 0
  #busy: Promise<void> | undefined
  readonly #pending = new Map<string, Pending>()
  readonly #buckets: Record<TrafficStep, Map<number, Bucket>> = { minute: new Map(), hour: new Map(), day: new Map() }
  readonly #totals = { provider: 0, consumer: 0 }
  #forks = 0
  #lastFork: TrafficSummary['lastFork']
  readonly #peerCps: TrafficSummary['peerCheckpoints'] = {}
  #newest = 0

  constructor(private readonly store: TrafficStore) {}

  /** Reads the leaves appended since the last call (concurrent callers share one read). */
  refresh(): Promise<void> {
    this.#busy ??= this.#catchUp().finally(() => { this.#busy = undefined })
    return this.#busy
  }

  /** How many leaves have been read. */
  get cursor(): number {
    return this.#cursor
  }

  async #catchUp(): Promise<void> {
    const size = await this.store.size()
    while (this.#cursor < size) {
      const end = Math.min(size, this.#cursor + MAX_ENTRIES_PER_READ)
      const leaves = await this.store.entries(this.#cursor, end)
      for (let i = 0; i < leaves.length; i++) this.#fold(parseLeaf(leaves[i] as Uint8Array), this.#cursor + i)
      this.#cursor = end
    }
    this.#prune()
  }

  #fold(r: LogRecord, index: number): void {
    if (r.at > this.#newest) this.#newest = r.at
    switch (r.t) {
      case 'request-in':
        this.#pending.set(`p\t${r.iss}\t${r.xid}`, { at: r.at, svc: r.svc, mode: r.mode })
        break
      case 'response-out': {
        const k = `p\t${r.aud}\t${r.xid}`
        const p = this.#pending.get(k)
        if (p === undefined) break
        this.#pending.delete(k)
        this.#count('provider', p.svc, r.aud, p.mode, r.status, r.at, r.at - p.at)
        break
      }
      case 'request-out':
        this.#pending.set(`c\t${r.aud}\t${r.xid}`, { at: r.at, svc: r.svc, mode: r.mode })
        break
      case 'response-in': {
        const k = `c\t${r.iss}\t${r.xid}`
        const p = this.#pending.get(k)
        if (p === undefined) break
        this.#pending.delete(k)
        this.#count('consumer', p.svc, r.iss, p.mode, r.status, r.at, r.at - p.at)
        break
      }
      case 'fork-evidence':
        this.#forks++
        this.#lastFork = { index, peer: r.peer, at: r.at }
        break
      case 'peer-checkpoint':
        this.#peerCps[r.peer] = { size: r.size, at: r.at, index }
        break
      default:
        break
    }
  }

  #count(role: 'provider' | 'consumer', svc: string, peer: string, mode: string, decision: string, at: number, ms: number): void {
    this.#totals[role]++
    const key = `${role}\t${svc}\t${peer}\t${mode}\t${decision}`
    for (const step of ['minute', 'hour', 'day'] as const) {
      const t = at - (at % STEP_MS[step])
      let b = this.#buckets[step].get(t)
      if (b === undefined) {
        b = { counts: new Map(), lat: new Map() }
        this.#buckets[step].set(t, b)
      }
      b.counts.set(key, (b.counts.get(key) ?? 0) + 1)
      if (step === 'minute') {
        let h = b.lat.get(role)
        if (h === undefined) {
          h = new Uint32Array(LAT_BINS)
          b.lat.set(role, h)
        }
        h[binOf(ms)]!++
      }
    }
  }

  #prune(): void {
    for (const step of ['minute', 'hour'] as const) {
      const cut = this.#newest - KEEP_MS[step]
      for (const t of this.#buckets[step].keys()) if (t < cut) this.#buckets[step].delete(t)
    }
    const cut = this.#newest - PENDING_MS
    for (const [k, p] of this.#pending) if (p.at < cut) this.#pending.delete(k)
  }

  /**
   * Exchanges per `step` over the `points` buckets ending with the one holding `until`, split by
   * `by`; `role` keeps one side only.
   */
  series(step: TrafficStep, by: TrafficDimension, points: number, until: number, role?: 'provider' | 'consumer'): TrafficSeries {
    const ms = STEP_MS[step]
    const last = until - (until % ms)
    const times = Array.from({ length: points }, (_, i) => last - (points - 1 - i) * ms)
    const col = { role: 0, service: 1, peer: 2, mode: 3, decision: 4 }[by]
    const byName = new Map<string, number[]>()
    let total = 0
    times.forEach((t, i) => {
      const b = this.#buckets[step].get(t)
      if (b === undefined) return
      for (const [key, n] of b.counts) {
        const parts = key.split('\t')
        if (role !== undefined && parts[0] !== role) continue
        const name = parts[col] as string
        let arr = byName.get(name)
        if (arr === undefined) {
          arr = new Array<number>(points).fill(0)
          byName.set(name, arr)
        }
        arr[i]! += n
        total += n
      }
    })
    const series = [...byName].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([name, counts]) => ({ name, counts }))
    return { step, by, times, series, total }
  }

  summary(): TrafficSummary {
    const hist = new Map<string, Uint32Array>()
    for (const b of this.#buckets.minute.values()) {
      for (const [role, h] of b.lat) {
        let acc = hist.get(role)
        if (acc === undefined) {
          acc = new Uint32Array(LAT_BINS)
          hist.set(role, acc)
        }
        for (let i = 0; i < LAT_BINS; i++) acc[i]! += h[i]!
      }
    }
    const latency = [...hist].sort(([a], [b]) => a.localeCompare(b)).map(([role, h]) => {
      const count = h.reduce((s, n) => s + n, 0)
      const pct = (q: number): number => {
        const want = Math.ceil(q * count)
        let seen = 0
        for (let i = 0; i < LAT_BINS; i++) {
          seen += h[i]!
          if (seen >= want && seen > 0) return binUpper(i)
        }
        return 0
      }
      return { role, count, p50: pct(0.5), p90: pct(0.9), p99: pct(0.99) }
    })
    return {
      leaves: this.#cursor,
      exchanges: { ...this.#totals },
      latency,
      forkEvidence: this.#forks,
      lastFork: this.#lastFork,
      peerCheckpoints: { ...this.#peerCps },
    }
  }
}
