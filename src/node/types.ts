/** What the HTTP layer and the CLI need from a running node (built by ./runtime.ts). */
import type { Logger } from 'pino'
import type { Config } from '../config/schema.js'
import type { Provider } from '../exchange/provider.js'
import type { Consumer } from '../exchange/consumer.js'
import type { Governance } from '../exchange/governance.js'
import type { Metrics } from './metrics.js'
import type { FederationHolder } from '../federation/federation.js'
import type { TagSetPublisher } from '../oprf/tagset-service.js'
import type { ShardCache } from '../oprf/tagshards.js'
import type { PeerLogs } from './witness.js'
import type { ManifestReload } from './housekeeping.js'
import type { NodeTls } from './tls.js'
import type { NodeStatus } from './status.js'

/** What a local API token may do: an operator acts, an auditor reads (and runs audits). */
export type AppRole = 'operator' | 'auditor'

export interface ReadyCheck {
  ok: boolean
  checks: Record<string, { ok: boolean; detail?: string }>
}

/** Read access to the node's log (proofs, entries) */
export interface LogReader {
  size(): Promise<number>
  leaf(index: number): Promise<Uint8Array>
  entries(start: number, end: number): Promise<Uint8Array[]>
  inclusionProof(index: number, size: number): Promise<Uint8Array[]>
  consistencyProof(first: number, second: number): Promise<Uint8Array[]>
}

export interface NodeRuntime {
  readonly self: string
  readonly config: Config
  readonly logger: Logger
  readonly metrics: Metrics
  readonly federation: FederationHolder
  /** the public listener's TLS identity and client check (undefined: plain HTTP, loopback tests) */
  readonly tls?: NodeTls | undefined
  readonly provider: Provider
  readonly consumer: Consumer
  /** applications, agreement changes and disputes (docs/GOVERNANCE.md) */
  readonly governance: Governance
  /** the signed catalog JWS (re-signed when the manifest or key changes) */
  catalogJws(): string
  /** oprf mode: the signed tag sets this node publishes (undefined when no service offers oprf) */
  readonly tagsets?: TagSetPublisher | undefined
  /** oprf mode, as a consumer: the verified shards it holds (bounded, per epoch; metrics, benches) */
  readonly shardCache?: ShardCache | undefined
  readonly log: LogReader
  /** peers' checkpoints: witnessing and receipts */
  readonly peerLogs: PeerLogs
  /** reload the manifest if it changed, purge expired disclosures (also runs on a timer) */
  housekeeping(): Promise<void>
  /** re-read the manifest file now (also on SIGHUP and the housekeeping timer) */
  reloadManifest(): Promise<ManifestReload>
  /** witness every peer once now (also runs on a timer) */
  witnessAll(): Promise<void>
  /** a peer returns our checkpoint with its cosignature */
  acceptCosignature(witness: string, note: string): Promise<void>
  /** latest signed checkpoint note (C2SP signed-note text) */
  checkpoint(): Promise<string>
  ready(): Promise<ReadyCheck>
  /** per-application token check for the local API; returns the app name */
  authenticateApp(token: string | undefined): string
  /** the role of a local API application (config `local.apps[].role`): `auditor` is read-only */
  appRole(name: string): AppRole
  /** status views for the console and GET /local/v1/status/* (./status.ts) */
  readonly status: NodeStatus
  close(): Promise<void>
}
