#!/usr/bin/env node
/**
 * `npm run build:wasm`: compiles the AssemblyScript of src/crypto/wasm/sm2.ts (SM2 verification's
 * point arithmetic, loaded by src/crypto/sm2-wasm.ts) into src/crypto/wasm/sm2.wasm, next to it,
 * and copies the result into each folder named on the command line (the compiled trees load it
 * from `./wasm/sm2.wasm` beside their sm2-wasm.js: dist/crypto/wasm, .bench-build/src/crypto/wasm).
 *
 * The .wasm is build output (.gitignore). It is rebuilt only when the source, the compiler version
 * or the options changed (a stamp file beside it holds their digest), so `npm ci` (`prepare`),
 * `npm test` (tap's `before`), `npm run build` and the benches can all call this cheaply.
 *
 *   --if-present  exit quietly when the source is absent (for `prepare`; the container's `npm ci`
 *                 runs before src/ and scripts/ are copied in, and `prepare` skips when this file
 *                 is absent; the container's `npm run build` compiles it)
 */
import { createHash } from 'node:crypto'
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const SOURCE = join(ROOT, 'src', 'crypto', 'wasm', 'sm2.ts')
const OUT = join(ROOT, 'src', 'crypto', 'wasm', 'sm2.wasm')
const STAMP = `${OUT}.stamp`
// stub runtime (nothing is freed), no abort import, no assertions: the module imports nothing
const OPTIONS = ['-O3', '--runtime', 'stub', '--noAssert', '--use', 'abort=', '--initialMemory', '2']

const args = process.argv.slice(2)
const ifPresent = args.includes('--if-present')
const copyTo = args.filter((a) => !a.startsWith('--'))

function fail(message) {
  console.error(`build:wasm: ${message}`)
  process.exit(1)
}

if (!existsSync(SOURCE)) {
  if (ifPresent) process.exit(0)
  fail(`no source at ${SOURCE}`)
}

const require = createRequire(join(ROOT, 'package.json'))
let ascVersion = 'absent'
try {
  ascVersion = JSON.parse(readFileSync(require.resolve('assemblyscript/package.json'), 'utf8')).version
} catch {
  // a pruned production tree: fine if the output is already current
}
const digest = createHash('sha256').update(readFileSync(SOURCE)).update(`\0${ascVersion}\0${OPTIONS.join(' ')}`).digest('hex')
const current = existsSync(OUT) && existsSync(STAMP) && readFileSync(STAMP, 'utf8').trim() === digest

if (!current) {
  if (ascVersion === 'absent') fail('assemblyscript is not installed (a devDependency: run npm ci) and src/crypto/wasm/sm2.wasm is missing or stale')
  const { default: asc } = await import('assemblyscript/asc')
  const tmp = `${OUT}.${process.pid}.tmp`
  const { error, stderr } = await asc.main([SOURCE, '--outFile', tmp, ...OPTIONS])
  if (error) fail(`asc failed: ${error.message}\n${stderr.toString()}`)
  renameSync(tmp, OUT)
  writeFileSync(STAMP, `${digest}\n`)
  console.error(`build:wasm: compiled ${OUT} (assemblyscript ${ascVersion})`)
}

for (const dir of copyTo) {
  const dest = join(ROOT, dir, 'sm2.wasm')
  mkdirSync(dirname(dest), { recursive: true })
  copyFileSync(OUT, dest)
}
