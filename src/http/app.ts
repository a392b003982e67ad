/**
 * The node's public HTTP app (peers talk to it) and its internal app (the department's own systems
 * talk to it), built as Fastify instances that never listen: src/http/server.ts listens, tests use
 * `inject()` or listen on port 0.
 */
import Fastify, { type FastifyInstance, type FastifyBaseLogger } from 'fastify'
import type { NodeRuntime } from '../node/types.js'
import { errorHandler, notFoundHandler, sendProblem } from './errors.js'
import { VnError } from '../errors.js'
import { LocalVerifySchema, localOpenApi } from './local-api.js'
import { formatZodIssues } from '../config/load.js'
import { etagMatches } from '../oprf/tagset-service.js'
import { logRoutes } from './routes/log.js'

export { REDACT } from '../node/redact.js'

export async function buildPublicApp(node: NodeRuntime): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: node.logger.child({ listener: 'public' }) as FastifyBaseLogger,
    bodyLimit: node.config.limits.bodyBytes,
    return503OnClosing: true,
  })
  app.setErrorHandler(errorHandler((code) => node.metrics.rejected.inc({ code })))
  app.setNotFoundHandler(notFoundHandler)
  // JSON only: anything else is 415 before a handler sees it.
  app.removeContentTypeParser('text/plain')

  app.get('/v1/catalog', async (_req, reply) => reply.header('cache-control', 'max-age=60').send({ jws: node.catalogJws() }))

  app.post('/v1/exchange', async (req, reply) => {
    const r = await node.provider.handle(req.body)
    req.log.info({ xid: r.xid, status: r.status }, 'exchange')
    if (r.problem) return reply.code(r.status).header('content-type', 'application/problem+json; charset=utf-8').send(r.body)
    return reply.code(r.status).send(r.body)
  })

  await logRoutes(app, node)

  // oprf mode: the signed tag set of the service's current epoch (docs/PROTOCOL.md "oprf mode"):
  // binary body, signature and signer in headers, ETag / If-None-Match; 503 while the first build runs.
  app.get<{ Params: { svc: string } }>('/v1/services/:svc/tagset', async (req, reply) => {
    const tagsets = node.tagsets
    if (tagsets === undefined) throw new VnError('VN_ERR_POLICY_UNKNOWN_SERVICE', 'this node offers no oprf service')
    let p
    try {
      p = tagsets.current(req.params.svc)
    } catch (e) {
      if (e instanceof VnError && e.code === 'VN_ERR_OPRF_TAGSET_PENDING') reply.header('retry-after', '5')
      throw e
    }
    reply.headers(tagsets.responseHeaders(p))
    if (etagMatches(req.headers['if-none-match'], p.etag)) return reply.code(304).send()
    return reply.header('content-type', 'application/octet-stream').send(p.bytes)
  })

  app.get('/healthz', async () => ({ status: 'ok' }))
  app.get('/readyz', async (_req, reply) => {
    const r = await node.ready()
    return reply.code(r.ok ? 200 : 503).send({ status: r.ok ? 'ready' : 'not-ready', checks: r.checks })
  })
  app.get('/metrics', async (_req, reply) =>
    reply.header('content-type', node.metrics.registry.contentType).send(await node.metrics.registry.metrics()))
  return app
}

export async function buildLocalApp(node: NodeRuntime): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: node.logger.child({ listener: 'local' }) as FastifyBaseLogger,
    bodyLimit: node.config.limits.bodyBytes * 4,
  })
  app.setErrorHandler(errorHandler())
  app.setNotFoundHandler(notFoundHandler)
  app.removeContentTypeParser('text/plain')

  app.get('/local/v1/openapi.json', async () => localOpenApi())

  // Everything else needs an application token (Authorization: Bearer <token>).
  app.addHook('onRequest', async (req) => {
    if (req.url === '/local/v1/openapi.json') return
    const h = req.headers.authorization
    const token = typeof h === 'string' && h.startsWith('Bearer ') ? h.slice(7) : undefined
    ;(req as unknown as { app: string }).app = node.authenticateApp(token)
  })

  app.post('/local/v1/verify', async (req, reply) => {
    const p = LocalVerifySchema.safeParse(req.body)
    if (!p.success) return sendProblem(reply, new VnError('VN_ERR_REQ_INVALID', formatZodIssues(p.error)))
    const app = (req as unknown as { app: string }).app
    const r = await node.consumer.verify({ ...p.data, basis: p.data.basis })
    req.log.info({ xid: r.xid, app, provider: r.provider, service: r.service, status: r.status }, 'verify')
    // A signed denial is an answer, but the application sees it with the problem's status and code.
    if (r.status === 'denied' && r.error !== undefined) {
      return reply.code(r.error.status).header('content-type', 'application/problem+json; charset=utf-8').send({ ...r.error, ...r })
    }
    return reply.send(r)
  })

  app.get<{ Params: { peer: string } }>('/local/v1/peers/:peer/catalog', async (req) => {
    const c = await node.consumer.catalog(req.params.peer, true)
    return c
  })

  // A receipt: the provider's log entry for one exchange and its inclusion proof in a checkpoint
  // verified under the provider's log key.
  app.get<{ Params: { peer: string; index: string } }>('/local/v1/receipts/:peer/:index', async (req) => {
    const index = Number(req.params.index)
    if (!Number.isSafeInteger(index) || index < 0) throw new VnError('VN_ERR_REQ_INVALID', 'index: a non-negative integer')
    await node.checkpoint()
    return node.peerLogs.receipt(req.params.peer, index)
  })

  app.get('/local/v1/peers', async () =>
    node.federation.get().departments().filter((m) => m.id !== node.self).map((m) => ({ id: m.id, name: m.name, endpoint: m.endpoint })))
  return app
}
