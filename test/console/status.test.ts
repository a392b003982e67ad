/** The overview's alerts and windows from a node's parts (fakes for the parts, the real status code). */
import t from 'tap'
import { nodeStatus, type StatusDeps } from '../../src/node/status.js'
import { TrafficStats } from '../../src/node/traffic.js'
import { canonicalJsonBytes } from '../../src/protocol/canonical-json.js'
import type { LogRecord } from '../../src/log/records.js'
import { Metrics } from '../../src/node/metrics.js'

const NOW = Date.UTC(2026, 11, 1, 12)

function deps(over: Partial<StatusDeps> = {}): StatusDeps {
  const recs: LogRecord[] = [{ v: 1, at: NOW - 1000, t: 'fork-evidence', peer: 'p2', notes: ['a', 'b'] }]
  const store = {
    size: async () => recs.length,
    entries: async (s: number, e: number) => recs.slice(s, e).map((r) => canonicalJsonBytes(r)),
    latestCheckpoint: async () => undefined,
    leaf: async (i: number) => canonicalJsonBytes(recs[i]!),
  }
  const members = [
    { id: 'me', name: 'Me', role: 'department', endpoint: 'http://127.0.0.1:1', tlsPins: new Set<string>(), messageKeys: new Map([['k1', { kid: 'k1', nbf: 1, exp: undefined }]]), logKeys: new Map([['l1', { kid: 'l1', nbf: 1, exp: NOW + 5 }]]) },
    { id: 'p2', name: 'Peer', role: 'department', endpoint: 'http://127.0.0.1:2', tlsPins: new Set(['ab']), messageKeys: new Map(), logKeys: new Map() },
  ]
  const fed = { seq: 3, exp: NOW + 86_400_000, name: 'fed', members: () => members, departments: () => members }
  return {
    self: 'me',
    federation: { peek: () => fed, get: () => fed } as unknown as StatusDeps['federation'],
    store,
    traffic: new TrafficStats(store),
    agreements: () => [
      { id: 'a-full', consumer: 'p2', services: ['s'], purposes: ['x'], basis: 'b', validFrom: '2026-01-01T00:00:00Z', validUntil: '2027-01-01T00:00:00Z', dailyQuota: 10, modes: ['plain'] },
      { id: 'a-low', consumer: 'p2', services: ['s'], purposes: ['x'], basis: 'b', validFrom: '2027-01-01T00:00:00Z', validUntil: '2028-01-01T00:00:00Z', dailyQuota: 10, modes: ['plain'] },
    ],
    quotas: { used: async (id: string) => (id === 'a-full' ? 8 : 1) },
    ready: async () => ({ ok: false, checks: { log: { ok: true }, dataSource: { ok: false, detail: 'gone' } } }),
    peerLogs: { lastSeen: () => undefined },
    origin: 'me.fed.verinode/log',
    tls: { notAfter: NOW + 1000, pin: 'pin' },
    peerUp: async () => 0,
    providerLatency: async () => [],
    now: () => NOW,
    ...over,
  }
}

t.test('alerts: a failing check, fork evidence, an unreachable peer, a quota at 80%', async (t) => {
  const s = nodeStatus(deps())
  const o = await s.overview()
  t.same(o.alerts, [
    { kind: 'not-ready', subject: 'dataSource' },
    { kind: 'fork-evidence', subject: 'p2', index: 0 },
    { kind: 'peer-unreachable', subject: 'p2' },
    { kind: 'quota-nearly-exhausted', subject: 'a-full' },
  ])
  t.same(o.manifest, { seq: 3, exp: NOW + 86_400_000, federation: 'fed' })
  t.same(o.keys, [{ kind: 'message', kid: 'k1', nbf: 1, exp: null }, { kind: 'log', kid: 'l1', nbf: 1, exp: NOW + 5 }])
  t.same(o.certificate, { notAfter: NOW + 1000, pin: 'pin' })
  t.equal(o.log.checkpoint, null)
  const ag = await s.agreements()
  t.same(ag.map((a) => [a.id, a.inForce, a.used]), [['a-full', true, 8], ['a-low', false, 1]])
  const peers = await s.peers()
  t.same(peers.members.map((m) => [m.id, m.up, m.lastCosigned]), [['me', null, null], ['p2', 0, null]])
  t.same(await s.entry(0), { v: 1, at: NOW - 1000, t: 'fork-evidence', peer: 'p2', notes: ['a', 'b'] })
  await t.rejects(s.entry(5), { code: 'VN_ERR_REQ_NOT_FOUND' })
})

t.test("the provider's latency per service, from the exchange-duration histogram", async (t) => {
  const m = new Metrics('me')
  t.same(await m.exchangeLatency('provider'), [], 'none before an exchange')
  // 10 answers of identity.match: 8 within 2 ms, 1 within 20 ms, 1 above the last bucket (5 s)
  for (let i = 0; i < 8; i++) m.exchangeSeconds.observe({ role: 'provider', service: 'identity.match', mode: 'plain' }, 0.0015)
  m.exchangeSeconds.observe({ role: 'provider', service: 'identity.match', mode: 'plain' }, 0.015)
  m.exchangeSeconds.observe({ role: 'provider', service: 'identity.match', mode: 'plain' }, 7)
  m.exchangeSeconds.observe({ role: 'provider', service: 'tax.compliance', mode: 'oprf' }, 0.3)
  m.exchangeSeconds.observe({ role: 'consumer', service: 'tax.compliance', mode: 'plain' }, 0.001)
  t.same(await m.exchangeLatency('provider'), [
    { service: 'identity.match', mode: 'plain', count: 10, p50: 2, p90: 20, p99: null },
    { service: 'tax.compliance', mode: 'oprf', count: 1, p50: 500, p90: 500, p99: 500 },
  ])
  t.same((await m.exchangeLatency('consumer')).map((x) => [x.service, x.count, x.p50]), [['tax.compliance', 1, 1]])
})
