/**
 * Signed-note checkpoints and cosignatures under the `sm` crypto profile (docs/PROTOCOL.md "Crypto
 * profiles"): an SM2 log key signs with type 0xfe, an SM2 witness cosigns with type 0xfd, key ids
 * use SM3, vkeys round-trip, and neither verifies as the other or as Ed25519. Also: SM2 key files
 * as `verinode init` writes them are read by `openssl pkey` as keys on the curve SM2.
 */
import t from 'tap'
import { createHash } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import {
  cosignCheckpoint, cosignatureSigner, cosignatureVerifier, noteSigner, noteVerifier, notePublicKey,
  formatVerifierKey, keyId, openCheckpoint, parseVerifierKey, signCheckpoint,
} from '../../src/log/checkpoint.js'
import { generateEd25519, generateKeyPairFor, loadPrivateKey, writePrivateKey } from '../../src/crypto/keys.js'
import { generateSm2 } from '../../src/crypto/sm2.js'
import { useProfile } from '../../src/crypto/profile.js'
import { rootFromLeafHashes, leafHash } from '../../src/log/merkle.js'

useProfile('sm')
const origin = 'fujian-demo/fj-psb'

t.test('an SM2 log key signs checkpoints that an SM2 verifier (and its vkey) accepts', async (t) => {
  const log = generateSm2()
  const raw = notePublicKey(log.privateKey)
  t.equal(raw.length, 65, 'the raw SM2 point')
  const rootHash = rootFromLeafHashes([leafHash(Buffer.from('a')), leafHash(Buffer.from('b'))])
  const note = signCheckpoint({ origin, size: 2, rootHash }, noteSigner(origin, log.privateKey))
  const v = noteVerifier(origin, raw)
  t.equal(v.sigType, 0xfe)
  const expectId = createHash('sm3').update(origin, 'utf8').update(Buffer.from([0x0a, 0xfe])).update(raw).digest().subarray(0, 4)
  t.same(Buffer.from(v.keyId), expectId, 'key id = SM3(name ‖ 0x0A ‖ 0xfe ‖ point)[:4]')
  t.same(Buffer.from(keyId(origin, 0xfe, raw)), expectId)
  t.equal(openCheckpoint(note, [v]).checkpoint.size, 2, 'verifies')
  const vkey = formatVerifierKey(origin, raw, 0xfe)
  t.equal(openCheckpoint(note, [parseVerifierKey(vkey)]).checkpoint.size, 2, 'verifies through its vkey')
  // Another SM2 key, or an Ed25519 one, does not verify it.
  t.throws(() => openCheckpoint(note, [noteVerifier(origin, notePublicKey(generateSm2().publicKey))]), { code: 'VN_ERR_LOG_NOTE_SIGNATURE' })
  t.throws(() => openCheckpoint(note, [noteVerifier(origin, notePublicKey(generateEd25519().publicKey))]), { code: 'VN_ERR_LOG_NOTE_SIGNATURE' })
  // A changed signature fails.
  const lines = note.split('\n')
  const sigLine = lines.findIndex((l) => l.startsWith('\u2014 '))
  const b64 = lines[sigLine]!.split(' ')[2]!
  const raw2 = Buffer.from(b64, 'base64')
  raw2[20] = raw2[20]! ^ 1
  lines[sigLine] = `\u2014 ${origin} ${raw2.toString('base64')}`
  t.throws(() => openCheckpoint(lines.join('\n'), [v]), { code: 'VN_ERR_LOG_NOTE_SIGNATURE' })
})

t.test('an SM2 witness cosigns with type 0xfd', async (t) => {
  const log = generateSm2()
  const witness = generateSm2()
  const rootHash = rootFromLeafHashes([leafHash(Buffer.from('x'))])
  const note = signCheckpoint({ origin, size: 1, rootHash }, noteSigner(origin, log.privateKey))
  const wName = 'fujian-demo/fj-tax'
  const cosigned = cosignCheckpoint(note, cosignatureSigner(wName, witness.privateKey, () => 1_800_000_000))
  const cv = cosignatureVerifier(wName, notePublicKey(witness.publicKey))
  t.equal(cv.sigType, 0xfd)
  const opened = openCheckpoint(cosigned, [noteVerifier(origin, notePublicKey(log.publicKey)), cv])
  t.equal(opened.note.signatures.length, 2, 'the log signature and the cosignature both verify')
  t.equal(parseVerifierKey(formatVerifierKey(wName, notePublicKey(witness.publicKey), 0xfd)).sigType, 0xfd, 'vkey round trip')
})

t.test('SM2 key files are PKCS#8 with the SM2 curve, read by openssl pkey', async (t) => {
  const dir = t.testdir({})
  const file = join(dir, 'message.key')
  const kp = generateKeyPairFor('sm')
  await writePrivateKey(file, kp.privateKey)
  const back = await loadPrivateKey(file)
  t.same(notePublicKey(back), notePublicKey(kp.publicKey), 'reads back as the same key')
  let text: string
  try {
    text = execFileSync('openssl', ['pkey', '-in', file, '-noout', '-text'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  } catch {
    t.comment('no openssl here: the openssl check is skipped')
    return
  }
  t.match(text, /ASN1 OID: SM2/, 'openssl sees a key on the curve SM2')
})
