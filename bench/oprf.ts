/**
 * OPRF benchmark (issue 3), crypto and in-process parts. Run: `npx tsx bench/oprf.ts`.
 *
 * Measures in one run, medians of several interleaved rounds:
 * 1. the ceiling: plain ristretto255 variable-base scalar multiplications per second on one core,
 *    through the same libsodium call the fast path uses;
 * 2. provider Evaluate per second per core (RFC 9497 §3.3.1, the tag-set hot path), OPRF-mode
 *    BlindEvaluate per element, and VOPRF BlindEvaluate with its batch proof per element;
 *    `eval-ratio` = Evaluate rate ÷ scalar-multiplication rate (target ≥ 0.7);
 * 3. a tag-set build for BENCH_RECORDS (default 10^6) records on the worker pool: time, bytes/record;
 * 4. a batch of BENCH_SUBJECTS (default 10^5) consumer subjects through the whole VOPRF pipeline
 *    in-process on the same pool (Blind → BlindEvaluate + proof → verify + Finalize → probe),
 *    excluding the offline tag-set build, and the same kind of batch through OpenMined's
 *    @openmined/psi.js (install: `cd bench && npm install --ignore-scripts`).
 *
 * psi.js is far slower per item here, so it runs on a sample (BENCH_PSI_CLIENT client items
 * against BENCH_PSI_SERVER server items, defaults 1000 / 1000): its online cost per client item
 * (createRequest, processRequest, getIntersection) does not depend on the server set size beyond
 * a compressed-set probe, and its server setup (our tag-set build's counterpart) is excluded like
 * ours.
 * 5. end to end over loopback (`measureLoopback`, skip with BENCH_E2E=0): two real nodes, a provider
 *    with BENCH_RECORDS residents whose node builds its own tag set from its database, single-subject
 *    private verification latency p50/p99 through the consumer's local API (plain mode measured in
 *    the same run for reference), and the BENCH_SUBJECTS batch as signed requests of 1,000 subjects.
 *    `ratio` then compares this end-to-end rate with psi.js (in-process, so the comparison is
 *    conservative for us). Must run from compiled JS (worker threads): `npm run bench:oprf`, i.e.
 *    `tsc -p tsconfig.bench.json && node .bench-build/bench/oprf.js`.
 * The last two lines are `eval-ratio:` and `ratio:`.
 */
import { pathToFileURL } from 'node:url'
import { availableParallelism } from 'node:os'
import { createRequire } from 'node:module'
import sodium from 'libsodium-wrappers-sumo'
import {
  blindEvaluate,
  blindEvaluateBatch,
  evaluateMany,
  generateKeyPair,
  blind,
  type OprfKeyPair,
} from '../src/crypto/oprf.js'
import { buildTagSet, oprfInput, TagSet } from '../src/oprf/tagset.js'
import { createOprfPool, poolBlind, poolBlindEvaluateBatch, poolFinalizeBatch } from '../src/oprf/oprf-pool.js'
import type { WorkerPool } from '../src/util/worker-pool.js'
import { access, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { pino } from 'pino'
import { request } from 'undici'
import { buildDemoFederation, readDemoIndex } from '../src/demo/federation.js'
import { DEMO_FILES } from '../src/demo/synthetic.js'
import { startNode, type RunningNode } from '../src/http/server.js'
import { defaultThreadpoolSize } from '../src/node/threadpool.js'

await sodium.ready

const median = (xs: number[]): number => {
  const s = xs.slice().sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2
}

type Round = (n: number) => void

/**
 * Run the rounds interleaved (a, b, c, a, b, c, ...) so that load changes on a shared machine hit
 * every measurement alike; returns each round's operations per second.
 */
export function interleaved(n: number, rounds: number, fns: Record<string, Round>): Record<string, number[]> {
  const out: Record<string, number[]> = {}
  for (const [name, f] of Object.entries(fns)) {
    f(Math.max(1, n >> 2)) // warm-up: let the WASM and JS tiers settle
    out[name] = []
  }
  for (let r = 0; r < rounds; r++) {
    for (const [name, f] of Object.entries(fns)) {
      const t0 = performance.now()
      f(n)
      out[name]?.push((n * 1000) / (performance.now() - t0))
    }
  }
  return out
}

const record = (i: number): Uint8Array => oprfInput('credit.debtor', 1, [`91350100MA${String(i).padStart(8, '0')}`])

interface Raw {
  HEAPU8: Uint8Array
  _malloc(n: number): number
  _crypto_scalarmult_ristretto255(q: number, n: number, p: number): number
}

/** The ceiling: libsodium's variable-base ristretto255 multiply, fixed key, varying points. */
export function scalarMultRound(key: OprfKeyPair): Round {
  const raw = (sodium as unknown as { libsodium: Raw }).libsodium
  const buf = raw._malloc(96)
  const points = Array.from({ length: 256 }, () => sodium.crypto_core_ristretto255_random())
  return (m) => {
    raw.HEAPU8.set(key.secretKey, buf)
    for (let i = 0; i < m; i++) {
      raw.HEAPU8.set(points[i & 255] as Uint8Array, buf + 32)
      if (raw._crypto_scalarmult_ristretto255(buf + 64, buf, buf + 32) !== 0) throw new Error('scalarmult failed')
      raw.HEAPU8.slice(buf + 64, buf + 96)
    }
  }
}

/** RFC 9497 Evaluate on the fast path (the provider's tag-set work). */
export function evaluateRound(key: OprfKeyPair, n: number): Round {
  const inputs = Array.from({ length: n }, (_, i) => record(i))
  return (m) => evaluateMany(key.secretKey, inputs.slice(0, m))
}

/** OPRF-mode BlindEvaluate per element (no proof). */
export function blindEvaluateRound(key: OprfKeyPair, n: number): Round {
  const els = blind(Array.from({ length: 256 }, (_, i) => record(i))).blindedElements
  const batch = Array.from({ length: n }, (_, i) => els[i & 255] as Uint8Array)
  return (m) => blindEvaluate(key.secretKey, batch.slice(0, m), { maxBatch: 65535 })
}

/** VOPRF BlindEvaluate with one proof per batch of m elements. */
export function voprfBatchRound(key: OprfKeyPair, n: number): Round {
  const els = blind(Array.from({ length: n }, (_, i) => record(i))).blindedElements
  return (m) => blindEvaluateBatch(key.secretKey, key.publicKey, els.slice(0, m), { maxBatch: 65535 })
}

export interface BuildMeasurement {
  records: number
  seconds: number
  bytes: number
  bytesPerRecord: number
  tagLength: number
  tagSet: Uint8Array
}

export async function measureTagSetBuild(key: OprfKeyPair, records: number, pool: WorkerPool, chunkSize = 4096): Promise<BuildMeasurement> {
  function* inputs(): Generator<Uint8Array[]> {
    for (let i = 0; i < records; i += chunkSize) {
      yield Array.from({ length: Math.min(chunkSize, records - i) }, (_, j) => record(i + j))
    }
  }
  let lastPct = -1
  const r = await buildTagSet({
    service: 'credit.debtor',
    epoch: 1,
    key,
    inputs: inputs(),
    pool,
    onProgress: (p) => {
      const pct = Math.floor((p.records * 10) / records)
      if (pct !== lastPct) {
        lastPct = pct
        process.stderr.write(`  build ${p.records}/${records} (${(p.elapsedMs / 1000).toFixed(1)} s)\n`)
      }
    },
  })
  return {
    records,
    seconds: r.elapsedMs / 1000,
    bytes: r.bytes.length,
    bytesPerRecord: r.bytes.length / records,
    tagLength: r.tagLength,
    tagSet: r.bytes,
  }
}

export interface BatchMeasurement {
  subjects: number
  seconds: number
  itemsPerSecond: number
  hits: number
}

/**
 * The consumer's batch against a published tag set, in-process: chunks of `chunkSize` subjects,
 * each Blind → VOPRF BlindEvaluate (provider) → verify proof + Finalize → probe, with up to two
 * chunks per worker in flight. Half the subjects are records of the provider.
 */
export async function measureBatchPipeline(
  key: OprfKeyPair,
  tagSetBytes: Uint8Array,
  records: number,
  subjects: number,
  pool: WorkerPool,
  chunkSize = 1000,
): Promise<BatchMeasurement> {
  const ts = TagSet.parse(tagSetBytes)
  const subject = (i: number): Uint8Array => record(i % 2 === 0 ? (i * 7919) % records : records + i)
  const t0 = performance.now()
  let hits = 0
  let next = 0
  const worker = async (): Promise<void> => {
    for (;;) {
      const start = next
      if (start >= subjects) return
      next += chunkSize
      const inputs = Array.from({ length: Math.min(chunkSize, subjects - start) }, (_, j) => subject(start + j))
      const b = await poolBlind(pool, inputs, { maxBatch: chunkSize })
      const ev = await poolBlindEvaluateBatch(pool, key.secretKey, ts.publicKey, b.blindedElements, chunkSize)
      const out = await poolFinalizeBatch(pool, {
        inputs,
        blinds: b.blinds,
        evaluatedElements: ev.evaluatedElements,
        blindedElements: b.blindedElements,
        publicKey: ts.publicKey,
        proof: ev.proof,
        maxBatch: chunkSize,
      })
      for (const o of out) if (ts.hasOutput(o)) hits++
    }
  }
  await Promise.all(Array.from({ length: pool.size * 2 }, worker))
  const seconds = (performance.now() - t0) / 1000
  return { subjects, seconds, itemsPerSecond: subjects / seconds, hits }
}

export interface PsiMeasurement {
  clientItems: number
  serverItems: number
  seconds: number
  itemsPerSecond: number
  intersection: number
}

/** @openmined/psi.js in-process: createRequest → processRequest → getIntersection (setup excluded). */
export async function measurePsiJs(clientItems: number, serverItems: number): Promise<PsiMeasurement | null> {
  // bench/node_modules, found from bench/ (tsx) or from .bench-build/bench/ (compiled)
  const load = (): (() => Promise<PsiLib>) | null => {
    for (const base of ['./package.json', '../../bench/package.json']) {
      try {
        return createRequire(new URL(base, import.meta.url))('@openmined/psi.js') as () => Promise<PsiLib>
      } catch {
        // try the next location
      }
    }
    return null
  }
  const PSI = load()
  if (PSI === null) return null
  const psi = await PSI()
  const server = psi.server.createWithNewKey(true)
  const client = psi.client.createWithNewKey(true)
  const serverInputs = Array.from({ length: serverItems }, (_, i) => `91350100MA${String(i).padStart(8, '0')}`)
  const setup = server.createSetupMessage(1e-9, clientItems, serverInputs, psi.dataStructure.GCS)
  const clientInputs = Array.from({ length: clientItems }, (_, i) => `91350100MA${String(i % 2 === 0 ? i % serverItems : serverItems + i).padStart(8, '0')}`)
  const t0 = performance.now()
  const request = psi.request.deserializeBinary(client.createRequest(clientInputs).serializeBinary())
  const response = psi.response.deserializeBinary(server.processRequest(request).serializeBinary())
  const intersection = client.getIntersection(psi.serverSetup.deserializeBinary(setup.serializeBinary()), response).length
  const seconds = (performance.now() - t0) / 1000
  return { clientItems, serverItems, seconds, itemsPerSecond: clientItems / seconds, intersection }
}

interface PsiMsg {
  serializeBinary(): Uint8Array
}
interface PsiLib {
  server: { createWithNewKey(reveal: boolean): { createSetupMessage(fpr: number, n: number, xs: string[], ds: number): PsiMsg; processRequest(r: PsiMsg): PsiMsg } }
  client: { createWithNewKey(reveal: boolean): { createRequest(xs: string[]): PsiMsg; getIntersection(s: PsiMsg, r: PsiMsg): number[] } }
  request: { deserializeBinary(b: Uint8Array): PsiMsg }
  response: { deserializeBinary(b: Uint8Array): PsiMsg }
  serverSetup: { deserializeBinary(b: Uint8Array): PsiMsg }
  dataStructure: { GCS: number }
}

export interface LoopbackMeasurement {
  records: number
  /** the provider node's own tag-set build (enumerate in place + evaluate + sort), or null when loaded from its store */
  nodeBuildSeconds: number | null
  single: { n: number; p50: number; p99: number; plainP50: number; plainP99: number }
  batch: { subjects: number; seconds: number; itemsPerSecond: number; matches: number; expected: number; requests: number }
}

const percentile = (xs: number[], p: number): number => {
  const s = xs.slice().sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] as number
}

/**
 * End to end over loopback, two real nodes in this process: fj-tax asks fj-psb through its local
 * API (canonicalize, fetch + verify the signed tag set once, blind, sign, log, HTTP, provider
 * verify + log + evaluate with proof on the pool, verify proof, finalize, probe, log). The
 * provider's register has `records` residents; its tag set is built by the node itself (off the
 * request path) and stored, so a second run in the same epoch reuses it (BENCH_FED_DIR keeps the
 * federation; default a folder in the OS temp dir named after the size).
 */
export async function measureLoopback(records: number, subjects: number, pool: WorkerPool, singles = 300, chunk = 1000, between?: () => Promise<void>): Promise<LoopbackMeasurement> {
  const dir = process.env.BENCH_FED_DIR ?? join(tmpdir(), `verinode-bench-oprf-${records}`)
  const fresh = async (): Promise<void> => {
    await rm(dir, { recursive: true, force: true })
    process.stderr.write(`  building a federation with ${records} residents in ${dir} ...\n`)
    await buildDemoFederation(dir, { sizes: { residents: records, enterprises: 100, taxYears: [2025] }, configOverrides: { logLevel: 'warn' } })
    // The bench asks far more than the demo agreement's daily quota allows.
    const cfgPath = join(dir, 'fj-psb', 'verinode.json')
    const cfg = JSON.parse(await readFile(cfgPath, 'utf8')) as { agreements: { id: string; dailyQuota: number }[] }
    for (const a of cfg.agreements) a.dailyQuota = 1_000_000_000
    await writeFile(cfgPath, `${JSON.stringify(cfg, null, 2)}\n`)
  }
  if (!(await access(join(dir, 'demo.json')).then(() => true, () => false))) await fresh()
  const start = async (): Promise<Record<string, RunningNode>> => {
    const idx = await readDemoIndex(dir)
    const out: Record<string, RunningNode> = {}
    for (const id of ['fj-psb', 'fj-tax']) {
      out[id] = await startNode(idx.nodes[id]?.configPath as string, { logger: pino({ level: 'error' }), oprfPool: pool, checkpointEveryMs: 0 })
    }
    return out
  }
  let nodes: Record<string, RunningNode>
  try {
    nodes = await start()
  } catch (e) {
    process.stderr.write(`  cached federation unusable (${(e as Error).message}); rebuilding\n`)
    await fresh()
    nodes = await start()
  }
  try {
    const psb = nodes['fj-psb'] as RunningNode
    const tax = nodes['fj-tax'] as RunningNode
    const t0 = performance.now()
    const statusBefore = psb.node.tagsets?.status()['identity.match']
    await psb.node.tagsets?.whenReady()
    const nodeBuildSeconds = statusBefore?.ready === true ? null : (performance.now() - t0) / 1000
    const token = (await readDemoIndex(dir)).nodes['fj-tax']?.appToken as string
    const ask = async (mode: 'plain' | 'oprf', subj: { id: string; name: string }[]): Promise<{ match: boolean }[]> => {
      const res = await request(`${tax.localUrl}/local/v1/verify`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ provider: 'fj-psb', service: 'identity.match', purpose: 'taxpayer-registration', basis: 'Tax Collection Administration Law art. 15', mode, subjects: subj }),
      })
      const j = (await res.body.json()) as { results?: { match: boolean }[]; code?: string }
      if (res.statusCode !== 200 || j.results === undefined) throw new Error(`verify ${mode}: HTTP ${res.statusCode} ${j.code}`)
      return j.results
    }
    // Subjects: half real (id, name) pairs, half the same ids with another resident's name.
    const db = new Database(join(dir, 'data', DEMO_FILES.publicSecurity), { readonly: true })
    const rows = db.prepare('SELECT id_number AS id, name FROM residents LIMIT ?').all(Math.min(records, Math.max(subjects, singles))) as { id: string; name: string }[]
    db.close()
    const subject = (i: number): { id: string; name: string } => {
      const r = rows[i % rows.length] as { id: string; name: string }
      return i % 2 === 0 ? r : { id: r.id, name: (rows[(i + 1) % rows.length] as { name: string }).name }
    }
    await ask('oprf', [subject(0)]) // fetch the tag set, start the consumer's connections
    await ask('plain', [subject(0)])
    const lat: Record<'plain' | 'oprf', number[]> = { plain: [], oprf: [] }
    for (let i = 0; i < singles; i++) {
      for (const mode of ['oprf', 'plain'] as const) {
        const t1 = performance.now()
        const r = await ask(mode, [subject(i)])
        lat[mode].push(performance.now() - t1)
        if (r[0]?.match !== (i % 2 === 0 || subject(i).name === rows[i % rows.length]?.name)) throw new Error(`wrong answer for subject ${i} (${mode})`)
      }
    }
    await between?.()
    // The batch: chunks of `chunk` subjects, a few requests in flight.
    const tb = performance.now()
    let next = 0
    let matches = 0
    let requests = 0
    const worker = async (): Promise<void> => {
      for (;;) {
        const from = next
        if (from >= subjects) return
        next += chunk
        const part = Array.from({ length: Math.min(chunk, subjects - from) }, (_, j) => subject(from + j))
        const r = await ask('oprf', part)
        requests++
        for (const x of r) if (x.match) matches++
      }
    }
    await Promise.all(Array.from({ length: Math.max(2, pool.size * 2) }, worker))
    const seconds = (performance.now() - tb) / 1000
    const expected = Array.from({ length: subjects }, (_, i) => i).filter((i) => i % 2 === 0 || subject(i).name === rows[i % rows.length]?.name).length
    return {
      records,
      nodeBuildSeconds,
      single: { n: singles, p50: percentile(lat.oprf, 50), p99: percentile(lat.oprf, 99), plainP50: percentile(lat.plain, 50), plainP99: percentile(lat.plain, 99) },
      batch: { subjects, seconds, itemsPerSecond: subjects / seconds, matches, expected, requests },
    }
  } finally {
    for (const n of Object.values(nodes)) await n.close()
  }
}

async function main(): Promise<void> {
  // The nodes run in this process: give it the libuv pool size `verinode serve` would (src/cli/bin.ts).
  process.env.UV_THREADPOOL_SIZE ??= String(defaultThreadpoolSize(availableParallelism()))
  const env = (name: string, d: number): number => (process.env[name] === undefined ? d : Number(process.env[name]))
  const records = env('BENCH_RECORDS', 1e6)
  const subjects = env('BENCH_SUBJECTS', 1e5)
  const workers = env('BENCH_WORKERS', availableParallelism())
  const key = generateKeyPair()
  console.log(`oprf bench: node ${process.version}, ${availableParallelism()} cores, ${workers} workers`)

  const n = 1000
  const rates = interleaved(n, env('BENCH_ROUNDS', 7), {
    sm: scalarMultRound(key),
    ev: evaluateRound(key, n),
    be: blindEvaluateRound(key, n),
    vb: voprfBatchRound(key, n),
  })
  const med = (k: string): number => median(rates[k] ?? [])
  const per = (k: string): number => median((rates[k] ?? []).map((x, i) => x / (rates['sm']?.[i] ?? Number.NaN)))
  const sm = med('sm')
  console.log(`scalar-mult/s (libsodium ristretto255, 1 core):   ${sm.toFixed(0)}`)
  console.log(`evaluate/s (RFC 9497 Evaluate, 1 core):            ${med('ev').toFixed(0)}  (${per('ev').toFixed(2)} of ceiling)`)
  console.log(`blindEvaluate/s (OPRF, per element, 1 core):       ${med('be').toFixed(0)}  (${per('be').toFixed(2)} of ceiling)`)
  console.log(`voprf blindEvaluate+proof/s (batch ${n}, 1 core):  ${med('vb').toFixed(0)}  (${per('vb').toFixed(2)} of ceiling: the batch proof adds ~1.2 multiplies per element)`)
  const evalRatio = per('ev')

  const underTsx = import.meta.url.endsWith('.ts')
  const pool = createOprfPool(workers, underTsx ? new URL('./oprf-worker-tsx.mjs', import.meta.url).pathname : undefined)
  try {
    await pool.run('evaluate', { secretKey: key.secretKey, inputs: [record(0)] }) // start the workers
    // BENCH_INPROCESS=0 skips the in-process build and batch (the loopback part builds and measures its own)
    let m: BatchMeasurement | null = null
    if (env('BENCH_INPROCESS', 1) !== 0) {
      const b = await measureTagSetBuild(key, records, pool)
      console.log(`tagset build: ${b.records} records in ${b.seconds.toFixed(1)} s on ${workers} workers (${(b.records / b.seconds).toFixed(0)} records/s), ${b.bytes} bytes, ${b.bytesPerRecord.toFixed(2)} bytes/record, tag ${b.tagLength * 8} bits`)
      m = await measureBatchPipeline(key, b.tagSet, records, subjects, pool)
      console.log(`batch (in-process, VOPRF, ${workers} workers): ${m.subjects} subjects vs ${records} records in ${m.seconds.toFixed(1)} s = ${m.itemsPerSecond.toFixed(0)} items/s (${(m.itemsPerSecond / workers).toFixed(0)} per worker), hits ${m.hits} (expected ${Math.ceil(subjects / 2)})`)
    }
    // psi.js is measured three times, spread over the run (before, between the single checks and
    // the batch, after), and its median counts: this machine's speed drifts over a run.
    const psiRuns: PsiMeasurement[] = []
    const psiOnce = async (): Promise<void> => {
      const r = await measurePsiJs(env('BENCH_PSI_CLIENT', 1000), env('BENCH_PSI_SERVER', 1000))
      if (r !== null) psiRuns.push(r)
    }
    await psiOnce()
    let e2e: LoopbackMeasurement | null = null
    if (env('BENCH_E2E', 1) !== 0) {
      e2e = await measureLoopback(records, subjects, pool, env('BENCH_SINGLES', 300), 1000, psiOnce)
      console.log(`loopback: provider node's own tag-set build for ${e2e.records} records: ${e2e.nodeBuildSeconds === null ? 'reused from its store' : `${e2e.nodeBuildSeconds.toFixed(1)} s`}`)
      console.log(`loopback single-subject private verification (local API → consumer node → provider node, ${e2e.single.n} sequential): p50 ${e2e.single.p50.toFixed(2)} ms, p99 ${e2e.single.p99.toFixed(2)} ms (plain mode, same run: p50 ${e2e.single.plainP50.toFixed(2)} ms, p99 ${e2e.single.plainP99.toFixed(2)} ms; target p50 < 10 ms; SecretFlow labeled PSI ~500 ms)`)
      console.log(`loopback batch: ${e2e.batch.subjects} subjects vs ${e2e.records} records in ${e2e.batch.requests} signed requests, ${e2e.batch.seconds.toFixed(1)} s = ${e2e.batch.itemsPerSecond.toFixed(0)} items/s end to end (matches ${e2e.batch.matches}, expected ${e2e.batch.expected})`)
    }
    if (psiRuns.length > 0) await psiOnce()
    if (psiRuns.length === 2) await psiOnce() // BENCH_E2E=0: three back to back
    let ratio = Number.NaN
    const p = psiRuns.length === 0 ? null : ([...psiRuns].sort((a, b) => a.itemsPerSecond - b.itemsPerSecond)[psiRuns.length >> 1] as PsiMeasurement)
    if (p === null) console.log('psi.js: not installed (cd bench && npm install --ignore-scripts); ratio: NaN')
    else {
      console.log(`psi.js runs (items/s): ${psiRuns.map((x) => x.itemsPerSecond.toFixed(0)).join(', ')}`)
      console.log(`psi.js (in-process, 1 thread, median of ${psiRuns.length}): ${p.clientItems} client items vs ${p.serverItems} server items in ${p.seconds.toFixed(1)} s = ${p.itemsPerSecond.toFixed(0)} items/s, intersection ${p.intersection}`)
      const ours = e2e?.batch.itemsPerSecond ?? m?.itemsPerSecond ?? Number.NaN
      ratio = ours / p.itemsPerSecond
      if (m !== null) console.log(`in-process ratio (ours ÷ psi.js): ${(m.itemsPerSecond / p.itemsPerSecond).toFixed(2)}; per worker ${(m.itemsPerSecond / workers / p.itemsPerSecond).toFixed(2)}`)
      console.log(`the ratio below is ${e2e === null ? 'IN-PROCESS (BENCH_E2E=0)' : 'END TO END over loopback (signed, logged exchanges)'} against psi.js in-process`)
    }
    console.log(`eval-ratio: ${evalRatio.toFixed(3)}`)
    console.log(`ratio: ${ratio.toFixed(3)}`)
  } finally {
    await pool.close()
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main()
