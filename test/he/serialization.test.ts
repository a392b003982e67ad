import t from 'tap'
import { deflateSync } from 'node:zlib'
import { createHeContext, HE_PARAMS } from '../../src/he/context.js'
import { checkSealBlob, compressSealBlob, loadCiphertext, loadPublicKey, maxWireBytes, publicKeyDigest } from '../../src/he/serialization.js'
import { HeClient, HeProvider } from '../../src/he/threshold.js'
import { gridValues } from '../../src/he/grid.js'
import { VnError } from '../../src/errors.js'

const he = await createHeContext()
const client = await HeClient.create(he)
const provider = new HeProvider(he)
t.teardown(() => {
  client.delete()
  provider.delete()
})
const g = gridValues()
const query = client.encryptBounds([3])[0] as Uint8Array
const pk = client.publicKeyBytes()
const answer = provider.evaluate(pk, [query], [g[4] as number])[0] as Uint8Array

function codeOf(f: () => unknown): string | undefined {
  try {
    f()
  } catch (e) {
    return e instanceof VnError ? e.code : `not a VnError: ${String(e)}`
  }
  return undefined
}
const rejectQuery = (b: unknown): string | undefined => codeOf(() => loadCiphertext(he, b, 'query', 'queries[0]').delete())
const rejectKey = (b: unknown): string | undefined => codeOf(() => loadPublicKey(he, b).delete())
const copy = (b: Uint8Array): Uint8Array => Uint8Array.from(b)
const setSize = (b: Uint8Array): Uint8Array => {
  new DataView(b.buffer, b.byteOffset).setBigUint64(8, BigInt(b.length), true)
  return b
}
/** The module still evaluates correctly. */
const stillWorks = (): boolean => {
  const q = client.encryptBounds([2, 3])
  return client.decryptBits(provider.evaluate(pk, q, [g[2] as number, g[2] as number]), 2).join() === 'true,false'
}

t.test('known answers: pinned parameter set and SEAL parms_id of each level', async (t) => {
  t.equal(HE_PARAMS.id, 'bfv-n8192-t1032193-q218-g64')
  t.same(Array.from(he.firstParmsId), [2571032003030983094n, 10425350320885603185n, 15519718634516051623n, 15334268474754619231n])
  t.same(Array.from(he.lastParmsId), [10041269915428628269n, 13610403400673451167n, 7535982098893035402n, 13258674271475198081n])
  t.same(Array.from(he.keyParmsId), [18009024757693794156n, 5051642914467908705n, 9864123846427917710n, 8502430926151354552n])
  t.same([he.firstLevelPrimes, he.lastLevelPrimes, he.keyLevelPrimes], [4, 1, 5])
})

t.test('wire form: SEAL header, zlib, seeded query and key, sizes', async (t) => {
  for (const [b, name] of [[query, 'query'], [answer, 'answer'], [pk, 'key']] as const) {
    const dv = new DataView(b.buffer, b.byteOffset)
    t.equal(dv.getUint16(0, true), 0xa15e, `${name} magic`)
    t.same([b[2], b[3], b[4], b[5]], [16, 4, 1, 1], `${name} header size, SEAL 4.1, zlib`)
    t.equal(dv.getBigUint64(8, true), BigInt(b.length), `${name} declared size`)
  }
  t.ok(query.length < 230_000 && query.length > 200_000, `seeded query ${query.length} B`)
  t.ok(answer.length < 110_000, `answer ${answer.length} B`)
  t.ok(pk.length < 280_000, `seeded key ${pk.length} B`)
  t.equal(checkSealBlob(he, query, 'query', 'q').length, 113 + 8192 * 4 * 8 + 81)
  t.equal(checkSealBlob(he, answer, 'result', 'a').length, 113 + 2 * 8192 * 8)
  t.equal(publicKeyDigest(pk), client.publicKeyDigest())
  t.match(publicKeyDigest(pk), /^[0-9a-f]{64}$/)
})

t.test('uncompressed (mode 0) is accepted too', async (t) => {
  const raw = checkSealBlob(he, query, 'query', 'q')
  const ct = loadCiphertext(he, raw, 'query', 'q')
  t.equal(ct.coeffModulusSize, 4)
  ct.delete()
  t.equal(compressSealBlob(raw).length, query.length, 'recompresses to the same form')
})

t.test('header tampering is rejected before SEAL', async (t) => {
  const cases: [string, (b: Uint8Array) => Uint8Array][] = [
    ['magic', (b) => ((b[0] = 0x5f), b)],
    ['header size', (b) => ((b[2] = 0x11), b)],
    ['major version', (b) => ((b[3] = 3), b)],
    ['minor version', (b) => ((b[4] = 0), b)],
    ['zstd mode', (b) => ((b[5] = 2), b)],
    ['unknown mode', (b) => ((b[5] = 7), b)],
    ['reserved', (b) => ((b[6] = 1), b)],
    ['declared size', (b) => (new DataView(b.buffer, b.byteOffset).setBigUint64(8, BigInt(b.length + 1), true), b)],
    ['truncated by one', (b) => b.subarray(0, b.length - 1)],
    ['truncated to a header', (b) => b.subarray(0, 16)],
    ['shorter than a header', (b) => b.subarray(0, 10)],
    ['empty', () => new Uint8Array(0)],
    ['oversized', () => new Uint8Array(maxWireBytes(he, 'query') + 1)],
    ['trailing byte', (b) => setSize(Uint8Array.from([...b, 0]))],
    ['flipped body byte', (b) => ((b[5000] = (b[5000] as number) ^ 1), b)],
    ['flipped last byte (adler32)', (b) => ((b[b.length - 1] = (b[b.length - 1] as number) ^ 0x80), b)],
  ]
  for (const [name, f] of cases) t.equal(rejectQuery(f(copy(query))), 'VN_ERR_HE_CIPHERTEXT', name)
  t.equal(rejectQuery('not bytes'), 'VN_ERR_HE_CIPHERTEXT', 'string')
  t.equal(rejectQuery(undefined), 'VN_ERR_HE_CIPHERTEXT', 'missing')
  t.ok(stillWorks())
})

t.test('decompression bomb is cut off at the maximum size', async (t) => {
  const body = deflateSync(new Uint8Array(50_000_000)) // 50 MB of zeros in ~50 kB
  const b = new Uint8Array(16 + body.length)
  b.set(query.subarray(0, 16))
  b.set(body, 16)
  t.ok(b.length < maxWireBytes(he, 'query'))
  t.equal(rejectQuery(setSize(b)), 'VN_ERR_HE_CIPHERTEXT')
})


t.test('another parameter set (other t, other N) is refused', async (t) => {
  const seal = he.seal
  const build = (n: number, tBits: number) => {
    const parms = seal.EncryptionParameters(seal.SchemeType.bfv)
    parms.setPolyModulusDegree(n)
    const cm = seal.CoeffModulus.BFVDefault(n, seal.SecurityLevel.tc128)
    const pm = seal.PlainModulus.Batching(n, tBits)
    parms.setCoeffModulus(cm)
    parms.setPlainModulus(pm)
    const ctx = seal.Context(parms, true, seal.SecurityLevel.tc128)
    const kg = seal.KeyGenerator(ctx)
    const sk = kg.secretKey()
    const pub = kg.createPublicKey()
    const enc = seal.Encryptor(ctx, pub, sk)
    const be = seal.BatchEncoder(ctx)
    const plain = seal.PlainText()
    be.encode(new Uint32Array(n), plain)
    const ser = enc.encryptSymmetricSerializable(plain)
    const pkSer = kg.createPublicKeySerializable()
    const out = {
      ct: compressSealBlob(ser.saveArray(seal.ComprModeType.none)),
      pk: compressSealBlob(pkSer.saveArray(seal.ComprModeType.none)),
    }
    for (const o of [ser, pkSer, plain, be, enc, pub, sk, kg, ctx, pm, cm, parms]) o.delete()
    return out
  }
  const otherT = build(8192, 17)
  t.equal(otherT.ct.length > 200_000, true, 'same shape as ours')
  t.throws(() => checkSealBlob(he, otherT.ct, 'query', 'q'), /parms_id/, 'other t: caught by parms_id')
  t.equal(rejectQuery(otherT.ct), 'VN_ERR_HE_CIPHERTEXT')
  t.equal(rejectKey(otherT.pk), 'VN_ERR_HE_KEY')
  t.equal(codeOf(() => provider.evaluate(otherT.pk, [query], [1])), 'VN_ERR_HE_KEY', 'provider refuses the key')
  const otherN = build(4096, 17)
  t.equal(rejectQuery(otherN.ct), 'VN_ERR_HE_CIPHERTEXT', 'N = 4096')
  t.equal(rejectKey(otherN.pk), 'VN_ERR_HE_KEY', 'N = 4096 key')
  t.ok(stillWorks())
})

t.test('public keys must be seeded and well-formed', async (t) => {
  const full = he.seal.PublicKey()
  const loaded = loadPublicKey(he, pk)
  full.copy(loaded)
  loaded.delete()
  const unseeded = compressSealBlob(full.saveArray(he.seal.ComprModeType.none))
  full.delete()
  t.equal(rejectKey(unseeded), 'VN_ERR_HE_KEY', 'unseeded key')
  t.equal(rejectKey(pk.subarray(0, pk.length - 1)), 'VN_ERR_HE_KEY', 'truncated key')
  const raw = Uint8Array.from(checkSealBlob(he, pk, 'publicKey', 'pk'))
  raw[raw.length - 65] = 9 // prng type of the seed trailer
  t.equal(rejectKey(raw), 'VN_ERR_HE_KEY', 'bad seed trailer')
  t.equal(rejectKey(new Uint8Array(maxWireBytes(he, 'publicKey') + 1)), 'VN_ERR_HE_KEY', 'oversized key')
})

t.test('metadata that passes the header but not SEAL is caught inside try/catch, many times over', async (t) => {
  const raw = Uint8Array.from(checkSealBlob(he, query, 'query', 'q'))
  raw.fill(0xff, 113, 121) // first coefficient >= q_0: SEAL's is_valid_for refuses it
  t.doesNotThrow(() => checkSealBlob(he, raw, 'query', 'q'), 'passes the pre-checks')
  let codes = 0
  for (let i = 0; i < 100; i++) if (rejectQuery(raw) === 'VN_ERR_HE_CIPHERTEXT') codes++
  t.equal(codes, 100)
  const meta: [string, number, number][] = [['ntt flag', 48, 1], ['size', 49, 3], ['N', 58, 0x10], ['primes', 65, 3], ['scale', 80, 0x40], ['correction', 81, 2]]
  for (const [name, at, val] of meta) {
    const b = Uint8Array.from(checkSealBlob(he, query, 'query', 'q'))
    b[at] = val
    t.equal(rejectQuery(b), 'VN_ERR_HE_CIPHERTEXT', name)
  }
  t.ok(stillWorks(), 'module still works after 100 SEAL exceptions')
})

t.test('wrong level and wrong kind are rejected by parms_id and metadata', async (t) => {
  t.equal(rejectQuery(answer), 'VN_ERR_HE_CIPHERTEXT', 'answer (last level) as a query')
  t.equal(codeOf(() => loadCiphertext(he, query, 'result', 'a').delete()), 'VN_ERR_HE_CIPHERTEXT', 'query as an answer')
  t.equal(rejectQuery(pk), 'VN_ERR_HE_CIPHERTEXT', 'key as a query')
  t.equal(rejectKey(query), 'VN_ERR_HE_KEY', 'query as a key')
  const b = Uint8Array.from(checkSealBlob(he, query, 'query', 'q'))
  b[16] = (b[16] as number) ^ 1
  t.throws(() => checkSealBlob(he, b, 'query', 'q'), /parms_id/, 'one bit of parms_id')
})

t.test('queries must be seeded; answers must not be', async (t) => {
  const ct = loadCiphertext(he, query, 'query', 'q')
  const unseeded = compressSealBlob(ct.saveArray(he.seal.ComprModeType.none))
  ct.delete()
  t.equal(rejectQuery(unseeded), 'VN_ERR_HE_CIPHERTEXT', 'unseeded query (twice the size)')
  t.equal(maxWireBytes(he, 'query'), 262665)
  t.equal(maxWireBytes(he, 'result'), 131381)
  t.equal(maxWireBytes(he, 'publicKey'), 328266)
})
