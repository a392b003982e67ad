#!/usr/bin/env node
/**
 * `npm run drill:faults`: runs every fault reproduction in test/faults/ (real peers on loopback, a
 * full tmpfs, replaced data files, new manifests; see docs/OPERATIONS.md "Faults and what the node
 * does") and prints one line per fault with its outcome, then a closing line.
 *
 * A fault is a top-level subtest named "fault: ..." in a file of test/faults/. The files run
 * through tap, as in `npm test`, so the drill and the suite prove the same thing.
 * Extra arguments go to tap (e.g. a single file).
 */
import { spawn } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { createInterface } from 'node:readline'

const args = process.argv.slice(2)
const files = args.length > 0 ? args : readdirSync('test/faults').filter((f) => f.endsWith('.test.ts')).sort().map((f) => `test/faults/${f}`)
const tap = spawn('npx', ['tap', '--reporter=tap', '--disable-coverage', '--jobs=1', ...files], { stdio: ['ignore', 'pipe', 'inherit'] })
const started = Date.now()
const results = []
let file = ''
let inFile = false
for await (const line of createInterface({ input: tap.stdout })) {
  // tap nests each file's subtests one level (4 spaces) under "# Subtest: <file>"
  const sub = /^# Subtest: (\S+)/.exec(line)
  if (sub !== null) {
    file = sub[1]
    inFile = true
    continue
  }
  const m = /^ {4}(not ok|ok) \d+ - (fault: .*?)(?: # (?:time=.*|SKIP.*|TODO.*))?$/.exec(line)
  if (inFile && m !== null) {
    const skipped = /# (SKIP|TODO)/.test(line)
    const outcome = m[1] === 'ok' ? (skipped ? 'SKIP' : 'ok  ') : 'FAIL'
    results.push(outcome)
    console.log(`${outcome}  ${m[2]}  (${file})`)
  }
  if (/^(not ok|ok) \d+ - /.test(line)) inFile = false
}
const code = await new Promise((resolve) => tap.on('close', resolve))
const failed = results.filter((r) => r === 'FAIL').length
const skipped = results.filter((r) => r === 'SKIP').length
console.log(`drill: ${results.length} faults, ${results.length - failed - skipped} handled, ${failed} failed, ${skipped} skipped, in ${Math.round((Date.now() - started) / 1000)} s${code === 0 ? '' : ` (tap exited ${code})`}`)
process.exit(failed > 0 || code !== 0 || results.length === 0 ? 1 : 0)
