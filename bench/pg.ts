/**
 * bench:pg — plain-exchange throughput of one provider (fj-psb, signed single-subject
 * identity.match, logged durably) with
 *   (a) its data in SQLite and its log in SQLite (the default node),
 *   (b) its data in PostgreSQL and its log in PostgreSQL,
 *   (c) two replicas of it on PostgreSQL (one shared log, data in PostgreSQL), the load split
 *       evenly between them,
 * then the PostgreSQL log alone: durable appends per second with C appenders in flight, and the
 * p99 wait until an append is durable. Last line: `ratio: <(b)/(a)>` (target ≥ 0.5).
 *
 * Each provider runs in its own child process, as in bench:plain (whose request making and load
 * generator this copies: autocannon, pre-signed requests with fresh xids). One round per setting,
 * VN_BENCH_REQUESTS requests (default 8,000) after a warm-up, so the whole run stays under about
 * two minutes on the shared 2-core machine; compare figures of one run, not across runs.
 * The PostgreSQL server: VN_BENCH_PG_URL or VN_TEST_PG_URL (default
 * postgres://postgres@127.0.0.1:5432/verinode_test); the schemas it creates are dropped at the end.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createPublicKey, randomBytes } from 'node:crypto'
import pg from 'pg'
import autocannon from 'autocannon'
import { buildDemoFederation, freePort, type DemoFederation } from '../src/demo/federation.js'
import { loadPrivateKey } from '../src/crypto/keys.js'
import { keyIdFor } from '../src/federation/manifest.js'
import { signJwsJson } from '../src/crypto/jws.js'
import { makeDisclosure } from '../src/protocol/disclosures.js'
import { newXid } from '../src/exchange/consumer.js'
import { REQUEST_TYP } from '../src/protocol/envelope.js'
import { defaultThreadpoolSize } from '../src/node/threadpool.js'
import { openPgNodeStores } from '../src/log/pg-store.js'

const PG_URL = process.env.VN_BENCH_PG_URL ?? process.env.VN_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/verinode_test'
const CONNECTIONS = Number(process.env.VN_BENCH_CONNECTIONS ?? 200)
const REQUESTS = Number(process.env.VN_BENCH_REQUESTS ?? 8000)
const APPENDS = Number(process.env.VN_BENCH_APPENDS ?? 20_000)
const APPENDERS = Number(process.env.VN_BENCH_APPENDERS ?? 64)
/** connections of the PostgreSQL source's and log's pools (each) */
const POOL = Number(process.env.VN_BENCH_PG_POOL ?? 16)
const SIZES = { residents: 5000, enterprises: 200, taxYears: [2025] }
const here = fileURLToPath(import.meta.url)
const tag = randomBytes(4).toString('hex')

interface Child { proc: ChildProcess; url: string }

function spawnProvider(config: string): Promise<Child> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE ?? String(defaultThreadpoolSize(availableParallelism())) }
    // VN_BENCH_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") is passed to the providers' processes
    const execArgv = process.env.VN_BENCH_NODE_ARGS ? process.env.VN_BENCH_NODE_ARGS.split(' ') : []
    const proc = fork(here, ['node', config], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], env, execArgv })
    proc.once('message', (m: { url?: string; error?: string }) => (m.url ? resolve({ proc, url: m.url }) : reject(new Error(m.error))))
    proc.once('exit', (c) => reject(new Error(`provider exited ${c}`)))
  })
}

async function childMain(config: string): Promise<void> {
  process.once('SIGTERM', () => process.exit(0))
  try {
    const { startNode } = await import('../src/http/server.js')
    const { pino } = await import('pino')
    const n = await startNode(config, { logger: pino({ level: 'warn' }) })
    await n.node.tagsets?.whenReady() // the oprf tag-set build at start-up is not what is measured
    process.send?.({ url: n.publicUrl })
  } catch (e) {
    process.send?.({ error: String(e) })
  }
}

interface Run { total: number; seconds: number; p50: number; p99: number; failed: number }

/** Sends each body once to `url` (autocannon); the run's time is from the call to the last response. */
function cannon(url: string, bodies: readonly string[], connections: number): Promise<Run> {
  let i = 0
  let last = 0
  const t0 = performance.now()
  return new Promise<Run>((resolve, reject) => {
    const tracker = autocannon({
      url: `${url}/v1/exchange`,
      method: 'POST',
      connections,
      amount: bodies.length,
      headers: { 'content-type': 'application/json' },
      requests: [{ setupRequest: (req: Record<string, unknown>) => ({ ...req, body: bodies[i++ % bodies.length] }) }],
    } as unknown as autocannon.Options, (err: unknown, r: autocannon.Result) => {
      if (err) reject(err)
      else resolve({ total: r.requests.total, seconds: ((last || performance.now()) - t0) / 1000, p50: r.latency.p50, p99: r.latency.p99, failed: r.non2xx + r.errors })
    })
    tracker.on('response', () => {
      last = performance.now()
    })
  })
}

/** Signed requests of fj-tax to fj-psb, made fresh (new xids, iat now) right before a run. */
async function bodyMaker(fed: DemoFederation): Promise<(count: number) => string[]> {
  const key = await loadPrivateKey(join(fed.dir, 'fj-tax', 'keys', 'message.key'))
  const kid = `fj-tax#${keyIdFor(createPublicKey(key))}`
  const people = fed.dataset.samples.identity.matches
  let next = 0
  const one = (): string => {
    const p = people[next++ % people.length]!
    const a = makeDisclosure('id', p.id)
    const b = makeDisclosure('name', p.name)
    const payload = { v: 1, xid: newXid(), iat: Date.now(), iss: 'fj-tax', aud: 'fj-psb', svc: 'identity.match', purpose: 'taxpayer-registration', basis: 'Tax Collection Administration Law art. 15', mode: 'plain', q: { subjects: [{ id: a.digest, name: b.digest }] } }
    return JSON.stringify({ jws: signJwsJson(payload, key, kid, REQUEST_TYP), disclosures: [a.disclosure, b.disclosure] })
  }
  return (count) => Array.from({ length: count }, one)
}

/** The demo federation in `dir`, fj-psb's quota lifted; with `pgLog`, fj-psb's log in that schema. */
async function federation(dir: string, opts: { sourceSchema?: string; pgLog?: string }): Promise<{ fed: DemoFederation; config: string; cfg: Record<string, unknown> }> {
  const fed = await buildDemoFederation(dir, {
    sizes: SIZES,
    configOverrides: { logLevel: 'warn' },
    ...(opts.sourceSchema === undefined ? {} : { source: { kind: 'postgres', url: PG_URL, namespace: opts.sourceSchema } }),
  })
  const config = fed.nodes['fj-psb']!.configPath
  const cfg = JSON.parse(await readFile(config, 'utf8')) as Record<string, unknown> & { agreements: { dailyQuota: number }[] }
  for (const a of cfg.agreements) a.dailyQuota = 100_000_000
  if (opts.pgLog !== undefined) cfg['log'] = { kind: 'postgres', url: PG_URL, schema: opts.pgLog, poolSize: POOL }
  // a busy provider's source pool: one lookup per exchange, each a round trip to the server
  const ds = cfg['dataSource'] as { kind: string; poolSize?: number }
  if (ds.kind === 'postgres') ds.poolSize = POOL
  await writeFile(config, JSON.stringify(cfg))
  return { fed, config, cfg }
}

const rateOf = (r: Run): number => r.total / r.seconds

async function oneProvider(label: string, dir: string, opts: { sourceSchema?: string; pgLog?: string }): Promise<number> {
  const { fed, config } = await federation(dir, opts)
  const bodies = await bodyMaker(fed)
  const node = await spawnProvider(config)
  try {
    await cannon(node.url, bodies(1500), CONNECTIONS)
    const r = await cannon(node.url, bodies(REQUESTS), CONNECTIONS)
    console.log(`${label}: ${rateOf(r).toFixed(0)} exchanges/s (p50 ${r.p50} ms, p99 ${r.p99} ms, failed ${r.failed})`)
    if (r.failed > 0) console.log('WARNING: some requests failed')
    return rateOf(r)
  } finally {
    node.proc.kill()
  }
}

async function twoReplicas(label: string, dir: string, sourceSchema: string, pgLog: string): Promise<number> {
  const { fed, config, cfg } = await federation(dir, { sourceSchema, pgLog })
  const bodies = await bodyMaker(fed)
  const replicaConfig = async (name: string): Promise<string> => {
    const path = join(fed.dir, 'fj-psb', `verinode-${name}.json`)
    await writeFile(path, JSON.stringify({ ...cfg, listen: { host: '127.0.0.1', port: await freePort() }, local: { ...(cfg['local'] as object), port: await freePort() }, dataDir: `var-${name}` }))
    return path
  }
  void config
  const a = await spawnProvider(await replicaConfig('a'))
  const b = await spawnProvider(await replicaConfig('b'))
  try {
    const half = Math.floor(CONNECTIONS / 2)
    await Promise.all([cannon(a.url, bodies(750), half), cannon(b.url, bodies(750), half)])
    const load = bodies(REQUESTS)
    const t0 = performance.now()
    const [ra, rb] = await Promise.all([cannon(a.url, load.slice(0, REQUESTS / 2), half), cannon(b.url, load.slice(REQUESTS / 2), half)])
    const seconds = Math.max(ra.seconds, rb.seconds, (performance.now() - t0) / 1000 - 1)
    const rate = (ra.total + rb.total) / seconds
    console.log(`${label}: ${rate.toFixed(0)} exchanges/s (replica a ${rateOf(ra).toFixed(0)}/s p99 ${ra.p99} ms, replica b ${rateOf(rb).toFixed(0)}/s p99 ${rb.p99} ms, failed ${ra.failed + rb.failed})`)
    if (ra.failed + rb.failed > 0) console.log('WARNING: some requests failed')
    return rate
  } finally {
    a.proc.kill()
    b.proc.kill()
  }
}

/** The PostgreSQL log alone: APPENDS durable appends with APPENDERS in flight (each awaits its append, then sends the next). */
async function logAlone(schema: string): Promise<{ rate: number; p50: number; p99: number }> {
  const stores = await openPgNodeStores({ url: PG_URL, schema, poolSize: 4 })
  try {
    const enc = new TextEncoder()
    const leaf = (i: number): Uint8Array => enc.encode(JSON.stringify({ v: 1, t: 'decision', at: Date.now(), xid: `bench-${i}`, iss: 'fj-tax', permit: true, policy: 'A'.repeat(43), count: 1, reqDigest: 'B'.repeat(43), day: '2026-12-02' }))
    for (let i = 0; i < 500; i += 50) await Promise.all(Array.from({ length: 50 }, (_, k) => stores.log.append(leaf(i + k))))
    const waits: number[] = []
    let sent = 0
    const t0 = performance.now()
    await Promise.all(Array.from({ length: APPENDERS }, async () => {
      while (sent < APPENDS) {
        const i = sent++
        const s = performance.now()
        await stores.log.append(leaf(i))
        waits.push(performance.now() - s)
      }
    }))
    const seconds = (performance.now() - t0) / 1000
    waits.sort((x, y) => x - y)
    const at = (q: number): number => waits[Math.min(waits.length - 1, Math.floor(q * waits.length))] as number
    return { rate: APPENDS / seconds, p50: at(0.5), p99: at(0.99) }
  } finally {
    await stores.close()
  }
}

async function main(): Promise<void> {
  const admin = new pg.Client({ connectionString: PG_URL })
  await admin.connect()
  const schemas = { srcB: `bench_src_b_${tag}`, logB: `bench_log_b_${tag}`, srcC: `bench_src_c_${tag}`, logC: `bench_log_c_${tag}`, alone: `bench_log_${tag}` }
  const root = await mkdtemp(join(tmpdir(), 'vn-bench-pg-'))
  try {
    console.log(`bench:pg — ${CONNECTIONS} connections, ${REQUESTS} requests per setting after a warm-up, ${availableParallelism()} cores, PostgreSQL ${(await admin.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]?.v} (synchronous_commit ${(await admin.query<{ s: string }>("SELECT current_setting('synchronous_commit') AS s")).rows[0]?.s})`)
    // VN_BENCH_ONLY=b (or a, c, l, any mix) runs only those settings, for experiments
    const only = (k: string): boolean => process.env.VN_BENCH_ONLY === undefined || process.env.VN_BENCH_ONLY.includes(k)
    const a = only('a') ? await oneProvider('(a) SQLite source + SQLite log', join(root, 'a'), {}) : Number.NaN
    const b = only('b') ? await oneProvider('(b) PostgreSQL source + PostgreSQL log', join(root, 'b'), { sourceSchema: schemas.srcB, pgLog: schemas.logB }) : Number.NaN
    if (only('c')) await twoReplicas('(c) two replicas, PostgreSQL source + one shared PostgreSQL log', join(root, 'c'), schemas.srcC, schemas.logC)
    const alone = only('l') ? await logAlone(schemas.alone) : { rate: Number.NaN, p50: Number.NaN, p99: Number.NaN }
    console.log(`PostgreSQL log alone: ${alone.rate.toFixed(0)} durable appends/s with ${APPENDERS} in flight (p50 ${alone.p50.toFixed(1)} ms, p99 ${alone.p99.toFixed(1)} ms until durable); Tessera on MySQL: about 2,000/s`)
    console.log(`ratio: ${(b / a).toFixed(2)}`)
  } finally {
    for (const s of Object.values(schemas)) await admin.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`).catch(() => undefined)
    await admin.end()
    await rm(root, { recursive: true, force: true })
  }
}

if (process.argv[2] === 'node') void childMain(process.argv[3] as string)
else main().then(() => process.exit(0), (e: unknown) => { console.error(e); process.exit(1) })
