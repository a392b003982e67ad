/**
 * Applications, agreement changes and disputes (docs/GOVERNANCE.md; messages in docs/PROTOCOL.md
 * "Governance messages").
 *
 * Public listener: `POST /v1/governance` takes a peer's signed message (its issuer must be the TLS
 * client); `GET /v1/governance/:kind/:id` gives the consumer of an application or dispute, on a
 * signed GET, the messages this node signed about it (for a consumer that missed a push).
 * Local listener: the operator's and the department's applications' side (file, list, show, decide,
 * suspend/revoke, dispute, resolve).
 */
import type { FastifyInstance } from 'fastify'
import { VnError } from '../../errors.js'
import { assertTlsIssuer } from '../plugins/mtls.js'
import { XID_RE } from '../../protocol/vocabulary.js'

/** an application's or dispute's id has the grammar of an xid (protocol/vocabulary.ts) */
const ID_RE = XID_RE

function checkId(id: string): string {
  if (!ID_RE.test(id)) throw new VnError('VN_ERR_GOV_INVALID', 'id: 16-64 base64url characters')
  return id
}

export async function governancePublicRoutes(app: FastifyInstance): Promise<void> {
  app.post('/v1/governance', async (req, reply) => {
    const r = await app.governance.receive(req.body, req.tlsMember)
    req.log.info({ index: r.index, state: r.state }, 'governance message logged')
    return reply.code(202).send(r)
  })

  app.get<{ Params: { kind: string; id: string } }>('/v1/governance/:kind/:id', async (req) => {
    const member = app.authenticateMember(req.headers.authorization, req.url)
    assertTlsIssuer(req.tlsMember, member)
    if (req.params.kind !== 'application' && req.params.kind !== 'dispute') throw new VnError('VN_ERR_REQ_NOT_FOUND')
    return app.governance.signedFor(member, req.params.kind, checkId(req.params.id))
  })
}

export async function governanceLocalRoutes(app: FastifyInstance): Promise<void> {
  const g = (): FastifyInstance['localGovernance'] => app.localGovernance

  // the consumer's side
  app.post('/local/v1/applications', async (req, reply) => {
    const r = await g().apply(req.body as never)
    req.log.info({ app: req.appName, id: r.id, provider: r.provider }, 'application filed')
    return reply.code(201).send(r)
  })
  app.post('/local/v1/disputes', async (req, reply) => {
    const r = await g().dispute(req.body as never)
    req.log.info({ app: req.appName, id: r.id, provider: r.provider }, 'dispute filed')
    return reply.code(201).send(r)
  })

  // both sides: the queue and one item
  app.get('/local/v1/applications', async () => ({ applications: g().list().applications }))
  app.get('/local/v1/disputes', async () => ({ disputes: g().list().disputes }))
  app.get<{ Params: { id: string } }>('/local/v1/applications/:id', async (req) => g().show('application', checkId(req.params.id)))
  app.get<{ Params: { id: string } }>('/local/v1/disputes/:id', async (req) => g().show('dispute', checkId(req.params.id)))
  app.get('/local/v1/agreements', async () => ({ policy: g().policy(), agreements: g().agreements() }))

  // the provider's operator
  app.post<{ Params: { id: string; action: string } }>('/local/v1/applications/:id/:action', async (req) => {
    const id = checkId(req.params.id)
    const r = await (() => {
      switch (req.params.action) {
        case 'review': return g().review(id)
        case 'approve': return g().decide(id, 'approved', req.body)
        case 'amend': return g().decide(id, 'amended', req.body)
        case 'refuse': return g().decide(id, 'refused', req.body)
        default: throw new VnError('VN_ERR_REQ_NOT_FOUND')
      }
    })()
    req.log.info({ app: req.appName, id, state: r.state, delivered: r.delivered }, 'application answered')
    return r
  })
  app.post<{ Params: { id: string; action: string } }>('/local/v1/agreements/:id/:action', async (req) => {
    const a = req.params.action
    if (a !== 'suspend' && a !== 'resume' && a !== 'revoke') throw new VnError('VN_ERR_REQ_NOT_FOUND')
    const r = await g().changeAgreement(req.params.id, a, req.body)
    req.log.info({ app: req.appName, agreement: r.agreement, state: r.state, delivered: r.delivered }, 'agreement changed')
    return r
  })
  app.post<{ Params: { id: string; action: string } }>('/local/v1/disputes/:id/:action', async (req) => {
    const a = req.params.action
    if (a !== 'correct' && a !== 'reject') throw new VnError('VN_ERR_REQ_NOT_FOUND')
    const r = await g().resolve(checkId(req.params.id), a === 'correct' ? 'corrected' : 'rejected', req.body)
    req.log.info({ app: req.appName, id: r.id, state: r.state, delivered: r.delivered }, 'dispute resolved')
    return r
  })
}
