import t from 'tap'
import { createHeContext, HE_PARAMS } from '../../src/he/context.js'
import { GRID_SIZE, bucketIndex, gridValues } from '../../src/he/grid.js'
import { HeClient, HeProvider, subjectsPerCiphertext, type HeValue } from '../../src/he/threshold.js'
import { VnError } from '../../src/errors.js'

const he = await createHeContext()
const client = await HeClient.create(he)
const provider = new HeProvider(he)
t.teardown(() => {
  client.delete()
  provider.delete()
})
const g = gridValues()
const top = g[GRID_SIZE - 1] as number
const N = he.slotCount
const T = he.plainModulus
const PER = subjectsPerCiphertext(he)

async function codeOf(f: () => unknown): Promise<string | undefined> {
  try {
    await f()
  } catch (e) {
    return e instanceof VnError ? e.code : `not a VnError: ${String(e)}`
  }
  return undefined
}

/** Segment sums (mod t) of an answer, one per subject. */
function segmentSums(answers: Uint8Array[], count: number): number[] {
  const out: number[] = []
  answers.forEach((a, c) => {
    const slots = client.decryptSlots(a)
    for (let i = c * PER; i < Math.min(count, (c + 1) * PER); i++) {
      let s = 0
      for (let j = 0; j < GRID_SIZE; j++) s += slots[(i - c * PER) * GRID_SIZE + j] as number
      out.push(s % T)
    }
  })
  return out
}

t.test('parameters: N, slots, subjects per ciphertext', async (t) => {
  t.equal(N, 8192)
  t.equal(PER, 128)
  t.equal(T, HE_PARAMS.plainModulus)
  t.equal((T - 1) % (2 * N), 0, 't is a batching prime: t = 1 mod 2N')
})

t.test('threshold: every bound against every grid point and its edges (g_T - 1, g_T, g_T + 1, 0, above top, negative, no record)', async (t) => {
  const bounds: number[] = []
  const values: HeValue[] = []
  for (let b = 0; b < GRID_SIZE; b++) {
    const gb = g[b] as number
    for (const v of [...g, gb - 1, gb + 1, 0, -1, top + 1, Number.MAX_SAFE_INTEGER, null]) {
      bounds.push(b)
      values.push(v)
    }
  }
  const answers = provider.evaluate(client.publicKeyBytes(), client.encryptBounds(bounds), values)
  const bits = client.decryptBits(answers, bounds.length)
  let wrong = 0
  bits.forEach((bit, i) => {
    const v = values[i] as HeValue
    if (bit !== (v !== null && v >= (g[bounds[i] as number] as number))) wrong++
  })
  t.equal(bits.length, 64 * 71)
  t.equal(wrong, 0, `all ${bits.length} bits exact`)
})

t.test('range: [g_lo <= v < g_hi] at the edges, hi = 64 meaning no upper bound', async (t) => {
  const ranges: { lo: number; hi: number }[] = []
  const values: HeValue[] = []
  for (let lo = 0; lo < GRID_SIZE; lo++) {
    for (const hi of new Set([lo + 1, Math.min(lo + 7, GRID_SIZE), GRID_SIZE])) {
      const vs: HeValue[] = [(g[lo] as number) - 1, g[lo] as number, null, top * 2]
      if (hi < GRID_SIZE) vs.push((g[hi] as number) - 1, g[hi] as number)
      for (const v of vs) {
        ranges.push({ lo, hi })
        values.push(v)
      }
    }
  }
  const answers = provider.evaluate(client.publicKeyBytes(), client.encryptRanges(ranges), values, 'range')
  const bits = client.decryptBits(answers, ranges.length)
  let wrong = 0
  bits.forEach((bit, i) => {
    const v = values[i] as HeValue
    const r = ranges[i] as { lo: number; hi: number }
    const want = v !== null && v >= (g[r.lo] as number) && (r.hi === GRID_SIZE || v < (g[r.hi] as number))
    if (bit !== want) wrong++
  })
  t.equal(wrong, 0, `all ${bits.length} range bits exact`)
})

t.test('answers decrypt with noise budget to spare, and are re-randomized', async (t) => {
  const q = client.encryptBounds([5, 9])
  const a1 = provider.evaluate(client.publicKeyBytes(), q, [g[7] as number, 3])
  const a2 = provider.evaluate(client.publicKeyDigest(), q, [g[7] as number, 3])
  const budgets = client.noiseBudgets([...a1, ...a2])
  for (const b of budgets) t.ok(b >= 10, `noise budget ${b} bits >= 10`)
  t.same(client.decryptBits(a1, 2), [true, false])
  t.same(client.decryptBits(a2, 2), [true, false])
  t.ok(Buffer.compare(a1[0] as Uint8Array, a2[0] as Uint8Array) !== 0, 'same query and values, different ciphertext')
  const s1 = client.decryptSlots(a1[0] as Uint8Array)
  const s2 = client.decryptSlots(a2[0] as Uint8Array)
  t.ok(s1.subarray(0, GRID_SIZE).some((x, j) => x !== s2[j]), 'fresh r_j and mask per evaluation')
  // the below-threshold subject's segment is a random zero-sum vector, not zeros
  const seg = s1.subarray(GRID_SIZE, 2 * GRID_SIZE)
  t.ok(seg.filter((x) => x !== 0).length > 50, 'mask hides the slots')
  // unused segments (subjects 2..127) carry only mask: every one sums to zero
  const sums = segmentSums(a1, PER)
  t.same(sums.slice(2), new Array(PER - 2).fill(0))
})

t.test('malicious queries reveal at most one threshold bit per segment', async (t) => {
  const values: number[] = []
  for (let k = 0; k < GRID_SIZE; k++) values.push(g[k] as number, (g[k] as number) + 1)
  const count = values.length // 128: one ciphertext
  const build = (f: (seg: Uint32Array, i: number) => void): Uint8Array[] => {
    const slots = new Uint32Array(N)
    for (let i = 0; i < count; i++) f(slots.subarray(i * GRID_SIZE, (i + 1) * GRID_SIZE), i)
    return [client.encryptSlots(slots)]
  }
  const run = (q: Uint8Array[], kind: 'threshold' | 'range' = 'threshold') => segmentSums(provider.evaluate(client.publicKeyDigest(), q, values, kind), count)

  await t.test('all ones: only [v >= g_0], and the sum does not count satisfied slots', async (t) => {
    const sums = run(build((seg) => seg.fill(1)))
    t.ok(sums.every((s) => s !== 0), 'bit = [v >= 0] = 1 for every subject')
    // an unrandomized step function would give sum = bucket(v) + 1; here sums are uniform in Z_t*
    t.ok(sums.filter((s, i) => s === bucketIndex(values[i] as number) + 1).length < 3)
    t.ok(new Set(sums).size > count - 4, 'spread over Z_t (birthday collisions aside)')
  })

  await t.test('two hot slots {a, b}: exactly [v >= g_min(a,b)]', async (t) => {
    const pairs = values.map((_, i) => [(i * 5) % GRID_SIZE, (i * 11 + 3) % GRID_SIZE] as const)
    const sums = run(build((seg, i) => {
      const [a, b] = pairs[i] as readonly [number, number]
      seg[a] = 1
      seg[b] = 1
    }))
    sums.forEach((s, i) => {
      const [a, b] = pairs[i] as readonly [number, number]
      t.equal(s !== 0, (values[i] as number) >= (g[Math.min(a, b)] as number), `subject ${i}`)
    })
  })

  await t.test('values outside {0,1} (5, t-1, a random weight) change nothing but the scale', async (t) => {
    for (const w of [5, T - 1, 77777]) {
      const sums = run(build((seg, i) => {
        seg[i % GRID_SIZE] = w
      }))
      let wrong = 0
      sums.forEach((s, i) => {
        if ((s !== 0) !== ((values[i] as number) >= (g[i % GRID_SIZE] as number))) wrong++
      })
      t.equal(wrong, 0, `weight ${w}`)
      const nz = sums.filter((s) => s !== 0)
      t.ok(new Set(nz).size > nz.length - 4, 'answers stay uniform, not a multiple of a count')
    }
  })

  await t.test('range evaluation with all ones: only [bucket(v) exists]', async (t) => {
    const sums = run(build((seg) => seg.fill(1)), 'range')
    t.ok(sums.every((s) => s !== 0))
    t.ok(new Set(sums).size > count - 4)
  })
})

t.test('bad inputs get coded errors', async (t) => {
  t.equal(await codeOf(() => client.encryptBounds([64])), 'VN_ERR_HE_BOUND')
  t.equal(await codeOf(() => client.encryptBounds([-1])), 'VN_ERR_HE_BOUND')
  t.equal(await codeOf(() => client.encryptBounds([1.5])), 'VN_ERR_HE_BOUND')
  t.equal(await codeOf(() => client.encryptRanges([{ lo: 5, hi: 5 }])), 'VN_ERR_HE_BOUND')
  t.equal(await codeOf(() => client.encryptRanges([{ lo: 5, hi: 65 }])), 'VN_ERR_HE_BOUND')
  const q = client.encryptBounds([1])
  t.equal(await codeOf(() => provider.evaluate(client.publicKeyDigest(), q, new Array(PER + 1).fill(1))), 'VN_ERR_HE_CIPHERTEXT', 'too few ciphertexts')
  t.equal(await codeOf(() => provider.evaluate('00'.repeat(32), q, [1])), 'VN_ERR_HE_KEY', 'unknown key digest')
  t.equal(await codeOf(() => provider.evaluate(q[0] as Uint8Array, q, [1])), 'VN_ERR_HE_KEY', 'a ciphertext is not a key')
  t.equal(await codeOf(() => provider.loadKey(client.publicKeyBytes(), 'ff'.repeat(32))), 'VN_ERR_HE_KEY', 'digest mismatch')
  const a = provider.evaluate(client.publicKeyDigest(), q, [1])
  t.equal(await codeOf(() => provider.evaluate(client.publicKeyDigest(), a, [1])), 'VN_ERR_HE_CIPHERTEXT', 'an answer is not a query')
  t.equal(await codeOf(() => client.decryptBits(q, 1)), 'VN_ERR_HE_CIPHERTEXT', 'a query is not an answer')
  t.equal(await codeOf(() => client.decryptBits(a, 200)), 'VN_ERR_HE_CIPHERTEXT', 'count does not match')
  t.equal(await codeOf(() => provider.evaluate(client.publicKeyDigest(), q, [Number.NaN])), 'VN_ERR_INTERNAL')
  t.same(client.decryptBits(provider.evaluate(client.publicKeyDigest(), q, [g[1] as number]), 1), [true], 'still works afterwards')
})

t.test('another consumer cannot read an answer made for this one', async (t) => {
  const other = await HeClient.create(he)
  t.teardown(() => other.delete())
  const q = client.encryptBounds([1])
  const a = provider.evaluate(client.publicKeyBytes(), q, [g[1] as number])
  // the answer is encrypted under `client`'s key: `other` decrypts noise, not the bit
  const code = await codeOf(() => other.decryptBits(a, 1))
  t.equal(code, 'VN_ERR_HE_CIPHERTEXT', 'wrong key shows as exhausted noise budget')
})

t.test('key cache is an LRU and frees evicted keys', async (t) => {
  const small = new HeProvider(he, { keyCacheSize: 1 })
  t.teardown(() => small.delete())
  const other = await HeClient.create(he)
  t.teardown(() => other.delete())
  const d1 = small.loadKey(client.publicKeyBytes())
  t.ok(small.hasKey(d1))
  const d2 = small.loadKey(other.publicKeyBytes())
  t.ok(small.hasKey(d2))
  t.notOk(small.hasKey(d1), 'evicted')
  t.equal(await codeOf(() => small.evaluate(d1, client.encryptBounds([0]), [1])), 'VN_ERR_HE_KEY')
  small.delete()
  t.equal(await codeOf(() => small.evaluate(d2, [], [])), 'VN_ERR_INTERNAL', 'used after delete')
})

t.test('a ciphertext where no subject has a record answers all false (no transparent product)', async (t) => {
  const q = client.encryptBounds([0, 0, 5])
  const a = provider.evaluate(client.publicKeyDigest(), q, [null, -5, null])
  t.same(client.decryptBits(a, 3), [false, false, false])
  t.ok((client.noiseBudgets(a)[0] as number) >= 10)
  t.same(segmentSums(a, PER), new Array(PER).fill(0), 'every segment sums to zero')
})
