/**
 * The public and local apps built from fake services and driven with `inject()` (no sockets):
 * server errors leave with their code only (the detail goes to the node's log), proof endpoints
 * accept only canonical decimal integers, and the local app's token check guards every path.
 */
import t from 'tap'
import { pino } from 'pino'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import { createLocalApp, createPublicApp } from '../../src/http/app.js'
import type { PublicServices } from '../../src/http/plugins/public-services.js'
import type { LocalServices } from '../../src/http/plugins/local-services.js'
import { Metrics } from '../../src/node/metrics.js'
import { VnError } from '../../src/errors.js'
import type { ExchangeReply } from '../../src/exchange/provider.js'
import type { Receipt } from '../../src/log/peer-logs.js'

type Test = Parameters<Parameters<typeof t.test>[0]>[0]

/** A pino logger whose lines land in `lines` (parsed). */
function capture(): { logger: FastifyBaseLogger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = []
  const logger = pino({ level: 'info' }, { write: (s: string) => { lines.push(JSON.parse(s) as Record<string, unknown>) } })
  return { logger: logger as FastifyBaseLogger, lines }
}

interface Calls { proofs: [string, number, number][] }

async function publicApp(t: Test, over: Partial<PublicServices> = {}): Promise<{ app: FastifyInstance; lines: Record<string, unknown>[]; calls: Calls }> {
  const calls: Calls = { proofs: [] }
  const services: PublicServices = {
    exchange: { handle: async (): Promise<ExchangeReply> => ({ status: 200, body: { jws: 'x' }, problem: false, xid: 'x' }) },
    catalogJws: () => 'catalog.jws',
    transparencyLog: {
      reader: {
        size: async () => 10,
        leaf: async () => new Uint8Array([0x7b, 0x7d]),
        entries: async (start, end) => { calls.proofs.push(['entries', start, end]); return [] },
        inclusionProof: async (index, size) => { calls.proofs.push(['inclusion', index, size]); return [] },
        consistencyProof: async (first, second) => { calls.proofs.push(['consistency', first, second]); return [] },
      },
      checkpoint: async () => 'note\n',
      acceptCosignature: async () => undefined,
    },
    authenticateMember: () => 'fj-tax',
    tagsets: undefined,
    readiness: async () => ({ ok: true, checks: {} }),
    metrics: new Metrics('fj-psb'),
    ...over,
  }
  const { logger, lines } = capture()
  const app = await createPublicApp(services, { logger, bodyLimit: 1 << 20 })
  t.teardown(() => app.close())
  return { app, lines, calls }
}

t.test('a 5xx body carries code, title and status only; the detail goes to the log', async (t) => {
  const secret = 'SQLITE_CORRUPT: database disk image is malformed (/var/lib/verinode/log.db)'
  for (const [what, thrown, code, status] of [
    ['a coded server error', new VnError('VN_ERR_SOURCE_QUERY', secret), 'VN_ERR_SOURCE_QUERY', 500],
    ['a 503 with a detail', new VnError('VN_ERR_LOG_UNAVAILABLE', secret), 'VN_ERR_LOG_UNAVAILABLE', 503],
    ['an unexpected error', new Error(secret), 'VN_ERR_INTERNAL', 500],
  ] as const) {
    const { app, lines } = await publicApp(t, { exchange: { handle: async () => { throw thrown } } })
    const res = await app.inject({ method: 'POST', url: '/v1/exchange', payload: { jws: 'a.b.c' } })
    t.equal(res.statusCode, status, what)
    t.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8')
    const body = res.json() as Record<string, unknown>
    t.same(Object.keys(body).sort(), ['code', 'status', 'title', 'type'], `${what}: no detail`)
    t.equal(body.code, code)
    t.notMatch(res.body, /SQLITE|\/var\/lib/, `${what}: nothing of the cause in the body`)
    const logged = lines.find((l) => l.msg === 'request failed')
    t.ok(logged, `${what}: logged`)
    t.match(JSON.stringify(logged), /SQLITE_CORRUPT/, `${what}: the node's own log has the detail`)
    t.equal(logged?.code, code)
  }
})

t.test('a 4xx body keeps its detail', async (t) => {
  const { app } = await publicApp(t)
  const res = await app.inject({ method: 'GET', url: '/v1/log/proof/inclusion?index=5&size=2' })
  t.equal(res.statusCode, 400)
  t.match(res.json(), { code: 'VN_ERR_LOG_PROOF', detail: 'index must be below size' })
})

t.test('proof endpoints take canonical decimal integers only', async (t) => {
  const bad = ['0x1', '1e0', '%201', '1%20', '', '01', '-1', '%2B1', '1.0', '1.', 'NaN', 'Infinity', '9007199254740992', '1&index=2']
  for (const [path, a, b] of [['/v1/log/proof/inclusion', 'index', 'size'], ['/v1/log/proof/consistency', 'first', 'second'], ['/v1/log/entries', 'start', 'end']] as const) {
    const { app, calls } = await publicApp(t)
    for (const v of bad) {
      for (const url of [`${path}?${a}=${v}&${b}=3`, `${path}?${a}=0&${b}=${v}`]) {
        const res = await app.inject({ method: 'GET', url, headers: { authorization: 'VN-JWS x' } })
        t.equal(res.statusCode, 400, url)
        t.equal((res.json() as { code: string }).code, 'VN_ERR_LOG_PROOF', url)
      }
    }
    t.same(calls.proofs, [], `${path}: nothing read for a bad number`)
    t.equal((await app.inject({ method: 'GET', url: `${path}?${a}=${path.endsWith('inclusion') ? 1 : 0}&${b}=9007199254740991`, headers: { authorization: 'VN-JWS x' } })).statusCode, 200)
    t.equal((await app.inject({ method: 'GET', url: `${path}?${a}=0&${b}=10`, headers: { authorization: 'VN-JWS x' } })).statusCode, 200)
    const kind = path.split('/').at(-1) === 'entries' ? 'entries' : path.split('/').at(-1)
    t.same(calls.proofs, [[kind, path.endsWith('inclusion') ? 1 : 0, 9007199254740991], [kind, 0, 10]], `${path}: read as numbers`)
  }
})

t.test('public app: catalog, checkpoint and readiness come from its decorators', async (t) => {
  const { app } = await publicApp(t, { readiness: async () => ({ ok: false, checks: { log: { ok: false, detail: 'x' } } }) })
  t.same((await app.inject('/v1/catalog')).json(), { jws: 'catalog.jws' })
  t.equal((await app.inject('/v1/log/checkpoint')).body, 'note\n')
  const r = await app.inject('/readyz')
  t.equal(r.statusCode, 503)
  t.equal((r.json() as { status: string }).status, 'not-ready')
  t.equal((await app.inject('/v1/services/x/tagset')).statusCode, 404, 'no oprf service here')
})

t.test('local app: the token check guards every path; receipts take canonical indices', async (t) => {
  const asked: [string, number][] = []
  const services: LocalServices = {
    consumer: {
      verify: async () => { throw new VnError('VN_ERR_PEER_UNREACHABLE', 'fj-psb.internal:7100: connect ECONNREFUSED 10.1.2.3:7100') },
      catalog: async () => { throw new VnError('VN_ERR_PEER_UNKNOWN') },
    },
    receipt: async (peer, index) => { asked.push([peer, index]); return { peer, index, leaf: {}, checkpoint: '', proof: [] } satisfies Receipt },
    peers: () => [{ id: 'fj-tax', name: 'Tax', endpoint: 'http://127.0.0.1:1' }],
    authenticateApp: (token) => { if (token === 'good') return 'case-system'; throw new VnError('VN_ERR_LOCAL_UNAUTHORIZED') },
    reloadManifest: async () => { throw new VnError('VN_ERR_INTERNAL') },
  }
  const { logger, lines } = capture()
  const app = await createLocalApp(services, { logger, bodyLimit: 1 << 20 })
  t.teardown(() => app.close())
  const auth = { authorization: 'Bearer good' }
  t.equal((await app.inject('/local/v1/openapi.json')).statusCode, 200, 'the description needs no token')
  t.equal((await app.inject('/local/v1/peers')).statusCode, 401)
  t.equal((await app.inject('/local/v1/nowhere')).statusCode, 401, 'unknown paths too')
  t.equal((await app.inject({ url: '/local/v1/nowhere', headers: auth })).statusCode, 404)
  t.same((await app.inject({ url: '/local/v1/peers', headers: auth })).json(), [{ id: 'fj-tax', name: 'Tax', endpoint: 'http://127.0.0.1:1' }])
  for (const v of ['0x1', '1e0', '%201', '01', '-1']) {
    const r = await app.inject({ url: `/local/v1/receipts/fj-psb/${v}`, headers: auth })
    t.equal(r.statusCode, 400, v)
    t.equal((r.json() as { code: string }).code, 'VN_ERR_REQ_INVALID')
  }
  t.equal((await app.inject({ url: '/local/v1/receipts/fj-psb/7', headers: auth })).statusCode, 200)
  t.same(asked, [['fj-psb', 7]])
  // A consumer-side 502 reaches the application as its code, not the peer's address.
  const v = await app.inject({
    method: 'POST', url: '/local/v1/verify', headers: auth,
    payload: { provider: 'fj-psb', service: 'identity.match', purpose: 'p', basis: 'b', subjects: [{ id: 'x' }] },
  })
  t.equal(v.statusCode, 502)
  t.notOk('detail' in (v.json() as object), 'no detail')
  t.notMatch(v.body, /ECONNREFUSED|10\.1\.2\.3/)
  t.match(JSON.stringify(lines.find((l) => l.msg === 'request failed')), /ECONNREFUSED/)
})
