import t from 'tap'
import { WorkerPool, workerPath } from '../../src/util/worker-pool.js'
import { VnError } from '../../src/errors.js'

t.test('runs tasks on workers and keeps error codes', async (t) => {
  const pool = new WorkerPool(workerPath(new URL('../fixtures/x.ts', import.meta.url).href, 'echo-worker'), 2)
  t.teardown(() => pool.close())
  const r = await Promise.all([1, 2, 3, 4, 5].map((n) => pool.run<number>('double', n)))
  t.same(r, [2, 4, 6, 8, 10])
  const err = await pool.run('fail', null).catch((e: unknown) => e)
  t.ok(err instanceof VnError)
  t.equal((err as VnError).code, 'VN_ERR_OPRF_POINT')
})

const echo = (): string => workerPath(new URL('../fixtures/x.ts', import.meta.url).href, 'echo-worker')

t.test('depth 2: a worker has its next task in hand while this thread is busy', async (t) => {
  const pool = new WorkerPool(echo(), 1, { depth: 2 })
  t.teardown(() => pool.close())
  await pool.run('double', 1) // started
  const a = pool.run<number>('spin', 150)
  const b = pool.run<number>('spin', 0)
  // This thread is busy well past the end of the first task: with depth 1 the second would only
  // be sent once this thread reads the first answer, after the block.
  const blockStart = Date.now()
  while (Date.now() - blockStart < 600) { /* busy */ }
  const blockEnd = Date.now()
  const [, bStart] = await Promise.all([a, b])
  // At depth 1 the second task cannot start before the block ends (it is sent after it); at depth 2
  // it starts once the first ends, ~450 ms earlier: room for a worker scheduled late under load.
  t.ok(bStart < blockEnd, `the second task started ${blockEnd - bStart} ms before this thread was free`)
  t.notOk(pool.busy)
})

t.test('depth 1 (the default) holds one task per worker', async (t) => {
  const pool = new WorkerPool(echo(), 1)
  t.teardown(() => pool.close())
  await pool.run('double', 1)
  const a = pool.run<number>('spin', 100)
  const b = pool.run<number>('spin', 0)
  const blockStart = Date.now()
  while (Date.now() - blockStart < 400) { /* busy */ }
  const blockEnd = Date.now()
  const [, bStart] = await Promise.all([a, b])
  t.ok(bStart >= blockEnd, 'the second task was sent only once this thread read the first answer')
})

t.test('a worker that dies rejects every task it held', async (t) => {
  const pool = new WorkerPool(echo(), 1, { depth: 2 })
  t.teardown(() => pool.close())
  const held = [pool.run('crash', null), pool.run('double', 2)]
  const out = await Promise.allSettled(held)
  t.same(out.map((o) => o.status), ['rejected', 'rejected'])
  t.equal(((out[0] as PromiseRejectedResult).reason as VnError).code, 'VN_ERR_INTERNAL')
})
