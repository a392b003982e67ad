/**
 * `--import` entry for the tests: registers ./ts-transpile.mjs (see there why), and keeps tap's
 * own module hooks out of worker threads when coverage is off.
 *
 * tap starts every test process with `--import` of @tapjs/mock and @tapjs/processinfo (on the
 * command line and in NODE_OPTIONS). A worker thread inherits both, and on Node 20 each worker then
 * runs its own module-hooks thread, loads tap's hook modules again, sends every module it loads
 * through three hook chains and has processinfo compute line lengths and parse source maps for
 * each. That was most of what a test file cost under tap over plain node (verify-stream: 12.8 s of
 * user CPU under tap, 5.1 s plain, 6.3 s with this). The workers need neither hook: no test mocks a
 * module inside a worker, and processinfo's records serve coverage only. So when tap runs without
 * coverage (`disable-coverage` in package.json), workers are started with the parent's node
 * options minus tap's. With coverage on (`TAP_DISABLE_COVERAGE=0 npx tap`) they keep them, so the
 * workers' code is covered too.
 */
import { register, syncBuiltinESMExports } from 'node:module'
import workerThreads from 'node:worker_threads'

register('./ts-transpile.mjs', import.meta.url)

const isTapHook = (arg) => /[\\/]@tapjs[\\/]/.test(arg)
if (workerThreads.isMainThread && process.env._TAPJS_PROCESSINFO_COVERAGE_ === '0') {
  const Base = workerThreads.Worker
  const execArgv = process.execArgv.filter((a) => !isTapHook(a))
  // tap sets NODE_OPTIONS to `"--import=file:///…/@tapjs/processinfo/…"` (quotes included), and a
  // worker parses the NODE_OPTIONS of the env it is given
  const nodeOptions = (v) => (v ?? '').split(/\s+/).filter((a) => a !== '' && !isTapHook(a)).join(' ')
  workerThreads.Worker = class Worker extends Base {
    constructor(filename, options = {}) {
      let env = options.env
      if (env !== workerThreads.SHARE_ENV) {
        env = { ...(env ?? process.env) }
        env.NODE_OPTIONS = nodeOptions(env.NODE_OPTIONS)
      }
      super(filename, { ...options, execArgv: options.execArgv ?? execArgv, env })
    }
  }
  // named imports of node:worker_threads (`import { Worker } from …`) see the replacement too
  syncBuiltinESMExports()
}
