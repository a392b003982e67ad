/**
 * TLS between nodes on loopback, for real (issue 14 §1): mutual TLS 1.3 with each member's key
 * pinned by the manifest. A working exchange; a wrong server pin; no client certificate; a client
 * certificate of another member (and of no member); expired certificates on either side.
 */
import t from 'tap'
import { createPrivateKey, generateKeyPairSync, randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { createServer } from 'node:https'
import { createServer as createHttpServer } from 'node:http'
import { execFile } from 'node:child_process'
import { dirname, join } from 'node:path'
import type { TLSSocket } from 'node:tls'
import { Agent, buildConnector, request } from 'undici'
import { federationFixture } from '../helper.js'
import { selfSignedCertificate, spkiPin } from '../../src/crypto/tls-cert.js'
import { signJwsJson } from '../../src/crypto/jws.js'
import { loadPrivateKey } from '../../src/crypto/keys.js'
import { PeerClient } from '../../src/peers/client.js'
import { tlsKeyFiles } from '../../src/node/tls.js'
import { addTlsPin, removeTlsPin, signAuthorityManifest } from '../../src/federation/authority.js'

const HOUR = 3_600_000

/** An undici agent presenting `cert`/`key` (or no certificate), trusting any server certificate. */
function agentWith(cert?: string, key?: string): Agent {
  const connect = buildConnector({ rejectUnauthorized: false, maxCachedSessions: 0, ...(cert === undefined ? {} : { cert, key }) })
  return new Agent({ connect })
}

async function problem(url: string, agent: Agent, body?: unknown): Promise<{ status: number; code: unknown }> {
  const res = await request(url, {
    dispatcher: agent,
    method: body === undefined ? 'GET' : 'POST',
    ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
  })
  const text = await res.body.text()
  let code: unknown
  try {
    code = (JSON.parse(text) as { code?: unknown }).code
  } catch {
    code = text.slice(0, 40)
  }
  return { status: res.statusCode, code }
}

t.test('mutual TLS between two nodes, pinned by the manifest', async (t) => {
  const f = await federationFixture(t, { start: ['fj-psb', 'fj-tax'], tls: true })
  const psb = f.nodes['fj-psb']!
  t.match(psb.publicUrl, /^https:\/\//, 'the public listener serves https')
  const keysOf = (id: string): { key: string; cert: string } => tlsKeyFiles(join(dirname(f.fed.nodes[id]!.configPath), 'keys'))
  const pem = async (id: string): Promise<{ key: string; cert: string }> => ({ key: await readFile(keysOf(id).key, 'utf8'), cert: await readFile(keysOf(id).cert, 'utf8') })

  t.test('an exchange works end to end, and the connection is TLS 1.3', async (t) => {
    const s = f.fed.dataset.samples.identity
    const m = s.matches[0]!
    const r = await f.verify('fj-tax', {
      provider: 'fj-psb', service: 'identity.match', purpose: 'taxpayer-registration',
      basis: 'Tax Collection Administration Law art. 15', subjects: [{ id: m.id, name: m.name }],
    })
    t.equal(r.status, 200, JSON.stringify(r.json))
    t.same(r.json.results[0], { found: true, match: true, fields: { name: true } })

    // a receipt (a signed GET of the provider's log entry) and witnessing, over the same mutual TLS
    const tax = f.nodes['fj-tax']!
    const receipt = await request(`${tax.localUrl}/local/v1/receipts/fj-psb/${r.json.providerLogIndex}`, { headers: { authorization: `Bearer ${f.fed.nodes['fj-tax']!.appToken}` } })
    t.equal(receipt.statusCode, 200, await receipt.body.text())
    await tax.node.witnessAll()
    const size = await tax.node.log.size()
    const leaves = (await tax.node.log.entries(0, size)).map((b) => JSON.parse(Buffer.from(b).toString('utf8')) as { t: string; peer?: string })
    t.ok(leaves.some((x) => x.t === 'peer-checkpoint' && x.peer === 'fj-psb'), 'fj-tax witnessed fj-psb over mutual TLS')
    // the provider's own view of the protocol, through a client with fj-tax's certificate
    const own = await pem('fj-tax')
    let protocol: string | null = null
    const agent = new Agent({
      connect: (opts, cb) => buildConnector({ rejectUnauthorized: false, cert: own.cert, key: own.key, maxCachedSessions: 0 })(opts, (err, sock) => {
        if (sock !== null) protocol = (sock as TLSSocket).getProtocol()
        cb(err, sock as never)
      }),
    })
    t.teardown(() => agent.close())
    t.same(await problem(`${psb.publicUrl}/v1/catalog`, agent).then((p) => p.status), 200, 'a pinned member certificate reads the catalog')
    t.equal(protocol, 'TLSv1.3')
    const metrics = await psb.node.metrics.registry.metrics()
    t.match(metrics, /verinode_tls_certificate_expiry_seconds\{member="fj-psb"\} \d{10}/, 'certificate expiry gauge')
    const rd = await psb.node.ready()
    t.equal(rd.checks.tls?.ok, true, JSON.stringify(rd.checks.tls))
  })

  t.test('no client certificate: refused with a coded 401; health probes still answer', async (t) => {
    const agent = agentWith()
    t.teardown(() => agent.close())
    t.same(await problem(`${psb.publicUrl}/v1/exchange`, agent, { jws: 'a.b.c' }), { status: 401, code: 'VN_ERR_TLS_CLIENT_CERT_REQUIRED' })
    t.same(await problem(`${psb.publicUrl}/v1/catalog`, agent), { status: 401, code: 'VN_ERR_TLS_CLIENT_CERT_REQUIRED' })
    t.equal((await problem(`${psb.publicUrl}/healthz`, agent)).status, 200, '/healthz needs no certificate')
  })

  t.test('a certificate of no member: refused with a coded 403', async (t) => {
    const k = generateKeyPairSync('ed25519')
    const cert = selfSignedCertificate(k.privateKey, { commonName: 'stranger', notBefore: Date.now() - HOUR, notAfter: Date.now() + HOUR })
    const agent = agentWith(cert, k.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string)
    t.teardown(() => agent.close())
    t.same(await problem(`${psb.publicUrl}/v1/catalog`, agent), { status: 403, code: 'VN_ERR_TLS_CLIENT_UNKNOWN' })
  })

  t.test("a client certificate of another member: fj-tax's signed request over fj-credit's certificate is refused", async (t) => {
    const credit = await pem('fj-credit')
    const agent = agentWith(credit.cert, credit.key)
    t.teardown(() => agent.close())
    t.equal((await problem(`${psb.publicUrl}/v1/catalog`, agent)).status, 200, "fj-credit's own certificate is accepted")
    const taxKey = await loadPrivateKey(join(dirname(f.fed.nodes['fj-tax']!.configPath), 'keys', 'message.key'))
    const kid = [...psb.node.federation.get().member('fj-tax').messageKeys.values()][0]!.kid
    const jws = signJwsJson({
      v: 1, xid: randomBytes(16).toString('base64url'), iat: Date.now(), iss: 'fj-tax', aud: 'fj-psb', svc: 'identity.match',
      purpose: 'taxpayer-registration', basis: 'Tax Collection Administration Law art. 15', mode: 'plain',
      q: { subjects: [{ id: randomBytes(32).toString('base64url') }] },
    }, taxKey, `fj-tax#${kid}`, 'vn-req+jws')
    const before = await psb.node.log.size()
    t.same(await problem(`${psb.publicUrl}/v1/exchange`, agent, { jws }), { status: 403, code: 'VN_ERR_TLS_CLIENT_NOT_ISSUER' })
    t.equal(await psb.node.log.size(), before, 'nothing is written to the log')
  })

  t.test('expired certificates: a client one is refused by the provider, a server one by the consumer', async (t) => {
    const credit = await pem('fj-credit')
    const past = Date.now() - 48 * HOUR
    const expired = selfSignedCertificate(createPrivateKey(credit.key), { commonName: 'verinode fj-credit', notBefore: past, notAfter: past + HOUR })
    const agent = agentWith(expired, credit.key)
    t.teardown(() => agent.close())
    t.same(await problem(`${psb.publicUrl}/v1/catalog`, agent), { status: 403, code: 'VN_ERR_TLS_CLIENT_EXPIRED' }, 'pinned key, certificate out of date')

    // a server with fj-amr's pinned key but an expired certificate
    const amr = await pem('fj-amr')
    const server = createServer({ key: amr.key, cert: selfSignedCertificate(createPrivateKey(amr.key), { commonName: 'x', notBefore: past, notAfter: past + HOUR }), minVersion: 'TLSv1.3' }, (_q, s) => s.end('{}'))
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    t.teardown(() => new Promise<void>((r) => server.close(() => r())))
    const port = (server.address() as { port: number }).port
    const own = await pem('fj-tax')
    const client = new PeerClient({ timeoutMs: 5000, retries: 0, connections: 1, insecure: false, tls: { ...own, pinsFor: () => new Set([spkiPin(createPrivateKey(amr.key))]) } })
    t.teardown(() => client.close())
    await t.rejects(client.get(`https://127.0.0.1:${port}`, '/v1/catalog'), { code: 'VN_ERR_TLS_SERVER_EXPIRED' })
  })

  t.test("the Dockerfile's HEALTHCHECK passes against the TLS listener and a plain one, and fails without a listener", async (t) => {
    const dockerfile = await readFile(new URL('../../Dockerfile', import.meta.url), 'utf8')
    const cmd = JSON.parse(/^HEALTHCHECK .*?CMD (\[.*\])\s*$/m.exec(dockerfile)![1]!) as string[]
    const probe = (port: number): Promise<number | null> => new Promise((resolve) => {
      execFile(cmd[0] === 'node' ? process.execPath : cmd[0]!, cmd.slice(1), { env: { PATH: process.env.PATH, VERINODE_LISTEN_PORT: String(port) }, timeout: 10_000 }, (err) => {
        resolve(err === null ? 0 : typeof err.code === 'number' ? err.code : -1)
      })
    })
    t.equal(await probe(Number(new URL(psb.publicUrl).port)), 0, 'https listener (mutual TLS asked for, /healthz exempt)')
    const plain = createHttpServer((q, s) => { s.statusCode = q.url === '/healthz' ? 200 : 404; s.end('{}') })
    await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r))
    const port = (plain.address() as { port: number }).port
    t.equal(await probe(port), 0, 'plain http listener')
    await new Promise<void>((r) => plain.close(() => r()))
    t.not(await probe(port), 0, 'nothing listening')
  })

  t.test('a wrong server pin: the consumer refuses before sending anything', async (t) => {
    const own = await pem('fj-tax')
    const wrong = new PeerClient({ timeoutMs: 5000, retries: 0, connections: 1, insecure: false, tls: { ...own, pinsFor: () => new Set([randomBytes(32).toString('hex')]) } })
    const none = new PeerClient({ timeoutMs: 5000, retries: 0, connections: 1, insecure: false, tls: { ...own, pinsFor: () => new Set() } })
    const right = new PeerClient({ timeoutMs: 5000, retries: 0, connections: 1, insecure: false, tls: { ...own, pinsFor: (o) => psb.node.federation.get().tlsPinsForOrigin(o) } })
    t.teardown(async () => { await wrong.close(); await none.close(); await right.close() })
    await t.rejects(wrong.get(psb.publicUrl, '/v1/catalog'), { code: 'VN_ERR_TLS_SERVER_PIN' })
    await t.rejects(none.get(psb.publicUrl, '/v1/catalog'), { code: 'VN_ERR_TLS_NO_PIN' })
    t.equal((await right.get(psb.publicUrl, '/v1/catalog')).statusCode, 200, 'the pinned key is accepted')

    // pins that change under an open keep-alive connection (a newer manifest): the connection is
    // not reused, the next one is checked against the new pins
    let pins: ReadonlySet<string> = new Set([psb.node.tls!.pin])
    const moving = new PeerClient({ timeoutMs: 5000, retries: 0, connections: 1, insecure: false, tls: { ...own, pinsFor: () => pins } })
    t.teardown(() => moving.close())
    t.equal((await moving.get(psb.publicUrl, '/v1/catalog')).statusCode, 200)
    t.equal((await moving.get(psb.publicUrl, '/v1/catalog')).statusCode, 200, 'same pins: the connection is kept')
    pins = new Set([randomBytes(32).toString('hex')])
    await t.rejects(moving.get(psb.publicUrl, '/v1/catalog'), { code: 'VN_ERR_TLS_SERVER_PIN' }, 'the pin dropped: refused on the next request')
    t.same([...psb.node.federation.get().member('fj-psb').tlsPins], [psb.node.tls?.pin])
  })
  t.test("through the node: a manifest whose pin for fj-psb is not fj-psb's key stops fj-tax before it sends", async (t) => {
    const tax = f.nodes['fj-tax']!
    const real = psb.node.tls!.pin
    await removeTlsPin(f.fed.authorityDir, 'fj-psb', real)
    await addTlsPin(f.fed.authorityDir, 'fj-psb', randomBytes(32).toString('hex'))
    const signed = await signAuthorityManifest(f.fed.authorityDir)
    await writeFile(join(dirname(f.fed.nodes['fj-tax']!.configPath), 'federation', 'manifest.jws'), `${signed.jws}\n`)
    t.equal((await tax.node.reloadManifest()).ok, true)
    const before = await psb.node.log.size()
    const s = f.fed.dataset.samples.identity
    const r = await f.verify('fj-tax', {
      provider: 'fj-psb', service: 'identity.match', purpose: 'taxpayer-registration',
      basis: 'Tax Collection Administration Law art. 15', subjects: [{ id: s.matches[1]!.id, name: s.matches[1]!.name }],
    })
    t.same([r.status, r.json.code], [502, 'VN_ERR_TLS_SERVER_PIN'], 'the application hears why')
    t.equal(await psb.node.log.size(), before, 'the provider saw nothing')
    const size = await tax.node.log.size()
    const last = JSON.parse(Buffer.from((await tax.node.log.entries(size - 1, size))[0]!).toString('utf8')) as { t: string; status: string; code: string }
    t.same([last.t, last.status, last.code], ['response-in', 'error', 'VN_ERR_TLS_SERVER_PIN'], 'the consumer logged the failed attempt')
  })
})
