/**
 * The log on PostgreSQL goes away and comes back, for real: the provider fj-psb logs in with its own
 * least-privilege role (the SQL `verinode log pg-sql` prints and docs/OPERATIONS.md gives) on a schema the owner
 * created. The role is refused new logins and its connections are ended (`pg_terminate_backend`,
 * not a stop of the shared server): exchanges get the coded 503, readiness turns false, nothing is
 * answered without being logged. Logins allowed again: the log reopens by itself (no restart) and
 * appends continue the same gap-free sequence. `keys rotate` then appends its key event to the
 * shared log, with the same role, while the node runs.
 */
import t from 'tap'
import { readFile, writeFile } from 'node:fs/promises'
import pg from 'pg'
import { request } from 'undici'
import { pino } from 'pino'
import { buildDemoFederation } from '../../src/demo/federation.js'
import { startNode, type RunningNode } from '../../src/http/server.js'
import { rotateKey } from '../../src/node/key-rotation.js'
import { pgLogSetupSql } from '../../src/log/pg-store.js'
import { PG_URL, pgSkipReason, uniqueName } from '../helper-db.js'
import { leafCounts, notInLog, requestsTo } from '../helper-pglog.js'

t.setTimeout(120_000)
const skip = await pgSkipReason()
if (skip !== undefined) {
  t.plan(0, skip)
} else {
  const schema = uniqueName('vn_out')
  const role = uniqueName('vn_log')
  const admin = new pg.Client({ connectionString: PG_URL })
  await admin.connect()
  const kill = async (): Promise<number> => (await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [role])).rowCount ?? 0
  t.teardown(async () => {
    await admin.query(`ALTER ROLE ${role} LOGIN`).catch(() => undefined)
    await kill().catch(() => undefined)
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined)
    await admin.query(`DROP ROLE IF EXISTS ${role}`).catch(() => undefined)
    await admin.end()
  })
  // the owner creates the schema and its tables and grants the node's role only what it needs,
  // with the SQL `verinode log pg-sql` prints
  await admin.query(`CREATE ROLE ${role} LOGIN`)
  await admin.query(pgLogSetupSql(schema, role))
  await admin.query('RESET search_path')

  const dir = t.testdir({})
  const fed = await buildDemoFederation(dir, { sizes: { residents: 40, enterprises: 20, taxYears: [2025] }, configOverrides: { logLevel: 'silent' } })
  const cfgPath = fed.nodes['fj-psb']!.configPath
  const cfg = JSON.parse(await readFile(cfgPath, 'utf8'))
  const u = new URL(PG_URL)
  u.username = role
  cfg.log = { kind: 'postgres', url: u.toString(), schema, connectTimeoutMs: 1000 }
  await writeFile(cfgPath, JSON.stringify(cfg, null, 2))
  const node: RunningNode = await startNode(cfgPath, { logger: pino({ level: 'silent' }), checkpointEveryMs: 0, witnessEveryMs: 0, housekeepingEveryMs: 0, logRetryMs: 200, env: {} })
  t.teardown(() => node.close())
  const url = node.publicUrl
  const { body, send } = await requestsTo(fed)
  const ready = async (): Promise<number> => {
    const r = await request(`${url}/readyz`)
    await r.body.dump()
    return r.statusCode
  }
  const answers: { xid: string; jws: string }[] = []
  const ask = async (): Promise<{ status: number; code: string | undefined }> => {
    const x = body()
    const g = await send(url, x.text)
    if (g.status === 200 && g.json.jws !== undefined) answers.push({ xid: x.xid, jws: g.json.jws })
    return { status: g.status, code: g.json.code }
  }

  t.test('up: answered and logged by the least-privilege role', async (t) => {
    t.equal((await ask()).status, 200)
    t.equal(await ready(), 200)
  })

  t.test('the database goes away: coded 503, readiness false, nothing answered unlogged', async (t) => {
    await admin.query(`ALTER ROLE ${role} NOLOGIN`)
    t.ok(await kill() > 0, 'the node\'s connections were ended')
    const during = [await ask(), await ask(), await ask()]
    for (const d of during) {
      t.equal(d.status, 503)
      t.equal(d.code, 'VN_ERR_LOG_UNAVAILABLE')
    }
    t.equal(await ready(), 503, 'readiness false')
  })

  t.test('it comes back: the log reopens by itself and the sequence goes on without a gap', async (t) => {
    await admin.query(`ALTER ROLE ${role} LOGIN`)
    const deadline = Date.now() + 30_000
    while (await ready() !== 200) {
      if (Date.now() > deadline) throw new Error('the log did not reopen')
      await new Promise((r) => setTimeout(r, 200))
    }
    t.equal((await ask()).status, 200)
    t.equal((await ask()).status, 200)
    t.same(await notInLog(admin, schema, answers), [], 'every answered exchange is in the log where its answer says')
    const c = await leafCounts(admin, schema)
    t.equal(c.count, c.size)
    t.equal(c.max, c.size - 1, 'gap-free')
  })

  t.test('keys rotate appends its key event to the shared log while the node runs', async (t) => {
    const before = await leafCounts(admin, schema)
    const r = await rotateKey(cfgPath, 'message', { env: {} })
    t.equal(r.index, before.size, 'at the end of the log, as the database assigned it')
    const leaf = (await admin.query<{ data: Buffer }>(`SELECT data FROM ${schema}.log_leaves WHERE idx = $1`, [r.index])).rows[0]
    t.match(JSON.parse(leaf!.data.toString('utf8')), { t: 'key-event', event: 'rotated', rotated: 'message' })
    t.equal(Number((await admin.query<{ size: string }>(`SELECT max(size) AS size FROM ${schema}.log_checkpoints`)).rows[0]?.size), r.size, 'checkpointed over it')
  })
}
