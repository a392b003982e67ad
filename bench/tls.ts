/**
 * bench:tls — what mutual TLS costs an exchange: signed single-subject plain exchanges per second
 * against one provider (fj-psb, logging durably) over mutual TLS 1.3 with its key pinned by the
 * manifest, and over plain HTTP, in the same run. Both providers run at once, each in its own
 * child process with its own log; the rounds alternate plain and TLS so a slow spell of the shared
 * machine falls on both. The load comes through the node's own peer client (undici, keep-alive
 * connections as a consumer node holds them, the provider's pin checked on each new connection,
 * fj-tax's certificate presented), sending pre-signed requests (fresh xids, made before each run).
 * Last line: `ratio: <TLS exchanges/s ÷ plain exchanges/s>` (median of the rounds; target ≥ 0.85).
 */
import { fork, type ChildProcess } from 'node:child_process'
import { createPublicKey } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { availableParallelism, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildDemoFederation, freePort } from '../src/demo/federation.js'
import { loadPrivateKey } from '../src/crypto/keys.js'
import { signJwsJson } from '../src/crypto/jws.js'
import { keyIdFor } from '../src/federation/manifest.js'
import { Federation } from '../src/federation/federation.js'
import { loadPublicKey } from '../src/crypto/keys.js'
import { makeDisclosure } from '../src/protocol/disclosures.js'
import { newXid } from '../src/exchange/consumer.js'
import { REQUEST_TYP } from '../src/protocol/envelope.js'
import { PeerClient } from '../src/peers/client.js'
import { defaultThreadpoolSize } from '../src/node/threadpool.js'

const CONNECTIONS = Number(process.env.VN_BENCH_CONNECTIONS ?? 64)
// Many short rounds rather than a few long ones: on a shared 2-core machine the rate moves by 2-3x
// within a minute, and a plain run and a TLS run taken a second apart see the same spell.
const REQUESTS = Number(process.env.VN_BENCH_REQUESTS ?? 1200)
const RUNS = Number(process.env.VN_BENCH_RUNS ?? 11)
const here = fileURLToPath(import.meta.url)

interface Child { proc: ChildProcess; url: string }

function spawnChild(config: string): Promise<Child> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE ?? String(defaultThreadpoolSize(availableParallelism())) }
    const proc = fork(here, ['node', config], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], env })
    proc.once('message', (m: { url?: string; error?: string }) => (m.url ? resolve({ proc, url: m.url }) : reject(new Error(m.error))))
    proc.once('exit', (c) => reject(new Error(`child exited ${c}`)))
  })
}

async function childMain(): Promise<void> {
  const config = process.argv[3] as string
  process.once('SIGTERM', () => process.exit(0))
  try {
    const { startNode } = await import('../src/http/server.js')
    const { pino } = await import('pino')
    const n = await startNode(config, { logger: pino({ level: 'warn' }), checkpointEveryMs: 0, witnessEveryMs: 0, housekeepingEveryMs: 0, reloadOnSighup: false })
    await n.node.tagsets?.whenReady()
    process.send?.({ url: n.publicUrl })
  } catch (e) {
    process.send?.({ error: String(e) })
  }
}

/** Sends every body once, `CONNECTIONS` in flight, through `client`; returns exchanges/s and failures. */
async function load(client: PeerClient, endpoint: string, bodies: readonly string[]): Promise<{ rate: number; failed: number; p50: number }> {
  let i = 0
  let failed = 0
  const lat: number[] = []
  const t0 = performance.now()
  await Promise.all(Array.from({ length: CONNECTIONS }, async () => {
    while (i < bodies.length) {
      const b = bodies[i++] as string
      const s = performance.now()
      try {
        const r = await client.post(endpoint, '/v1/exchange', b)
        if (r.statusCode !== 200) failed++
      } catch {
        failed++
      }
      lat.push(performance.now() - s)
    }
  }))
  const seconds = (performance.now() - t0) / 1000
  lat.sort((a, b) => a - b)
  return { rate: bodies.length / seconds, failed, p50: lat[Math.floor(lat.length / 2)] ?? 0 }
}

/** CPU seconds (user + system) a process has used so far, from /proc (Linux); undefined elsewhere. */
function cpuSeconds(pid: number | undefined): number | undefined {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ')
    return f === undefined ? undefined : (Number(f[11]) + Number(f[12])) / 100 // clock ticks (USER_HZ = 100)
  } catch {
    return undefined
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'vn-bench-tls-'))
  const fed = await buildDemoFederation(dir, { sizes: { residents: 1000, enterprises: 100, taxYears: [2025] }, configOverrides: { logLevel: 'warn' }, tls: true })
  // The provider twice: as built (mutual TLS), and a copy with its own port and log on plain HTTP.
  const tlsCfgPath = fed.nodes['fj-psb']!.configPath
  const cfg = JSON.parse(await readFile(tlsCfgPath, 'utf8'))
  for (const a of cfg.agreements) a.dailyQuota = 100_000_000
  await writeFile(tlsCfgPath, JSON.stringify(cfg))
  const plainCfgPath = join(dirname(tlsCfgPath), 'verinode-plain.json')
  const { tls: _tls, ...plainCfg } = cfg
  await writeFile(plainCfgPath, JSON.stringify({ ...plainCfg, dataDir: 'var-plain', listen: { ...cfg.listen, port: await freePort() }, local: { ...cfg.local, port: await freePort() } }))

  const taxKeys = join(dir, 'fj-tax', 'keys')
  const key = await loadPrivateKey(join(taxKeys, 'message.key'))
  const kid = `fj-tax#${keyIdFor(createPublicKey(key))}`
  const people = fed.dataset.samples.identity.matches
  let next = 0
  const body = (): string => {
    const p = people[next++ % people.length]!
    const a = makeDisclosure('id', p.id)
    const b = makeDisclosure('name', p.name)
    const payload = { v: 1, xid: newXid(), iat: Date.now(), iss: 'fj-tax', aud: 'fj-psb', svc: 'identity.match', purpose: 'taxpayer-registration', basis: 'Tax Collection Administration Law art. 15', mode: 'plain', q: { subjects: [{ id: a.digest, name: b.digest }] } }
    return JSON.stringify({ jws: signJwsJson(payload, key, kid, REQUEST_TYP), disclosures: [a.disclosure, b.disclosure] })
  }
  const bodies = (n: number): string[] => Array.from({ length: n }, body)

  // fj-tax's view: its certificate, and the pins of the manifest it holds
  const manifest = Federation.fromJws((await readFile(join(dir, 'fj-tax', 'federation', 'manifest.jws'), 'utf8')).trim(), await loadPublicKey(join(taxKeys, 'federation-root.pub')), { now: Date.now() })
  const tlsOptions = {
    cert: await readFile(join(taxKeys, 'tls.crt'), 'utf8'),
    key: await readFile(join(taxKeys, 'tls.key'), 'utf8'),
    pinsFor: (origin: string) => manifest.tlsPinsForOrigin(origin),
  }
  const common = { timeoutMs: 30_000, retries: 0, connections: CONNECTIONS, insecure: false }
  const tlsClient = new PeerClient({ ...common, tls: tlsOptions })
  const plainClient = new PeerClient(common)

  console.log(`bench:tls — ${CONNECTIONS} keep-alive connections, ${REQUESTS} single-subject exchanges per run, ${RUNS} rounds (medians), ${availableParallelism()} cores`)
  const tlsNode = await spawnChild(tlsCfgPath)
  const plainNode = await spawnChild(plainCfgPath)
  console.log(`  provider fj-psb: ${tlsNode.url} (mutual TLS 1.3, pinned) and ${plainNode.url} (plain HTTP)`)
  try {
    // warm-up: connections opened (TLS handshakes included), JIT, first commits
    await load(tlsClient, tlsNode.url, bodies(Math.min(1000, REQUESTS)))
    await load(plainClient, plainNode.url, bodies(Math.min(1000, REQUESTS)))
    const rounds: { plain: number; tls: number; ratio: number; plainCpu: number; tlsCpu: number }[] = []
    let failed = 0
    for (let k = 0; k < RUNS; k++) {
      // alternate which goes first, so neither always gets the fresher machine
      const order = k % 2 === 0 ? (['plain', 'tls'] as const) : (['tls', 'plain'] as const)
      const got: Record<string, { rate: number; failed: number; p50: number; cpuMs: number }> = {}
      for (const which of order) {
        const child = which === 'tls' ? tlsNode : plainNode
        const c0 = cpuSeconds(child.proc.pid)
        const r = which === 'tls' ? await load(tlsClient, tlsNode.url, bodies(REQUESTS)) : await load(plainClient, plainNode.url, bodies(REQUESTS))
        const c1 = cpuSeconds(child.proc.pid)
        got[which] = { ...r, cpuMs: c0 === undefined || c1 === undefined ? NaN : ((c1 - c0) * 1000) / REQUESTS }
      }
      const p = got.plain!
      const s = got.tls!
      failed += p.failed + s.failed
      rounds.push({ plain: p.rate, tls: s.rate, ratio: s.rate / p.rate, plainCpu: p.cpuMs, tlsCpu: s.cpuMs })
      console.log(`  round ${k + 1}: plain HTTP ${p.rate.toFixed(0)}/s (p50 ${p.p50.toFixed(1)} ms, provider CPU ${p.cpuMs.toFixed(2)} ms/exchange), mutual TLS ${s.rate.toFixed(0)}/s (p50 ${s.p50.toFixed(1)} ms, ${s.cpuMs.toFixed(2)} ms), ratio ${(s.rate / p.rate).toFixed(2)}`)
    }
    console.log(`plain HTTP: ${median(rounds.map((r) => r.plain)).toFixed(0)} exchanges/s; mutual TLS: ${median(rounds.map((r) => r.tls)).toFixed(0)} exchanges/s (medians of ${RUNS}); ratio = median of the rounds' ratios`)
    console.log(`provider CPU per exchange (all threads): plain ${median(rounds.map((r) => r.plainCpu)).toFixed(2)} ms, mutual TLS ${median(rounds.map((r) => r.tlsCpu)).toFixed(2)} ms (medians; steadier than rates on a shared machine)`)
    if (failed > 0) console.log(`WARNING: ${failed} requests failed; the ratio is not meaningful`)
    console.log(`ratio: ${median(rounds.map((r) => r.ratio)).toFixed(2)}`)
  } finally {
    await tlsClient.close()
    await plainClient.close()
    tlsNode.proc.kill()
    plainNode.proc.kill()
    await new Promise((r) => setTimeout(r, 500))
    await rm(dir, { recursive: true, force: true })
  }
}

if (process.argv[2] === 'node') void childMain()
else main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1) })
