import t from 'tap'
import { generateEd25519, publicKeyToB64u } from '../../src/crypto/keys.js'
import { signJwsJson, verifyJwsJson } from '../../src/crypto/jws.js'
import { Federation } from '../../src/federation/federation.js'
import { KeyHistory } from '../../src/federation/key-history.js'
import { rootKeyId, signManifest, type Manifest, type ManifestKey } from '../../src/federation/manifest.js'

const root = generateEd25519()
const rootKid = rootKeyId(root.publicKey)
const k1 = generateEd25519()
const k2 = generateEd25519()
const lg = generateEd25519()
const T0 = Date.UTC(2026, 0, 1)
const DAY = 86_400_000

const key = (kid: string, kp: { publicKey: import('node:crypto').KeyObject }, nbf: number, exp?: number): ManifestKey =>
  exp === undefined ? { kid, x: publicKeyToB64u(kp.publicKey), nbf } : { kid, x: publicKeyToB64u(kp.publicKey), nbf, exp }

const manifest = (seq: number, iat: number, exp: number, messageKeys: ManifestKey[], federation = 'fj'): Manifest => ({
  v: 1,
  federation,
  seq,
  iat,
  exp,
  members: [
    {
      id: 'fj-tax',
      name: '税务局',
      uscc: '11350000100000016K',
      role: 'department',
      endpoint: 'http://127.0.0.1:7102',
      messageKeys,
      logKeys: [key('l1', lg, T0)],
    },
  ],
})
const sign = (m: Manifest): string => signManifest(m, root.privateKey, rootKid)

// seq 1: k1 from T0, valid 30 days.   seq 2 (day 10): k1 and k2 (k2 from day 12).
// seq 3 (day 20): k1 revoked, only k2; this manifest expires on day 40.
const m1 = sign(manifest(1, T0, T0 + 30 * DAY, [key('k1', k1, T0)]))
const m2 = sign(manifest(2, T0 + 10 * DAY, T0 + 40 * DAY, [key('k1', k1, T0), key('k2', k2, T0 + 12 * DAY)]))
const m3 = sign(manifest(3, T0 + 20 * DAY, T0 + 40 * DAY, [key('k2', k2, T0 + 12 * DAY)]))

t.test('the manifest in force at an instant', async (t) => {
  const h = KeyHistory.fromJws([m3, m1, m2], root.publicKey)
  t.same(h.manifests.map((f) => f.seq), [1, 2, 3], 'sorted by seq')
  t.equal(h.inForce(T0 - 1), undefined, 'before the first')
  t.equal(h.inForce(T0)?.seq, 1)
  t.equal(h.inForce(T0 + 10 * DAY - 1)?.seq, 1)
  t.equal(h.inForce(T0 + 10 * DAY)?.seq, 2)
  t.equal(h.inForce(T0 + 20 * DAY)?.seq, 3)
  t.equal(h.inForce(T0 + 40 * DAY - 1)?.seq, 3)
  t.equal(h.inForce(T0 + 40 * DAY), undefined, 'after the newest expired')
})

t.test('was key K valid at T', async (t) => {
  const h = KeyHistory.fromJws([m1, m2, m3], root.publicKey)
  const ok = h.messageKeyAt('fj-tax', 'k1', T0 + 15 * DAY)
  t.equal(ok.valid, true)
  t.equal(ok.valid && ok.seq, 2)
  t.equal(ok.valid && publicKeyToB64u(ok.key), publicKeyToB64u(k1.publicKey))
  t.equal(ok.valid && ok.manifestHash, h.manifests[1]!.hash)

  t.match(h.messageKeyAt('fj-tax', 'k1', T0 + 20 * DAY), { valid: false, code: 'VN_ERR_JWS_UNKNOWN_KID', seq: 3 }, 'revoked by seq 3')
  t.match(h.messageKeyAt('fj-tax', 'k2', T0 + 5 * DAY), { valid: false, code: 'VN_ERR_JWS_UNKNOWN_KID', seq: 1 }, 'not yet listed')
  t.match(h.messageKeyAt('fj-tax', 'k2', T0 + 11 * DAY), { valid: false, code: 'VN_ERR_JWS_KEY_NOT_VALID', seq: 2 }, 'listed, before nbf')
  t.equal(h.messageKeyAt('fj-tax', 'k2', T0 + 12 * DAY).valid, true, 'at nbf')
  t.match(h.messageKeyAt('fj-other', 'k1', T0 + DAY), { valid: false, code: 'VN_ERR_JWS_UNKNOWN_KID' }, 'unknown member')
  t.match(h.messageKeyAt('fj-tax', 'k1', T0 - 1), { valid: false, code: 'VN_ERR_FED_MANIFEST_EXPIRED' }, 'no manifest yet')
  t.match(h.messageKeyAt('fj-tax', 'k2', T0 + 41 * DAY), { valid: false, code: 'VN_ERR_FED_MANIFEST_EXPIRED' }, 'all expired')
  t.equal(h.logKeyAt('fj-tax', 'l1', T0 + DAY).valid, true)
  t.match(h.logKeyAt('fj-tax', 'k1', T0 + DAY), { valid: false, code: 'VN_ERR_JWS_UNKNOWN_KID' }, 'message key is not a log key')
})

t.test('key expiry inside a manifest', async (t) => {
  const m = sign(manifest(1, T0, T0 + 30 * DAY, [key('k1', k1, T0, T0 + 5 * DAY)]))
  const h = KeyHistory.fromJws([m], root.publicKey)
  t.equal(h.messageKeyAt('fj-tax', 'k1', T0 + 5 * DAY - 1).valid, true)
  t.match(h.messageKeyAt('fj-tax', 'k1', T0 + 5 * DAY), { valid: false, code: 'VN_ERR_JWS_KEY_NOT_VALID' })
})

t.test('resolver for signatures in the past', async (t) => {
  const h = KeyHistory.fromJws([m1, m2, m3], root.publicKey)
  const jws = signJwsJson({ x: 1 }, k1.privateKey, 'fj-tax#k1')
  t.same(verifyJwsJson(jws, h.messageKeyResolver(T0 + 15 * DAY, 'fj-tax')).claims, { x: 1 })
  t.throws(() => verifyJwsJson(jws, h.messageKeyResolver(T0 + 25 * DAY)), { code: 'VN_ERR_JWS_UNKNOWN_KID' }, 'signed after revocation')
  t.throws(() => verifyJwsJson(jws, h.messageKeyResolver(T0 + 15 * DAY, 'fj-psb')), { code: 'VN_ERR_JWS_UNKNOWN_KID' }, 'wrong member')
  t.throws(() => verifyJwsJson(signJwsJson({}, k1.privateKey, 'k1'), h.messageKeyResolver(T0)), { code: 'VN_ERR_JWS_UNKNOWN_KID' }, 'malformed kid')
  t.throws(() => verifyJwsJson(jws, h.messageKeyResolver(T0 + 50 * DAY)), { code: 'VN_ERR_FED_MANIFEST_EXPIRED' })
  const k2Early = signJwsJson({ x: 1 }, k2.privateKey, 'fj-tax#k2')
  t.throws(() => verifyJwsJson(k2Early, h.messageKeyResolver(T0 + 11 * DAY)), { code: 'VN_ERR_JWS_KEY_NOT_VALID' })
})

t.test('inconsistent histories are refused', async (t) => {
  const dup = sign({ ...manifest(2, T0 + 10 * DAY, T0 + 40 * DAY, [key('k1', k1, T0)]), federation: 'fj' })
  t.throws(() => KeyHistory.fromJws([m1, m2, dup], root.publicKey), { code: 'VN_ERR_FED_MANIFEST_INVALID' }, 'two different seq 2')
  t.equal(KeyHistory.fromJws([m1, m2, m2], root.publicKey).manifests.length, 2, 'identical duplicates are merged')
  const backwards = sign(manifest(4, T0 + 5 * DAY, T0 + 40 * DAY, []))
  t.throws(() => KeyHistory.fromJws([m1, m2, m3, backwards], root.publicKey), { code: 'VN_ERR_FED_MANIFEST_INVALID' }, 'higher seq issued earlier')
  const foreign = sign(manifest(4, T0 + 25 * DAY, T0 + 40 * DAY, [], 'other'))
  t.throws(() => KeyHistory.fromJws([m1, foreign], root.publicKey), { code: 'VN_ERR_FED_MANIFEST_INVALID' }, 'another federation')
  const other = generateEd25519()
  t.throws(() => KeyHistory.fromJws([m1, signManifest(manifest(2, T0 + DAY, T0 + 9 * DAY, []), other.privateKey, rootKeyId(other.publicKey))], root.publicKey), {
    code: 'VN_ERR_FED_MANIFEST_INVALID',
  }, 'every manifest must verify')
  t.equal(new KeyHistory([]).inForce(T0), undefined, 'empty history')
  t.equal(new KeyHistory([Federation.fromJws(m1, root.publicKey, { now: T0 })]).inForce(T0)?.seq, 1)
})
