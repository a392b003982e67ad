/**
 * What the console and `GET /local/v1/status/*` show about a running node: readiness and each
 * check, the manifest, key and certificate windows, the log and its last checkpoint with the
 * witnesses that cosigned it, alerts, traffic (./traffic.ts), agreements with today's quota use,
 * and the federation's members. Counts, ids, digests and times only: no personal data.
 */
import { VnError } from '../errors.js'
import { parseLeaf } from '../log/node-log.js'
import type { FederationHolder } from '../federation/federation.js'
import { parseCheckpoint, parseNote } from '../log/checkpoint.js'
import type { LogStore } from '../log/storage.js'
import type { Agreement } from '../policy/agreements.js'
import { utcDay, type QuotaStore } from '../policy/quota.js'
import type { TrafficDimension, TrafficSeries, TrafficStats, TrafficStep, TrafficSummary } from './traffic.js'
import type { PeerLogs } from './witness.js'
import type { ServiceLatency } from './metrics.js'

/** A quota is "nearly exhausted" from this share of the daily limit on. */
const QUOTA_ALERT_SHARE = 0.8

/** GET /readyz's answer (the same shape as ReadyCheck in ./types.ts, which imports this file). */
interface ReadyCheck {
  ok: boolean
  checks: Record<string, { ok: boolean; detail?: string }>
}

export interface Alert {
  kind: 'fork-evidence' | 'peer-unreachable' | 'quota-nearly-exhausted' | 'not-ready'
  /** the peer, agreement or check it is about */
  subject: string
  /** a leaf index when it names one */
  index?: number
}

export interface Overview {
  member: string
  now: number
  ready: ReadyCheck
  manifest: { seq: number; exp: number; federation: string } | null
  keys: { kind: 'message' | 'log'; kid: string; nbf: number; exp: number | null }[]
  certificate: { notAfter: number; pin: string } | null
  log: { size: number; checkpoint: { size: number; root: string; signers: string[]; cosigners: string[] } | null }
  traffic: TrafficSummary
  alerts: Alert[]
}

export interface AgreementStatus {
  id: string
  consumer: string
  services: string[]
  purposes: string[]
  modes: string[]
  validFrom: string
  validUntil: string
  /** valid at `now` */
  inForce: boolean
  day: string
  used: number
  dailyQuota: number
}

export interface PeerStatus {
  id: string
  name: string
  role: string
  endpoint: string | null
  tlsPins: string[]
  messageKids: string[]
  logKids: string[]
  /** 1: the last call or witnessing reached it, 0: it failed, null: not tried since start */
  up: number | null
  /** the last checkpoint of its log this node verified and cosigned */
  lastCosigned: { size: number; at: number | null; root: string } | null
}

export interface NodeStatus {
  overview(): Promise<Overview>
  /** the series, the summary, and the provider's latency per service and mode since the node started (its metrics histogram) */
  traffic(step: TrafficStep, by: TrafficDimension, points: number, role?: 'provider' | 'consumer'): Promise<TrafficSeries & { summary: TrafficSummary; providerLatency: ServiceLatency[] }>
  agreements(): Promise<AgreementStatus[]>
  peers(): Promise<{ federation: string; seq: number; self: string; members: PeerStatus[] }>
  /** one record of this node's log (records hold ids, digests and counts only: docs/PROTOCOL.md) */
  entry(index: number): Promise<Record<string, unknown>>
}

export interface StatusDeps {
  self: string
  federation: FederationHolder
  store: Pick<LogStore, 'size' | 'latestCheckpoint' | 'leaf'>
  traffic: TrafficStats
  /** the agreements in force now (they change with governance steps) */
  agreements: () => readonly Agreement[]
  quotas: Pick<QuotaStore, 'used'>
  ready: () => Promise<ReadyCheck>
  peerLogs: Pick<PeerLogs, 'lastSeen'>
  /** the node's log origin (its own signature line on checkpoints) */
  origin: string
  tls: { notAfter: number; pin: string } | undefined
  /** the last known reachability of each peer (from the metrics gauge) */
  peerUp: (peer: string) => Promise<number | null>
  /** latency percentiles per service and mode as provider (request arrival to released response), from the metrics */
  providerLatency: () => Promise<ServiceLatency[]>
  now: () => number
}

const b64 = (u: Uint8Array): string => Buffer.from(u).toString('base64')

export function nodeStatus(d: StatusDeps): NodeStatus {
  const agreementStatus = async (): Promise<AgreementStatus[]> => {
    const now = d.now()
    const day = utcDay(now)
    return Promise.all(d.agreements().map(async (a) => ({
      id: a.id,
      consumer: a.consumer,
      services: [...a.services],
      purposes: [...a.purposes],
      modes: [...a.modes],
      validFrom: a.validFrom,
      validUntil: a.validUntil,
      inForce: Date.parse(a.validFrom) <= now && now < Date.parse(a.validUntil),
      day,
      used: await d.quotas.used(a.id, day),
      dailyQuota: a.dailyQuota,
    })))
  }

  const peers = async (): Promise<Awaited<ReturnType<NodeStatus['peers']>>> => {
    const f = d.federation.get(d.now())
    const members = await Promise.all(f.members().map(async (m): Promise<PeerStatus> => {
      const seen = m.id === d.self ? undefined : d.peerLogs.lastSeen(m.id)
      const cp = d.traffic.summary().peerCheckpoints[m.id]
      return {
        id: m.id,
        name: m.name,
        role: m.role,
        endpoint: m.endpoint ?? null,
        tlsPins: [...m.tlsPins],
        messageKids: [...m.messageKeys.keys()],
        logKids: [...m.logKeys.keys()],
        up: m.id === d.self || m.endpoint === undefined ? null : await d.peerUp(m.id),
        lastCosigned: seen === undefined ? null : { size: seen.checkpoint.size, at: cp?.size === seen.checkpoint.size ? cp.at : null, root: b64(seen.checkpoint.rootHash) },
      }
    }))
    return { federation: f.name, seq: f.seq, self: d.self, members }
  }

  return {
    async overview() {
      const now = d.now()
      await d.traffic.refresh()
      const ready = await d.ready()
      const f = d.federation.peek()
      const me = f?.members().find((m) => m.id === d.self)
      const keys: Overview['keys'] = me === undefined
        ? []
        : [
            ...[...me.messageKeys.values()].map((k) => ({ kind: 'message' as const, kid: k.kid, nbf: k.nbf, exp: k.exp ?? null })),
            ...[...me.logKeys.values()].map((k) => ({ kind: 'log' as const, kid: k.kid, nbf: k.nbf, exp: k.exp ?? null })),
          ]
      const size = await d.store.size()
      const latest = await d.store.latestCheckpoint()
      let checkpoint: Overview['log']['checkpoint'] = null
      if (latest !== undefined) {
        const note = parseNote(latest.note)
        const cp = parseCheckpoint(note.text)
        const names = note.signatures.map((s) => s.name)
        checkpoint = { size: cp.size, root: b64(cp.rootHash), signers: names.filter((n) => n === d.origin), cosigners: names.filter((n) => n !== d.origin) }
      }
      const traffic = d.traffic.summary()
      const alerts: Alert[] = []
      for (const [name, c] of Object.entries(ready.checks)) if (!c.ok) alerts.push({ kind: 'not-ready', subject: name })
      if (traffic.lastFork !== undefined) alerts.push({ kind: 'fork-evidence', subject: traffic.lastFork.peer, index: traffic.lastFork.index })
      if (f !== undefined) {
        for (const m of f.departments()) {
          if (m.id === d.self) continue
          if ((await d.peerUp(m.id)) === 0) alerts.push({ kind: 'peer-unreachable', subject: m.id })
        }
      }
      for (const a of await agreementStatus()) if (a.used >= QUOTA_ALERT_SHARE * a.dailyQuota) alerts.push({ kind: 'quota-nearly-exhausted', subject: a.id })
      return {
        member: d.self,
        now,
        ready,
        manifest: f === undefined ? null : { seq: f.seq, exp: f.exp, federation: f.name },
        keys,
        certificate: d.tls === undefined ? null : { notAfter: d.tls.notAfter, pin: d.tls.pin },
        log: { size, checkpoint },
        traffic,
        alerts,
      }
    },
    async traffic(step, by, points, role) {
      await d.traffic.refresh()
      return { ...d.traffic.series(step, by, points, d.now(), role), summary: d.traffic.summary(), providerLatency: await d.providerLatency() }
    },
    agreements: agreementStatus,
    peers,
    async entry(index) {
      if (index >= (await d.store.size())) throw new VnError('VN_ERR_REQ_NOT_FOUND', `index: the log holds fewer than ${index + 1} leaves`)
      return parseLeaf(await d.store.leaf(index)) as unknown as Record<string, unknown>
    },
  }
}
