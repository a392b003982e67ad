/**
 * GET /readyz's checks: the manifest is in force and lists this node's key as valid now (a revoked
 * key is reported with its revocation time and manifest seq), the log is open (it fails closed,
 * and reopens by itself: log-reopen.ts), the data source answers. Tag-set builds are reported,
 * never counted against readiness: a set still building makes its oprf service answer 503, not
 * the node unready.
 */
import type { FederationHolder } from '../federation/federation.js'
import type { TagSetPublisher } from '../oprf/tagset-service.js'
import type { DataSource } from '../sources/types.js'
import type { NodeIdentity } from './identity.js'
import type { ReadyCheck } from './types.js'
import type { LogStatus } from './log-reopen.js'

export interface ReadinessDeps {
  federation: FederationHolder
  identity: NodeIdentity
  log: { status(): LogStatus }
  tagsets: TagSetPublisher | undefined
  source: DataSource | undefined
  now: () => number
  /** the node's TLS certificate: valid, pinned, and a warning within 7 days of its end (./tls.ts) */
  tls?: { status(): { ok: boolean; detail: string } } | undefined
}

export function readiness(d: ReadinessDeps): () => Promise<ReadyCheck> {
  return async () => {
    const checks: ReadyCheck['checks'] = {}
    try {
      const f = d.federation.get(d.now())
      // The node's own message key under the manifest it has loaded: revoked means it signs nothing.
      const s = d.identity.refresh(f)
      checks.manifest = { ok: true, detail: `seq ${f.seq}, expires ${new Date(f.exp).toISOString()}` }
      checks.keys = s.detail === undefined ? { ok: s.ok } : { ok: s.ok, detail: s.detail }
    } catch (e) {
      checks.manifest = { ok: false, detail: (e as Error).message }
    }
    checks.log = d.log.status()
    if (d.tls !== undefined) checks.tls = d.tls.status()
    const tagsets = d.tagsets
    if (tagsets !== undefined) {
      checks.tagsets = { ok: true, detail: Object.entries(tagsets.status()).map(([svc, x]) => `${svc} epoch ${x.epoch}: ${x.ready ? `${x.count} tags` : `building (${x.records ?? 0} records)`}`).join('; ') }
    }
    if (d.source !== undefined) {
      try {
        await d.source.ping()
        checks.dataSource = { ok: true }
      } catch (e) {
        checks.dataSource = { ok: false, detail: (e as Error).message }
      }
    }
    return { ok: Object.values(checks).every((c) => c.ok), checks }
  }
}
