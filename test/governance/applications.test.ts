/**
 * Applications (共享申请) between two real nodes over HTTP on 127.0.0.1: filed by the consumer,
 * logged by both, queued at the provider, approved / amended / refused, agreements suspended and
 * revoked, each in force at once; and every refused input with its code and nothing logged.
 */
import t from 'tap'
import { request } from 'undici'
import { federationFixture, type Fixture } from '../helper.js'
import { signJwsJson } from '../../src/crypto/jws.js'
import { loadPrivateKey } from '../../src/crypto/keys.js'
import { makeDisclosure } from '../../src/protocol/disclosures.js'
import { GOV_TYP } from '../../src/policy/governance.js'
import { join } from 'node:path'
import { writeFile } from 'node:fs/promises'
import { addNegative, signAuthorityManifest } from '../../src/federation/authority.js'

const PSB = 'fj-psb'
const TAX = 'fj-tax'
const AMR = 'fj-amr'
const CREDIT = 'fj-credit'

/* eslint-disable @typescript-eslint/no-explicit-any */
async function local(f: Fixture, member: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const n = f.nodes[member]!
  const res = await request(`${n.localUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${f.fed.nodes[member]!.appToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  return { status: res.statusCode, json: await res.body.json() }
}

async function peerPost(f: Fixture, member: string, body: unknown): Promise<{ status: number; json: any }> {
  const res = await request(`${f.nodes[member]!.publicUrl}/v1/governance`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  return { status: res.statusCode, json: await res.body.json() }
}
/* eslint-enable @typescript-eslint/no-explicit-any */

const size = (f: Fixture, m: string): Promise<number> => f.nodes[m]!.node.log.size()

const application = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  provider: TAX, services: ['tax.compliance'], purposes: ['loan-screening'], basis: 'Commercial Bank Law art. 35',
  dailyQuota: 50, modes: ['plain'], validUntil: new Date(Date.now() + 30 * 86_400_000).toISOString(), contact: 'Zhang San, 0591-12345678',
  ...over,
})

const question = (subjects: unknown[]): Record<string, unknown> => ({
  provider: TAX, service: 'tax.compliance', purpose: 'loan-screening', basis: 'Commercial Bank Law art. 35', subjects,
})

/*
 * One federation (fj-psb, fj-tax, fj-amr) for the three tests below that only look at what they did
 * themselves, run in this order: the refused inputs first (they expect fj-psb to have filed
 * nothing yet), then amend/refuse with its restart of fj-tax, then the manifest that negative-lists
 * an item, which stays in force. The first test (four nodes) and the overdue one (its clock three
 * weeks on, counting every open application) keep their own.
 */
let sharedFed: Promise<Fixture> | undefined
const shared = (): Promise<Fixture> => (sharedFed ??= federationFixture(t, { start: [PSB, TAX, AMR] }))

t.test('an application filed, queued, approved, used at once; suspended and revoked the same way', async (t) => {
  const f = await federationFixture(t, { start: [PSB, TAX, AMR, CREDIT] })
  const sample = f.fed.dataset.samples.tax.paidInFull[0]!
  const subject = [{ uscc: sample.uscc, year: sample.year }]

  // before: no agreement between fj-psb and fj-tax for tax.compliance
  t.equal((await f.verify(PSB, question(subject))).json.code, 'VN_ERR_POLICY_NO_AGREEMENT')

  const filed = await local(f, PSB, 'POST', '/local/v1/applications', application())
  t.equal(filed.status, 201, JSON.stringify(filed.json))
  const id = filed.json.id as string
  t.equal(filed.json.state, 'filed')
  t.type(filed.json.due, 'number')
  t.ok(filed.json.due > filed.json.reviewDue, 'the answer is due after the first review')

  // both logs hold it, without the contact in the clear
  const provLeaf = Buffer.from(await f.nodes[TAX]!.node.log.leaf(filed.json.providerIndex)).toString('utf8')
  const consLeaf = Buffer.from(await f.nodes[PSB]!.node.log.leaf(filed.json.index)).toString('utf8')
  for (const leaf of [provLeaf, consLeaf]) {
    t.match(leaf, /"t":"governance"/)
    t.match(leaf, /"kind":"application"/)
    t.notMatch(leaf, /Zhang|0591/, 'the contact is sealed, not logged')
  }

  // the provider's queue
  const queue = await local(f, TAX, 'GET', '/local/v1/applications')
  const mine = queue.json.applications.find((a: { id: string }) => a.id === id)
  t.match(mine, { state: 'filed', role: 'provider', consumer: PSB, overdue: false })
  const shown = await local(f, TAX, 'GET', `/local/v1/applications/${id}`)
  t.equal(shown.json.contact, 'Zhang San, 0591-12345678', "the provider's operator sees the contact")
  t.equal(shown.json.messages[0].payload.t, 'application')

  // first review, then the approval: signed, logged by both, in force without a restart
  t.equal((await local(f, TAX, 'POST', `/local/v1/applications/${id}/review`, {})).json.delivered, true)
  const ok = await local(f, TAX, 'POST', `/local/v1/applications/${id}/approve`, {})
  t.equal(ok.status, 200, JSON.stringify(ok.json))
  t.equal(ok.json.state, 'approved')
  t.equal(ok.json.delivered, true, 'pushed to the consumer')
  t.equal(ok.json.agreement.id, `apl-${id}`)
  const used = await f.verify(PSB, question(subject))
  t.equal(used.status, 200, 'the approved agreement permits at once')
  t.equal(used.json.agreement, `apl-${id}`)

  // the consumer sees the state and the signed decision
  const status = await local(f, PSB, 'GET', `/local/v1/applications/${id}`)
  t.equal(status.json.state, 'approved')
  t.same(status.json.messages.map((m: { payload: { t: string } }) => m.payload.t), ['application', 'application-review', 'application-decision'])
  t.equal(status.json.contact, 'Zhang San, 0591-12345678', 'the consumer sees its own contact')

  // approving twice: coded error, nothing written
  const before = await size(f, TAX)
  const twice = await local(f, TAX, 'POST', `/local/v1/applications/${id}/approve`, {})
  t.equal(twice.status, 409)
  t.equal(twice.json.code, 'VN_ERR_GOV_STATE')
  t.equal(await size(f, TAX), before, 'nothing logged')

  // suspended: denied at once; resumed; revoked: denied for good
  t.equal((await local(f, TAX, 'POST', `/local/v1/agreements/apl-${id}/suspend`, { reason: 'audit under way' })).json.state, 'suspended')
  t.equal((await f.verify(PSB, question(subject))).json.code, 'VN_ERR_POLICY_NO_AGREEMENT')
  t.equal((await local(f, TAX, 'POST', `/local/v1/agreements/apl-${id}/resume`, { reason: 'audit done' })).json.state, 'active')
  t.equal((await f.verify(PSB, question(subject))).status, 200)
  const revoked = await local(f, TAX, 'POST', `/local/v1/agreements/apl-${id}/revoke`, { reason: 'purpose ended' })
  t.equal(revoked.json.state, 'revoked')
  t.equal(revoked.json.delivered, true)
  t.equal((await f.verify(PSB, question(subject))).json.code, 'VN_ERR_POLICY_NO_AGREEMENT')
  t.equal((await local(f, TAX, 'POST', `/local/v1/agreements/apl-${id}/resume`, { reason: 'x' })).json.code, 'VN_ERR_GOV_STATE')

  // a config agreement (the hand-written kind) can be suspended the same way
  const cfg = await local(f, TAX, 'POST', '/local/v1/agreements/tax-credit-compliance/suspend', { reason: 'review' })
  t.equal(cfg.json.state, 'suspended')
  const agreements = await local(f, TAX, 'GET', '/local/v1/agreements')
  t.notOk(agreements.json.agreements.some((a: { id: string }) => a.id === 'tax-credit-compliance'))
  t.ok(agreements.json.agreements.some((a: { id: string }) => a.id === 'tax-credit-income'), 'the other config agreements stay in force')
})

t.test('refused input: coded errors and nothing written on either side', async (t) => {
  const f = await shared()
  const sizes = async (): Promise<number[]> => [await size(f, PSB), await size(f, TAX), await size(f, AMR)]
  const before = await sizes()

  t.equal((await local(f, PSB, 'POST', '/local/v1/applications', application({ contact: undefined }))).json.code, 'VN_ERR_GOV_INVALID', 'no contact')
  t.equal((await local(f, PSB, 'POST', '/local/v1/applications', application({ provider: PSB }))).json.code, 'VN_ERR_GOV_WRONG_MEMBER', 'to itself')
  t.equal((await local(f, PSB, 'POST', '/local/v1/applications', application({ provider: 'fj-nobody' }))).json.code, 'VN_ERR_GOV_WRONG_MEMBER', 'not a member')
  const unknownSvc = await local(f, PSB, 'POST', '/local/v1/applications', application({ services: ['credit.dishonest'] }))
  t.equal(unknownSvc.json.code, 'VN_ERR_PEER_ERROR', 'the provider refuses a service it does not offer')
  t.equal(unknownSvc.json.peer.code, 'VN_ERR_POLICY_UNKNOWN_SERVICE')
  // fj-psb offers household.detail as not shared (docs/GOVERNANCE.md): no agreement can open it
  const notShared = await local(f, TAX, 'POST', '/local/v1/applications', application({ provider: PSB, services: ['household.detail'] }))
  t.equal(notShared.json.code, 'VN_ERR_PEER_ERROR', 'the provider refuses an application for a not-shared service')
  t.equal(notShared.json.peer.code, 'VN_ERR_POLICY_NOT_SHARED')
  t.same((await local(f, PSB, 'GET', '/local/v1/applications')).json.applications, [], 'and queues nothing')
  t.equal((await local(f, TAX, 'POST', '/local/v1/applications/AAAAAAAAAAAAAAAAAAAAAA/approve', {})).json.code, 'VN_ERR_GOV_UNKNOWN', 'an unknown application')
  t.equal((await local(f, TAX, 'POST', '/local/v1/agreements/no-such/suspend', { reason: 'x' })).json.code, 'VN_ERR_GOV_UNKNOWN', 'an unknown agreement')
  t.equal((await local(f, TAX, 'POST', '/local/v1/agreements/tax-credit-income/suspend', {})).json.code, 'VN_ERR_GOV_INVALID', 'a change without its reason')

  // signed messages sent straight to the provider's public listener
  const psbKey = await loadPrivateKey(join(f.fed.dir, PSB, 'keys', 'message.key'))
  const amrKey = await loadPrivateKey(join(f.fed.dir, AMR, 'keys', 'message.key'))
  const kidOf = (m: string): string => f.nodes[m]!.node.federation.get().member(m).messageKeys.keys().next().value as string
  const contact = makeDisclosure('contact', 'Li Si')
  const msg = {
    v: 1, t: 'application', id: 'BBBBBBBBBBBBBBBBBBBBBB', iat: Date.now(), iss: PSB, aud: TAX, services: ['tax.compliance'], purposes: ['p'],
    basis: 'b', dailyQuota: 1, modes: ['plain'], validFrom: new Date().toISOString(), validUntil: new Date(Date.now() + 86_400_000).toISOString(), contact: contact.digest,
  }
  const good = signJwsJson(msg, psbKey, `${PSB}#${kidOf(PSB)}`, GOV_TYP)
  const [h, p] = good.split('.')
  t.equal((await peerPost(f, TAX, { jws: `${h}.${p}.` })).json.code, 'VN_ERR_JWS_MALFORMED', 'unsigned')
  t.equal((await peerPost(f, TAX, { jws: `${h}.${p}.${'A'.repeat(86)}`, disclosures: [contact.disclosure] })).json.code, 'VN_ERR_JWS_SIGNATURE', 'wrongly signed')
  const forged = signJwsJson(msg, amrKey, `${AMR}#${kidOf(AMR)}`, GOV_TYP)
  t.equal((await peerPost(f, TAX, { jws: forged, disclosures: [contact.disclosure] })).json.code, 'VN_ERR_EXCH_ISSUER_MISMATCH', "signed by another member than its issuer")
  t.equal((await peerPost(f, AMR, { jws: good, disclosures: [contact.disclosure] })).json.code, 'VN_ERR_GOV_WRONG_MEMBER', 'sent to another member than the provider named')
  t.equal((await peerPost(f, TAX, { jws: good })).json.code, 'VN_ERR_EXCH_DISCLOSURE', 'the contact missing')
  t.equal((await peerPost(f, TAX, { jws: good, disclosures: [makeDisclosure('contact', 'other').disclosure] })).json.code, 'VN_ERR_EXCH_DISCLOSURE', 'another contact')
  // a decision about an application this node never filed
  const decision = signJwsJson({ v: 1, t: 'application-decision', id: 'CCCCCCCCCCCCCCCCCCCCCC', iat: Date.now(), iss: AMR, aud: PSB, app: contact.digest, decision: 'refused', reason: 'no' },
    amrKey, `${AMR}#${kidOf(AMR)}`, GOV_TYP)
  t.equal((await peerPost(f, PSB, { jws: decision })).json.code, 'VN_ERR_GOV_UNKNOWN', 'acting on an unknown application')
  t.same(await sizes(), before, 'nothing written on any node')

  // a decision by another member than the provider the application went to
  const filed = (await local(f, PSB, 'POST', '/local/v1/applications', application())).json.id as string
  const mid = await sizes()
  const app = await local(f, PSB, 'GET', `/local/v1/applications/${filed}`)
  const wrong = signJwsJson({ v: 1, t: 'application-decision', id: filed, iat: Date.now(), iss: AMR, aud: PSB, app: app.json.digest, decision: 'refused', reason: 'no' },
    amrKey, `${AMR}#${kidOf(AMR)}`, GOV_TYP)
  t.equal((await peerPost(f, PSB, { jws: wrong })).json.code, 'VN_ERR_GOV_WRONG_MEMBER', 'decided by a member that is not its provider')
  t.same(await sizes(), mid, 'nothing written')
})

t.test('amend and refuse; a restart rebuilds the agreements from the log', async (t) => {
  const f = await shared()
  const a1 = (await local(f, PSB, 'POST', '/local/v1/applications', application({ dailyQuota: 1000 }))).json.id as string
  const a2 = (await local(f, PSB, 'POST', '/local/v1/applications', application({ services: ['income.band'] }))).json.id as string
  t.equal((await local(f, TAX, 'POST', `/local/v1/applications/${a1}/amend`, {})).json.code, 'VN_ERR_GOV_INVALID', 'an amendment needs its reason and terms')
  const amended = await local(f, TAX, 'POST', `/local/v1/applications/${a1}/amend`, { reason: 'a lower quota', terms: { dailyQuota: 10 }, agreementId: 'psb-loan-screening' })
  t.equal(amended.json.state, 'amended')
  t.equal(amended.json.agreement.dailyQuota, 10)
  t.equal((await local(f, TAX, 'POST', `/local/v1/applications/${a2}/refuse`, {})).json.code, 'VN_ERR_GOV_INVALID', 'a refusal needs its reason')
  const refused = await local(f, TAX, 'POST', `/local/v1/applications/${a2}/refuse`, { reason: 'income data is not shared for this purpose' })
  t.equal(refused.json.state, 'refused')
  t.equal((await local(f, PSB, 'GET', `/local/v1/applications/${a2}`)).json.state, 'refused')
  const policy = (await local(f, TAX, 'GET', '/local/v1/agreements')).json.policy as string

  // restart the provider: the amended agreement is still in force, the refused one never was
  const cfgPath = f.fed.nodes[TAX]!.configPath
  await f.nodes[TAX]!.close()
  const { startNode } = await import('../../src/http/server.js')
  const { pino } = await import('pino')
  f.nodes[TAX] = await startNode(cfgPath, { logger: pino({ level: 'silent' }), checkpointEveryMs: 0, witnessEveryMs: 0, env: {} })
  const after = (await local(f, TAX, 'GET', '/local/v1/agreements')).json
  t.equal(after.policy, policy, 'the same agreement set after the restart')
  t.ok(after.agreements.some((a: { id: string; dailyQuota: number }) => a.id === 'psb-loan-screening' && a.dailyQuota === 10))
  t.equal((await local(f, TAX, 'GET', `/local/v1/applications/${a2}`)).json.state, 'refused')
})

t.test('an application whose item a new manifest negative-lists cannot be approved: coded, nothing written', async (t) => {
  const f = await shared()
  const filed = await local(f, PSB, 'POST', '/local/v1/applications', application())
  t.equal(filed.status, 201, 'filed while tax.compliance is conditional')
  const id = filed.json.id as string
  // the authority closes the item: tax.compliance answers about tax.payment-compliance
  await addNegative(f.fed.authorityDir, { item: 'tax.payment-compliance', rule: 'not-shared' })
  const signed = await signAuthorityManifest(f.fed.authorityDir)
  await writeFile(join(f.fed.dir, TAX, 'federation', 'manifest.jws'), `${signed.jws}\n`)
  t.match(await f.nodes[TAX]!.node.reloadManifest(), { ok: true, changed: true })
  const sizes = async (): Promise<number[]> => [await size(f, PSB), await size(f, TAX)]
  const before = await sizes()
  const approve = await local(f, TAX, 'POST', `/local/v1/applications/${id}/approve`, {})
  t.equal(approve.json.code, 'VN_ERR_POLICY_NOT_SHARED', 'the approval is refused')
  t.match(approve.json.detail, /tax\.payment-compliance is on the negative list as not shared/)
  t.same(await sizes(), before, 'nothing written on either node')
  t.match((await local(f, TAX, 'GET', `/local/v1/applications/${id}`)).json, { state: 'filed' }, 'the application is still waiting')
  // a refusal is still possible, and signed
  t.equal((await local(f, TAX, 'POST', `/local/v1/applications/${id}/refuse`, { reason: 'the item is now on the negative list' })).status, 200)
})

t.test('overdue applications: in the list, the CLI and the metric', async (t) => {
  const f = await federationFixture(t, { start: [PSB, TAX] })
  const filed = (await local(f, PSB, 'POST', '/local/v1/applications', application())).json
  const reviewed = (await local(f, PSB, 'POST', '/local/v1/applications', application({ services: ['income.band'] }))).json
  await local(f, TAX, 'POST', `/local/v1/applications/${reviewed.id}/review`, {})
  const metric = async (): Promise<string> => {
    const res = await request(f.nodes[TAX]!.metricsUrl)
    return res.body.text()
  }
  t.match(await metric(), /verinode_governance_overdue\{[^}]*deadline="answer"[^}]*\} 0/)
  t.equal((await local(f, TAX, 'GET', '/local/v1/applications')).json.applications.filter((a: { overdue: boolean }) => a.overdue).length, 0)

  // the provider's clock three weeks on: both past the answer deadline, one also past the review deadline
  const cfgPath = f.fed.nodes[TAX]!.configPath
  await f.nodes[TAX]!.close()
  const { startNode } = await import('../../src/http/server.js')
  const { pino } = await import('pino')
  const later = (): number => Date.now() + 21 * 86_400_000
  f.nodes[TAX] = await startNode(cfgPath, { logger: pino({ level: 'silent' }), checkpointEveryMs: 0, witnessEveryMs: 0, env: {}, now: later })
  const list = (await local(f, TAX, 'GET', '/local/v1/applications')).json.applications as { id: string; overdue: boolean }[]
  t.same(list.filter((a) => a.overdue).map((a) => a.id).sort(), [filed.id, reviewed.id].sort())
  const m = await metric()
  t.match(m, /verinode_governance_overdue\{[^}]*deadline="answer"[^}]*\} 2/)
  t.match(m, /verinode_governance_overdue\{[^}]*deadline="review"[^}]*\} 1/)
  const { applicationsCommand } = await import('../../src/cli/commands/governance.js')
  const out: string[] = []
  const code = await applicationsCommand.run(['list', '--overdue'], { out: (l) => out.push(l), err: () => undefined, json: false, tty: false, cwd: '.', env: { VERINODE_NODE: f.nodes[TAX]!.localUrl, VERINODE_TOKEN: f.fed.nodes[TAX]!.appToken } })
  t.equal(code, 1, '--overdue exits 1 when there are overdue applications')
  t.match(out.join('\n'), /OVERDUE/)
  // answered now: late, but answered; no longer overdue
  await local(f, TAX, 'POST', `/local/v1/applications/${filed.id}/refuse`, { reason: 'too late to be useful' })
  t.match(await metric(), /verinode_governance_overdue\{[^}]*deadline="answer"[^}]*\} 1/)
})
