/**
 * Prometheus metrics (prom-client) with a registry per node, so several nodes in one process (tests,
 * the demo) do not mix. Labels are member ids, service ids, modes and decision codes: never a subject.
 */
import { Registry, Counter, Gauge, Histogram, collectDefaultMetrics } from 'prom-client'

export class Metrics {
  readonly registry = new Registry()
  readonly exchanges: Counter<'role' | 'service' | 'mode' | 'decision'>
  readonly exchangeSeconds: Histogram<'role' | 'service' | 'mode'>
  readonly logCommitSeconds: Histogram<never>
  readonly rejected: Counter<'code'>
  readonly forkAlerts: Counter<never>
  readonly logClosed: Gauge<never>
  readonly logClosedSeconds: Counter<never>
  readonly logReopens: Counter<never>
  readonly peerUp: Gauge<'peer'>

  /**
   * `defaultMetrics`: also prom-client's process metrics (process_resident_memory_bytes,
   * nodejs_heap_size_used_bytes, nodejs_eventloop_lag_seconds, GC), for the process this node runs in.
   */
  constructor(member: string, defaultMetrics = false) {
    this.registry.setDefaultLabels({ member })
    if (defaultMetrics) collectDefaultMetrics({ register: this.registry })
    this.exchanges = new Counter({
      name: 'verinode_exchanges_total',
      help: 'Exchanges answered (provider) or completed (consumer), by service, mode and decision',
      labelNames: ['role', 'service', 'mode', 'decision'],
      registers: [this.registry],
    })
    this.exchangeSeconds = new Histogram({
      name: 'verinode_exchange_duration_seconds',
      help: 'Time from request arrival to released response (provider) or round trip (consumer)',
      labelNames: ['role', 'service', 'mode'],
      buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5],
      registers: [this.registry],
    })
    this.logCommitSeconds = new Histogram({
      name: 'verinode_log_commit_seconds',
      help: 'Time an append waits until its group commit is durable',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5],
      registers: [this.registry],
    })
    this.forkAlerts = new Counter({
      name: 'verinode_peer_fork_alerts_total',
      help: 'Times a peer showed two validly signed, inconsistent checkpoints (kept as evidence)',
      registers: [this.registry],
    })
    this.logClosed = new Gauge({
      name: 'verinode_log_closed',
      help: '1 while the log refuses writes (fail closed: exchanges answer 503), else 0',
      registers: [this.registry],
    })
    this.logClosed.set(0)
    this.logClosedSeconds = new Counter({
      name: 'verinode_log_closed_seconds_total',
      help: 'Seconds the log refused writes, added when it reopens',
      registers: [this.registry],
    })
    this.logReopens = new Counter({
      name: 'verinode_log_reopens_total',
      help: 'Times the log reopened by itself after refusing writes',
      registers: [this.registry],
    })
    this.peerUp = new Gauge({
      name: 'verinode_peer_up',
      help: '1 when the last request to this peer (witnessing or an exchange) got an HTTP answer, 0 when it could not be reached',
      labelNames: ['peer'],
      registers: [this.registry],
    })
    this.rejected = new Counter({
      name: 'verinode_requests_rejected_total',
      help: 'Requests refused before authentication or validation completed, by error code',
      labelNames: ['code'],
      registers: [this.registry],
    })
  }

  /**
   * What holds memory or queues, read when /metrics is scraped: entries in the replay memory, exchanges
   * in progress per role (each bounded by `limits.inFlight`), and appends waiting for a group commit.
   */
  watch(read: {
    replayEntries: () => number
    inFlight: (role: 'provider' | 'consumer') => number
    logQueued: () => number
    /** the manifest loaded (expired or not): its expiry, ms since the epoch; undefined before one loads */
    manifestExp?: () => number | undefined
    /** the readiness checks' verdict (GET /readyz) */
    ready?: () => Promise<boolean>
    /** each agreement's use of its daily quota today: consumer, agreement id, used and limit */
    quotas?: () => Promise<{ agreement: string; consumer: string; used: number; limit: number }[]>
    /** this provider's applications and disputes past a deadline (first review, answer, dispute answer) */
    governanceOverdue?: () => { review: number; answer: number; dispute: number }
  }): void {
    const { manifestExp, ready, quotas } = read
    if (manifestExp !== undefined) {
      new Gauge({
        name: 'verinode_manifest_expiry_timestamp_seconds',
        help: 'Expiry (exp) of the federation manifest loaded, seconds since the epoch',
        registers: [this.registry],
        collect() {
          const exp = manifestExp()
          if (exp !== undefined) this.set(exp / 1000)
        },
      })
    }
    if (ready !== undefined) {
      new Gauge({
        name: 'verinode_ready',
        help: '1 when every readiness check passes (GET /readyz answers 200), else 0',
        registers: [this.registry],
        async collect() {
          this.set((await ready().catch(() => false)) ? 1 : 0)
        },
      })
    }
    if (quotas !== undefined) {
      new Gauge({
        name: 'verinode_quota_used_ratio',
        help: "Share of an agreement's daily quota used today (UTC), by agreement and consumer (provider side)",
        labelNames: ['agreement', 'consumer'],
        registers: [this.registry],
        async collect() {
          this.reset()
          for (const q of await quotas()) this.set({ agreement: q.agreement, consumer: q.consumer }, q.limit > 0 ? q.used / q.limit : 1)
        },
      })
    }
    const overdue = read.governanceOverdue
    if (overdue !== undefined) {
      new Gauge({
        name: 'verinode_governance_overdue',
        help: 'Applications and disputes addressed to this node past their deadline in working days, by deadline (review: first review of an application, answer: its decision, dispute: a dispute\'s resolution)',
        labelNames: ['deadline'],
        registers: [this.registry],
        collect() {
          const o = overdue()
          this.set({ deadline: 'review' }, o.review)
          this.set({ deadline: 'answer' }, o.answer)
          this.set({ deadline: 'dispute' }, o.dispute)
        },
      })
    }
    new Gauge({
      name: 'verinode_replay_entries',
      help: 'Exchanges held in the provider replay memory (bounded by limits.replayMaxEntries)',
      registers: [this.registry],
      collect() {
        this.set(read.replayEntries())
      },
    })
    new Gauge({
      name: 'verinode_exchanges_in_flight',
      help: 'Exchanges in progress, by role (bounded by limits.inFlight each)',
      labelNames: ['role'],
      registers: [this.registry],
      collect() {
        this.set({ role: 'provider' }, read.inFlight('provider'))
        this.set({ role: 'consumer' }, read.inFlight('consumer'))
      },
    })
    new Gauge({
      name: 'verinode_log_queued_appends',
      help: 'Appends waiting for their group commit',
      registers: [this.registry],
      collect() {
        this.set(read.logQueued())
      },
    })
  }

  /**
   * Latency percentiles per service and mode for `role`, in ms, from the exchange-duration histogram
   * (since the node started): each percentile is the upper bound of its bucket, null when above the
   * last one (5 s). The provider's is the time from a request's arrival to its released response.
   */
  async exchangeLatency(role: 'provider' | 'consumer'): Promise<ServiceLatency[]> {
    const buckets = new Map<string, { service: string; mode: string; le: number[]; n: number[] }>()
    for (const v of (await this.exchangeSeconds.get()).values) {
      if (v.metricName !== 'verinode_exchange_duration_seconds_bucket' || v.labels.role !== role) continue
      const service = String(v.labels.service)
      const mode = String(v.labels.mode)
      const key = `${service} ${mode}`
      const b = buckets.get(key) ?? { service, mode, le: [], n: [] }
      buckets.set(key, b)
      const le = (v.labels as Record<string, string | number | undefined>)['le']
      b.le.push(le === '+Inf' ? Infinity : Number(le))
      b.n.push(v.value)
    }
    const out: ServiceLatency[] = []
    for (const b of [...buckets.values()].sort((x, y) => (x.service === y.service ? x.mode.localeCompare(y.mode) : x.service.localeCompare(y.service)))) {
      const order = b.le.map((le, i) => [le, b.n[i] as number] as const).sort((x, y) => x[0] - y[0])
      const count = order[order.length - 1]?.[1] ?? 0
      if (count === 0) continue
      // cumulative counts: the first bucket holding the q-th observation
      const pct = (q: number): number | null => {
        const le = order.find(([, n]) => n >= Math.ceil(q * count))?.[0] ?? Infinity
        return Number.isFinite(le) ? Math.round(le * 1000 * 1000) / 1000 : null
      }
      out.push({ service: b.service, mode: b.mode, count, p50: pct(0.5), p90: pct(0.9), p99: pct(0.99) })
    }
    return out
  }
}

/** Latency percentiles of one service and mode, ms (null: above the histogram's last bucket). */
export interface ServiceLatency {
  service: string
  mode: string
  count: number
  p50: number | null
  p90: number | null
  p99: number | null
}
