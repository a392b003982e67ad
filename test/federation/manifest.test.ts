import t from 'tap'
import { compactVerify, importJWK } from 'jose'
import { generateEd25519, publicKeyToB64u } from '../../src/crypto/keys.js'
import { signJwsJson } from '../../src/crypto/jws.js'
import type { VnError } from '../../src/errors.js'
import {
  MANIFEST_TYP,
  ManifestSchema,
  jwkThumbprint,
  keyIdFor,
  rootKeyId,
  signManifest,
  verifyManifest,
  type Manifest,
} from '../../src/federation/manifest.js'

const root = generateEd25519()
const rootKid = rootKeyId(root.publicKey)
const msg = generateEd25519()
const log = generateEd25519()
const T0 = Date.UTC(2026, 10, 1)
const DAY = 86_400_000

const base = (): Manifest => ({
  v: 1,
  federation: '福建省政务数据共享联盟',
  seq: 3,
  iat: T0,
  exp: T0 + 30 * DAY,
  members: [
    {
      id: 'fj-tax',
      name: '国家税务总局福建省税务局',
      uscc: '11350000100000016K',
      role: 'department',
      endpoint: 'http://127.0.0.1:7102',
      messageKeys: [{ kid: 'm1', x: publicKeyToB64u(msg.publicKey), nbf: T0 }],
      logKeys: [{ kid: 'l1', x: publicKeyToB64u(log.publicKey), nbf: T0 }],
    },
    {
      id: 'fj-audit',
      name: '审计厅',
      uscc: '11350000100000024E',
      role: 'auditor',
      messageKeys: [{ kid: 'a1', x: publicKeyToB64u(msg.publicKey), nbf: T0, exp: T0 + 10 * DAY }],
      logKeys: [],
    },
  ],
})

const codeOf = (fn: () => unknown): { code?: string; detail?: string } => {
  try {
    fn()
  } catch (e) {
    const v = e as VnError
    return { code: v.code, ...(v.detail === undefined ? {} : { detail: v.detail }) }
  }
  return {}
}
const flip = (s: string, i: number): string => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1)

t.test('sign and verify round trip; jose agrees', async (t) => {
  const jws = signManifest(base(), root.privateKey, rootKid)
  const m = verifyManifest(jws, root.publicKey, { now: T0 + DAY })
  t.same(m, base())
  const key = await importJWK({ kty: 'OKP', crv: 'Ed25519', x: publicKeyToB64u(root.publicKey) }, 'EdDSA')
  const r = await compactVerify(jws, key, { algorithms: ['EdDSA'] })
  t.equal(r.protectedHeader.typ, MANIFEST_TYP)
  t.equal(r.protectedHeader.kid, rootKid)
  t.match(rootKid, /^federation-root#[A-Za-z0-9_-]{43}$/)
})

t.test('RFC 7638 thumbprint known answer (RFC 8037 §A.3 key)', async (t) => {
  const { createPublicKey } = await import('node:crypto')
  const k = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo' }, format: 'jwk' })
  t.equal(jwkThumbprint(k), 'kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k')
  t.equal(keyIdFor(k), 'kPrK_qmxVWaYVA9w')
})

t.test('tampering is rejected: flip a byte anywhere', async (t) => {
  const jws = signManifest(base(), root.privateKey, rootKid)
  const [h, p, s] = jws.split('.') as [string, string, string]
  for (const [what, bad] of [
    ['payload', `${h}.${flip(p, 40)}.${s}`],
    ['signature', `${h}.${p}.${flip(s, 10)}`],
    ['header', `${flip(h, 20)}.${p}.${s}`],
  ] as const) {
    const r = codeOf(() => verifyManifest(bad, root.publicKey, { now: T0 }))
    t.equal(r.code, 'VN_ERR_FED_MANIFEST_INVALID', what)
    t.match(r.detail, /^signature: VN_ERR_JWS_/, what)
  }
  // A re-encoded payload with one changed value, keeping the old signature.
  const changed = Buffer.from(JSON.stringify({ ...base(), seq: 4 })).toString('base64url')
  t.match(codeOf(() => verifyManifest(`${h}.${changed}.${s}`, root.publicKey, { now: T0 })), { code: 'VN_ERR_FED_MANIFEST_INVALID', detail: /VN_ERR_JWS_SIGNATURE/ })
})

t.test('only the trust anchor, only a federation-root kid, only the manifest typ', async (t) => {
  const other = generateEd25519()
  const forged = signManifest(base(), other.privateKey, rootKeyId(other.publicKey))
  t.match(codeOf(() => verifyManifest(forged, root.publicKey, { now: T0 })), { code: 'VN_ERR_FED_MANIFEST_INVALID', detail: /VN_ERR_JWS_SIGNATURE/ })
  // A member key signing a manifest-shaped payload is not a root signature.
  const byMember = signJwsJson(base(), root.privateKey, 'fj-tax#m1', MANIFEST_TYP)
  t.match(codeOf(() => verifyManifest(byMember, root.publicKey, { now: T0 })), { code: 'VN_ERR_FED_MANIFEST_INVALID', detail: /VN_ERR_JWS_UNKNOWN_KID/ })
  const wrongTyp = signJwsJson(base(), root.privateKey, rootKid, 'vn-req+jws')
  t.match(codeOf(() => verifyManifest(wrongTyp, root.publicKey, { now: T0 })), { code: 'VN_ERR_FED_MANIFEST_INVALID', detail: /VN_ERR_JWS_HEADER/ })
  t.match(codeOf(() => verifyManifest('not a jws', root.publicKey, { now: T0 })), { code: 'VN_ERR_FED_MANIFEST_INVALID', detail: /VN_ERR_JWS_MALFORMED/ })
  t.match(codeOf(() => signManifest(base(), root.privateKey, 'fj-tax#m1')), { code: 'VN_ERR_FED_MANIFEST_INVALID' })
  t.match(codeOf(() => signManifest(base(), root.privateKey, 'federation-root#')), { code: 'VN_ERR_FED_MANIFEST_INVALID' })
})

t.test('schema errors name the zod path', async (t) => {
  type Mut = (m: Manifest & Record<string, unknown>) => void
  const cases: Array<[string, Mut, RegExp]> = [
    ['bad member id', (m) => void (m.members[0]!.id = 'FJ_TAX'), /^members\[0\]\.id: /],
    ['one-char member id', (m) => void (m.members[0]!.id = 'f'), /^members\[0\]\.id: /],
    ['department without endpoint', (m) => void delete m.members[0]!.endpoint, /^members\[0\]\.endpoint: required for role department/],
    ['auditor with endpoint', (m) => void (m.members[1]!.endpoint = 'http://x'), /^members\[1\]\.endpoint: /],
    ['endpoint not http(s)', (m) => void (m.members[0]!.endpoint = 'file:///etc/passwd'), /^members\[0\]\.endpoint: /],
    ['duplicate member id', (m) => void (m.members[1]!.id = 'fj-tax'), /^members\[1\]\.id: duplicate member id/],
    ['duplicate kid across lists', (m) => void (m.members[0]!.logKeys[0]!.kid = 'm1'), /^members\[0\]\.logKeys\[0\]\.kid: duplicate kid/],
    ['uscc shape', (m) => void (m.members[0]!.uscc = '1135000010000001'), /^members\[0\]\.uscc: /],
    ['uscc check character', (m) => void (m.members[0]!.uscc = '11350000100000016A'), /^members\[0\]\.uscc: check character/],
    ['x not 32 bytes', (m) => void (m.members[0]!.messageKeys[0]!.x = 'AAAA'), /^members\[0\]\.messageKeys\[0\]\.x: /],
    ['kid with #', (m) => void (m.members[0]!.messageKeys[0]!.kid = 'a#b'), /^members\[0\]\.messageKeys\[0\]\.kid: /],
    ['key exp before nbf', (m) => void (m.members[0]!.messageKeys[0]!.exp = T0 - 1), /^members\[0\]\.messageKeys\[0\]\.exp: /],
    ['seq 0', (m) => void (m.seq = 0), /^seq: /],
    ['v 2', (m) => void (m.v = 2 as 1), /^v: /],
    ['exp before iat', (m) => void (m.exp = T0), /^exp: exp must be after iat/],
    ['unknown member field', (m) => void ((m.members[0] as Record<string, unknown>).extra = 1), /^members\[0\]: /],
    ['unknown role', (m) => void ((m.members[0] as Record<string, unknown>).role = 'admin'), /^members\[0\]\.role: /],
    ['control character in name', (m) => void (m.members[0]!.name = 'a\u0007b'), /^members\[0\]\.name: /],
    ['tls fingerprint', (m) => void (m.members[0]!.tlsFingerprint = 'AB'), /^members\[0\]\.tlsFingerprint: /],
  ]
  for (const [what, mut, detail] of cases) {
    const m = base() as Manifest & Record<string, unknown>
    mut(m)
    // Sign the bad payload with the real root key: the schema, not the signature, must catch it.
    const jws = signJwsJson(m, root.privateKey, rootKid, MANIFEST_TYP)
    const r = codeOf(() => verifyManifest(jws, root.publicKey, { now: T0 }))
    t.equal(r.code, 'VN_ERR_FED_MANIFEST_INVALID', what)
    t.match(r.detail, detail, what)
  }
  t.ok(ManifestSchema.safeParse(base()).success, 'the base manifest itself is valid')
})

t.test('expiry is exclusive; allowExpired for history', async (t) => {
  const jws = signManifest(base(), root.privateKey, rootKid)
  t.equal(verifyManifest(jws, root.publicKey, { now: T0 + 30 * DAY - 1 }).seq, 3)
  t.match(codeOf(() => verifyManifest(jws, root.publicKey, { now: T0 + 30 * DAY })), { code: 'VN_ERR_FED_MANIFEST_EXPIRED' })
  t.equal(verifyManifest(jws, root.publicKey, { now: T0 + 300 * DAY, allowExpired: true }).seq, 3)
})

t.test('rollback: seq below minSeq', async (t) => {
  const jws = signManifest(base(), root.privateKey, rootKid)
  t.equal(verifyManifest(jws, root.publicKey, { now: T0, minSeq: 3 }).seq, 3, 'equal seq is fine')
  t.match(codeOf(() => verifyManifest(jws, root.publicKey, { now: T0, minSeq: 4 })), { code: 'VN_ERR_FED_MANIFEST_ROLLBACK', detail: 'seq 3 is below 4' })
})
