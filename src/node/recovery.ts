/**
 * Start-up recovery from the node's own log, read newest first: today's quota usage and the replay
 * window (so a restart neither resets quotas nor forgets which xids it answered), and the last
 * checkpoint this node witnessed of each peer (so a fork across its restart is still caught).
 */
import type { Logger } from 'pino'
import { MAX_ENTRIES_PER_READ, type LogStore } from '../log/storage.js'
import { parseLeaf } from '../log/node-log.js'
import type { LogRecord } from '../log/records.js'
import { utcDay, type QuotaStore } from '../policy/quota.js'
import type { Provider } from '../exchange/provider.js'
import type { PeerLogs } from './witness.js'

/** The part of the log store recovery reads. */
export type RecoveryStore = Pick<LogStore, 'size' | 'entries'>

/** Restores today's quota counts and the provider's replay window (2 x skew) from the log. */
export async function recoverFromLog(
  store: RecoveryStore,
  provider: Pick<Provider, 'remember'>,
  quotas: Pick<QuotaStore, 'restore'>,
  now: number,
  skewMs: number,
): Promise<void> {
  const today = utcDay(now)
  const windowStart = now - 2 * skewMs
  const dayStart = Date.parse(`${today}T00:00:00Z`)
  const permits: { agreementId: string; day: string; count: number }[] = []
  const responses: { iss: string; xid: string; reqDigest: string; index: number; at: number }[] = []
  await walkBack(store, 0, async (r, index) => {
    if (r.at < dayStart && r.at < windowStart) return false
    if (r.t === 'decision' && r.permit && r.agreement !== undefined && r.day === today) {
      permits.push({ agreementId: r.agreement, day: r.day, count: r.count })
    } else if (r.t === 'response-out' && r.at >= windowStart) {
      // The entry names the record; a retry reads the signed response from its evidence then.
      responses.push({ iss: r.aud, xid: r.xid, reqDigest: r.reqDigest, index, at: r.at })
    }
    return true
  })
  await quotas.restore(permits, today)
  // oldest first: the replay memory drops expired entries from its head, in insertion order
  for (let i = responses.length - 1; i >= 0; i--) {
    const r = responses[i] as (typeof responses)[number]
    await provider.remember(r.iss, r.xid, r.reqDigest, r.index, r.at)
  }
}

/** How far back (in leaves) a restarted node looks for the last checkpoint it witnessed of each peer. */
export const WITNESS_MEMORY_LEAVES = 200_000

/**
 * A witness that forgot what it saw could be shown a forked history across its own restart: the
 * last `peer-checkpoint` record of each peer (newest first, at most WITNESS_MEMORY_LEAVES back)
 * tells it where it left off. Records written before they carried the note are skipped.
 */
export async function rememberWitnessed(store: RecoveryStore, peerLogs: PeerLogs, peers: readonly string[], logger: Logger): Promise<void> {
  const missing = new Set(peers)
  if (missing.size === 0) return
  await walkBack(store, Math.max(0, (await store.size()) - WITNESS_MEMORY_LEAVES), (r, index) => {
    if (r.t === 'peer-checkpoint' && missing.has(r.peer) && r.note !== undefined) {
      missing.delete(r.peer)
      if (!peerLogs.remember(r.peer, r.note)) logger.warn({ peer: r.peer, index }, 'the last witnessed checkpoint in the log is not one of this peer; witnessing starts afresh')
    }
    return missing.size > 0
  })
}

/**
 * Reads the log newest first, down to leaf `stop`, MAX_ENTRIES_PER_READ leaves per read, until
 * `visit` returns false (start-up recovery).
 */
export async function walkBack(store: RecoveryStore, stop: number, visit: (r: LogRecord, index: number) => boolean | Promise<boolean>): Promise<void> {
  for (let end = await store.size(); end > stop;) {
    const start = Math.max(stop, end - MAX_ENTRIES_PER_READ)
    const leaves = await store.entries(start, end)
    for (let i = leaves.length - 1; i >= 0; i--) {
      if (!(await visit(parseLeaf(leaves[i] as Uint8Array), start + i))) return
    }
    end = start
  }
}
