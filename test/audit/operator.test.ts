/**
 * Operator commands that write to a node's log from outside the node, on real nodes: exporting
 * the sealed disclosures with a logged reason (`log export --with-disclosures`), and rotating the
 * message and log keys as logged key events signed by the old and the new key (`keys rotate`),
 * followed through the authority's next manifest, a restart and new exchanges, as the auditor sees it.
 */
import t from 'tap'
import { createHash } from 'node:crypto'
import { cp, mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pino } from 'pino'
import { request } from 'undici'
import { federationFixture } from '../helper.js'
import { exportLog } from '../../src/node/export.js'
import { auditExport, type AuditReport } from '../../src/audit/verify.js'
import { rotateKey } from '../../src/node/key-rotation.js'
import { checkRotation } from '../../src/audit/checks/key-events.js'
import { rotationStatement, statementOf } from '../../src/log/rotation-statement.js'
import { assertNodeStopped } from '../../src/node/offline-log.js'
import { logExportCommand } from '../../src/cli/commands/log-export.js'
import { keysCommand } from '../../src/cli/commands/keys.js'
import type { CliIo } from '../../src/cli/types.js'
import { generateEd25519, loadPrivateKey, publicKeyToB64u } from '../../src/crypto/keys.js'
import { addKey, archivedManifests, signAuthorityManifest } from '../../src/federation/authority.js'
import { startNode, type RunningNode } from '../../src/http/server.js'
import { noteSigner, signCheckpoint } from '../../src/log/checkpoint.js'
import { leafHash, rootFromLeafHashes } from '../../src/log/merkle.js'
import { logOrigin } from '../../src/log/peer-logs.js'
import type { KeyEventRecord } from '../../src/log/records.js'
import { canonicalJson } from '../../src/protocol/canonical-json.js'

const PSB = 'fj-psb'
const TAX = 'fj-tax'
const ask = { provider: PSB, service: 'identity.match', purpose: 'taxpayer-registration', basis: 'Tax Collection Administration Law art. 15' }

function captureIo(json = false): CliIo & { lines: string[]; errs: string[] } {
  const lines: string[] = []
  const errs: string[] = []
  return { lines, errs, out: (l) => lines.push(l), err: (l) => errs.push(l), json, tty: false, cwd: process.cwd(), env: {} }
}

const errorsOf = (r: AuditReport): string => JSON.stringify(r.findings.filter((f) => f.severity !== 'info'), null, 1)
const codes = (r: AuditReport, severity?: string): string[] => r.findings.filter((f) => severity === undefined || f.severity === severity).map((f) => f.code)

async function leavesOf(dir: string): Promise<Record<string, unknown>[]> {
  return (await readFile(join(dir, 'entries.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
}

/** Rewrites entries.jsonl with `edit` and re-signs one checkpoint over it with the member's real log key. */
async function rewriteAndResign(dir: string, keysDir: string, origin: string, edit: (r: Record<string, unknown>[]) => Record<string, unknown>[]): Promise<void> {
  const leaves = edit(await leavesOf(dir)).map((r) => canonicalJson(r))
  await writeFile(join(dir, 'entries.jsonl'), leaves.map((l) => `${l}\n`).join(''))
  const note = signCheckpoint({ origin, size: leaves.length, rootHash: rootFromLeafHashes(leaves.map((l) => leafHash(Buffer.from(l)))) }, noteSigner(origin, await loadPrivateKey(join(keysDir, 'log.key'))))
  await rm(join(dir, 'checkpoints'), { recursive: true })
  await mkdir(join(dir, 'checkpoints'))
  await writeFile(join(dir, 'checkpoints', `${leaves.length}.note`), note)
}

t.test('operator commands that log themselves', async (t) => {
  const f = await federationFixture(t, { start: [PSB, TAX] })
  const id = f.fed.dataset.samples.identity.matches[0]!
  const first = await f.verify(TAX, { ...ask, subjects: [{ id: id.id, name: id.name }] })
  t.equal(first.status, 200)
  const out = join(f.fed.dir, 'exports')
  await mkdir(out)
  const cfg = (m: string): string => f.fed.nodes[m]!.configPath
  const keysDir = (m: string): string => join(f.fed.dir, m, 'keys')
  const dbOf = (m: string): string => join(f.fed.dir, m, 'var', 'log.db')
  const rootPub = join(f.fed.authorityDir, 'federation-root.pub')
  const reason = 'court order 2025-17 (case file reference only)'

  // Awaited: the nodes close right after it, and must not close while it runs.
  await t.test('while the node runs, nothing that writes to its log is allowed', async (t) => {
    t.ok((await stat(dbOf(TAX))).isFile(), 'the log database is where the test expects it')
    await t.rejects(assertNodeStopped(dbOf(TAX)), { code: 'VN_ERR_AUDIT_NODE_RUNNING' })
    const size = await f.nodes[TAX]!.node.log.size()
    await t.rejects(exportLog(cfg(TAX), join(out, 'running'), { withDisclosures: { reason } }), { code: 'VN_ERR_AUDIT_NODE_RUNNING' })
    await t.rejects(stat(join(out, 'running')), { code: 'ENOENT' }, 'no export written')
    await t.rejects(rotateKey(cfg(TAX), 'message'), { code: 'VN_ERR_AUDIT_NODE_RUNNING' })
    t.equal(await f.nodes[TAX]!.node.log.size(), size, 'nothing appended')
    t.equal((await readdir(keysDir(TAX))).filter((n) => n.includes('retired')).length, 0, 'no key replaced')
    const io = captureIo()
    t.equal(await keysCommand.run(['rotate', '--config', cfg(TAX), '--which', 'message'], io), 2)
    t.match(io.errs.join('\n'), /VN_ERR_AUDIT_NODE_RUNNING/)
  })

  for (const n of Object.values(f.nodes)) await n.close()

  t.test('export with disclosures: logged with the reason digest and count, decrypted, audited', async (t) => {
    await t.rejects(exportLog(cfg(TAX), join(out, 'no-reason'), { withDisclosures: { reason: '  ' } }), { code: 'VN_ERR_CONFIG_INVALID' })
    const dir = join(out, 'tax-disclosures')
    const r = await exportLog(cfg(TAX), dir, { withDisclosures: { reason } })
    t.equal(r.disclosures, true)
    t.equal(r.disclosureCount, 1)
    t.equal(r.disclosureReason, reason)
    const lines = (await readFile(join(dir, 'disclosures.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l))
    t.equal(lines.length, 1)
    t.equal(lines[0].xid, first.json.xid)
    t.ok(lines[0].disclosures.some((d: string) => Buffer.from(d, 'base64url').toString('utf8').includes(id.id)), 'the subject, decrypted')
    t.equal((await stat(join(dir, 'disclosures.jsonl'))).mode & 0o077, 0, 'mode 0600')
    const rec = (await leavesOf(dir)).at(-1)!
    t.same(rec, { at: rec.at, count: 1, received: 0, reasonDigest: createHash('sha256').update(reason).digest('base64url'), t: 'disclosure-export', v: 1 })
    const leaves = await readFile(join(dir, 'entries.jsonl'), 'utf8')
    t.notOk(leaves.includes(id.id) || leaves.includes('court order'), 'neither the subject nor the reason text is in the log')
    const report = await auditExport(dir, { rootKey: rootPub })
    t.ok(report.ok, errorsOf(report))
    t.same(codes(report), [], 'the disclosure-export record is checkpointed with the export')

    // Tamper: a disclosure line removed; the reason changed; the record removed.
    const fewer = join(out, 'tax-disclosures-fewer')
    await cp(dir, fewer, { recursive: true })
    await writeFile(join(fewer, 'disclosures.jsonl'), '')
    t.ok(codes(await auditExport(fewer, { rootKey: rootPub }), 'error').includes('AUDIT_DISCLOSURES_UNLOGGED'))
    const otherReason = join(out, 'tax-disclosures-reason')
    await cp(dir, otherReason, { recursive: true })
    const meta = JSON.parse(await readFile(join(otherReason, 'export.json'), 'utf8'))
    meta.disclosureReason = 'routine check'
    await writeFile(join(otherReason, 'export.json'), JSON.stringify(meta))
    t.same(codes(await auditExport(otherReason, { rootKey: rootPub }), 'error'), ['AUDIT_DISCLOSURES_UNLOGGED'])
    const unlogged = join(out, 'tax-disclosures-unlogged')
    await cp(dir, unlogged, { recursive: true })
    await rewriteAndResign(unlogged, keysDir(TAX), logOrigin(f.fed.federation, TAX), (rs) => rs.filter((x) => x.t !== 'disclosure-export'))
    t.same(codes(await auditExport(unlogged, { rootKey: rootPub }), 'error'), ['AUDIT_DISCLOSURES_UNLOGGED'])
  })

  t.test('CLI: log export --with-disclosures needs a reason', async (t) => {
    t.equal(await logExportCommand.run(['export', '--config', cfg(PSB), '--out', join(out, 'x'), '--with-disclosures'], captureIo()), 2)
    t.equal(await logExportCommand.run(['export', '--config', cfg(PSB), '--out', join(out, 'x'), '--reason', 'why'], captureIo()), 2, '--reason alone')
    const io = captureIo(true)
    t.equal(await logExportCommand.run(['export', '--config', cfg(PSB), '--out', join(out, 'psb-disclosures'), '--with-disclosures', '--reason', reason], io), 0, io.errs.join('\n'))
    const doc = JSON.parse(io.lines[0]!)
    t.same([doc.disclosures, doc.disclosureCount], [true, 1], 'the provider kept the disclosures it opened')
  })

  t.test('key rotation: logged, signed by both keys, followed by the auditor through the next manifest', async (t) => {
    const before = await loadPrivateKey(join(keysDir(TAX), 'message.key'))
    const io = captureIo(true)
    t.equal(await keysCommand.run(['rotate', '--config', cfg(TAX), '--which', 'message'], io), 0, io.errs.join('\n'))
    const r = JSON.parse(io.lines[0]!)
    t.match(r.authority.addKey, new RegExp(`^verinode federation add-key --dir <authority-dir> --member ${TAX} --message-key ${r.newKey}$`))
    const after = await loadPrivateKey(join(keysDir(TAX), 'message.key'))
    t.equal(publicKeyToB64u(after), r.newKey, 'the new key is in place')
    t.equal(publicKeyToB64u(await loadPrivateKey(r.retiredFile)), publicKeyToB64u(before), 'the old one is kept, mode 0600')
    t.equal((await readFile(join(keysDir(TAX), 'message.pub'), 'utf8')).trim(), r.newKey)

    const dir = join(out, 'tax-rotated')
    await exportLog(cfg(TAX), dir)
    const ev = (await leavesOf(dir)).find((x) => x.t === 'key-event' && x.event === 'rotated') as unknown as KeyEventRecord
    t.same([ev.rotated, ev.newKey, ev.messageKey], ['message', r.newKey, publicKeyToB64u(before)])
    t.same(checkRotation(ev), [])
    const report = await auditExport(dir, { rootKey: rootPub })
    t.ok(report.ok, errorsOf(report))
    t.same(codes(report), ['AUDIT_KEY_ROTATION_UNLISTED'], 'the authority has not listed the new key yet')

    // Tamper: the old key's signature altered; a "rotation" the old key never signed.
    const bad = join(out, 'tax-rotated-bad')
    await cp(dir, bad, { recursive: true })
    const origin = logOrigin(f.fed.federation, TAX)
    const flip = (sig: string): string => `${sig[0] === 'A' ? 'B' : 'A'}${sig.slice(1)}`
    await rewriteAndResign(bad, keysDir(TAX), origin, (rs) => rs.map((x) => (x.event === 'rotated' ? { ...x, oldSig: flip(x.oldSig as string) } : x)))
    const rb = await auditExport(bad, { rootKey: rootPub })
    t.same(codes(rb, 'error'), ['AUDIT_KEY_ROTATION_SIGNATURE'], errorsOf(rb))
    t.match(rb.findings.find((x) => x.code === 'AUDIT_KEY_ROTATION_SIGNATURE')?.message, /oldSig does not verify under the old message key/)
    const mallory = generateEd25519()
    const forged = { ...ev, newKey: publicKeyToB64u(mallory.publicKey) }
    const { sign } = await import('node:crypto')
    forged.newSig = sign(null, rotationStatement(statementOf(forged)!), mallory.privateKey).toString('base64url')
    t.same(checkRotation(forged), ['oldSig does not verify under the old message key'], 'the new key alone cannot claim a rotation')
    t.same(checkRotation({ ...ev, event: 'node-started' }), ['a node-started event carries rotation fields'])
    const { rotated: _r, ...noFields } = ev
    t.same(checkRotation(noFields), ['a rotated event without rotated, newKey, oldSig and newSig'])

    // The authority lists the new key; the manifest reaches both nodes; they restart and exchange.
    await addKey(f.fed.authorityDir, TAX, 'message', { key: r.newKey })
    const signed = await signAuthorityManifest(f.fed.authorityDir)
    for (const m of [PSB, TAX]) await writeFile(join(f.fed.dir, m, 'federation', 'manifest.jws'), `${signed.jws}\n`)
    const started: RunningNode[] = []
    t.teardown(async () => {
      for (const n of started) await n.close()
    })
    for (const m of [PSB, TAX]) started.push(await startNode(cfg(m), { logger: pino({ level: 'silent' }), checkpointEveryMs: 0 }))
    const tax = started[1]!
    const res = await request(`${tax.localUrl}/local/v1/verify`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${f.fed.nodes[TAX]!.appToken}` },
      body: JSON.stringify({ ...ask, subjects: [{ id: id.id, name: id.name }] }),
    })
    const body = (await res.body.json()) as { xid: string }
    t.equal(res.statusCode, 200, JSON.stringify(body))
    for (const n of started.splice(0)) await n.close()

    // The node keeps only the manifest in force; the auditor brings the authority's archive.
    const history = { rootKey: rootPub, manifests: await archivedManifests(f.fed.authorityDir) }
    const later = join(out, 'tax-after')
    await exportLog(cfg(TAX), later)
    const lr = await auditExport(later, history)
    t.ok(lr.ok, errorsOf(lr))
    t.same(codes(lr), [], 'the new key is listed and signs the new requests')
    const psbLater = join(out, 'psb-after')
    await exportLog(cfg(PSB), psbLater)
    t.same(codes(await auditExport(psbLater, history)), [], 'the provider verified the request under the new key')
  })

  t.test('log key rotation: old key signs the checkpoint over the event, the new one the later ones', async (t) => {
    const r = await rotateKey(cfg(PSB), 'log')
    t.equal(r.which, 'log')
    await addKey(f.fed.authorityDir, PSB, 'log', { key: r.newKey })
    const signed = await signAuthorityManifest(f.fed.authorityDir)
    for (const m of [PSB, TAX]) await writeFile(join(f.fed.dir, m, 'federation', 'manifest.jws'), `${signed.jws}\n`)
    const n = await startNode(cfg(PSB), { logger: pino({ level: 'silent' }), checkpointEveryMs: 0 })
    await n.close()
    const dir = join(out, 'psb-log-rotated')
    await exportLog(cfg(PSB), dir)
    const archive = await archivedManifests(f.fed.authorityDir)
    const report = await auditExport(dir, { rootKey: rootPub, manifests: archive })
    t.ok(report.ok, errorsOf(report))
    t.same(codes(report), [])
    // Only the manifest that lists the new log key lets the latest checkpoint verify.
    const older = join(out, 'psb-log-rotated-old-manifests')
    await cp(dir, older, { recursive: true })
    await rm(join(older, 'manifests'), { recursive: true })
    const ro = await auditExport(older, { rootKey: rootPub, manifests: archive.slice(0, -1) })
    t.ok(codes(ro, 'error').includes('AUDIT_CHECKPOINT_SIGNATURE'), errorsOf(ro))
    t.ok(codes(ro).includes('AUDIT_KEY_ROTATION_UNLISTED'))
  })

  t.test('CLI: keys rotate usage errors', async (t) => {
    t.equal(await keysCommand.run(['rotate', '--config', cfg(TAX)], captureIo()), 2, '--which missing')
    t.equal(await keysCommand.run(['rotate', '--config', cfg(TAX), '--which', 'root'], captureIo()), 2)
    t.equal(await keysCommand.run(['rotate', '--which', 'log'], captureIo()), 2, '--config missing')
    t.equal(await keysCommand.run(['spin', '--config', cfg(TAX), '--which', 'log'], captureIo()), 2)
    t.equal(await keysCommand.run(['rotate', '--config', join(out, 'nope.json'), '--which', 'log'], captureIo()), 2)
  })
})
