/**
 * Two replicas of one provider (fj-tax) sharing one log on the real PostgreSQL server, in one
 * process: an application filed through replica A is in replica B's queue once B has read the
 * log (its housekeeping), B's approval reaches A the same way, and the export of the shared log
 * shows the lifecycle; A's decision made before it read the approval is the one finding (the gap
 * docs/GOVERNANCE.md describes).
 */
import t from 'tap'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import pg from 'pg'
import { pino } from 'pino'
import { request } from 'undici'
import { buildDemoFederation, freePort } from '../../src/demo/federation.js'
import { startNode, type RunningNode } from '../../src/http/server.js'
import { exportLog } from '../../src/node/export.js'
import { auditExport } from '../../src/audit/verify.js'
import { PG_URL, pgSkipReason, uniqueName } from '../helper-db.js'

const skip = await pgSkipReason()
if (skip !== undefined) {
  t.plan(0, skip)
} else {
  t.test('replicas learn of each other\'s governance steps from the shared log', async (t) => {
    const schema = uniqueName('vn_gov')
    const admin = new pg.Client({ connectionString: PG_URL })
    await admin.connect()
    t.teardown(async () => {
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined)
      await admin.end()
    })
    const dir = t.testdir({})
    const fed = await buildDemoFederation(dir, { sizes: { residents: 60, enterprises: 30, taxYears: [2025] }, configOverrides: { logLevel: 'warn' } })
    const taxConfig = fed.nodes['fj-tax']!.configPath
    const base = JSON.parse(await readFile(taxConfig, 'utf8'))
    base.log = { kind: 'postgres', url: PG_URL, schema, checkpointLeaseMs: 1000 }
    await writeFile(taxConfig, JSON.stringify(base, null, 2))
    const bPath = join(dir, 'fj-tax', 'verinode-b.json')
    await writeFile(bPath, JSON.stringify({ ...base, listen: { ...base.listen, port: await freePort() }, local: { ...base.local, port: await freePort() }, dataDir: 'var-b' }, null, 2))

    const nodes: RunningNode[] = []
    t.teardown(async () => {
      for (const n of nodes.reverse()) await n.close()
    })
    const start = async (path: string): Promise<RunningNode> => {
      const n = await startNode(path, { logger: pino({ level: 'silent' }), checkpointEveryMs: 0, witnessEveryMs: 0, housekeepingEveryMs: 0, governanceRefreshMs: 0, env: {} })
      nodes.push(n)
      return n
    }
    const a = await start(taxConfig)
    const b = await start(bPath)
    const psb = await start(fed.nodes['fj-psb']!.configPath)
    // a third replica with the refresh timer on (default 2 s; 50 ms here) catches up by itself
    const cPath = join(dir, 'fj-tax', 'verinode-c.json')
    await writeFile(cPath, JSON.stringify({ ...base, listen: { ...base.listen, port: await freePort() }, local: { ...base.local, port: await freePort() }, dataDir: 'var-c' }, null, 2))
    const c = await startNode(cPath, { logger: pino({ level: 'silent' }), checkpointEveryMs: 0, witnessEveryMs: 0, housekeepingEveryMs: 0, governanceRefreshMs: 50, env: {} })
    nodes.push(c)
    /* eslint-disable @typescript-eslint/no-explicit-any */
    const local = async (n: RunningNode, member: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<any> => {
      const res = await request(`${n.localUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${fed.nodes[member]!.appToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      })
      return { status: res.statusCode, json: await res.body.json() }
    }
    /* eslint-enable @typescript-eslint/no-explicit-any */
    const s = fed.dataset.samples.tax
    const ask = { provider: 'fj-tax', service: 'tax.compliance', purpose: 'loan-screening', basis: 'Commercial Bank Law art. 35', subjects: [{ uscc: s.paidInFull[0]!.uscc, year: s.year }] }

    // filed through A (the endpoint the manifest lists)
    const filed = await local(psb, 'fj-psb', 'POST', '/local/v1/applications', {
      provider: 'fj-tax', services: ['tax.compliance'], purposes: ['loan-screening'], basis: 'Commercial Bank Law art. 35', dailyQuota: 5,
      validUntil: new Date(Date.now() + 86_400_000 * 30).toISOString(), contact: 'c',
    })
    t.equal(filed.status, 201)
    t.equal((await local(b, 'fj-tax', 'POST', `/local/v1/applications/${filed.json.id}/approve`, {})).json.code, 'VN_ERR_GOV_UNKNOWN', 'B has not read the log yet')
    await b.node.housekeeping()
    const ok = await local(b, 'fj-tax', 'POST', `/local/v1/applications/${filed.json.id}/approve`, {})
    t.equal(ok.json.state, 'approved', 'B approves once it has read the log')
    t.equal(ok.json.delivered, true)
    const lagging = await local(psb, 'fj-psb', 'POST', '/local/v1/verify', ask)
    t.equal(lagging.json.code, 'VN_ERR_POLICY_NO_AGREEMENT', 'A decides under the set it had')
    const seenByC = async (): Promise<string | undefined> => c.node.governance.list().applications.find((x) => x.id === filed.json.id)?.state
    for (let k = 0; k < 100 && (await seenByC()) !== 'approved'; k++) await new Promise((r) => setTimeout(r, 20))
    t.equal(await seenByC(), 'approved', 'the replica with the timer read the approval by itself')
    t.ok(c.node.governance.agreements().some((x) => x.id === `apl-${filed.json.id}`), '... and has the agreement in force')
    await a.node.housekeeping()
    const used = await local(psb, 'fj-psb', 'POST', '/local/v1/verify', ask)
    t.equal(used.status, 200, 'A permits once it has read the approval')
    t.equal((await local(a, 'fj-tax', 'GET', `/local/v1/applications/${filed.json.id}`)).json.state, 'approved')

    for (const n of nodes.splice(0).reverse()) await n.close()
    const out = join(dir, 'export')
    await exportLog(taxConfig, out)
    const report = await auditExport(out)
    // The one known gap (docs/GOVERNANCE.md): A's denial, decided before it had read B's approval,
    // names the set in force before it; nothing else is wrong.
    const errors = report.findings.filter((f) => f.severity === 'error')
    t.same(errors.map((f) => [f.code, f.xid]), [['AUDIT_POLICY_NOT_IN_FORCE', lagging.json.xid]], JSON.stringify(errors))
    t.match(report.governance.applications, [{ id: filed.json.id, state: 'approved' }])
  })
}
