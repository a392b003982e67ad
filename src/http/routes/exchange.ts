/** The provider's endpoints: its signed catalog, and one exchange (docs/PROTOCOL.md). */
import type { FastifyInstance } from 'fastify'

export async function exchangeRoutes(app: FastifyInstance): Promise<void> {
  app.get('/v1/catalog', async (_req, reply) => reply.header('cache-control', 'max-age=60').send({ jws: app.catalogJws() }))

  app.post('/v1/exchange', async (req, reply) => {
    const r = await app.exchange.handle(req.body)
    req.log.info({ xid: r.xid, status: r.status }, 'exchange')
    if (r.problem) return reply.code(r.status).header('content-type', 'application/problem+json; charset=utf-8').send(r.body)
    return reply.code(r.status).send(r.body)
  })
}
