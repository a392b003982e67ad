import t from 'tap'
import { generateKeyPairSync } from 'node:crypto'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ristretto255 } from '@noble/curves/ed25519.js'
import {
  blind,
  blindEvaluateBatch,
  deriveKeyPair,
  evaluate,
  finalizeBatch,
  generateKeyPair,
  MODE_VOPRF,
} from '../../src/crypto/oprf.js'
import { VnError } from '../../src/errors.js'
import {
  buildTagSet,
  deriveEpochKey,
  encodeTagSet,
  oprfInput,
  signTagSet,
  TagSet,
  tagLengthFor,
  tagOf,
  tagSetETag,
  verifyTagSet,
} from '../../src/oprf/tagset.js'
import { createOprfPool } from '../../src/oprf/oprf-pool.js'

type Test = Parameters<Parameters<typeof t.test>[0]>[0]
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

function throwsCode(t: Test, fn: () => unknown, code: string, detail?: string | RegExp): void {
  try {
    fn()
    t.fail(`expected ${code}`)
  } catch (e) {
    t.ok(e instanceof VnError, 'is a VnError')
    t.equal((e as VnError).code, code)
    if (detail !== undefined) t.match((e as VnError).detail ?? '', detail)
  }
}

async function rejectsCode(t: Test, p: Promise<unknown>, code: string): Promise<void> {
  const e = await p.then(() => null, (err: unknown) => err)
  t.ok(e instanceof VnError, 'rejects with a VnError')
  t.equal((e as VnError).code, code)
}

/** n synthetic records, in chunks of `chunk`. */
function records(n: number, from = 0): Uint8Array[] {
  return Array.from({ length: n }, (_, i) => oprfInput('credit.debtor', 1, [`91350100M000${String(from + i).padStart(6, '0')}`]))
}
function* chunks<T>(xs: T[], size: number): Generator<T[]> {
  for (let i = 0; i < xs.length; i += size) yield xs.slice(i, i + size)
}

t.test('oprfInput: known answer and unambiguous framing', async (t) => {
  t.equal(
    hex(oprfInput('svc', 2, ['a', '中'])),
    '0010' + Buffer.from('verinode-oprf-v1').toString('hex') + '0003' + Buffer.from('svc').toString('hex') + '00000002' + '0002' + '0001' + '61' + '0003' + 'e4b8ad',
  )
  const seen = new Set([
    hex(oprfInput('a', 1, ['bc'])),
    hex(oprfInput('a', 1, ['b', 'c'])),
    hex(oprfInput('a', 1, ['bc', ''])),
    hex(oprfInput('ab', 1, ['c'])),
    hex(oprfInput('a', 2, ['bc'])),
  ])
  t.equal(seen.size, 5, 'all distinct')
  throwsCode(t, () => oprfInput('svc', 1, ['\ud800']), 'VN_ERR_OPRF_INPUT', /^canonicalFields\[0\]/)
  throwsCode(t, () => oprfInput('svc', 1, []), 'VN_ERR_OPRF_INPUT', /^canonicalFields/)
  throwsCode(t, () => oprfInput('bad svc', 1, ['x']), 'VN_ERR_OPRF_INPUT', /^service/)
  throwsCode(t, () => oprfInput('svc', -1, ['x']), 'VN_ERR_OPRF_INPUT', /^version/)
  throwsCode(t, () => oprfInput('svc', 1, ['x'.repeat(40000), 'y'.repeat(40000)]), 'VN_ERR_OPRF_INPUT', /65535/)
})

t.test('deriveEpochKey: DeriveKeyPair with the documented info, new key per epoch', async (t) => {
  const seed = new Uint8Array(32).fill(0xa3)
  const k1 = deriveEpochKey(seed, 'credit.debtor', 7)
  const info = Buffer.concat([Buffer.from('0015', 'hex'), Buffer.from('verinode-epoch-key-v1'), Buffer.from('000d', 'hex'), Buffer.from('credit.debtor'), Buffer.from('00000007', 'hex')])
  t.equal(hex(k1.secretKey), hex(deriveKeyPair(seed, info, MODE_VOPRF).secretKey))
  t.equal(hex(ristretto255.Point.BASE.multiply(ristretto255.Point.Fn.fromBytes(k1.secretKey)).toBytes()), hex(k1.publicKey))
  t.not(hex(deriveEpochKey(seed, 'credit.debtor', 8).publicKey), hex(k1.publicKey), 'epoch rotates the key')
  t.not(hex(deriveEpochKey(seed, 'tax.compliance', 7).publicKey), hex(k1.publicKey), 'service separates keys')
  throwsCode(t, () => deriveEpochKey(seed, 'credit.debtor', 2 ** 32), 'VN_ERR_OPRF_INPUT', /^epoch/)
  throwsCode(t, () => deriveEpochKey(new Uint8Array(16), 'credit.debtor', 1), 'VN_ERR_OPRF_KEY', /^seed/)
})

t.test('tagLengthFor follows the false-positive budget', async (t) => {
  t.equal(tagLengthFor(1e6), 6, '10^6 records, 10^5 probes, 10^-3 budget → 48 bits')
  t.ok((1e6 * 1e5) / 2 ** 48 <= 1e-3)
  t.ok((1e6 * 1e5) / 2 ** 40 > 1e-3, '5 bytes would not meet the budget')
  t.equal(tagLengthFor(1e3), 5)
  t.equal(tagLengthFor(0), 4)
  t.equal(tagLengthFor(1e12), 8, 'capped')
  t.equal(tagLengthFor(1e6, 1e5, 1e-9), 8)
})

t.test('build, parse and probe: members found, consumer flow agrees', async (t) => {
  const key = generateKeyPair()
  const recs = records(300)
  const progress: number[] = []
  const r = await buildTagSet({ service: 'credit.debtor', epoch: 3, key, inputs: chunks(recs, 64), onProgress: (p) => progress.push(p.records) })
  t.equal(r.records, 300)
  t.equal(r.count, 300)
  t.equal(r.tagLength, 5)
  t.same(progress, [64, 128, 192, 256, 300])
  const ts = TagSet.parse(r.bytes)
  t.equal(ts.service, 'credit.debtor')
  t.equal(ts.epoch, 3)
  t.equal(ts.count, 300)
  t.equal(hex(ts.publicKey), hex(key.publicKey))
  t.equal(r.bytes.length, 48 + 'credit.debtor'.length + 300 * 5)
  for (const x of recs) t.ok(ts.hasOutput(evaluate(key.secretKey, x)))
  const absent = records(200, 1000)
  t.equal(absent.filter((x) => ts.hasOutput(evaluate(key.secretKey, x))).length, 0, 'non-members absent')
  // the consumer's path: blind, provider evaluates with proof, finalize, probe
  const subjects = [recs[5]!, absent[0]!, recs[299]!]
  const b = blind(subjects)
  const ev = blindEvaluateBatch(key.secretKey, ts.publicKey, b.blindedElements)
  const out = finalizeBatch(subjects, b.blinds, ev.evaluatedElements, b.blindedElements, ts.publicKey, ev.proof)
  t.same(out.map((o) => ts.hasOutput(o)), [true, false, true])
  t.same(ts.has(tagOf(out[0]!, ts.tagLength)), true)
  throwsCode(t, () => ts.has(new Uint8Array(4)), 'VN_ERR_OPRF_INPUT', /^tag/)
  throwsCode(t, () => tagOf(new Uint8Array(32), 6), 'VN_ERR_OPRF_INPUT', /^oprfOutput/)
})

t.test('duplicates collapse, fixed tag length, empty set', async (t) => {
  const key = generateKeyPair()
  const recs = records(10)
  const r = await buildTagSet({ service: 's', epoch: 0, key, inputs: [recs, recs.slice(0, 4)], tagLength: 8 })
  t.equal(r.records, 14)
  t.equal(r.count, 10)
  t.equal(TagSet.parse(r.bytes).tagLength, 8)
  const empty = await buildTagSet({ service: 's', epoch: 0, key, inputs: [] })
  const ts = TagSet.parse(empty.bytes)
  t.equal(ts.count, 0)
  t.equal(ts.hasOutput(evaluate(key.secretKey, recs[0]!)), false)
  await rejectsCode(t, buildTagSet({ service: 's', epoch: 0, key, inputs: [recs], tagLength: 3 }), 'VN_ERR_OPRF_INPUT')
  await rejectsCode(t, buildTagSet({ service: 's', epoch: 0, key, inputs: [[new Uint8Array(70000)]] }), 'VN_ERR_OPRF_INPUT')
  const ac = new AbortController()
  ac.abort()
  const aborted = await buildTagSet({ service: 's', epoch: 0, key, inputs: [recs], signal: ac.signal }).then(() => null, (e: unknown) => e)
  t.ok(aborted instanceof Error, 'abort stops the build')
})

t.test('worker-pool build is byte-identical to the in-thread build', async (t) => {
  const pool = createOprfPool(2)
  t.teardown(() => pool.close())
  const key = generateKeyPair()
  const recs = records(500)
  const a = await buildTagSet({ service: 'credit.debtor', epoch: 1, key, inputs: chunks(recs, 50) })
  async function* gen(): AsyncGenerator<Uint8Array[]> {
    yield* chunks(recs, 37)
  }
  const b = await buildTagSet({ service: 'credit.debtor', epoch: 1, key, inputs: gen(), pool })
  t.equal(hex(b.bytes), hex(a.bytes))
})

t.test('checkpointed builds resume and rebuild the same bytes', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'vn-tagset-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const key = generateKeyPair()
  const recs = records(400)
  const fresh = await buildTagSet({ service: 'credit.debtor', epoch: 9, key, inputs: chunks(recs, 50) })
  function* failing(): Generator<Uint8Array[]> {
    let i = 0
    for (const c of chunks(recs, 50)) {
      if (i++ === 3) throw new Error('enumeration interrupted')
      yield c
    }
  }
  const ck = join(dir, 'ck')
  const err = await buildTagSet({ service: 'credit.debtor', epoch: 9, key, inputs: failing(), checkpointDir: ck }).then(() => null, (e: unknown) => e)
  t.match((err as Error).message, /interrupted/)
  t.equal((await readdir(ck)).filter((f) => f.endsWith('.run')).length, 3, 'three runs on disk')
  const resumed = await buildTagSet({ service: 'credit.debtor', epoch: 9, key, inputs: chunks(recs, 50), checkpointDir: ck, keepCheckpoint: true })
  t.equal(resumed.resumedChunks, 3)
  t.equal(hex(resumed.bytes), hex(fresh.bytes))
  // a chunk whose inputs changed is recomputed, not reused
  const changed = recs.slice()
  changed[0] = records(1, 5000)[0]!
  const r2 = await buildTagSet({ service: 'credit.debtor', epoch: 9, key, inputs: chunks(changed, 50), checkpointDir: ck, keepCheckpoint: true })
  t.equal(r2.resumedChunks, 7)
  t.ok(TagSet.parse(r2.bytes).hasOutput(evaluate(key.secretKey, changed[0]!)))
  // another key (epoch rotation) invalidates every run; success removes the directory
  const other = generateKeyPair()
  const r3 = await buildTagSet({ service: 'credit.debtor', epoch: 10, key: other, inputs: chunks(recs, 50), checkpointDir: ck })
  t.equal(r3.resumedChunks, 0)
  t.ok(TagSet.parse(r3.bytes).hasOutput(evaluate(other.secretKey, recs[7]!)))
  t.equal(await readdir(ck).then(() => 'exists', () => 'gone'), 'gone')
})

t.test('strict parsing: every malformation is VN_ERR_OPRF_TAGSET', async (t) => {
  const key = generateKeyPair()
  const good = (await buildTagSet({ service: 'svc', epoch: 1, key, inputs: [records(20)] })).bytes
  // The tag length follows from the set size (tagLengthFor), so the mutations use it, not a constant.
  const L = TagSet.parse(good).tagLength
  const mut = (f: (b: Uint8Array) => void): Uint8Array => {
    const b = good.slice()
    f(b)
    return b
  }
  const svcEnd = 48 + 3
  const cases: [string, Uint8Array, RegExp][] = [
    ['truncated header', good.subarray(0, 40), /header/],
    ['missing last byte', good.subarray(0, good.length - 1), /length/],
    ['extra byte', Uint8Array.from([...good, 0]), /length/],
    ['bad magic', mut((b) => (b[0] = 0x58)), /magic/],
    ['version 2', mut((b) => (b[4] = 2)), /version/],
    ['mode 0', mut((b) => (b[5] = 0)), /mode/],
    ['tag length 3', mut((b) => (b[6] = 3)), /tag length/],
    ['tag length 9', mut((b) => (b[6] = 9)), /tag length/],
    ['service length 0', mut((b) => (b[7] = 0)), /service id length/],
    ['count too big', mut((b) => (b[15] = 21)), /length/],
    ['identity public key', mut((b) => b.fill(0, 16, 48)), /public key/],
    ['non-canonical public key', mut((b) => b.fill(0xff, 16, 48)), /public key/],
    ['service with a space', mut((b) => (b[49] = 0x20)), /service id malformed/],
    ['unsorted tags', mut((b) => { const t0 = b.slice(svcEnd, svcEnd + L); b.copyWithin(svcEnd, svcEnd + L, svcEnd + 2 * L); b.set(t0, svcEnd + L) }), /ascending/],
    ['duplicate tag', mut((b) => b.copyWithin(svcEnd + L, svcEnd, svcEnd + L)), /ascending/],
  ]
  for (const [name, bytes, detail] of cases) {
    t.test(name, async (t) => throwsCode(t, () => TagSet.parse(bytes), 'VN_ERR_OPRF_TAGSET', detail))
  }
  throwsCode(t, () => encodeTagSet({ service: 'svc', epoch: 1, tagLength: 5, publicKey: key.publicKey }, new Uint8Array(7)), 'VN_ERR_OPRF_INPUT')
})

t.test('signature and ETag', async (t) => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  const key = generateKeyPair()
  const bytes = (await buildTagSet({ service: 'svc', epoch: 2, key, inputs: [records(30)] })).bytes
  const sig = signTagSet(bytes, privateKey)
  t.equal(sig.length, 64)
  const ts = verifyTagSet(bytes, sig, publicKey)
  t.equal(ts.count, 30)
  const flipped = bytes.slice()
  flipped[bytes.length - 1]! ^= 1
  throwsCode(t, () => verifyTagSet(flipped, sig, publicKey), 'VN_ERR_OPRF_TAGSET', /signature/)
  const hdr = bytes.slice()
  hdr[11]! ^= 1 // epoch
  throwsCode(t, () => verifyTagSet(hdr, sig, publicKey), 'VN_ERR_OPRF_TAGSET', /signature/)
  const badSig = sig.slice()
  badSig[0]! ^= 1
  throwsCode(t, () => verifyTagSet(bytes, badSig, publicKey), 'VN_ERR_OPRF_TAGSET', /signature/)
  throwsCode(t, () => verifyTagSet(bytes, sig.subarray(0, 63), publicKey), 'VN_ERR_OPRF_TAGSET', /64 bytes/)
  throwsCode(t, () => verifyTagSet(bytes, sig, generateKeyPairSync('ed25519').publicKey), 'VN_ERR_OPRF_TAGSET', /signature/)
  throwsCode(t, () => signTagSet(bytes, generateKeyPairSync('x25519').privateKey), 'VN_ERR_CONFIG_INVALID')
  const etag = tagSetETag(bytes)
  t.match(etag, /^"vnts-[A-Za-z0-9_-]{43}"$/)
  t.equal(tagSetETag(bytes.slice()), etag)
  t.not(tagSetETag(flipped), etag)
})
