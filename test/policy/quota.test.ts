import t from 'tap'
import { QuotaCounter, utcDay } from '../../src/policy/quota.js'

t.test('utcDay', async (t) => {
  t.equal(utcDay(Date.UTC(2026, 0, 1, 23, 59, 59, 999)), '2026-01-01')
  t.equal(utcDay(Date.UTC(2026, 0, 2)), '2026-01-02')
  // 2026-01-02 07:00 in Beijing is still 2026-01-01 in UTC: quotas follow UTC days.
  t.equal(utcDay(Date.parse('2026-01-02T07:00:00+08:00')), '2026-01-01')
  t.throws(() => utcDay(-1), RangeError)
  t.throws(() => utcDay(1.5), RangeError)
  t.throws(() => utcDay(Number.NaN), RangeError)
  t.throws(() => utcDay(9e15), RangeError)
})

t.test('utcDay: the remembered day never leaks into another day, in either direction', async (t) => {
  const midnight = Date.UTC(2026, 10, 25)
  const seq: [number, string][] = [
    [midnight - 1, '2026-11-24'], [midnight, '2026-11-25'], [midnight - 1, '2026-11-24'],
    [midnight + 86_399_999, '2026-11-25'], [midnight + 86_400_000, '2026-11-26'], [0, '1970-01-01'], [midnight, '2026-11-25'],
  ]
  for (const [at, day] of seq) t.equal(utcDay(at), day, new Date(at).toISOString())
  t.throws(() => utcDay(-1), RangeError, 'a bad value after a remembered day still throws')
})

t.test('batches fit wholly or not at all', async (t) => {
  const q = new QuotaCounter()
  t.same(q.tryConsume('a', '2026-01-01', 6, 10), { ok: true, used: 6, remaining: 4 })
  t.same(q.tryConsume('a', '2026-01-01', 5, 10), { ok: false, used: 6, remaining: 4 }, 'a batch of 5 does not fit in 4')
  t.equal(q.used('a', '2026-01-01'), 6, 'the refused batch counted nothing')
  t.same(q.tryConsume('a', '2026-01-01', 4, 10), { ok: true, used: 10, remaining: 0 }, 'exactly fills')
  t.same(q.tryConsume('a', '2026-01-01', 1, 10), { ok: false, used: 10, remaining: 0 })
  t.same(q.tryConsume('a', '2026-01-02', 1, 10), { ok: true, used: 1, remaining: 9 }, 'a new day')
  t.same(q.tryConsume('b', '2026-01-01', 1, 10), { ok: true, used: 1, remaining: 9 }, 'another agreement')
  t.same(q.tryConsume('c', '2026-01-01', 11, 10), { ok: false, used: 0, remaining: 10 }, 'larger than the whole quota')
  t.same(q.tryConsume('a', '2026-01-01', 1, 5), { ok: false, used: 10, remaining: 0 }, 'a lowered limit leaves remaining at 0')
  for (const [n, limit, day] of [[0, 10, '2026-01-01'], [1.5, 10, '2026-01-01'], [1, 0, '2026-01-01'], [1, 10, '2026-1-1']] as const) {
    t.throws(() => q.tryConsume('a', day, n, limit), RangeError, `n=${n} limit=${limit} day=${day}`)
  }
})

t.test('restore rebuilds counts from decision records', async (t) => {
  const records = [
    { agreementId: 'a', day: '2026-01-01', count: 3 },
    { agreementId: 'a', day: '2026-01-02', count: 2 },
    { agreementId: 'a', day: '2026-01-02', count: 5 },
    { agreementId: 'b', day: '2026-01-02', count: 1 },
  ]
  const all = new QuotaCounter()
  all.restore(records)
  t.equal(all.used('a', '2026-01-01'), 3)
  t.equal(all.used('a', '2026-01-02'), 7)
  const today = new QuotaCounter()
  today.restore(records, '2026-01-02')
  t.equal(today.used('a', '2026-01-01'), 0, 'other days skipped')
  t.equal(today.used('a', '2026-01-02'), 7)
  t.same(today.tryConsume('a', '2026-01-02', 4, 10), { ok: false, used: 7, remaining: 3 }, 'restored counts constrain new batches')
  t.same(
    today.snapshot().sort((x, y) => x.agreementId.localeCompare(y.agreementId)),
    [
      { agreementId: 'a', day: '2026-01-02', count: 7 },
      { agreementId: 'b', day: '2026-01-02', count: 1 },
    ],
  )
  t.throws(() => all.restore([{ agreementId: 'a', day: '2026-01-01', count: 0 }]), RangeError)
  t.throws(() => all.restore([{ agreementId: 'a', day: 'today', count: 1 }]), RangeError)

  const c = all.clone()
  c.tryConsume('a', '2026-01-01', 1, 100)
  t.equal(all.used('a', '2026-01-01'), 3, 'clone is independent')
  t.equal(c.used('a', '2026-01-01'), 4)

  all.prune('2026-01-02')
  t.equal(all.used('a', '2026-01-01'), 0, 'pruned')
  t.equal(all.used('a', '2026-01-02'), 7, 'kept')
})

t.test('fork: reads through to its base, counts only into itself', async (t) => {
  const base = new QuotaCounter()
  base.restore([{ agreementId: 'a', day: '2026-01-02', count: 7 }, { agreementId: 'b', day: '2026-01-02', count: 2 }])
  const f = base.fork()
  t.equal(f.used('a', '2026-01-02'), 7, 'sees the base counts')
  t.same(f.tryConsume('a', '2026-01-02', 3, 10), { ok: true, used: 10, remaining: 0 }, 'a batch that fits with the base counts')
  t.same(f.tryConsume('a', '2026-01-02', 1, 10), { ok: false, used: 10, remaining: 0 }, 'then the limit holds in the fork')
  t.same(f.tryConsume('b', '2026-01-02', 9, 10), { ok: false, used: 2, remaining: 8 }, 'a batch over the limit with the base counts is refused')
  t.equal(base.used('a', '2026-01-02'), 7, 'the base is untouched')
  f.restore([{ agreementId: 'c', day: '2026-01-02', count: 1 }, { agreementId: 'b', day: '2026-01-02', count: 1 }])
  t.same(f.snapshot().sort((x, y) => x.agreementId.localeCompare(y.agreementId)), [
    { agreementId: 'a', day: '2026-01-02', count: 10 },
    { agreementId: 'b', day: '2026-01-02', count: 3 },
    { agreementId: 'c', day: '2026-01-02', count: 1 },
  ], 'snapshot: the base counts with the fork\'s on top')
  t.same(base.snapshot().length, 2, 'the base still has its own two')
  t.throws(() => f.prune('2026-01-03'), RangeError, 'a fork is not pruned')
})
