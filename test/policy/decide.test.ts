import t from 'tap'
import type { Agreement } from '../../src/policy/agreements.js'
import { decide, decideAsync, quotaRecordOf, replayDecision, type Decision, type DecisionRequest } from '../../src/policy/decide.js'
import { MemoryQuotaStore } from '../../src/log/memory-store.js'
import { QuotaCounter } from '../../src/policy/quota.js'

const BASIS = '《中华人民共和国税收征收管理法》第八条'
const AT = Date.UTC(2026, 5, 1, 10)

const agreement = (over: Partial<Agreement> = {}): Agreement => ({
  id: 'agr-1',
  consumer: 'fj-bank',
  services: ['tax.compliance', 'credit.dishonest'],
  purposes: ['贷款审批'],
  basis: BASIS,
  validFrom: '2026-01-01T00:00:00Z',
  validUntil: '2027-01-01T00:00:00Z',
  dailyQuota: 10,
  modes: ['plain', 'oprf'],
  ...over,
})

const req = (over: Partial<DecisionRequest> = {}): DecisionRequest => ({
  consumer: 'fj-bank',
  service: 'tax.compliance',
  purpose: '贷款审批',
  basis: BASIS,
  mode: 'plain',
  count: 1,
  at: AT,
  ...over,
})

t.test('permit', async (t) => {
  const q = new QuotaCounter()
  const d = decide(req({ count: 3 }), [agreement()], q)
  t.same(d, { permit: true, agreementId: 'agr-1', remaining: 7, day: '2026-06-01', basis: BASIS })
  t.equal(q.used('agr-1', '2026-06-01'), 3)
  t.same(quotaRecordOf(d, { count: 3 }), { agreementId: 'agr-1', day: '2026-06-01', count: 3 })
})

t.test('every deny path, with its code and a PII-free reason', async (t) => {
  const cases: Array<[string, Partial<DecisionRequest>, Agreement[], RegExp]> = [
    ['no agreements at all', {}, [], /^no agreement with consumer fj-bank$/],
    ['other consumer', { consumer: 'fj-other' }, [agreement()], /^no agreement with consumer fj-other$/],
    ['other service', { service: 'identity.match' }, [agreement()], /covers service identity\.match/],
    ['other purpose', { purpose: '营销 张三 350102199001011234' }, [agreement()], /stated purpose is not agreed/],
    ['mode not agreed', { mode: 'he' }, [agreement()], /mode he is not agreed/],
    ['basis differs', { basis: '随便' }, [agreement()], /stated legal basis differs from agreement agr-1/],
    ['basis omitted in plain mode', { basis: undefined }, [agreement()], /legal basis is mandatory in plain mode/],
    ['basis empty in plain mode', { basis: '' }, [agreement()], /legal basis is mandatory in plain mode/],
    ['before validFrom', { at: Date.UTC(2025, 11, 31, 23, 59, 59, 999) }, [agreement()], /not in force before 2026-01-01T00:00:00\.000Z/],
    ['at validUntil (exclusive)', { at: Date.UTC(2027, 0, 1) }, [agreement()], /expired at 2027-01-01T00:00:00\.000Z/],
  ]
  for (const [what, over, agreements, reason] of cases) {
    const q = new QuotaCounter()
    const d = decide(req(over), agreements, q)
    t.same({ permit: d.permit, code: !d.permit && d.code }, { permit: false, code: 'VN_ERR_POLICY_NO_AGREEMENT' }, what)
    t.match(!d.permit && d.reason, reason, what)
    t.notMatch(!d.permit && d.reason, /张三|350102|营销|随便|贷款/, `${what}: the request's free text is never echoed`)
    t.same(q.snapshot(), [], `${what}: nothing counted`)
  }
  t.equal(decide(req({ at: Date.UTC(2026, 0, 1) }), [agreement()], new QuotaCounter()).permit, true, 'at validFrom (inclusive)')
})

t.test('the reason comes from the agreement that got furthest', async (t) => {
  const agreements = [agreement({ id: 'a', services: ['x.y'] }), agreement({ id: 'b', modes: ['he'] }), agreement({ id: 'c', consumer: 'fj-other' })]
  const d = decide(req(), agreements, new QuotaCounter())
  t.match(d, { permit: false, code: 'VN_ERR_POLICY_NO_AGREEMENT', reason: /mode plain is not agreed/ })
})

t.test('basis may be omitted in oprf and he modes; the agreement basis applies', async (t) => {
  const d = decide(req({ basis: undefined, mode: 'oprf' }), [agreement()], new QuotaCounter())
  t.match(d, { permit: true, basis: BASIS })
  const he = decide(req({ basis: undefined, mode: 'he' }), [agreement({ modes: ['he'] })], new QuotaCounter())
  t.match(he, { permit: true })
  t.match(decide(req({ basis: 'other', mode: 'oprf' }), [agreement()], new QuotaCounter()), { permit: false, code: 'VN_ERR_POLICY_NO_AGREEMENT' }, 'a stated basis must still match')
})

t.test('quota exhaustion with batch semantics', async (t) => {
  const q = new QuotaCounter()
  t.match(decide(req({ count: 8 }), [agreement()], q), { permit: true, remaining: 2 })
  const over = decide(req({ count: 3 }), [agreement()], q)
  t.same({ permit: over.permit, code: !over.permit && over.code }, { permit: false, code: 'VN_ERR_POLICY_QUOTA_EXHAUSTED' })
  t.match(!over.permit && over.reason, /batch of 3 does not fit the daily quota on 2026-06-01 of agr-1 \(8\/10 used\)/)
  t.equal(q.used('agr-1', '2026-06-01'), 8, 'the refused batch counted nothing')
  t.match(decide(req({ count: 2 }), [agreement()], q), { permit: true, remaining: 0 }, 'a batch that fits still passes')
  t.match(decide(req({ count: 1 }), [agreement()], q), { permit: false, code: 'VN_ERR_POLICY_QUOTA_EXHAUSTED' })
  t.match(decide(req({ count: 1, at: Date.UTC(2026, 5, 2) }), [agreement()], q), { permit: true, remaining: 9, day: '2026-06-02' }, 'next UTC day')
  t.match(decide(req({ count: 11 }), [agreement({ id: 'fresh' })], q), { permit: false, code: 'VN_ERR_POLICY_QUOTA_EXHAUSTED' }, 'batch larger than the quota')
})

t.test('several agreements: id order, a batch is never split', async (t) => {
  const q = new QuotaCounter()
  const agreements = [agreement({ id: 'b', dailyQuota: 5 }), agreement({ id: 'a', dailyQuota: 3 })]
  t.match(decide(req({ count: 2 }), agreements, q), { permit: true, agreementId: 'a', remaining: 1 })
  t.match(decide(req({ count: 2 }), agreements, q), { permit: true, agreementId: 'b', remaining: 3 }, 'a is too full for 2, b takes it')
  t.match(decide(req({ count: 1 }), agreements, q), { permit: true, agreementId: 'a', remaining: 0 })
  t.match(decide(req({ count: 4 }), agreements, q), { permit: false, code: 'VN_ERR_POLICY_QUOTA_EXHAUSTED', reason: /a \(3\/3 used\), b \(2\/5 used\)/ }, 'not split 0+3+1')
  t.same(
    q.snapshot().sort((x, y) => x.agreementId.localeCompare(y.agreementId)),
    [
      { agreementId: 'a', day: '2026-06-01', count: 3 },
      { agreementId: 'b', day: '2026-06-01', count: 2 },
    ],
  )
})

t.test('bad input', async (t) => {
  for (const count of [0, -1, 1.5, Number.NaN]) t.throws(() => decide(req({ count }), [agreement()], new QuotaCounter()), RangeError, `count ${count}`)
  t.throws(() => decide(req({ at: -5 }), [agreement()], new QuotaCounter()), RangeError)
})

t.test('replay: same decisions from the same agreements and a counter rebuilt from records', async (t) => {
  const agreements = [agreement({ dailyQuota: 5 }), agreement({ id: 'agr-he', modes: ['he'], dailyQuota: 2 })]
  const requests: DecisionRequest[] = [
    req({ count: 2 }),
    req({ count: 2, mode: 'he', basis: undefined }),
    req({ count: 4 }),
    req({ service: 'identity.match' }),
    req({ count: 3 }),
    req({ count: 1, mode: 'he' }),
    req({ count: 1, at: AT + 86_400_000 }),
  ]
  const live = new QuotaCounter()
  const logged: Decision[] = requests.map((r) => decide(r, agreements, live))
  t.same(logged.map((d) => d.permit), [true, true, false, false, true, false, true])

  // The auditor walks the log: each decision is replayed against a counter holding only the
  // permits logged before it, rebuilt from their quota records.
  const records = logged.flatMap((d, i) => {
    const rec = quotaRecordOf(d, requests[i]!)
    return rec === undefined ? [] : [rec]
  })
  t.equal(records.length, 4)
  const replay = new QuotaCounter()
  requests.forEach((r, i) => {
    t.same(replayDecision(r, [...agreements].reverse(), replay), logged[i], `decision ${i} replays identically`)
  })
  t.same(replay.snapshot(), live.snapshot())
  const restored = new QuotaCounter()
  restored.restore(records)
  t.same(restored.snapshot().sort((x, y) => (x.agreementId + x.day).localeCompare(y.agreementId + y.day)), live.snapshot().sort((x, y) => (x.agreementId + x.day).localeCompare(y.agreementId + y.day)))
  t.equal(quotaRecordOf(logged[2]!, requests[2]!), undefined, 'denials carry no quota record')
})

t.test('decideAsync (the provider\'s path, counts in a QuotaStore) decides exactly as decide', async (t) => {
  const agreements = [agreement({ dailyQuota: 4 }), agreement({ id: 'agr-2', dailyQuota: 2 }), agreement({ id: 'agr-3', purposes: ['other'] })]
  const requests = [
    req({ count: 3 }), req({ count: 2 }), req({ count: 2 }), req({ count: 1 }), req({ count: 1 }),
    req({ purpose: 'other' }), req({ consumer: 'nobody' }), req({ mode: 'he' }), req({ at: Date.UTC(2027, 5, 1) }), req({ count: 1, at: AT + 86_400_000 }),
  ]
  const counter = new QuotaCounter()
  const store = new MemoryQuotaStore()
  for (const [i, r] of requests.entries()) t.same(await decideAsync(r, agreements, store), decide(r, agreements, counter), `request ${i}`)
  t.same(await store.used('agr-2', '2026-06-01'), counter.used('agr-2', '2026-06-01'))
  await t.rejects(decideAsync(req({ count: 0 }), agreements, store), RangeError)
})
