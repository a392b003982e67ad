import t from 'tap'
import { generateKeyPairSync, sign, verify } from 'node:crypto'
import { compactVerify, importJWK, type JWK } from 'jose'
import { Ed25519Batcher, acquireEd25519 } from '../../src/crypto/ed25519-batch.js'
import { signJws, signJwsJson, signJwsJsonAsync, verifyJwsAsync, verifyJwsJsonAsync } from '../../src/crypto/jws.js'
import { publicKeyToB64u } from '../../src/crypto/keys.js'
import { VnError } from '../../src/errors.js'

const a = generateKeyPairSync('ed25519')
const b = generateKeyPairSync('ed25519')
const msg = (i: number): Buffer => Buffer.from(`message ${i} `.repeat(40), 'ascii') // small: a view into Node's pool

for (const lanes of [1, 3]) t.test(`batched sign and verify give exactly node:crypto's results (${lanes} worker(s))`, async (t) => {
  const ed = new Ed25519Batcher(lanes)
  t.teardown(() => ed.close())
  // Many operations at once, two keys, valid and invalid signatures, signing and checking mixed.
  const ops = Array.from({ length: 200 }, async (_, i) => {
    const key = i % 2 === 0 ? a : b
    const data = msg(i)
    if (i % 3 === 0) {
      const sig = await ed.sign(data, key.privateKey)
      return sig.equals(sign(null, data, key.privateKey)) // Ed25519 is deterministic
    }
    const good = sign(null, data, key.privateKey)
    const bad = Buffer.from(good)
    bad[5] = (bad[5] as number) ^ 1
    const [okGood, okBad, okOtherKey] = await Promise.all([
      ed.verify(data, key.publicKey, good),
      ed.verify(data, key.publicKey, bad),
      ed.verify(data, (i % 2 === 0 ? b : a).publicKey, good),
    ])
    return okGood === verify(null, data, key.publicKey, good) && okGood && !okBad && !okOtherKey
  })
  const results = await Promise.all(ops)
  t.equal(results.filter((x) => !x).length, 0, 'every result matches')
  t.ok(ed.stats.batches < ed.stats.ops / 5, `operations went over in batches (${ed.stats.ops} in ${ed.stats.batches})`)
})

t.test('after a pause one operation runs inline; a burst goes to the workers', async (t) => {
  const ed = new Ed25519Batcher()
  t.teardown(() => ed.close())
  const sigs = Array.from({ length: 50 }, (_, i) => sign(null, msg(i), a.privateKey))
  await new Promise((r) => setTimeout(r, 10))
  t.ok((await ed.sign(msg(1), a.privateKey)).equals(sigs[1] as Buffer))
  t.same({ inline: ed.stats.inline, batches: ed.stats.batches }, { inline: 1, batches: 0 }, 'a lone request after a pause is signed inline')
  await new Promise((r) => setTimeout(r, 10))
  const burst = await Promise.all(sigs.map((sig, i) => ed.verify(msg(i), a.publicKey, sig)))
  t.ok(burst.every((x) => x === true))
  // Only the first of a burst after a pause runs inline (a second one too if this thread was
  // descheduled for 2 ms between them: a loaded CI machine); once a batch is out, none can.
  const inlineAfterBurst = ed.stats.inline
  t.ok(inlineAfterBurst === 2 || inlineAfterBurst === 3, `the burst's first runs inline (${inlineAfterBurst - 1})`)
  t.equal(ed.stats.ops, 51 - inlineAfterBurst, 'the rest went to the workers')
  await new Promise((r) => setTimeout(r, 10))
  t.equal(await ed.verify(msg(2), b.publicKey, sigs[2] as Buffer), false, 'inline checks give the same answers')
  t.equal(ed.stats.inline, inlineAfterBurst + 1)
  await new Promise((r) => setTimeout(r, 10))
  await t.rejects(ed.sign(msg(3), a.publicKey), { code: 'VN_ERR_INTERNAL' }, 'inline: a public key cannot sign either')
  t.equal(ed.stats.inline, inlineAfterBurst + 2)
})

t.test('a caller that says it is alone runs inline right after another operation, unless a batch is out', async (t) => {
  const ed = new Ed25519Batcher()
  t.teardown(() => ed.close())
  const sig = sign(null, msg(1), a.privateKey)
  t.equal(await ed.verify(msg(1), a.publicKey, sig), true)
  const inline0 = ed.stats.inline
  // Straight after: not quiet, so without the hint it would go to a worker.
  ;(ed as unknown as { clock: { last: number } }).clock.last = Number.POSITIVE_INFINITY
  t.ok((await ed.sign(msg(1), a.privateKey, { lone: true })).equals(sig), 'same signature inline')
  t.equal(await ed.verify(msg(2), a.publicKey, sig, { lone: true }), false, 'same answer inline')
  t.equal(ed.stats.inline, inline0 + 2, 'both ran inline')
  const neverQuiet = (): void => {
    ;(ed as unknown as { clock: { last: number } }).clock.last = Number.POSITIVE_INFINITY // a loaded CI machine may pause 2 ms
  }
  neverQuiet()
  t.ok((await ed.sign(msg(1), a.privateKey, { lone: false })).equals(sig))
  t.equal(ed.stats.inline, inline0 + 2, 'lone: false right after another goes to a worker')
  // With a batch out, even a lone caller waits its turn (the event loop stays free under load).
  neverQuiet()
  const out = ed.sign(msg(4), a.privateKey)
  const behind = ed.sign(msg(5), a.privateKey, { lone: true })
  await Promise.all([out, behind])
  t.equal(ed.stats.inline, inline0 + 2, 'nothing ran inline while a batch was out')
})

t.test('the same key in another KeyObject is sent to the worker once', async (t) => {
  const ed = new Ed25519Batcher()
  t.teardown(() => ed.close())
  const der = a.publicKey.export({ format: 'der', type: 'spki' })
  const { createPublicKey } = await import('node:crypto')
  for (let i = 0; i < 5; i++) {
    const copy = createPublicKey({ key: der, format: 'der', type: 'spki' })
    t.equal(await ed.verify(msg(i), copy, sign(null, msg(i), a.privateKey)), true)
  }
  t.equal((ed as unknown as { keys: unknown[] }).keys.length, 1, 'one key for five KeyObjects')
})

t.test('wrong keys are refused, not crashed on', async (t) => {
  const ed = new Ed25519Batcher()
  t.teardown(() => ed.close())
  await t.rejects(ed.sign(msg(1), a.publicKey), { code: 'VN_ERR_INTERNAL' }, 'a public key cannot sign')
  const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 })
  t.throws(() => ed.verify(msg(1), rsa.publicKey, Buffer.alloc(64)), { code: 'VN_ERR_INTERNAL' }, 'not an Ed25519 key')
  t.equal(await ed.verify(msg(1), a.publicKey, Buffer.alloc(3)), false, 'a short signature does not verify')
  t.equal(await ed.verify(msg(2), a.publicKey, sign(null, msg(2), a.privateKey)), true, 'the worker still serves')
})

t.test('a dead worker: pending operations reject, later ones fall back to libuv', async (t) => {
  const ed = new Ed25519Batcher()
  t.teardown(() => ed.close())
  t.equal(await ed.verify(msg(3), a.publicKey, sign(null, msg(3), a.privateKey)), true)
  ;(ed as unknown as { clock: { last: number } }).clock.last = Number.POSITIVE_INFINITY // never "quiet": this one goes to a worker
  const pending = ed.verify(msg(4), a.publicKey, sign(null, msg(4), a.privateKey))
  await (ed as unknown as { lanes: { worker: { terminate(): Promise<number> } }[] }).lanes[0]?.worker.terminate()
  await t.rejects(pending, { code: 'VN_ERR_INTERNAL' })
  t.equal(await ed.verify(msg(5), a.publicKey, sign(null, msg(5), a.privateKey)), true, 'falls back')
  t.ok((await ed.sign(msg(6), a.privateKey)).equals(sign(null, msg(6), a.privateKey)))
})

t.test('one shared worker per process, closed with its last user', async (t) => {
  const one = acquireEd25519()
  const two = acquireEd25519()
  t.equal(one.batcher, two.batcher)
  await one.release()
  await one.release() // twice is once
  t.equal(await two.batcher.verify(msg(7), a.publicKey, sign(null, msg(7), a.privateKey)), true, 'still up for the other user')
  await two.release()
  const three = acquireEd25519()
  t.not(three.batcher, one.batcher, 'a new worker after the last release')
  await three.release()
})

t.test('JWS through the batcher: same bytes, same checks, same codes', async (t) => {
  const { batcher: ed, release } = acquireEd25519()
  t.teardown(release)
  const resolve = (kid: string): typeof a.publicKey => {
    if (kid === 'a#1') return a.publicKey
    throw new VnError('VN_ERR_JWS_UNKNOWN_KID', 'kid')
  }
  const payload = { v: 1, xid: 'x1', results: [{ match: true }] }
  const jws = await signJwsJsonAsync(payload, a.privateKey, 'a#1', 'vn-resp+jws', ed)
  t.equal(jws, signJwsJson(payload, a.privateKey, 'a#1', 'vn-resp+jws'))
  t.same((await verifyJwsJsonAsync(jws, resolve, 'vn-resp+jws', ed)).claims, payload)
  const jwk: JWK = { kty: 'OKP', crv: 'Ed25519', x: publicKeyToB64u(a.publicKey) }
  await compactVerify(jws, await importJWK(jwk, 'EdDSA'), { algorithms: ['EdDSA'] })
  const [h, p, s] = jws.split('.') as [string, string, string]
  const tampered = `${h}.${Buffer.from(JSON.stringify({ ...payload, xid: 'x2' })).toString('base64url')}.${s}`
  await t.rejects(verifyJwsAsync(tampered, resolve, undefined, ed), { code: 'VN_ERR_JWS_SIGNATURE' })
  await t.rejects(verifyJwsAsync(signJws('{}', b.privateKey, 'a#1'), resolve, undefined, ed), { code: 'VN_ERR_JWS_SIGNATURE' })
  await t.rejects(verifyJwsAsync(signJws('{}', a.privateKey, 'b#1'), resolve, undefined, ed), { code: 'VN_ERR_JWS_UNKNOWN_KID' })
  await t.rejects(verifyJwsAsync(`${h}.${p}`, resolve, undefined, ed), { code: 'VN_ERR_JWS_MALFORMED' })
})
