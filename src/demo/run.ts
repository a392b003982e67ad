/**
 * `verinode demo`: starts the four-department federation on loopback, runs a realistic set of
 * verifications through each consumer's local API (as the departments' own applications would),
 * then closes the nodes, exports each log and verifies it with the offline auditor.
 */
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { pino } from 'pino'
import { startDemoFederation, type DemoFederation } from './federation.js'
import { DEMO_NAMESPACE, type DemoServerSource } from './server-data.js'
import { startNode, type RunningNode } from '../http/server.js'
import type { ProfileName } from '../crypto/profile.js'
import Database from 'better-sqlite3'

export interface DemoStep {
  title: string
  consumer: string
  provider: string
  service: string
  subjects: number
  outcome: string
  ok: boolean
  ms: number
}

export interface DemoReport {
  dir: string
  steps: DemoStep[]
  audits: { member: string; ok: boolean; entries: number; summary: string }[]
  ok: boolean
}

export interface DemoOptions {
  dir?: string
  residents?: number
  enterprises?: number
  out?: (line: string) => void
  /** serve the data from PostgreSQL or MySQL/MariaDB instead of the SQLite files (./server-data.ts) */
  source?: DemoServerSource
  /** mutual TLS between the nodes, each key pinned by the manifest (default true) */
  tls?: boolean
  /** the federation's crypto profile: `intl` (default) or `sm` (SM2/SM3/SM4, docs/NATIONAL-ALGORITHMS.md) */
  profile?: ProfileName
  /** runs after the exchanges, before the nodes close (used to add the auditor step) */
  audit?: (fed: DemoFederation) => Promise<DemoReport['audits']>
}

/** Shows only the region and check character of an ID, as a clerk's screen would. */
const mask = (id: string): string => (id.length === 18 ? `${id.slice(0, 6)}********${id.slice(14)}` : '***')

export async function runDemo(opts: DemoOptions = {}): Promise<DemoReport> {
  const out = opts.out ?? (() => undefined)
  const dir = opts.dir ?? await mkdtemp(join(tmpdir(), 'verinode-demo-'))
  out(`Building the federation in ${dir} (crypto profile ${opts.profile ?? 'intl'}) ...`)
  const sizes = { residents: opts.residents ?? 5000, enterprises: opts.enterprises ?? 2000 }
  const { fed, nodes } = await startDemoFederation<RunningNode>(
    (attempt) => (attempt === 1 ? dir : join(dir, `attempt-${attempt}`)),
    {
      sizes, configOverrides: { logLevel: 'warn' }, tls: opts.tls ?? true,
      ...(opts.source !== undefined ? { source: opts.source } : {}),
      ...(opts.profile !== undefined ? { profile: opts.profile } : {}),
      onBuilt: (built, attempt) => {
        if (attempt > 1) return
        out(`  ${built.dataset.counts.residents} residents, ${built.dataset.counts.enterprises} enterprises, ` +
          `${built.dataset.counts.taxPayments} tax records, ${built.dataset.counts.dishonestDebtors} dishonest debtors (synthetic)`)
        if (opts.source !== undefined) {
          const where = new URL(opts.source.url)
          out(`  loaded into ${opts.source.kind} at ${where.host}, ${opts.source.kind === 'postgres' ? 'schema' : 'database'} ${opts.source.namespace ?? DEMO_NAMESPACE}; the nodes read it there`)
        }
      },
      onRetry: () => out('  a port was taken before its node listened: building the federation again on fresh ports'),
    },
    async (id, configPath) => {
      const n = await startNode(configPath, { logger: pino({ level: 'warn' }), env: {} }) // demo nodes ignore VERINODE_* overrides meant for one node
      out(`  ${id.padEnd(10)} public ${n.publicUrl}  local ${n.localUrl}`)
      return n
    },
  )
  const s = fed.dataset.samples
  const steps: DemoStep[] = []
  try {
    // oprf mode: providers build their tag sets off the request path; wait for the first ones.
    for (const [id, n] of Object.entries(nodes)) {
      if (n.node.tagsets === undefined) continue
      const t0 = performance.now()
      await n.node.tagsets.whenReady()
      const st = Object.entries(n.node.tagsets.status()).map(([svc, x]) => `${svc} epoch ${x.epoch}: ${x.count} tags`).join(', ')
      out(`  ${id.padEnd(10)} tag sets ready in ${((performance.now() - t0) / 1000).toFixed(1)} s (${st})`)
    }
    const ask = async (title: string, consumer: string, body: Record<string, unknown>, expect: (status: number, json: any) => string | undefined): Promise<any> => { // eslint-disable-line @typescript-eslint/no-explicit-any
      const n = nodes[consumer] as RunningNode
      const t0 = performance.now()
      const res = await request(`${n.localUrl}/local/v1/verify`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${fed.nodes[consumer]?.appToken}` },
        body: JSON.stringify(body),
      })
      const json = (await res.body.json()) as any // eslint-disable-line @typescript-eslint/no-explicit-any
      const ms = performance.now() - t0
      const problem = expect(res.statusCode, json)
      const outcome = res.statusCode === 200 ? `${json.status}` : `HTTP ${res.statusCode} ${json.code}`
      steps.push({ title, consumer, provider: String(body.provider), service: String(body.service), subjects: (body.subjects as unknown[]).length, outcome, ok: problem === undefined, ms })
      out(`\n${problem === undefined ? '✔' : '✘'} ${title}  [${consumer} → ${String(body.provider)} ${String(body.service)}, ${ms.toFixed(1)} ms]`)
      if (problem !== undefined) out(`    unexpected: ${problem}`)
      return json
    }

    // 1. identity matches and mismatches
    const idSubjects = [
      ...s.identity.matches.slice(0, 2).map((m) => ({ id: m.id, name: m.name })),
      ...s.identity.variantMatches.slice(0, 1).map((m) => ({ id: m.id, name: m.name })),
      ...s.identity.nameMismatches.slice(0, 1).map((m) => ({ id: m.id, name: m.name })),
      { id: s.identity.unknownIds[0] as string, name: s.identity.matches[0]?.name as string },
    ]
    const r1 = await ask('Tax bureau checks taxpayers\' identity with public security', 'fj-tax', {
      provider: 'fj-psb', service: 'identity.match', purpose: 'taxpayer-registration', basis: 'Tax Collection Administration Law art. 15', subjects: idSubjects,
    }, (st, j) => (st === 200 && j.results?.map((x: any) => x.match).join() === 'true,true,true,false,false' ? undefined : `HTTP ${st} ${JSON.stringify(j).slice(0, 200)}`)) // eslint-disable-line @typescript-eslint/no-explicit-any
    r1.results?.forEach((x: any, i: number) => { // eslint-disable-line @typescript-eslint/no-explicit-any
      out(`    ${mask(idSubjects[i]?.id ?? '')}  ${i === 2 ? '(typed with full-width digits) ' : ''}→ ${x.found ? 'ID found' : 'ID not found'}, name ${x.fields?.name ? 'matches' : 'does not match'}`)
    })

    // 2. enterprise status
    const statusSubjects = Object.entries(s.enterprise.byStatus).filter(([, l]) => l.length > 0).map(([, l]) => ({ uscc: l[0] as string }))
    const r2 = await ask('Credit centre checks enterprise registration status', 'fj-credit', {
      provider: 'fj-amr', service: 'enterprise.status', purpose: 'credit-record-maintenance', basis: 'Social Credit Regulations art. 12', subjects: statusSubjects,
    }, (st, j) => (st === 200 && j.status === 'ok' ? undefined : `HTTP ${st}`))
    out(`    statuses: ${(r2.results ?? []).map((x: any) => x.status).join(', ')}`) // eslint-disable-line @typescript-eslint/no-explicit-any

    // 3. tax compliance with a bound
    const paid = s.tax.paidInFull[0]
    const unpaid = s.tax.notPaidInFull[0]
    const taxSubjects = [paid, unpaid].filter((x) => x !== undefined).map((x) => ({ uscc: x.uscc, year: x.year, bound: 100_000_00 }))
    const r3 = await ask(`Credit centre checks ${s.tax.year} tax compliance (paid ≥ ¥100,000?)`, 'fj-credit', {
      provider: 'fj-tax', service: 'tax.compliance', purpose: 'credit-evaluation', basis: 'Social Credit Regulations art. 12', subjects: taxSubjects,
    }, (st, j) => (st === 200 && j.results?.[0]?.paidInFull === true && j.results?.[1]?.paidInFull === false ? undefined : `HTTP ${st} ${JSON.stringify(j.results)}`))
    out(`    answers: ${(r3.results ?? []).map((x: any) => `paid in full: ${x.paidInFull}, ≥ bound: ${x.meetsBound}`).join(' | ')}`) // eslint-disable-line @typescript-eslint/no-explicit-any

    // 4. dishonest-debtor list
    const listSubjects = [s.credit.listedEnterprises[0], s.credit.listedPersons[0], s.credit.unlistedEnterprises[0]].filter((x) => x !== undefined).map((id) => ({ id }))
    const r4 = await ask('Market regulator screens applicants against the dishonest-debtor list', 'fj-amr', {
      provider: 'fj-credit', service: 'credit.dishonest', purpose: 'registration-review', basis: 'Regulation on the Registration of Market Entities art. 12', subjects: listSubjects,
    }, (st, j) => (st === 200 && j.results?.map((x: any) => x.listed).join() === 'true,true,false' ? undefined : `HTTP ${st} ${JSON.stringify(j.results)}`)) // eslint-disable-line @typescript-eslint/no-explicit-any
    out(`    listed: ${(r4.results ?? []).map((x: any) => x.listed).join(', ')}`) // eslint-disable-line @typescript-eslint/no-explicit-any

    // 4b. private screening (oprf mode): the provider evaluates blinded elements and learns only a count.
    const leak = (what: string): void => {
      const last = steps[steps.length - 1]
      if (last !== undefined) last.ok = false
      out(`    ✘ ${what}`)
    }
    const providerEntry = async (provider: string, index: unknown): Promise<string> => {
      const n = nodes[provider] as RunningNode
      return typeof index === 'number' ? Buffer.from(await n.node.log.leaf(index)).toString('utf8') : ''
    }
    const pool4 = [...s.credit.listedPersons, ...s.credit.listedEnterprises, ...s.credit.unlistedPersons, ...s.credit.unlistedEnterprises]
    const applicants = Array.from({ length: 200 }, (_, i) => ({ id: pool4[i % pool4.length] as string }))
    const plainListed = new Set([...s.credit.listedPersons, ...s.credit.listedEnterprises])
    const r4b = await ask(`Market regulator privately screens ${applicants.length} loan applicants against the dishonest-debtor list (oprf)`, 'fj-amr', {
      provider: 'fj-credit', service: 'credit.dishonest', purpose: 'registration-review', basis: 'Regulation on the Registration of Market Entities art. 12', mode: 'oprf', subjects: applicants,
    }, (st, j) => (st === 200 && j.results?.length === applicants.length && j.results.every((x: any, i: number) => x.listed === plainListed.has(applicants[i]?.id as string)) // eslint-disable-line @typescript-eslint/no-explicit-any
      ? undefined : `HTTP ${st} ${JSON.stringify(j).slice(0, 200)}`))
    const seen4b = await providerEntry('fj-credit', r4b.providerLogIndex)
    out(`    ${(r4b.results ?? []).filter((x: any) => x.listed).length} of ${applicants.length} listed; answers match the plain lookups`) // eslint-disable-line @typescript-eslint/no-explicit-any
    out(`    what fj-credit logged: ${seen4b}`)
    if (!seen4b.includes('"count":200') || applicants.some((a) => seen4b.includes(a.id))) leak('the provider log entry is not a bare count')

    // 4c. a private identity check: "do this ID and name belong together?" and nothing else.
    const privIds = [...s.identity.matches.slice(0, 2), ...s.identity.variantMatches.slice(0, 1), ...s.identity.nameMismatches.slice(0, 1)].map((m) => ({ id: m.id, name: m.name }))
    const r4c = await ask('Tax bureau privately checks taxpayers\' identity (oprf)', 'fj-tax', {
      provider: 'fj-psb', service: 'identity.match', purpose: 'taxpayer-registration', basis: 'Tax Collection Administration Law art. 15', mode: 'oprf', subjects: privIds,
    }, (st, j) => (st === 200 && j.results?.map((x: any) => x.match).join() === 'true,true,true,false' ? undefined : `HTTP ${st} ${JSON.stringify(j).slice(0, 200)}`)) // eslint-disable-line @typescript-eslint/no-explicit-any
    r4c.results?.forEach((x: any, i: number) => out(`    ${mask(privIds[i]?.id ?? '')} → ${x.match ? 'ID and name belong together' : 'no such pair'}`)) // eslint-disable-line @typescript-eslint/no-explicit-any
    const seen4c = await providerEntry('fj-psb', r4c.providerLogIndex)
    out(`    what fj-psb logged: ${seen4c}`)
    if (privIds.some((a) => seen4c.includes(a.id) || seen4c.includes(a.name))) leak('the provider log names a subject')

    // 5. a batch
    const all = [...s.tax.paidInFull, ...s.tax.notPaidInFull]
    const batch = Array.from({ length: 500 }, (_, i) => ({ uscc: (all[i % all.length] as { uscc: string }).uscc, year: s.tax.year }))
    const r5 = await ask('Credit centre screens 500 enterprises in one signed request', 'fj-credit', {
      provider: 'fj-tax', service: 'tax.compliance', purpose: 'credit-evaluation', basis: 'Social Credit Regulations art. 12', subjects: batch,
    }, (st, j) => (st === 200 && j.results?.length === 500 ? undefined : `HTTP ${st}`))
    const paidCount = (r5.results ?? []).filter((x: any) => x.paidInFull).length // eslint-disable-line @typescript-eslint/no-explicit-any
    out(`    ${paidCount} of 500 paid in full for ${s.tax.year}`)

    // 5b. hidden thresholds (he mode): a bank screens loan applicants against its confidential
    // credit policy (tax paid last year of at least ¥10k / ¥50k / ¥100k / ¥500k, by loan size).
    // The tax bureau never sees the bounds, the bank never sees the amounts: one bit per applicant.
    // The demo reads the expected answers from the synthetic database it built, to check them.
    const policy = [1_000_000, 5_000_000, 10_000_000, 50_000_000] // fen, points of the he grid
    const yuan = (fen: number): string => `¥${(fen / 100).toLocaleString('en-US')}`
    const taxDb = new Database(join(fed.dataset.dir, 'tax-bureau.sqlite'), { readonly: true })
    const taxRows = taxDb.prepare('SELECT uscc, tax_paid_fen AS paid FROM tax_payments WHERE year = ? ORDER BY uscc LIMIT 300').all(s.tax.year) as { uscc: string; paid: number }[]
    taxDb.close()
    const loanApplicants = taxRows.map((r, i) => ({ uscc: r.uscc, year: s.tax.year, bound: policy[i % policy.length] as number }))
    const expectHe = (subjects: typeof loanApplicants) => (st: number, j: any): string | undefined => { // eslint-disable-line @typescript-eslint/no-explicit-any
      if (st !== 200 || j.results?.length !== subjects.length) return `HTTP ${st} ${JSON.stringify(j).slice(0, 200)}`
      const wrong = subjects.filter((x, i) => j.results[i]?.atLeast !== ((taxRows[i]?.paid ?? -1) >= x.bound)).length
      return wrong === 0 ? undefined : `${wrong} answers differ from the records`
    }
    const few5 = loanApplicants.slice(0, 4)
    const r5b = await ask(`A bank (via the credit centre) checks 4 loan applicants' ${s.tax.year} tax against its confidential bounds (he)`, 'fj-credit', {
      provider: 'fj-tax', service: 'tax.compliance', purpose: 'credit-evaluation', basis: 'Social Credit Regulations art. 12', mode: 'he', subjects: few5,
    }, expectHe(few5))
    r5b.results?.forEach((x: any, i: number) => out(`    ${few5[i]?.uscc.slice(0, 8)}********** paid at least ${yuan(few5[i]?.bound ?? 0)}? ${x.atLeast ? 'yes' : 'no'}`)) // eslint-disable-line @typescript-eslint/no-explicit-any
    const taxNode = nodes['fj-tax'] as RunningNode
    if (typeof r5b.providerLogIndex === 'number') {
      out(`    what fj-tax logged: ${Buffer.from(await taxNode.node.log.leaf(r5b.providerLogIndex)).toString('utf8')}`)
    }
    const r5c = await ask(`... and screens ${loanApplicants.length} applicants in one signed request, each with its own hidden bound (he)`, 'fj-credit', {
      provider: 'fj-tax', service: 'tax.compliance', purpose: 'credit-evaluation', basis: 'Social Credit Regulations art. 12', mode: 'he', subjects: loanApplicants,
    }, expectHe(loanApplicants))
    out(`    ${(r5c.results ?? []).filter((x: any) => x.atLeast).length} of ${loanApplicants.length} meet their bound; every answer matches the records`) // eslint-disable-line @typescript-eslint/no-explicit-any

    // 5c. a hidden income band (he, range): is the declared income within [¥31,500, ¥125,000)?
    const incomeBand = { bound: 3_150_000, below: 12_500_000 } // grid points (ISO 3 R10: 3.15, 1.25)
    const incomeSubjects = fed.incomes.samples.slice(0, 5).map((x) => ({ id: x.id, year: x.year, ...incomeBand }))
    const r5d = await ask(`Credit centre checks ${incomeSubjects.length} residents' declared ${fed.incomes.year} income against a hidden band (he, range)`, 'fj-credit', {
      provider: 'fj-tax', service: 'income.band', purpose: 'credit-evaluation', basis: 'Social Credit Regulations art. 12', mode: 'he', subjects: incomeSubjects,
    }, (st, j) => (st === 200 && fed.incomes.samples.slice(0, 5).every((x, i) => j.results?.[i]?.inRange === (x.incomeFen >= incomeBand.bound && x.incomeFen < incomeBand.below))
      ? undefined : `HTTP ${st} ${JSON.stringify(j).slice(0, 200)}`))
    r5d.results?.forEach((x: any, i: number) => out(`    ${mask(incomeSubjects[i]?.id ?? '')} declared ${yuan(incomeBand.bound)} to under ${yuan(incomeBand.below)}? ${x.inRange ? 'yes' : 'no'}`)) // eslint-disable-line @typescript-eslint/no-explicit-any

    // 6. a denial: no agreement
    await ask('Public security asks the tax bureau without an agreement', 'fj-psb', {
      provider: 'fj-tax', service: 'tax.compliance', purpose: 'investigation', basis: 'none', subjects: [{ uscc: paid?.uscc, year: s.tax.year }],
    }, (st, j) => (st === 403 && j.code === 'VN_ERR_POLICY_NO_AGREEMENT' && typeof j.jws === 'string' ? undefined : `HTTP ${st} ${j.code}`))
    out('    refused with a signed, logged denial: VN_ERR_POLICY_NO_AGREEMENT')

    // 6b. governance (docs/GOVERNANCE.md): an unconditional item (无条件共享) is answered to any
    // department that states a purpose and a legal basis, with no agreement, within a daily quota
    const uncond = await ask('Public security checks enterprise status: unconditional sharing, no agreement needed', 'fj-psb', {
      provider: 'fj-amr', service: 'enterprise.status', purpose: 'household-business-check', basis: 'Regulation on Government Data Sharing art. 14', subjects: statusSubjects.slice(0, 2),
    }, (st, j) => (st === 200 && j.status === 'ok' && typeof j.agreement === 'string' && j.agreement.startsWith('uncond:') ? undefined : `HTTP ${st} ${j.code}`))
    out(`    answered under the unconditional quota ${String(uncond.agreement)}: ${(uncond.results ?? []).map((x: any) => x.status).join(', ')}`) // eslint-disable-line @typescript-eslint/no-explicit-any

    // 6c. ... and a not-shared item (不予共享) is never answered, whatever the agreements say
    await ask('Tax bureau asks for household register details: not shared', 'fj-tax', {
      provider: 'fj-psb', service: 'household.detail', purpose: 'taxpayer-registration', basis: 'Tax Collection Administration Law art. 15', subjects: [{ id: s.identity.matches[0]?.id }],
    }, (st, j) => (st === 403 && j.code === 'VN_ERR_POLICY_NOT_SHARED' && typeof j.jws === 'string' ? undefined : `HTTP ${st} ${j.code}`))
    out('    refused with a signed, logged denial: VN_ERR_POLICY_NOT_SHARED')

    // 7. quota
    const few = (s.credit.listedPersons.length > 0 ? s.credit.listedPersons : s.credit.unlistedPersons).slice(0, 1)
    const q = { provider: 'fj-credit', service: 'credit.dishonest', purpose: 'tax-credit-rating', basis: 'Tax Collection Administration Law art. 45' }
    await ask('Tax bureau uses 4 of its daily quota of 5', 'fj-tax', { ...q, subjects: Array(4).fill({ id: few[0] }) }, (st) => (st === 200 ? undefined : `HTTP ${st}`))
    await ask('... and is refused when 4 more would exceed it', 'fj-tax', { ...q, subjects: Array(4).fill({ id: few[0] }) },
      (st, j) => (st === 429 && j.code === 'VN_ERR_POLICY_QUOTA_EXHAUSTED' ? undefined : `HTTP ${st} ${j.code}`))

    // 8. bad input never leaves the consumer
    const badId = `${(s.identity.matches[0]?.id ?? '').slice(0, 17)}${(s.identity.matches[0]?.id ?? '').endsWith('1') ? '2' : '1'}`
    await ask('A mistyped ID number is refused before anything is signed or sent', 'fj-tax', {
      provider: 'fj-psb', service: 'identity.match', purpose: 'taxpayer-registration', basis: 'Tax Collection Administration Law art. 15', subjects: [{ id: badId, name: '张三' }],
    }, (st, j) => (st === 400 && j.code === 'VN_ERR_SUBJECT_ID_CHECKSUM' ? undefined : `HTTP ${st} ${j.code}`))

    // 9. an application instead of a hand-edited agreement (共享申请): filed, reviewed, approved, used
    const gov = async (member: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; json: any }> => { // eslint-disable-line @typescript-eslint/no-explicit-any
      const res = await request(`${(nodes[member] as RunningNode).localUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${fed.nodes[member]?.appToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      })
      return { status: res.statusCode, json: await res.body.json() }
    }
    const govStep = (title: string, consumer: string, provider: string, service: string, outcome: string, ok: boolean, t0: number): void => {
      const ms = performance.now() - t0
      steps.push({ title, consumer, provider, service, subjects: 0, outcome, ok, ms })
      out(`\n${ok ? '✔' : '✘'} ${title}  [${consumer} → ${provider}, ${ms.toFixed(1)} ms]`)
    }
    let t0 = performance.now()
    const applied = await gov('fj-psb', 'POST', '/local/v1/applications', {
      provider: 'fj-tax', services: ['tax.compliance'], purposes: ['fugitive-asset-tracing'], basis: 'Criminal Procedure Law art. 144',
      dailyQuota: 100, modes: ['plain'], validUntil: new Date(Date.now() + 180 * 86_400_000).toISOString(), contact: 'duty officer, economic crimes unit, ext. 4410',
    })
    govStep('Public security files a signed application with the tax bureau (no agreement yet)', 'fj-psb', 'fj-tax', 'tax.compliance', applied.status === 201 ? 'filed' : `HTTP ${applied.status} ${applied.json.code}`, applied.status === 201, t0)
    out(`    application ${applied.json.id}: first review due ${new Date(applied.json.reviewDue).toISOString()}, answer due ${new Date(applied.json.due).toISOString()} (working days)`)
    t0 = performance.now()
    await gov('fj-tax', 'POST', `/local/v1/applications/${applied.json.id}/review`, {})
    const approved = await gov('fj-tax', 'POST', `/local/v1/applications/${applied.json.id}/approve`, { agreementId: 'tax-psb-tracing' })
    const approvedOk = approved.json.state === 'approved' && approved.json.delivered === true
    govStep("The tax bureau's operator reviews and approves it: a signed agreement, in force at once", 'fj-psb', 'fj-tax', 'tax.compliance', approvedOk ? `approved as ${approved.json.agreement?.id}` : `HTTP ${approved.status} ${approved.json.code}`, approvedOk, t0)
    await ask('... and public security uses it straight away', 'fj-psb', {
      provider: 'fj-tax', service: 'tax.compliance', purpose: 'fugitive-asset-tracing', basis: 'Criminal Procedure Law art. 144', subjects: [{ uscc: paid?.uscc, year: s.tax.year }],
    }, (st, j) => (st === 200 && j.agreement === 'tax-psb-tracing' ? undefined : `HTTP ${st} ${j.code ?? j.agreement}`))

    // 10. a dispute (数据异议): the credit centre objects to one answer; the tax bureau corrects it
    t0 = performance.now()
    const disputed = await gov('fj-credit', 'POST', '/local/v1/disputes', {
      provider: 'fj-tax', xid: r3.xid, index: r3.providerLogIndex, reason: 'outdated', note: 'the enterprise shows a payment receipt dated after the answer',
    })
    govStep('Credit centre disputes one tax-compliance answer (xid and log index)', 'fj-credit', 'fj-tax', 'tax.compliance', disputed.status === 201 ? 'filed' : `HTTP ${disputed.status} ${disputed.json.code}`, disputed.status === 201, t0)
    t0 = performance.now()
    await gov('fj-tax', 'POST', `/local/v1/disputes/${disputed.json.id}/correct`, { reason: 'late payment booked; the record is corrected' })
    const seen = await gov('fj-credit', 'GET', `/local/v1/disputes/${disputed.json.id}`)
    const resolution = (seen.json.messages ?? []).at(-1)?.payload
    const resolvedOk = seen.json.state === 'corrected' && resolution?.t === 'dispute-resolution' && resolution?.iss === 'fj-tax'
    govStep('The tax bureau checks, corrects (a logged correction naming the dispute) and signs the resolution', 'fj-credit', 'fj-tax', 'tax.compliance', resolvedOk ? 'corrected' : `state ${seen.json.state}`, resolvedOk, t0)
    out(`    the credit centre holds the signed resolution: ${resolution?.outcome} (${resolution?.reason})`)

    // Witnessing: each node checks every peer's checkpoint against the last one it saw and cosigns it,
    // so no node could show two histories to two peers unnoticed.
    for (const n of Object.values(nodes)) await n.node.checkpoint()
    let cosigned = 0
    for (const n of Object.values(nodes)) {
      for (const peer of Object.keys(nodes)) {
        if (peer === n.node.self) continue
        // a slow run can let the 60 s witness timer cosign this very checkpoint first
        const w = await n.node.peerLogs.witness(peer)
        if (w.cosigned || w.alreadyCosigned === true) cosigned++
      }
    }
    out(`\n${cosigned === 12 ? '✔' : '✘'} Nodes witnessed each other: ${cosigned} of 12 peer checkpoints verified consistent and cosigned`)
    steps.push({ title: 'Nodes cosign each other\'s checkpoints (witnessing)', consumer: '-', provider: '-', service: '-', subjects: 0, outcome: `${cosigned}/12 cosigned`, ok: cosigned === 12, ms: 0 })
  } finally {
    for (const n of Object.values(nodes)) await n.close()
  }
  const audits = opts.audit !== undefined ? await opts.audit(fed) : []
  const ok = steps.every((x) => x.ok) && audits.every((a) => a.ok)
  return { dir, steps, audits, ok }
}
