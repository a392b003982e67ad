/**
 * The sharing rules of docs/GOVERNANCE.md as pure functions: the start-up check (`checkOffer`),
 * the rules view (`sharingRulesOf`) and `decide` under it, every rule and every refusal with its code.
 */
import t from 'tap'
import type { Agreement } from '../../src/policy/agreements.js'
import { decide, decideAsync, type DecisionRequest } from '../../src/policy/decide.js'
import { checkOffer, effectiveOf, sharingRulesHash, sharingRulesOf, unconditionalQuotaId, SharingRulesSchema, type ServiceGovernanceInput } from '../../src/policy/sharing.js'
import { MemoryQuotaStore } from '../../src/log/memory-store.js'
import { QuotaCounter } from '../../src/policy/quota.js'
import { ManifestGovernanceSchema, type ManifestGovernance } from '../../src/protocol/governance.js'
import { VnError } from '../../src/errors.js'

const AT = Date.UTC(2026, 5, 1, 10)
const BASIS = 'Regulation on Government Data Sharing art. 14'
const SELF = 'fj-amr'
const DEFAULTS = { unconditionalDailyQuota: 5, gradedDailyQuota: 2 }

const svc = (id: string, over: Partial<ServiceGovernanceInput> = {}): ServiceGovernanceInput => ({
  id, sharing: 'conditional', classification: 'general', personalInfo: 'none', fields: { id: {} }, ...over,
})
const SERVICES: ServiceGovernanceInput[] = [
  svc('enterprise.status', { sharing: 'unconditional', item: 'market.enterprise-status' }),
  svc('enterprise.detail', { sharing: 'not-shared' }),
  svc('enterprise.owner', { fields: { id: { personalInfo: 'sensitive' } } }),
  svc('enterprise.finance', { sharing: 'unconditional', classification: 'important' }),
  svc('enterprise.licence', { sharing: 'unconditional', item: 'market.licence' }),
]
const MANIFEST: ManifestGovernance = {
  sources: [{ item: 'market.enterprise-status', member: SELF }, { item: 'tax.payment-compliance', member: 'fj-tax' }],
  negativeList: [{ item: 'population.biometrics', rule: 'not-shared' }, { item: 'market.licence', rule: 'conditional', conditions: 'under an agreement only' }],
}
const GOV = sharingRulesOf(SELF, SERVICES, MANIFEST, ['fj-tax', 'fj-psb', SELF], DEFAULTS)

const agreement = (over: Partial<Agreement> = {}): Agreement => ({
  id: 'agr-1', consumer: 'fj-tax', services: ['enterprise.detail', 'enterprise.owner', 'enterprise.status', 'enterprise.licence'], purposes: ['registration'], basis: BASIS,
  validFrom: '2026-01-01T00:00:00Z', validUntil: '2027-01-01T00:00:00Z', dailyQuota: 50, modes: ['plain', 'oprf'], ...over,
})
const req = (over: Partial<DecisionRequest> = {}): DecisionRequest => ({
  consumer: 'fj-psb', service: 'enterprise.status', purpose: 'registration', basis: BASIS, mode: 'plain', count: 1, at: AT, ...over,
})
const codeOf = (f: () => unknown): string | undefined => {
  try {
    f()
    return undefined
  } catch (e) {
    return e instanceof VnError ? e.code : String(e)
  }
}

t.test('effective values: the strictest of the service and its fields; item defaults to the id', async (t) => {
  t.same(effectiveOf(svc('a.b', { fields: { x: { sharing: 'not-shared', classification: 'important' }, y: { personalInfo: 'personal' } } })),
    { item: 'a.b', sharing: 'not-shared', classification: 'important', personalInfo: 'personal' })
  t.same(effectiveOf(svc('a.b', { sharing: 'unconditional', item: 'x.y', fields: { x: { sharing: 'conditional' } } })).sharing, 'conditional')
  t.equal(GOV.services['enterprise.owner']?.personalInfo, 'sensitive')
})

t.test('start-up check: each refusal has its code; an allowed offer passes', async (t) => {
  t.equal(codeOf(() => checkOffer(SELF, SERVICES.filter((s) => s.id !== 'enterprise.licence'), MANIFEST)), undefined, 'the services above may be offered')
  t.equal(codeOf(() => checkOffer(SELF, SERVICES, MANIFEST)), 'VN_ERR_GOV_NEGATIVE_LISTED', 'but not enterprise.licence as unconditional (the rules deny it if a manifest lists it after start)')
  t.equal(codeOf(() => checkOffer(SELF, SERVICES, undefined)), undefined, 'a manifest without a catalogue section checks only grading')
  t.equal(codeOf(() => checkOffer(SELF, [svc('tax.compliance', { item: 'tax.payment-compliance' })], MANIFEST)), 'VN_ERR_GOV_NOT_SOURCE', 'another member is the source')
  t.equal(codeOf(() => checkOffer(SELF, [svc('person.face', { item: 'population.biometrics', sharing: 'not-shared' })], MANIFEST)), 'VN_ERR_GOV_NEGATIVE_LISTED', 'a not-shared negative-listed item, even marked not-shared')
  t.equal(codeOf(() => checkOffer(SELF, [svc('enterprise.licence', { item: 'market.licence', sharing: 'unconditional' })], MANIFEST)), 'VN_ERR_GOV_NEGATIVE_LISTED', 'a conditional negative-listed item offered unconditionally')
  t.equal(codeOf(() => checkOffer(SELF, [svc('enterprise.licence', { item: 'market.licence' })], MANIFEST)), undefined, 'the same item offered as conditional is fine')
  t.equal(codeOf(() => checkOffer(SELF, [svc('state.secret', { classification: 'core' })], undefined)), 'VN_ERR_GOV_CORE_DATA', 'core data')
  t.equal(codeOf(() => checkOffer(SELF, [svc('state.secret', { sharing: 'not-shared', fields: { id: { classification: 'core' } } })], undefined)), 'VN_ERR_GOV_CORE_DATA', 'one core field makes the service core')
  t.equal(codeOf(() => checkOffer(SELF, [svc('person.health', { sharing: 'unconditional', personalInfo: 'sensitive' })], undefined)), 'VN_ERR_GOV_GRADING', 'sensitive personal information as unconditional')
  t.equal(codeOf(() => checkOffer(SELF, [], undefined, ['uncond:fj-psb:x.y'])), 'VN_ERR_CONFIG_INVALID', 'the reserved agreement id prefix')
  try {
    checkOffer(SELF, [svc('tax.compliance', { item: 'tax.payment-compliance' })], MANIFEST)
  } catch (e) {
    t.match((e as VnError).detail, /^service tax\.compliance: the manifest names fj-tax as the authoritative source of item tax\.payment-compliance/, 'the detail names the service, the item and the source')
  }
})

t.test('the manifest section: one source per item, each item listed once', async (t) => {
  t.notOk(ManifestGovernanceSchema.safeParse({ sources: [{ item: 'a.b', member: 'fj-a' }, { item: 'a.b', member: 'fj-b' }] }).success, 'two sources for one item')
  t.notOk(ManifestGovernanceSchema.safeParse({ negativeList: [{ item: 'a.b', rule: 'not-shared' }, { item: 'a.b', rule: 'conditional' }] }).success, 'an item listed twice')
  t.notOk(ManifestGovernanceSchema.safeParse({ negativeList: [{ item: 'a.b', rule: 'maybe' }] }).success, 'an unknown rule')
  t.notOk(ManifestGovernanceSchema.safeParse({ sources: [], extra: 1 }).success, 'an unknown member')
  t.same(ManifestGovernanceSchema.parse({}), { sources: [], negativeList: [] })
})

t.test('the rules view is what the log keeps: it parses and hashes stably', async (t) => {
  t.ok(SharingRulesSchema.safeParse(GOV).success)
  t.equal(sharingRulesHash(GOV), sharingRulesHash(sharingRulesOf(SELF, [...SERVICES].reverse(), MANIFEST, [SELF, 'fj-psb', 'fj-tax'], DEFAULTS)), 'independent of input order')
  t.not(sharingRulesHash(GOV), sharingRulesHash(sharingRulesOf(SELF, SERVICES, undefined, ['fj-tax', 'fj-psb', SELF], DEFAULTS)), 'the manifest section changes it')
  t.same(GOV.services['market.licence' as string], undefined)
  t.match(GOV.services['enterprise.licence'], { item: 'market.licence', negative: 'conditional' })
  t.match(GOV.services['enterprise.status'], { item: 'market.enterprise-status', source: SELF, sharing: 'unconditional' })
})

t.test('unconditional: any department with purpose and basis, no agreement, per-consumer quota', async (t) => {
  const q = new QuotaCounter()
  const d = decide(req({ count: 3 }), [], q, GOV)
  t.same(d, { permit: true, agreementId: 'uncond:fj-psb:enterprise.status', remaining: 2, day: '2026-06-01', basis: BASIS })
  t.match(decide(req({ count: 3 }), [], q, GOV), { permit: false, code: 'VN_ERR_POLICY_QUOTA_EXHAUSTED', reason: /uncond:fj-psb:enterprise\.status \(3\/5 used\)/ }, 'unconditionalDailyQuota bounds it')
  t.match(decide(req({ consumer: 'fj-tax', count: 5 }), [], q, GOV), { permit: true }, 'each consumer has its own quota')
  t.match(decide(req({ consumer: 'fj-auditor' }), [], q, GOV), { permit: false, code: 'VN_ERR_POLICY_NO_AGREEMENT', reason: /department members only, not fj-auditor/ }, 'not a department: denied')
  t.match(decide(req({ basis: undefined, mode: 'oprf' }), [], q, GOV), { permit: false, code: 'VN_ERR_POLICY_NO_AGREEMENT', reason: /needs a stated legal basis/ }, 'no basis: denied, even in oprf mode')
  t.match(decide(req(), [], new QuotaCounter()), { permit: false, code: 'VN_ERR_POLICY_NO_AGREEMENT' }, 'without the rules view, the agreements alone decide (as before)')
  t.match(decide(req({ consumer: 'fj-tax' }), [agreement()], new QuotaCounter(), GOV), { permit: true, agreementId: 'agr-1' }, 'an agreement in force is used first')
  t.equal(unconditionalQuotaId('m'.repeat(63), `a.${'b'.repeat(120)}`).length, 50, 'a long id is hashed to fit the agreement-id grammar')
  const { useProfile } = await import('../../src/crypto/profile.js')
  const { createHash } = await import('node:crypto')
  const long = (): string => unconditionalQuotaId('m'.repeat(63), `a.${'b'.repeat(120)}`)
  const intlId = long()
  t.equal(intlId, `uncond:${createHash('sha256').update(`${'m'.repeat(63)}:a.${'b'.repeat(120)}`).digest('base64url')}`, 'intl: SHA-256')
  useProfile('sm')
  try {
    t.equal(long(), `uncond:${createHash('sm3').update(`${'m'.repeat(63)}:a.${'b'.repeat(120)}`).digest('base64url')}`, 'sm: the shortened id uses SM3, not SHA-256')
  } finally {
    useProfile('intl')
  }
})

t.test('conditional: only under an agreement in force, as before', async (t) => {
  t.match(decide(req({ service: 'enterprise.licence' }), [], new QuotaCounter(), GOV), { permit: false, code: 'VN_ERR_POLICY_NO_AGREEMENT' }, 'negative-listed as conditional: never unconditional')
  t.match(decide(req({ service: 'enterprise.licence', consumer: 'fj-tax' }), [agreement()], new QuotaCounter(), GOV), { permit: true, agreementId: 'agr-1' })
})

t.test('not shared: never answered, whatever the agreements say', async (t) => {
  const no = (r: Partial<DecisionRequest>, gov = GOV): unknown => decide(req({ consumer: 'fj-tax', ...r }), [agreement({ services: ['enterprise.detail', 'enterprise.status', 'x.y'] })], new QuotaCounter(), gov)
  t.match(no({ service: 'enterprise.detail' }), { permit: false, code: 'VN_ERR_POLICY_NOT_SHARED', reason: 'service enterprise.detail is not shared' })
  const listed = sharingRulesOf(SELF, [svc('x.y', { item: 'population.biometrics' })], MANIFEST, ['fj-tax'], DEFAULTS)
  t.match(no({ service: 'x.y' }, listed), { permit: false, code: 'VN_ERR_POLICY_NOT_SHARED', reason: /negative list/ }, 'negative-listed after start (a new manifest)')
  const other = sharingRulesOf(SELF, [svc('x.y', { item: 'tax.payment-compliance' })], MANIFEST, ['fj-tax'], DEFAULTS)
  t.match(no({ service: 'x.y' }, other), { permit: false, code: 'VN_ERR_POLICY_NOT_SHARED', reason: /authoritative source of item tax\.payment-compliance is fj-tax/ })
  const core = sharingRulesOf(SELF, [svc('x.y', { classification: 'core' })], undefined, ['fj-tax'], DEFAULTS)
  t.match(no({ service: 'x.y' }, core), { permit: false, code: 'VN_ERR_POLICY_NOT_SHARED', reason: /core data/ })
})

t.test('grading: important and sensitive items in plain mode are held to the stricter quota', async (t) => {
  const q = new QuotaCounter()
  t.match(decide(req({ consumer: 'fj-tax', service: 'enterprise.owner', count: 2 }), [agreement()], q, GOV), { permit: true, remaining: 0 }, 'gradedDailyQuota (2) caps the agreement\'s 50')
  t.match(decide(req({ consumer: 'fj-tax', service: 'enterprise.owner', count: 1 }), [agreement()], q, GOV), { permit: false, code: 'VN_ERR_POLICY_QUOTA_EXHAUSTED', reason: /agr-1 \(2\/2 used\)/ })
  t.match(decide(req({ consumer: 'fj-tax', service: 'enterprise.owner', count: 10, mode: 'oprf' }), [agreement()], q, GOV), { permit: true }, 'oprf mode: the agreement\'s own quota')
  const u = new QuotaCounter()
  t.match(decide(req({ service: 'enterprise.finance', count: 2 }), [], u, GOV), { permit: true, remaining: 0 }, 'important unconditional in plain: the graded cap')
  t.match(decide(req({ service: 'enterprise.finance', count: 1 }), [], u, GOV), { permit: false, code: 'VN_ERR_POLICY_QUOTA_EXHAUSTED' })
  const sensitiveUncond = sharingRulesOf(SELF, [svc('x.y', { sharing: 'unconditional', personalInfo: 'sensitive' })], undefined, ['fj-psb'], DEFAULTS)
  t.match(decide(req({ service: 'x.y' }), [], new QuotaCounter(), sensitiveUncond), { permit: false, code: 'VN_ERR_POLICY_NO_AGREEMENT' }, 'sensitive data is never answered without an agreement')
})

t.test('decideAsync gives the same answers over a QuotaStore', async (t) => {
  const store = new MemoryQuotaStore()
  t.match(await decideAsync(req({ count: 5 }), [], store, GOV), { permit: true, agreementId: 'uncond:fj-psb:enterprise.status' })
  t.match(await decideAsync(req(), [], store, GOV), { permit: false, code: 'VN_ERR_POLICY_QUOTA_EXHAUSTED' })
  t.match(await decideAsync(req({ service: 'enterprise.detail' }), [], store, GOV), { permit: false, code: 'VN_ERR_POLICY_NOT_SHARED' })
})
