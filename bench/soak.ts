/**
 * soak — memory and latency of a provider and a consumer under sustained plain traffic.
 *
 *   npm run soak -- 10m            (or 600s, or 10; VN_SOAK_MINUTES=10 works too; default 10 minutes)
 *
 * Builds the demo federation in a temporary folder and starts the tax bureau (consumer, fj-tax) and
 * public security (provider, fj-psb) as two separate `node` processes, each with its two listeners
 * and its own log database, so the resident set size (RSS) of each is its own. A driver in this
 * process sends identity checks to the consumer's local API (undici, keep-alive) at a fixed rate,
 * open loop (VN_SOAK_RATE, default 630/s): 49% matches, 49% name mismatches, 1% malformed ID numbers
 * (refused by the consumer before anything is signed: 400 VN_ERR_SUBJECT_ID_CHECKSUM) and 1% with a
 * purpose no agreement covers (a signed denial from the provider: 403 VN_ERR_POLICY_NO_AGREEMENT).
 * Anything else is an unexpected error. Requests beyond VN_SOAK_MAX_IN_FLIGHT (default 1,000, under the consumer's limits.inFlight) in
 * flight are not sent and are counted as `skipped` (the driver never queues without bound).
 *
 * Every minute it prints each process's RSS (from /proc, and the V8 heap the process reports), the
 * p50/p99 latency of the requests completed in that minute, the achieved rate and the errors, and
 * the gauges of what holds memory or queues (replay entries, exchanges in flight per role, appends
 * waiting for a group commit) from each node's /metrics; then a closing line:
 *
 *   soak: 10 min at 630/s, provider RSS 210→230 MB (max 240, slope 0.4 MB/min), consumer ..., p99 first 70 ms last 95 ms (1.4x), unexpected errors 0: PASS
 *
 * PASS needs: each process's RSS ≤ 300 MB throughout; its slope after the warm-up (least squares
 * over the RSS samples taken every 5 s; warm-up VN_SOAK_WARMUP_MINUTES, default 2: the provider's
 * replay window is twice the 60 s skew) ≤ 1 MB/min; the last minute's p99 ≤ 2 × the first
 * minute's; no unexpected error. The exit code is 0 on PASS, 1 on FAIL.
 *
 * Other settings: VN_SOAK_CONNECTIONS (driver → consumer sockets, default 256); VN_SOAK_SKEW_MS (the
 * nodes' allowed clock skew, default the config default 60,000: a smaller one fills the replay
 * window sooner in a short soak); VN_SOAK_PEER_CONNECTIONS (the consumer's `peers.connections`,
 * default the config default 16); VN_SOAK_NODE_ARGS (node options for both processes; default the container image's NODE_OPTIONS,
 * `--max-old-space-size=128`; empty for none; e.g.
 * "--heapsnapshot-signal=SIGUSR2"); VN_SOAK_KEEP=1 keeps the temporary folder.
 * Not part of `npm test`. On a shared machine, say what else was running (load average).
 */
import { fork, type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import { availableParallelism, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { getHeapStatistics } from 'node:v8'
import { Pool } from 'undici'
import { buildDemoFederation } from '../src/demo/federation.js'
import { defaultThreadpoolSize } from '../src/node/threadpool.js'

const here = fileURLToPath(import.meta.url)
const MB = 1024 * 1024
const SAMPLE_MS = 5000
/** The container image's NODE_OPTIONS (Dockerfile): the nodes run as deployed unless VN_SOAK_NODE_ARGS says otherwise. */
const IMAGE_NODE_OPTIONS = '--max-old-space-size=128'

/** '10m', '90s', '2.5' (minutes) → ms. */
export function parseDuration(s: string | undefined): number {
  if (s === undefined || s === '') return 10 * 60_000
  const m = /^(\d+(?:\.\d+)?)(s|m|min|h)?$/.exec(s.trim())
  if (m === null) throw new Error(`soak: duration "${s}" is not like 10m, 90s or 10 (minutes)`)
  const v = Number(m[1])
  const unit = m[2] ?? 'm'
  return Math.round(v * (unit === 's' ? 1000 : unit === 'h' ? 3_600_000 : 60_000))
}

interface Child { proc: ChildProcess; name: string; localUrl: string; publicUrl: string; heap: { used: number; total: number; external: number } }

// ------------------------------------------------------------------------------------------------
// child: one node in its own process

async function childMain(config: string): Promise<void> {
  process.once('SIGTERM', () => process.exit(0))
  try {
    const { startNode } = await import('../src/http/server.js')
    const { pino } = await import('pino')
    const n = await startNode(config, { logger: pino({ level: 'warn' }), processMetrics: true })
    await n.node.tagsets?.whenReady()
    process.send?.({ url: n.publicUrl, localUrl: n.localUrl })
    setInterval(() => {
      const h = getHeapStatistics()
      const m = process.memoryUsage()
      process.send?.({ heap: { used: h.used_heap_size, total: h.total_heap_size, external: m.external } })
    }, SAMPLE_MS).unref()
  } catch (e) {
    process.send?.({ error: String(e) })
  }
}

function spawnNode(name: string, config: string): Promise<Child> {
  return new Promise((resolve, reject) => {
    const nodeArgs = process.env.VN_SOAK_NODE_ARGS ?? IMAGE_NODE_OPTIONS
    const execArgv = nodeArgs.trim() === '' ? [] : nodeArgs.trim().split(/\s+/)
    const env = { ...process.env, UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE ?? String(defaultThreadpoolSize(availableParallelism())) }
    const proc = fork(here, ['child', config], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], execArgv, env })
    const child: Child = { proc, name, localUrl: '', publicUrl: '', heap: { used: 0, total: 0, external: 0 } }
    proc.on('message', (m: { url?: string; localUrl?: string; error?: string; heap?: Child['heap'] }) => {
      if (m.heap !== undefined) child.heap = m.heap
      else if (m.url !== undefined) {
        child.publicUrl = m.url
        child.localUrl = m.localUrl ?? ''
        resolve(child)
      } else if (m.error !== undefined) reject(new Error(m.error))
    })
    proc.once('exit', (c) => reject(new Error(`${name} exited ${c}`)))
  })
}

/** Resident set size of a process in bytes, from /proc (Linux). */
function rssOf(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m === null ? NaN : Number(m[1]) * 1024
  } catch {
    return NaN
  }
}

// ------------------------------------------------------------------------------------------------
// statistics

const quantile = (sorted: readonly number[], q: number): number => sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number

/** Least-squares slope of (t minutes, y MB). */
export function slope(points: readonly { t: number; y: number }[]): number {
  if (points.length < 2) return NaN
  const n = points.length
  const mt = points.reduce((s, p) => s + p.t, 0) / n
  const my = points.reduce((s, p) => s + p.y, 0) / n
  let num = 0
  let den = 0
  for (const p of points) {
    num += (p.t - mt) * (p.y - my)
    den += (p.t - mt) ** 2
  }
  return den === 0 ? NaN : num / den
}

/** The gauges that show what holds memory or queues, from a node's /metrics. */
async function queues(url: string): Promise<string> {
  try {
    const text = await (await fetch(`${url}/metrics`)).text()
    const v = (name: string, label = ''): string => {
      const line = text.split('\n').find((l) => l.startsWith(name) && l.includes(label))
      return line === undefined ? '-' : String(Math.round(Number(line.slice(line.lastIndexOf(' ') + 1))))
    }
    return `replay ${v('verinode_replay_entries')}, in flight provider ${v('verinode_exchanges_in_flight', 'role="provider"')} consumer ${v('verinode_exchanges_in_flight', 'role="consumer"')}, log queue ${v('verinode_log_queued_appends')}`
  } catch {
    return 'metrics unavailable'
  }
}

const mb = (b: number): string => (b / MB).toFixed(0)
const ms = (v: number): string => Number.isNaN(v) ? '-' : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(0)} ms`

// ------------------------------------------------------------------------------------------------
// driver

async function main(): Promise<void> {
  const durationMs = parseDuration(process.argv[2] ?? (process.env.VN_SOAK_MINUTES !== undefined ? `${process.env.VN_SOAK_MINUTES}m` : undefined))
  const rate = Number(process.env.VN_SOAK_RATE ?? 630)
  const connections = Number(process.env.VN_SOAK_CONNECTIONS ?? 256)
  const maxInFlight = Number(process.env.VN_SOAK_MAX_IN_FLIGHT ?? 1000)
  const warmupMin = Math.min(Number(process.env.VN_SOAK_WARMUP_MINUTES ?? 2), Math.max(0, durationMs / 60_000 - 1))
  const skewMs = process.env.VN_SOAK_SKEW_MS !== undefined ? Number(process.env.VN_SOAK_SKEW_MS) : undefined
  const peerConnections = process.env.VN_SOAK_PEER_CONNECTIONS !== undefined ? Number(process.env.VN_SOAK_PEER_CONNECTIONS) : undefined
  if (!(rate > 0) || !(connections > 0) || !(maxInFlight > 0)) throw new Error('soak: VN_SOAK_RATE, VN_SOAK_CONNECTIONS and VN_SOAK_MAX_IN_FLIGHT must be positive')

  const dir = await mkdtemp(join(tmpdir(), 'vn-soak-'))
  const fed = await buildDemoFederation(dir, {
    sizes: { residents: 20_000, enterprises: 500, taxYears: [2025] },
    configOverrides: {
      logLevel: 'warn',
      ...(skewMs !== undefined ? { limits: { skewMs } } : {}),
      ...(peerConnections !== undefined ? { peers: { connections: peerConnections } } : {}),
    },
  })
  // Lift the quota of the one agreement the soak uses: it measures memory and latency, not policy.
  const provCfg = fed.nodes['fj-psb']!.configPath
  const cfg = JSON.parse(await readFile(provCfg, 'utf8'))
  for (const a of cfg.agreements) a.dailyQuota = 100_000_000
  await writeFile(provCfg, JSON.stringify(cfg))

  const provider = await spawnNode('provider', provCfg)
  const consumer = await spawnNode('consumer', fed.nodes['fj-tax']!.configPath)
  const token = fed.nodes['fj-tax']!.appToken
  const pool = new Pool(consumer.localUrl, { connections, pipelining: 1 })
  const ids = fed.dataset.samples.identity
  const basis = 'Tax Collection Administration Law art. 15'
  let seq = 0
  const nextBody = (): { body: string; expect: number } => {
    const k = seq++
    const r = k % 100
    if (r === 0) return { body: JSON.stringify({ provider: 'fj-psb', service: 'identity.match', purpose: 'taxpayer-registration', basis, subjects: [{ id: '35010219900101123X', name: 'x' }] }), expect: 400 }
    if (r === 1) {
      const p = ids.matches[k % ids.matches.length]!
      return { body: JSON.stringify({ provider: 'fj-psb', service: 'identity.match', purpose: 'credit-record-correction', basis, subjects: [{ id: p.id, name: p.name }] }), expect: 403 }
    }
    const p = r % 2 === 0 ? ids.matches[k % ids.matches.length]! : ids.nameMismatches[k % ids.nameMismatches.length]!
    return { body: JSON.stringify({ provider: 'fj-psb', service: 'identity.match', purpose: 'taxpayer-registration', basis, subjects: [{ id: p.id, name: p.name }] }), expect: 200 }
  }

  interface Minute { lat: number[]; done: number; unexpected: number; expected: number; skipped: number; codes: Map<string, number> }
  const fresh = (): Minute => ({ lat: [], done: 0, unexpected: 0, expected: 0, skipped: 0, codes: new Map() })
  let cur = fresh()
  let inFlight = 0
  let unexpectedTotal = 0
  const send = (): void => {
    if (inFlight >= maxInFlight) {
      cur.skipped++
      return
    }
    const { body, expect } = nextBody()
    inFlight++
    const t0 = performance.now()
    pool.request({ path: '/local/v1/verify', method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body })
      .then(async (res) => {
        const text = await res.body.text()
        const m = cur
        m.lat.push(performance.now() - t0)
        m.done++
        if (res.statusCode === expect) m.expected += expect === 200 ? 0 : 1
        else {
          m.unexpected++
          unexpectedTotal++
          let code = String(res.statusCode)
          try { code += ` ${(JSON.parse(text) as { code?: string }).code ?? ''}` } catch { /* not JSON */ }
          m.codes.set(code, (m.codes.get(code) ?? 0) + 1)
        }
      }, (e: unknown) => {
        cur.unexpected++
        unexpectedTotal++
        const code = (e as { code?: string }).code ?? 'network'
        cur.codes.set(code, (cur.codes.get(code) ?? 0) + 1)
      })
      .finally(() => inFlight--)
  }

  const procs = [provider, consumer]
  const samples = new Map<string, { t: number; rss: number }[]>(procs.map((p) => [p.name, []]))
  const sample = (tMs: number): void => {
    for (const p of procs) samples.get(p.name)!.push({ t: tMs / 60_000, rss: rssOf(p.proc.pid as number) })
  }
  console.log(`soak: ${(durationMs / 60_000).toFixed(1)} min at ${rate}/s through ${consumer.name}'s local API (fj-tax → fj-psb identity.match, 1% bad ID numbers, 1% denials), ${connections} connections, ${availableParallelism()} cores, load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`)
  console.log(`  start: provider RSS ${mb(rssOf(provider.proc.pid as number))} MB, consumer RSS ${mb(rssOf(consumer.proc.pid as number))} MB (driver heap ${mb(getHeapStatistics().used_heap_size)} MB)`)
  const t0 = performance.now()
  sample(0)
  const minutes: { p50: number; p99: number; rate: number; m: Minute }[] = []
  let sent = 0
  let nextSample = SAMPLE_MS
  let nextMinute = 60_000
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const el = performance.now() - t0
      const due = Math.min(Math.floor((el / 1000) * rate), Math.floor((durationMs / 1000) * rate))
      while (sent < due) {
        send()
        sent++
      }
      if (el >= nextSample) {
        sample(el)
        nextSample += SAMPLE_MS
      }
      if (el >= nextMinute || el >= durationMs) {
        const m = cur
        cur = fresh()
        const lat = m.lat.sort((a, b) => a - b)
        const span = Math.min(60, (el - (nextMinute - 60_000)) / 1000)
        const row = { p50: quantile(lat, 0.5), p99: quantile(lat, 0.99), rate: m.done / span, m }
        minutes.push(row)
        const rss = procs.map((p) => `${p.name} ${mb(rssOf(p.proc.pid as number))} MB (heap ${mb(p.heap.used)}/${mb(p.heap.total)}, ext ${mb(p.heap.external)})`).join(', ')
        const codes = [...m.codes].map(([c, n]) => `${c}×${n}`).join(' ')
        console.log(`  min ${minutes.length}: ${rss}; p50 ${ms(row.p50)} p99 ${ms(row.p99)}; ${row.rate.toFixed(0)}/s done, in flight ${inFlight}, skipped ${m.skipped}; expected refusals ${m.expected}, unexpected ${m.unexpected}${codes ? ` (${codes})` : ''}; load ${loadavg()[0]!.toFixed(1)}`)
        nextMinute += 60_000
        void Promise.all(procs.map((p) => queues(p.localUrl))).then((q) => console.log(`         queues: provider ${q[0]}; consumer ${q[1]}`))
      }
      if (el >= durationMs) resolve()
      else setTimeout(tick, 5)
    }
    tick()
  })
  // let the last requests finish (up to 30 s) without counting them in a minute
  const drainUntil = performance.now() + 30_000
  while (inFlight > 0 && performance.now() < drainUntil) await new Promise((r) => setTimeout(r, 100))

  const verdicts: string[] = []
  let pass = unexpectedTotal === 0
  const procText = procs.map((p) => {
    const s = samples.get(p.name)!
    const after = s.filter((x) => x.t >= warmupMin && !Number.isNaN(x.rss)).map((x) => ({ t: x.t, y: x.rss / MB }))
    const sl = slope(after)
    const max = Math.max(...s.map((x) => x.rss))
    const ok = max <= 300 * MB && !(sl > 1)
    if (!ok) verdicts.push(`${p.name} RSS ${max > 300 * MB ? `max ${mb(max)} MB > 300` : `slope ${sl.toFixed(1)} MB/min > 1`}`)
    pass &&= ok
    return `${p.name} RSS ${mb(s[0]!.rss)}→${mb(s[s.length - 1]!.rss)} MB (max ${mb(max)}, slope ${Number.isNaN(sl) ? '-' : sl.toFixed(1)} MB/min after ${warmupMin.toFixed(1)} min)`
  })
  const first = minutes[0]?.p99 ?? NaN
  const last = minutes[minutes.length - 1]?.p99 ?? NaN
  const ratio = last / first
  if (!(ratio <= 2)) {
    pass = false
    verdicts.push(`p99 ratio ${ratio.toFixed(1)}x > 2`)
  }
  if (unexpectedTotal > 0) verdicts.push(`${unexpectedTotal} unexpected errors`)
  const achieved = minutes.reduce((n, m) => n + m.m.done, 0) / (durationMs / 1000)
  await pool.close()
  for (const p of procs) p.proc.kill('SIGTERM')
  if (process.env.VN_SOAK_KEEP === '1') console.log(`  kept ${dir}`)
  else await rm(dir, { recursive: true, force: true })
  console.log(`soak: ${(durationMs / 60_000).toFixed(0)} min at ${achieved.toFixed(0)}/s (target ${rate}/s), ${procText.join(', ')}, p99 first ${ms(first)} last ${ms(last)} (${ratio.toFixed(1)}x), unexpected errors ${unexpectedTotal}: ${pass ? 'PASS' : `FAIL (${verdicts.join('; ')})`}`)
  process.exitCode = pass ? 0 : 1
}

if (process.argv[2] === 'child') void childMain(process.argv[3] as string)
else main().then(() => process.exit(process.exitCode ?? 0), (e) => { console.error(e); process.exit(1) })
