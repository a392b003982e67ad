/**
 * tap's `before` script (package.json): builds the SM2 WebAssembly when it is stale
 * (scripts/build-wasm.mjs), then transpiles every TypeScript file of src/ and test/ into the
 * loader's disk cache (./ts-transpile.mjs) in this one process, before any test starts.
 *
 * Without it, on a machine where the tests never ran (a fresh clone, a CI runner), every test
 * process and worker that met a file not yet cached loaded the TypeScript compiler itself. A cold
 * suite, quiet, Node 20: 4:44 wall and 531 CPU-s without, 4:12 and 463 CPU-s with. This takes
 * 4.9 s cold; with a warm cache, a read and a hash per file (0.2 s).
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import '../../scripts/build-wasm.mjs'
import { transpiled } from './ts-transpile.mjs'

const ROOT = process.cwd()
for (const dir of ['src', 'test']) {
  for (const rel of readdirSync(join(ROOT, dir), { recursive: true }).map(String).sort()) {
    if (!/\.(ts|mts)$/.test(rel) || /\.d\.ts$/.test(rel)) continue
    const file = join(ROOT, dir, rel)
    transpiled(file, readFileSync(file, 'utf8'))
  }
}
