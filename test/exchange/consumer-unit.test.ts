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

t.test('a response bound to another request, or signed by another member, is refused: logged as such, the bytes kept sealed', async (t) => {
  for (const [what, route, field] of [
    ['another request digest', signedBy((resp) => ({ ...resp, reqDigest: jwsDigest('other') })), 'reqDigest'],
    ['another audience', signedBy((resp) => ({ ...resp, aud: 'other-dept' })), 'aud'],
    ['another xid', signedBy((resp) => ({ ...resp, xid: 'A'.repeat(22) })), 'xid'],
    ['signed by the consumer', (async (body) => {
      const reply = await signedBy((x) => x)(body)
      const jws = (reply.json as { jws: string }).jws
      return { ...reply, json: { jws: signJwsJson(claimsOf(jws), KEYS[CONSUMER].privateKey, KEYS[CONSUMER].kid, RESPONSE_TYP) } }
    }) as ExchangeRoute, 'another member'],
  ] as const) {
    const c = await makeConsumer(route)
    await t.rejects(c.consumer.verify(ask(['A-1'])), { code: 'VN_ERR_PEER_ANSWER_REFUSED', statusCode: 502, detail: new RegExp(`${field}.*VN_ERR_EXCH_RESPONSE_UNBOUND`) }, what)
    const recs = await c.records()
    t.same(recs.map((x) => x.t), ['request-out', 'response-in'], `${what}: the refused answer is logged`)
    t.match(recs[1], { status: 'refused', code: 'VN_ERR_EXCH_RESPONSE_UNBOUND' }, what)
    t.notOk('peerIndex' in (recs[1] as object), `${what}: no peerIndex from an answer not accepted`)
    t.equal(await c.stores.evidence.getJws(1), undefined, `${what}: nothing kept in the clear`)
    const kept = await c.stores.evidence.getReceived(1, NOW)
    t.equal(kept?.digest, (recs[1] as { respDigest: string }).respDigest, `${what}: the bytes received kept sealed under the logged digest`)
    t.match(JSON.parse(Buffer.from(kept?.bytes ?? []).toString('utf8')), { jws: String }, what)
  }
})

t.test('a forged signature, a malformed JWS, a body that is not JSON: refused with the reason, bytes kept', async (t) => {
  const forged: ExchangeRoute = async (body) => {
    const reply = await signedBy((x) => x)(body)
    const jws = (reply.json as { jws: string }).jws
    const sig = Buffer.from(jws.split('.')[2] as string, 'base64url')
    sig[0] = (sig[0] as number) ^ 1
    return { ...reply, json: { jws: `${jws.split('.').slice(0, 2).join('.')}.${sig.toString('base64url')}` } }
  }
  const notJson = Buffer.from('<html>id 350102199001011234</html>')
  for (const [what, route, code] of [
    ['forged signature', forged, 'VN_ERR_JWS_SIGNATURE'],
    ['malformed JWS', (async () => ({ statusCode: 200, contentType: 'application/json', json: { jws: 'not.a.jws' } })) as ExchangeRoute, 'VN_ERR_JWS_MALFORMED'],
    ['jws not a string', (async () => ({ statusCode: 200, contentType: 'application/json', json: { jws: 7 } })) as ExchangeRoute, 'VN_ERR_JWS_MALFORMED'],
    ['no jws in a 200', (async () => ({ statusCode: 200, contentType: 'application/json', json: { results: [] } })) as ExchangeRoute, 'VN_ERR_PEER_BAD_RESPONSE'],
    ['not JSON', (async () => ({ statusCode: 200, contentType: 'text/html', json: undefined, raw: notJson })) as ExchangeRoute, 'VN_ERR_PEER_BAD_RESPONSE'],
    ['cut at the reply limit', (async () => ({ statusCode: 200, contentType: 'application/json', json: undefined, raw: notJson, truncated: true })) as ExchangeRoute, 'VN_ERR_PEER_BAD_RESPONSE'],
  ] as const) {
    const c = await makeConsumer(route)
    const err = await c.consumer.verify(ask(['A-1'])).then(() => undefined, (e: unknown) => e as VnError)
    t.match(err, { code: 'VN_ERR_PEER_ANSWER_REFUSED', statusCode: 502, detail: new RegExp(`${PROVIDER} was refused: .*\\(${code}\\)$`) }, what)
    t.notMatch(err?.message ?? '', /3501021990/, `${what}: nothing of the answer in the error`)
    const recs = await c.records()
    t.match(recs[1], { t: 'response-in', status: 'refused', code }, what)
    const kept = await c.stores.evidence.getReceived(1, NOW)
    t.ok(kept !== undefined && kept.bytes.length > 0, `${what}: bytes kept`)
    t.equal(JSON.stringify(recs).includes('3501021990'), false, `${what}: nothing of the answer in the log`)
  }
})

t.test("an unsigned problem is wrapped as the peer's error; a transport failure keeps its code; both logged as response-in", async (t) => {
  const problem = await makeConsumer(async (): Promise<PeerReply> => ({ statusCode: 400, contentType: 'application/problem+json', json: new VnError('VN_ERR_EXCH_DISCLOSURE', 'x').toProblem() }))
  await t.rejects(problem.consumer.verify(ask(['A-1'])), { code: 'VN_ERR_PEER_ERROR', statusCode: 502, peer: { member: PROVIDER, status: 400, code: 'VN_ERR_EXCH_DISCLOSURE' } })
  t.match((await problem.records())[1], { t: 'response-in', status: 'error', code: 'VN_ERR_EXCH_DISCLOSURE' })
  const down = await makeConsumer(async (): Promise<PeerReply> => ({ statusCode: 503, contentType: 'application/problem+json', json: new VnError('VN_ERR_LOG_UNAVAILABLE').toProblem() }))
  const e = await down.consumer.verify(ask(['A-1'])).then(() => undefined, (x: unknown) => x as VnError)
  t.match(e?.toProblem(), { code: 'VN_ERR_PEER_ERROR', status: 502, peer: { member: PROVIDER, status: 503, code: 'VN_ERR_LOG_UNAVAILABLE' } }, "the provider's log is down, not this node's")
  const inherited = await makeConsumer(async (): Promise<PeerReply> => ({ statusCode: 400, contentType: 'application/problem+json', json: { code: 'toString' } }))
  await t.rejects(inherited.consumer.verify(ask(['A-1'])), { code: 'VN_ERR_PEER_ERROR', peer: { member: PROVIDER, status: 400, code: undefined } }, 'a name every object inherits is no code')
  t.match((await inherited.records())[1], { status: 'error', code: 'VN_ERR_PEER_BAD_RESPONSE' })
  // The refusal cannot be logged: this node's own log failing is its own 503, and nothing else happens.
  const broken: { c?: Awaited<ReturnType<typeof makeConsumer>> } = {}
  broken.c = await makeConsumer(async (body) => {
    broken.c?.stores.log.failNextCommit()
    return signedBy((resp) => ({ ...resp, xid: 'B'.repeat(22) }))(body)
  })
  await t.rejects(broken.c.consumer.verify(ask(['A-1'])), { code: 'VN_ERR_LOG_UNAVAILABLE', statusCode: 503 }, "this node's log failing is its own 503")
  t.same((await broken.c.records()).map((x) => x.t), ['request-out'], 'the request-out was durable, the refusal could not be')
  const junk = await makeConsumer(async (): Promise<PeerReply> => ({ statusCode: 500, contentType: 'text/plain', json: { code: 'NOT_A_CODE' } }))
  const j = await junk.consumer.verify(ask(['A-1'])).then(() => undefined, (x: unknown) => x as VnError)
  t.match(j, { code: 'VN_ERR_PEER_ERROR' }, 'an unknown code is not trusted')
  t.same(j?.peer, { member: PROVIDER, status: 500 }, 'and not repeated')
  t.match((await junk.records())[1], { status: 'error', code: 'VN_ERR_PEER_BAD_RESPONSE' })
  const gone = await makeConsumer(async () => {
    throw new VnError('VN_ERR_PEER_UNREACHABLE', 'connection refused')
  })
  await t.rejects(gone.consumer.verify(ask(['A-1'])), { code: 'VN_ERR_PEER_UNREACHABLE' })
  t.match((await gone.records())[1], { t: 'response-in', status: 'error', code: 'VN_ERR_PEER_UNREACHABLE' })
})

t.test('a catalog whose signature does not verify is the peer\'s fault: 502, nothing signed, logged or sent', async (t) => {
  for (const [what, edit, code] of [
    ['forged signature', (jws: string) => `${jws.slice(0, -6)}${jws.endsWith('AAAAAA') ? 'BBBBBB' : 'AAAAAA'}`, 'VN_ERR_JWS_SIGNATURE'],
    ['not a JWS', () => 'garbage', 'VN_ERR_JWS_MALFORMED'],
  ] as const) {
    const c = await makeConsumer(async () => t.fail('nothing is sent') as never, { catalog: edit })
    await t.rejects(c.consumer.verify(ask(['A-1'])), { code: 'VN_ERR_PEER_ANSWER_REFUSED', statusCode: 502, detail: new RegExp(`catalog of ${PROVIDER} was refused: .*\\(${code}\\)`) }, what)
    t.equal(await c.stores.log.size(), 0, `${what}: nothing logged`)
    t.equal(c.posts, 0)
  }
})

t.test('log before send: when the log cannot be written, nothing is sent', async (t) => {
  const c = await makeConsumer(async () => t.fail('nothing is sent') as never)
  c.stores.log.failNextCommit()
  await t.rejects(c.consumer.verify(ask(['A-1'])), { code: 'VN_ERR_LOG_UNAVAILABLE' })
  t.equal(c.posts, 0)
})
