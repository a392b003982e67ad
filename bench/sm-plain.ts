/**
 * bench:sm-plain — plain-exchange throughput under the `sm` crypto profile against `intl`, on this
 * machine, in one run: bench:plain once per profile (VN_BENCH_PROFILE), one after the other, each in
 * its own process (the profile is per process). Prints each run's `verinode plain exchanges` line,
 * then `sm/intl: <ratio>` and, last, `ratio: <the same>` (target ≥ 0.5, issue 17). VN_BENCH_REQUESTS and VN_BENCH_RUNS pass through (defaults here: 4,000
 * requests, 3 rounds, so a run stays well inside the 60 s skew at SM2 speeds).
 */
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const plain = fileURLToPath(new URL('./plain.js', import.meta.url))

function run(profile: 'intl' | 'sm'): number {
  const out = execFileSync(process.execPath, [plain], {
    encoding: 'utf8',
    env: { ...process.env, VN_BENCH_PROFILE: profile, VN_BENCH_REQUESTS: process.env.VN_BENCH_REQUESTS ?? '4000', VN_BENCH_RUNS: process.env.VN_BENCH_RUNS ?? '3', VN_BENCH_BATCH: '0' },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const line = out.split('\n').find((l) => l.startsWith('verinode plain exchanges'))
  const m = line === undefined ? null : /: ([\d.]+)\/s/.exec(line)
  if (m === null) throw new Error(`bench:plain (${profile}): no exchange rate in\n${out}`)
  console.log(`${profile.padEnd(4)} ${line}`)
  return Number(m[1])
}

const intl = run('intl')
const sm = run('sm')
console.log(`sm/intl: ${(sm / intl).toFixed(2)}`)
console.log(`ratio: ${(sm / intl).toFixed(2)}`)
