import t from 'tap'
import { GRID_SIZE, bucketIndex, gridIndexForBound, gridValueAt, gridValues } from '../../src/he/grid.js'
import { VnError } from '../../src/errors.js'

const code = (f: () => unknown): string | undefined => {
  try {
    f()
  } catch (e) {
    return e instanceof VnError ? e.code : 'not a VnError'
  }
  return undefined
}

t.test('known-answer grid: 0, then ISO 3 R10 from 1,000 to 1,600,000,000 yuan (in fen)', async (t) => {
  const g = gridValues()
  t.equal(g.length, GRID_SIZE)
  t.equal(GRID_SIZE, 64)
  t.same(g.slice(0, 12), [0, 100000, 125000, 160000, 200000, 250000, 315000, 400000, 500000, 630000, 800000, 1000000])
  t.equal(g[63], 160_000_000_000) // 1.6e9 yuan
  t.equal(g[61], 100_000_000_000)
  for (let i = 1; i < g.length; i++) t.ok((g[i] as number) > (g[i - 1] as number), `ascending at ${i}`)
  t.ok(Object.isFrozen(g))
  t.equal(gridValueAt(10), 800000)
})

t.test('gridIndexForBound: exact, up, down and every edge', async (t) => {
  const g = gridValues()
  for (let k = 0; k < GRID_SIZE; k++) {
    const v = g[k] as number
    t.equal(gridIndexForBound(v), k)
    t.equal(gridIndexForBound(v, 'up'), k)
    t.equal(gridIndexForBound(v, 'down'), k)
    if (k > 0) {
      t.equal(gridIndexForBound(v - 1, 'up'), k, `one below g_${k} rounds up to it`)
      t.equal(gridIndexForBound(v - 1, 'down'), k - 1)
      t.equal(code(() => gridIndexForBound(v - 1)), 'VN_ERR_HE_BOUND')
    }
  }
  t.equal(gridIndexForBound(123456789, 'down'), bucketIndex(123456789))
  t.equal(code(() => gridIndexForBound((g[63] as number) + 1, 'up')), 'VN_ERR_HE_BOUND', 'above the top')
  t.equal(gridIndexForBound((g[63] as number) + 1, 'down'), 63)
  for (const bad of [-1, 1.5, Number.NaN, Infinity, 2 ** 53]) t.equal(code(() => gridIndexForBound(bad, 'up')), 'VN_ERR_HE_BOUND', `bound ${bad}`)
  t.equal(code(() => gridValueAt(64)), 'VN_ERR_HE_BOUND')
  t.equal(code(() => gridValueAt(-1)), 'VN_ERR_HE_BOUND')
})

t.test('bucketIndex: largest grid point at or below v', async (t) => {
  const g = gridValues()
  t.equal(bucketIndex(-1), -1)
  t.equal(bucketIndex(Number.NaN), -1)
  t.equal(bucketIndex(0), 0)
  t.equal(bucketIndex(99999), 0)
  t.equal(bucketIndex(1e15), 63)
  for (let k = 1; k < GRID_SIZE; k++) {
    t.equal(bucketIndex(g[k] as number), k)
    t.equal(bucketIndex((g[k] as number) - 1), k - 1)
    t.equal(bucketIndex((g[k] as number) - 0.5), k - 1)
  }
})
