/**
 * bench:he — cost of the hidden-threshold protocol (src/he/threshold.ts) against the raw
 * node-seal cost of the HE operations it performs, measured in the same run.
 *
 * Reference ("raw HE ops" per 128-subject ciphertext, node-seal alone, no protocol code):
 * SEAL loadArray of the query (uncompressed form), 3 batch encodes (step, flood, mask),
 * multiply-plain, encrypt-zero + multiply-plain (re-randomization), add, add-plain,
 * 3 mod-switches, saveArray (uncompressed). The protocol adds: sampling r_j / mask / flood in JS,
 * the pre-SEAL checks, deflate/inflate (node:zlib), the key-cache lookup.
 *
 * Prints medians, subjects/s per core, the consumer's cost, bytes each way, RSS over
 * HE_BENCH_EVALS (default 10,000) evaluations on the worker pool, and last `ratio: raw / total`.
 * Run: npx tsx bench/he.ts
 */
import { randomFillSync } from 'node:crypto'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { createHeContext } from '../src/he/context.js'
import { HeClient, HeProvider, subjectsPerCiphertext } from '../src/he/threshold.js'
import { HeEvaluatorPool } from '../src/he/he-pool.js'
import { checkSealBlob } from '../src/he/serialization.js'
import { GRID_SIZE, gridValues } from '../src/he/grid.js'

// Node 20 does not apply tsx's module hooks inside worker threads, so `npx tsx bench/he.ts` could
// not start the .ts worker of the pool: re-run under the TypeScript loader tap uses, which works
// in workers (type-checking off).
if (import.meta.url.endsWith('.ts') && process.env.VN_BENCH_CHILD !== '1') {
  const r = spawnSync(process.execPath, ['--import=@tapjs/typescript/import', fileURLToPath(import.meta.url)], {
    stdio: 'inherit',
    env: { ...process.env, VN_BENCH_CHILD: '1', TS_NODE_TRANSPILE_ONLY: '1' },
  })
  process.exit(r.status ?? 1)
}

const RUNS = 25
const EVALS = Number(process.env.HE_BENCH_EVALS ?? 10_000)

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s[s.length >> 1] as number
}
function time(f: () => void, runs = RUNS): number {
  f() // warm
  const xs: number[] = []
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now()
    f()
    xs.push(performance.now() - t0)
  }
  return median(xs)
}
const ms = (x: number): string => `${x.toFixed(3)} ms`

const he = await createHeContext()
const client = await HeClient.create(he)
const provider = new HeProvider(he)
const per = subjectsPerCiphertext(he)
const g = gridValues()
const bounds = Array.from({ length: per }, (_, i) => (i * 17) % GRID_SIZE)
const values = Array.from({ length: per }, (_, i) => (g[(i * 5) % GRID_SIZE] as number) + (i % 3) - 1)
const queries = client.encryptBounds(bounds)
const digest = provider.loadKey(client.publicKeyBytes())
console.log(`node-seal ${he.seal.Version}, N = ${he.slotCount}, t = ${he.plainModulus}, grid ${GRID_SIZE}, ${per} subjects per ciphertext`)

// --- provider, whole protocol (one ciphertext = 128 subjects)
let answers: Uint8Array[] = []
const tProvider = time(() => {
  answers = provider.evaluate(digest, queries, values)
})

// --- raw node-seal: the same HE operations alone
const { seal, context, evaluator: ev, encoder } = he
const rawQuery = checkSealBlob(he, queries[0], 'query', 'q') // uncompressed form, checked once
const pkObj = seal.PublicKey()
pkObj.loadArray(context, checkSealBlob(he, client.publicKeyBytes(), 'publicKey', 'pk'))
const enc = seal.Encryptor(context, pkObj)
const rnd = (): Uint32Array => {
  const a = new Uint32Array(he.slotCount)
  randomFillSync(a)
  return a.map((x) => x % he.plainModulus)
}
const [sv, fv, mv] = [rnd(), rnd(), rnd()]
const [ps, pf, pm] = [seal.PlainText(), seal.PlainText(), seal.PlainText()]
const ct = seal.CipherText()
const z = seal.CipherText()
const parts: Record<string, number> = {}
parts.deserialize = time(() => ct.loadArray(context, rawQuery))
parts.encode3 = time(() => {
  encoder.encode(sv, ps)
  encoder.encode(fv, pf)
  encoder.encode(mv, pm)
})
parts.multiplyPlain = time(() => {
  ct.loadArray(context, rawQuery)
  ev.multiplyPlain(ct, ps, ct)
}) - parts.deserialize
parts.rerandomize = time(() => {
  enc.encryptZero(z)
  ev.multiplyPlain(z, pf, z)
  ev.add(ct, z, ct)
})
parts.addPlain = time(() => ev.addPlain(ct, pm, ct))
parts.modSwitch = time(() => {
  ct.loadArray(context, rawQuery)
  while (ct.coeffModulusSize > he.lastLevelPrimes) ev.cipherModSwitchToNext(ct, ct)
}) - parts.deserialize
// Serialization in node-seal's own compressed form (zstd, its default): the protocol instead
// deflates with node:zlib (see src/he/serialization.ts). The uncompressed cost is shown too.
let saved: Uint8Array = new Uint8Array()
parts.serialize = time(() => {
  saved = ct.saveArray(seal.ComprModeType.zstd)
})
const zQuery = ((): Uint8Array => {
  // a seeded query of the same shape in node-seal's default (zstd) serialization
  const kg = seal.KeyGenerator(context)
  const sk = kg.secretKey()
  const pub = kg.createPublicKey()
  const e = seal.Encryptor(context, pub, sk)
  encoder.encode(sv, ps)
  const ser = e.encryptSymmetricSerializable(ps)
  const out = ser.saveArray(seal.ComprModeType.zstd)
  for (const o of [ser, e, pub, sk, kg]) o.delete()
  return out
})()
parts.deserialize = time(() => ct.loadArray(context, zQuery))
const plainSer = time(() => ct.saveArray(seal.ComprModeType.none))
const plainDeser = time(() => ct.loadArray(context, rawQuery))
const tRaw = Object.values(parts).reduce((a, b) => a + b, 0)
const tCompute = tRaw - parts.serialize - parts.deserialize + plainSer + plainDeser
for (const o of [ps, pf, pm, ct, z, enc, pkObj]) o.delete()

// --- consumer
const tEncrypt = time(() => client.encryptBounds(bounds), 10)
const tDecrypt = time(() => client.decryptBits(answers, per), 10)

console.log('\nraw node-seal per ciphertext (128 subjects):')
for (const [k, v] of Object.entries(parts)) console.log(`  ${k.padEnd(14)} ${ms(v)}`)
console.log(`  ${'total'.padEnd(14)} ${ms(tRaw)}  (zstd answer ${saved.length} B)`)
console.log(`  (compute only, uncompressed serialize ${ms(plainSer)} / deserialize ${ms(plainDeser)}: ${ms(tCompute)})`)
console.log('\nprovider (whole protocol) per ciphertext:', ms(tProvider))
console.log('provider per subject:', ms(tProvider / per), ' raw HE per subject:', ms(tRaw / per))
console.log(`subjects/s per core: ${Math.round((per * 1000) / tProvider)}`)
console.log(`consumer per subject: encrypt ${ms(tEncrypt / per)}, decrypt ${ms(tDecrypt / per)}`)
const qBytes = queries.reduce((a, b) => a + b.length, 0)
const aBytes = answers.reduce((a, b) => a + b.length, 0)
console.log(`bytes per subject: consumer -> provider ${Math.round(qBytes / per)} B, provider -> consumer ${Math.round(aBytes / per)} B; public key once ${client.publicKeyBytes().length} B`)

// --- memory over many evaluations on the worker pool (2 workers on this 2-core machine)
const pool = new HeEvaluatorPool(2)
const one = client.encryptBounds([7])
const pk = client.publicKeyBytes()
await Promise.all(Array.from({ length: 20 }, () => pool.evaluate(pk, one, [g[9] as number])))
const m0 = await pool.memoryUsage()
const t0 = performance.now()
let done = 0
const inflight = 4
await Promise.all(
  Array.from({ length: inflight }, async () => {
    while (done < EVALS) {
      done++
      await pool.evaluate(pk, one, [g[9] as number])
    }
  }),
)
const m1 = await pool.memoryUsage()
const secs = (performance.now() - t0) / 1000
await pool.close()
console.log(`\npool (2 workers): ${EVALS} evaluations of one ciphertext in ${secs.toFixed(1)} s = ${(EVALS / secs).toFixed(1)} ciphertexts/s (${Math.round((EVALS * per) / secs)} subjects/s when full)`)
console.log(`RSS before/after ${EVALS} evaluations: ${(m0.rss / 1e6).toFixed(1)} MB -> ${(m1.rss / 1e6).toFixed(1)} MB; external ${(m0.external / 1e6).toFixed(1)} -> ${(m1.external / 1e6).toFixed(1)} MB`)
client.delete()
provider.delete()
console.log(`compute-only ratio (uncompressed reference serialization): ${(tCompute / tProvider).toFixed(3)}`)
console.log(`ratio: ${(tRaw / tProvider).toFixed(3)}`)
