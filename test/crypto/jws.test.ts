import t from 'tap'
import { compactVerify, CompactSign, importJWK, type JWK } from 'jose'
import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import { signJws, signJwsJson, signJwsJsonAsync, verifyJws, verifyJwsJson, verifyJwsAsync, verifyJwsJsonAsync, peekJws } from '../../src/crypto/jws.js'
import { publicKeyToB64u } from '../../src/crypto/keys.js'
import { VnError } from '../../src/errors.js'

const { privateKey, publicKey } = generateKeyPairSync('ed25519')
const other = generateKeyPairSync('ed25519')
const resolve = (kid: string): KeyObject => {
  if (kid === 'a#1') return publicKey
  throw new VnError('VN_ERR_JWS_UNKNOWN_KID', 'kid')
}
const code = (fn: () => unknown): string | undefined => {
  try {
    fn()
  } catch (e) {
    return (e as VnError).code
  }
  return undefined
}
const flip = (s: string, i: number): string => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1)

t.test('jose accepts what we sign', async (t) => {
  const jws = signJwsJson({ hello: 'world', n: 1 }, privateKey, 'a#1', 'vn-req+jws')
  const jwk: JWK = { kty: 'OKP', crv: 'Ed25519', x: publicKeyToB64u(publicKey) }
  const key = await importJWK(jwk, 'EdDSA')
  const r = await compactVerify(jws, key, { algorithms: ['EdDSA'] })
  t.same(JSON.parse(new TextDecoder().decode(r.payload)), { hello: 'world', n: 1 })
  t.equal(r.protectedHeader.kid, 'a#1')
  t.equal(r.protectedHeader.typ, 'vn-req+jws')
})

t.test('we accept what jose signs', async (t) => {
  const jws = await new CompactSign(new TextEncoder().encode('{"x":2}'))
    .setProtectedHeader({ alg: 'EdDSA', kid: 'a#1' })
    .sign(privateKey)
  const v = verifyJwsJson(jws, resolve)
  t.same(v.claims, { x: 2 })
})

t.test('rejections match jose, with codes', async (t) => {
  const good = signJws('{"a":1}', privateKey, 'a#1')
  const jwk: JWK = { kty: 'OKP', crv: 'Ed25519', x: publicKeyToB64u(publicKey) }
  const key = await importJWK(jwk, 'EdDSA')
  const [h, p, s] = good.split('.') as [string, string, string]
  const cases: Array<[string, string, string]> = [
    ['tampered payload', `${h}.${Buffer.from('{"a":2}').toString('base64url')}.${s}`, 'VN_ERR_JWS_SIGNATURE'],
    ['flipped signature byte', `${h}.${p}.${flip(s, 5)}`, 'VN_ERR_JWS_SIGNATURE'],
    ['flipped header byte (alg)', `${flip(h, 3)}.${p}.${s}`, 'VN_ERR_JWS_ALG'],
    ['alg none', `${Buffer.from('{"alg":"none","kid":"a#1"}').toString('base64url')}.${p}.`, 'VN_ERR_JWS_ALG'],
    ['alg none with sig', `${Buffer.from('{"alg":"none","kid":"a#1"}').toString('base64url')}.${p}.${s}`, 'VN_ERR_JWS_ALG'],
    ['alg HS256', `${Buffer.from('{"alg":"HS256","kid":"a#1"}').toString('base64url')}.${p}.${s}`, 'VN_ERR_JWS_ALG'],
    ['crit', `${Buffer.from('{"alg":"EdDSA","kid":"a#1","crit":["exp"],"exp":1}').toString('base64url')}.${p}.${s}`, 'VN_ERR_JWS_HEADER'],
    ['two parts', `${h}.${p}`, 'VN_ERR_JWS_MALFORMED'],
    ['padding', `${h}.${p}=.${s}`, 'VN_ERR_JWS_MALFORMED'],
    ['short signature', `${h}.${p}.${s.slice(0, 40)}`, 'VN_ERR_JWS_MALFORMED'],
    ['header not json', `${Buffer.from('nope').toString('base64url')}.${p}.${s}`, 'VN_ERR_JWS_MALFORMED'],
    ['header array', `${Buffer.from('[1]').toString('base64url')}.${p}.${s}`, 'VN_ERR_JWS_MALFORMED'],
    ['missing kid', `${Buffer.from('{"alg":"EdDSA"}').toString('base64url')}.${p}.${s}`, 'VN_ERR_JWS_HEADER'],
    ['embedded jwk', `${Buffer.from(JSON.stringify({ alg: 'EdDSA', kid: 'a#1', jwk })).toString('base64url')}.${p}.${s}`, 'VN_ERR_JWS_HEADER'],
  ]
  for (const [name, jws, want] of cases) {
    t.equal(code(() => verifyJws(jws, resolve)), want, name)
    await t.rejects(verifyJwsAsync(jws, resolve), { code: want }, `async path agrees: ${name}`)
    await t.rejects(compactVerify(jws, key, { algorithms: ['EdDSA'] }), `jose also rejects: ${name}`)
  }
})

t.test('unknown kid and wrong key', async (t) => {
  t.equal(code(() => verifyJws(signJws('{}', privateKey, 'b#1'), resolve)), 'VN_ERR_JWS_UNKNOWN_KID')
  t.equal(code(() => verifyJws(signJws('{}', other.privateKey, 'a#1'), resolve)), 'VN_ERR_JWS_SIGNATURE')
})

t.test('typ is enforced when asked', async (t) => {
  const jws = signJws('{}', privateKey, 'a#1', 'x')
  t.equal(code(() => verifyJws(jws, resolve, 'y')), 'VN_ERR_JWS_HEADER')
  t.equal(peekJws(jws).header.typ, 'x')
  t.equal(code(() => peekJws(42)), 'VN_ERR_JWS_MALFORMED')
  t.equal(code(() => verifyJwsJson(signJws('not json', privateKey, 'a#1'), resolve)), 'VN_ERR_JWS_MALFORMED')
})

t.test('the thread-pool forms sign and verify exactly like the synchronous ones', async (t) => {
  const payload = { v: 1, xid: 'x1', results: [{ match: true }] }
  const a = await signJwsJsonAsync(payload, privateKey, 'a#1', 'vn-resp+jws')
  t.equal(a, signJwsJson(payload, privateKey, 'a#1', 'vn-resp+jws'), 'Ed25519 is deterministic: same bytes')
  t.same((await verifyJwsJsonAsync(a, resolve, 'vn-resp+jws')).claims, payload)
  const jwk: JWK = { kty: 'OKP', crv: 'Ed25519', x: publicKeyToB64u(publicKey) }
  await compactVerify(a, await importJWK(jwk, 'EdDSA'), { algorithms: ['EdDSA'] })
  await t.rejects(verifyJwsAsync(a, resolve, 'other'), { code: 'VN_ERR_JWS_HEADER' })
  await t.rejects(verifyJwsAsync(await signJwsJsonAsync({}, other.privateKey, 'a#1'), resolve), { code: 'VN_ERR_JWS_SIGNATURE' })
  await t.rejects(verifyJwsAsync(await signJwsJsonAsync({}, privateKey, 'b#1'), resolve), { code: 'VN_ERR_JWS_UNKNOWN_KID' })
  await t.rejects(verifyJwsJsonAsync(signJws('not json', privateKey, 'a#1'), resolve), { code: 'VN_ERR_JWS_MALFORMED' })
  await t.rejects(signJwsJsonAsync({}, publicKey, 'a#1'), 'a public key cannot sign')
})
