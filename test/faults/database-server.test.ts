/**
 * Fault: the department's database server stops under a running provider, and starts again
 * (docs/OPERATIONS.md "When the database is down or slow"). A private PostgreSQL cluster
 * (test/helper-db-server.ts), never the shared server: readiness false with the reason, the
 * exchange refused with 503 and nothing logged for it, one log line per transition, no subject in
 * any log line, and the provider back by itself when the server is, without a restart.
 */
import t from 'tap'
import { privatePgSkipReason, startPrivatePostgres } from '../helper-db-server.js'
import { PROVIDER, ask, federationOn, ready, until } from '../helper-server-node.js'

t.test('fault: PostgreSQL server stopped under a running provider, then started', { skip: privatePgSkipReason() ?? false }, async (t) => {
  const server = await startPrivatePostgres()
  t.teardown(() => server.destroy())
  const r = await federationOn(t, { kind: 'postgres', url: server.url, namespace: 'dept' })
  const m = r.fed.dataset.samples.identity.matches[0]!
  t.equal((await ask(r, { id: m.id, name: m.name })).status, 200)
  const since = r.logLines.length
  await server.stop()
  await until('readiness false', async () => (await ready(r)).status === 503)
  const rd = await ready(r)
  t.equal(rd.json.checks.dataSource.ok, false, 'readiness: dataSource false')
  t.match(rd.json.checks.dataSource.detail, /postgres: database unavailable \(ECONNREFUSED\)/, rd.json.checks.dataSource.detail)
  const before = await r.nodes[PROVIDER]!.node.log.size()
  const a = await ask(r, { id: m.id, name: m.name })
  t.equal(a.status, 502, JSON.stringify(a.json))
  t.match(a.json, { code: 'VN_ERR_PEER_ERROR', peer: { status: 503, code: 'VN_ERR_SOURCE_UNAVAILABLE' } })
  t.equal(await r.nodes[PROVIDER]!.node.log.size(), before, 'nothing logged for the refused exchange')
  await server.start()
  await until('readiness true', async () => (await ready(r)).status === 200)
  const back = await ask(r, { id: m.id, name: m.name })
  t.equal(back.status, 200, JSON.stringify(back.json))
  t.same(back.json.results, [{ found: true, match: true, fields: { name: true } }])
  const lines = r.logLines.slice(since).map((l) => JSON.parse(l) as Record<string, unknown>)
  t.ok(lines.some((l) => l.dataSource === 'unavailable' && /^postgres: database unavailable/.test(String(l.reason))), 'logged: unavailable, with the reason')
  t.ok(lines.some((l) => l.dataSource === 'available'), 'logged: available again')
  t.ok(lines.some((l) => l.msg === 'request failed' && l.code === 'VN_ERR_SOURCE_UNAVAILABLE'), 'the refused exchange is logged as a failed request')
  const all = r.logLines.join('\n')
  t.notOk(all.includes(m.id) || all.includes(m.name), 'no ID number or name in the provider\'s log')
})
