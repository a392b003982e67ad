/**
 * Recovery from the node's own log. At start-up, read newest first: today's quota usage and the
 * replay window (so a restart neither resets quotas nor forgets which xids it answered), and the
 * last checkpoint this node witnessed of each peer (so a fork across its restart is still caught).
 * At start-up and when the log reopens after a failed write: the stored tree must still hold what
 * was signed (`checkStoredTree`, `checkTreeAtStart`).
 */
import type { Logger } from 'pino'
import { VnError } from '../errors.js'
import { MAX_ENTRIES_PER_READ, type LogStore, type StoredTree } from '../log/storage.js'
import { openCheckpoint, type NoteVerifier } from '../log/checkpoint.js'
import { hashEquals } from '../log/merkle.js'
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
const WITNESS_MEMORY_LEAVES = 200_000

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
async function walkBack(store: RecoveryStore, stop: number, visit: (r: LogRecord, index: number) => boolean | Promise<boolean>): Promise<void> {
  for (let end = await store.size(); end > stop;) {
    const start = Math.max(stop, end - MAX_ENTRIES_PER_READ)
    const leaves = await store.entries(start, end)
    for (let i = leaves.length - 1; i >= 0; i--) {
      if (!(await visit(parseLeaf(leaves[i] as Uint8Array), start + i))) return
    }
    end = start
  }
}

/**
 * The stored tree still holds what this node committed and signed: it is exactly the tree last
 * committed (when `committed` is given), and each of `notes` (its latest signed checkpoints)
 * verifies under one of `verifiers` (the node's log keys), its size is within the stored tree,
 * and the root the store computes at that size from its stored hashes is the signed root. Run before a log that failed a write accepts writes again: a tree that changed meanwhile
 * was tampered with or corrupted.
 * @throws VN_ERR_LOG_TREE_MISMATCH saying which check failed (sizes only, never contents)
 */
export async function checkStoredTree(
  stored: StoredTree,
  notes: readonly string[],
  verifiers: readonly NoteVerifier[],
  /** the tree this node last committed (size and root), which the stored one must be exactly */
  committed?: { size: number; root: Uint8Array },
  /** the log is shared by replicas: the stored tree may have grown past `committed` (it must still hold it) */
  shared = false,
): Promise<void> {
  if (committed !== undefined && shared) {
    if (stored.size < committed.size) throw new VnError('VN_ERR_LOG_TREE_MISMATCH', `the stored log holds ${stored.size} leaves, this node committed ${committed.size}`)
    if (!hashEquals(await stored.rootHash(committed.size), committed.root)) throw new VnError('VN_ERR_LOG_TREE_MISMATCH', `the stored tree's root at size ${committed.size} is not the root this node committed`)
  } else if (committed !== undefined) {
    if (stored.size !== committed.size) throw new VnError('VN_ERR_LOG_TREE_MISMATCH', `the stored log holds ${stored.size} leaves, this node committed ${committed.size}`)
    if (!hashEquals(await stored.rootHash(stored.size), committed.root)) throw new VnError('VN_ERR_LOG_TREE_MISMATCH', `the stored tree's root at size ${stored.size} is not the root this node committed`)
  }
  for (const note of notes) {
    let cp
    try {
      cp = openCheckpoint(note, verifiers).checkpoint
    } catch (e) {
      throw new VnError('VN_ERR_LOG_TREE_MISMATCH', 'the last checkpoint does not verify under the node\'s log keys', { cause: e })
    }
    if (cp.size > stored.size) throw new VnError('VN_ERR_LOG_TREE_MISMATCH', `the stored log holds ${stored.size} leaves, the last signed checkpoint ${cp.size}`)
    if (!hashEquals(await stored.rootHash(cp.size), cp.rootHash)) {
      throw new VnError('VN_ERR_LOG_TREE_MISMATCH', `the stored tree's root at size ${cp.size} is not the signed root`)
    }
  }
}

/**
 * Start-up: the stored tree must still hold what the node last signed. A log cut back (a restored
 * old backup, a careless repair) or a subtree hash rewritten since the last checkpoint stops the
 * node, before it appends or answers anything, instead of signing a head that forks its own
 * history. A last checkpoint that no known log key verifies (signed by a key the manifest no
 * longer lists) cannot be checked: that is logged and start-up goes on.
 * @throws VnError VN_ERR_LOG_TREE_MISMATCH
 */
export async function checkTreeAtStart(
  store: Pick<LogStore, 'size' | 'rootHash' | 'latestCheckpoint'>,
  verifiers: readonly NoteVerifier[],
  logger: Logger,
): Promise<void> {
  const latest = await store.latestCheckpoint()
  if (latest === undefined) return
  try {
    openCheckpoint(latest.note, verifiers)
  } catch {
    logger.warn({ size: latest.size }, 'the last stored checkpoint is signed by a log key the node no longer knows; the stored tree was not checked against it')
    return
  }
  await checkStoredTree({ size: await store.size(), rootHash: (n) => store.rootHash(n) }, [latest.note], verifiers)
}
