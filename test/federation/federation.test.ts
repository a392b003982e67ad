import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createHash } from 'node:crypto'
import { generateEd25519, publicKeyToB64u } from '../../src/crypto/keys.js'
import { signJwsJson, verifyJwsJson } from '../../src/crypto/jws.js'
import type { VnError } from '../../src/errors.js'
import { Federation, FederationHolder, splitKid } from '../../src/federation/federation.js'
import { rootKeyId, signManifest, type Manifest, type ManifestKey } from '../../src/federation/manifest.js'

const root = generateEd25519()
const rootKid = rootKeyId(root.publicKey)
const tax = { m1: generateEd25519(), m2: generateEd25519(), l1: generateEd25519(), l2: generateEd25519() }
const psb = { m1: generateEd25519(), l1: generateEd25519() }
const aud = generateEd25519()
const T0 = Date.UTC(2026, 10, 1)
const DAY = 86_400_000

const key = (kid: string, kp: { publicKey: import('node:crypto').KeyObject }, nbf: number, exp?: number): ManifestKey =>
  exp === undefined ? { kid, x: publicKeyToB64u(kp.publicKey), nbf } : { kid, x: publicKeyToB64u(kp.publicKey), nbf, exp }

function manifest(seq: number, opts: { taxMessageKeys?: ManifestKey[]; iat?: number; exp?: number } = {}): Manifest {
  const iat = opts.iat ?? T0
  return {
    v: 1,
    federation: 'fj',
    seq,
    iat,
    exp: opts.exp ?? iat + 30 * DAY,
    members: [
      {
        id: 'fj-tax',
        name: '福建省税务局',
        uscc: '11350000100000016K',
        role: 'department',
        endpoint: 'http://127.0.0.1:7102',
        messageKeys: opts.taxMessageKeys ?? [key('m1', tax.m1, T0, T0 + 20 * DAY), key('m2', tax.m2, T0 + 10 * DAY)],
        logKeys: [key('l1', tax.l1, T0), key('l2', tax.l2, T0 + 5 * DAY)],
      },
      {
        id: 'fj-psb',
        name: '福建省公安厅',
        uscc: '11350000100000024E',
        role: 'department',
        endpoint: 'https://psb.example.gov.cn',
        tlsFingerprint: 'a'.repeat(64),
        messageKeys: [key('m1', psb.m1, T0)],
        logKeys: [key('l1', psb.l1, T0)],
      },
      { id: 'fj-audit', name: '福建省审计厅', uscc: '113500001000000329', role: 'auditor', messageKeys: [key('a1', aud, T0)], logKeys: [] },
    ],
  }
}

const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn()
  } catch (e) {
    return (e as VnError).code
  }
  return undefined
}

const sign = (m: Manifest): string => signManifest(m, root.privateKey, rootKid)

t.test('members, endpoints, hash', async (t) => {
  const jws = sign(manifest(1))
  const f = Federation.fromJws(jws, root.publicKey, { now: T0 })
  t.equal(f.seq, 1)
  t.equal(f.name, 'fj')
  t.equal(f.exp, T0 + 30 * DAY)
  t.equal(f.hash, createHash('sha256').update(jws).digest('base64url'))
  t.equal(f.member('fj-tax').name, '福建省税务局')
  t.equal(f.member('fj-psb').tlsFingerprint, 'a'.repeat(64))
  t.same(f.departments().map((m) => m.id).sort(), ['fj-psb', 'fj-tax'])
  t.equal(f.members().length, 3)
  t.equal(f.endpoint('fj-tax'), 'http://127.0.0.1:7102')
  t.equal(codeOf(() => f.endpoint('fj-audit')), 'VN_ERR_PEER_UNKNOWN')
  t.equal(codeOf(() => f.member('fj-nobody')), 'VN_ERR_FED_UNKNOWN_MEMBER')
  t.equal(codeOf(() => f.endpoint('fj-nobody')), 'VN_ERR_FED_UNKNOWN_MEMBER')
  t.ok(f.has('fj-audit'))
  t.notOk(f.has('fj-nobody'))
  t.equal(codeOf(() => f.assertFresh(T0 + 30 * DAY)), 'VN_ERR_FED_MANIFEST_EXPIRED')
  t.equal(codeOf(() => f.assertFresh(T0 + 30 * DAY - 1)), undefined)
})

t.test('keys are parsed once, at construction', async (t) => {
  const f = Federation.fromJws(sign(manifest(1)), root.publicKey, { now: T0 })
  const a = f.messageKeyResolver(T0 + DAY)('fj-tax#m1', { alg: 'EdDSA', kid: 'fj-tax#m1' })
  const b = f.messageKeyResolver(T0 + 2 * DAY)('fj-tax#m1', { alg: 'EdDSA', kid: 'fj-tax#m1' })
  t.equal(a, b, 'the same KeyObject every time')
  t.equal(publicKeyToB64u(a), publicKeyToB64u(tax.m1.publicKey))
})

t.test('message key resolver with verifyJws', async (t) => {
  const f = Federation.fromJws(sign(manifest(1)), root.publicKey, { now: T0 })
  const req = signJwsJson({ hello: 1 }, tax.m1.privateKey, 'fj-tax#m1', 'vn-req+jws')
  t.same(verifyJwsJson(req, f.messageKeyResolver(T0 + DAY, 'fj-tax'), 'vn-req+jws').claims, { hello: 1 })
  // The auditor's key is a message key too (it signs its requests).
  const audReq = signJwsJson({ a: 1 }, aud.privateKey, 'fj-audit#a1')
  t.same(verifyJwsJson(audReq, f.messageKeyResolver(T0)).claims, { a: 1 })

  const cases: Array<[string, string, number, string | undefined, string]> = [
    ['unknown member', 'fj-nobody#m1', T0 + DAY, undefined, 'VN_ERR_JWS_UNKNOWN_KID'],
    ['unknown kid', 'fj-tax#m9', T0 + DAY, undefined, 'VN_ERR_JWS_UNKNOWN_KID'],
    ['log key used as message key', 'fj-tax#l1', T0 + DAY, undefined, 'VN_ERR_JWS_UNKNOWN_KID'],
    ['kid without member', 'm1', T0 + DAY, undefined, 'VN_ERR_JWS_UNKNOWN_KID'],
    ['kid with empty key id', 'fj-tax#', T0 + DAY, undefined, 'VN_ERR_JWS_UNKNOWN_KID'],
    ['kid with empty member', '#m1', T0 + DAY, undefined, 'VN_ERR_JWS_UNKNOWN_KID'],
    ['another member than expected', 'fj-psb#m1', T0 + DAY, 'fj-tax', 'VN_ERR_JWS_UNKNOWN_KID'],
    ['before nbf', 'fj-tax#m2', T0 + 10 * DAY - 1, undefined, 'VN_ERR_JWS_KEY_NOT_VALID'],
    ['at exp (exclusive)', 'fj-tax#m1', T0 + 20 * DAY, undefined, 'VN_ERR_JWS_KEY_NOT_VALID'],
    ['after exp', 'fj-tax#m1', T0 + 25 * DAY, undefined, 'VN_ERR_JWS_KEY_NOT_VALID'],
  ]
  for (const [what, kid, at, expected, code] of cases) {
    t.equal(codeOf(() => f.messageKeyResolver(at, expected)(kid, { alg: 'EdDSA', kid })), code, what)
  }
  t.equal(codeOf(() => f.messageKeyResolver(T0 + 10 * DAY)('fj-tax#m2', { alg: 'EdDSA', kid: 'fj-tax#m2' })), undefined, 'at nbf (inclusive)')
  t.equal(codeOf(() => f.messageKeyResolver(T0 + 20 * DAY - 1)('fj-tax#m1', { alg: 'EdDSA', kid: 'fj-tax#m1' })), undefined, 'just before exp')
  t.equal(f.messageKey('fj-tax#m2', T0 + 11 * DAY).kid, 'm2')

  // A real signature by a key outside its window is refused through verifyJws.
  const late = signJwsJson({ x: 1 }, tax.m1.privateKey, 'fj-tax#m1')
  t.throws(() => verifyJwsJson(late, f.messageKeyResolver(T0 + 21 * DAY)), { code: 'VN_ERR_JWS_KEY_NOT_VALID' })
  // A signature by another key under a listed kid fails the signature check.
  const impostor = signJwsJson({ x: 1 }, psb.m1.privateKey, 'fj-tax#m1')
  t.throws(() => verifyJwsJson(impostor, f.messageKeyResolver(T0 + DAY)), { code: 'VN_ERR_JWS_SIGNATURE' })
})

t.test('log keys', async (t) => {
  const f = Federation.fromJws(sign(manifest(1)), root.publicKey, { now: T0 })
  t.equal(publicKeyToB64u(f.logPublicKey('fj-tax', 'l1')), publicKeyToB64u(tax.l1.publicKey))
  t.equal(publicKeyToB64u(f.logPublicKey('fj-tax')), publicKeyToB64u(tax.l2.publicKey), 'latest nbf without kid')
  t.equal(publicKeyToB64u(f.logPublicKey('fj-psb')), publicKeyToB64u(psb.l1.publicKey))
  t.equal(codeOf(() => f.logPublicKey('fj-tax', 'm1')), 'VN_ERR_JWS_UNKNOWN_KID')
  t.equal(codeOf(() => f.logPublicKey('fj-audit')), 'VN_ERR_JWS_UNKNOWN_KID', 'auditor has no log key')
  t.equal(codeOf(() => f.logPublicKey('fj-nobody')), 'VN_ERR_FED_UNKNOWN_MEMBER')
  t.equal(f.logKeys('fj-tax').length, 2)
  t.equal(codeOf(() => f.logKeyResolver(T0 + DAY)('fj-tax#l2', { alg: 'EdDSA', kid: 'fj-tax#l2' })), 'VN_ERR_JWS_KEY_NOT_VALID')
  t.equal(codeOf(() => f.logKeyResolver(T0 + DAY, 'fj-tax')('fj-tax#l1', { alg: 'EdDSA', kid: 'fj-tax#l1' })), undefined)
  t.equal(codeOf(() => f.logKeyResolver(T0 + DAY)('fj-tax#m1', { alg: 'EdDSA', kid: 'fj-tax#m1' })), 'VN_ERR_JWS_UNKNOWN_KID')
})

t.test('splitKid', async (t) => {
  t.same(splitKid('fj-tax#k1'), { member: 'fj-tax', keyId: 'k1' })
  t.same(splitKid('a#b#c'), { member: 'a', keyId: 'b#c' })
  t.equal(splitKid('nohash'), undefined)
})

t.test('holder: a key removed in a newer manifest is refused after reload', async (t) => {
  const dir = t.testdir({})
  const path = join(dir, 'manifest.jws')
  await writeFile(path, `${sign(manifest(1))}\n`)
  const h = await FederationHolder.open(path, root.publicKey, T0)
  const req = signJwsJson({ n: 1 }, tax.m1.privateKey, 'fj-tax#m1')
  t.ok(verifyJwsJson(req, h.get(T0 + DAY).messageKeyResolver(T0 + DAY)), 'accepted under seq 1')

  await writeFile(path, sign(manifest(2, { iat: T0 + DAY, taxMessageKeys: [key('m2', tax.m2, T0)] })))
  const r = await h.load(path, T0 + DAY)
  t.ok(r.ok)
  t.equal(r.ok && r.changed, true)
  t.equal(h.get(T0 + DAY).seq, 2)
  t.throws(() => verifyJwsJson(req, h.get(T0 + DAY).messageKeyResolver(T0 + DAY)), { code: 'VN_ERR_JWS_UNKNOWN_KID' }, 'revoked key refused')
  const viaM2 = signJwsJson({ n: 2 }, tax.m2.privateKey, 'fj-tax#m2')
  t.ok(verifyJwsJson(viaM2, h.get(T0 + DAY).messageKeyResolver(T0 + DAY)), 'the remaining key still works')

  const again = await h.load(path, T0 + DAY)
  t.same(again.ok && again.changed, false, 'reloading the same file changes nothing')
})

t.test('holder: bad manifests never replace the good one', async (t) => {
  const dir = t.testdir({})
  const path = join(dir, 'manifest.jws')
  const good = sign(manifest(5))
  await writeFile(path, good)
  const h = await FederationHolder.open(path, root.publicKey, T0)
  const before = h.peek()

  const other = generateEd25519()
  const [hh, p, s] = sign(manifest(6)).split('.') as [string, string, string]
  const bads: Array<[string, string | null, string]> = [
    ['tampered', `${hh}.${p.slice(0, 30)}${p[30] === 'A' ? 'B' : 'A'}${p.slice(31)}.${s}`, 'VN_ERR_FED_MANIFEST_INVALID'],
    ['foreign root', signManifest(manifest(6), other.privateKey, rootKeyId(other.publicKey)), 'VN_ERR_FED_MANIFEST_INVALID'],
    ['rollback', sign(manifest(4)), 'VN_ERR_FED_MANIFEST_ROLLBACK'],
    ['same seq, other content', sign({ ...manifest(5), federation: 'other' }), 'VN_ERR_FED_MANIFEST_ROLLBACK'],
    ['expired', sign(manifest(7, { iat: T0 - 40 * DAY })), 'VN_ERR_FED_MANIFEST_EXPIRED'],
    ['garbage', 'garbage', 'VN_ERR_FED_MANIFEST_INVALID'],
    ['empty file', '', 'VN_ERR_FED_MANIFEST_INVALID'],
    ['bad schema', signJwsJson({ ...manifest(8), members: 'x' }, root.privateKey, rootKid, 'vn-manifest+jws'), 'VN_ERR_FED_MANIFEST_INVALID'],
    ['missing file', null, 'VN_ERR_FED_MANIFEST_INVALID'],
  ]
  for (const [what, content, code] of bads) {
    const target = content === null ? join(dir, 'missing.jws') : path
    if (content !== null) await writeFile(path, content)
    const r = await h.load(target, T0 + DAY)
    t.equal(r.ok, false, what)
    t.equal(!r.ok && r.error.code, code, what)
    t.equal(!r.ok && r.federation, before, `${what}: previous federation returned`)
    t.equal(h.peek(), before, `${what}: still the good one`)
    t.equal(h.get(T0 + DAY).seq, 5)
  }
})

t.test('holder: first load failures, get() guards freshness', async (t) => {
  const h = new FederationHolder(root.publicKey)
  t.equal(h.peek(), undefined)
  t.equal(codeOf(() => h.get(T0)), 'VN_ERR_FED_MANIFEST_INVALID', 'nothing loaded')
  await t.rejects(FederationHolder.open('/nonexistent/manifest.jws', root.publicKey, T0), { code: 'VN_ERR_FED_MANIFEST_INVALID' })
  const r = h.accept(sign(manifest(1)), T0)
  t.ok(r.ok)
  t.equal(h.get(T0 + 30 * DAY - 1).seq, 1)
  t.equal(codeOf(() => h.get(T0 + 30 * DAY)), 'VN_ERR_FED_MANIFEST_EXPIRED', 'a held manifest that expires is refused')
})
