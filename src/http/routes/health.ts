/** Liveness and readiness (the node's checks, 503 when one fails). /metrics is not here: ./metrics.ts. */
import type { FastifyInstance } from 'fastify'

export async function healthRoutes(app: FastifyInstance): Promise<void> {
  app.get('/healthz', async () => ({ status: 'ok' }))
  app.get('/readyz', async (_req, reply) => {
    const r = await app.readiness()
    return reply.code(r.ok ? 200 : 503).send({ status: r.ok ? 'ready' : 'not-ready', checks: r.checks })
  })
}
