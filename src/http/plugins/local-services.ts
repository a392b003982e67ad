/**
 * What the local app's routes use, as typed Fastify decorators: the consumer, receipts from
 * peers' logs, the list of peers, the manifest reload, and the per-application token check, whose result every
 * authenticated request carries as `request.appName`.
 */
import fp from 'fastify-plugin'
import type { Consumer } from '../../exchange/consumer.js'
import type { Receipt } from '../../log/peer-logs.js'
import type { ManifestReload } from '../../node/housekeeping.js'
import type { Governance } from '../../exchange/governance.js'
import type { FederationCatalogue } from '../../node/catalogue.js'
import type { AppRole } from '../../node/types.js'
import type { NodeStatus } from '../../node/status.js'
import type { AuditReport } from '../../audit/verify.js'

export interface PeerSummary {
  id: string
  name: string
  endpoint?: string | undefined
}

export interface LocalServices {
  consumer: Pick<Consumer, 'verify' | 'catalog'>
  /** the provider's log entry `index` with its inclusion proof in a verified checkpoint */
  receipt: (peer: string, index: number) => Promise<Receipt>
  /** the federation's departments other than this node */
  peers: () => PeerSummary[]
  /** the application a local API token belongs to; throws VN_ERR_LOCAL_UNAUTHORIZED */
  authenticateApp: (token: string | undefined) => string
  /** re-read the federation manifest file now */
  reloadManifest: () => Promise<ManifestReload>
  /** applications, agreements and disputes (undefined: the routes are not registered) */
  governance?: Pick<Governance, 'apply' | 'dispute' | 'list' | 'show' | 'review' | 'decide' | 'changeAgreement' | 'resolve' | 'agreements' | 'policy'> | undefined
  /** every department's verified catalog and the manifest's catalogue section */
  federationCatalogue: () => Promise<FederationCatalogue>
  /** the role of an application (config `local.apps[].role`) */
  appRole: (name: string) => AppRole
  /** status views: overview, traffic, agreements, peers (src/node/status.ts) */
  status: NodeStatus
  /** `audit verify` of an export folder on this machine, under the root key this node trusts */
  audit: (dir: string) => Promise<AuditReport>
}

declare module 'fastify' {
  interface FastifyInstance {
    consumer: LocalServices['consumer']
    receipt: LocalServices['receipt']
    peers: LocalServices['peers']
    authenticateApp: LocalServices['authenticateApp']
    reloadManifest: LocalServices['reloadManifest']
    localGovernance: NonNullable<LocalServices['governance']>
    federationCatalogue: LocalServices['federationCatalogue']
    appRole: LocalServices['appRole']
    status: LocalServices['status']
    audit: LocalServices['audit']
  }
  interface FastifyRequest {
    /** the local application that sent the request (set by the token check) */
    appName: string
  }
}

export const localServices = fp<LocalServices>(async (app, s) => {
  app.decorate('consumer', s.consumer)
  app.decorate('receipt', s.receipt)
  app.decorate('peers', s.peers)
  app.decorate('authenticateApp', s.authenticateApp)
  app.decorate('reloadManifest', s.reloadManifest)
  if (s.governance !== undefined) app.decorate('localGovernance', s.governance)
  app.decorate('federationCatalogue', s.federationCatalogue)
  app.decorate('appRole', s.appRole)
  app.decorate('status', s.status)
  app.decorate('audit', s.audit)
  app.decorateRequest('appName', '')
}, { name: 'verinode-local-services', fastify: '5.x' })
