/**
 * Tag-set builds at population scale (issue 19, "builds that keep up"): `npm run bench:scale-build`.
 *
 * A SQLite register of BENCH_RECORDS residents (default 10^6; id and name, valid GB 11643
 * numbers; created once in BENCH_DIR and reused) is built into its identity.match tag set the way
 * a node builds it: `buildServiceTagSet` streams the enumeration in 4096-row chunks, evaluates them
 * on an OPRF pool of BENCH_WORKERS workers (default: every core), checkpoints runs and writes the
 * full set and the shards (BENCH_SHARD_RECORDS per shard, default 10^4) in bounded memory
 * (src/oprf/tagset-build.ts).
 *
 * Reference, measured in the same run: the OPRF evaluation of one core on the same code path
 * (`evaluatePrefixes` on 4096-record chunks of the same rows, in this thread, nothing else
 * running), before and after the build; the mean of the two times the number of cores is what a
 * build using every core could at best reach. Printed: the build rate, its stages, the reference,
 * the peak RSS of the process during the build (sampled every 100 ms, and the kernel's maximum),
 * and the same rates per CPU second (the build's CPU time over all its threads against the
 * reference's): on a machine shared with other jobs the wall-clock rates move with their load, the
 * per-CPU-second efficiency shows what the build itself costs beyond the evaluations.
 *
 * The last line is `ratio: <x>` = build rate / (cores × one core's rate); the issue asks ≥ 0.8.
 */
import { access, mkdir, rm } from 'node:fs/promises'
import { availableParallelism, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { makeResidentId } from '../src/demo/synthetic.js'
import { createOprfPool } from '../src/oprf/oprf-pool.js'
import { deriveEpochKey } from '../src/oprf/tagset.js'
import { buildServiceTagSet } from '../src/oprf/tagset-service.js'
import { SqliteSource } from '../src/sources/sqlite.js'
import { oneCoreMeter, residentService } from './oprf-reference.js'

const env = (name: string, d: number): number => (process.env[name] === undefined ? d : Number(process.env[name]))
const mb = (n: number): string => `${(n / 2 ** 20).toFixed(1)} MB`
const NAMES = ['张伟', '王芳', '李娜', '刘洋', '陈静', '杨磊', '黄敏', '赵强', '周杰', '吴丽', '徐明', '孙燕', '马超', '朱琳', '胡军', '郭婷']

function createRegister(path: string, records: number): void {
  const db = new Database(path)
  db.pragma('journal_mode = OFF')
  db.pragma('synchronous = OFF')
  db.exec('CREATE TABLE residents (id_number TEXT NOT NULL, name TEXT NOT NULL)')
  const ins = db.prepare('INSERT INTO residents VALUES (?, ?)')
  const day0 = Date.UTC(1940, 0, 1)
  const batch = db.transaction((from: number, to: number) => {
    for (let i = from; i < to; i++) {
      const date = new Date(day0 + Math.floor(i / 999) * 86_400_000).toISOString().slice(0, 10)
      ins.run(makeResidentId('350102', date, (i % 999) + 1), NAMES[(i * 7919) % NAMES.length])
    }
  })
  for (let i = 0; i < records; i += 100_000) batch(i, Math.min(records, i + 100_000))
  db.close()
}

async function main(): Promise<void> {
  const records = env('BENCH_RECORDS', 1e6)
  const cores = availableParallelism()
  const workers = env('BENCH_WORKERS', cores)
  const shardRecords = env('BENCH_SHARD_RECORDS', 10_000)
  console.log(`scale-build bench: node ${process.version}, ${cores} cores, ${workers} OPRF workers, ${records} records, ${shardRecords} per shard aimed at`)
  const dir = process.env.BENCH_DIR ?? join(tmpdir(), `verinode-bench-build-${records}`)
  const dbPath = join(dir, 'register.sqlite')
  await mkdir(dir, { recursive: true })
  if (!(await access(dbPath).then(() => true, () => false))) {
    process.stderr.write(`  writing ${records} residents to ${dbPath} ...\n`)
    createRegister(`${dbPath}.tmp`, records)
    await import('node:fs/promises').then((fs) => fs.rename(`${dbPath}.tmp`, dbPath))
  }
  const svc = residentService(shardRecords)
  const epoch = 20_000
  const key = deriveEpochKey(new Uint8Array(32).fill(7), svc.id, epoch)

  // Reference: one core, same evaluation code, same rows, 4096-record chunks (bench/oprf-reference.ts),
  // per wall-clock second (the measure) and per CPU second (what the same code costs,
  // whatever else the machine runs: on a shared machine the wall-clock figures move with the load).
  const oneCore = oneCoreMeter(dbPath, svc)
  const refBefore = oneCore(8)

  const source = SqliteSource.open(dbPath)
  const pool = createOprfPool(workers)
  const tagDir = join(dir, 'tagsets')
  await rm(tagDir, { recursive: true, force: true })
  let peakRss = process.memoryUsage().rss
  let peakHeap = 0
  let peakBuffers = 0
  const rssBefore = peakRss
  const sampler = setInterval(() => {
    const m = process.memoryUsage()
    peakRss = Math.max(peakRss, m.rss)
    peakHeap = Math.max(peakHeap, m.heapUsed)
    peakBuffers = Math.max(peakBuffers, m.arrayBuffers)
  }, 100)
  let evaluatedMs = 0
  const c0 = process.cpuUsage()
  const t0 = performance.now()
  try {
    const r = await buildServiceTagSet({ svc, source, key, epoch, dir: tagDir, pool, onProgress: (p) => { evaluatedMs = p.elapsedMs } })
    const seconds = (performance.now() - t0) / 1000
    const cu = process.cpuUsage(c0)
    const cpuSeconds = (cu.user + cu.system) / 1e6
    clearInterval(sampler)
    peakRss = Math.max(peakRss, process.memoryUsage().rss)
    const refAfter = oneCore(8)
    const ref = (refBefore.wall + refAfter.wall) / 2
    const refCpu = (refBefore.cpu + refAfter.cpu) / 2
    const rate = r.records / seconds
    console.log(`build: ${r.records} records (${r.skipped} skipped) → ${r.count} tags of ${r.tagLength} bytes, ${2 ** r.shardBits} shards; ${seconds.toFixed(1)} s (evaluation ${(evaluatedMs / 1000).toFixed(1)} s, distribute and pack ${(seconds - evaluatedMs / 1000).toFixed(1)} s)`)
    console.log(`build rate: ${Math.round(rate)} records/s (evaluation stage alone: ${Math.round(r.records / (evaluatedMs / 1000))} records/s)`)
    console.log(`reference: one core ${Math.round(refBefore.wall)} evaluations/s before the build, ${Math.round(refAfter.wall)} after; ${cores} cores × ${Math.round(ref)} = ${Math.round(cores * ref)}/s`)
    console.log(`per CPU second: build ${Math.round(r.records / cpuSeconds)} records (all threads, ${cpuSeconds.toFixed(0)} CPU s, ${(cpuSeconds / seconds).toFixed(2)} cores busy on average), one core ${Math.round(refCpu)}: efficiency ${(r.records / cpuSeconds / refCpu).toFixed(2)}; load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`)
    console.log(`memory: rss ${mb(rssBefore)} before the build, peak ${mb(peakRss)} during it (sampled; the event loop's heap at most ${mb(peakHeap)}, its buffers ${mb(peakBuffers)}; the rest is the workers and native memory); process max rss ${mb(process.resourceUsage().maxRSS * 1024)}; full set ${mb(r.size)} on disk`)
    console.log(`ratio: ${(rate / (cores * ref)).toFixed(2)}`)
  } finally {
    clearInterval(sampler)
    await source.close()
    await pool.close()
  }
}

await main()
