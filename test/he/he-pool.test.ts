import t from 'tap'
import { HeEvaluatorPool } from '../../src/he/he-pool.js'
import { HeClient } from '../../src/he/threshold.js'
import { gridValues } from '../../src/he/grid.js'
import { VnError } from '../../src/errors.js'

const g = gridValues()
const client = await HeClient.create()
const pool = new HeEvaluatorPool(2)
t.teardown(async () => {
  client.delete()
  await pool.close()
})

t.test('evaluates on worker threads, across workers, with the same answers', async (t) => {
  const count = 600 // 5 ciphertexts: two tasks
  const bounds = Array.from({ length: count }, (_, i) => (i * 13) % 64)
  const values = Array.from({ length: count }, (_, i) => (g[(i * 7) % 64] as number) - (i % 2))
  const answers = await pool.evaluate(client.publicKeyBytes(), client.encryptBounds(bounds), values)
  t.equal(answers.length, 5)
  const bits = client.decryptBits(answers, count)
  t.equal(bits.filter((b, i) => b !== (values[i] as number) >= (g[bounds[i] as number] as number)).length, 0)
})

t.test('error codes cross the thread boundary; the workers keep working', async (t) => {
  const q = client.encryptBounds([1])
  const bad = Uint8Array.from(client.publicKeyBytes())
  bad[100] = (bad[100] as number) ^ 1
  const e1 = await pool.evaluate(bad, q, [1]).catch((e: unknown) => e)
  t.ok(e1 instanceof VnError && e1.code === 'VN_ERR_HE_KEY', 'corrupt key')
  const badQ = Uint8Array.from(q[0] as Uint8Array)
  badQ[3] = 9
  const e2 = await pool.evaluate(client.publicKeyBytes(), [badQ], [1]).catch((e: unknown) => e)
  t.ok(e2 instanceof VnError && e2.code === 'VN_ERR_HE_CIPHERTEXT', 'corrupt query')
  const e3 = await pool.evaluate(client.publicKeyBytes(), q, [1, 2, 3].concat(new Array(200).fill(1))).catch((e: unknown) => e)
  t.ok(e3 instanceof VnError && e3.code === 'VN_ERR_HE_CIPHERTEXT', 'wrong number of ciphertexts')
  t.same(client.decryptBits(await pool.evaluate(client.publicKeyBytes(), q, [g[1] as number]), 1), [true])
})

t.test('memory stays flat over many evaluations (WASM objects are freed)', async (t) => {
  const q = client.encryptBounds([10])
  const pk = client.publicKeyBytes()
  const round = (n: number) => Promise.all(Array.from({ length: n }, () => pool.evaluate(pk, q, [g[12] as number])))
  // warm up: SEAL memory pools, JIT, key caches and WASM heap growth in both workers (20 was too
  // few: a late heap growth step once showed as +33 MB rss while external memory shrank; on Node 24
  // RSS steps up ~80 MB between the first and second 80 and is flat from then on)
  await round(80)
  await round(80)
  // Four more rounds, a sample after each. One sample is noisy: it comes from whichever worker
  // answers, and `external` and RSS carry buffers that wait for a collection (±40 MB seen on
  // Node 24). A leak is not: one leaked ciphertext per evaluation (~0.5 MB) would add 80 MB
  // between the first two samples and the last two. Compare the smaller of each pair.
  const samples: NodeJS.MemoryUsage[] = []
  for (let i = 0; i < 4; i++) {
    await round(80)
    samples.push(await pool.memoryUsage())
  }
  const low = (k: 'rss' | 'external', i: number) => Math.min((samples[i] as NodeJS.MemoryUsage)[k], (samples[i + 1] as NodeJS.MemoryUsage)[k])
  const mb = (x: number) => (x / 1e6).toFixed(1)
  t.comment(`rss ${samples.map((m) => mb(m.rss)).join(' ')} MB; external ${samples.map((m) => mb(m.external)).join(' ')} MB`)
  t.ok(low('rss', 2) - low('rss', 0) < 30e6, 'rss grows by less than 30 MB over 160 evaluations')
  t.ok(low('external', 2) - low('external', 0) < 30e6, 'external (WASM heaps + buffers) grows by less than 30 MB over 160 evaluations')
})
