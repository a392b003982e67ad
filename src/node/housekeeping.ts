/**
 * Housekeeping: pick up a newer manifest (revocations take effect without a restart; a bad file
 * keeps the current one; a change is logged as a key event) and purge sealed disclosures whose
 * retention ended. Runs on a timer (src/node/timers.ts) and on demand; the manifest reload alone
 * also runs on SIGHUP and on the local API's `POST /local/v1/manifest/reload`.
 *
 * Every manifest the node loads is logged (`key-event`, `manifest-loaded`, with its seq and hash,
 * at the instant it took effect on this node) and kept in the data folder's `manifests/`, so the log
 * export carries each manifest the node ever judged signatures under: the auditor judges an
 * exchange against the manifest the node had loaded then (docs/AUDIT.md).
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import type { Federation, FederationHolder } from '../federation/federation.js'
import type { EvidenceStore } from '../log/storage.js'
import type { KeyEventRecord, LogRecord } from '../log/records.js'
import type { NodeLog } from '../log/node-log.js'
import type { NodeIdentity, SigningStatus } from './identity.js'

/** The key-event record naming the keys and manifest in use (start-up, manifest reload). */
export function keyEventRecord(event: 'node-started' | 'manifest-loaded', identity: NodeIdentity, logKey: string, fed: Federation, at: number): KeyEventRecord {
  const r: KeyEventRecord = {
    v: 1, at, t: 'key-event', event, member: identity.self, messageKid: identity.kid(),
    messageKey: identity.messagePublicKey, logKey, manifestSeq: fed.seq, manifestHash: fed.hash,
  }
  if (!identity.status().ok) r.messageKeyRevoked = true
  return r
}

/** Keeps a copy of `fed` as `<dir>/<seq>.jws` (the export reads it); never overwrites, never throws. */
export async function archiveManifest(dir: string, fed: Federation, logger: Logger): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 })
    await writeFile(join(dir, `${String(fed.seq).padStart(6, '0')}.jws`), `${fed.jws}\n`, { flag: 'wx' })
  } catch (e) {
    if ((e as { code?: string }).code !== 'EEXIST') logger.warn({ err: e, seq: fed.seq }, 'could not keep a copy of the manifest for the log export')
  }
}

export interface HousekeepingDeps {
  federation: FederationHolder
  manifestPath: string
  /** where loaded manifests are kept for the export (the data folder's manifests/) */
  archiveDir: string
  identity: NodeIdentity
  /** the log key's public half, base64url */
  logKey: string
  log: Pick<NodeLog, 'append'>
  evidence: Pick<EvidenceStore, 'purgeExpired'>
  logger: Logger
  now: () => number
  /**
   * A new manifest: records to log with its key event, in the same commit (the sharing rules it
   * implies, src/node/governance.ts), and what to do once they are durable
   */
  onLoaded?: (fed: Federation, at: number) => { records: LogRecord[]; commit: () => void }
}

/** What one manifest reload did (the local API returns it). */
export interface ManifestReload {
  /** false: the file was refused and the manifest loaded before stays */
  ok: boolean
  /** the manifest loaded after the reload */
  seq: number | undefined
  changed: boolean
  /** when the new manifest took effect on this node (changed only) */
  loadedAt?: number
  /** the refusal's code and detail (ok false) */
  error?: { code: string; detail?: string | undefined }
  /** the node's own message key under the manifest loaded */
  signing: SigningStatus
}

/**
 * Re-reads the manifest file; a newer manifest replaces the current one, is logged as a
 * `manifest-loaded` key event and archived. Reloads run one at a time (the timer, a signal and the
 * local API may ask at once), so each change is logged exactly once.
 */
export function manifestReloader(d: Omit<HousekeepingDeps, 'evidence'>): () => Promise<ManifestReload> {
  let chain: Promise<unknown> = Promise.resolve()
  const once = async (): Promise<ManifestReload> => {
    const r = await d.federation.load(d.manifestPath, d.now())
    if (!r.ok) {
      d.logger.error({ code: r.error.code, detail: r.error.detail }, 'new manifest refused; keeping the current one')
      return { ok: false, seq: r.federation?.seq, changed: false, error: { code: r.error.code, detail: r.error.detail }, signing: d.identity.status() }
    }
    if (!r.changed) return { ok: true, seq: r.federation.seq, changed: false, signing: d.identity.status() }
    // The instant the new manifest took effect here: every signature judged from now on is judged under it.
    const loadedAt = d.now()
    const signing = d.identity.refresh(r.federation)
    if (!signing.ok) d.logger.error({ seq: r.federation.seq, kid: signing.kid }, `manifest reloaded: ${signing.detail ?? 'message key not valid'}`)
    else if (signing.revokedAt !== undefined) d.logger.warn({ seq: r.federation.seq, kid: signing.kid, revokedAt: new Date(signing.revokedAt).toISOString() }, 'manifest reloaded: this node\'s message key is being revoked')
    else d.logger.info({ seq: r.federation.seq }, 'manifest reloaded')
    await archiveManifest(d.archiveDir, r.federation, d.logger)
    const also = d.onLoaded?.(r.federation, loadedAt)
    await d.log.append([keyEventRecord('manifest-loaded', d.identity, d.logKey, r.federation, loadedAt), ...(also?.records ?? [])])
    also?.commit()
    return { ok: true, seq: r.federation.seq, changed: true, loadedAt, signing }
  }
  return () => {
    const next = chain.then(once, once)
    chain = next.catch(() => undefined)
    return next
  }
}

export function housekeeping(d: HousekeepingDeps & { reload?: () => Promise<ManifestReload> }): () => Promise<void> {
  const reload = d.reload ?? manifestReloader(d)
  return async () => {
    await reload()
    const purged = await d.evidence.purgeExpired(d.now())
    if (purged > 0) d.logger.info({ purged }, 'expired disclosures purged')
  }
}
