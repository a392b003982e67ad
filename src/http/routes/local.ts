/**
 * The local API (the department's own systems; docs in its OpenAPI description, src/http/local-api.ts).
 * Everything but the description needs an application token (checked by ../plugins/app-auth.ts).
 */
import type { FastifyInstance } from 'fastify'
import { VnError, type ErrorCode } from '../../errors.js'
import { formatZodIssues } from '../../config/load.js'
import { sendProblem } from '../errors.js'
import { LocalVerifySchema, localOpenApi } from '../local-api.js'
import { parseCanonicalInt } from '../params.js'

import { OPENAPI_PATH } from '../plugins/app-auth.js'

export async function localRoutes(app: FastifyInstance): Promise<void> {
  app.get(OPENAPI_PATH, async () => localOpenApi())

  app.post('/local/v1/verify', async (req, reply) => {
    const p = LocalVerifySchema.safeParse(req.body)
    if (!p.success) return sendProblem(reply, new VnError('VN_ERR_REQ_INVALID', formatZodIssues(p.error)))
    const r = await app.consumer.verify({ ...p.data, basis: p.data.basis })
    req.log.info({ xid: r.xid, app: req.appName, provider: r.provider, service: r.service, status: r.status }, 'verify')
    // A signed denial is an answer, but the application sees it with the problem's status and code.
    if (r.status === 'denied' && r.error !== undefined) {
      return reply.code(r.error.status).header('content-type', 'application/problem+json; charset=utf-8').send({ ...r.error, ...r })
    }
    return reply.send(r)
  })

  app.get<{ Params: { peer: string } }>('/local/v1/peers/:peer/catalog', async (req) => app.consumer.catalog(req.params.peer, true))

  // A receipt: the provider's log entry for one exchange and its inclusion proof in a checkpoint
  // verified under the provider's log key.
  app.get<{ Params: { peer: string; index: string } }>('/local/v1/receipts/:peer/:index', async (req) => {
    const index = parseCanonicalInt(req.params.index)
    if (index === undefined) throw new VnError('VN_ERR_REQ_INVALID', 'index: a non-negative integer')
    return app.receipt(req.params.peer, index)
  })

  app.get('/local/v1/peers', async () => app.peers())

  // The federation catalogue: every department's verified catalog, the sources and the negative list.
  app.get('/local/v1/catalog', async () => app.federationCatalogue())

  // Re-read the federation manifest file now instead of at the next housekeeping run (also SIGHUP).
  // A refused file keeps the manifest loaded before: the problem says why (its code and detail).
  app.post('/local/v1/manifest/reload', async (req, reply) => {
    const r = await app.reloadManifest()
    req.log.info({ app: req.appName, seq: r.seq, changed: r.changed, ok: r.ok }, 'manifest reload')
    if (!r.ok && r.error !== undefined) {
      const e = new VnError(r.error.code as ErrorCode, r.error.detail)
      // the refusal is the operator's own file: its detail is shown on the local listener
      return reply.code(409).header('content-type', 'application/problem+json; charset=utf-8').send({ ...e.toProblem(), detail: r.error.detail, ...r })
    }
    return reply.send(r)
  })
}
