/**
 * Private checks at population scale (issue 19): `npm run bench:scale`.
 *
 * Two real nodes over loopback; the provider (fj-psb) holds BENCH_RECORDS residents (default
 * 10^6) and builds its own tag set from its database, sharded at `oprf.shardRecords` (default
 * 10^4, BENCH_SHARD_RECORDS). Then BENCH_SINGLES single private checks (identity.match, half
 * matching pairs, half mismatched names) through the consumer's local API, each with the
 * consumer's shard cache emptied first: every check fetches its shard in the signed response,
 * the case of a register much larger than the cache (64 shards). Printed: the build, p50/p99 of
 * those cold checks, p50 of checks whose shard is cached, plain mode for reference, the bytes on
 * the wire per cold single check (both directions of the provider's TCP connections), the
 * consumer's shard cache and the process memory (both nodes run in this process).
 *
 * When BENCH_RECORDS is below 10^7 the 10^7 figures are EXTRAPOLATED, and labelled so: a shard at
 * 10^7 holds N/2^b records with b = 9 (~19,500), the cold check's extra cost over a cached one
 * (read, transfer, tree check, parse) is scaled by the shard size ratio, the path grows by the extra
 * levels. Everything else in a single check does not depend on N.
 *
 * BENCH_PREPARE_ONLY=1 creates the federation (if missing) and stops: at 10^7 residents that takes
 * several minutes, best done before a quiet slot for the measurement itself.
 *
 * The last line is `ratio: <x>` = 100 ms / the cold single-check p50 at the measured size.
 */
import { availableParallelism } from 'node:os'
import { access, readFile, rm, writeFile } from 'node:fs/promises'
import type { Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { pino } from 'pino'
import { request } from 'undici'
import { buildDemoFederation, readDemoIndex } from '../src/demo/federation.js'
import { DEMO_FILES } from '../src/demo/synthetic.js'
import { startNode, type RunningNode } from '../src/http/server.js'
import { createOprfPool } from '../src/oprf/oprf-pool.js'
import { shardBitsFor } from '../src/oprf/tagset.js'
import { defaultThreadpoolSize } from '../src/node/threadpool.js'
import { oneCoreMeter, residentService } from './oprf-reference.js'

const env = (name: string, d: number): number => (process.env[name] === undefined ? d : Number(process.env[name]))
const percentile = (xs: number[], p: number): number => {
  const s = xs.slice().sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] as number
}
const mb = (n: number): string => `${(n / 2 ** 20).toFixed(1)} MB`

async function main(): Promise<void> {
  process.env.UV_THREADPOOL_SIZE ??= String(defaultThreadpoolSize(availableParallelism()))
  const records = env('BENCH_RECORDS', 1e6)
  const shardRecords = env('BENCH_SHARD_RECORDS', 10_000)
  const singles = env('BENCH_SINGLES', 200)
  const workers = env('BENCH_WORKERS', availableParallelism())
  console.log(`scale bench: node ${process.version}, ${availableParallelism()} cores, ${workers} OPRF workers, ${records} records, ${shardRecords} per shard aimed at`)

  const dir = process.env.BENCH_FED_DIR ?? join(tmpdir(), `verinode-bench-scale-${records}-${shardRecords}`)
  const fresh = async (): Promise<void> => {
    await rm(dir, { recursive: true, force: true })
    process.stderr.write(`  building a federation with ${records} residents in ${dir} ...\n`)
    await buildDemoFederation(dir, { sizes: { residents: records, enterprises: 100, taxYears: [2025] }, configOverrides: { logLevel: 'warn' } })
    const cfgPath = join(dir, 'fj-psb', 'verinode.json')
    const cfg = JSON.parse(await readFile(cfgPath, 'utf8')) as { agreements: { dailyQuota: number }[]; services: { id: string; oprf?: Record<string, unknown> }[] }
    for (const a of cfg.agreements) a.dailyQuota = 1_000_000_000
    for (const s of cfg.services) if (s.id === 'identity.match') s.oprf = { ...s.oprf, shardRecords, minAnonymitySet: Math.min(1000, shardRecords) }
    await writeFile(cfgPath, `${JSON.stringify(cfg, null, 2)}\n`)
  }
  if (!(await access(join(dir, 'demo.json')).then(() => true, () => false))) await fresh()
  if (process.env.BENCH_PREPARE_ONLY === '1') return // only the federation (10^7 takes minutes)

  // The build's reference (as bench:scale-build): one core's evaluation rate, before and after.
  const dbPath = join(dir, 'data', DEMO_FILES.publicSecurity)
  const oneCore = oneCoreMeter(dbPath, residentService(shardRecords))
  const psbConfig = JSON.parse(await readFile(join(dir, 'fj-psb', 'verinode.json'), 'utf8')) as { dataDir: string }
  const tagsetsBuilt = await access(join(dir, 'fj-psb', psbConfig.dataDir, 'tagsets')).then(() => true, () => false)
  const refBefore = tagsetsBuilt ? undefined : oneCore(8)
  const pool = createOprfPool(workers)
  const idx = await readDemoIndex(dir)
  const nodes: Record<string, RunningNode> = {}
  const tStart = performance.now() // the provider starts its build as it starts
  try {
    for (const id of ['fj-psb', 'fj-tax']) {
      nodes[id] = await startNode(idx.nodes[id]?.configPath as string, { logger: pino({ level: 'error' }), oprfPool: pool, checkpointEveryMs: 0 })
    }
    const psb = nodes['fj-psb'] as RunningNode
    const tax = nodes['fj-tax'] as RunningNode
    // Bytes on the wire: every TCP connection the provider accepts, both directions.
    const sockets = new Set<Socket>()
    psb.publicApp.server.on('connection', (s: Socket) => sockets.add(s))
    const wire = (): number => [...sockets].reduce((n, s) => n + s.bytesRead + s.bytesWritten, 0)

    const before = psb.node.tagsets?.status()['identity.match']
    await psb.node.tagsets?.whenReady()
    const buildSeconds = before?.ready === true ? null : (performance.now() - tStart) / 1000
    const root = psb.node.tagsets?.currentShards('identity.match')
    const bits = root?.bits ?? 0
    const full = psb.node.tagsets?.current('identity.match')
    console.log(`tag set: ${full?.count} tags, ${bits} shard bits (${2 ** bits} shards of ~${Math.round((full?.count ?? 0) / 2 ** bits)}), ${buildSeconds === null ? 'loaded from disk' : `built in ${buildSeconds.toFixed(1)} s`}; full set ${mb(full?.bytes.length ?? 0)}`)
    if (buildSeconds !== null && refBefore !== undefined) {
      const refAfter = oneCore(8)
      const ref = (refBefore.wall + refAfter.wall) / 2
      const rate = records / buildSeconds
      console.log(`build rate: ${Math.round(rate)} records/s; reference: one core ${Math.round(refBefore.wall)} evaluations/s before, ${Math.round(refAfter.wall)} after; ${availableParallelism()} cores × ${Math.round(ref)} = ${Math.round(availableParallelism() * ref)}/s; build ratio ${(rate / (availableParallelism() * ref)).toFixed(2)} (target 0.8; timed from the nodes' start, their start-up included)`)
    }

    const token = idx.nodes['fj-tax']?.appToken as string
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
    const db = new Database(dbPath, { readonly: true })
    const rows = db.prepare('SELECT id_number AS id, name FROM residents ORDER BY random() LIMIT ?').all(Math.min(records, singles + 1)) as { id: string; name: string }[]
    db.close()
    const subject = (i: number): { id: string; name: string } => {
      const r = rows[i % rows.length] as { id: string; name: string }
      return i % 2 === 0 ? r : { id: r.id, name: (rows[(i + 1) % rows.length] as { name: string }).name }
    }
    const expect = (i: number): boolean => i % 2 === 0 || subject(i).name === rows[i % rows.length]?.name

    const cache = tax.node.shardCache
    await ask('oprf', [subject(0)]) // the epoch header, connections
    await ask('plain', [subject(0)])
    const lat = { cold: [] as number[], cached: [] as number[], plain: [] as number[] }
    let coldBytes = 0
    for (let i = 0; i < singles; i++) {
      cache?.clear()
      const w0 = wire()
      let t1 = performance.now()
      let r = await ask('oprf', [subject(i)])
      lat.cold.push(performance.now() - t1)
      coldBytes += wire() - w0
      if (r[0]?.match !== expect(i)) throw new Error(`wrong answer for subject ${i} (oprf, cold)`)
      t1 = performance.now()
      r = await ask('oprf', [subject(i)])
      lat.cached.push(performance.now() - t1)
      if (r[0]?.match !== expect(i)) throw new Error(`wrong answer for subject ${i} (oprf, cached)`)
      t1 = performance.now()
      r = await ask('plain', [subject(i)])
      lat.plain.push(performance.now() - t1)
      if (r[0]?.match !== expect(i)) throw new Error(`wrong answer for subject ${i} (plain)`)
    }
    const bytesPerCheck = coldBytes / singles
    const p50 = percentile(lat.cold, 50)
    const p99 = percentile(lat.cold, 99)
    const cachedP50 = percentile(lat.cached, 50)
    console.log(`single check, shard fetched (n=${singles}): p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms`)
    console.log(`single check, shard cached:              p50 ${cachedP50.toFixed(2)} ms, p99 ${percentile(lat.cached, 99).toFixed(2)} ms`)
    console.log(`plain mode (reference):                  p50 ${percentile(lat.plain, 50).toFixed(2)} ms, p99 ${percentile(lat.plain, 99).toFixed(2)} ms`)
    console.log(`bytes on the wire per single check (shard fetched): ${Math.round(bytesPerCheck)} (full set instead: ${full?.bytes.length} once per epoch)`)
    const mem = process.memoryUsage()
    console.log(`consumer shard cache: ${cache?.size ?? 0} shards held (bound 64 shards, ~${mb(64 * (full?.bytes.length ?? 0) / 2 ** bits)} at this shard size); process (both nodes): rss ${mb(mem.rss)}, heap ${mb(mem.heapUsed)}`)
    if (records < 1e7) {
      const bits7 = shardBitsFor(1e7, shardRecords)
      const grow = (1e7 / 2 ** bits7) / (records / 2 ** bits)
      const p50x = cachedP50 + (p50 - cachedP50) * grow
      const p99x = percentile(lat.cached, 99) + (p99 - percentile(lat.cached, 99)) * grow
      const tagBytes = (full?.bytes.length ?? 0) / Math.max(1, full?.count ?? 1)
      const bytesX = bytesPerCheck + ((1e7 / 2 ** bits7) - records / 2 ** bits) * tagBytes * 4 / 3 + (bits7 - bits) * 46
      console.log(`EXTRAPOLATED to 10^7 records (not measured): ${2 ** bits7} shards of ~${Math.round(1e7 / 2 ** bits7)}; single check p50 ~${p50x.toFixed(2)} ms, p99 ~${p99x.toFixed(2)} ms, ~${Math.round(bytesX)} bytes on the wire`)
    }
    console.log(`ratio: ${(100 / p50).toFixed(2)}`)
  } finally {
    for (const n of Object.values(nodes)) await n.close()
    await pool.close()
  }
}

await main()
