/**
 * Two replicas of one member node (fj-psb: same keys, same member id) as two `verinode serve`
 * processes sharing one log on the real PostgreSQL server, with a client alternating between them:
 * - one sequence of leaf indices, unique and gap-free, each signed response naming its request's
 *   index as the database assigned it;
 * - a retried xid reaching the other replica gets the same signed response;
 * - a daily quota holds across the replicas;
 * - the export of the shared log passes `audit verify`;
 * - kill -9 one replica under load: every exchange that got an answer is in the log;
 * - the checkpoint lease: the survivor takes it over and signs.
 */
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import pg from 'pg'
import { request } from 'undici'
import { buildDemoFederation, freePort } from '../../src/demo/federation.js'
import { exportLog } from '../../src/node/export.js'
import { auditExport } from '../../src/audit/verify.js'
import { PG_URL, pgSkipReason, uniqueName } from '../helper-db.js'
import { leafCounts, notInLog, payloadOf, requestsTo } from '../helper-pglog.js'

t.setTimeout(240_000)
const skip = await pgSkipReason()
if (skip !== undefined) {
  t.plan(0, skip)
} else {
  const schema = uniqueName('vn_rep')
  const admin = new pg.Client({ connectionString: PG_URL })
  await admin.connect()
  t.teardown(async () => {
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined)
    await admin.end()
  })
  const QUOTA = 6

  const dir = t.testdir({})
  const fed = await buildDemoFederation(dir, { sizes: { residents: 60, enterprises: 30, taxYears: [2025] }, configOverrides: { logLevel: 'warn' } })
  const psbConfig = fed.nodes['fj-psb']!.configPath
  const base = JSON.parse(await readFile(psbConfig, 'utf8'))
  base.log = { kind: 'postgres', url: PG_URL, schema, checkpointLeaseMs: 1000 }
  for (const a of base.agreements) if (a.consumer === 'fj-credit') a.dailyQuota = QUOTA
  await writeFile(psbConfig, JSON.stringify(base, null, 2))
  const nodeDir = join(dir, 'fj-psb')

  interface Replica { name: string; url: string; proc: ChildProcess; exited: Promise<void> }
  const replicas: Replica[] = []
  t.teardown(async () => {
    for (const r of replicas) {
      r.proc.kill('SIGTERM')
      await Promise.race([r.exited, new Promise((res) => setTimeout(res, 5000))])
      r.proc.kill('SIGKILL')
    }
  })
  const startReplica = async (name: string): Promise<Replica> => {
    const port = await freePort()
    const cfg = { ...base, listen: { host: '127.0.0.1', port }, local: { ...base.local, port: await freePort() }, dataDir: `var-${name}` }
    const path = join(nodeDir, `verinode-${name}.json`)
    await writeFile(path, JSON.stringify(cfg, null, 2))
    const proc = spawn(process.execPath, ['--import', './test/loader/register.mjs', 'src/cli/bin.ts', 'serve', '--config', path], { stdio: ['ignore', process.env['VN_TEST_REPLICA_LOGS'] === '1' ? 'inherit' : 'ignore', 'pipe'] })
    let err = ''
    proc.stderr?.on('data', (d: Buffer) => { err += d.toString() })
    const exited = new Promise<void>((res) => proc.once('exit', () => res()))
    const url = `http://127.0.0.1:${port}`
    const deadline = Date.now() + 90_000
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`replica ${name} exited: ${err}`)
      const ok = await request(`${url}/readyz`).then(async (r) => {
        await r.body.dump()
        return r.statusCode === 200
      }, () => false)
      if (ok) break
      if (Date.now() > deadline) throw new Error(`replica ${name} not ready: ${err}`)
      await new Promise((res) => setTimeout(res, 200))
    }
    const r = { name, url, proc, exited }
    replicas.push(r)
    return r
  }
  const [a, b] = [await startReplica('a'), await startReplica('b')]

  const { body, send: sendTo } = await requestsTo(fed)
  const send = (r: Replica, text: string): ReturnType<typeof sendTo> => sendTo(r.url, text)
  const inLog = (answers: { xid: string; jws: string }[]): Promise<string[]> => notInLog(admin, schema, answers)
  const gapFree = (): ReturnType<typeof leafCounts> => leafCounts(admin, schema)

  t.test('a client alternating between the replicas: one gap-free sequence, each answer names its own index', async (t) => {
    const answers: { xid: string; jws: string }[] = []
    // in waves of concurrent requests, so both replicas group-commit at the same time
    for (let wave = 0; wave < 6; wave++) {
      const sent = Array.from({ length: 10 }, (_, i) => ({ r: i % 2 === 0 ? a : b, ...body() }))
      const got = await Promise.all(sent.map((s) => send(s.r, s.text)))
      got.forEach((g, i) => {
        t.equal(g.status, 200, `answered (${g.json.code ?? 'ok'})`)
        if (g.json.jws !== undefined) answers.push({ xid: sent[i]!.xid, jws: g.json.jws })
      })
    }
    const indices = answers.map((x) => payloadOf(x.jws).log.index)
    t.equal(new Set(indices).size, indices.length, 'every answer names its own request index')
    t.same(await inLog(answers), [], 'each request-in and response-out is at the index the signed answer names')
    const g = await gapFree()
    t.equal(g.count, g.size, 'as many leaves as the head says')
    t.equal(g.max, g.size - 1, 'indices 0 .. size-1: no gap, no duplicate (primary key)')
  })

  t.test('a retried xid reaching the other replica gets the same signed response', async (t) => {
    const x = body()
    const first = await send(a, x.text)
    t.equal(first.status, 200)
    const again = await send(b, x.text)
    t.equal(again.status, 200)
    t.equal(again.json.jws, first.json.jws, 'byte for byte the first signed response, read back from the shared log')
    const other = body()
    const forged = JSON.parse(other.text) as { jws: string }
    // another request body under the same xid is refused on either replica
    const replayed = await send(b, JSON.stringify({ ...JSON.parse(x.text), jws: forged.jws }))
    t.not(replayed.json.jws, first.json.jws)
  })

  t.test('a daily quota holds across the replicas', async (t) => {
    const got = []
    for (let i = 0; i < QUOTA + 4; i++) got.push(await send(i % 2 === 0 ? a : b, body('fj-credit').text))
    const permitted = got.filter((g) => g.status === 200 && g.json.jws !== undefined && payloadOf(g.json.jws).status === 'ok').length
    t.equal(permitted, QUOTA, `exactly ${QUOTA} permitted, whichever replica answered`)
    t.ok(got.slice(QUOTA).every((g) => g.status !== 200), 'the rest refused')
  })

  t.test('the export of the shared log passes audit verify', async (t) => {
    const out = join(dir, 'export-psb')
    const r = await exportLog(join(nodeDir, 'verinode-a.json'), out)
    t.ok(r.size > 0)
    const report = await auditExport(out, { rootKey: join(nodeDir, 'keys', 'federation-root.pub') })
    t.equal(report.counts.errors, 0, JSON.stringify(report.findings.filter((f) => f.severity === 'error').slice(0, 3)))
    t.ok(report.ok)
    t.ok(report.counts.provider >= 60, 'the exchanges of both replicas')
    // with disclosures: the export is logged first, appended to the shared log while the replicas run
    const before = await gapFree()
    const withDisc = join(dir, 'export-psb-disclosures')
    const d = await exportLog(join(nodeDir, 'verinode-b.json'), withDisc, { withDisclosures: { reason: 'inspection request 2026-17' } })
    t.equal(d.size, before.size + 1, 'the disclosure-export record was appended at the end of the shared log')
    const r2 = await auditExport(withDisc, { rootKey: join(nodeDir, 'keys', 'federation-root.pub') })
    t.equal(r2.counts.errors, 0, JSON.stringify(r2.findings.filter((f) => f.severity === 'error').slice(0, 3)))
    const after = await gapFree()
    t.equal(after.max, after.size - 1, 'still gap-free')
  })

  t.test('kill -9 one replica under load: every answered exchange is in the log; the survivor takes the checkpoint lease', async (t) => {
    const answers: { xid: string; jws: string }[] = []
    let failed = 0
    const load = async (r: Replica, n: number): Promise<void> => {
      for (let k = 0; k < n; k++) {
        const x = body()
        try {
          const g = await send(r, x.text)
          if (g.status === 200 && g.json.jws !== undefined) answers.push({ xid: x.xid, jws: g.json.jws })
          else failed++
        } catch {
          failed++
        }
      }
    }
    const streams = [load(a, 400), load(a, 400), load(a, 400), load(b, 60), load(b, 60)]
    await new Promise((res) => setTimeout(res, 400))
    a.proc.kill('SIGKILL')
    await a.exited
    await Promise.all(streams)
    t.ok(failed > 0, `the killed replica stopped answering (${failed} requests failed)`)
    t.ok(answers.length > 0, `${answers.length} answered`)
    t.same(await inLog(answers), [], 'every answered exchange is in the log, at the index its answer names')
    // the survivor appends after the dead one's last commit
    const more = await send(b, body().text)
    t.equal(more.status, 200)
    const g = await gapFree()
    t.equal(g.count, g.size)
    t.equal(g.max, g.size - 1, 'still gap-free')
    // the lease: the survivor holds it once the dead holder's expired, and signs a checkpoint over the new size
    const deadline = Date.now() + 30_000
    let holder: string | undefined
    let cp = 0
    while (Date.now() < deadline) {
      holder = (await admin.query<{ holder: string }>(`SELECT holder FROM ${schema}.leases WHERE name = 'checkpoint'`)).rows[0]?.holder
      cp = Number((await admin.query<{ size: string }>(`SELECT max(size) AS size FROM ${schema}.log_checkpoints`)).rows[0]?.size ?? 0)
      if (holder?.includes(`:${b.proc.pid}:`) === true && cp >= g.size) break
      await new Promise((res) => setTimeout(res, 250))
    }
    t.match(holder, `:${b.proc.pid}:`, 'the surviving replica holds the checkpoint lease')
    t.ok(cp >= g.size, `a checkpoint over the survivor's appends is stored (${cp} ≥ ${g.size})`)
  })
}
