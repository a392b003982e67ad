/**
 * The sharing rules on real nodes (docs/GOVERNANCE.md): a node refuses to start, before it writes
 * anything, when it offers what the rules forbid; an unconditional item is answered without an
 * agreement and within its quota; a not-shared item is refused with a signed, logged denial; a
 * non-member is refused unsigned with nothing logged; sensitive data in plain mode meets the
 * stricter quota; and the auditor replays every decision under the rules the node logged.
 */
import t from 'tap'
import { randomUUID } from 'node:crypto'
import { readFile, writeFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { pino } from 'pino'
import { request } from 'undici'
import { auditEditedExport, federationFixture } from '../helper.js'
import { openNode } from '../../src/node/runtime.js'
import { exportLog } from '../../src/node/export.js'
import { auditExport } from '../../src/audit/verify.js'
import { generateEd25519 } from '../../src/crypto/keys.js'
import { signJwsJson } from '../../src/crypto/jws.js'
import { REQUEST_TYP } from '../../src/protocol/envelope.js'
import { catalogCommand } from '../../src/cli/commands/catalog.js'
import type { CliIo } from '../../src/cli/types.js'
import { main } from '../../src/cli/main.js'
import { addNegative, signAuthorityManifest } from '../../src/federation/authority.js'
import { sharingRulesHash, type SharingRules } from '../../src/policy/sharing.js'

const AMR_BASIS = 'Regulation on Government Data Sharing art. 14'

t.test('sharing rules on a running federation', async (t) => {
  const f = await federationFixture(t, {
    start: ['fj-psb', 'fj-amr', 'fj-tax', 'fj-credit'],
    configOverrides: { governance: { unconditionalDailyQuota: 3, gradedDailyQuota: 2 } },
  })

  t.test('start-up refuses a forbidden offer, before anything is written', async (t) => {
    const variant = async (id: string, name: string, edit: (c: Record<string, any>) => Record<string, unknown>): Promise<string> => { // eslint-disable-line @typescript-eslint/no-explicit-any
      const dir = join(f.fed.dir, id)
      const cfg = JSON.parse(await readFile(join(dir, 'verinode.json'), 'utf8')) as Record<string, unknown>
      const file = join(dir, `${name}.json`)
      await writeFile(file, JSON.stringify(edit({ ...cfg, dataDir: `var-${name}` })))
      return file
    }
    const open = (file: string): Promise<unknown> => openNode(file, { logger: pino({ level: 'silent' }), env: {}, checkpointEveryMs: 0, witnessEveryMs: 0, housekeepingEveryMs: 0, sourceCheckEveryMs: 0 })
      .then(async (n) => { await n.close(); return undefined }, (e: unknown) => e)
    const withService = (over: Record<string, unknown>) => (c: Record<string, any>): Record<string, unknown> => ({ ...c, services: [{ ...c.services[0], ...over }], agreements: [] }) // eslint-disable-line @typescript-eslint/no-explicit-any
    const cases: Array<[string, string, Record<string, unknown>, string, RegExp]> = [
      ['another member is the source', 'not-source', { item: 'population.resident-identity' }, 'VN_ERR_GOV_NOT_SOURCE', /names fj-psb as the authoritative source of item population\.resident-identity/],
      ['a negative-listed item', 'negative', { item: 'population.biometrics' }, 'VN_ERR_GOV_NEGATIVE_LISTED', /population\.biometrics is on the federation's negative list as not shared/],
      ['a conditional negative-listed item as unconditional', 'negative-cond', { item: 'tax.personal-income', sharing: 'unconditional' }, 'VN_ERR_GOV_NEGATIVE_LISTED', /shared only under conditions/],
      ['core data', 'core', { classification: 'core' }, 'VN_ERR_GOV_CORE_DATA', /core data is never offered/],
      ['sensitive personal information as unconditional', 'sensitive', { personalInfo: 'sensitive', sharing: 'unconditional' }, 'VN_ERR_GOV_GRADING', /never shared unconditionally/],
    ]
    for (const [what, name, over, code, detail] of cases) {
      const e = await open(await variant('fj-tax', name, withService(over)))
      t.match(e, { code, detail }, what)
      await t.rejects(stat(join(f.fed.dir, 'fj-tax', `var-${name}`)), { code: 'ENOENT' }, `${what}: no data folder, no log`)
    }
    t.match(await open(await variant('fj-tax', 'bad-class', withService({ classification: 'secret' }))), { code: 'VN_ERR_CONFIG_INVALID' }, 'an unknown grade is a config error')
    // doctor names the same refusal without starting the node
    const stdout: string[] = []
    const io: CliIo = { out: (l) => stdout.push(l), err: () => undefined, json: false, tty: false, cwd: f.fed.dir, env: {} }
    t.equal(await main(['doctor', '--config', join(f.fed.dir, 'fj-tax', 'not-source.json')], io), 1)
    t.match(stdout.join('\n'), /^FAIL +sharing-rules +VN_ERR_GOV_NOT_SOURCE: service tax\.compliance: the manifest names fj-psb/m)
    const healthy: string[] = []
    await main(['doctor', '--config', join(f.fed.dir, 'fj-tax', 'verinode.json')], { ...io, out: (l) => healthy.push(l) })
    t.match(healthy.join('\n'), /^OK +sharing-rules +2 service\(s\) may be offered under manifest seq \d+ \(6 source\(s\) named, 2 negative-list item\(s\)\)/m)
  })

  t.test('unconditional: answered without an agreement, quota-bounded, logged', async (t) => {
    const ent = f.fed.dataset.samples.enterprise.byStatus
    const uscc = Object.values(ent).flat()
    const ask = (n: number): ReturnType<typeof f.verify> => f.verify('fj-psb', { provider: 'fj-amr', service: 'enterprise.status', purpose: 'household-business-check', basis: AMR_BASIS, subjects: uscc.slice(0, n).map((u) => ({ uscc: u })) })
    const r = await ask(2)
    t.equal(r.status, 200, String(r.json.code))
    t.match(r.json, { status: 'ok', agreement: 'uncond:fj-psb:enterprise.status' })
    const over = await ask(2)
    t.match([over.status, over.json], [429, { code: 'VN_ERR_POLICY_QUOTA_EXHAUSTED', status: 'denied' }], 'the per-consumer quota (3 a day) is met')
    const noAgreementNeeded = await f.verify('fj-tax', { provider: 'fj-amr', service: 'enterprise.status', purpose: 'anything-stated', basis: AMR_BASIS, subjects: [{ uscc: uscc[0]! }] })
    t.match([noAgreementNeeded.status, noAgreementNeeded.json], [200, { status: 'ok', agreement: 'uncond:fj-tax:enterprise.status' }], 'a purpose outside fj-tax\'s agreement: the unconditional rule answers')
  })

  t.test('not shared: a signed, logged denial whatever the agreements', async (t) => {
    const id = f.fed.dataset.samples.identity.matches[0]!.id
    const psb = f.nodes['fj-psb']!.node
    const before = await psb.log.size()
    const r = await f.verify('fj-tax', { provider: 'fj-psb', service: 'household.detail', purpose: 'taxpayer-registration', basis: 'Tax Collection Administration Law art. 15', subjects: [{ id }] })
    t.match([r.status, r.json], [403, { code: 'VN_ERR_POLICY_NOT_SHARED', status: 'denied', detail: 'service household.detail is not shared' }])
    t.equal(await psb.log.size(), before + 3, 'request-in, decision and response-out logged')
    t.notMatch(JSON.stringify(r.json), new RegExp(id), 'the denial carries no ID number')
  })

  t.test('a non-member is refused unsigned and nothing is logged', async (t) => {
    const amr = f.nodes['fj-amr']!
    const before = await amr.node.log.size()
    const k = generateEd25519()
    const payload = { v: 1, xid: randomUUID(), iat: Date.now(), iss: 'fj-nobody', aud: 'fj-amr', svc: 'enterprise.status', purpose: 'p', basis: AMR_BASIS, mode: 'plain', q: { subjects: [{ uscc: 'A'.repeat(43) }] } }
    const jws = signJwsJson(payload, k.privateKey, 'fj-nobody#k1', REQUEST_TYP)
    const res = await request(`${amr.publicUrl}/v1/exchange`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jws, disclosures: [] }) })
    const body = await res.body.json() as { code: string; jws?: string }
    t.equal(res.statusCode, 401)
    t.equal(body.code, 'VN_ERR_JWS_UNKNOWN_KID')
    t.equal(body.jws, undefined, 'unsigned')
    t.equal(await amr.node.log.size(), before, 'nothing written')
  })

  t.test('sensitive personal information in plain mode: the stricter quota', async (t) => {
    const inc = f.fed.incomes.samples
    const ask = (n: number, mode: 'plain' | 'he' = 'plain'): ReturnType<typeof f.verify> => f.verify('fj-credit', { provider: 'fj-tax', service: 'income.band', mode, purpose: 'credit-evaluation', basis: 'Social Credit Regulations art. 12', subjects: inc.slice(0, n).map((s) => ({ id: s.id, year: s.year })) })
    const over = await ask(3)
    t.match([over.status, over.json], [429, { code: 'VN_ERR_POLICY_QUOTA_EXHAUSTED', detail: /tax-credit-income \(0\/2 used\)/ }], 'three subjects do not fit the graded quota of 2, although the agreement gives 10,000')
    const ok = await ask(2)
    t.match([ok.status, ok.json], [200, { status: 'ok', agreement: 'tax-credit-income' }])
  })

  t.test('the federation catalogue lists every department\'s verified catalog', async (t) => {
    const env = { VERINODE_NODE: f.nodes['fj-tax']!.localUrl, VERINODE_TOKEN: f.fed.nodes['fj-tax']!.appToken }
    const cap = (json = false): CliIo & { stdout: string[]; stderr: string[] } => {
      const stdout: string[] = []
      const stderr: string[] = []
      return { stdout, stderr, out: (l) => stdout.push(l), err: (l) => stderr.push(l), json, tty: false, cwd: process.cwd(), env }
    }
    const io = cap()
    t.equal(await catalogCommand.run([], io), 0, io.stderr.join('\n'))
    const text = io.stdout.join('\n')
    t.match(io.stdout[0], /^fujian-demo \(manifest seq \d+\): 6 services from 4 departments$/)
    t.match(text, /^PROVIDER\s+SERVICE\s+ITEM\s+SOURCE\s+SHARING\s+GRADE\s+PERSONAL\s+MODES\s+UPDATES$/m)
    t.match(text, /^fj-amr\s+enterprise\.status\s+market\.enterprise-status\s+yes\s+unconditional\s+general\s+none\s+plain\s+daily$/m)
    t.match(text, /^fj-tax\s+income\.band\s+tax\.personal-income\s+yes\s+conditional\s+general\s+sensitive\s+plain, he\s+yearly$/m)
    t.match(text, /income\.band[^\n]+\n[^\n]+negative: conditional$/m)
    t.match(text, /negative list \(负面清单\):\n\s+population\.biometrics: not-shared \(biometric data/)
    const json = cap(true)
    t.equal(await catalogCommand.run(['--sharing', 'not-shared'], json), 0)
    const doc = JSON.parse(json.stdout[0]!)
    t.same(doc.services.map((r: { provider: string; service: { id: string } }) => `${r.provider}/${r.service.id}`), ['fj-psb/household.detail'])
    const byItem = cap(true)
    t.equal(await catalogCommand.run(['--item', 'tax.personal-income', '--provider', 'fj-tax'], byItem), 0)
    t.match(JSON.parse(byItem.stdout[0]!).services, [{ provider: 'fj-tax', item: 'tax.personal-income', source: 'fj-tax', negative: { rule: 'conditional' }, service: { fields: { id: { personalInfo: 'sensitive', sharing: 'conditional' } } } }])
    const none = cap()
    t.equal(await catalogCommand.run(['--provider', 'fj-nobody'], none), 0)
    t.match(none.stdout[0], /: 0 services from 0 departments$/)
    t.equal(await catalogCommand.run(['--sharing', 'sometimes'], cap()), 2, 'a bad --sharing is a usage error')
    t.equal(await catalogCommand.run(['fj-psb', '--item', 'x.y'], cap()), 2, 'filters are for the federation catalogue')
  })

  let exports = 0
  const exportOf = async (member: string): Promise<string> => {
    const out = join(f.fed.dir, `export-${member}-${++exports}`)
    await exportLog(f.fed.nodes[member]!.configPath, out)
    return out
  }

  t.test('the auditor replays each decision under the logged rules', async (t) => {
    const out = join(f.fed.dir, 'export-amr')
    await exportLog(f.fed.nodes['fj-amr']!.configPath, out)
    const report = await auditExport(out)
    t.same(report.findings.filter((x) => x.severity === 'error'), [], 'fj-amr\'s log verifies')
    const psbOut = join(f.fed.dir, 'export-psb')
    await exportLog(f.fed.nodes['fj-psb']!.configPath, psbOut)
    t.same((await auditExport(psbOut)).findings.filter((x) => x.severity === 'error'), [], 'fj-psb\'s log (with the not-shared denial) verifies')
    const leaves = (await readFile(join(psbOut, 'entries.jsonl'), 'utf8')).split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>)
    t.ok(leaves.some((l) => l.t === 'sharing-rules'), 'the rules are in the log')
    t.ok(leaves.some((l) => l.t === 'decision' && l.code === 'VN_ERR_POLICY_NOT_SHARED' && typeof l.rules === 'string'), 'the denial names them')

    const codes = (r: { findings: { code: string }[] }): string[] => [...new Set(r.findings.map((x) => x.code))]
    const forged = await auditEditedExport(f.fed, 'fj-psb', psbOut, join(f.fed.dir, 'forged'), (rs) => rs.map((x) => (x.t === 'decision' && x.code === 'VN_ERR_POLICY_NOT_SHARED'
      ? { ...Object.fromEntries(Object.entries(x).filter(([k]) => k !== 'code')), permit: true, agreement: 'psb-tax-identity' }
      : x)))
    t.ok(codes(forged).includes('AUDIT_SHARING_FORBIDDEN'), `a permit for a not-shared item is flagged (${codes(forged).join(', ')})`)
    const unnamed = await auditEditedExport(f.fed, 'fj-psb', psbOut, join(f.fed.dir, 'unnamed'), (rs) => rs.map((x) => (x.t === 'decision' ? Object.fromEntries(Object.entries(x).filter(([k]) => k !== 'rules')) : x)))
    t.ok(codes(unnamed).includes('AUDIT_SHARING_RULES_NOT_IN_FORCE'), 'a decision that names no rules while some are in force')
    const altered = await auditEditedExport(f.fed, 'fj-psb', psbOut, join(f.fed.dir, 'altered'), (rs) => rs.map((x) => (x.t === 'sharing-rules' ? { ...x, rules: { ...(x.rules as object), gradedDailyQuota: 1_000_000 } } : x)))
    t.ok(codes(altered).includes('AUDIT_SHARING_RULES_INVALID'), 'rules that do not hash to their gov')
    const amrLeaves = (await readFile(join(out, 'entries.jsonl'), 'utf8')).split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>)
    t.ok(amrLeaves.some((l) => l.t === 'decision' && l.permit === true && l.agreement === 'uncond:fj-psb:enterprise.status'), 'the unconditional permit is logged under its quota id')
    const overQuota = await auditEditedExport(f.fed, 'fj-amr', out, join(f.fed.dir, 'over'), (rs) => rs.map((x) => (x.t === 'decision' && x.code === 'VN_ERR_POLICY_QUOTA_EXHAUSTED'
      ? { ...Object.fromEntries(Object.entries(x).filter(([k]) => k !== 'code')), permit: true, agreement: 'uncond:fj-psb:enterprise.status' }
      : x)))
    t.ok(codes(overQuota).includes('AUDIT_SHARING_FORBIDDEN'), 'an unconditional permit over its quota is flagged')
    // rules re-hashed so that they parse and hash, but without the manifest's negative list
    const laundered = await auditEditedExport(f.fed, 'fj-tax', await exportOf('fj-tax'), join(f.fed.dir, 'laundered'), (rs) => rs.map((x) => {
      if (x.t !== 'sharing-rules') return x
      const g = structuredClone(x.rules) as SharingRules
      for (const svc of Object.values(g.services)) delete svc.negative
      return { ...x, rules: g, hash: sharingRulesHash(g) }
    }))
    t.match(laundered.findings.filter((x) => x.code === 'AUDIT_SHARING_RULES_INVALID'), [{ message: /differ from manifest seq \d+ the node had loaded in the source or negative-list rule of income\.band/ }], 'rules that hide the manifest\'s negative list are caught against the manifest')
  })

  t.test('a new manifest that negative-lists an offered item: logged with its key event, denied from then on', async (t) => {
    await addNegative(f.fed.authorityDir, { item: 'market.enterprise-status', rule: 'not-shared' })
    const signed = await signAuthorityManifest(f.fed.authorityDir)
    await writeFile(join(f.fed.dir, 'fj-amr', 'federation', 'manifest.jws'), `${signed.jws}\n`)
    const amr = f.nodes['fj-amr']!.node
    const before = await amr.log.size()
    const reload = await amr.reloadManifest()
    t.match(reload, { ok: true, changed: true, seq: signed.manifest.seq })
    t.equal(await amr.log.size(), before + 2, 'the key event and the new rules, in one commit')
    const uscc = Object.values(f.fed.dataset.samples.enterprise.byStatus).flat()[0]!
    const r = await f.verify('fj-tax', { provider: 'fj-amr', service: 'enterprise.status', purpose: 'taxpayer-registration', basis: 'Tax Collection Administration Law art. 15', subjects: [{ uscc }] })
    t.match([r.status, r.json], [403, { code: 'VN_ERR_POLICY_NOT_SHARED', detail: 'item market.enterprise-status is on the negative list as not shared' }], 'even under fj-tax\'s agreement')
    const report = await auditExport(await exportOf('fj-amr'))
    t.same(report.findings.filter((x) => x.severity === 'error'), [], 'the log verifies, the rules checked against the new manifest')
  })
})
