import t from 'tap'
import { chmod, stat, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateEd25519, writePrivateKey, loadPrivateKey, writePublicKey, loadPublicKey, publicKeyToB64u, publicKeyFromB64u } from '../../src/crypto/keys.js'

t.test('private keys are 0600 PKCS#8 and round-trip', async (t) => {
  const dir = t.testdir({})
  const kp = generateEd25519()
  const p = join(dir, 'keys', 'message.key')
  await writePrivateKey(p, kp.privateKey)
  t.equal((await stat(p)).mode & 0o777, 0o600)
  t.match(await readFile(p, 'utf8'), new RegExp('^-----BEGIN ' + 'PRIVATE KEY-----'), 'PKCS#8 PEM')
  const back = await loadPrivateKey(p)
  t.equal(publicKeyToB64u(back), publicKeyToB64u(kp.publicKey))
  await t.rejects(writePrivateKey(p, kp.privateKey), 'never overwrites')
  await chmod(p, 0o644)
  await t.rejects(loadPrivateKey(p), { code: 'VN_ERR_KEY_FILE' })
})

t.test('public keys', async (t) => {
  const dir = t.testdir({ 'bad.pub': 'zz\n', 'rsa.key': 'nope' })
  const kp = generateEd25519()
  await writePublicKey(join(dir, 'a.pub'), kp.publicKey)
  t.equal(publicKeyToB64u(await loadPublicKey(join(dir, 'a.pub'))), publicKeyToB64u(kp.publicKey))
  await t.rejects(loadPublicKey(join(dir, 'bad.pub')), { code: 'VN_ERR_KEY_FILE' })
  await t.rejects(loadPublicKey(join(dir, 'missing.pub')), { code: 'VN_ERR_KEY_FILE' })
  await chmod(join(dir, 'rsa.key'), 0o600)
  await t.rejects(loadPrivateKey(join(dir, 'rsa.key')), { code: 'VN_ERR_KEY_FILE' })
  t.throws(() => publicKeyFromB64u('AAAA'), TypeError)
})
