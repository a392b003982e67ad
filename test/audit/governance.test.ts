/**
 * The auditor over real exports holding applications, agreement changes and disputes: lifecycles
 * listed, logs that verify, and each tampering or lateness reported (records re-signed into the
 * checkpoints by `auditEditedExport`, so only the records are wrong).
 */
import t from 'tap'
import { join } from 'node:path'
import { mkdir } from 'node:fs/promises'
import { request } from 'undici'
import { auditEditedExport, federationFixture, type Fixture } from '../helper.js'
import { auditExport } from '../../src/audit/verify.js'
import { exportLog } from '../../src/node/export.js'

const PSB = 'fj-psb'
const TAX = 'fj-tax'

/* eslint-disable @typescript-eslint/no-explicit-any */
async function local(f: Fixture, member: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<any> {
  const res = await request(`${f.nodes[member]!.localUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${f.fed.nodes[member]!.appToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  return res.body.json()
}
/* eslint-enable @typescript-eslint/no-explicit-any */

t.test('applications and disputes in the audit of both sides', async (t) => {
  const f = await federationFixture(t, { start: [PSB, TAX] })
  const s = f.fed.dataset.samples.tax
  const until = new Date(Date.now() + 30 * 86_400_000).toISOString()
  const app = await local(f, PSB, 'POST', '/local/v1/applications', { provider: TAX, services: ['tax.compliance'], purposes: ['贷款审查'], basis: '商业银行法第三十五条', dailyQuota: 10, validUntil: until, contact: '张三 0591-12345678' })
  const open = await local(f, PSB, 'POST', '/local/v1/applications', { provider: TAX, services: ['income.band'], purposes: ['p'], basis: 'b', dailyQuota: 10, validUntil: until, contact: 'c' })
  await local(f, TAX, 'POST', `/local/v1/applications/${app.id}/approve`, {})
  const ask = { provider: TAX, service: 'tax.compliance', purpose: '贷款审查', basis: '商业银行法第三十五条', subjects: [{ uscc: s.paidInFull[0]!.uscc, year: s.year }] }
  const x = await f.verify(PSB, ask)
  t.equal(x.status, 200)
  const d = await local(f, PSB, 'POST', '/local/v1/disputes', { provider: TAX, xid: x.json.xid, index: x.json.providerLogIndex, reason: 'outdated', note: '李四的记录已更正' })
  await local(f, TAX, 'POST', `/local/v1/disputes/${d.id}/correct`, { reason: 'record corrected' })
  await local(f, TAX, 'POST', `/local/v1/agreements/apl-${app.id}/suspend`, { reason: 'review' })
  t.equal((await f.verify(PSB, ask)).json.code, 'VN_ERR_POLICY_NO_AGREEMENT')

  for (const n of Object.values(f.nodes)) await n.close()
  const root = join(f.fed.dir, 'exports')
  await mkdir(root)
  const out = { psb: join(root, 'psb'), tax: join(root, 'tax') }
  await exportLog(f.fed.nodes[PSB]!.configPath, out.psb)
  await exportLog(f.fed.nodes[TAX]!.configPath, out.tax)

  const tax = await auditExport(out.tax)
  t.ok(tax.ok, JSON.stringify(tax.findings.filter((x) => x.severity === 'error')))
  t.same(tax.findings.filter((x) => x.code.startsWith('AUDIT_PII')), [], 'no personal data in the log (contact and note sealed)')
  t.match(tax.governance.applications.find((a) => a.id === app.id), { state: 'approved', consumer: PSB, agreement: `apl-${app.id}`, late: false, unanswered: false })
  t.match(tax.governance.applications.find((a) => a.id === open.id), { state: 'filed', late: false, unanswered: false })
  t.match(tax.governance.disputes[0], { id: d.id, state: 'corrected', xid: x.json.xid, reason: 'outdated' })
  t.equal(tax.governance.disputes[0]!.indices.length, 3, 'dispute, correction, resolution')
  const { formatReport } = await import('../../src/audit/format.js')
  const text = formatReport(tax).join('\n')
  t.match(text, new RegExp(`application: +${app.id.replace(/[-_]/g, '.')} fj-psb → fj-tax \\(tax.compliance\\): approved as apl-`))
  t.match(text, /dispute: +\S+ fj-psb → fj-tax on \S+ \(outdated\): corrected/)
  const psb = await auditExport(out.psb)
  t.ok(psb.ok, JSON.stringify(psb.findings.filter((x) => x.severity === 'error')))
  // the same reports with the order-free work on worker threads (a large export's path)
  t.same(await auditExport(out.tax, { workers: 2 }), tax, 'fj-tax: the same report on 2 worker threads')
  t.same(await auditExport(out.psb, { workers: 2 }), psb, 'fj-psb: the same report on 2 worker threads')
  t.equal(psb.governance.applications.length, 2, 'the consumer lists its applications too')
  t.match(psb.governance.disputes[0], { state: 'corrected' })

  const leafOf = (recs: Record<string, unknown>[], kind: string, id: string): number => recs.findIndex((r) => r.t === 'governance' && r.kind === kind && r.id === id)

  // answered late: the deadline logged with the application moved before the approval
  const late = await auditEditedExport(f.fed, TAX, out.tax, join(root, 'late'), (recs) => {
    const r = recs[leafOf(recs, 'application', app.id)]!
    r.due = (r.at as number) - 1
    r.reviewDue = (r.at as number) - 1
    return recs
  })
  t.ok(late.findings.some((x) => x.code === 'AUDIT_APPLICATION_LATE'))
  // never answered: the other application's deadline already passed at the end of the log
  const never = await auditEditedExport(f.fed, TAX, out.tax, join(root, 'never'), (recs) => {
    const r = recs[leafOf(recs, 'application', open.id)]!
    r.due = (r.at as number) + 1
    return recs
  })
  t.ok(never.findings.some((x) => x.code === 'AUDIT_APPLICATION_UNANSWERED'))
  const disputeLate = await auditEditedExport(f.fed, TAX, out.tax, join(root, 'dlate'), (recs) => {
    const r = recs[leafOf(recs, 'dispute', d.id)]!
    r.due = (r.at as number) - 1
    return recs
  })
  t.ok(disputeLate.findings.some((x) => x.code === 'AUDIT_DISPUTE_LATE'))

  // the approval removed from the log: its agreement was never in force, the permit under it is flagged
  const noApproval = await auditEditedExport(f.fed, TAX, out.tax, join(root, 'noapproval'), (recs) => recs.filter((_r, i) => i !== leafOf(recs, 'application-decision', app.id)))
  t.ok(noApproval.findings.some((x) => x.code === 'AUDIT_AGREEMENT_NOT_IN_FORCE'), 'a permit under an agreement never approved')
  // a record that disagrees with its signed message
  const changed = await auditEditedExport(f.fed, TAX, out.tax, join(root, 'changed'), (recs) => {
    recs[leafOf(recs, 'dispute', d.id)]!.reason = 'other'
    return recs
  })
  t.ok(changed.findings.some((x) => x.code === 'AUDIT_GOV_RECORD_INVALID' && /reason/.test(x.message)))
  t.same(await auditExport(join(root, 'changed'), { workers: 2 }), changed, 'a governance record that disagrees with its message: the same report on worker threads')
  // the same approval logged twice
  const twice = await auditEditedExport(f.fed, TAX, out.tax, join(root, 'twice'), (recs) => {
    const i = leafOf(recs, 'application-decision', app.id)
    return [...recs.slice(0, i + 1), recs[i]!, ...recs.slice(i + 1)]
  })
  t.ok(twice.findings.some((x) => x.code === 'AUDIT_GOV_RECORD_INVALID' && /VN_ERR_GOV_STATE/.test(x.message)))
  // a permit after the suspension: the suspension moved before the last permit
  const suspendedEarly = await auditEditedExport(f.fed, TAX, out.tax, join(root, 'suspended'), (recs) => {
    const i = leafOf(recs, 'agreement-change', `apl-${app.id}`)
    const j = recs.findIndex((r) => r.t === 'decision' && r.permit === true && r.agreement === `apl-${app.id}`)
    const moved = recs[i]!
    const rest = recs.filter((_r, k) => k !== i)
    return [...rest.slice(0, j), moved, ...rest.slice(j)]
  })
  t.ok(suspendedEarly.findings.some((x) => x.code === 'AUDIT_AGREEMENT_NOT_IN_FORCE' && /suspended/.test(x.message)))
})
