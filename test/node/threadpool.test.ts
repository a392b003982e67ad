import t from 'tap'
import { spawnSync } from 'node:child_process'
import { defaultThreadpoolSize } from '../../src/node/threadpool.js'

t.test('one libuv pool thread per core beside the event loop, between 1 and 4', async (t) => {
  t.same([1, 2, 3, 4, 8, 64].map(defaultThreadpoolSize), [1, 1, 2, 3, 4, 4])
  t.equal(defaultThreadpoolSize(0), 1)
})

t.test('the verinode executable sets UV_THREADPOOL_SIZE unless the operator did', async (t) => {
  // bin.ts sets the variable, then loads the CLI; `--version`-like runs are cheap, so ask the
  // process itself what it saw through a preloaded probe that prints at exit.
  const probe = "process.on('exit', () => process.stderr.write('POOL=' + process.env.UV_THREADPOOL_SIZE + '\\n'))"
  const run = (env: NodeJS.ProcessEnv): string => {
    const r = spawnSync(process.execPath, ['--import', './test/loader/register.mjs', '--eval', `${probe}; await import('./src/cli/bin.ts')`, '--input-type=module', 'help'], { env: { ...process.env, ...env }, encoding: 'utf8' })
    return /POOL=(\S+)/.exec(r.stderr)?.[1] ?? r.stderr
  }
  t.match(run({ UV_THREADPOOL_SIZE: undefined }), /^[1-4]$/)
  t.equal(run({ UV_THREADPOOL_SIZE: '7' }), '7', "the operator's value wins")
})
