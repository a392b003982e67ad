import t from 'tap'
import { createHash } from 'node:crypto'
import { AgreementSchema, agreementSetHash, parseAgreements, sortAgreements, type Agreement } from '../../src/policy/agreements.js'

const a = (over: Partial<Agreement> = {}): Agreement => ({
  id: 'agr-2026-001',
  consumer: 'fj-bank',
  services: ['tax.compliance'],
  purposes: ['贷款审批'],
  basis: '《中华人民共和国税收征收管理法》第八条',
  validFrom: '2026-01-01T00:00:00Z',
  validUntil: '2027-01-01T00:00:00+08:00',
  dailyQuota: 1000,
  modes: ['plain', 'oprf'],
  ...over,
})

t.test('agreement set hash: known answer, order independent, sensitive to every field', async (t) => {
  const x = a()
  const y = a({ id: 'agr-2026-002', consumer: 'fj-amr', services: ['identity.match'], modes: ['he'] })
  const z = a({ id: 'agr-2025-009', dailyQuota: 5 })
  const h = agreementSetHash([x, y, z])
  t.equal(h, agreementSetHash([z, x, y]))
  t.equal(h, agreementSetHash([y, z, x]))
  t.match(h, /^[A-Za-z0-9_-]{43}$/)
  // Known answer: SHA-256 over the RFC 8785 text, written out by hand (keys sorted, no spaces).
  const one = a({ id: 'k', consumer: 'c1', services: ['s'], purposes: ['p'], basis: 'b', dailyQuota: 2, modes: ['plain'] })
  const text =
    '[{"basis":"b","consumer":"c1","dailyQuota":2,"id":"k","modes":["plain"],"purposes":["p"],"services":["s"],' +
    '"validFrom":"2026-01-01T00:00:00Z","validUntil":"2027-01-01T00:00:00+08:00"}]'
  t.equal(agreementSetHash([one]), createHash('sha256').update(text).digest('base64url'))
  t.equal(agreementSetHash([]), createHash('sha256').update('[]').digest('base64url'))
  // Key order inside an agreement object does not matter either.
  const reordered = Object.fromEntries(Object.entries(one).reverse()) as Agreement
  t.equal(agreementSetHash([reordered]), agreementSetHash([one]))
  for (const change of [{ dailyQuota: 1001 }, { purposes: ['贷款审批', '信用评估'] }, { basis: 'x' }, { modes: ['oprf', 'plain'] as Agreement['modes'] }, { validUntil: '2027-01-01T00:00:00Z' }]) {
    t.not(agreementSetHash([a(change), y, z]), h, JSON.stringify(Object.keys(change)))
  }
  t.same(sortAgreements([x, y, z]).map((g) => g.id), ['agr-2025-009', 'agr-2026-001', 'agr-2026-002'])
})

t.test('schema: every bad field is named', async (t) => {
  t.same(parseAgreements([a()]), [a()])
  const cases: Array<[string, unknown, RegExp]> = [
    ['not an array', { id: 'x' }, /^agreements: /],
    ['bad id', [a({ id: ' x' })], /^agreements\[0\]\.id: /],
    ['bad consumer', [a({ consumer: 'FJ' })], /^agreements\[0\]\.consumer: /],
    ['no services', [a({ services: [] })], /^agreements\[0\]\.services: /],
    ['no purposes', [a({ purposes: [] })], /^agreements\[0\]\.purposes: /],
    ['duplicate purpose', [a({ purposes: ['p', 'p'] })], /^agreements\[0\]\.purposes\[1\]: duplicate purpose/],
    ['empty basis', [a({ basis: '' })], /^agreements\[0\]\.basis: /],
    ['date without time', [a({ validFrom: '2026-01-01' })], /^agreements\[0\]\.validFrom: /],
    ['window reversed', [a({ validUntil: '2025-01-01T00:00:00Z' })], /^agreements\[0\]\.validUntil: must be after validFrom/],
    ['quota 0', [a({ dailyQuota: 0 })], /^agreements\[0\]\.dailyQuota: /],
    ['quota fractional', [a({ dailyQuota: 1.5 })], /^agreements\[0\]\.dailyQuota: /],
    ['unknown mode', [a({ modes: ['psi' as 'he'] })], /^agreements\[0\]\.modes\[0\]: /],
    ['no modes', [a({ modes: [] })], /^agreements\[0\]\.modes: /],
    ['unknown field', [{ ...a(), dailyQuotas: 5 }], /^agreements\[0\]: /],
    ['duplicate ids', [a(), a()], /^agreements\[1\]\.id: duplicate agreement id/],
  ]
  for (const [what, input, detail] of cases) {
    t.throws(() => parseAgreements(input), { code: 'VN_ERR_CONFIG_INVALID', detail }, what)
  }
  t.throws(() => parseAgreements('x', 'policy.agreements'), { code: 'VN_ERR_CONFIG_INVALID', detail: /^policy\.agreements: / }, 'field prefix')
  t.ok(AgreementSchema.safeParse(a({ validFrom: '2026-01-01T08:00:00+08:00' })).success, 'offsets allowed')
})
