/**
 * bench:plain — provider throughput for signed single-subject plain exchanges over loopback, with
 * logging on and group commit durable, against the composed limit of its three unavoidable costs
 * measured in the same run on the same machine:
 *
 *   limit = 1 / (1/hello + 1/verify + 1/sign)
 *
 * hello: fastify hello-world JSON POST with the same client and connections; verify/sign: Ed25519 in
 * process (node:crypto). The provider and the hello server each run in their own child process; the
 * load generator (autocannon) sends pre-signed requests (each a fresh xid, within the 60 s skew),
 * made before each run starts. Five rounds (VN_BENCH_RUNS), each measuring Ed25519 and hello-world
 * just before and just after the provider; the last line is the median of the rounds' ratios, so a
 * slow or fast moment of the shared machine moves the limit and the exchange rate together.
 * Also reports batch throughput (subjects/s with 1,000 subjects per signed request).
 * Last line: `ratio: <exchanges/s ÷ limit>` (target ≥ 0.6).
 *
 * VN_BENCH_PROFILE=sm runs the same federation under the `sm` crypto profile (SM2/SM3/SM4,
 * docs/NATIONAL-ALGORITHMS.md); the limit and ratio are still against Ed25519, so under sm compare
 * the `verinode plain exchanges` line with an intl run instead (`npm run bench:sm-plain` does both).
 */
import { fork, type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, writeFile } from 'node:fs/promises'
import { readdirSync, readFileSync } from 'node:fs'
import { defaultThreadpoolSize } from '../src/node/threadpool.js'
import { tmpdir, availableParallelism } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { sign, verify, generateKeyPairSync, createPublicKey } from 'node:crypto'
import autocannon from 'autocannon'
import { buildDemoFederation } from '../src/demo/federation.js'
import { loadPrivateKey } from '../src/crypto/keys.js'
import { isProfileName, useProfile } from '../src/crypto/profile.js'
import { keyIdFor } from '../src/federation/manifest.js'
import { signJwsJson } from '../src/crypto/jws.js'
import { makeDisclosure } from '../src/protocol/disclosures.js'
import { newXid } from '../src/exchange/consumer.js'
import { REQUEST_TYP } from '../src/protocol/envelope.js'

// 200 in flight: the provider batches its Ed25519 work and its durable commits (one fsync per
// batch), so it needs more requests in flight than hello-world to reach its throughput ceiling.
// Measured back to back on this machine (November 2026, 5 rounds each, VN_BENCH_DIAG=1): at 100
// connections 2,145-2,546/s, ratio 0.55, provider CPU 0.56-0.67 ms per exchange with ~22% of the
// two cores idle, its Ed25519 workers woken ~310 times per 1,000 exchanges (batches of ~6); at 200
// 2,706-3,291/s, ratio 0.64, 0.45-0.55 ms per exchange, woken ~165 times, p50 57-70 ms (at 100:
// 37-45 ms). At 50 the event loop was ~60% busy. Hello-world uses the same client and the same
// number of connections, so the ratio stays like for like; VN_BENCH_CONNECTIONS=100 gives the old
// setting.
const CONNECTIONS = Number(process.env.VN_BENCH_CONNECTIONS ?? 200)
const REQUESTS = Number(process.env.VN_BENCH_REQUESTS ?? 20_000)
const RUNS = Number(process.env.VN_BENCH_RUNS ?? 5)
const here = fileURLToPath(import.meta.url)

interface Child { proc: ChildProcess; url: string; metricsUrl?: string | undefined }

function spawnChild(args: string[]): Promise<Child> {
  return new Promise((resolve, reject) => {
    // VN_BENCH_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") is passed to the provider's process.
    const execArgv = args[0] === 'node' && process.env.VN_BENCH_NODE_ARGS ? process.env.VN_BENCH_NODE_ARGS.split(' ') : []
    // The provider gets the libuv pool size `verinode serve` would give it (src/cli/bin.ts).
    const env = { ...process.env, UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE ?? String(defaultThreadpoolSize(availableParallelism())) }
    const proc = fork(here, args, { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], execArgv, env })
    proc.once('message', (m: { url?: string; metricsUrl?: string; error?: string }) => (m.url ? resolve({ proc, url: m.url, metricsUrl: m.metricsUrl }) : reject(new Error(m.error))))
    proc.once('exit', (c) => reject(new Error(`child exited ${c}`)))
  })
}

async function childMain(): Promise<void> {
  const [kind, config] = process.argv.slice(2)
  // exit normally on kill so a --cpu-prof profile gets written
  process.once('SIGTERM', () => process.exit(0))
  // VN_BENCH_DIAG=1: the provider prints its main thread's event-loop utilization every 5 s
  if (process.env.VN_BENCH_DIAG === '1') {
    let last = performance.eventLoopUtilization()
    setInterval(() => {
      const now = performance.eventLoopUtilization()
      console.error(`  [${kind}] event loop busy ${(performance.eventLoopUtilization(now, last).utilization * 100).toFixed(0)}%`)
      last = now
    }, 5000).unref()
  }
  try {
    if (kind === 'hello') {
      const { default: Fastify } = await import('fastify')
      const app = Fastify()
      app.post('/hello', async () => ({ hello: 'world' }))
      await app.listen({ host: '127.0.0.1', port: 0 })
      const a = app.server.address() as { port: number }
      process.send?.({ url: `http://127.0.0.1:${a.port}` })
    } else {
      const { startNode } = await import('../src/http/server.js')
      const { pino } = await import('pino')
      const n = await startNode(config as string, { logger: pino({ level: 'warn' }) })
      // The demo provider also offers oprf services, whose epoch tag sets start building on worker
      // threads at start-up (~20,000 records). That offline job is not what this bench measures,
      // and it took a core away from the first round: wait for it.
      await n.node.tagsets?.whenReady()
      process.send?.({ url: n.publicUrl, metricsUrl: n.metricsUrl })
    }
  } catch (e) {
    process.send?.({ error: String(e) })
  }
}

/** Per thread of a process: CPU ticks and context switches so far, from /proc (Linux; VN_BENCH_DIAG). */
function threadStats(pid: number): Map<string, { cpu: number; vol: number; invol: number }> {
  const out = new Map<string, { cpu: number; vol: number; invol: number }>()
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
      const f = stat.slice(stat.lastIndexOf(') ') + 2).split(' ')
      const status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8')
      const n = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0)
      out.set(`${tid === String(pid) ? 'main' : tid}`, { cpu: Number(f[11]) + Number(f[12]), vol: n('voluntary_ctxt_switches'), invol: n('nonvoluntary_ctxt_switches') })
    }
  } catch {
    // not Linux, or the process is gone
  }
  return out
}

/** CPU seconds (user + system) a process has used so far, from /proc (Linux); undefined elsewhere. */
function cpuSeconds(pid: number): number | undefined {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ')
    return f === undefined ? undefined : (Number(f[11]) + Number(f[12])) / 100 // clock ticks (USER_HZ = 100)
  } catch {
    return undefined
  }
}

function edRates(): { sign: number; verify: number } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  const msg = Buffer.alloc(600, 7)
  const sig = sign(null, msg, privateKey)
  const rate = (f: () => void): number => {
    const runs: number[] = []
    for (let r = 0; r < 5; r++) {
      const n = 2000
      const t0 = performance.now()
      for (let i = 0; i < n; i++) f()
      runs.push(n / ((performance.now() - t0) / 1000))
    }
    runs.sort((a, b) => a - b)
    return runs[2] as number
  }
  return { sign: rate(() => sign(null, msg, privateKey)), verify: rate(() => verify(null, msg, publicKey, sig)) }
}

interface Run extends autocannon.Result {
  /** wall time from the start to the last response */
  seconds: number
}

/**
 * Sends `bodies` once each (pre-made: the consumer's signing is not the provider's cost). The run's
 * time is taken here, from the call to the last response: autocannon only notices `amount` was
 * reached on its next sample tick (every second), so its own start/finish round every run up to
 * whole seconds — a 0.6 s hello-world run would count as 1 s.
 */
function cannon(url: string, bodies: readonly string[], connections = CONNECTIONS): Promise<Run> {
  let i = 0
  let last = 0
  const t0 = performance.now()
  return new Promise<Run>((resolve, reject) => {
    const tracker = autocannon({
      url,
      method: 'POST',
      connections,
      amount: bodies.length,
      headers: { 'content-type': 'application/json' },
      requests: [{ setupRequest: (req: Record<string, unknown>) => ({ ...req, body: bodies[i++ % bodies.length] }) }],
    } as unknown as autocannon.Options, (err: unknown, result: autocannon.Result) => {
      if (err) reject(err)
      else resolve({ ...result, seconds: ((last || performance.now()) - t0) / 1000 })
    })
    tracker.on('response', () => {
      last = performance.now()
    })
  })
}

const rate = (r: Run): number => r.requests.total / r.seconds
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'vn-bench-plain-'))
  const profile = process.env.VN_BENCH_PROFILE ?? 'intl'
  if (!isProfileName(profile)) throw new Error('VN_BENCH_PROFILE: intl or sm')
  // this process makes the requests' disclosure digests: under the federation's profile
  useProfile(profile)
  const fed = await buildDemoFederation(dir, { sizes: { residents: 20_000, enterprises: 500, taxYears: [2025] }, configOverrides: { logLevel: 'warn' }, profile })
  // Lift the demo quota so the run measures throughput, not policy.
  const cfgPath = fed.nodes['fj-psb']!.configPath
  const cfg = JSON.parse(await readFile(cfgPath, 'utf8'))
  for (const a of cfg.agreements) a.dailyQuota = 100_000_000
  await writeFile(cfgPath, JSON.stringify(cfg))

  const key = await loadPrivateKey(join(dir, 'fj-tax', 'keys', 'message.key'))
  const kid = `fj-tax#${keyIdFor(createPublicKey(key))}`
  const people = fed.dataset.samples.identity.matches
  let next = 0
  const body = (n: number): string => {
    const disclosures: string[] = []
    const subjects = Array.from({ length: n }, () => {
      const p = people[next++ % people.length]!
      const a = makeDisclosure('id', p.id)
      const b = makeDisclosure('name', p.name)
      disclosures.push(a.disclosure, b.disclosure)
      return { id: a.digest, name: b.digest }
    })
    const payload = { v: 1, xid: newXid(), iat: Date.now(), iss: 'fj-tax', aud: 'fj-psb', svc: 'identity.match', purpose: 'taxpayer-registration', basis: 'Tax Collection Administration Law art. 15', mode: 'plain', q: { subjects } }
    return JSON.stringify({ jws: signJwsJson(payload, key, kid, REQUEST_TYP), disclosures })
  }
  // Each run gets fresh bodies (new xids, iat now) made just before it starts; a run must end within
  // the provider's 60 s skew, which holds above ~350 exchanges/s at the default 20,000 requests.
  const bodies = (count: number, n = 1): string[] => Array.from({ length: count }, () => body(n))

  console.log(`bench:plain (crypto profile ${profile}) — ${CONNECTIONS} connections, ${REQUESTS} requests per run, ${RUNS} rounds (medians), ${availableParallelism()} cores`)
  // Both servers stay up for the whole run and each round measures Ed25519, hello-world and verinode
  // back to back, so the ratio compares figures taken in the same moment of this shared machine;
  // the last line is the median of the rounds' ratios.
  const hello = await spawnChild(['hello'])
  const node = await spawnChild(['node', cfgPath])
  const url = `${node.url}/v1/exchange`
  const helloBodies = Array.from({ length: 2 * REQUESTS }, () => JSON.stringify({ hello: 'world', pad: 'x'.repeat(400) }))
  await cannon(`${hello.url}/hello`, helloBodies.slice(0, 3000))
  await cannon(url, bodies(2000))
  interface Round { ed: { sign: number; verify: number }; hello: number; rate: number; r: Run; limit: number; ratio: number }
  const rounds: Round[] = []
  for (let k = 0; k < RUNS; k++) {
    // The references are taken before and after the verinode run and averaged (in time: the
    // rates' harmonic mean), so a slow or fast spell of the machine during the round weighs on
    // both sides of the ratio. Hello-world gets twice the requests of a verinode run per side:
    // a few seconds, not the ~1 s in which one spell could decide it.
    const edBefore = edRates()
    const hBefore = await cannon(`${hello.url}/hello`, helloBodies)
    const load = bodies(REQUESTS)
    const cpu0 = [cpuSeconds(process.pid), cpuSeconds(node.proc.pid as number)]
    const t0 = process.env.VN_BENCH_DIAG === '1' ? threadStats(node.proc.pid as number) : undefined
    const r = await cannon(url, load)
    const cpu1 = [cpuSeconds(process.pid), cpuSeconds(node.proc.pid as number)]
    if (t0 !== undefined) {
      // Where the provider's CPU went, per thread, and how often each thread was switched out
      // (voluntarily: it waited; involuntarily: another thread took its CPU), per 1,000 exchanges.
      const rows: string[] = []
      for (const [tid, b] of threadStats(node.proc.pid as number)) {
        const a = t0.get(tid) ?? { cpu: 0, vol: 0, invol: 0 }
        if (b.cpu - a.cpu + b.invol - a.invol === 0) continue
        rows.push(`${tid} ${(((b.cpu - a.cpu) * 10) / REQUESTS).toFixed(3)} ms cpu, ${(((b.vol - a.vol) * 1000) / REQUESTS).toFixed(0)} vol / ${(((b.invol - a.invol) * 1000) / REQUESTS).toFixed(0)} invol`)
      }
      console.error(`    [provider threads per exchange; switches per 1,000] ${rows.join('; ')}`)
    }
    const hAfter = await cannon(`${hello.url}/hello`, helloBodies)
    const edAfter = edRates()
    const cpu = [...cpu0, ...cpu1].every((x) => x !== undefined)
      ? ([((cpu1[1] as number) - (cpu0[1] as number)) * 1000 / REQUESTS, ((cpu1[0] as number) - (cpu0[0] as number)) * 1000 / REQUESTS] as [number, number])
      : undefined
    const both = (a: number, b: number): number => 2 / (1 / a + 1 / b)
    const ed = { sign: both(edBefore.sign, edAfter.sign), verify: both(edBefore.verify, edAfter.verify) }
    const h = { rate: both(rate(hBefore), rate(hAfter)), p50: Math.max(hBefore.latency.p50, hAfter.latency.p50), p99: Math.max(hBefore.latency.p99, hAfter.latency.p99) }
    const limit = 1 / (1 / h.rate + 1 / ed.verify + 1 / ed.sign)
    rounds.push({ ed, hello: h.rate, rate: rate(r), r, limit, ratio: rate(r) / limit })
    const cpuText = cpu === undefined ? '' : `; CPU per exchange: provider ${cpu[0].toFixed(2)} ms (all threads), load generator ${cpu[1].toFixed(2)} ms`
    console.log(`  round ${k + 1}: Ed25519 sign ${ed.sign.toFixed(0)}/s, verify ${ed.verify.toFixed(0)}/s; fastify hello-world ${h.rate.toFixed(0)} req/s (before ${rate(hBefore).toFixed(0)}, after ${rate(hAfter).toFixed(0)}; p50 ≤ ${h.p50} ms, p99 ≤ ${h.p99} ms)`)
    console.log(`    verinode ${rate(r).toFixed(0)}/s (p50 ${r.latency.p50} ms, p99 ${r.latency.p99} ms, errors ${r.errors}, non-2xx ${r.non2xx})${cpuText}; limit ${limit.toFixed(0)}/s, ratio ${(rate(r) / limit).toFixed(2)}`)
  }
  hello.proc.kill()
  const failed = rounds.reduce((n, x) => n + x.r.non2xx + x.r.errors, 0)
  const mid = [...rounds].sort((a, b) => a.rate - b.rate)[Math.floor(rounds.length / 2)]!
  console.log(`Ed25519 in-process (node:crypto), medians: sign ${median(rounds.map((x) => x.ed.sign)).toFixed(0)}/s, verify ${median(rounds.map((x) => x.ed.verify)).toFixed(0)}/s`)
  console.log(`fastify hello-world JSON POST: ${median(rounds.map((x) => x.hello)).toFixed(0)} req/s (median of ${RUNS})`)
  console.log(`verinode plain exchanges (1 subject, signed, logged durably): ${mid.rate.toFixed(0)}/s (median round: p50 ${mid.r.latency.p50} ms, p99 ${mid.r.latency.p99} ms)`)

  let batchFailed = 0
  if (process.env.VN_BENCH_BATCH !== '0') { // VN_BENCH_BATCH=0 skips the batch run (profiling)
    const batches = bodies(60, 1000)
    const b = await cannon(url, batches, 4)
    batchFailed = b.non2xx + b.errors
    const subjectsPerSec = (batches.length * 1000) / b.seconds
    console.log(`batch: ${subjectsPerSec.toFixed(0)} subjects/s with 1,000 subjects per signed request (p50 ${b.latency.p50} ms per request, non-2xx ${b.non2xx})`)
  }
  if (process.env.VN_BENCH_DIAG === '1') {
    const m = await (await fetch(node.metricsUrl ?? `${node.url}/metrics`)).text()
    console.log(m.split('\n').filter((l) => l.startsWith('verinode_log_commit_seconds') || l.startsWith('verinode_exchange_duration_seconds')).join('\n'))
  }
  node.proc.kill()

  console.log(`composed limit 1/(1/hello + 1/verify + 1/sign), median of rounds: ${median(rounds.map((x) => x.limit)).toFixed(0)}/s; X-Road reference: ~110 req/s as measured by one user`)
  if (failed > 0 || batchFailed > 0) console.log('WARNING: some requests failed; the ratio is not meaningful')
  console.log(`ratio: ${median(rounds.map((x) => x.ratio)).toFixed(2)}`)
}

if (process.argv[2] === 'hello' || process.argv[2] === 'node') void childMain()
else main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1) })
