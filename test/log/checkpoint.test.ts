import t from 'tap'
import { generateKeyPairSync } from 'node:crypto'
import {
  ed25519PrivateKeyFromSeed, notePublicKey, noteSigner, noteVerifier, formatVerifierKey,
  parseVerifierKey, parseNote, openNote, signNote, formatCheckpoint, parseCheckpoint, signCheckpoint, openCheckpoint,
  cosignatureSigner, cosignatureVerifier, cosignatureTimestamp, cosignCheckpoint, keyId, SIG_TYPE_COSIGNATURE_V1,
} from '../../src/log/checkpoint.js'
import { VnError } from '../../src/errors.js'

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn()
    return undefined
  } catch (e) {
    return e instanceof VnError ? e.code : `not a VnError: ${String(e)}`
  }
}

// golang.org/x/mod/sumdb/note note_test.go (BSD-3-Clause): keys, text and signatures.
const PETER_SKEY_B64 = 'AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz' // 0x01 ‖ Ed25519 seed
const PETER_VKEY = 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW'
const ENOCH_VKEY = 'EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop'
const TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
const PETER_SIG = '— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n'
const ENOCH_SIG = '— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n'

const peterKey = (): ReturnType<typeof ed25519PrivateKeyFromSeed> => ed25519PrivateKeyFromSeed(new Uint8Array(Buffer.from(PETER_SKEY_B64, 'base64')).subarray(1))

t.test('Go sumdb/note known answers: key ID, vkey, signature bytes', async (t) => {
  const key = peterKey()
  const signer = noteSigner('PeterNeumann', key)
  t.equal(Buffer.from(signer.keyId).toString('hex'), 'c74f20a3')
  t.equal(formatVerifierKey('PeterNeumann', notePublicKey(key)), PETER_VKEY)
  t.equal(signNote(TEXT, [signer]), `${TEXT}\n${PETER_SIG}`, 'Ed25519 is deterministic: byte-identical to Go')
  const opened = openNote(`${TEXT}\n${PETER_SIG}`, [parseVerifierKey(PETER_VKEY)])
  t.equal(opened.text, TEXT)
  t.equal(opened.verified.length, 1)
})

t.test('unknown keys are tolerated; both verify when both keys are known', async (t) => {
  const msg = `${TEXT}\n${PETER_SIG}${ENOCH_SIG}`
  const one = openNote(msg, [parseVerifierKey(PETER_VKEY)])
  t.same(one.verified.map((s) => s.name), ['PeterNeumann'])
  t.same(one.unverified.map((s) => s.name), ['EnochRoot'])
  const both = openNote(msg, [parseVerifierKey(PETER_VKEY), parseVerifierKey(ENOCH_VKEY)])
  t.same(both.verified.map((s) => s.name), ['PeterNeumann', 'EnochRoot'])
  t.equal(codeOf(() => openNote(msg, [])), 'VN_ERR_LOG_NOTE_SIGNATURE', 'no known key at all')
  t.equal(codeOf(() => openNote(msg, [parseVerifierKey(PETER_VKEY), parseVerifierKey(PETER_VKEY)])), 'VN_ERR_LOG_KEY_INVALID', 'ambiguous verifiers')
})

t.test('tampering: flipped text or signature from a known key rejects the note', async (t) => {
  const v = [parseVerifierKey(PETER_VKEY)]
  t.equal(codeOf(() => openNote(`${TEXT.replace('cryptography', 'cryptographY')}\n${PETER_SIG}`, v)), 'VN_ERR_LOG_NOTE_SIGNATURE')
  const badSig = PETER_SIG.slice(0, 60) + 'ABCD' + PETER_SIG.slice(60)
  t.equal(codeOf(() => openNote(`${TEXT}\n${badSig}`, v)), 'VN_ERR_LOG_NOTE_SIGNATURE')
  // A bad signature from a known key rejects the note even when another known signature verifies.
  const enochBad = ENOCH_SIG.slice(0, 60) + 'ABCD' + ENOCH_SIG.slice(60)
  t.equal(codeOf(() => openNote(`${TEXT}\n${PETER_SIG}${enochBad}`, [...v, parseVerifierKey(ENOCH_VKEY)])), 'VN_ERR_LOG_NOTE_SIGNATURE')
  // ... but is ignored when that key is unknown.
  t.equal(codeOf(() => openNote(`${TEXT}\n${PETER_SIG}${enochBad}`, v)), undefined)
})

t.test('malformed notes are rejected with VN_ERR_LOG_NOTE_MALFORMED (Go badMsgs and more)', async (t) => {
  const bad = [
    TEXT,
    `${TEXT}\n`,
    `${TEXT}\n${PETER_SIG.slice(0, -1)}`,
    `\x01${TEXT}\n${PETER_SIG}`,
    `${TEXT}\n— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n`,
    `${TEXT}\n${PETER_SIG}Unexpected line.\n`,
    `${TEXT}\n${PETER_SIG.repeat(101)}`,
    `${TEXT}\n- PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n`,
    `${TEXT}\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM\n`,
    `${TEXT}\n— PeterNeumann AAAAAA==\n`,
    `${TEXT}\n— a+b x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n`,
    `${TEXT}\r\n${PETER_SIG}`,
    `${TEXT}\n\uD800${PETER_SIG}`,
  ]
  for (const [i, m] of bad.entries()) t.equal(codeOf(() => openNote(m, [parseVerifierKey(PETER_VKEY)])), 'VN_ERR_LOG_NOTE_MALFORMED', `bad[${i}]`)
  t.equal(codeOf(() => parseNote(new Uint8Array([0xff, 0x0a, 0x0a]))), 'VN_ERR_LOG_NOTE_MALFORMED', 'invalid UTF-8 bytes')
  t.equal(codeOf(() => parseNote(new TextEncoder().encode(`${TEXT}\n${PETER_SIG}`))), undefined, 'valid bytes parse')
})

t.test('note text may contain empty lines (signed-note example)', async (t) => {
  const n = parseNote('Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned è subito sera.\n\n— quasimodo.example/salvatore NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n')
  t.equal(n.text, 'Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned è subito sera.\n')
  t.equal(n.signatures[0]?.name, 'quasimodo.example/salvatore')
  const { privateKey } = generateKeyPairSync('ed25519')
  const s = noteSigner('x.example/k', privateKey)
  const signed = signNote('a\n\nb\n', [s])
  t.equal(openNote(signed, [noteVerifier('x.example/k', notePublicKey(privateKey))]).text, 'a\n\nb\n')
  t.equal(codeOf(() => signNote('no newline', [s])), 'VN_ERR_LOG_NOTE_MALFORMED')
  t.equal(codeOf(() => signNote('x\n', [])), 'VN_ERR_LOG_NOTE_MALFORMED')
})

t.test('verifier keys: Go manglings are rejected with VN_ERR_LOG_KEY_INVALID', async (t) => {
  const b = Buffer.from(PETER_VKEY)
  const accepted: string[] = []
  for (let i = 0; i <= b.length; i++) {
    for (let j = i + 1; j <= b.length; j++) {
      if (i === 0 && j === b.length) continue
      const k = b.subarray(i, j).toString()
      if (codeOf(() => parseVerifierKey(k)) !== 'VN_ERR_LOG_KEY_INVALID') accepted.push(k)
    }
  }
  for (let i = 0; i < b.length; i++) {
    const c = Buffer.from(b)
    c[i] = (c[i] as number) + 1
    if (codeOf(() => parseVerifierKey(c.toString())) !== 'VN_ERR_LOG_KEY_INVALID') accepted.push(c.toString())
  }
  t.same(accepted, [], 'no substring or one-byte change of the key is accepted')
  t.equal(codeOf(() => parseVerifierKey('PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==')), 'VN_ERR_LOG_KEY_INVALID', 'wrong length')
  t.equal(codeOf(() => parseVerifierKey('PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW')), 'VN_ERR_LOG_KEY_INVALID', 'unknown type')
  t.equal(codeOf(() => formatVerifierKey('bad name', new Uint8Array(32))), 'VN_ERR_LOG_KEY_INVALID')
  t.equal(codeOf(() => ed25519PrivateKeyFromSeed(new Uint8Array(31))), 'VN_ERR_LOG_KEY_INVALID')
})

t.test('vkeys of other implementations parse (transparency-dev/formats): "+" inside base64, type 0x04', async (t) => {
  t.equal(parseVerifierKey('TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6').name, 'TEST')
  const cos = parseVerifierKey('remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2')
  t.equal(cos.sigType, SIG_TYPE_COSIGNATURE_V1)
  t.equal(formatVerifierKey(cos.name, cos.publicKey, SIG_TYPE_COSIGNATURE_V1), 'remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2')
})

const ROOT = new Uint8Array(Buffer.from('CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=', 'base64'))

t.test('checkpoint body: tlog-checkpoint example round-trips', async (t) => {
  const text = 'example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n'
  const cp = parseCheckpoint(text)
  t.equal(cp.origin, 'example.com/behind-the-sofa')
  t.equal(cp.size, 20852163)
  t.same(cp.rootHash, ROOT)
  t.equal(cp.extensions, undefined)
  t.equal(formatCheckpoint(cp), text)
  const ext = { origin: 'o', size: 0, rootHash: ROOT, extensions: ['x y', 'z'] }
  t.same(parseCheckpoint(formatCheckpoint(ext)), ext)
  // The spec example note parses; its signer is unknown to us, so opening it fails closed.
  const note = `${text}\n— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n`
  t.equal(parseNote(note).signatures.length, 1)
  t.equal(codeOf(() => openCheckpoint(note, [parseVerifierKey(PETER_VKEY)])), 'VN_ERR_LOG_NOTE_SIGNATURE')
})

t.test('malformed checkpoint bodies are rejected with VN_ERR_LOG_NOTE_MALFORMED', async (t) => {
  const r = 'CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I='
  const bad = [
    `o\n1\n${r}`, // no final newline
    `o\n1\n`, // missing root
    `\n1\n${r}\n`, // empty origin
    `o\n01\n${r}\n`, // leading zero
    `o\n-1\n${r}\n`,
    `o\n+1\n${r}\n`,
    `o\n1.0\n${r}\n`,
    `o\n9007199254740993\n${r}\n`, // beyond 2^53
    `o\n1\n${r.slice(0, -1)}\n`, // not base64
    `o\n1\nAAAA\n`, // wrong hash length
    `o\n1\n CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n`,
    `o\n1\n${r}\n\nx\n`, // empty extension line
  ]
  for (const [i, b] of bad.entries()) t.equal(codeOf(() => parseCheckpoint(b)), 'VN_ERR_LOG_NOTE_MALFORMED', `bad[${i}]`)
  t.equal(codeOf(() => formatCheckpoint({ origin: '', size: 1, rootHash: ROOT })), 'VN_ERR_LOG_NOTE_MALFORMED')
  t.equal(codeOf(() => formatCheckpoint({ origin: 'o', size: -1, rootHash: ROOT })), 'VN_ERR_LOG_NOTE_MALFORMED')
  t.equal(codeOf(() => formatCheckpoint({ origin: 'o', size: 1, rootHash: ROOT.subarray(1) })), 'VN_ERR_LOG_NOTE_MALFORMED')
  t.equal(codeOf(() => formatCheckpoint({ origin: 'o', size: 1, rootHash: ROOT, extensions: [''] })), 'VN_ERR_LOG_NOTE_MALFORMED')
})

t.test('signed checkpoint: sign, open, tamper', async (t) => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  const origin = 'fj-tax.verinode.example/log'
  const signer = noteSigner(origin, privateKey)
  const vkey = formatVerifierKey(origin, notePublicKey(publicKey))
  const note = signCheckpoint({ origin, size: 42, rootHash: ROOT }, signer)
  const { checkpoint } = openCheckpoint(note, [parseVerifierKey(vkey)])
  t.equal(checkpoint.size, 42)
  t.same(checkpoint.rootHash, ROOT)
  t.equal(codeOf(() => openCheckpoint(note.replace('\n42\n', '\n43\n'), [parseVerifierKey(vkey)])), 'VN_ERR_LOG_NOTE_SIGNATURE', 'size changed')
  const sigStart = note.lastIndexOf(' ') + 1
  const flipped = note.slice(0, sigStart + 10) + (note[sigStart + 10] === 'A' ? 'B' : 'A') + note.slice(sigStart + 11)
  t.equal(codeOf(() => openCheckpoint(flipped, [parseVerifierKey(vkey)])), 'VN_ERR_LOG_NOTE_SIGNATURE', 'signature byte changed')
  // Another key with the same name is "unknown" (key IDs differ), so the note has no known signature.
  const other = generateKeyPairSync('ed25519')
  t.equal(codeOf(() => openCheckpoint(note, [noteVerifier(origin, notePublicKey(other.publicKey))])), 'VN_ERR_LOG_NOTE_SIGNATURE')
})

t.test('cosignatures (tlog-cosignature v1, type 0x04): add, verify, tolerate, tamper', async (t) => {
  const log = generateKeyPairSync('ed25519')
  const wit = generateKeyPairSync('ed25519')
  const origin = 'fj-tax.verinode.example/log'
  const logV = noteVerifier(origin, notePublicKey(log.publicKey))
  const witV = cosignatureVerifier('fj-market.verinode.example/witness', notePublicKey(wit.publicKey))
  t.same(witV.keyId, keyId('fj-market.verinode.example/witness', 0x04, notePublicKey(wit.publicKey)))
  const note = signCheckpoint({ origin, size: 7, rootHash: ROOT }, noteSigner(origin, log.privateKey))
  const cosigned = cosignCheckpoint(note, cosignatureSigner('fj-market.verinode.example/witness', wit.privateKey, () => 1727964367))
  t.ok(cosigned.startsWith(note), 'existing signature line kept first')
  const onlyLog = openCheckpoint(cosigned, [logV])
  t.equal(onlyLog.note.unverified.length, 1, 'cosignature ignored when the witness is unknown')
  const both = openNote(cosigned, [logV, witV])
  t.equal(both.verified.length, 2)
  const cosigLine = both.verified[1] as { base64: string }
  t.equal(cosignatureTimestamp(cosigLine.base64), 1727964367)
  // The cosignature covers the timestamp: changing it breaks the signature.
  const raw = Buffer.from(cosigLine.base64, 'base64')
  raw[11] = (raw[11] as number) ^ 1
  const moved = cosigned.replace(cosigLine.base64, raw.toString('base64'))
  t.equal(codeOf(() => openNote(moved, [logV, witV])), 'VN_ERR_LOG_NOTE_SIGNATURE')
  // A plain Ed25519 verifier for the witness key (type 0x01) has another key ID: not a match.
  t.equal(codeOf(() => openNote(cosigned, [noteVerifier('fj-market.verinode.example/witness', notePublicKey(wit.publicKey))])), 'VN_ERR_LOG_NOTE_SIGNATURE')
  t.equal(codeOf(() => signNote('not a checkpoint\n', [cosignatureSigner('w', wit.privateKey)])), 'VN_ERR_LOG_NOTE_MALFORMED')
})

t.test('cosignature timestamp known answers (transparency-dev/formats)', async (t) => {
  t.equal(cosignatureTimestamp('ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEHWWOworDcFiEBYJXORmnFBOBA=='), 1727964367)
  t.equal(codeOf(() => cosignatureTimestamp('eQjRQm6eSKzFoiYalgwCPXu2y3ijtg68is9M46JKxuZB+dRfTmeQeDBoXnvxZx2ugnkyV+MUMLXpWs1hPb/W/4xkNQY=')), 'VN_ERR_LOG_NOTE_MALFORMED')
  t.equal(codeOf(() => cosignatureTimestamp('5%/$!\n 2')), 'VN_ERR_LOG_NOTE_MALFORMED')
})
