/**
 * The WebAssembly side of SM2 verification (src/crypto/sm2-wasm.ts, src/crypto/wasm/sm2.ts)
 * against @noble/curves' arithmetic on the recommended curve: x(sG + tP) for random and edge-case
 * scalars and keys, the identity, more keys than the table slots, tampered signatures, and a
 * missing module failing with its code.
 */
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { SM2_WASM_PATH, sm2MulAddX } from '../../src/crypto/sm2-wasm.js'
import { generateSm2, sm2p256v1, sm2PrivateKeyFromKeyObject, sm2PublicKeyFromPoint, sm2Sign, sm2Verify } from '../../src/crypto/sm2.js'

const curve = sm2p256v1()
const { n } = curve.params
const be32 = (x: bigint): Buffer => Buffer.from(x.toString(16).padStart(64, '0'), 'hex')
const big = (b: Uint8Array): bigint => BigInt(`0x${Buffer.from(b).toString('hex')}`)
const rand = (): bigint => big(randomBytes(32)) % n

/** dG by noble, once per key: the random cases cycle through 24 keys (one multiplication of four per case) */
const keyPoints = new Map<bigint, ReturnType<typeof curve.G.multiply>>()
function publicPoint(d: bigint): ReturnType<typeof curve.G.multiply> {
  let P = keyPoints.get(d)
  if (P === undefined) keyPoints.set(d, (P = curve.G.multiply(d)))
  return P
}

/** x(sG + tP) by noble, or undefined for the identity (s, t reduced mod n first). */
function reference(d: bigint, s: bigint, t: bigint): bigint | undefined {
  const P = publicPoint(d)
  const sn = s % n
  const tn = t % n
  const sG = sn === 0n ? curve.Point.ZERO : curve.G.multiply(sn)
  const tP = tn === 0n ? curve.Point.ZERO : P.multiply(tn)
  const sum = sG.add(tP)
  return sum.is0() ? undefined : sum.toAffine().x
}

function wasm(d: bigint, s: bigint, t: bigint): bigint | undefined {
  const P = publicPoint(d).toAffine()
  const key = sm2PublicKeyFromPoint(curve, P.x, P.y)
  const x = sm2MulAddX(key.xy, be32(s), be32(t))
  return x === undefined ? undefined : big(x)
}

t.test('the module is built output beside the source', async (t) => {
  t.ok(existsSync(SM2_WASM_PATH), SM2_WASM_PATH)
})

t.test('x(sG + tP) matches noble for random s, t and keys (more keys than table slots)', async (t) => {
  let bad = 0
  const keys = Array.from({ length: 24 }, rand)
  // In runs of 8 cases per key, the keys in turn: a run's key is never among the 16 most recently
  // used (the other 23 came since), so each of the 50 runs builds its key's table afresh in a slot
  // another key held, and its other 7 cases use the table built. (One key per case rebuilt a table
  // for every case, ~25 ms each: 400 of them were most of this file's time.)
  for (let i = 0; i < 400; i++) {
    const d = keys[Math.floor(i / 8) % keys.length] as bigint
    const s = rand()
    const tt = rand()
    if (wasm(d, s, tt) !== reference(d, s, tt)) bad++
  }
  t.equal(bad, 0, '400 random cases over 24 keys agree')
})

t.test('edge cases: identity, doubling, extreme scalars', async (t) => {
  const d = rand()
  const cases: [string, bigint, bigint, bigint][] = [
    ['s = n − 1', d, n - 1n, rand()],
    ['t = n − 1', d, rand(), n - 1n],
    ['s = t = n − 1', d, n - 1n, n - 1n],
    ['s = 1, t = 1', d, 1n, 1n],
    ['P = G, s = t (doubling in the first window)', 1n, 5n, 5n],
    ['P = G, s = t random', 1n, 0x1234567890abcdefn ** 3n % n, 0x1234567890abcdefn ** 3n % n],
    ['P = −G, s = t + 1', n - 1n, 8n, 7n],
    ['P = G, t = n − s + 1: sum is G', 1n, 12345n, n - 12345n + 1n],
    ['d = n − 2', n - 2n, rand(), rand()],
    ['s = 0 (only tP)', d, 0n, rand()],
    ['t = 0 (only sG)', d, rand(), 0n],
    ['digits of 128 and carries: s = 0x80…80', d, BigInt(`0x${'80'.repeat(31)}7f`), BigInt(`0x${'ff'.repeat(16)}`)],
  ]
  for (const [name, dd, s, tt] of cases) {
    const ref = reference(dd, s, tt)
    t.not(ref, undefined, `${name}: not the identity`)
    t.equal(wasm(dd, s, tt), ref, name)
  }
  // sG + tP = O: s = −t·d mod n
  for (const dd of [d, 1n, 2n, n - 2n]) {
    const tt = rand()
    const s = (n - ((tt * dd) % n)) % n
    t.equal(wasm(dd, s, tt), undefined, `s = −t·d: the identity (d ${dd === d ? 'random' : dd})`)
  }
  t.equal(wasm(d, 0n, 0n), undefined, 's = t = 0: the identity')
})

t.test('signatures: valid ones verify, tampered ones and out-of-range ones do not', async (t) => {
  const key = sm2PrivateKeyFromKeyObject(generateSm2().privateKey)
  const msg = Buffer.from('an exchange')
  let tampered = 0
  for (let i = 0; i < 20; i++) {
    const sig = sm2Sign(key, msg)
    t.ok(sm2Verify(key.publicKey, msg, sig), `signature ${i} verifies`)
    const bad = Buffer.from(sig)
    bad[i % 64] = (bad[i % 64] as number) ^ (1 << (i % 8))
    if (!sm2Verify(key.publicKey, msg, bad)) tampered++
  }
  t.equal(tampered, 20, 'every flipped bit fails')
  const sig = Buffer.from(sm2Sign(key, msg))
  const r = big(sig.subarray(0, 32))
  // t = r + s ≡ 0 is refused before the arithmetic
  t.notOk(sm2Verify(key.publicKey, msg, Buffer.concat([be32(r), be32(n - r)])), 't = 0 refused')
  t.notOk(sm2Verify(key.publicKey, msg, Buffer.concat([be32(r), be32(n)])), 's = n refused')
  t.notOk(sm2Verify(key.publicKey, msg, Buffer.concat([be32(r), be32(n - 1n)])), 's = n − 1, wrong')
  // a signature whose sG + tP is the identity: s = −t·d, with t = r + s, so s(1 + d) = −r·d
  const d = key.d
  const s = (((n - ((r * d) % n)) % n) * key.inv1d) % n
  t.equal(wasm(d, s, (r + s) % n), undefined, 'the crafted (r, s) sums to the identity')
  t.notOk(sm2Verify(key.publicKey, msg, Buffer.concat([be32(r), be32(s)])), 'and is refused')
})

t.test('a missing module fails with VN_ERR_SM_WASM, not a silent fallback', async (t) => {
  // a copy of the loader (and the errors module it imports) in a folder with no wasm/sm2.wasm
  const dir = t.testdir({ crypto: {} })
  copyFileSync(new URL('../../src/errors.ts', import.meta.url), join(dir, 'errors.ts'))
  copyFileSync(new URL('../../src/crypto/sm2-wasm.ts', import.meta.url), join(dir, 'crypto', 'sm2-wasm.ts'))
  const copy = (await import(pathToFileURL(join(dir, 'crypto', 'sm2-wasm.ts')).href)) as typeof import('../../src/crypto/sm2-wasm.js')
  t.notOk(existsSync(copy.SM2_WASM_PATH), 'no module beside the copy')
  t.throws(() => copy.sm2MulAddX(Buffer.alloc(64), Buffer.alloc(32), Buffer.alloc(32)), { code: 'VN_ERR_SM_WASM', message: /sm2\.wasm could not be loaded .*npm run build:wasm/ })
  // and a corrupt one
  mkdirSync(join(dir, 'crypto', 'wasm'))
  writeFileSync(join(dir, 'crypto', 'wasm', 'sm2.wasm'), 'not wasm')
  t.throws(() => copy.sm2MulAddX(Buffer.alloc(64), Buffer.alloc(32), Buffer.alloc(32)), { code: 'VN_ERR_SM_WASM' }, 'a corrupt module too')
})
