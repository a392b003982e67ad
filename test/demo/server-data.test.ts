/**
 * `verinode demo --source postgres|mysql`: the loader alone (the full demo against a server is
 * exercised by test/sources/server-node.test.ts, the e2e of the server sources). The synthetic
 * SQLite tables arrive whole in a recreated namespace, with their keys, readable by the read-only
 * login it names; the services' SQL is translated to the dialect.
 */
import t from 'tap'
import Database from 'better-sqlite3'
import pg from 'pg'
import mysql from 'mysql2/promise'
import { createDemoDatabases } from '../../src/demo/synthetic.js'
import { addDeclaredIncomes } from '../../src/demo/income.js'
import { demoSqlFor, loadDemoIntoServer } from '../../src/demo/server-data.js'
import { openDataSource } from '../../src/sources/index.js'
import { MYSQL_URL, PG_URL, RO_ROLE, mysqlSkipReason, pgSkipReason, uniqueName } from '../helper-db.js'

const pgReason = await pgSkipReason()
const mysqlReason = await mysqlSkipReason()

async function dataset(dir: string): Promise<{ files: string[]; counts: Record<string, number> }> {
  const d = await createDemoDatabases(dir, { residents: 50, enterprises: 20, taxYears: [2024, 2025] })
  addDeclaredIncomes(d)
  const files = Object.values(d.files)
  const counts: Record<string, number> = {}
  for (const f of files) {
    const db = new Database(f, { readonly: true })
    for (const { name } of db.prepare<[], { name: string }>("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").all()) {
      counts[name] = (db.prepare(`SELECT count(*) AS c FROM ${name}`).get() as { c: number }).c
    }
    db.close()
  }
  return { files, counts }
}

t.test('demoSqlFor: SQLite\'s 64-bit CAST in each dialect', async (t) => {
  const sql = 'SELECT 1 AS x FROM t WHERE y = CAST(:year AS INTEGER)'
  t.equal(demoSqlFor('sqlite', sql), sql)
  t.equal(demoSqlFor('postgres', sql), 'SELECT 1 AS x FROM t WHERE y = CAST(:year AS BIGINT)')
  t.equal(demoSqlFor('mysql', sql), 'SELECT 1 AS x FROM t WHERE y = CAST(:year AS SIGNED)')
})

t.test('postgres: every table copied into the recreated schema, readable by the read-only role', { skip: pgReason ?? false }, async (t) => {
  const { files, counts } = await dataset(t.testdir({}))
  const ns = uniqueName('vn_demo')
  t.teardown(async () => {
    const c = new pg.Client({ connectionString: PG_URL })
    await c.connect()
    await c.query(`DROP SCHEMA IF EXISTS ${ns} CASCADE`).finally(() => c.end())
  })
  const loaded = await loadDemoIntoServer(files, { kind: 'postgres', url: PG_URL, namespace: ns, reader: { user: RO_ROLE, password: RO_ROLE } })
  t.same(loaded, counts, 'row counts as in the SQLite files')
  t.same(await loadDemoIntoServer(files, { kind: 'postgres', url: PG_URL, namespace: ns }), counts, 'loading again recreates, not appends')
  const u = new URL(PG_URL)
  u.username = RO_ROLE
  const src = await openDataSource({ kind: 'postgres', url: u.toString(), password: RO_ROLE, schema: ns })
  t.teardown(() => src.close())
  // the reload dropped the schema: grants come back only with `reader`, so reload with it
  await loadDemoIntoServer(files, { kind: 'postgres', url: PG_URL, namespace: ns, reader: { user: RO_ROLE, password: RO_ROLE } })
  t.same(await src.query('SELECT count(*) AS c FROM residents', {}), [{ c: counts['residents'] }])
  const keys = new pg.Client({ connectionString: PG_URL })
  await keys.connect()
  const pk = await keys.query(`SELECT count(*)::int AS n FROM information_schema.table_constraints WHERE table_schema = $1 AND constraint_type = 'PRIMARY KEY'`, [ns]).finally(() => keys.end())
  t.ok(pk.rows[0].n >= 4, 'primary keys kept')
})

t.test('mysql: every table copied into the recreated database, readable by the read-only account', { skip: mysqlReason ?? false }, async (t) => {
  const { files, counts } = await dataset(t.testdir({}))
  const ns = uniqueName('vn_demo')
  t.teardown(async () => {
    const c = await mysql.createConnection({ uri: MYSQL_URL, multipleStatements: true })
    await c.query(`DROP DATABASE IF EXISTS ${ns}; REVOKE ALL PRIVILEGES ON ${ns}.* FROM '${RO_ROLE}'@'%'`).catch(() => undefined).finally(() => c.end())
  })
  t.same(await loadDemoIntoServer(files, { kind: 'mysql', url: MYSQL_URL, namespace: ns, reader: { user: RO_ROLE, password: RO_ROLE } }), counts)
  const u = new URL(MYSQL_URL)
  u.username = RO_ROLE
  const src = await openDataSource({ kind: 'mysql', url: u.toString(), password: RO_ROLE, database: ns })
  t.teardown(() => src.close())
  t.same(await src.query('SELECT count(*) AS c FROM residents', {}), [{ c: counts['residents'] }])
})

t.test('a server that does not answer is a coded error', async (t) => {
  await t.rejects(loadDemoIntoServer([], { kind: 'postgres', url: 'postgres://postgres@127.0.0.1:1/x' }), { code: 'VN_ERR_SOURCE_UNAVAILABLE', detail: /^demo: cannot load the data into postgres \(ECONNREFUSED\)/ })
  await t.rejects(loadDemoIntoServer([], { kind: 'postgres', url: PG_URL, namespace: 'x; DROP' }), { code: 'VN_ERR_CONFIG_INVALID' })
})
