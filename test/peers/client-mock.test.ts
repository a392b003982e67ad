/**
 * The peer client (src/peers/client.ts) against undici's MockAgent: no sockets, so every retry,
 * status and error path is cheap to pin down. What a mock cannot show (undici enforcing the
 * timeouts the client sets) is checked against a loopback server that never answers.
 */
import t, { type Test } from 'tap'
import { createServer } from 'node:http'
import { MockAgent, errors, type Dispatcher } from 'undici'
import { PeerClient, type PeerClientOptions } from '../../src/peers/client.js'

const ORIGIN = 'http://127.0.0.1:7100'

interface Mocked {
  client: PeerClient
  agent: MockAgent
  pool: ReturnType<MockAgent['get']>
  /** origins the client asked a dispatcher for, in order */
  origins: string[]
}

/** A PeerClient whose every origin goes to one MockAgent that refuses real connections. */
function mocked(t: Test, opts: Partial<PeerClientOptions> = {}): Mocked {
  const agent = new MockAgent()
  agent.disableNetConnect()
  const origins: string[] = []
  const client = new PeerClient({
    timeoutMs: 1000, retries: 2, connections: 1, insecure: false,
    dispatcherFor: (origin): Dispatcher => { origins.push(origin); return agent },
    ...opts,
  })
  // client.close() closes the dispatchers it was given (here: the agent)
  t.teardown(async () => {
    await client.close()
    if (origins.length === 0) await agent.close()
  })
  return { client, agent, pool: agent.get(ORIGIN), origins }
}

const json = { 'content-type': 'application/json' }

t.test('a 502/503/504 is retried with the very same body (same xid); the final answer is returned', async (t) => {
  const m = mocked(t, { retries: 3 })
  const bodies: unknown[] = []
  const answers: Array<[number, string]> = [[503, '{}'], [502, 'bad gateway'], [504, ''], [200, '{"jws":"x"}']]
  for (const [statusCode, data] of answers) {
    m.pool.intercept({ path: '/v1/exchange', method: 'POST' })
      .reply((o) => { bodies.push(o.body); return { statusCode, data, responseOptions: { headers: json } } })
  }
  const body = '{"xid":"AAAAAAAAAAAAAAAAAAAAAA"}'
  const r = await m.client.post(ORIGIN, '/v1/exchange', body)
  t.same(r, { statusCode: 200, contentType: 'application/json', json: { jws: 'x' } })
  t.same(bodies, [body, body, body, body], 'four attempts, the same bytes each time')
  t.same(m.origins, [ORIGIN], 'one dispatcher for the origin, reused by every attempt')
  m.agent.assertNoPendingInterceptors()
})

t.test('when the retries run out on a 503, that answer is returned as it is', async (t) => {
  const m = mocked(t, { retries: 1 })
  m.pool.intercept({ path: '/v1/exchange', method: 'POST' }).reply(503, { code: 'VN_ERR_X' }, { headers: json }).times(2)
  const r = await m.client.post(ORIGIN, '/v1/exchange', '{}')
  t.same([r.statusCode, r.json], [503, { code: 'VN_ERR_X' }])
  m.agent.assertNoPendingInterceptors()
})

t.test('4xx and 500 are final: no retry', async (t) => {
  for (const status of [400, 401, 403, 409, 429, 500]) {
    const m = mocked(t, { retries: 3 })
    let n = 0
    m.pool.intercept({ path: '/v1/exchange', method: 'POST' }).reply(() => { n++; return { statusCode: status, data: { code: 'C' }, responseOptions: { headers: { 'content-type': 'application/problem+json' } } } }).persist()
    const r = await m.client.post(ORIGIN, '/v1/exchange', '{}')
    t.same([r.statusCode, r.contentType, r.json, n], [status, 'application/problem+json', { code: 'C' }, 1], `${status}: one attempt`)
  }
})

t.test('connection errors and timeouts are retried, then VN_ERR_PEER_UNREACHABLE with the cause', async (t) => {
  const cases: Array<[string, Error]> = [
    ['refused', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:7100'), { code: 'ECONNREFUSED' })],
    ['headers timeout', new errors.HeadersTimeoutError()],
    ['body timeout', new errors.BodyTimeoutError()],
    ['socket closed', new errors.SocketError('other side closed')],
  ]
  for (const [name, err] of cases) {
    const m = mocked(t, { retries: 1 })
    m.pool.intercept({ path: '/v1/exchange', method: 'POST' }).replyWithError(err).times(2)
    const e = await m.client.post(ORIGIN, '/v1/exchange', '{}').then(() => undefined, (x: unknown) => x as { code?: string; detail?: string; cause?: unknown })
    t.equal(e?.code, 'VN_ERR_PEER_UNREACHABLE', `${name}: coded`)
    t.match(e?.detail, /^127\.0\.0\.1:7100: /, `${name}: names the peer`)
    t.equal((e?.cause as Error | undefined)?.message, err.message, `${name}: the last error is the cause`)
    m.agent.assertNoPendingInterceptors()
  }
})

t.test('an error, then an answer: the retry succeeds', async (t) => {
  const m = mocked(t, { retries: 1 })
  m.pool.intercept({ path: '/v1/exchange', method: 'POST' }).replyWithError(new errors.SocketError('reset'))
  m.pool.intercept({ path: '/v1/exchange', method: 'POST' }).reply(200, { ok: true }, { headers: json })
  t.same((await m.client.post(ORIGIN, '/v1/exchange', '{}')).json, { ok: true })
})

t.test('a body that is not JSON is VN_ERR_PEER_BAD_RESPONSE at once; 204 and an empty body have json null', async (t) => {
  const m = mocked(t, { retries: 3 })
  m.pool.intercept({ path: '/html', method: 'POST' }).reply(200, '<html>proxy error</html>', { headers: { 'content-type': 'text/html' } })
  await t.rejects(m.client.post(ORIGIN, '/html', '{}'), { code: 'VN_ERR_PEER_BAD_RESPONSE', detail: /answered 200 with a body that is not JSON/ })
  m.agent.assertNoPendingInterceptors() // one interceptor, one attempt: not retried
  m.pool.intercept({ path: '/v1/log/cosignature', method: 'POST' }).reply(204, '')
  t.same(await m.client.post(ORIGIN, '/v1/log/cosignature', '{}'), { statusCode: 204, contentType: '', json: null })
  m.pool.intercept({ path: '/empty', method: 'GET' }).reply(200, '')
  t.same((await m.client.get(ORIGIN, '/empty')).json, null)
})

t.test('headers: POST sends JSON, GET only asks for it and carries the extra headers', async (t) => {
  const m = mocked(t)
  m.pool.intercept({ path: '/v1/exchange', method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json' } })
    .reply(200, {}, { headers: json })
  await m.client.post(ORIGIN, '/v1/exchange', '{}')
  let got: Record<string, string> = {}
  m.pool.intercept({ path: '/v1/log/entries?start=0&end=1', method: 'GET' })
    .reply((o) => { got = o.headers as Record<string, string>; return { statusCode: 200, data: '{}', responseOptions: { headers: json } } })
  await m.client.get(ORIGIN, '/v1/log/entries?start=0&end=1', { authorization: 'VN-JWS x.y.z' })
  t.equal(got.authorization, 'VN-JWS x.y.z')
  t.equal(got.accept, 'application/json')
  t.equal(got['content-type'], undefined, 'a GET has no body type')
  m.agent.assertNoPendingInterceptors()
})

t.test('an endpoint with a base path: paths are appended to it, one dispatcher per origin', async (t) => {
  const m = mocked(t)
  m.pool.intercept({ path: '/verinode/v1/catalog', method: 'GET' }).reply(200, { jws: 'c' }, { headers: json })
  t.same((await m.client.get(`${ORIGIN}/verinode/`, '/v1/catalog')).json, { jws: 'c' })
  m.agent.get('http://127.0.0.2:7100').intercept({ path: '/v1/catalog', method: 'GET' }).reply(200, {}, { headers: json })
  await m.client.get('http://127.0.0.2:7100', '/v1/catalog')
  m.pool.intercept({ path: '/v1/catalog', method: 'GET' }).reply(200, {}, { headers: json })
  await m.client.get(ORIGIN, '/v1/catalog')
  t.same(m.origins, [ORIGIN, 'http://127.0.0.2:7100'], 'a dispatcher per origin, made once')
})

t.test('getText: the text as sent, any status; a transport error is VN_ERR_PEER_UNREACHABLE, not retried', async (t) => {
  const m = mocked(t, { retries: 3 })
  m.pool.intercept({ path: '/v1/log/checkpoint', method: 'GET' }).reply(200, 'origin\n5\nroot\n\n— sig\n', { headers: { 'content-type': 'text/plain' } })
  t.same(await m.client.getText(ORIGIN, '/v1/log/checkpoint'), { statusCode: 200, text: 'origin\n5\nroot\n\n— sig\n' })
  m.pool.intercept({ path: '/v1/log/checkpoint', method: 'GET' }).reply(503, 'busy')
  t.same(await m.client.getText(ORIGIN, '/v1/log/checkpoint'), { statusCode: 503, text: 'busy' })
  m.pool.intercept({ path: '/v1/log/checkpoint', method: 'GET' }).replyWithError(new errors.SocketError('gone'))
  await t.rejects(m.client.getText(ORIGIN, '/v1/log/checkpoint'), { code: 'VN_ERR_PEER_UNREACHABLE', detail: '127.0.0.1:7100: gone' })
  m.agent.assertNoPendingInterceptors()
})

t.test('refused endpoints never reach the dispatcher', async (t) => {
  const m = mocked(t)
  await t.rejects(m.client.post('http://10.1.2.3:7100', '/v1/exchange', '{}'), { code: 'VN_ERR_PEER_INSECURE' })
  await t.rejects(m.client.get('ftp://127.0.0.1', '/v1/catalog'), { code: 'VN_ERR_PEER_UNKNOWN' })
  await t.rejects(m.client.getText('not a url', '/v1/log/checkpoint'), { code: 'VN_ERR_PEER_UNKNOWN' })
  t.same(m.origins, [], 'no dispatcher was made')
})

t.test('close() closes every dispatcher and forgets it', async (t) => {
  const closed: string[] = []
  const agent = new MockAgent()
  agent.disableNetConnect()
  t.teardown(() => agent.close())
  const client = new PeerClient({
    timeoutMs: 1000, retries: 0, connections: 1, insecure: false,
    dispatcherFor: (origin) => {
      const pool = agent.get(origin)
      return Object.assign(Object.create(pool) as Dispatcher, { close: async () => { closed.push(origin) } })
    },
  })
  agent.get(ORIGIN).intercept({ path: '/healthz', method: 'GET' }).reply(200, {}, { headers: json }).times(2)
  await client.get(ORIGIN, '/healthz')
  await client.close()
  t.same(closed, [ORIGIN])
  await client.get(ORIGIN, '/healthz')
  await client.close()
  t.same(closed, [ORIGIN, ORIGIN], 'a new dispatcher after close')
})

// Real socket: undici enforces the timeouts the client passes (a mock does not).
t.test('a peer that never answers: headers timeout, retried, then VN_ERR_PEER_UNREACHABLE', async (t) => {
  let requests = 0
  const server = createServer(() => { requests++ }) // accepts, never answers
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const port = (server.address() as { port: number }).port
  const client = new PeerClient({ timeoutMs: 150, retries: 1, connections: 1, insecure: false })
  t.teardown(() => client.close())
  const t0 = Date.now()
  const e = await client.post(`http://127.0.0.1:${port}`, '/v1/exchange', '{}').then(() => undefined, (x: unknown) => x as { code?: string; cause?: { code?: string } })
  t.equal(e?.code, 'VN_ERR_PEER_UNREACHABLE')
  t.equal(e?.cause?.code, 'UND_ERR_HEADERS_TIMEOUT')
  t.equal(requests, 2, 'two attempts')
  t.ok(Date.now() - t0 < 5000, 'the timeout was the client\'s, not a default')
  await t.rejects(client.getText(`http://127.0.0.1:${port}`, '/v1/log/checkpoint'), { code: 'VN_ERR_PEER_UNREACHABLE' })
})
