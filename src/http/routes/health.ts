/** Liveness, readiness (the node's checks, 503 when one fails) and Prometheus metrics. */
import type { FastifyInstance } from 'fastify'

export async function healthRoutes(app: FastifyInstance): Promise<void> {
  app.get('/healthz', async () => ({ status: 'ok' }))
  app.get('/readyz', async (_req, reply) => {
    const r = await app.readiness()
    return reply.code(r.ok ? 200 : 503).send({ status: r.ok ? 'ready' : 'not-ready', checks: r.checks })
  })
  app.get('/metrics', async (_req, reply) =>
    reply.header('content-type', app.metrics.registry.contentType).send(await app.metrics.registry.metrics()))
}
