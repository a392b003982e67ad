/**
 * The provider's steps (src/exchange/provider.ts), unit tier: a `Provider` built directly over the
 * in-memory stores, fed request bodies as the HTTP layer would pass them. No sockets, no files.
 */
import t from 'tap'
import { verifyJwsJson } from '../../src/crypto/jws.js'
import { RESPONSE_TYP, ResponsePayloadSchema } from '../../src/protocol/envelope.js'
import { jwsDigest } from '../../src/protocol/jws-digest.js'
import { StoreNodeLog } from '../../src/log/node-log.js'
import { CONSUMER, KEYS, NOW, PROVIDER, SERVICE, agreement, claimsOf, makeProvider, plainRequest, resolver } from '../helper-exchange-unit.js'

t.test('a plain exchange: verified, decided, answered, signed, and logged with its evidence before release', async (t) => {
  const { provider, stores, data, records } = await makeProvider()
  const { body, payload } = plainRequest(['A-1', 'Z-9'])
  const reply = await provider.handle(body)
  t.equal(reply.status, 200)
  t.equal(reply.problem, false)
  t.equal(reply.xid, payload.xid)
  const respJws = reply.body.jws as string
  const v = verifyJwsJson(respJws, resolver(), RESPONSE_TYP)
  t.equal(v.kid, KEYS[PROVIDER].kid, 'signed with the provider key')
  const resp = ResponsePayloadSchema.parse(v.claims)
  t.match(resp, { xid: payload.xid, iss: PROVIDER, aud: CONSUMER, status: 'ok', reqDigest: jwsDigest(body.jws), agreement: 'ag-bank-tax', log: { index: 0 } })
  t.same(resp.results, [{ listed: true }, { listed: false }], 'answered in place, in order')
  t.equal(data.lookups, 2)

  const recs = await records()
  t.same(recs.map((r) => r.t), ['request-in', 'decision', 'response-out'], 'three records, one commit')
  t.match(recs[0], { xid: payload.xid, iss: CONSUMER, svc: SERVICE, mode: 'plain', count: 2, reqDigest: jwsDigest(body.jws) })
  t.match(recs[1], { permit: true, agreement: 'ag-bank-tax', count: 2, day: '2026-12-02' })
  t.match(recs[2], { status: 'ok', respDigest: jwsDigest(respJws), requestIndex: 0 })
  t.equal((await stores.evidence.getJws(0))?.jws, body.jws, 'the request JWS kept with request-in')
  t.equal((await stores.evidence.getJws(2))?.jws, respJws, 'the response JWS kept with response-out')
  t.same((await stores.evidence.getDisclosures(0, NOW))?.disclosures, body.disclosures, 'disclosures kept (sealed) with request-in')
  t.equal(await stores.quotas.used('ag-bank-tax', '2026-12-02'), 2, 'counted against the quota')
  for (const r of recs) t.notMatch(JSON.stringify(r), /A-1|Z-9/, `${r.t} holds no subject`)
})

t.test('replay: a retry gets the first response; the same xid with another request is refused', async (t) => {
  const { provider, stores, data } = await makeProvider()
  const { body, payload } = plainRequest(['A-1'])
  const [first, concurrent] = await Promise.all([provider.handle(body), provider.handle(body)])
  const again = await provider.handle(body)
  t.equal(concurrent.body.jws, first.body.jws, 'a concurrent duplicate shares the first answer')
  t.equal(again.body.jws, first.body.jws, 'a later retry gets the same signed response')
  t.equal(await stores.log.size(), 3, 'answered and logged once')
  t.equal(data.lookups, 1)
  const other = plainRequest(['A-2'], { xid: payload.xid })
  await t.rejects(provider.handle(other.body), { code: 'VN_ERR_EXCH_REPLAY' })
  t.equal(await stores.log.size(), 3, 'a refused replay writes nothing')
  // the xid is per issuer: a refused request under it did not take it from anyone
  t.equal(await stores.quotas.used('ag-bank-tax', '2026-12-02'), 1)
})

t.test('a request refused before the decision writes nothing, and its xid may be used again', async (t) => {
  const { provider, stores } = await makeProvider()
  const { body, payload } = plainRequest(['A-1'])
  await t.rejects(provider.handle({ ...body, disclosures: [] }), { code: 'VN_ERR_EXCH_DISCLOSURE' }, 'disclosures missing')
  await t.rejects(provider.handle(plainRequest(['A-1'], { aud: 'someone-else' }).body), { code: 'VN_ERR_EXCH_WRONG_AUDIENCE' })
  await t.rejects(provider.handle(plainRequest(['A-1'], { iat: NOW - 3_600_000 }).body), { code: 'VN_ERR_EXCH_STALE' })
  await t.rejects(provider.handle(plainRequest(['A-1'], { svc: 'tax.other' }).body), { code: 'VN_ERR_POLICY_UNKNOWN_SERVICE' })
  await t.rejects(provider.handle(plainRequest(['A-1'], {}, KEYS[PROVIDER]).body), { code: 'VN_ERR_EXCH_ISSUER_MISMATCH' }, 'iss is not the signer')
  await t.rejects(provider.handle({ jws: 'x' }), { code: 'VN_ERR_JWS_MALFORMED' })
  t.equal(await stores.log.size(), 0, 'nothing logged')
  t.equal(await stores.quotas.used('ag-bank-tax', '2026-12-02'), 0, 'nothing counted')
  const ok = await provider.handle(body)
  t.equal(ok.status, 200, `xid ${payload.xid.slice(0, 4)}… was released by the failure and is usable`)
})

t.test('quota: a batch that does not fit is denied whole, signed and logged, and nothing is looked up', async (t) => {
  const { provider, stores, data, records } = await makeProvider({ agreements: [agreement({ dailyQuota: 3 })] })
  t.equal((await provider.handle(plainRequest(['A-1', 'A-2']).body)).status, 200)
  const denied = await provider.handle(plainRequest(['A-1', 'A-2']).body)
  t.equal(denied.status, 429)
  t.equal(denied.problem, true)
  t.equal(denied.body.code, 'VN_ERR_POLICY_QUOTA_EXHAUSTED')
  const resp = claimsOf(denied.body.jws as string)
  t.match(resp, { status: 'denied', error: { code: 'VN_ERR_POLICY_QUOTA_EXHAUSTED' }, log: { index: 3 } }, 'the denial is signed')
  t.notOk('results' in resp, 'no answer in a denial')
  t.equal(data.lookups, 2, 'no lookup for the denied batch')
  const recs = await records()
  t.match(recs[4], { t: 'decision', permit: false, code: 'VN_ERR_POLICY_QUOTA_EXHAUSTED', count: 2 })
  t.equal(await stores.quotas.used('ag-bank-tax', '2026-12-02'), 2, 'the denied batch counted nothing')
  t.equal((await provider.handle(plainRequest(['A-3']).body)).status, 200, 'one more subject still fits')
  t.equal((await provider.handle(plainRequest(['A-3']).body)).status, 429, 'and then the day is full')
})

t.test('no agreement: a signed denial, logged, with nothing looked up', async (t) => {
  const { provider, data, records } = await makeProvider({ agreements: [agreement({ purposes: ['something else'] })] })
  const r = await provider.handle(plainRequest(['A-1']).body)
  t.equal(r.status, 403)
  t.equal(r.body.code, 'VN_ERR_POLICY_NO_AGREEMENT')
  t.equal(data.lookups, 0)
  t.same((await records()).map((x) => x.t), ['request-in', 'decision', 'response-out'])
})

t.test('after a restart, a remembered exchange answers retries and refuses replays', async (t) => {
  const before = await makeProvider()
  const { body, payload } = plainRequest(['A-1'])
  const first = await before.provider.handle(body)
  // the same log and evidence after a restart: a fresh replay memory, re-armed from the log
  const { provider, stores } = await makeProvider({ deps: { log: await StoreNodeLog.open(before.stores.log), evidence: before.stores.evidence } })
  const responseOut = (await before.records()).findIndex((r) => r.t === 'response-out')
  await provider.remember(CONSUMER, payload.xid, jwsDigest(body.jws), responseOut, NOW)
  t.equal(stores.replay.size, 1)
  t.same(await provider.handle(body), first, 'the first signed reply, read back from the log, without a new exchange')
  await t.rejects(provider.handle(plainRequest(['A-2'], { xid: payload.xid }).body), { code: 'VN_ERR_EXCH_REPLAY' })
  t.equal(await before.stores.log.size(), 3, 'nothing more written')
})

t.test('log before answer: when the log cannot be written, no answer is released', async (t) => {
  const { provider, stores } = await makeProvider()
  stores.log.failNextCommit()
  await t.rejects(provider.handle(plainRequest(['A-1']).body), { code: 'VN_ERR_LOG_UNAVAILABLE' })
  await t.rejects(provider.handle(plainRequest(['A-2']).body), { code: 'VN_ERR_LOG_UNAVAILABLE' }, 'and the log stays closed')
  t.equal(await stores.log.size(), 0)
})
