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
