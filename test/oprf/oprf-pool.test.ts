import t from 'tap'
import {
  blind,
  blindEvaluate,
  evaluateMany,
  finalizeBatch,
  generateKeyPair,
} from '../../src/crypto/oprf.js'
import { VnError } from '../../src/errors.js'
import {
  createOprfPool,
  poolBlind,
  poolBlindEvaluate,
  poolBlindEvaluateBatch,
  poolEvaluate,
  poolEvaluatePrefixes,
  poolFinalizeBatch,
} from '../../src/oprf/oprf-pool.js'
import { evaluatePrefixes } from '../../src/oprf/prefixes.js'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const inputs = Array.from({ length: 40 }, (_, i) => new TextEncoder().encode(`subject ${i}`))
// One pool for the file: starting a worker under the TypeScript loader takes seconds.
const pool = createOprfPool(2)
t.teardown(() => pool.close())

t.test('pool ops agree with the in-thread path', async (t) => {
  const key = generateKeyPair()
  t.same((await poolEvaluate(pool, key.secretKey, inputs, 7)).map(hex), evaluateMany(key.secretKey, inputs).map(hex), 'evaluate, chunked')
  t.equal(hex(await poolEvaluatePrefixes(pool, key.secretKey, inputs)), hex(evaluatePrefixes(key.secretKey, inputs)), 'prefixes')
  const b = blind(inputs)
  t.same((await poolBlindEvaluate(pool, key.secretKey, b.blindedElements)).map(hex), blindEvaluate(key.secretKey, b.blindedElements).map(hex), 'blindEvaluate')
  const r = await poolBlindEvaluateBatch(pool, key.secretKey, key.publicKey, b.blindedElements)
  t.same(r.evaluatedElements.map(hex), blindEvaluate(key.secretKey, b.blindedElements).map(hex), 'batch evaluation')
  const out = finalizeBatch(inputs, b.blinds, r.evaluatedElements, b.blindedElements, key.publicKey, r.proof)
  t.same(out.map(hex), evaluateMany(key.secretKey, inputs).map(hex), 'proof made on a worker verifies in-thread')
  const pb = await poolBlind(pool, inputs)
  const r2 = await poolBlindEvaluateBatch(pool, key.secretKey, key.publicKey, pb.blindedElements)
  const out2 = await poolFinalizeBatch(pool, { inputs, blinds: pb.blinds, evaluatedElements: r2.evaluatedElements, blindedElements: pb.blindedElements, publicKey: key.publicKey, proof: r2.proof })
  t.same(out2.map(hex), out.map(hex), 'whole flow on workers')
})

t.test('error codes survive the worker boundary', async (t) => {
  const key = generateKeyPair()
  const b = blind(inputs.slice(0, 4))
  const els = b.blindedElements.slice()
  els[2] = new Uint8Array(32)
  const e1 = await poolBlindEvaluateBatch(pool, key.secretKey, key.publicKey, els).catch((e: unknown) => e)
  t.ok(e1 instanceof VnError)
  t.equal((e1 as VnError).code, 'VN_ERR_OPRF_POINT')
  t.equal((e1 as VnError).detail, 'blindedElements[2]: identity element')
  const r = await poolBlindEvaluateBatch(pool, key.secretKey, key.publicKey, b.blindedElements)
  const proof = r.proof.slice()
  proof[5]! ^= 1
  const e2 = await poolFinalizeBatch(pool, { inputs: inputs.slice(0, 4), blinds: b.blinds, evaluatedElements: r.evaluatedElements, blindedElements: b.blindedElements, publicKey: key.publicKey, proof }).catch((e: unknown) => e)
  t.equal((e2 as VnError).code, 'VN_ERR_OPRF_PROOF')
  const e3 = await poolBlindEvaluate(pool, key.secretKey, b.blindedElements, 2).catch((e: unknown) => e)
  t.equal((e3 as VnError).code, 'VN_ERR_REQ_BATCH_TOO_LARGE')
})
