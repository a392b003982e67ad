/**
 * What the public app's routes use, as typed Fastify decorators (the fastify/demo shape): the
 * provider's exchange step, the signed catalog, the node's transparency log, member
 * authentication, the oprf tag sets, readiness and metrics. The app is built from these alone, so
 * a test can build it from fakes and call `inject()`.
 */
import fp from 'fastify-plugin'
import type { ExchangeFrom, ExchangeReply } from '../../exchange/provider.js'
import type { Governance } from '../../exchange/governance.js'
import type { TagSetPublisher } from '../../oprf/tagset-service.js'
import type { Metrics } from '../../node/metrics.js'
import type { LogReader, ReadyCheck } from '../../node/types.js'
import type { MtlsOptions } from './mtls.js'

/** The node's own transparency log as its routes see it (RFC 9162 proofs, C2SP checkpoints). */
export interface TransparencyLog {
  readonly reader: LogReader
  /** latest signed checkpoint note (C2SP signed-note text) */
  checkpoint(): Promise<string>
  /** a witness returns our checkpoint with its cosignature */
  acceptCosignature(witness: string, note: string): Promise<void>
}

export interface PublicServices {
  exchange: { handle(body: unknown, from?: ExchangeFrom): Promise<ExchangeReply> }
  catalogJws: () => string
  transparencyLog: TransparencyLog
  /** a federation member's signed GET (`Authorization: VN-JWS ...`) for `url`: its member id, or throws */
  authenticateMember: (authorization: unknown, url: string) => string
  /** oprf mode: the tag sets this node publishes (undefined when no service offers oprf) */
  tagsets: TagSetPublisher | undefined
  readiness: () => Promise<ReadyCheck>
  metrics: Metrics
  /** signed applications, agreement changes and disputes from peers (undefined: the routes answer 404) */
  governance?: Pick<Governance, 'receive' | 'signedFor'> | undefined
  /** mutual TLS: the member at the other end of a TLS connection (undefined: plain HTTP listener) */
  tlsClient?: MtlsOptions | undefined
}

declare module 'fastify' {
  interface FastifyInstance {
    exchange: PublicServices['exchange']
    catalogJws: PublicServices['catalogJws']
    transparencyLog: PublicServices['transparencyLog']
    authenticateMember: PublicServices['authenticateMember']
    tagsets: PublicServices['tagsets']
    readiness: PublicServices['readiness']
    metrics: PublicServices['metrics']
    governance: NonNullable<PublicServices['governance']>
  }
}

export const publicServices = fp<PublicServices>(async (app, s) => {
  app.decorate('exchange', s.exchange)
  app.decorate('catalogJws', s.catalogJws)
  app.decorate('transparencyLog', s.transparencyLog)
  app.decorate('authenticateMember', s.authenticateMember)
  app.decorate('tagsets', s.tagsets)
  app.decorate('readiness', s.readiness)
  app.decorate('metrics', s.metrics)
  if (s.governance !== undefined) app.decorate('governance', s.governance)
}, { name: 'verinode-public-services', fastify: '5.x' })
