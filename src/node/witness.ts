/**
 * Witnessing: what a node does with its peers' logs. Fetching and verifying their checkpoints
 * (C2SP signed notes under the peer's log key from the manifest), checking that each new checkpoint
 * is consistent with the last one seen (RFC 9162 §2.1.4), cosigning it (C2SP tlog-cosignature) and
 * returning the cosignature to the peer, fetching receipts (inclusion proofs of one exchange), and
 * witnessing every peer in turn (`witnessAll`, on a timer).
 *
 * Two validly signed checkpoints of one log that are not consistent are kept as evidence, logged as a
 * `fork-evidence` record and raised as an alert: no node can show two histories to two peers
 * without the peers noticing.
 */
import type { KeyObject } from 'node:crypto'
import { digestB64u } from '../crypto/profile.js'
import type { Logger } from 'pino'
import { VnError } from '../errors.js'
import type { Federation } from '../federation/federation.js'
import type { PeerClient } from '../peers/client.js'
import { openCheckpoint, noteVerifier, notePublicKey, cosignatureSigner, cosignCheckpoint, parseCheckpoint, parseNote } from '../log/checkpoint.js'
import { verifyConsistency, verifyInclusion, leafHash, hashEquals } from '../log/merkle.js'
import { logOrigin, type Receipt, type SeenCheckpoint } from '../log/peer-logs.js'
import type { NodeLog } from '../log/node-log.js'
import { signGetRequest } from '../peers/member-auth.js'
import type { Signer } from '../exchange/signer.js'

export { type Receipt, type SeenCheckpoint }

const fromB64 = (s: unknown): Uint8Array => {
  if (typeof s !== 'string') throw new VnError('VN_ERR_PEER_BAD_RESPONSE', 'proof element is not base64')
  return new Uint8Array(Buffer.from(s, 'base64'))
}

export class PeerLogs {
  private readonly seen = new Map<string, SeenCheckpoint>()
  readonly forks: { peer: string; notes: [string, string]; at: number }[] = []

  constructor(
    private readonly d: {
      self: string
      federation: () => Federation
      client: PeerClient
      log: NodeLog
      logKey: KeyObject
      signer: () => Signer
      logger: Logger
      now?: () => number
      onFork?: (peer: string) => void
    },
  ) {}

  private now(): number {
    return (this.d.now ?? Date.now)()
  }

  /**
   * Takes up where the last run left off: `note` is the last checkpoint of `peer` this node
   * witnessed, as its own log recorded it (a `peer-checkpoint` record). It was verified when it
   * was seen; the peer's key may have rotated since, so only its form is checked here.
   * @returns false (and nothing remembered) when the note is not a checkpoint of that peer's log.
   */
  remember(peer: string, note: string): boolean {
    try {
      const checkpoint = parseCheckpoint(parseNote(note).text)
      if (checkpoint.origin !== logOrigin(this.d.federation().name, peer)) return false
      if (!this.seen.has(peer)) this.seen.set(peer, { note, checkpoint })
      return true
    } catch {
      return false
    }
  }

  /** The last checkpoint of `peer` this node witnessed (this run, or remembered from its log). */
  lastSeen(peer: string): SeenCheckpoint | undefined {
    return this.seen.get(peer)
  }

  /** Fetches and verifies a peer's latest checkpoint (signature under its listed log key). */
  async fetchCheckpoint(peer: string): Promise<SeenCheckpoint> {
    const fed = this.d.federation()
    const r = await this.d.client.getText(fed.endpoint(peer), '/v1/log/checkpoint')
    if (r.statusCode !== 200) throw new VnError('VN_ERR_PEER_BAD_RESPONSE', `checkpoint: HTTP ${r.statusCode}`)
    const origin = logOrigin(fed.name, peer)
    const verifiers = fed.logKeys(peer).map((k) => noteVerifier(origin, notePublicKey(k.key)))
    const { checkpoint } = openCheckpoint(r.text, verifiers)
    if (checkpoint.origin !== origin) throw new VnError('VN_ERR_PEER_BAD_RESPONSE', 'checkpoint origin is not the peer\'s log')
    return { note: r.text, checkpoint }
  }

  /**
   * Witnesses one peer: verify its checkpoint, check consistency with the last one this node saw,
   * record what was seen in this node's own log, cosign and hand the cosignature back.
   */
  async witness(peer: string): Promise<{ size: number; cosigned: boolean; alreadyCosigned?: true }> {
    const cur = await this.fetchCheckpoint(peer)
    const prev = this.seen.get(peer)
    const fed = this.d.federation()
    if (prev !== undefined) {
      const a = prev.checkpoint
      const b = cur.checkpoint
      let consistent = true
      if (b.size < a.size) consistent = false
      else if (b.size === a.size) consistent = hashEquals(a.rootHash, b.rootHash)
      else if (a.size > 0) {
        const r = await this.d.client.get(fed.endpoint(peer), `/v1/log/proof/consistency?first=${a.size}&second=${b.size}`)
        const proof = ((r.json as { proof?: unknown[] })?.proof ?? []).map(fromB64)
        try {
          verifyConsistency(a.size, b.size, proof, a.rootHash, b.rootHash)
        } catch {
          consistent = false
        }
      }
      if (!consistent) {
        this.forks.push({ peer, notes: [prev.note, cur.note], at: this.now() })
        this.d.logger.error({ peer, sizes: [a.size, b.size] }, 'ALERT: peer showed two inconsistent checkpoints; kept as evidence')
        this.d.onFork?.(peer)
        await this.d.log.append([{ v: 1, at: this.now(), t: 'fork-evidence', peer, notes: [prev.note, cur.note] }])
        return { size: b.size, cosigned: false }
      }
      // the same checkpoint again (e.g. the witness timer got there first): nothing new to cosign
      if (b.size === a.size) return { size: b.size, cosigned: false, alreadyCosigned: true }
    }
    this.seen.set(peer, cur)
    const rootHash = Buffer.from(cur.checkpoint.rootHash).toString('base64')
    const cosigned = cosignCheckpoint(cur.note, cosignatureSigner(logOrigin(fed.name, this.d.self), this.d.logKey))
    await this.d.log.append([{
      v: 1, at: this.now(), t: 'peer-checkpoint', peer, size: cur.checkpoint.size, rootHash,
      noteHash: digestB64u(Buffer.from(cur.note, 'utf8')), note: cur.note,
    }])
    // Best effort: the peer attaches our cosignature to its checkpoint.
    await this.d.client.post(fed.endpoint(peer), '/v1/log/cosignature', JSON.stringify({ witness: this.d.self, note: cosigned }))
      .catch((err: unknown) => this.d.logger.warn({ peer, err }, 'could not deliver cosignature'))
    return { size: cur.checkpoint.size, cosigned: true }
  }

  /** A receipt: the peer's leaf at `index` and its inclusion proof in a verified checkpoint. */
  async receipt(peer: string, index: number): Promise<Receipt> {
    const cp = await this.fetchCheckpoint(peer)
    if (index >= cp.checkpoint.size) throw new VnError('VN_ERR_LOG_PROOF', 'index is not yet covered by the peer\'s checkpoint')
    const fed = this.d.federation()
    const path = `/v1/log/proof/inclusion?index=${index}&size=${cp.checkpoint.size}`
    const auth = signGetRequest(this.d.signer(), this.d.self, peer, path, this.now())
    const r = await this.d.client.get(fed.endpoint(peer), path, { authorization: auth })
    const body = r.json as { proof?: unknown[]; leaf?: unknown }
    if (r.statusCode !== 200 || typeof body?.leaf !== 'string' || !Array.isArray(body.proof)) {
      throw new VnError('VN_ERR_PEER_BAD_RESPONSE', `inclusion proof: HTTP ${r.statusCode}`)
    }
    const proof = body.proof.map(fromB64)
    verifyInclusion(index, cp.checkpoint.size, leafHash(Buffer.from(body.leaf, 'utf8')), proof, cp.checkpoint.rootHash)
    return { peer, index, leaf: JSON.parse(body.leaf) as Record<string, unknown>, checkpoint: cp.note, proof: body.proof as string[] }
  }
}

/** Witnesses every peer of the federation once; a peer that fails is logged and skipped. */
export async function witnessAll(peerLogs: PeerLogs, federation: () => Federation, self: string, logger: Logger, reached?: (peer: string, ok: boolean) => void): Promise<void> {
  for (const m of federation().departments()) {
    if (m.id === self) continue
    await peerLogs.witness(m.id).then(
      () => reached?.(m.id, true),
      (err: unknown) => {
        const code = (err as { code?: string }).code
        // only a peer that could not be reached counts as down; a bad checkpoint is an answer
        reached?.(m.id, code !== 'VN_ERR_PEER_UNREACHABLE')
        logger.warn({ peer: m.id, code }, 'witnessing failed')
      },
    )
  }
}
