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
 *
 * Without coverage, a worker whose module is one of our src/ files also runs without the
 * TypeScript hooks: it is started on the same module in a JavaScript copy of src/ (each file
 * transpiled by ./ts-transpile.mjs, as the hooks would; built once per state of src/, under
 * node_modules/.cache so that packages resolve as from src/). With module hooks registered, a
 * worker thread on Node 20 gets a hooks thread of its own, and every module it loads (node_modules
 * too) makes a round trip through it: ~0.2 s more CPU per worker and about a second more to start
 * on a busy machine, and a federation of four nodes starts four log-writer workers, plus the
 * OPRF, HE, Ed25519 and audit pools.
 */
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { register, syncBuiltinESMExports } from 'node:module'
import { dirname, join, relative, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import workerThreads from 'node:worker_threads'
import { transpiled } from './ts-transpile.mjs'

register('./ts-transpile.mjs', import.meta.url)

const ROOT = process.cwd()
const SRC = join(ROOT, 'src')
const MIRRORS = join(ROOT, 'node_modules', '.cache', 'vn-worker-src')

/** The JavaScript copy of src/ as it is now (its folder), built if missing; undefined if it cannot be. */
let mirror
function srcMirror() {
  if (mirror !== undefined) return mirror === null ? undefined : mirror
  try {
    const files = readdirSync(SRC, { recursive: true }).map(String).sort().filter((rel) => statSync(join(SRC, rel)).isFile())
    const texts = files.map((rel) => readFileSync(join(SRC, rel)))
    const pkg = readFileSync(join(ROOT, 'package.json'))
    // the transpiled output depends on the sources, the compiler and tsconfig (the cache key of
    // ./ts-transpile.mjs covers those two): a probe transpile of a fixed text stands for them
    const h = createHash('sha256').update(ROOT).update('\0').update(pkg).update(transpiled(join(SRC, '.probe.ts'), 'export const x: number = 1\n'))
    files.forEach((rel, i) => h.update('\0').update(rel).update('\0').update(texts[i]))
    const dir = join(MIRRORS, h.digest('hex').slice(0, 24))
    if (!existsSync(join(dir, 'package.json'))) {
      const tmp = `${dir}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`
      files.forEach((rel, i) => {
        const ts = /\.ts$/.test(rel) && !/\.d\.ts$/.test(rel)
        const out = join(tmp, 'src', ts ? rel.replace(/\.ts$/, '.js') : rel)
        mkdirSync(dirname(out), { recursive: true })
        writeFileSync(out, ts ? transpiled(join(SRC, rel), texts[i].toString('utf8')) : texts[i])
      })
      // its package scope ("type": "module"), and what src/ reads beside it (the CLI's version)
      writeFileSync(join(tmp, 'package.json'), pkg)
      try {
        renameSync(tmp, dir) // whole, or not at all: another process may have built the same copy
      } catch (e) {
        rmSync(tmp, { recursive: true, force: true })
        if (!existsSync(join(dir, 'package.json'))) throw e
      }
      pruneMirrors(dir)
    } else {
      const now = new Date()
      utimesSync(dir, now, now) // in use: see pruneMirrors
    }
    mirror = dir
    return dir
  } catch {
    mirror = null // the workers run through the hooks, as before
    return undefined
  }
}

/**
 * Removes the copies of src/ no process has used for a day (each edit of src/ leaves one behind, of
 * ~2 MB), and what interrupted builds left.
 */
function pruneMirrors(keep) {
  const now = Date.now()
  for (const name of readdirSync(MIRRORS)) {
    const p = join(MIRRORS, name)
    try {
      if (p !== keep && now - statSync(p).mtimeMs > (name.includes('.tmp-') ? 3_600_000 : 86_400_000)) rmSync(p, { recursive: true, force: true })
    } catch {
      // another process removed it first
    }
  }
}

/** The mirror's module for a worker started on one of our src/ .ts files, else undefined. */
function mirroredWorker(filename) {
  let file
  try {
    file = filename instanceof URL || String(filename).startsWith('file:') ? fileURLToPath(filename) : String(filename)
  } catch {
    return undefined
  }
  if (!file.startsWith(SRC + sep) || !file.endsWith('.ts') || !existsSync(file)) return undefined
  const dir = srcMirror()
  return dir === undefined ? undefined : join(dir, 'src', relative(SRC, file).replace(/\.ts$/, '.js'))
}

const isTapHook = (arg) => /[\\/]@tapjs[\\/]/.test(arg)
const isOurLoader = (arg) => /test[\\/]loader[\\/]register\.mjs$/.test(arg)
/** `args` without its `--import` of this file (`--import=…` or `--import …`). */
const withoutOurLoader = (args) => args.filter((a, i) => !isOurLoader(a) && !(a === '--import' && isOurLoader(args[i + 1] ?? '')))
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
      const js = options.eval === true || options.execArgv !== undefined ? undefined : mirroredWorker(filename)
      if (js !== undefined) super(js, { ...options, execArgv: withoutOurLoader(execArgv), env })
      else super(filename, { ...options, execArgv: options.execArgv ?? execArgv, env })
    }
  }
  // named imports of node:worker_threads (`import { Worker } from …`) see the replacement too
  syncBuiltinESMExports()
}
