import t from 'tap'
import { execFileSync } from 'node:child_process'
import { createCipheriv, createHash, createHmac, generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sm2 as smCrypto } from 'sm-crypto-v2'
import {
  SM2_DEFAULT_ID, generateSm2, sm2Curve, sm2KeyObjectFromPrivate, sm2KeyObjectFromPublic, sm2p256v1, sm2PrivateKeyFromKeyObject,
  sm2PrivateKeyFromScalar, sm2PublicKeyFromKeyObject, sm2PublicKeyFromPoint, sm2Sign, sm2Verify, type Sm2CurveParams,
} from '../../src/crypto/sm2.js'
import { sm4Open, sm4Seal } from '../../src/crypto/sm4-aead.js'

interface Sm2Vector { name: string; curve: 'sm2p256v1' | Record<keyof Sm2CurveParams, string>; id: string; d: string; message: string; k: string; r: string; s: string }
const vectors = JSON.parse(readFileSync(new URL('../vectors/sm.json', import.meta.url), 'utf8')) as {
  sm2: Sm2Vector[]
  sm3: { message: string; digest: string }[]
  sm4: { key: string; plaintext: string; ciphertext: string }[]
}
const big = (hex: string): bigint => BigInt(`0x${hex}`)

t.test('SM3 and SM4 on node:crypto match the standards\' vectors', async (t) => {
  for (const v of vectors.sm3) t.equal(createHash('sm3').update(v.message).digest('hex'), v.digest, `SM3("${v.message.slice(0, 8)}…")`)
  for (const v of vectors.sm4) {
    const c = createCipheriv('sm4-ecb', Buffer.from(v.key, 'hex'), null).setAutoPadding(false)
    t.equal(Buffer.concat([c.update(Buffer.from(v.plaintext, 'hex')), c.final()]).toString('hex'), v.ciphertext, 'SM4 block')
  }
})

t.test('SM2 signatures match GB/T 32918 Annex A on the example and the recommended curve', async (t) => {
  for (const v of vectors.sm2) {
    const curve = v.curve === 'sm2p256v1' ? sm2p256v1() : sm2Curve({ p: big(v.curve.p), a: big(v.curve.a), b: big(v.curve.b), Gx: big(v.curve.Gx), Gy: big(v.curve.Gy), n: big(v.curve.n) })
    const key = sm2PrivateKeyFromScalar(curve, big(v.d))
    const msg = Buffer.from(v.message, 'ascii')
    const sig = sm2Sign(key, msg, { id: v.id, k: big(v.k) })
    t.equal(Buffer.from(sig).toString('hex').toUpperCase(), v.r + v.s, `${v.name}: r ‖ s`)
    t.ok(sm2Verify(key.publicKey, msg, sig, { id: v.id }), `${v.name}: verifies`)
    t.notOk(sm2Verify(key.publicKey, msg, sig, { id: v.id === SM2_DEFAULT_ID ? 'another id' : SM2_DEFAULT_ID }), `${v.name}: not under another ID`)
    t.notOk(sm2Verify(key.publicKey, Buffer.from(`${v.message}.`), sig, { id: v.id }), `${v.name}: not for another message`)
    for (const i of [0, 31, 32, 63]) {
      const bad = Buffer.from(sig)
      bad[i] = (bad[i] as number) ^ 1
      t.notOk(sm2Verify(key.publicKey, msg, bad, { id: v.id }), `${v.name}: byte ${i} flipped`)
    }
  }
})

t.test('SM2 refuses out-of-range signatures and keys with coded errors', async (t) => {
  const curve = sm2p256v1()
  const { n } = curve.params
  const key = sm2PrivateKeyFromScalar(curve, 12345n)
  const msg = Buffer.from('m')
  const sig = sm2Sign(key, msg)
  const hex32 = (x: bigint): string => x.toString(16).padStart(64, '0')
  const s = Buffer.from(sig.subarray(32)).toString('hex')
  for (const [what, r] of [['r = 0', 0n], ['r = n', n], ['r > n', n + 5n]] as const) t.notOk(sm2Verify(key.publicKey, msg, Buffer.from(hex32(r) + s, 'hex')), what)
  t.notOk(sm2Verify(key.publicKey, msg, Buffer.from(Buffer.from(sig.subarray(0, 32)).toString('hex') + hex32(0n), 'hex')), 's = 0')
  t.notOk(sm2Verify(key.publicKey, msg, sig.subarray(0, 63)), '63 bytes')
  t.notOk(sm2Verify(key.publicKey, msg, new Uint8Array(64)), 'all zero')
  t.throws(() => sm2PrivateKeyFromScalar(curve, 0n), { code: 'VN_ERR_SM_KEY' }, 'd = 0')
  t.throws(() => sm2PrivateKeyFromScalar(curve, n - 1n), { code: 'VN_ERR_SM_KEY' }, 'd = n − 1 (1 + d not invertible)')
  t.throws(() => sm2PublicKeyFromPoint(curve, curve.params.Gx, curve.params.Gy + 1n), { code: 'VN_ERR_SM_KEY' }, 'a point off the curve')
  t.throws(() => sm2PublicKeyFromKeyObject(generateKeyPairSync('ed25519').publicKey), { code: 'VN_ERR_SM_KEY' }, 'an Ed25519 key')
  t.throws(() => sm2PublicKeyFromKeyObject(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey), { code: 'VN_ERR_SM_KEY' }, 'a P-256 key')
  t.throws(() => sm2PrivateKeyFromKeyObject(generateSm2().publicKey), { code: 'VN_ERR_SM_KEY' }, 'a public key where a private one is needed')
})

/** r ‖ s → DER ECDSA-Sig-Value (what OpenSSL reads and writes for SM2). */
function toDer(sig: Uint8Array): Buffer {
  const int = (b: Uint8Array): Buffer => {
    let x = Buffer.from(b)
    while (x.length > 1 && x[0] === 0) x = x.subarray(1)
    if ((x[0] as number) & 0x80) x = Buffer.concat([Buffer.from([0]), x])
    return Buffer.concat([Buffer.from([0x02, x.length]), x])
  }
  const body = Buffer.concat([int(sig.subarray(0, 32)), int(sig.subarray(32))])
  return Buffer.concat([Buffer.from([0x30, body.length]), body])
}
function fromDer(der: Buffer): Uint8Array {
  const out = new Uint8Array(64)
  let i = 2
  for (const off of [0, 32]) {
    const len = der[i + 1] as number
    const v = der.subarray(i + 2, i + 2 + len)
    const trimmed = v.length > 32 ? v.subarray(v.length - 32) : v
    out.set(trimmed, off + 32 - trimmed.length)
    i += 2 + len
  }
  return out
}

t.test('SM2 interoperates both ways with OpenSSL\'s command line (default ID) and its key files', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vn-sm2-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const { privateKey } = generateSm2()
  const priv = sm2PrivateKeyFromKeyObject(privateKey)
  // our key objects round-trip through PKCS#8 / SPKI files that openssl reads
  const keyPem = join(dir, 'k.pem')
  const pubPem = join(dir, 'p.pem')
  writeFileSync(keyPem, sm2KeyObjectFromPrivate(priv).export({ format: 'pem', type: 'pkcs8' }))
  writeFileSync(pubPem, sm2KeyObjectFromPublic(priv.publicKey).export({ format: 'pem', type: 'spki' }))
  t.match(execFileSync('openssl', ['pkey', '-in', keyPem, '-noout', '-text'], { encoding: 'utf8' }), /ASN1 OID: SM2/, 'openssl pkey reads the private key file')
  const opensslPub = execFileSync('openssl', ['pkey', '-in', keyPem, '-pubout'], { encoding: 'utf8' })
  t.equal(opensslPub, readFileSync(pubPem, 'utf8'), 'openssl derives the same public key file')
  for (let i = 0; i < 8; i++) {
    const msg = join(dir, `m${i}`)
    const data = Buffer.from(`message ${i} `.repeat(i * 7 + 1))
    writeFileSync(msg, data)
    // OpenSSL signs, we verify
    const sigFile = join(dir, `s${i}.der`)
    execFileSync('openssl', ['pkeyutl', '-sign', '-rawin', '-digest', 'sm3', '-inkey', keyPem, '-in', msg, '-out', sigFile, '-pkeyopt', `distid:${SM2_DEFAULT_ID}`])
    const theirs = fromDer(readFileSync(sigFile))
    t.ok(sm2Verify(priv.publicKey, data, theirs), `OpenSSL's signature ${i} verifies here`)
    // we sign, OpenSSL verifies
    const ours = join(dir, `o${i}.der`)
    writeFileSync(ours, toDer(sm2Sign(priv, data)))
    t.match(execFileSync('openssl', ['pkeyutl', '-verify', '-rawin', '-digest', 'sm3', '-pubin', '-inkey', pubPem, '-in', msg, '-sigfile', ours, '-pkeyopt', `distid:${SM2_DEFAULT_ID}`], { encoding: 'utf8' }), /Signature Verified Successfully/, `our signature ${i} verifies in OpenSSL`)
  }
  // and a signature of ours under another ID does not verify in OpenSSL under the default one
  const msg = join(dir, 'other')
  writeFileSync(msg, 'x')
  const other = join(dir, 'other.der')
  writeFileSync(other, toDer(sm2Sign(priv, Buffer.from('x'), { id: 'another' })))
  t.throws(() => execFileSync('openssl', ['pkeyutl', '-verify', '-rawin', '-digest', 'sm3', '-pubin', '-inkey', pubPem, '-in', msg, '-sigfile', other, '-pkeyopt', `distid:${SM2_DEFAULT_ID}`], { stdio: 'pipe' }), 'another ID is another signature')
})

t.test('SM2 interoperates both ways with sm-crypto-v2', async (t) => {
  const key = sm2PrivateKeyFromKeyObject(generateSm2().privateKey)
  const privHex = key.d.toString(16).padStart(64, '0')
  const pubHex = `04${key.publicKey.xy.toString('hex')}`
  for (let i = 0; i < 8; i++) {
    const text = `消息 ${i} `.repeat(i + 1)
    const data = Buffer.from(text, 'utf8')
    const theirs = Buffer.from(smCrypto.doSignature(data, privHex, { hash: true }), 'hex')
    t.ok(sm2Verify(key.publicKey, data, theirs), `sm-crypto-v2 signature ${i} verifies here`)
    const ours = Buffer.from(sm2Sign(key, data)).toString('hex')
    t.ok(smCrypto.doVerifySignature(data, ours, pubHex, { hash: true }), `our signature ${i} verifies in sm-crypto-v2`)
  }
})

t.test('SM4 sealing: round trip, binding, tampering, and the CTR layer against openssl enc', async (t) => {
  const key = new Uint8Array(32).map((_, i) => i * 7 + 1)
  const aad = Buffer.from('xid-1')
  const plain = Buffer.from('["disclosure one","disclosure two"]')
  const sealed = sm4Seal(key, plain, aad)
  t.same(Buffer.from(sm4Open(key, sealed.nonce, sealed.ciphertext, aad)), plain, 'opens')
  t.equal(sealed.ciphertext.length, plain.length + 32, 'ciphertext ‖ 32-byte tag')
  t.notSame(Buffer.from(sm4Seal(key, plain, aad).nonce), Buffer.from(sealed.nonce), 'a fresh nonce each time')
  t.throws(() => sm4Open(key, sealed.nonce, sealed.ciphertext, Buffer.from('xid-2')), { code: 'VN_ERR_SM_SEAL_AUTH' }, 'other bound data')
  for (const i of [0, plain.length - 1, plain.length, sealed.ciphertext.length - 1]) {
    const bad = Buffer.from(sealed.ciphertext)
    bad[i] = (bad[i] as number) ^ 1
    t.throws(() => sm4Open(key, sealed.nonce, bad, aad), { code: 'VN_ERR_SM_SEAL_AUTH' }, `byte ${i} changed`)
  }
  const badNonce = Buffer.from(sealed.nonce)
  badNonce[0] = (badNonce[0] as number) ^ 1
  t.throws(() => sm4Open(key, badNonce, sealed.ciphertext, aad), { code: 'VN_ERR_SM_SEAL_AUTH' }, 'nonce changed')
  t.throws(() => sm4Open(key, sealed.nonce, sealed.ciphertext.subarray(0, 31), aad), { code: 'VN_ERR_SM_SEAL_AUTH' }, 'shorter than a tag')
  t.throws(() => sm4Open(key.subarray(0, 16), sealed.nonce, sealed.ciphertext, aad), { code: 'VN_ERR_CONFIG_INVALID' }, 'a 16-byte key')
  // The encryption layer is plain SM4-CTR under the derived key: openssl enc gives the same bytes.
  const encKey = createHmac('sm3', key).update('verinode/sm4-ctr').digest().subarray(0, 16)
  const dir = mkdtempSync(join(tmpdir(), 'vn-sm4-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'p'), plain)
  const theirs = execFileSync('openssl', ['enc', '-sm4-ctr', '-K', encKey.toString('hex'), '-iv', Buffer.from(sealed.nonce).toString('hex'), '-in', join(dir, 'p')])
  t.same(theirs, Buffer.from(sealed.ciphertext.subarray(0, plain.length)), 'SM4-CTR matches openssl enc -sm4-ctr')
})
