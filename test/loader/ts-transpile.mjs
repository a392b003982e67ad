/**
 * Module hooks for the tests (registered by ./register.mjs, set as a tap node-arg in
 * package.json): TypeScript sources are transpiled with the project's own `typescript`
 * (`transpileModule`, one file at a time, as ts-node's transpile-only mode does) and the output is
 * cached on disk by content hash. A test process or worker thread then loads no compiler at all
 * unless a source changed, which is most of what a test file used to spend before its first test.
 * The key holds the file's path relative to the project root, not its absolute path (the output
 * names only the file's base name), so another checkout or git worktree of the project finds the
 * files it shares already transpiled: a fresh worktree's first `npm test` took ~190 s more CPU.
 * Inline source maps with the sources keep coverage and stack traces on the .ts lines.
 *
 * Only our own `.ts` files are touched (never node_modules), and `.js` specifiers are mapped to a
 * `.ts` file next to them (NodeNext style imports). Anything else, and any import whose parent
 * carries a query (tap's module mocks key on it), goes to the next hook unchanged.
 */
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const LOADER_VERSION = '3'
const ROOT = process.cwd()
const TSCONFIG = join(ROOT, 'tsconfig.json')
const require = createRequire(join(ROOT, 'package.json'))
const TS_VERSION = JSON.parse(readFileSync(require.resolve('typescript/package.json'), 'utf8')).version
const TSCONFIG_TEXT = existsSync(TSCONFIG) ? readFileSync(TSCONFIG, 'utf8') : ''
const CACHE = process.env.VN_TS_CACHE_DIR ?? join(tmpdir(), `verinode-ts-cache-${process.getuid?.() ?? 'u'}`)
const SALT = `${LOADER_VERSION}\0${TS_VERSION}\0${TSCONFIG_TEXT}\0`

const isOurTs = (url) => url.startsWith('file:') && !url.includes('/node_modules/') && /\.(ts|mts)$/.test(new URL(url).pathname)

/** The `.ts` file a `.js` specifier stands for (NodeNext style), if there is one of ours. */
function tsTwin(specifier, parent) {
  let u
  try {
    if (/^\.\.?\//.test(specifier) || specifier.startsWith('/')) u = new URL(specifier, parent ?? pathToFileURL(`${ROOT}/`))
    else if (specifier.startsWith('file:')) u = new URL(specifier)
  } catch {
    return undefined
  }
  if (u === undefined || !u.pathname.endsWith('.js') || u.pathname.includes('/node_modules/')) return undefined
  const twin = new URL(u.href)
  twin.pathname = `${u.pathname.slice(0, -3)}.ts`
  return existsSync(fileURLToPath(twin)) ? twin : undefined
}

export async function resolve(specifier, context, nextResolve) {
  const parent = context.parentURL
  // the common case, answered here: a relative import between our own modules
  if (parent !== undefined && !parent.includes('?') && isOurTs(parent) && /^\.\.?\//.test(specifier) && specifier.endsWith('.js')) {
    const twin = tsTwin(specifier, parent)
    if (twin !== undefined) return { url: twin.href, format: 'module', shortCircuit: true }
  }
  // Anything else goes down the chain as written (tap's mocks key on the specifier and the
  // parent's query); only when nothing resolves a `.js` is its `.ts` twin asked for.
  try {
    return await nextResolve(specifier, context)
  } catch (e) {
    const twin = e?.code === 'ERR_MODULE_NOT_FOUND' ? tsTwin(specifier, parent) : undefined
    if (twin === undefined) throw e
    return nextResolve(twin.href, context)
  }
}

let ts
let options
// typescript is CommonJS: required synchronously, so ./register.mjs can transpile on the main
// thread too (the worker-thread source tree there)
function compiler() {
  if (ts === undefined) {
    ts = require('typescript')
    const read = ts.readConfigFile(TSCONFIG, ts.sys.readFile)
    const { outDir: _o, rootDir: _r, sourceRoot: _s, ...parsed } = ts.convertCompilerOptionsFromJson(read.config?.compilerOptions ?? {}, ROOT).options
    options = {
      // no outDir/rootDir: the map's `sources` must be relative to the .ts file itself, as it runs
      // in place (stack traces, tap's mock resolution and coverage read them)
      ...parsed,
      // ESM out whatever the file's package scope: this package is "type": "module"
      module: ts.ModuleKind.ESNext,
      sourceMap: false, inlineSourceMap: true, inlineSources: true,
      declaration: false, noEmit: false, isolatedModules: true,
    }
  }
  return ts
}

/**
 * The JavaScript of our TypeScript file `file` (absolute path) whose text is `source`: from the
 * cache, or transpiled and then cached. Synchronous (the cache is small files, read whole).
 */
export function transpiled(file, source) {
  const key = createHash('sha256').update(SALT).update(relative(ROOT, file)).update('\0').update(source).digest('hex')
  const cached = join(CACHE, `${key}.js`)
  try {
    return readFileSync(cached, 'utf8')
  } catch {
    const t = compiler()
    const out = t.transpileModule(source, { fileName: file, compilerOptions: options, reportDiagnostics: false }).outputText
    // written whole, then renamed: a reader never sees half a file (processes share the cache)
    mkdirSync(CACHE, { recursive: true })
    const tmp = `${cached}.${process.pid}.${Math.random().toString(36).slice(2)}`
    writeFileSync(tmp, out)
    renameSync(tmp, cached)
    return out
  }
}

export async function load(url, context, nextLoad) {
  if (!isOurTs(url)) return nextLoad(url, context)
  const file = fileURLToPath(url.split('?')[0])
  const source = await readFile(file, 'utf8')
  return { format: 'module', source: transpiled(file, source), shortCircuit: true }
}
