/**
 * The node's public HTTP app (peers talk to it) and its internal app (the department's own systems
 * talk to it). Each is a Fastify instance that registers a services plugin (typed decorators, see
 * ./plugins/) and then its routes (./routes/), which take what they need from the decorators.
 * Builders never listen: src/http/server.ts listens, tests use `inject()` or listen on port 0.
 */
import Fastify, { type FastifyInstance, type FastifyBaseLogger } from 'fastify'
import type { NodeRuntime } from '../node/types.js'
import { authenticateMember } from '../peers/member-auth.js'
import { errorHandler, notFoundHandler } from './errors.js'
import { publicServices, type PublicServices } from './plugins/public-services.js'
import { localServices, type LocalServices } from './plugins/local-services.js'
import { federationCatalogue } from '../node/catalogue.js'
import { appAuth } from './plugins/app-auth.js'
import { mtls } from './plugins/mtls.js'
import type { ServerOptions as HttpsServerOptions } from 'node:https'
import { exchangeRoutes } from './routes/exchange.js'
import { logRoutes } from './routes/log.js'
import { tagSetRoutes } from './routes/tagset.js'
import { healthRoutes } from './routes/health.js'
import { localRoutes } from './routes/local.js'
import { metricsRoute } from './routes/metrics.js'
import { governanceLocalRoutes, governancePublicRoutes } from './routes/governance.js'
import type { Metrics } from '../node/metrics.js'
import { stat } from 'node:fs/promises'
import { VnError } from '../errors.js'
import { auditExport } from '../audit/verify.js'
import { statusRoutes } from './routes/status.js'
import { consoleRoutes } from './routes/console.js'

export { REDACT } from '../node/redact.js'

export interface AppOptions {
  logger: FastifyBaseLogger
  /** request body limit, bytes */
  bodyLimit: number
  /** serve HTTPS (node:https options: TLS 1.3, a client certificate asked for); default plain HTTP */
  https?: HttpsServerOptions | undefined
}

/** The public app from its services (tests pass fakes). */
export async function createPublicApp(services: PublicServices, o: AppOptions): Promise<FastifyInstance> {
  const app = o.https === undefined
    ? Fastify({ loggerInstance: o.logger, bodyLimit: o.bodyLimit, return503OnClosing: true })
    : Fastify({ loggerInstance: o.logger, bodyLimit: o.bodyLimit, return503OnClosing: true, https: o.https }) as unknown as FastifyInstance
  app.setErrorHandler(errorHandler((code) => services.metrics.rejected.inc({ code })))
  app.setNotFoundHandler(notFoundHandler)
  // JSON only: anything else is 415 before a handler sees it.
  app.removeContentTypeParser('text/plain')
  await app.register(publicServices, services)
  if (services.tlsClient !== undefined) await app.register(mtls, services.tlsClient)
  else app.decorateRequest('tlsMember', undefined)
  await app.register(exchangeRoutes)
  await app.register(logRoutes)
  await app.register(tagSetRoutes)
  await app.register(healthRoutes)
  if (services.governance !== undefined) await app.register(governancePublicRoutes)
  return app
}

/** The local app from its services (tests pass fakes); `metrics`: also serve GET /metrics there. */
async function createLocalApp(services: LocalServices, o: AppOptions & { metrics?: Metrics | undefined; consoleDir?: string | undefined }): Promise<FastifyInstance> {
  const app = Fastify({ loggerInstance: o.logger, bodyLimit: o.bodyLimit })
  app.setErrorHandler(errorHandler())
  app.setNotFoundHandler(notFoundHandler)
  app.removeContentTypeParser('text/plain')
  await app.register(localServices, services)
  await app.register(appAuth)
  await app.register(localRoutes)
  if (services.governance !== undefined) await app.register(governanceLocalRoutes)
  await app.register(statusRoutes)
  await app.register(consoleRoutes(o.consoleDir))
  if (o.metrics !== undefined) await app.register(metricsRoute(o.metrics))
  return app
}

/** A listener serving GET /metrics only (config `metrics.port`). */
async function createMetricsApp(metrics: Metrics, logger: FastifyBaseLogger): Promise<FastifyInstance> {
  const app = Fastify({ loggerInstance: logger, bodyLimit: 1024 })
  app.setErrorHandler(errorHandler())
  app.setNotFoundHandler(notFoundHandler)
  await app.register(metricsRoute(metrics))
  return app
}

/** Whether the node's metrics have a listener of their own (else the local app serves them). */
function metricsOwnPort(node: NodeRuntime): number | undefined {
  return node.config.metrics?.port
}

/** What a running node offers its peers. Calls go through `node` so a test may swap a method. */
function publicServicesOf(node: NodeRuntime): PublicServices {
  return {
    exchange: node.provider,
    catalogJws: () => node.catalogJws(),
    transparencyLog: {
      reader: node.log,
      checkpoint: () => node.checkpoint(),
      acceptCosignature: (witness, note) => node.acceptCosignature(witness, note),
    },
    authenticateMember: (authorization, url) => {
      const now = Date.now()
      return authenticateMember(authorization, node.self, url, node.federation.get(now).messageKeyResolver(now), now, node.config.limits.skewMs)
    },
    tagsets: node.tagsets,
    readiness: () => node.ready(),
    metrics: node.metrics,
    governance: node.governance,
    tlsClient: node.tls === undefined ? undefined : { clientMember: (socket) => node.tls!.clientMember(socket) },
  }
}

/** What a running node offers the department's own applications. */
function localServicesOf(node: NodeRuntime): LocalServices {
  return {
    consumer: node.consumer,
    receipt: async (peer, index) => {
      await node.checkpoint()
      return node.peerLogs.receipt(peer, index)
    },
    peers: () => node.federation.get().departments().filter((m) => m.id !== node.self).map((m) => ({ id: m.id, name: m.name, endpoint: m.endpoint })),
    authenticateApp: (token) => node.authenticateApp(token),
    reloadManifest: () => node.reloadManifest(),
    governance: node.governance,
    federationCatalogue: () => federationCatalogue(node),
    appRole: (name) => node.appRole(name),
    status: node.status,
    audit: async (dir) => {
      const st = await stat(dir).catch(() => undefined)
      if (st === undefined || !st.isDirectory()) throw new VnError('VN_ERR_AUDIT_EXPORT_INVALID', 'dir: not a folder on this machine')
      return auditExport(dir, { rootKey: node.federation.rootKey })
    },
  }
}

export async function buildPublicApp(node: NodeRuntime): Promise<FastifyInstance> {
  return createPublicApp(publicServicesOf(node), {
    logger: node.logger.child({ listener: 'public' }) as FastifyBaseLogger,
    bodyLimit: node.config.limits.bodyBytes,
    https: node.tls?.serverOptions(),
  })
}

export async function buildLocalApp(node: NodeRuntime): Promise<FastifyInstance> {
  return createLocalApp(localServicesOf(node), {
    logger: node.logger.child({ listener: 'local' }) as FastifyBaseLogger,
    bodyLimit: node.config.limits.bodyBytes * 4,
    metrics: metricsOwnPort(node) === undefined ? node.metrics : undefined,
  })
}

/** The metrics-only app when the config gives `metrics.port`, else undefined. */
export async function buildMetricsApp(node: NodeRuntime): Promise<FastifyInstance | undefined> {
  if (metricsOwnPort(node) === undefined) return undefined
  return createMetricsApp(node.metrics, node.logger.child({ listener: 'metrics' }) as FastifyBaseLogger)
}
