/**
 * The pieces of TLS between nodes without a running node: the self-signed certificate (read back
 * by node:crypto and openssl), pins in the manifest (one member per pin), the node's own identity
 * at start-up (expired, not yet valid, not pinned, key and certificate apart, key file mode) and its
 * readiness warning within 7 days of the certificate's end.
 */
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { generateKeyPairSync, X509Certificate } from 'node:crypto'
import { chmod, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Registry } from 'prom-client'
import { selfSignedCertificate, spkiPin } from '../../src/crypto/tls-cert.js'
import { publicKeyToB64u } from '../../src/crypto/keys.js'
import { addMember, addTlsPin, createAuthority, signAuthorityManifest } from '../../src/federation/authority.js'
import { FederationHolder } from '../../src/federation/federation.js'
import { ManifestSchema } from '../../src/federation/manifest.js'
import { loadPublicKey } from '../../src/crypto/keys.js'
import { createTlsIdentity, openNodeTls, readTlsFiles, tlsFilesOf, tlsKeyFiles } from '../../src/node/tls.js'

const DAY = 86_400_000
const USCC = '11350000100000016K'

t.test('the self-signed Ed25519 certificate reads back in node:crypto and openssl, with its window', async (t) => {
  const dir = t.testdir({})
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  const notBefore = Date.UTC(2026, 0, 1)
  const pem = selfSignedCertificate(privateKey, { commonName: 'verinode fj-tax', notBefore, notAfter: Date.UTC(2051, 0, 1) })
  const x = new X509Certificate(pem)
  t.equal(x.subject, 'CN=verinode fj-tax')
  t.equal(x.issuer, 'CN=verinode fj-tax')
  t.ok(x.verify(publicKey), 'self-signed: verifies under its own key')
  t.equal(Date.parse(x.validFrom), notBefore)
  t.equal(Date.parse(x.validTo), Date.UTC(2051, 0, 1), 'GeneralizedTime from 2050 on')
  t.equal(x.ca, false)
  t.equal(spkiPin(x), spkiPin(publicKey))
  t.equal(spkiPin(privateKey), spkiPin(publicKey))
  await writeFile(join(dir, 'c.pem'), pem)
  const text = execFileSync('openssl', ['x509', '-in', join(dir, 'c.pem'), '-noout', '-text']).toString()
  t.match(text, /Version: 3/)
  t.match(text, /Signature Algorithm: ED25519/)
  t.match(text, /CA:FALSE/)
  t.throws(() => selfSignedCertificate(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, { commonName: 'x', notBefore, notAfter: notBefore + DAY }), TypeError)
  t.throws(() => selfSignedCertificate(privateKey, { commonName: 'x', notBefore, notAfter: notBefore }), TypeError)
})

t.test('manifest pins: lower-case hex, no duplicates, one member per pin', async (t) => {
  const key = publicKeyToB64u(generateKeyPairSync('ed25519').publicKey)
  const member = (id: string, tlsPins?: string[]): Record<string, unknown> => ({
    id, name: id, uscc: USCC, role: 'department', endpoint: `https://127.0.0.1:71${id.length}`,
    messageKeys: [{ kid: 'm', x: key, nbf: 0 }], logKeys: [{ kid: 'l', x: key, nbf: 0 }], ...(tlsPins === undefined ? {} : { tlsPins }),
  })
  const manifest = (members: unknown[]): unknown => ({ v: 1, federation: 'f', seq: 1, iat: 1, exp: 2, members })
  const a = 'a'.repeat(64)
  t.ok(ManifestSchema.safeParse(manifest([member('fj-a', [a]), member('fj-bb', ['b'.repeat(64)])])).success)
  t.notOk(ManifestSchema.safeParse(manifest([member('fj-a', ['A'.repeat(64)])])).success, 'upper case')
  t.notOk(ManifestSchema.safeParse(manifest([member('fj-a', [a, a])])).success, 'duplicate within a member')
  t.notOk(ManifestSchema.safeParse(manifest([member('fj-a', [a]), member('fj-bb', [a])])).success, 'one pin, two members')
  t.notOk(ManifestSchema.safeParse(manifest([member('fj-a', [])])).success, 'an empty list')
})

async function federation(dir: string, pins: string[], now: number): Promise<FederationHolder> {
  const auth = join(dir, 'auth')
  await createAuthority(auth, 'test')
  const k = (): ReturnType<typeof generateKeyPairSync>['publicKey'] => generateKeyPairSync('ed25519').publicKey
  await addMember(auth, { id: 'fj-tax', name: 'Tax', uscc: USCC, role: 'department', endpoint: 'https://127.0.0.1:7100', messageKeys: [{ key: k() }], logKeys: [{ key: k() }], tlsPins: pins }, now)
  await t.rejects(addTlsPin(auth, 'fj-tax', pins[0]!), { code: 'VN_ERR_CONFIG_INVALID' }, 'a pin listed twice')
  const r = await signAuthorityManifest(auth, { now, out: join(dir, 'manifest.jws') })
  t.ok(r.warnings.length === 0, r.warnings.join('; '))
  return FederationHolder.open(join(dir, 'manifest.jws'), await loadPublicKey(join(auth, 'federation-root.pub')), now)
}

t.test("the node's own TLS identity at start-up and in readiness", async (t) => {
  const dir = t.testdir({})
  const now = Date.now()
  const files = tlsKeyFiles(join(dir, 'keys'))
  const made = await createTlsIdentity(files, 'fj-tax', now, 5)
  t.equal((await readTlsFiles(files)).pin, made.pin)
  const fed = await federation(dir, [made.pin], now)
  t.same([...fed.get(now).tlsPinsForOrigin('https://127.0.0.1:7100')], [made.pin])
  t.equal(fed.get(now).tlsPinsForOrigin('https://127.0.0.1:7101').size, 0)
  t.equal(fed.get(now).memberByTlsPin(made.pin), 'fj-tax')

  let at = now
  const tls = await openNodeTls({ self: 'fj-tax', files, federation: fed, now: () => at })
  const registry = new Registry()
  tls.registerMetrics(registry)
  t.match(await registry.metrics(), new RegExp(`verinode_tls_certificate_expiry_seconds ${Math.floor(made.notAfter / 1000)}`))
  t.match(tls.status(), { ok: true, detail: /^warning: certificate expires at .* in 5\.0 days/ }, 'within 7 days: a warning')
  at = now - 5 * DAY + 1
  t.match(tls.status(), { ok: true, detail: /^pin [0-9a-f]{16}\.\.\., expires/ }, 'further out: no warning')
  at = made.notAfter
  t.match(tls.status(), { ok: false, detail: /expired/ })
  await t.rejects(openNodeTls({ self: 'fj-tax', files, federation: fed, now: () => made.notAfter + 1 }), { code: 'VN_ERR_TLS_CONFIG', message: /not now/ }, 'an expired certificate: no start')
  await t.rejects(openNodeTls({ self: 'fj-amr', files, federation: fed, now: () => now }), { code: 'VN_ERR_TLS_CONFIG', message: /not listed for fj-amr/ }, 'not pinned for this member')

  // key and certificate that do not belong together; a key readable by others
  const other = tlsKeyFiles(join(dir, 'other'))
  await createTlsIdentity(other, 'x', now)
  await t.rejects(readTlsFiles({ key: other.key, cert: files.cert }), { code: 'VN_ERR_TLS_CONFIG', message: /is not the certificate of the key/ })
  await chmod(other.key, 0o644)
  await t.rejects(readTlsFiles(other), { code: 'VN_ERR_TLS_CONFIG', message: /too permissive/ })
  await writeFile(join(dir, 'junk.pem'), 'not a certificate')
  await t.rejects(readTlsFiles({ key: files.key, cert: join(dir, 'junk.pem') }), { code: 'VN_ERR_TLS_CONFIG', message: /not a PEM certificate/ })
  await t.rejects(readTlsFiles({ key: join(dir, 'missing.key'), cert: files.cert }), { code: 'VN_ERR_TLS_CONFIG', message: /cannot be read/ })
  t.match(await readFile(files.cert, 'utf8'), /^-----BEGIN CERTIFICATE-----\n/)
})

t.test('which TLS files a config names', async (t) => {
  const path = (p: string): string => `/cfg/${p}`
  t.equal(tlsFilesOf({ keysDir: 'keys' }, path), undefined, 'no tls: plain HTTP')
  t.same(tlsFilesOf({ keysDir: 'keys', tls: {} }, path), { key: '/cfg/keys/tls.key', cert: '/cfg/keys/tls.crt' }, 'default: in the keys folder')
  t.same(tlsFilesOf({ keysDir: '/keys', tls: { cert: 'certs/node.pem' } }, (p) => (p.startsWith('/') ? p : `/cfg/${p}`)), { key: '/keys/tls.key', cert: '/cfg/certs/node.pem' })
})
