/**
 * The public and local apps through `inject()` over a stub node (test/helper-apps.ts): routing,
 * media types, error mapping to coded RFC 9457 problems (server errors leave with their code only;
 * the detail goes to the node's log), authentication hooks, canonical numbers only, and what
 * reaches the node. No node, store or socket: the exchanges themselves are tested end to end
 * elsewhere.
 */
import t from 'tap'
import type { InjectOptions } from 'fastify'
import { Readable } from 'node:stream'
import { APP_TOKEN, SELF, buildApps, capture, publicAppOf, stubNode } from '../helper-apps.js'
import { VnError } from '../../src/errors.js'

const PROBLEM = 'application/problem+json; charset=utf-8'

t.test('public: health and readiness; metrics only on the local listener, without a token', async (t) => {
  let ok = true
  const { node } = stubNode({ ready: async () => ({ ok, checks: { log: { ok } } }) })
  const { publicApp, localApp } = await buildApps(t, node)
  t.same((await publicApp.inject('/healthz')).json(), { status: 'ok' })
  const ready = await publicApp.inject('/readyz')
  t.same([ready.statusCode, ready.json()], [200, { status: 'ready', checks: { log: { ok: true } } }])
  ok = false
  const notReady = await publicApp.inject('/readyz')
  t.same([notReady.statusCode, notReady.json().status], [503, 'not-ready'])
  t.equal((await publicApp.inject('/metrics')).statusCode, 404, 'peers do not see the metrics')
  const m = await localApp.inject('/metrics')
  t.equal(m.statusCode, 200)
  t.match(m.headers['content-type'], /^text\/plain/)
  t.match(m.body, /verinode_exchanges_total/)
})

t.test('public: the signed catalog, cacheable for a minute', async (t) => {
  const { node } = stubNode()
  const { publicApp } = await buildApps(t, node)
  const r = await publicApp.inject('/v1/catalog')
  t.same([r.statusCode, r.json(), r.headers['cache-control']], [200, { jws: 'catalog.jws.sig' }, 'max-age=60'])
})

t.test('public: POST /v1/exchange hands the parsed body to the provider and sends its reply', async (t) => {
  const replies = [
    { status: 200, body: { jws: 'a.b.c' }, problem: false, xid: 'x1' },
    { status: 403, body: { code: 'VN_ERR_POLICY_NO_AGREEMENT', jws: 'd.e.f' }, problem: true, xid: 'x2' },
  ]
  const { node, calls } = stubNode({ provider: { handle: async (b: unknown) => { (calls['handle'] ??= []).push([b]); return replies.shift() } } })
  const { publicApp } = await buildApps(t, node)
  const ok = await publicApp.inject({ method: 'POST', url: '/v1/exchange', payload: { jws: 'req', disclosures: [] } })
  t.same([ok.statusCode, ok.json()], [200, { jws: 'a.b.c' }])
  t.match(ok.headers['content-type'], /^application\/json/)
  t.same(calls['handle'], [[{ jws: 'req', disclosures: [] }]], 'the body as parsed JSON')
  const denied = await publicApp.inject({ method: 'POST', url: '/v1/exchange', payload: { jws: 'req2' } })
  t.same([denied.statusCode, denied.headers['content-type'], denied.json()], [403, PROBLEM, { code: 'VN_ERR_POLICY_NO_AGREEMENT', jws: 'd.e.f' }])
})

t.test('public: bad requests are coded problems before the provider sees them, and counted', async (t) => {
  const { node, calls } = stubNode()
  const { publicApp } = await buildApps(t, node)
  const cases: Array<[string, InjectOptions, number, string]> = [
    ['malformed JSON', { method: 'POST', url: '/v1/exchange', headers: { 'content-type': 'application/json' }, payload: '{"jws": "abc' }, 400, 'VN_ERR_REQ_MALFORMED_JSON'],
    ['empty JSON body', { method: 'POST', url: '/v1/exchange', headers: { 'content-type': 'application/json' }, payload: '' }, 400, 'VN_ERR_REQ_MALFORMED_JSON'],
    ['text/plain', { method: 'POST', url: '/v1/exchange', headers: { 'content-type': 'text/plain' }, payload: 'x' }, 415, 'VN_ERR_REQ_UNSUPPORTED_MEDIA'],
    ['over the body limit', { method: 'POST', url: '/v1/exchange', payload: { jws: 'a'.repeat(65 * 1024) } }, 413, 'VN_ERR_REQ_TOO_LARGE'],
    ['unknown route', { method: 'GET', url: '/v1/nothing-here' }, 404, 'VN_ERR_REQ_NOT_FOUND'],
    ['wrong method', { method: 'PUT', url: '/v1/exchange', payload: {} }, 404, 'VN_ERR_REQ_NOT_FOUND'],
  ]
  for (const [name, req, status, code] of cases) {
    const r = await publicApp.inject(req)
    t.equal(r.statusCode, status, `${name}: status`)
    t.equal(r.headers['content-type'], PROBLEM, `${name}: a problem document`)
    t.same([r.json().code, r.json().status], [code, status], `${name}: code`)
  }
  t.equal(calls['provider.handle'], undefined, 'the provider was never called')
  const metrics = await node.metrics.registry.getSingleMetricAsString('verinode_requests_rejected_total')
  for (const code of ['VN_ERR_REQ_MALFORMED_JSON', 'VN_ERR_REQ_UNSUPPORTED_MEDIA', 'VN_ERR_REQ_TOO_LARGE']) {
    t.match(metrics, new RegExp(`code="${code}"`), `${code} counted`)
  }
})

t.test('public: a 5xx body carries code, title and status only; the detail goes to the log', async (t) => {
  const secret = 'SQLITE_CORRUPT: database disk image is malformed (/var/lib/verinode/log.db)'
  for (const [what, thrown, code, status] of [
    ['a coded server error', new VnError('VN_ERR_SOURCE_QUERY', secret), 'VN_ERR_SOURCE_QUERY', 500],
    ['a 503 with a detail', new VnError('VN_ERR_LOG_UNAVAILABLE', secret), 'VN_ERR_LOG_UNAVAILABLE', 503],
    ['an unexpected error', new Error(secret), 'VN_ERR_INTERNAL', 500],
  ] as const) {
    const { logger, lines } = capture()
    const { node } = stubNode({ logger, provider: { handle: async () => { throw thrown } } })
    const { publicApp } = await buildApps(t, node)
    const res = await publicApp.inject({ method: 'POST', url: '/v1/exchange', payload: { jws: 'a.b.c' } })
    t.same([res.statusCode, res.headers['content-type']], [status, PROBLEM], what)
    const body = res.json() as Record<string, unknown>
    t.same(Object.keys(body).sort(), ['code', 'status', 'title', 'type'], `${what}: no detail`)
    t.equal(body.code, code)
    t.notMatch(res.body, /SQLITE|malformed|\/var\/lib/, `${what}: nothing of the cause in the body`)
    const logged = lines.find((l) => l.msg === 'request failed')
    t.match(JSON.stringify(logged), /SQLITE_CORRUPT/, `${what}: the node's own log has the detail`)
    t.equal(logged?.code, code)
  }
})

t.test('public: a 4xx body keeps its detail', async (t) => {
  const { node } = stubNode()
  const { publicApp } = await buildApps(t, node)
  const res = await publicApp.inject('/v1/log/proof/inclusion?index=5&size=2')
  t.same([res.statusCode, res.json().code, res.json().detail], [400, 'VN_ERR_LOG_PROOF', 'index must be below size'])
})

t.test('public: tag sets — none offered, still building, served with ETag, 304 on a match', async (t) => {
  const none = stubNode()
  const a = await buildApps(t, none.node)
  const r404 = await a.publicApp.inject('/v1/services/identity.match/tagset')
  t.same([r404.statusCode, r404.json().code], [404, 'VN_ERR_POLICY_UNKNOWN_SERVICE'])

  let pending = true
  const bytes = Buffer.from([0xde, 0xad, 0xbe, 0xef])
  const published = { bytes, size: bytes.length, body: () => Readable.from([bytes]), etag: '"e1"' }
  const seen: string[] = []
  const { node } = stubNode({
    tagsets: {
      current: (svc: string) => {
        seen.push(svc)
        if (pending) throw new VnError('VN_ERR_OPRF_TAGSET_PENDING', `${svc}: 10 records evaluated so far`)
        return published
      },
      responseHeaders: () => ({ etag: published.etag, 'cache-control': 'max-age=30' }),
    },
  })
  const { publicApp } = await buildApps(t, node)
  const busy = await publicApp.inject('/v1/services/identity.match/tagset')
  t.same([busy.statusCode, busy.headers['retry-after'], busy.json().code], [503, '5', 'VN_ERR_OPRF_TAGSET_PENDING'])
  pending = false
  const got = await publicApp.inject('/v1/services/identity.match/tagset')
  t.same([got.statusCode, got.headers['content-type'], got.headers.etag, got.headers['cache-control']], [200, 'application/octet-stream', '"e1"', 'max-age=30'])
  t.same(got.rawPayload, published.bytes, 'the bytes as published')
  const same = await publicApp.inject({ url: '/v1/services/identity.match/tagset', headers: { 'if-none-match': 'W/"e1"' } })
  t.same([same.statusCode, same.body, same.headers.etag], [304, '', '"e1"'], 'not modified, headers kept')
  const other = await publicApp.inject({ url: '/v1/services/identity.match/tagset', headers: { 'if-none-match': '"e0"' } })
  t.equal(other.statusCode, 200)
  t.same(seen, ['identity.match', 'identity.match', 'identity.match', 'identity.match'], 'the service from the path')
})

t.test('public: log endpoints check their input before the log is read', async (t) => {
  const noKeys = () => { throw new VnError('VN_ERR_JWS_UNKNOWN_KID') }
  const { node, calls } = stubNode({ federation: { get: () => ({ messageKeyResolver: () => noKeys }) } })
  const { publicApp } = await buildApps(t, node)
  const cp = await publicApp.inject('/v1/log/checkpoint')
  t.same([cp.statusCode, cp.headers['content-type'], cp.body], [200, 'text/plain; charset=utf-8', 'origin\n0\nroot\n\n— sig\n'])

  const inc = await publicApp.inject('/v1/log/proof/inclusion?index=1&size=2')
  t.same(inc.json(), { index: 1, size: 2, proof: ['AQID'] })
  t.same(calls['log.inclusionProof'], [[1, 2]])
  const con = await publicApp.inject('/v1/log/proof/consistency?first=1&second=3')
  t.same(con.json(), { first: 1, second: 3, proof: ['BAU='] })
  for (const url of [
    '/v1/log/proof/inclusion?index=2&size=2', '/v1/log/proof/inclusion?index=-1&size=2', '/v1/log/proof/inclusion?index=1',
    '/v1/log/proof/inclusion?index=1&size=2&extra=1', '/v1/log/proof/inclusion?index=a&size=2',
    '/v1/log/proof/consistency?first=3&second=1', '/v1/log/proof/consistency?first=1.5&second=3',
  ]) {
    const r = await publicApp.inject(url)
    t.same([r.statusCode, r.json().code], [400, 'VN_ERR_LOG_PROOF'], url)
  }
  t.equal(calls['log.inclusionProof']?.length, 1, 'no proof computed for a bad query')
  t.equal(calls['log.consistencyProof']?.length, 1)

  const noAuth = await publicApp.inject('/v1/log/entries?start=0&end=1')
  t.same([noAuth.statusCode, noAuth.json().code], [401, 'VN_ERR_LOCAL_UNAUTHORIZED'], 'entries need a signed member request')
  const badAuth = await publicApp.inject({ url: '/v1/log/entries?start=0&end=1', headers: { authorization: 'Bearer nope' } })
  t.equal(badAuth.json().code, 'VN_ERR_LOCAL_UNAUTHORIZED')
  const unknownKey = await publicApp.inject({ url: '/v1/log/entries?start=0&end=1', headers: { authorization: 'VN-JWS a.b.c' } })
  t.not(unknownKey.statusCode, 200, 'a signed request is checked against the federation\'s keys')
})

t.test('public: proof and entries endpoints take canonical decimal integers only', async (t) => {
  const bad = ['0x1', '1e0', '%201', '1%20', '', '01', '-1', '%2B1', '1.0', '1.', 'NaN', 'Infinity', '9007199254740992', '1&index=2']
  for (const [path, a, b] of [['/v1/log/proof/inclusion', 'index', 'size'], ['/v1/log/proof/consistency', 'first', 'second'], ['/v1/log/entries', 'start', 'end']] as const) {
    const { app, calls } = await publicAppOf(t)
    for (const v of bad) {
      for (const url of [`${path}?${a}=${v}&${b}=3`, `${path}?${a}=0&${b}=${v}`]) {
        const res = await app.inject({ method: 'GET', url, headers: { authorization: 'VN-JWS x' } })
        t.same([res.statusCode, res.json().code], [400, 'VN_ERR_LOG_PROOF'], url)
      }
    }
    t.same(calls.proofs, [], `${path}: nothing read for a bad number`)
    t.equal((await app.inject({ method: 'GET', url: `${path}?${a}=${path.endsWith('inclusion') ? 1 : 0}&${b}=9007199254740991`, headers: { authorization: 'VN-JWS x' } })).statusCode, 200)
    t.equal((await app.inject({ method: 'GET', url: `${path}?${a}=0&${b}=10`, headers: { authorization: 'VN-JWS x' } })).statusCode, 200)
    const kind = path.split('/').at(-1) as string
    t.same(calls.proofs, [[kind, path.endsWith('inclusion') ? 1 : 0, 9007199254740991], [kind, 0, 10]], `${path}: read as numbers`)
  }
})

t.test('public: cosignatures are validated, then handed to the node', async (t) => {
  const { node, calls } = stubNode({ config: { limits: { bodyBytes: 256 * 1024, skewMs: 60_000 } } })
  const { publicApp } = await buildApps(t, node)
  for (const payload of [{}, { witness: '', note: 'n' }, { witness: 'fj-tax' }, { witness: 'fj-tax', note: 'n', extra: 1 }, { witness: 'fj-tax', note: 'x'.repeat(64 * 1024 + 1) }]) {
    const r = await publicApp.inject({ method: 'POST', url: '/v1/log/cosignature', payload })
    t.same([r.statusCode, r.json().code], [400, 'VN_ERR_REQ_INVALID'], JSON.stringify(payload).slice(0, 60))
  }
  t.equal(calls['acceptCosignature'], undefined)
  const r = await publicApp.inject({ method: 'POST', url: '/v1/log/cosignature', payload: { witness: 'fj-tax', note: 'signed note' } })
  t.same([r.statusCode, r.body], [204, ''])
  t.same(calls['acceptCosignature'], [['fj-tax', 'signed note']])
})

t.test('local: every route but the OpenAPI document needs the application token', async (t) => {
  const { node, calls } = stubNode({ federation: { get: () => ({ departments: () => [] }) } })
  const { localApp } = await buildApps(t, node)
  const doc = await localApp.inject('/local/v1/openapi.json')
  t.equal(doc.statusCode, 200)
  t.equal(doc.json().openapi, '3.1.0')
  t.ok(doc.json().paths['/local/v1/verify'], 'describes verify')
  t.equal(calls['authenticateApp'], undefined, 'no token asked for the document')
  for (const [method, url] of [['POST', '/local/v1/verify'], ['GET', '/local/v1/peers'], ['GET', '/local/v1/peers/fj-tax/catalog'], ['GET', '/local/v1/receipts/fj-tax/0']] as const) {
    for (const authorization of [undefined, 'Bearer wrong', `Basic ${APP_TOKEN}`, APP_TOKEN]) {
      const r = await localApp.inject({ method, url, headers: authorization === undefined ? {} : { authorization }, ...(method === 'POST' ? { payload: {} } : {}) })
      t.same([r.statusCode, r.headers['content-type'], r.json().code], [401, PROBLEM, 'VN_ERR_LOCAL_UNAUTHORIZED'], `${method} ${url} with ${authorization ?? 'no header'}`)
      const bearer = authorization?.startsWith('Bearer ') === true
      t.equal(r.headers['www-authenticate'], bearer ? 'Bearer realm="verinode-local", error="invalid_token"' : 'Bearer realm="verinode-local"', 'the 401 names the scheme')
      t.notMatch(r.body, APP_TOKEN, 'the token is not echoed')
    }
  }
  t.equal(calls['consumer.verify'], undefined)
  t.equal(calls['consumer.catalog'], undefined)
  const ok = await localApp.inject({ url: '/local/v1/peers', headers: { authorization: `Bearer ${APP_TOKEN}` } })
  t.equal(ok.statusCode, 200)
  t.equal((await localApp.inject('/local/v1/nowhere')).statusCode, 401, 'unknown paths need the token too')
  t.equal((await localApp.inject({ url: '/local/v1/nowhere', headers: { authorization: `Bearer ${APP_TOKEN}` } })).statusCode, 404)
})

const auth = { authorization: `Bearer ${APP_TOKEN}` }
const ask = { provider: 'fj-psb', service: 'identity.match', purpose: 'taxpayer-registration', basis: 'Tax Collection Administration Law art. 15', subjects: [{ id: 'x', name: 'y' }] }

t.test('local: verify validates the request, defaults the mode, and passes the answer through', async (t) => {
  const { node, calls } = stubNode()
  const { localApp } = await buildApps(t, node)
  const bad: Array<[string, unknown]> = [
    ['no subjects', { ...ask, subjects: [] }],
    ['unknown member', { ...ask, extra: 1 }],
    ['bad provider id', { ...ask, provider: 'Not A Member!' }],
    ['empty purpose', { ...ask, purpose: '' }],
    ['unknown mode', { ...ask, mode: 'quantum' }],
    ['subject value not a string or number', { ...ask, subjects: [{ id: { nested: 1 } }] }],
    ['not an object', [ask]],
  ]
  for (const [name, payload] of bad) {
    const r = await localApp.inject({ method: 'POST', url: '/local/v1/verify', headers: auth, payload: payload as object })
    t.same([r.statusCode, r.headers['content-type'], r.json().code], [400, PROBLEM, 'VN_ERR_REQ_INVALID'], name)
  }
  t.equal(calls['consumer.verify'], undefined, 'nothing reached the consumer')
  const r = await localApp.inject({ method: 'POST', url: '/local/v1/verify', headers: auth, payload: ask })
  t.same([r.statusCode, r.json()], [200, { xid: 'x', provider: 'fj-psb', service: 'identity.match', status: 'ok', results: [] }])
  t.same(calls['consumer.verify'], [[{ ...ask, mode: 'plain' }]], 'mode plain by default')
})

t.test('local: a signed denial keeps its record and takes the problem\'s status and code', async (t) => {
  const error = { type: 'urn:verinode:error:VN_ERR_POLICY_QUOTA_EXHAUSTED', title: 'Daily quota exhausted', status: 429, code: 'VN_ERR_POLICY_QUOTA_EXHAUSTED' }
  const denial = { xid: 'x9', provider: 'fj-psb', service: 'identity.match', status: 'denied', error, jws: 'signed.denial' }
  const { node } = stubNode({ consumer: { verify: async () => denial } })
  const { localApp } = await buildApps(t, node)
  const r = await localApp.inject({ method: 'POST', url: '/local/v1/verify', headers: auth, payload: ask })
  t.same([r.statusCode, r.headers['content-type']], [429, PROBLEM])
  t.same(r.json(), { ...error, ...denial }, 'the problem members and the whole signed record')
})

t.test('local: peers, a peer\'s catalog and receipts', async (t) => {
  const members = [
    { id: SELF, name: 'self', endpoint: 'http://127.0.0.1:1', role: 'department' },
    { id: 'fj-tax', name: 'tax', endpoint: 'http://127.0.0.1:2', role: 'department' },
  ]
  const { node, calls } = stubNode({ federation: { get: () => ({ departments: () => members }) } })
  const { localApp } = await buildApps(t, node)
  const peers = await localApp.inject({ url: '/local/v1/peers', headers: auth })
  t.same(peers.json(), [{ id: 'fj-tax', name: 'tax', endpoint: 'http://127.0.0.1:2' }], 'every department but this node, three fields')
  const cat = await localApp.inject({ url: '/local/v1/peers/fj-tax/catalog', headers: auth })
  t.same([cat.statusCode, cat.json()], [200, { provider: 'fj-tax', services: [] }])
  t.same(calls['consumer.catalog'], [['fj-tax', true]], 'fetched fresh')
  for (const index of ['-1', '1.5', 'abc', '9007199254740992', '0x1', '1e0', '%201', '01']) {
    const r = await localApp.inject({ url: `/local/v1/receipts/fj-tax/${index}`, headers: auth })
    t.same([r.statusCode, r.json().code], [400, 'VN_ERR_REQ_INVALID'], `index ${index}`)
  }
  t.equal(calls['peerLogs.receipt'], undefined)
  const rc = await localApp.inject({ url: '/local/v1/receipts/fj-tax/7', headers: auth })
  t.same(rc.json(), { peer: 'fj-tax', index: 7 })
  t.equal(calls['checkpoint']?.length, 1, 'a checkpoint is taken first, so the receipt can be proved')
  t.same(calls['peerLogs.receipt'], [['fj-tax', 7]])
})

t.test('local: JSON only, with the local body limit (four times the public one)', async (t) => {
  const { node, calls } = stubNode()
  const { localApp } = await buildApps(t, node)
  const media = await localApp.inject({ method: 'POST', url: '/local/v1/verify', headers: { ...auth, 'content-type': 'text/plain' }, payload: 'x' })
  t.same([media.statusCode, media.json().code], [415, 'VN_ERR_REQ_UNSUPPORTED_MEDIA'])
  const big = { ...ask, purpose: 'p', subjects: [{ id: 'x'.repeat(100 * 1024) }] }
  const fits = await localApp.inject({ method: 'POST', url: '/local/v1/verify', headers: auth, payload: big })
  t.equal(fits.statusCode, 200, '100 kB is over the public limit but within the local one')
  const tooBig = await localApp.inject({ method: 'POST', url: '/local/v1/verify', headers: auth, payload: { ...big, subjects: [{ id: 'x'.repeat(257 * 1024) }] } })
  t.same([tooBig.statusCode, tooBig.json().code], [413, 'VN_ERR_REQ_TOO_LARGE'])
  t.equal(calls['consumer.verify']?.length, 1)
})

t.test('local: a consumer-side 502 reaches the application as its code, not the peer\'s address', async (t) => {
  const { logger, lines } = capture()
  const { node } = stubNode({ logger, consumer: { verify: async () => { throw new VnError('VN_ERR_PEER_UNREACHABLE', 'fj-psb.internal:7100: connect ECONNREFUSED 10.1.2.3:7100') } } })
  const { localApp } = await buildApps(t, node)
  const v = await localApp.inject({ method: 'POST', url: '/local/v1/verify', headers: auth, payload: ask })
  t.same([v.statusCode, v.json().code], [502, 'VN_ERR_PEER_UNREACHABLE'])
  t.notOk('detail' in (v.json() as object), 'no detail')
  t.notMatch(v.body, /ECONNREFUSED|10\.1\.2\.3/)
  t.match(JSON.stringify(lines.find((l) => l.msg === 'request failed')), /ECONNREFUSED/, 'the node\'s own log has it')
})
