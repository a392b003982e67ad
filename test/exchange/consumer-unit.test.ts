/**
 * The consumer's steps (src/exchange/consumer.ts), unit tier: a `Consumer` built directly over the
 * in-memory stores, its peer client a stand-in that hands the body to a `Provider` in the same
 * process (or to a test's own answer). No sockets, no files.
 */
import t from 'tap'
import { signJwsJson } from '../../src/crypto/jws.js'
import { VnError } from '../../src/errors.js'
import { RESPONSE_TYP, type ResponsePayload } from '../../src/protocol/envelope.js'
import { jwsDigest } from '../../src/protocol/jws-digest.js'
import type { PeerReply } from '../../src/peers/client.js'
import { BASIS, CONSUMER, KEYS, NOW, PROVIDER, PURPOSE, SERVICE, agreement, claimsOf, makeConsumer, makeProvider, toProvider, type ExchangeRoute } from '../helper-exchange-unit.js'

const ask = (refs: readonly unknown[]) => ({ provider: PROVIDER, service: SERVICE, purpose: PURPOSE, basis: BASIS, subjects: refs.map((ref) => ({ ref })) })

/** A provider that signs whatever `shape` makes of a valid response to the request it got. */
const signedBy = (shape: (resp: ResponsePayload) => ResponsePayload): ExchangeRoute => async (body) => {
  const req = claimsOf(body.jws)
  const resp: ResponsePayload = {
    v: 1, xid: req.xid as string, reqDigest: jwsDigest(body.jws), iat: NOW, iss: PROVIDER, aud: CONSUMER, status: 'ok',
    policy: jwsDigest('policy'), log: { index: 41 }, results: [{ listed: true }],
  }
  return { statusCode: 200, contentType: 'application/json', json: { jws: signJwsJson(shape(resp), KEYS[PROVIDER].privateKey, KEYS[PROVIDER].kid, RESPONSE_TYP) } }
}

t.test('a plain exchange: request logged before it leaves, the signed answer logged before it is returned', async (t) => {
  const p = await makeProvider()
  let loggedBeforeSend = -1
  const c = await makeConsumer(async (body) => {
    loggedBeforeSend = await c.stores.log.size()
    return toProvider(p.provider)(body)
  })
  const r = await c.consumer.verify(ask(['A-1', 'Z-9']))
  t.equal(loggedBeforeSend, 1, 'request-out was durable before the request left')
  t.match(r, { provider: PROVIDER, service: SERVICE, status: 'ok', providerLogIndex: 0, logIndex: { request: 0, response: 1 }, agreement: 'ag-bank-tax' })
  t.same(r.results, [{ listed: true }, { listed: false }])
  const recs = await c.records()
  t.same(recs.map((x) => x.t), ['request-out', 'response-in'])
  t.match(recs[0], { xid: r.xid, aud: PROVIDER, svc: SERVICE, mode: 'plain', count: 2, reqDigest: r.reqDigest })
  t.match(recs[1], { xid: r.xid, iss: PROVIDER, status: 'ok', respDigest: r.respDigest, peerIndex: 0 })
  const reqJws = await c.stores.evidence.getJws(0)
  t.equal(reqJws?.digest, r.reqDigest, 'the signed request kept with request-out')
  t.equal((await c.stores.evidence.getJws(1))?.jws, r.jws, 'the signed response kept with response-in')
  const disclosed = await c.stores.evidence.getDisclosures(0, NOW)
  t.equal(disclosed?.disclosures.length, 2, 'the disclosures sent kept (sealed) with request-out')
  t.equal((await p.stores.evidence.getJws(0))?.jws, reqJws?.jws, 'the provider kept the very request the consumer logged')
})

t.test('subjects are checked against the catalog before anything is signed or logged', async (t) => {
  const c = await makeConsumer(async () => t.fail('nothing is sent') as never)
  await t.rejects(c.consumer.verify({ ...ask(['A-1']), subjects: [{ ref: 'A-1', other: 'x' }] }), { code: 'VN_ERR_SUBJECT_INVALID' })
  await t.rejects(c.consumer.verify({ ...ask(['A-1']), subjects: [] }), { code: 'VN_ERR_SUBJECT_INVALID' })
  await t.rejects(c.consumer.verify({ ...ask(['A-1']), service: 'tax.other' }), { code: 'VN_ERR_POLICY_UNKNOWN_SERVICE' })
  await t.rejects(c.consumer.verify({ ...ask(Array.from({ length: 11 }, (_, i) => `A-${i}`)) }), { code: 'VN_ERR_REQ_BATCH_TOO_LARGE' })
  t.equal(await c.stores.log.size(), 0)
  t.equal(c.posts, 0)
})

t.test('a signed denial is returned as such, and logged', async (t) => {
  const p = await makeProvider({ agreements: [agreement({ dailyQuota: 1 })] })
  const c = await makeConsumer(toProvider(p.provider))
  t.equal((await c.consumer.verify(ask(['A-1']))).status, 'ok')
  const r = await c.consumer.verify(ask(['A-2']))
  t.equal(r.status, 'denied')
  t.equal(r.error?.code, 'VN_ERR_POLICY_QUOTA_EXHAUSTED')
  t.equal(r.results, undefined)
  const recs = await c.records()
  t.match(recs[3], { t: 'response-in', status: 'denied', code: 'VN_ERR_POLICY_QUOTA_EXHAUSTED' })
})

t.test('a signed answer the mode refuses: response-in, then response-refused, then the error', async (t) => {
  const c = await makeConsumer(signedBy((resp) => ({ ...resp, results: [] })))
  await t.rejects(c.consumer.verify(ask(['A-1'])), { code: 'VN_ERR_PEER_BAD_RESPONSE' })
  const recs = await c.records()
  t.same(recs.map((x) => x.t), ['request-out', 'response-in', 'response-refused'])
  t.match(recs[1], { status: 'ok', peerIndex: 41 })
  t.match(recs[2], { code: 'VN_ERR_PEER_BAD_RESPONSE', respDigest: (recs[1] as { respDigest: string }).respDigest })
  t.ok((await c.stores.evidence.getJws(1))?.jws, 'the refused answer is kept as evidence')
})

t.test('a response bound to another request, or signed by another member, is refused and not logged as received', async (t) => {
  for (const [what, route] of [
    ['another request digest', signedBy((resp) => ({ ...resp, reqDigest: jwsDigest('other') }))],
    ['another audience', signedBy((resp) => ({ ...resp, aud: 'other-dept' }))],
    ['another xid', signedBy((resp) => ({ ...resp, xid: 'A'.repeat(22) }))],
    ['signed by the consumer', (async (body) => {
      const reply = await signedBy((x) => x)(body)
      const jws = (reply.json as { jws: string }).jws
      return { ...reply, json: { jws: signJwsJson(claimsOf(jws), KEYS[CONSUMER].privateKey, KEYS[CONSUMER].kid, RESPONSE_TYP) } }
    }) as ExchangeRoute],
  ] as const) {
    const c = await makeConsumer(route)
    await t.rejects(c.consumer.verify(ask(['A-1'])), { code: 'VN_ERR_EXCH_RESPONSE_UNBOUND' }, what)
    t.same((await c.records()).map((x) => x.t), ['request-out'], `${what}: only the request is logged`)
  }
})

t.test('an unsigned problem or a transport failure is logged as response-in with its code', async (t) => {
  const problem = await makeConsumer(async (): Promise<PeerReply> => ({ statusCode: 400, contentType: 'application/problem+json', json: new VnError('VN_ERR_EXCH_DISCLOSURE', 'x').toProblem() }))
  await t.rejects(problem.consumer.verify(ask(['A-1'])), { code: 'VN_ERR_EXCH_DISCLOSURE' })
  t.match((await problem.records())[1], { t: 'response-in', status: 'error', code: 'VN_ERR_EXCH_DISCLOSURE' })
  const junk = await makeConsumer(async (): Promise<PeerReply> => ({ statusCode: 500, contentType: 'text/plain', json: { code: 'NOT_A_CODE' } }))
  await t.rejects(junk.consumer.verify(ask(['A-1'])), { code: 'VN_ERR_PEER_BAD_RESPONSE' }, 'an unknown code is not trusted')
  const down = await makeConsumer(async () => {
    throw new VnError('VN_ERR_PEER_UNREACHABLE', 'connection refused')
  })
  await t.rejects(down.consumer.verify(ask(['A-1'])), { code: 'VN_ERR_PEER_UNREACHABLE' })
  t.match((await down.records())[1], { t: 'response-in', status: 'error', code: 'VN_ERR_PEER_UNREACHABLE' })
})

t.test('log before send: when the log cannot be written, nothing is sent', async (t) => {
  const c = await makeConsumer(async () => t.fail('nothing is sent') as never)
  c.stores.log.failNextCommit()
  await t.rejects(c.consumer.verify(ask(['A-1'])), { code: 'VN_ERR_LOG_UNAVAILABLE' })
  t.equal(c.posts, 0)
})
