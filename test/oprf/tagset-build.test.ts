/**
 * Bounded-memory builds (src/oprf/tagset-build.ts): the files are byte for byte what the in-memory
 * build and `encodeShardFile` give, no bucket holds more than the cap, and a killed build resumes
 * from its run files.
 */
import t from 'tap'
import { generateKeyPairSync } from 'node:crypto'
import { readdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKeyPair } from '../../src/crypto/oprf.js'
import { createOprfPool, poolEvaluatePrefixes } from '../../src/oprf/oprf-pool.js'
import { bucketBitsFor, buildTagSetFiles } from '../../src/oprf/tagset-build.js'
import { buildTagSet, oprfInput, signTagSetDigest, TagSetFile, tagSetETag, tagSetETagOfDigest, verifyTagSet, type BuildChunk } from '../../src/oprf/tagset.js'
import { encodeShardFile, shardHash } from '../../src/oprf/tagshards.js'

const SVC = 'credit.debtor'

/** n records (every 1000th one twice: duplicates collapse), in chunks of `size` with their shard hashes. */
function recordChunks(n: number, size: number): BuildChunk[] {
  const ids = Array.from({ length: n }, (_, i) => `91350100M${String(i % 1000 === 999 ? i - 1 : i).padStart(9, '0')}`)
  const out: BuildChunk[] = []
  for (let i = 0; i < n; i += size) {
    const part = ids.slice(i, i + size)
    out.push({ inputs: part.map((id) => oprfInput(SVC, 1, [id])), shardHashes: Uint32Array.from(part, (id) => shardHash(SVC, [id])) })
  }
  return out
}

t.test('bucketBitsFor: the smallest b with N / 2^b at most half the cap, at most 12', async (t) => {
  t.equal(bucketBitsFor(0, 1 << 19), 0)
  t.equal(bucketBitsFor(1 << 18, 1 << 19), 0)
  t.equal(bucketBitsFor((1 << 18) + 1, 1 << 19), 1)
  t.equal(bucketBitsFor(1e7, 1 << 19), 6, '10^7 records: 64 buckets of ~156,000')
  t.equal(bucketBitsFor(1e12, 1 << 19), 12)
})

// 2·10^4 records: the same 64 buckets per family as 10^5 records with a 4096-record cap (~312 records
// each instead of ~1563), and the second build's two buckets of 10^4 records fill their spill
// buffers (8192 and 5461 records) and write them mid-bucket, as 10^5 records in 8 buckets did. The
// pool evaluates a fifth of the records (the file took 25 s of CPU, most of it evaluating 10^5).
t.test('2·10^4 records: bounded files are byte for byte the in-memory build, the bucket cap holds', async (t) => {
  const dir = t.testdir({})
  const pool = createOprfPool(2)
  t.teardown(() => pool.close())
  const key = generateKeyPair()
  const chunks = recordChunks(20_000, 1024)
  const ck = join(dir, 'build')
  const shardRecords = 200
  const a = await buildTagSetFiles({
    service: SVC, epoch: 7, key, inputs: chunks, pool, shardRecords, checkpointDir: ck, keepCheckpoint: true,
    setPath: join(dir, 'a.vnts'), shardPath: join(dir, 'a.vnsh'), bucketRecords: 1024,
  })
  t.equal(a.records, 20_000)
  t.equal(a.count, 20_000 - 20, 'the duplicates collapsed')
  t.equal(a.shardBits, 6)
  t.same([a.buckets.full, a.buckets.shards], [64, 64], '2^6 buckets per family: N / 2^b ≤ 512')
  t.ok(a.buckets.maxRecords <= 1024, `no bucket held more than the cap (largest: ${a.buckets.maxRecords})`)
  t.ok(a.buckets.maxRecords >= 300, 'and the buckets are what was held (~312 each)')
  t.same((await readdir(ck)).filter((f) => !f.endsWith('.run')), ['manifest.json'], 'the buckets are gone, the runs kept when asked')

  // The old in-memory build over the same runs (resumed, not evaluated again).
  const mem = await buildTagSet({ service: SVC, epoch: 7, key, inputs: chunks, shardRecords, checkpointDir: ck, keepCheckpoint: true })
  t.equal(mem.resumedChunks, chunks.length, 'the in-memory build reads the runs the bounded one wrote')
  if (mem.sharded === undefined) throw new Error('no shards')
  const shardFile = encodeShardFile({ service: SVC, epoch: 7, tagLength: mem.tagLength, publicKey: key.publicKey }, mem.sharded).file
  t.equal(a.size, mem.bytes.length)
  t.ok((await readFile(join(dir, 'a.vnts'))).equals(mem.bytes), 'the full set: identical bytes')
  t.ok((await readFile(join(dir, 'a.vnsh'))).equals(shardFile), 'the sharded file: identical bytes')

  // Fewer, larger buckets (several shards per bucket, more records than a spill buffer holds) and
  // no pool: still the same bytes.
  const b = await buildTagSetFiles({
    service: SVC, epoch: 7, key, inputs: chunks, shardRecords, checkpointDir: ck,
    setPath: join(dir, 'b.vnts'), shardPath: join(dir, 'b.vnsh'), bucketRecords: 1 << 15,
  })
  t.same([b.resumedChunks, b.buckets.full, b.buckets.shards], [chunks.length, 2, 2], '2 buckets of 32 shards each')
  t.ok(b.buckets.maxRecords <= 1 << 15)
  t.ok(b.buckets.maxRecords > 8192, `a bucket outgrew its spill buffer (largest: ${b.buckets.maxRecords})`)
  t.ok((await readFile(join(dir, 'b.vnts'))).equals(mem.bytes))
  t.ok((await readFile(join(dir, 'b.vnsh'))).equals(shardFile))
  t.equal(await readdir(ck).then(() => 'exists', () => 'gone'), 'gone', 'success removes the work folder')
})

t.test('a killed build resumes from its finished chunks; small and empty sets', async (t) => {
  const dir = t.testdir({})
  const key = generateKeyPair()
  const chunks = recordChunks(1200, 100)
  const ck = join(dir, 'build')
  function* failing(): Generator<BuildChunk> {
    for (let i = 0; i < chunks.length; i++) {
      if (i === 5) throw new Error('enumeration interrupted')
      yield chunks[i] as BuildChunk
    }
  }
  const opts = { service: SVC, epoch: 3, key, shardRecords: 100, checkpointDir: ck, setPath: join(dir, 's.vnts'), shardPath: join(dir, 's.vnsh'), bucketRecords: 64 }
  const err = await buildTagSetFiles({ ...opts, inputs: failing() }).then(() => null, (e: unknown) => e)
  t.match((err as Error).message, /interrupted/)
  t.equal((await readdir(ck)).filter((f) => f.endsWith('.run')).length, 5, 'five runs on disk')
  t.same((await readdir(dir)).sort(), ['build'], 'no output file before the build completes')
  const r = await buildTagSetFiles({ ...opts, inputs: chunks })
  t.equal(r.resumedChunks, 5, 'the finished chunks are not evaluated again')
  t.equal(r.shardBits, 3)
  const mem = await buildTagSet({ service: SVC, epoch: 3, key, inputs: chunks, shardRecords: 100 })
  if (mem.sharded === undefined) throw new Error('no shards')
  t.ok((await readFile(opts.setPath)).equals(mem.bytes))
  t.ok((await readFile(opts.shardPath)).equals(encodeShardFile({ service: SVC, epoch: 3, tagLength: mem.tagLength, publicKey: key.publicKey }, mem.sharded).file))
  t.ok(r.buckets.maxRecords <= 200, 'a shard is never split: its bucket holds one shard (~150) above the cap of 64')

  const empty = await buildTagSetFiles({ ...opts, inputs: [], setPath: join(dir, 'e.vnts'), shardPath: join(dir, 'e.vnsh') })
  const memEmpty = await buildTagSet({ service: SVC, epoch: 3, key, inputs: [], shardRecords: 100 })
  t.equal(empty.count, 0)
  t.ok((await readFile(join(dir, 'e.vnts'))).equals(memEmpty.bytes))
  t.ok((await readFile(join(dir, 'e.vnsh'))).equals(encodeShardFile({ service: SVC, epoch: 3, tagLength: memEmpty.tagLength, publicKey: key.publicKey }, memEmpty.sharded as NonNullable<typeof memEmpty.sharded>).file))
  const fullOnly = await buildTagSetFiles({ service: SVC, epoch: 3, key, inputs: chunks, checkpointDir: ck, setPath: join(dir, 'f.vnts'), bucketRecords: 64 })
  t.equal(fullOnly.shardBits, 0)
  t.ok((await readFile(join(dir, 'f.vnts'))).equals(mem.bytes), 'a full set alone')
})

t.test('a set served from its file: checked and digested in one pass, streamed, a rebuild renamed over it does not disturb it', async (t) => {
  const dir = t.testdir({})
  const key = generateKeyPair()
  const other = generateKeyPair()
  const chunks = recordChunks(2000, 1000)
  const a = await buildTagSet({ service: SVC, epoch: 5, key, inputs: chunks })
  const b = await buildTagSet({ service: SVC, epoch: 5, key, inputs: chunks.slice(1) })
  const path = join(dir, 'set.vnts')
  await writeFile(path, a.bytes)
  const expect = { service: SVC, epoch: 5, publicKey: key.publicKey }
  const f = await TagSetFile.open(path, expect)
  if (f === null) throw new Error('does not open')
  t.teardown(() => f.close())
  t.same([f.size, f.header.count, f.header.tagLength], [a.bytes.length, a.count, a.tagLength])
  t.equal(tagSetETagOfDigest(f.digest), tagSetETag(a.bytes), 'the ETag of the bytes')
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  t.equal(verifyTagSet(a.bytes, signTagSetDigest(f.digest, privateKey), publicKey).count, a.count, 'the signature of the bytes')
  // A rebuild is renamed over the file: the open set still streams its own bytes.
  await writeFile(`${path}.new`, b.bytes)
  await rename(`${path}.new`, path)
  const parts: Buffer[] = []
  for await (const p of f.stream()) parts.push(p as Buffer)
  t.ok(Buffer.concat(parts).equals(a.bytes), 'streamed: the bytes it was opened with')
  t.ok(f.readAllSync().equals(a.bytes))
  t.equal(await TagSetFile.open(path, { ...expect, publicKey: other.publicKey }), null, 'another key: not this set')
  t.equal(await TagSetFile.open(path, { ...expect, epoch: 6 }), null, 'another epoch')
  t.equal(await TagSetFile.open(join(dir, 'absent.vnts'), expect), null, 'absent')
  // Damage: out of order across a block seam, truncated, a bad header.
  const big = await buildTagSet({ service: SVC, epoch: 5, key, inputs: recordChunks(9000, 4096), tagLength: 8 })
  const headLength = big.bytes.length - big.count * 8
  const seam = Buffer.from(big.bytes)
  const at = headLength + 8192 * 8 // the first tag of the second 64 KiB block
  seam.copy(seam, at, at - 8, at) // equal to the last tag of the first block
  await writeFile(path, seam)
  t.equal(await TagSetFile.open(path, expect), null, 'a tag not above the one before it, across a block seam')
  await writeFile(path, big.bytes)
  const whole = await TagSetFile.open(path, expect)
  t.equal(whole?.header.count, big.count, 'the undamaged set opens')
  await whole?.close()
  await writeFile(path, big.bytes.subarray(0, big.bytes.length - 1))
  t.equal(await TagSetFile.open(path, expect), null, 'truncated')
  const badMagic = Buffer.from(big.bytes)
  badMagic[0] = 0x58
  await writeFile(path, badMagic)
  t.equal(await TagSetFile.open(path, expect), null, 'bad magic')
})

t.test('an aborted build settles its chunks in flight before it throws: nothing writes into its folder after', async (t) => {
  const dir = t.testdir({})
  const pool = createOprfPool(2)
  t.teardown(() => pool.close())
  const key = generateKeyPair()
  const chunks = recordChunks(40_000, 1024)
  const ck = join(dir, 'build')
  const abort = new AbortController()
  let seen = 0
  // Abort while chunks are being evaluated on the pool and written (maxInFlight 4: several in flight).
  async function* slowInputs(): AsyncGenerator<BuildChunk> {
    for (const c of chunks) {
      if (++seen === 8) abort.abort()
      yield c
    }
  }
  await t.rejects(buildTagSetFiles({
    service: SVC, epoch: 9, key, inputs: slowInputs(), pool, shardRecords: 1000, checkpointDir: ck, maxInFlight: 4,
    setPath: join(dir, 'x.vnts'), shardPath: join(dir, 'x.vnsh'), signal: abort.signal,
  }), { name: 'AbortError' })
  const listing = async (): Promise<string[]> => (await readdir(ck)).sort()
  const first = await listing()
  t.ok(first.some((f) => f.endsWith('.run')), `the finished chunks' runs are kept for a resume (${first.length} files)`)
  t.notOk(first.some((f) => f.endsWith('.tmp')), 'no half-written run')
  // The pool answers in order: once a job sent now is done, every chunk that was in flight is too,
  // and (before the fix) would have written its run just after.
  await poolEvaluatePrefixes(pool, key.secretKey, [oprfInput(SVC, 1, ['91350100M000000000'])])
  await new Promise((r) => setTimeout(r, 500))
  t.same(await listing(), first, 'nothing was written after the build threw')
  t.notOk((await readdir(dir)).some((f) => f.startsWith('x.')), 'no set file')
})
