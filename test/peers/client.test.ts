import t from 'tap'
import { createServer } from 'node:http'
import { MockAgent } from 'undici'
import { checkEndpoint, isLoopbackHost, PeerClient } from '../../src/peers/client.js'

t.test('plain HTTP only to loopback unless insecure', async (t) => {
  for (const h of ['127.0.0.1', '127.9.9.9', 'localhost', '[::1]']) t.ok(isLoopbackHost(h), h)
  for (const h of ['10.0.0.1', '192.168.1.1', 'example.org', '128.0.0.1']) t.notOk(isLoopbackHost(h), h)
  t.throws(() => checkEndpoint('http://10.1.2.3:7100', false), { code: 'VN_ERR_PEER_INSECURE' })
  t.equal(checkEndpoint('http://10.1.2.3:7100', true).host, '10.1.2.3:7100')
  t.equal(checkEndpoint('https://tax.example.org', false).protocol, 'https:')
  t.throws(() => checkEndpoint('ftp://x', true), { code: 'VN_ERR_PEER_UNKNOWN' })
  t.throws(() => checkEndpoint('not a url', true), { code: 'VN_ERR_PEER_UNKNOWN' })
  const c = new PeerClient({ timeoutMs: 1000, retries: 0, connections: 1, insecure: false })
  await t.rejects(c.post('http://10.1.2.3:7100', '/v1/exchange', '{}'), { code: 'VN_ERR_PEER_INSECURE' }, 'refused before any connection')
  await c.close()
})

t.test('retries resend the same bytes; 4xx is not retried', async (t) => {
  const bodies: string[] = []
  let n = 0
  const server = createServer((req, res) => {
    let b = ''
    req.on('data', (c) => { b += c })
    req.on('end', () => {
      bodies.push(b)
      n++
      if (req.url === '/flaky' && n < 3) { res.writeHead(503); res.end('{}'); return }
      if (req.url === '/empty') { res.writeHead(204); res.end(); return }
      res.writeHead(req.url === '/bad' ? 400 : 200, { 'content-type': 'application/json' })
      res.end('{"ok":true}')
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => server.close())
  const port = (server.address() as { port: number }).port
  const c = new PeerClient({ timeoutMs: 2000, retries: 3, connections: 2, insecure: false })
  t.teardown(() => c.close())
  const r = await c.post(`http://127.0.0.1:${port}`, '/flaky', '{"xid":"same"}')
  t.equal(r.statusCode, 200)
  t.same(bodies, ['{"xid":"same"}', '{"xid":"same"}', '{"xid":"same"}'], 'same body each time')
  bodies.length = 0
  const bad = await c.post(`http://127.0.0.1:${port}`, '/bad', '{}')
  t.equal(bad.statusCode, 400)
  t.equal(bodies.length, 1, 'a 4xx is final')
  const empty = await c.post(`http://127.0.0.1:${port}`, '/empty', '{}')
  t.same([empty.statusCode, empty.json], [204, null], '204 No Content is a success without a body')
  const dead = new PeerClient({ timeoutMs: 500, retries: 1, connections: 1, insecure: false })
  await t.rejects(dead.post('http://127.0.0.1:1', '/x', '{}'), { code: 'VN_ERR_PEER_UNREACHABLE' })
  await dead.close()
})

t.test('binary GET (tag sets): headers pass through, bodies over the limit are not kept, no retry', async (t) => {
  const agent = new MockAgent()
  agent.disableNetConnect()
  const pool = agent.get('http://127.0.0.1:7100')
  const c = new PeerClient({ timeoutMs: 1000, retries: 3, connections: 1, insecure: false, dispatcherFor: () => pool })
  t.teardown(async () => { await c.close(); await agent.close() })
  const seen: unknown[] = []
  pool.intercept({ path: '/base/v1/services/s/tagset', method: 'GET' }).reply((o) => {
    seen.push(o.headers)
    return { statusCode: 200, data: Buffer.alloc(10, 1), responseOptions: { headers: { etag: '"e"', 'x-verinode-kid': ['fj-psb#k1', 'other'] } } }
  })
  const ok = await c.getBytes('http://127.0.0.1:7100/base/', '/v1/services/s/tagset', { 'if-none-match': '"d"' }, 10)
  t.same([ok.statusCode, ok.bytes?.length, ok.header('etag'), ok.header('x-verinode-kid')], [200, 10, '"e"', 'fj-psb#k1'])
  t.match(seen[0], { 'if-none-match': '"d"' }, 'request headers sent')
  pool.intercept({ path: '/v1/x', method: 'GET' }).reply(200, Buffer.alloc(11), { headers: { 'content-length': '11' } })
  const declared = await c.getBytes('http://127.0.0.1:7100', '/v1/x', {}, 10)
  t.same([declared.declaredBytes, declared.bytes], [11, undefined], 'declared too long: not read')
  pool.intercept({ path: '/v1/y', method: 'GET' }).reply(200, Buffer.alloc(11))
  const streamed = await c.getBytes('http://127.0.0.1:7100', '/v1/y', {}, 10)
  t.same([streamed.declaredBytes, streamed.bytes], [undefined, undefined], 'streamed too long: cut')
  pool.intercept({ path: '/v1/z', method: 'GET' }).reply(503, '{}')
  t.equal((await c.getBytes('http://127.0.0.1:7100', '/v1/z', {}, 10)).statusCode, 503, 'a 503 is returned, not retried')
  await t.rejects(c.getBytes('http://10.0.0.1:7100', '/v1/z', {}, 10), { code: 'VN_ERR_PEER_INSECURE' })
})

t.test('keepBytes (the exchange): the body is kept as received, not JSON is returned, a body past the limit is cut there', async (t) => {
  const big = Buffer.alloc(300_000, 0x61)
  const server = createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      if (req.url === '/html') { res.writeHead(200, { 'content-type': 'text/html' }); res.end('<html>\u00ff</html>'); return }
      if (req.url === '/big') { res.writeHead(200, { 'content-type': 'application/json' }); res.end(big); return }
      if (req.url === '/empty') { res.writeHead(200); res.end(); return }
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end('{"jws":"a.b.c"}')
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => server.close())
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`
  const c = new PeerClient({ timeoutMs: 2000, retries: 0, connections: 2, insecure: false })
  t.teardown(() => c.close())
  const keep = { maxBytes: 100_000 }
  const ok = await c.post(base, '/json', '{}', keep)
  t.same(ok.json, { jws: 'a.b.c' })
  t.equal(Buffer.from(ok.raw!).toString(), '{"jws":"a.b.c"}')
  t.equal(ok.truncated, false)
  const html = await c.post(base, '/html', '{}', keep)
  t.equal(html.json, undefined, 'not JSON: returned, not thrown')
  t.same(Buffer.from(html.raw!), Buffer.from('<html>\u00ff</html>'), 'the bytes as sent')
  await t.rejects(c.post(base, '/html', '{}'), { code: 'VN_ERR_PEER_BAD_RESPONSE' }, 'without keepBytes, as before')
  const cut = await c.post(base, '/big', '{}', keep)
  t.equal(cut.truncated, true)
  t.equal(cut.json, undefined)
  t.equal(cut.raw!.length, 100_000, 'kept up to the limit, no more')
  t.same((await c.post(base, '/empty', '{}', keep)).json, null)
  t.equal((await c.post(base, '/json', '{}', keep)).statusCode, 200, 'the client still works after a cut body')
})
