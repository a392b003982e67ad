/**
 * `verinode doctor` on a node whose log is on PostgreSQL (real server): the log check connects as
 * the node's account and reads, without writing, whether the tables exist and whether the role may
 * append; each finding names the fix (the SQL of `verinode log pg-sql`).
 */
import t from 'tap'
import { readFile, writeFile } from 'node:fs/promises'
import pg from 'pg'
import { buildDemoFederation } from '../../src/demo/federation.js'
import { pgLogSetupSql } from '../../src/log/pg-store.js'
import { runDoctor } from '../../src/node/doctor.js'
import { PG_URL, pgSkipReason, uniqueName } from '../helper-db.js'

const skip = await pgSkipReason()
if (skip !== undefined) {
  t.plan(0, skip)
} else {
  t.test('the log check of a PostgreSQL log: unreachable account, no tables yet, appendable, not appendable', async (t) => {
    const schema = uniqueName('vn_doc')
    const role = uniqueName('vn_doc')
    const admin = new pg.Client({ connectionString: PG_URL })
    await admin.connect()
    t.teardown(async () => {
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined)
      await admin.query(`DROP ROLE IF EXISTS ${role}`).catch(() => undefined)
      await admin.end()
    })
    const fed = await buildDemoFederation(t.testdir({}), { sizes: { residents: 20, enterprises: 10, taxYears: [2025] }, configOverrides: { logLevel: 'silent' } })
    const cfgPath = fed.nodes['fj-psb']!.configPath
    const cfg = JSON.parse(await readFile(cfgPath, 'utf8')) as Record<string, unknown>
    const u = new URL(PG_URL)
    u.username = role
    await writeFile(cfgPath, JSON.stringify({ ...cfg, log: { kind: 'postgres', url: u.toString(), schema, connectTimeoutMs: 2000 } }))
    const logCheck = async () => (await runDoctor(cfgPath, { env: {}, peerTimeoutMs: 300 })).find((c) => c.check === 'log')

    t.match(await logCheck(), { ok: false, detail: /^VN_ERR_LOG_UNAVAILABLE: /, fix: /account and password/ }, 'the role does not exist yet')
    await admin.query(`CREATE ROLE ${role} LOGIN`)
    t.match(await logCheck(), { ok: true, detail: new RegExp(`schema ${schema} has no log tables yet`) })
    const made = await admin.query<{ t: string | null }>('SELECT to_regclass($1) AS t', [`${schema}.log_head`])
    t.equal(made.rows[0]!.t, null, 'the doctor created nothing')
    await admin.query(pgLogSetupSql(schema, role))
    await admin.query('RESET search_path')
    t.match(await logCheck(), { ok: true, detail: new RegExp(`schema ${schema}: reachable, this account may append, 0 leaves`) })
    await admin.query(`REVOKE INSERT ON ${schema}.log_leaves FROM ${role}`)
    t.match(await logCheck(), { ok: false, detail: /may not append/, fix: /verinode log pg-sql --schema/ })
    t.equal((await admin.query<{ size: string }>(`SELECT size FROM ${schema}.log_head`)).rows[0]!.size, '0', 'nothing appended')
  })
}
