/** The provider's endpoints: its signed catalog, and one exchange (docs/PROTOCOL.md). */
import type { FastifyInstance } from 'fastify'
import { isVnError } from '../../errors.js'

export async function exchangeRoutes(app: FastifyInstance): Promise<void> {
  app.get('/v1/catalog', async (_req, reply) => reply.header('cache-control', 'max-age=60').send({ jws: app.catalogJws() }))

  app.post('/v1/exchange', async (req, reply) => {
    let r
    try {
      r = await app.exchange.handle(req.body, { tlsMember: req.tlsMember })
    } catch (e) {
      // a member's certificate used for another member's request: a refused attempt, logged
      // without anything from the request but who signed it
      if (isVnError(e) && e.code === 'VN_ERR_TLS_CLIENT_NOT_ISSUER') req.log.warn({ code: e.code, tlsMember: req.tlsMember, detail: e.detail }, 'refused: request signed by another member than the TLS client')
      throw e
    }
    req.log.info({ xid: r.xid, status: r.status }, 'exchange')
    if (r.problem) return reply.code(r.status).header('content-type', 'application/problem+json; charset=utf-8').send(r.body)
    return reply.code(r.status).send(r.body)
  })
}
