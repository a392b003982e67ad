/**
 * The `sm` crypto profile end to end (docs/NATIONAL-ALGORITHMS.md): a federation whose authority
 * chose `--profile sm` runs two demo nodes with SM2 keys; a plain exchange goes through, both logs
 * are exported and the auditor finds them clean; a tampered export is caught. A node or a key of
 * the other profile is refused with VN_ERR_PROFILE_MISMATCH, a token of the other algorithm with
 * VN_ERR_JWS_ALG.
 */
import t from 'tap'
import { createHash } from 'node:crypto'
import { cp, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { federationFixture } from '../helper.js'
import { exportLog } from '../../src/node/export.js'
import { auditExport } from '../../src/audit/verify.js'
import { auditCommand } from '../../src/cli/commands/audit.js'
import type { CliIo } from '../../src/cli/types.js'
import { generateEd25519, loadPrivateKey, loadPublicKey, publicKeyToB64u, writePrivateKey } from '../../src/crypto/keys.js'
import { addMember } from '../../src/federation/authority.js'
import { signJws, signJwsJsonAsync, verifyJws, verifyJwsAsync } from '../../src/crypto/jws.js'
import { Ed25519Batcher } from '../../src/crypto/ed25519-batch.js'
import { activeProfile, profileOfKey, verifyBytes } from '../../src/crypto/profile.js'
import { generateSm2 } from '../../src/crypto/sm2.js'
import { openNode } from '../../src/node/runtime.js'
import { isVnError } from '../../src/errors.js'
import { emptyRoot, leafHash, rootFromLeafHashes } from '../../src/log/merkle.js'
import { parseCheckpoint, parseNote } from '../../src/log/checkpoint.js'

const PSB = 'fj-psb'
const TAX = 'fj-tax'
const ask = { provider: PSB, service: 'identity.match', purpose: 'taxpayer-registration', basis: 'Tax Collection Administration Law art. 15' }

function captureIo(): CliIo & { lines: string[] } {
  const lines: string[] = []
  return { lines, out: (l) => lines.push(l), err: () => undefined, json: false, tty: false, cwd: process.cwd(), env: {} }
}

const codeOf = (e: unknown): string | undefined => (isVnError(e) ? e.code : undefined)

t.test('an sm federation: plain exchange, export, clean audit, tampered export caught', async (t) => {
  const f = await federationFixture(t, { start: [PSB, TAX], profile: 'sm' })
  t.equal(activeProfile().name, 'sm', 'the manifest chose the process profile')
  const manifestJws = (await readFile(join(f.fed.dir, PSB, 'federation', 'manifest.jws'), 'utf8')).trim()
  const header = JSON.parse(Buffer.from(manifestJws.split('.')[0] as string, 'base64url').toString('utf8')) as { alg: string }
  const payload = JSON.parse(Buffer.from(manifestJws.split('.')[1] as string, 'base64url').toString('utf8')) as { profile?: string; members: { messageKeys: { x: string }[] }[] }
  t.equal(header.alg, 'SM2SM3', 'the manifest is signed with SM2/SM3')
  t.equal(payload.profile, 'sm', 'the manifest names the profile')
  t.ok(payload.members.every((m) => m.messageKeys.every((k) => Buffer.from(k.x, 'base64url').length === 65)), 'member keys are SM2 points')
  t.equal(profileOfKey(await loadPrivateKey(join(f.fed.dir, TAX, 'keys', 'message.key'))), 'sm', 'init wrote an SM2 message key')
  const config = JSON.parse(await readFile(f.fed.nodes[TAX]!.configPath, 'utf8')) as { local: { apps: { tokenSha256?: string; tokenSm3?: string }[] } }
  t.ok(config.local.apps.every((a) => a.tokenSha256 === undefined && /^[0-9a-f]{64}$/.test(a.tokenSm3 ?? '')), 'init stored the local API tokens as SM3, not SHA-256')

  const id = f.fed.dataset.samples.identity
  const r = await f.verify(TAX, { ...ask, subjects: [{ id: id.matches[0]!.id, name: id.matches[0]!.name }, { id: id.nameMismatches[0]!.id, name: id.nameMismatches[0]!.name }] })
  t.equal(r.status, 200, JSON.stringify(r.json).slice(0, 300))
  t.same(r.json.results.map((x: { match: boolean }) => x.match), [true, false], 'the provider answered under sm')

  for (const n of Object.values(f.nodes)) await n.close()
  const root = join(f.fed.dir, 'exports')
  await mkdir(root)
  const rootKey = join(f.fed.authorityDir, 'federation-root.pub')
  for (const member of [PSB, TAX]) {
    const dir = join(root, member)
    await exportLog(f.fed.nodes[member]!.configPath, dir)
    const report = await auditExport(dir, { rootKey })
    t.ok(report.ok, `${member}: the export audits clean (${JSON.stringify(report.findings.filter((x) => x.severity !== 'info')).slice(0, 500)})`)
    t.ok(report.leaves > 0, `${member}: ${report.leaves} leaves`)
    // export.json lists every file's SM3 digest, and no SHA-256.
    const meta = JSON.parse(await readFile(join(dir, 'export.json'), 'utf8')) as { files: Record<string, { sha256?: string; sm3?: string; bytes: number }> }
    const listed = Object.entries(meta.files)
    t.ok(listed.length >= 4 && listed.every(([, v]) => v.sha256 === undefined && v.sm3 !== undefined), `${member}: export.json lists SM3 digests only`)
    t.equal(meta.files['entries.jsonl']?.sm3, createHash('sm3').update(await readFile(join(dir, 'entries.jsonl'))).digest('hex'), 'the entries digest is SM3 of the file')
    // The same on the auditor's worker threads (they learn the profile from the manifest too), and
    // through the command line, `verinode audit verify`.
    const onWorkers = await auditExport(dir, { rootKey, workers: 2 })
    t.ok(onWorkers.ok, `${member}: clean on workers too (${JSON.stringify(onWorkers.findings.filter((x) => x.severity !== 'info')).slice(0, 500)})`)
    const io = captureIo()
    t.equal(await auditCommand.run(['verify', dir, '--root', rootKey], io), 0, `${member}: audit verify exits 0`)
    t.match(io.lines.at(-1), /^PASS: 0 errors/)
    // The tree is RFC 9162 with SM3: recomputed here by hand from the exported leaves.
    const leaves = (await readFile(join(dir, 'entries.jsonl'), 'utf8')).split('\n').filter((l) => l !== '')
    const sm3Leaf = (l: string): Uint8Array => new Uint8Array(createHash('sm3').update(Buffer.from([0])).update(l, 'utf8').digest())
    t.same(Buffer.from(leafHash(Buffer.from(leaves[0]!, 'utf8'))), Buffer.from(sm3Leaf(leaves[0]!)), 'leaf hash is SM3(0x00 ‖ leaf)')
    t.same(Buffer.from(emptyRoot()), createHash('sm3').digest(), 'the empty tree is SM3 of nothing')
    const notes = (await readdir(join(dir, 'checkpoints'))).filter((n) => n.endsWith('.note'))
    t.ok(notes.length > 0, 'checkpoints exported')
    const note = await readFile(join(dir, 'checkpoints', notes[0]!), 'utf8')
    const cp0 = parseCheckpoint(parseNote(note).text)
    t.same(Buffer.from(cp0.rootHash), Buffer.from(rootFromLeafHashes(leaves.slice(0, cp0.size).map((l) => leafHash(Buffer.from(l, 'utf8'))))), 'checkpoint root is the SM3 tree')
    const sig = Buffer.from(parseNote(note).signatures[0]!.signature)
    t.equal(sig.length, 64, 'checkpoint signature: SM2 r ‖ s')
  }

  // Tampered: one leaf changed, nothing re-signed.
  const tampered = join(root, 'tampered')
  await cp(join(root, PSB), tampered, { recursive: true })
  const lines = (await readFile(join(tampered, 'entries.jsonl'), 'utf8')).split('\n').filter((l) => l !== '')
  const i = lines.findIndex((l) => l.includes('"decision"'))
  t.ok(i >= 0, 'a decision record to tamper with')
  lines[i] = lines[i]!.replace(/}$/, ',"x":1}')
  await writeFile(join(tampered, 'entries.jsonl'), lines.map((l) => `${l}\n`).join(''))
  const bad = await auditExport(tampered, { rootKey })
  t.notOk(bad.ok, 'the tampered export fails the audit')
  t.ok(bad.findings.some((x) => x.severity === 'error'), `an error finding: ${bad.findings.filter((x) => x.severity === 'error').map((x) => x.code).join(', ')}`)
  t.ok(bad.findings.some((x) => x.code === 'AUDIT_EXPORT_FILE_HASH' && /entries\.jsonl: differs from the SM3 export\.json lists/.test(x.message)), 'the changed file differs from its listed SM3 digest')
  t.equal(await auditCommand.run(['verify', tampered, '--root', rootKey], captureIo()), 1, 'audit verify exits 1 on the tampered export')
})

t.test('mixed profiles are refused', async (t) => {
  const f = await federationFixture(t, { start: [], profile: 'sm' })
  // The authority refuses an Ed25519 key for an sm federation.
  const err = await addMember(f.fed.authorityDir, {
    id: 'fj-x', name: 'X', uscc: '91350000MA2XXXXX0X', role: 'auditor', messageKeys: [{ key: generateEd25519().publicKey }],
  }).catch((e: unknown) => e)
  t.equal(codeOf(err), 'VN_ERR_PROFILE_MISMATCH', 'add-member refuses an Ed25519 key under sm')

  // A node whose own key is Ed25519 refuses to start in an sm federation.
  const keyFile = join(f.fed.dir, TAX, 'keys', 'message.key')
  await rm(keyFile)
  await writePrivateKey(keyFile, generateEd25519().privateKey)
  const started = await openNode(f.fed.nodes[TAX]!.configPath, { env: {} }).then(async (n) => { await n.close(); return undefined }, (e: unknown) => e)
  t.equal(codeOf(started), 'VN_ERR_PROFILE_MISMATCH', 'a node with an Ed25519 message key refuses to start')

  // A token of the other algorithm for an SM2 key (and the other way round) is refused.
  const sm = generateSm2()
  const ed = generateEd25519()
  const edToken = signJws('{}', ed.privateKey, 'm#k')
  t.throws(() => verifyJws(edToken, () => sm.publicKey), { code: 'VN_ERR_JWS_ALG' }, 'EdDSA against an SM2 key')
  const smToken = signJws('{}', sm.privateKey, 'm#k')
  t.equal(JSON.parse(Buffer.from(smToken.split('.')[0]!, 'base64url').toString()).alg, 'SM2SM3')
  t.throws(() => verifyJws(smToken, () => ed.publicKey), { code: 'VN_ERR_JWS_ALG' }, 'SM2SM3 against an Ed25519 key')
  t.equal(verifyJws(smToken, () => sm.publicKey).kid, 'm#k', 'SM2SM3 verifies under its key')
  const flipped = `${smToken.slice(0, -2)}${smToken.endsWith('AA') ? 'AB' : 'AA'}`
  t.throws(() => verifyJws(flipped, () => sm.publicKey), { code: 'VN_ERR_JWS_SIGNATURE' }, 'a changed SM2 signature does not verify')
  t.equal(publicKeyToB64u(await loadPublicKey(join(f.fed.dir, PSB, 'keys', 'log.pub'))).length, 87, 'an SM2 public key file holds the 65-byte point')
})

t.test('SM2 runs on the signature workers, with the same results as on this thread', async (t) => {
  const ed = new Ed25519Batcher(2)
  t.teardown(() => ed.close())
  const sm = generateSm2()
  const data = Buffer.from('verinode sm on workers')
  const sigs = await Promise.all([1, 2, 3].map(() => ed.sign(data, sm.privateKey)))
  t.equal(ed.stats.inline, 0, 'no SM2 operation ran inline')
  t.ok(ed.stats.batches > 0, 'they went to the workers')
  for (const s of sigs) {
    t.equal(s.length, 64)
    t.ok(verifyBytes(data, sm.publicKey, s), 'a worker\'s SM2 signature verifies here')
    t.ok(await ed.verify(data, sm.publicKey, s), 'and on the workers')
  }
  const bad = Buffer.from(sigs[0]!)
  bad[10] = bad[10]! ^ 1
  t.notOk(await ed.verify(data, sm.publicKey, bad), 'a changed signature does not verify on the workers')
  t.same(await ed.verifyMany([{ data, key: sm.publicKey, sig: sigs[1]! }, { data, key: sm.publicKey, sig: bad }]), [true, false], 'verifyMany too')
  const token = await signJwsJsonAsync({ a: 1 }, sm.privateKey, 'm#k', undefined, ed)
  t.equal((await verifyJwsAsync(token, () => sm.publicKey, undefined, ed)).kid, 'm#k', 'a JWS signed and verified on the workers')
})
