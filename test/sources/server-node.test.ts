/**
 * End to end: real nodes answering from PostgreSQL and from MariaDB. The demo's synthetic data is
 * loaded into a scratch schema / database (src/demo/server-data.ts), the provider logs in as the
 * read-only role `verinode_ro` (password from a file) and answers a plain identity/match exchange,
 * and builds its oprf tag set over the server (`iterate`). A provider whose lookup writes (INSERT,
 * UPDATE, a data-modifying CTE, two statements) does not start, even with a role that can write.
 * (A server stopped under a running provider: test/faults/database-server.test.ts.)
 */
import t, { type Test } from 'tap'
import { readFile, writeFile } from 'node:fs/promises'
import pg from 'pg'
import mysql from 'mysql2/promise'
import { pino } from 'pino'
import { buildDemoFederation } from '../../src/demo/federation.js'
import { startNode } from '../../src/http/server.js'
import { MYSQL_URL, PG_URL, RO_ROLE, mysqlSkipReason, pgSkipReason, uniqueName } from '../helper-db.js'
import { PROVIDER, SIZES, ask, federationOn, ready } from '../helper-server-node.js'

async function dropNamespace(kind: 'postgres' | 'mysql', url: string, ns: string): Promise<void> {
  if (kind === 'postgres') {
    const c = new pg.Client({ connectionString: url })
    await c.connect()
    await c.query(`DROP SCHEMA IF EXISTS ${ns} CASCADE`).finally(() => c.end())
  } else {
    const c = await mysql.createConnection({ uri: url, multipleStatements: true })
    await c.query(`DROP DATABASE IF EXISTS ${ns}; REVOKE ALL PRIVILEGES ON ${ns}.* FROM '${RO_ROLE}'@'%'`).catch(() => undefined).finally(() => c.end())
  }
}

async function answersAndBuilds(t: Test, kind: 'postgres' | 'mysql', url: string): Promise<void> {
  const ns = uniqueName('vn_e2e')
  t.teardown(() => dropNamespace(kind, url, ns))
  const r = await federationOn(t, { kind, url, namespace: ns, reader: { user: RO_ROLE, password: RO_ROLE } })
  const cfg = JSON.parse(await readFile(r.fed.nodes[PROVIDER]!.configPath, 'utf8')) as { dataSource: Record<string, unknown> }
  t.match(cfg.dataSource, { kind, url: new RegExp(`^${kind === 'postgres' ? 'postgres' : 'mysql'}://${RO_ROLE}@`), passwordFile: /db-password$/ }, 'the provider logs in as the read-only role')
  t.notOk(JSON.stringify(cfg).includes(`:${RO_ROLE}@`), 'no password in verinode.json')
  const s = r.fed.dataset.samples.identity
  const m = s.matches[0]!
  const ok = await ask(r, { id: m.id, name: m.name })
  t.equal(ok.status, 200, JSON.stringify(ok.json))
  t.same(ok.json.results, [{ found: true, match: true, fields: { name: true } }])
  const wrong = s.nameMismatches[0]!
  t.same((await ask(r, { id: wrong.id, name: wrong.name })).json.results, [{ found: true, match: false, fields: { name: false } }])
  t.same((await ask(r, { id: s.unknownIds[0]!, name: m.name })).json.results, [{ found: false, match: false, fields: { name: false } }])
  t.equal((await ready(r)).json.checks.dataSource.ok, true)
  // identity.match offers oprf: the provider builds its tag set by enumerating the server's table
  const tagsets = r.nodes[PROVIDER]!.node.tagsets
  t.ok(tagsets !== undefined, 'the provider publishes tag sets')
  await tagsets!.whenReady()
  const st = Object.values(tagsets!.status())[0]
  t.match(st, { ready: true, count: SIZES.residents }, `tag set built from ${kind}: ${JSON.stringify(st)}`)
  const all = r.logLines.join('\n')
  t.notOk(all.includes(m.id) || all.includes(m.name), 'no ID number or name in the provider\'s log')
}

const pgReason = await pgSkipReason()
const mysqlReason = await mysqlSkipReason()

t.test('postgres: a node answers identity/match as verinode_ro and builds its oprf tag set', { skip: pgReason ?? false }, async (t) => {
  await answersAndBuilds(t, 'postgres', PG_URL)
})

t.test('mariadb: a node answers identity/match as verinode_ro and builds its oprf tag set', { skip: mysqlReason ?? false }, async (t) => {
  await answersAndBuilds(t, 'mysql', MYSQL_URL)
})

t.test('a writing lookup stops the node at start-up, even with a role that can write', { skip: pgReason ?? false }, async (t) => {
  const ns = uniqueName('vn_e2e')
  t.teardown(() => dropNamespace('postgres', PG_URL, ns))
  // the admin URL: a role that CAN write
  const fed = await buildDemoFederation(t.testdir({}), { sizes: SIZES, source: { kind: 'postgres', url: PG_URL, namespace: ns } })
  const configPath = fed.nodes[PROVIDER]!.configPath
  const original = await readFile(configPath, 'utf8')
  const writes = [
    "INSERT INTO residents (id_number, name) VALUES (:id, 'x') RETURNING name",
    'UPDATE residents SET name = name WHERE id_number = :id RETURNING name',
    'WITH d AS (DELETE FROM residents WHERE id_number = :id RETURNING name) SELECT name FROM d',
    'SELECT name FROM residents WHERE id_number = :id; DELETE FROM residents',
  ]
  for (const lookup of writes) {
    const cfg = JSON.parse(original) as { services: { lookup: string }[] }
    cfg.services[0]!.lookup = lookup
    await writeFile(configPath, JSON.stringify(cfg))
    const e = await startNode(configPath, { logger: pino({ level: 'silent' }), checkpointEveryMs: 0, witnessEveryMs: 0, housekeepingEveryMs: 0, env: {} })
      .then(async (n) => {
        await n.close()
        return undefined
      }, (err: unknown) => err as { code?: string; detail?: string })
    t.match(e, { code: 'VN_ERR_SOURCE_NOT_READONLY', detail: /^services\.identity\.match\.lookup: / }, lookup)
  }
  const c = new pg.Client({ connectionString: PG_URL })
  await c.connect()
  const { rows } = await c.query(`SELECT count(*)::int AS n FROM ${ns}.residents`).finally(() => c.end())
  t.same(rows, [{ n: SIZES.residents }], 'no row written or deleted')
})
