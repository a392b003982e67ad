import t from 'tap'
import { readFileSync } from 'node:fs'
import { ristretto255, ristretto255_oprf } from '@noble/curves/ed25519.js'
import { expand_message_xmd } from '@noble/curves/abstract/hash-to-curve.js'
import { sha512 } from '@noble/hashes/sha2.js'
import {
  blind,
  blindEvaluate,
  blindEvaluateBatch,
  deriveKeyPair,
  deserializeElement,
  evaluate,
  evaluateMany,
  expandMessageXmd,
  finalize,
  finalizeBatch,
  generateKeyPair,
  MODE_OPRF,
  MODE_VOPRF,
} from '../../src/crypto/oprf.js'
import { VnError } from '../../src/errors.js'

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'))
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

interface Vec {
  input: string[]
  blind: string[]
  blindedElement: string[]
  evaluationElement: string[]
  output: string[]
  proof?: string
  proofRandomScalar?: string
}
const all = JSON.parse(readFileSync(new URL('../vectors/rfc9497-ristretto255-sha512-all.json', import.meta.url), 'utf8')) as {
  seed: string
  keyInfo: string
  oprf: { skSm: string; vectors: Vec[] }
  voprf: { skSm: string; pkSm: string; vectors: Vec[] }
}
const shared = JSON.parse(readFileSync(new URL('../vectors/rfc9497-ristretto255-sha512.json', import.meta.url), 'utf8')) as {
  seed: string
  keyInfo: string
  skSm: string
  vectors: { input: string; output: string }[]
}

type Test = Parameters<Parameters<typeof t.test>[0]>[0]

/** Assert that fn throws a VnError with the given code (and optionally a detail pattern). */
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

t.test('expand_message_xmd(SHA-512) agrees with @noble/curves', async (t) => {
  const dst = new TextEncoder().encode('HashToGroup-OPRFV1-\x01-ristretto255-SHA512')
  for (const len of [32, 64, 100, 128, 255]) {
    for (const msg of [new Uint8Array(0), hex('00'), new Uint8Array(300).fill(7)]) {
      t.equal(toHex(expandMessageXmd(msg, dst, len)), toHex(expand_message_xmd(msg, dst, len, sha512)), `len ${len}, msg ${msg.length}`)
    }
  }
})

t.test('DeriveKeyPair matches RFC 9497 A.1.1 and A.1.2', async (t) => {
  const seed = hex(all.seed)
  const info = hex(all.keyInfo)
  t.equal(toHex(deriveKeyPair(seed, info, MODE_OPRF).secretKey), all.oprf.skSm)
  t.equal(shared.skSm, all.oprf.skSm, 'shared vector file agrees')
  const v = deriveKeyPair(seed, info, MODE_VOPRF)
  t.equal(toHex(v.secretKey), all.voprf.skSm)
  t.equal(toHex(v.publicKey), all.voprf.pkSm)
})

t.test('OPRF mode (A.1.1): blind, blindEvaluate, finalize, evaluate', async (t) => {
  const sk = hex(all.oprf.skSm)
  for (const v of all.oprf.vectors) {
    const inputs = v.input.map(hex)
    const b = blind(inputs, { mode: MODE_OPRF, blinds: v.blind.map(hex) })
    t.same(b.blindedElements.map(toHex), v.blindedElement)
    const ev = blindEvaluate(sk, b.blindedElements)
    t.same(ev.map(toHex), v.evaluationElement)
    t.same(finalize(inputs, b.blinds, ev).map(toHex), v.output)
    t.same(evaluateMany(sk, inputs, MODE_OPRF).map(toHex), v.output)
  }
  for (const v of shared.vectors) t.equal(toHex(evaluate(sk, hex(v.input), MODE_OPRF)), v.output, 'shared vector file')
})

t.test('VOPRF mode (A.1.2) including the batch-of-2 proof', async (t) => {
  const sk = hex(all.voprf.skSm)
  const pk = hex(all.voprf.pkSm)
  t.equal(all.voprf.vectors.length, 3)
  for (const v of all.voprf.vectors) {
    const inputs = v.input.map(hex)
    const b = blind(inputs, { blinds: v.blind.map(hex) })
    t.same(b.blindedElements.map(toHex), v.blindedElement)
    const r = blindEvaluateBatch(sk, pk, b.blindedElements, { proofRandomScalar: hex(v.proofRandomScalar as string) })
    t.same(r.evaluatedElements.map(toHex), v.evaluationElement)
    t.equal(toHex(r.proof), v.proof, `proof for batch of ${inputs.length}`)
    const out = finalizeBatch(inputs, b.blinds, r.evaluatedElements, b.blindedElements, pk, r.proof)
    t.same(out.map(toHex), v.output)
    t.same(inputs.map((x) => toHex(evaluate(sk, x))), v.output, 'Evaluate gives the same output')
  }
})

t.test('byte-identical to @noble/curves ristretto255_oprf on random keys and inputs', async (t) => {
  const noble = ristretto255_oprf.voprf
  const nobleEvaluate = (noble as unknown as { evaluate: (sk: Uint8Array, x: Uint8Array) => Uint8Array }).evaluate
  const nobleEvaluate0 = (ristretto255_oprf.oprf as unknown as { evaluate: (sk: Uint8Array, x: Uint8Array) => Uint8Array }).evaluate
  const keys = generateKeyPair()
  t.equal(toHex(ristretto255.Point.BASE.multiply(ristretto255.Point.Fn.fromBytes(keys.secretKey)).toBytes()), toHex(keys.publicKey), 'pk = sk·G')
  const inputs = Array.from({ length: 12 }, (_, i) => new TextEncoder().encode(`subject-${i}-${'x'.repeat(i * 7)}`))
  // noble's blinded elements through our server, and our proof through noble's client
  const nb = inputs.map((x) => noble.blind(x))
  const ours = blindEvaluateBatch(keys.secretKey, keys.publicKey, nb.map((b) => b.blinded))
  t.same(ours.evaluatedElements.map(toHex), nb.map((b) => toHex(noble.blindEvaluate(keys.secretKey, keys.publicKey, b.blinded).evaluated)))
  const nOut = noble.finalizeBatch(
    inputs.map((input, i) => ({ input, blind: nb[i]!.blind, evaluated: ours.evaluatedElements[i]!, blinded: nb[i]!.blinded })),
    keys.publicKey,
    ours.proof,
  )
  t.same(nOut.map(toHex), inputs.map((x) => toHex(nobleEvaluate(keys.secretKey, x))))
  // our blinds through noble's server, and noble's proof through our client
  const b = blind(inputs)
  const nr = noble.blindEvaluateBatch(keys.secretKey, keys.publicKey, b.blindedElements)
  const out = finalizeBatch(inputs, b.blinds, nr.evaluated, b.blindedElements, keys.publicKey, nr.proof)
  t.same(out.map(toHex), nOut.map(toHex))
  t.same(evaluateMany(keys.secretKey, inputs).map(toHex), nOut.map(toHex), 'Evaluate agrees')
  t.equal(toHex(evaluate(keys.secretKey, inputs[0]!, MODE_OPRF)), toHex(nobleEvaluate0(keys.secretKey, inputs[0]!)), 'mode 0 agrees')
  t.not(toHex(evaluate(keys.secretKey, inputs[0]!, MODE_OPRF)), toHex(evaluate(keys.secretKey, inputs[0]!, MODE_VOPRF)), 'modes are domain-separated')
})

t.test('proofs use fresh randomness and both verify', async (t) => {
  const keys = generateKeyPair()
  const inputs = [hex('01'), hex('02'), hex('03')]
  const b = blind(inputs)
  const r1 = blindEvaluateBatch(keys.secretKey, keys.publicKey, b.blindedElements)
  const r2 = blindEvaluateBatch(keys.secretKey, keys.publicKey, b.blindedElements)
  t.not(toHex(r1.proof), toHex(r2.proof))
  t.same(
    finalizeBatch(inputs, b.blinds, r1.evaluatedElements, b.blindedElements, keys.publicKey, r1.proof).map(toHex),
    finalizeBatch(inputs, b.blinds, r2.evaluatedElements, b.blindedElements, keys.publicKey, r2.proof).map(toHex),
  )
  t.not(toHex(generateKeyPair().secretKey), toHex(keys.secretKey))
})

t.test('tampering is rejected with VN_ERR_OPRF_PROOF', async (t) => {
  const v = all.voprf.vectors[2]!
  const inputs = v.input.map(hex)
  const blinds = v.blind.map(hex)
  const C = v.blindedElement.map(hex)
  const D = v.evaluationElement.map(hex)
  const pk = hex(all.voprf.pkSm)
  const proof = hex(v.proof as string)
  t.same(finalizeBatch(inputs, blinds, D, C, pk, proof).map(toHex), v.output, 'untampered verifies')
  for (const i of [0, 31, 32, 63]) {
    const p = proof.slice()
    p[i]! ^= 0x01
    throwsCode(t, () => finalizeBatch(inputs, blinds, D, C, pk, p), 'VN_ERR_OPRF_PROOF')
  }
  // evaluated elements swapped: each is valid, the batch is not what was proved
  throwsCode(t, () => finalizeBatch(inputs, blinds, [D[1]!, D[0]!], C, pk, proof), 'VN_ERR_OPRF_PROOF')
  // an evaluation under another key
  const other = generateKeyPair()
  const forged = blindEvaluate(other.secretKey, C)
  throwsCode(t, () => finalizeBatch(inputs, blinds, forged, C, pk, proof), 'VN_ERR_OPRF_PROOF')
  // a valid proof from another key, checked against the published key
  const r = blindEvaluateBatch(other.secretKey, other.publicKey, C)
  throwsCode(t, () => finalizeBatch(inputs, blinds, r.evaluatedElements, C, pk, r.proof), 'VN_ERR_OPRF_PROOF')
  // wrong length and non-canonical scalars (c = L)
  throwsCode(t, () => finalizeBatch(inputs, blinds, D, C, pk, proof.subarray(0, 63)), 'VN_ERR_OPRF_PROOF')
  const big = proof.slice()
  big.set(hex('edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010'), 0)
  throwsCode(t, () => finalizeBatch(inputs, blinds, D, C, pk, big), 'VN_ERR_OPRF_PROOF', 'canonical')
})

// RFC 9496 appendix A.2 style bad encodings, plus shape errors.
const BAD: [string, Uint8Array, string][] = [
  ['31 bytes', new Uint8Array(31).fill(1), 'expected 32 bytes'],
  ['33 bytes', new Uint8Array(33).fill(1), 'expected 32 bytes'],
  ['identity', new Uint8Array(32), 'identity'],
  ['non-canonical field element (p)', hex('edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f'), 'not a canonical'],
  ['non-canonical field element (2^255-1)', hex('ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f'), 'not a canonical'],
  ['negative field element', hex('0100000000000000000000000000000000000000000000000000000000000000'), 'not a canonical'],
  ['non-square x^2', hex('26948d35ca62e643e26a83177332e6b6afeb9d08e4268b650f1f5bbd8d81d371'), 'not a canonical'],
  ['negative xy', hex('3eb858e78f5a7254d8c9731174a94f76755fd3941c0ac93735c07ba14579630e'), 'not a canonical'],
]

t.test('bad elements: the reference implementation rejects them too', async (t) => {
  for (const [name, bytes] of BAD) {
    let rejected = false
    try {
      rejected = ristretto255.Point.fromBytes(bytes).is0()
    } catch {
      rejected = true
    }
    t.ok(rejected, name)
  }
})

t.test('bad elements give VN_ERR_OPRF_POINT naming the index', async (t) => {
  const keys = generateKeyPair()
  const good = blind([hex('01'), hex('02'), hex('03'), hex('04')])
  for (const [name, bytes, detail] of BAD) {
    const els = good.blindedElements.slice()
    els[3] = bytes
    throwsCode(t, () => blindEvaluate(keys.secretKey, els), 'VN_ERR_OPRF_POINT', new RegExp(`^blindedElements\\[3\\]: ${detail}`))
    throwsCode(t, () => blindEvaluateBatch(keys.secretKey, keys.publicKey, els), 'VN_ERR_OPRF_POINT', /^blindedElements\[3\]/)
    throwsCode(t, () => deserializeElement(bytes, 'x'), 'VN_ERR_OPRF_POINT', name.includes('bytes') ? 'expected 32' : /./)
    throwsCode(t, () => blindEvaluateBatch(keys.secretKey, bytes, good.blindedElements), 'VN_ERR_OPRF_POINT', /^publicKey/)
    const r = blindEvaluateBatch(keys.secretKey, keys.publicKey, good.blindedElements)
    const ev = r.evaluatedElements.slice()
    ev[1] = bytes
    const inputs = [hex('01'), hex('02'), hex('03'), hex('04')]
    throwsCode(t, () => finalizeBatch(inputs, good.blinds, ev, good.blindedElements, keys.publicKey, r.proof), 'VN_ERR_OPRF_POINT', /^evaluatedElements\[1\]/)
    throwsCode(t, () => finalize(inputs, good.blinds, ev), 'VN_ERR_OPRF_POINT', /^evaluatedElements\[1\]/)
    throwsCode(t, () => finalizeBatch(inputs, good.blinds, r.evaluatedElements, good.blindedElements, bytes, r.proof), 'VN_ERR_OPRF_POINT', /^publicKey/)
  }
  throwsCode(t, () => blindEvaluate(keys.secretKey, ['not bytes' as unknown as Uint8Array]), 'VN_ERR_OPRF_POINT', /^blindedElements\[0\]: expected bytes/)
})

t.test('batch shape and size limits', async (t) => {
  const keys = generateKeyPair()
  const one = blind([hex('01')]).blindedElements[0]!
  throwsCode(t, () => blindEvaluateBatch(keys.secretKey, keys.publicKey, []), 'VN_ERR_OPRF_INPUT', 'empty')
  throwsCode(t, () => blindEvaluateBatch(keys.secretKey, keys.publicKey, [one, one, one], { maxBatch: 2 }), 'VN_ERR_REQ_BATCH_TOO_LARGE', 'at most 2')
  throwsCode(t, () => blindEvaluate(keys.secretKey, new Array(4097).fill(one)), 'VN_ERR_REQ_BATCH_TOO_LARGE', 'at most 4096')
  throwsCode(t, () => blind(new Array(70000).fill(hex('01')), { maxBatch: 1e9 }), 'VN_ERR_REQ_BATCH_TOO_LARGE', 'at most 65535')
  throwsCode(t, () => blindEvaluateBatch(keys.secretKey, keys.publicKey, 'x' as unknown as Uint8Array[]), 'VN_ERR_OPRF_INPUT', 'array')
  const b = blind([hex('01'), hex('02')])
  const r = blindEvaluateBatch(keys.secretKey, keys.publicKey, b.blindedElements)
  throwsCode(t, () => finalizeBatch([hex('01')], b.blinds, r.evaluatedElements, b.blindedElements, keys.publicKey, r.proof), 'VN_ERR_OPRF_INPUT', /^inputs: 1 entries/)
  throwsCode(t, () => finalizeBatch([hex('01'), hex('02')], b.blinds, r.evaluatedElements, b.blindedElements.slice(0, 1), keys.publicKey, r.proof), 'VN_ERR_OPRF_INPUT', /^blindedElements/)
  throwsCode(t, () => blind([hex('01')], { blinds: [new Uint8Array(32)] }), 'VN_ERR_OPRF_INPUT', /^blinds\[0\]/)
  throwsCode(t, () => finalize([hex('01'), hex('02')], [b.blinds[0]!, new Uint8Array(32).fill(0xff)], r.evaluatedElements), 'VN_ERR_OPRF_INPUT', /^blinds\[1\]/)
  throwsCode(t, () => blind([new Uint8Array(65536)]), 'VN_ERR_OPRF_INPUT', /^inputs\[0\]: longer/)
  throwsCode(t, () => evaluate(keys.secretKey, new Uint8Array(65536)), 'VN_ERR_OPRF_INPUT', /^inputs\[0\]/)
  throwsCode(t, () => blind([hex('01')], { mode: 2 as 0 }), 'VN_ERR_OPRF_INPUT', /^mode/)
})

t.test('key and seed errors', async (t) => {
  const info = hex(all.keyInfo)
  throwsCode(t, () => deriveKeyPair(new Uint8Array(31), info), 'VN_ERR_OPRF_KEY', /^seed/)
  throwsCode(t, () => deriveKeyPair(new Uint8Array(32), new Uint8Array(65536)), 'VN_ERR_OPRF_KEY', /^info/)
  const one = blind([hex('01')]).blindedElements
  throwsCode(t, () => blindEvaluate(new Uint8Array(32), one), 'VN_ERR_OPRF_KEY', /^secretKey/)
  throwsCode(t, () => blindEvaluate(new Uint8Array(31).fill(1), one), 'VN_ERR_OPRF_KEY', /^secretKey/)
  throwsCode(t, () => evaluate(new Uint8Array(32).fill(0xff), hex('01')), 'VN_ERR_OPRF_KEY', /^secretKey/)
  // error details never echo key material
  try {
    evaluate(new Uint8Array(32).fill(0xff), hex('01'))
  } catch (e) {
    t.notMatch((e as Error).message, /ffff/)
  }
})

t.test('the split single-element check decides and outputs exactly as finalizeBatch', async (t) => {
  const { planSingleProof, offloadSingleProof, finishSingleProof } = await import('../../src/crypto/oprf.js')
  const split = (input: Uint8Array, bl: Uint8Array, C: Uint8Array, D: Uint8Array, pk: Uint8Array, proof: Uint8Array): string => {
    try {
      const plan = planSingleProof(pk, C, D, proof)
      const part = offloadSingleProof(plan, input, bl)
      return toHex(finishSingleProof(plan).check(part))
    } catch (e) {
      return (e as VnError).code
    }
  }
  const whole = (input: Uint8Array, bl: Uint8Array, C: Uint8Array, D: Uint8Array, pk: Uint8Array, proof: Uint8Array): string => {
    try {
      return toHex(finalizeBatch([input], [bl], [D], [C], pk, proof)[0] as Uint8Array)
    } catch (e) {
      return (e as VnError).code
    }
  }
  // The RFC vector with one element.
  const v = all.voprf.vectors.find((x) => x.input.length === 1)!
  const C0 = hex(v.blindedElement[0]!)
  const D0 = hex(v.evaluationElement[0]!)
  t.equal(split(hex(v.input[0]!), hex(v.blind[0]!), C0, D0, hex(all.voprf.pkSm), hex(v.proof as string)), v.output[0], 'RFC 9497 A.1.2 vector')
  // Random keys and inputs, then every kind of tampering: the same decision and code each time.
  const other = generateKeyPair()
  let compared = 0
  const differ: string[] = []
  for (let i = 0; i < 12; i++) {
    const key = generateKeyPair()
    const input = new TextEncoder().encode(`subject ${i}`)
    const b = blind([input])
    const C = b.blindedElements[0] as Uint8Array
    const bl = b.blinds[0] as Uint8Array
    const r = blindEvaluateBatch(key.secretKey, key.publicKey, [C])
    const D = r.evaluatedElements[0] as Uint8Array
    const flip = (p: Uint8Array, at: number): Uint8Array => {
      const q = p.slice()
      q[at] = (q[at] as number) ^ 1
      return q
    }
    const forged = blindEvaluateBatch(other.secretKey, other.publicKey, [C])
    const cases: [string, Uint8Array, Uint8Array, Uint8Array, Uint8Array][] = [
      ['valid', C, D, key.publicKey, r.proof],
      ['c flipped', C, D, key.publicKey, flip(r.proof, i % 32)],
      ['s flipped', C, D, key.publicKey, flip(r.proof, 32 + (i % 32))],
      ['evaluated under another key', C, forged.evaluatedElements[0] as Uint8Array, key.publicKey, r.proof],
      ['another key\'s valid proof', C, forged.evaluatedElements[0] as Uint8Array, key.publicKey, forged.proof],
      ['wrong public key', C, D, other.publicKey, r.proof],
      ['short proof', C, D, key.publicKey, r.proof.subarray(0, 63)],
      ['c = L', C, D, key.publicKey, Uint8Array.from([...hex('edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010'), ...r.proof.subarray(32)])],
      ['identity element', C, new Uint8Array(32), key.publicKey, r.proof],
    ]
    for (const [name, c, d, pk, proof] of cases) {
      const a = split(input, bl, c, d, pk, proof)
      const w = whole(input, bl, c, d, pk, proof)
      compared++
      if (a !== w) differ.push(`${name}: split ${a}, whole ${w}`)
      if (name === 'valid' && a !== toHex(evaluate(key.secretKey, input))) differ.push('valid: not Evaluate\'s output')
      if (name !== 'valid' && !a.startsWith('VN_ERR_')) differ.push(`${name}: accepted`)
    }
  }
  t.same(differ, [], `${compared} cases agree`)
})

t.test('the split single-element evaluation makes exactly the bytes of blindEvaluateBatch', async (t) => {
  const { planSingleEvaluation, offloadSingleEvaluation, finishSingleEvaluation } = await import('../../src/crypto/oprf.js')
  const split = (sk: Uint8Array, pk: Uint8Array, C: unknown, r?: Uint8Array): { evaluatedElements: Uint8Array[]; proof: Uint8Array } => {
    const plan = planSingleEvaluation(sk, pk, C, r === undefined ? {} : { proofRandomScalar: r })
    const part = offloadSingleEvaluation({ blinded: plan.blinded, d: plan.d, r: plan.r.slice() })
    const out = finishSingleEvaluation(plan).complete(part)
    t.ok(plan.r.every((x) => x === 0), 'complete wipes r')
    return out
  }
  // The RFC vector with one element: evaluated element and proof.
  const v = all.voprf.vectors.find((x) => x.input.length === 1)!
  const r = hex(v.proofRandomScalar as string)
  const got = split(hex(all.voprf.skSm), hex(all.voprf.pkSm), hex(v.blindedElement[0]!), r)
  t.equal(toHex(got.evaluatedElements[0] as Uint8Array), v.evaluationElement[0], 'RFC 9497 A.1.2 evaluation element')
  t.equal(toHex(got.proof), v.proof, 'RFC 9497 A.1.2 proof')
  t.equal(toHex(r), v.proofRandomScalar, "the caller's r is not wiped")
  // Random keys and elements: the same bytes as the whole evaluation with the same r, and a proof
  // the consumer accepts.
  for (let i = 0; i < 8; i++) {
    const key = generateKeyPair()
    const input = new TextEncoder().encode(`subject ${i}`)
    const b = blind([input])
    const rr = generateKeyPair().secretKey // a random nonzero scalar
    const a = split(key.secretKey, key.publicKey, b.blindedElements[0], rr)
    const w = blindEvaluateBatch(key.secretKey, key.publicKey, b.blindedElements, { proofRandomScalar: rr })
    t.equal(toHex(a.proof) + toHex(a.evaluatedElements[0] as Uint8Array), toHex(w.proof) + toHex(w.evaluatedElements[0] as Uint8Array), `element ${i}: same bytes`)
    const fresh = split(key.secretKey, key.publicKey, b.blindedElements[0])
    const out = finalizeBatch([input], b.blinds, fresh.evaluatedElements, b.blindedElements, key.publicKey, fresh.proof)
    t.equal(toHex(out[0] as Uint8Array), toHex(evaluate(key.secretKey, input)), `element ${i}: a fresh r gives a proof that verifies`)
  }
  // Bad elements: the same codes as the whole evaluation.
  const key = generateKeyPair()
  for (const bad of [new Uint8Array(32), new Uint8Array(31).fill(1), new Uint8Array(32).fill(0xff), 'x']) {
    let a = ''
    let w = ''
    try {
      split(key.secretKey, key.publicKey, bad)
    } catch (e) {
      a = (e as VnError).code
    }
    try {
      blindEvaluateBatch(key.secretKey, key.publicKey, [bad as Uint8Array])
    } catch (e) {
      w = (e as VnError).code
    }
    t.ok(a.startsWith('VN_ERR_OPRF_') && a === w, `refused as the whole evaluation refuses it (${a})`)
  }
})
