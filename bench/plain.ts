/**
 * bench:plain — provider throughput for signed single-subject plain exchanges over loopback, with
 * logging on and group commit durable, against the composed limit of its three unavoidable costs
 * measured in the same run on the same machine:
 *
 *   limit = 1 / (1/hello + 1/verify + 1/sign)
 *
 * hello: fastify hello-world JSON POST with the same client and connections; verify/sign: Ed25519 in
 * process (node:crypto). The provider and the hello server each run in their own child process; the
 * load generator (autocannon) sends pre-signed requests (each a fresh xid, within the 60 s skew).
 * Also reports batch throughput (subjects/s with 1,000 subjects per signed request).
 * Last line: `ratio: <exchanges/s ÷ limit>` (target ≥ 0.6).
 */
import { fork, type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { sign, verify, generateKeyPairSync, createPublicKey } from 'node:crypto'
import autocannon from 'autocannon'
import { buildDemoFederation } from '../src/demo/federation.js'
import { loadPrivateKey } from '../src/crypto/keys.js'
import { keyIdFor } from '../src/federation/manifest.js'
import { signJwsJson } from '../src/crypto/jws.js'
import { makeDisclosure } from '../src/protocol/disclosures.js'
import { newXid } from '../src/exchange/consumer.js'
import { REQUEST_TYP } from '../src/protocol/envelope.js'

const CONNECTIONS = Number(process.env.VN_BENCH_CONNECTIONS ?? 50)
const REQUESTS = Number(process.env.VN_BENCH_REQUESTS ?? 20_000)
const here = fileURLToPath(import.meta.url)

interface Child { proc: ChildProcess; url: string }

function spawnChild(args: string[]): Promise<Child> {
  return new Promise((resolve, reject) => {
    const proc = fork(here, args, { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
    proc.once('message', (m: { url?: string; error?: string }) => (m.url ? resolve({ proc, url: m.url }) : reject(new Error(m.error))))
    proc.once('exit', (c) => reject(new Error(`child exited ${c}`)))
  })
}

async function childMain(): Promise<void> {
  const [kind, config] = process.argv.slice(2)
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
      process.send?.({ url: n.publicUrl })
    }
  } catch (e) {
    process.send?.({ error: String(e) })
  }
}

function edRates(): { sign: number; verify: number } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  const msg = Buffer.alloc(600, 7)
  const sig = sign(null, msg, privateKey)
  const rate = (f: () => void): number => {
    const runs: number[] = []
    for (let r = 0; r < 5; r++) {
      const n = 4000
      const t0 = performance.now()
      for (let i = 0; i < n; i++) f()
      runs.push(n / ((performance.now() - t0) / 1000))
    }
    runs.sort((a, b) => a - b)
    return runs[2] as number
  }
  return { sign: rate(() => sign(null, msg, privateKey)), verify: rate(() => verify(null, msg, publicKey, sig)) }
}

/** `amount` requests; each body made when it is sent (signing is the consumer's cost, ~25 µs). */
async function cannon(url: string, amount: number, makeBody: () => string, connections = CONNECTIONS): Promise<autocannon.Result> {
  return autocannon({
    url,
    method: 'POST',
    connections,
    amount,
    headers: { 'content-type': 'application/json' },
    requests: [{ setupRequest: (req: Record<string, unknown>) => ({ ...req, body: makeBody() }) }],
  } as unknown as autocannon.Options)
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'vn-bench-plain-'))
  const fed = await buildDemoFederation(dir, { sizes: { residents: 20_000, enterprises: 500, taxYears: [2025] }, configOverrides: { logLevel: 'warn' } })
  // Lift the demo quota so the run measures throughput, not policy.
  const cfgPath = fed.nodes['fj-psb']!.configPath
  const cfg = JSON.parse(await readFile(cfgPath, 'utf8'))
  for (const a of cfg.agreements) a.dailyQuota = 100_000_000
  await writeFile(cfgPath, JSON.stringify(cfg))

  const key = await loadPrivateKey(join(dir, 'fj-tax', 'keys', 'message.key'))
  const kid = `fj-tax#${keyIdFor(createPublicKey(key))}`
  const people = fed.dataset.samples.identity.matches
  const body = (n: number): string => {
    const disclosures: string[] = []
    const subjects = Array.from({ length: n }, (_, i) => {
      const p = people[i % people.length]!
      const a = makeDisclosure('id', p.id)
      const b = makeDisclosure('name', p.name)
      disclosures.push(a.disclosure, b.disclosure)
      return { id: a.digest, name: b.digest }
    })
    const payload = { v: 1, xid: newXid(), iat: Date.now(), iss: 'fj-tax', aud: 'fj-psb', svc: 'identity.match', purpose: 'taxpayer-registration', basis: 'Tax Collection Administration Law art. 15', mode: 'plain', q: { subjects } }
    return JSON.stringify({ jws: signJwsJson(payload, key, kid, REQUEST_TYP), disclosures })
  }

  console.log(`bench:plain — ${CONNECTIONS} connections, ${REQUESTS} requests per run, 2 cores`)
  const ed = edRates()
  console.log(`Ed25519 in-process (node:crypto): sign ${ed.sign.toFixed(0)}/s, verify ${ed.verify.toFixed(0)}/s`)

  const hello = await spawnChild(['hello'])
  const helloBody = (): string => JSON.stringify({ hello: 'world', pad: 'x'.repeat(400) })
  await cannon(`${hello.url}/hello`, 3000, helloBody)
  const h = await cannon(`${hello.url}/hello`, REQUESTS, helloBody)
  hello.proc.kill()
  const helloRate = h.requests.average
  console.log(`fastify hello-world JSON POST: ${helloRate.toFixed(0)} req/s (p50 ${h.latency.p50} ms, p99 ${h.latency.p99} ms)`)

  const node = await spawnChild(['node', cfgPath])
  const url = `${node.url}/v1/exchange`
  await cannon(url, 2000, () => body(1))
  const r = await cannon(url, REQUESTS, () => body(1))
  const non2xx = r.non2xx
  const ex = r.requests.average
  console.log(`verinode plain exchanges (1 subject, signed, logged durably): ${ex.toFixed(0)}/s (p50 ${r.latency.p50} ms, p99 ${r.latency.p99} ms, errors ${r.errors}, non-2xx ${non2xx})`)

  const batches = Array.from({ length: 60 }, () => body(1000))
  let bi = 0
  const b = await cannon(url, batches.length, () => batches[bi++] as string, 4)
  const subjectsPerSec = (batches.length * 1000) / b.duration
  console.log(`batch: ${subjectsPerSec.toFixed(0)} subjects/s with 1,000 subjects per signed request (p50 ${b.latency.p50} ms per request, non-2xx ${b.non2xx})`)
  node.proc.kill()

  const limit = 1 / (1 / helloRate + 1 / ed.verify + 1 / ed.sign)
  console.log(`composed limit 1/(1/hello + 1/verify + 1/sign) = ${limit.toFixed(0)}/s; X-Road reference: ~110 req/s as measured by one user`)
  if (non2xx > 0 || r.errors > 0) console.log('WARNING: some requests failed; the ratio is not meaningful')
  console.log(`ratio: ${(ex / limit).toFixed(2)}`)
}

if (process.argv[2] === 'hello' || process.argv[2] === 'node') void childMain()
else main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1) })
