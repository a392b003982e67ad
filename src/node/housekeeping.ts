/**
 * Housekeeping: pick up a newer manifest (revocations take effect without a restart; a bad file
 * keeps the current one; a change is logged as a key event) and purge sealed disclosures whose
 * retention ended. Runs on a timer (src/node/timers.ts) and on demand.
 */
import type { Logger } from 'pino'
import type { Federation, FederationHolder } from '../federation/federation.js'
import type { EvidenceStore } from '../log/storage.js'
import type { KeyEventRecord } from '../log/records.js'
import type { NodeLog } from '../log/node-log.js'
import type { NodeIdentity } from './identity.js'

/** The key-event record naming the keys and manifest in use (start-up, manifest reload). */
export function keyEventRecord(event: 'node-started' | 'manifest-loaded', identity: NodeIdentity, logKey: string, fed: Federation, at: number): KeyEventRecord {
  return {
    v: 1, at, t: 'key-event', event, member: identity.self, messageKid: identity.signer().kid,
    messageKey: identity.messagePublicKey, logKey, manifestSeq: fed.seq, manifestHash: fed.hash,
  }
}

export interface HousekeepingDeps {
  federation: FederationHolder
  manifestPath: string
  identity: NodeIdentity
  /** the log key's public half, base64url */
  logKey: string
  log: Pick<NodeLog, 'append'>
  evidence: Pick<EvidenceStore, 'purgeExpired'>
  logger: Logger
  now: () => number
}

export function housekeeping(d: HousekeepingDeps): () => Promise<void> {
  return async () => {
    const r = await d.federation.load(d.manifestPath, d.now())
    if (!r.ok) d.logger.error({ code: r.error.code }, 'new manifest refused; keeping the current one')
    else if (r.changed) {
      d.identity.refresh(r.federation)
      d.logger.info({ seq: r.federation.seq }, 'manifest reloaded')
      await d.log.append([keyEventRecord('manifest-loaded', d.identity, d.logKey, r.federation, d.now())])
    }
    const purged = await d.evidence.purgeExpired(d.now())
    if (purged > 0) d.logger.info({ purged }, 'expired disclosures purged')
  }
}
