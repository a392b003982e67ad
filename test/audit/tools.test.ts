/**
 * The auditor's other tools on real logs: fj-tax asks fj-psb over real HTTP on 127.0.0.1; two of
 * fj-psb's checkpoints and the consistency proof between them are fetched from its running node;
 * then both logs are exported. Covered: `audit consistency` (from an export and from a proof,
 * and a forked history shown as two exports), `audit prove` / `check-receipt` (including the
 * receipt a consumer node fetches itself), `audit cross-check` (each way the two sides can
 * disagree) and `audit replay`. Tampered copies are re-signed with the node's real log key where
 * needed, so that the finding under test is not masked by a broken checkpoint.
 */
import t, { type Test } from 'tap'
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { request } from 'undici'
import { federationFixture, type Fixture } from '../helper.js'
import { exportLog } from '../../src/node/export.js'
import { auditExport } from '../../src/audit/verify.js'
import { auditConsistency, parseProofFile } from '../../src/audit/consistency.js'
import { checkReceipt, parseReceipt, proveInclusion, type InclusionReceipt } from '../../src/audit/receipt.js'
import { crossCheck, type CrossCheckReport } from '../../src/audit/cross-check.js'
import { replayExport } from '../../src/audit/replay.js'
import { readManifestTexts } from '../../src/audit/export-reader.js'
import { auditCommand } from '../../src/cli/commands/audit.js'
import type { CliIo } from '../../src/cli/types.js'
import { generateEd25519, loadPrivateKey } from '../../src/crypto/keys.js'
import { noteSigner, signCheckpoint } from '../../src/log/checkpoint.js'
import { leafHash, rootFromLeafHashes } from '../../src/log/merkle.js'
import { logOrigin } from '../../src/log/peer-logs.js'
import { canonicalJson } from '../../src/protocol/canonical-json.js'

const PSB = 'fj-psb'
const TAX = 'fj-tax'
const PURPOSE = 'taxpayer-registration'
const BASIS = 'Tax Collection Administration Law art. 15'

interface Scenario {
  f: Fixture
  root: string
  rootPub: string
  manifests: { name: string; jws: string }[]
  psb: string
  tax: string
  /** fj-psb checkpoints fetched from the running node, smaller first, and the proof between them */
  cpA: string
  cpB: string
  proofFile: string
  /** a receipt fj-tax's node fetched from fj-psb (PeerLogs.receipt) */
  peerReceipt: string
  xids: { batch: string; denied: string; single: string }
}

let n = 0
const fresh = (s: Scenario, name: string): string => join(s.root, `${name}-${n++}`)

async function buildScenario(t: Test): Promise<Scenario> {
  const f = await federationFixture(t, { start: [PSB, TAX] })
  const id = f.fed.dataset.samples.identity
  const ask = { provider: PSB, service: 'identity.match', purpose: PURPOSE, basis: BASIS }
  const verify = async (body: Record<string, unknown>): Promise<{ xid: string; json: Record<string, unknown> }> => {
    const r = await f.verify(TAX, body)
    if (typeof r.json?.xid !== 'string') throw new Error(`no xid in ${JSON.stringify(r.json).slice(0, 300)}`)
    return { xid: r.json.xid as string, json: r.json }
  }
  const batch = await verify({ ...ask, subjects: [{ id: id.matches[0]!.id, name: id.matches[0]!.name }, { id: id.nameMismatches[0]!.id, name: id.nameMismatches[0]!.name }] })
  const denied = await verify({ ...ask, purpose: 'marketing', subjects: [{ id: id.matches[1]!.id, name: id.matches[1]!.name }] })
  const psbNode = f.nodes[PSB]!
  const cpA = await psbNode.node.checkpoint()
  const single = await verify({ ...ask, subjects: [{ id: id.matches[2]!.id, name: id.matches[2]!.name }] })
  const cpB = await psbNode.node.checkpoint()
  const sizeOf = (note: string): number => Number(note.split('\n')[1])
  const proof = await request(`${psbNode.publicUrl}/v1/log/proof/consistency?first=${sizeOf(cpA)}&second=${sizeOf(cpB)}`)
  t.equal(proof.statusCode, 200)
  const root = join(f.fed.dir, 'exports')
  await mkdir(root)
  const proofFile = join(root, 'proof.json')
  await writeFile(proofFile, await proof.body.text())
  await writeFile(join(root, 'a.note'), cpA)
  await writeFile(join(root, 'b.note'), cpB)

  // The consumer's own receipt for its single request: the provider's request-in leaf.
  const leaves = (await f.nodes[TAX]!.node.log.entries(0, await f.nodes[TAX]!.node.log.size())).map((l) => JSON.parse(Buffer.from(l).toString()))
  const respIn = leaves.find((r) => r.t === 'response-in' && r.xid === single.xid)
  const receipt = await f.nodes[TAX]!.node.peerLogs.receipt(PSB, respIn.peerIndex)
  const peerReceipt = join(root, 'peer-receipt.json')
  await writeFile(peerReceipt, JSON.stringify(receipt))

  for (const node of Object.values(f.nodes)) await node.close()
  const out = { psb: join(root, 'psb'), tax: join(root, 'tax') }
  await exportLog(f.fed.nodes[PSB]!.configPath, out.psb)
  await exportLog(f.fed.nodes[TAX]!.configPath, out.tax)
  const rootPub = join(f.fed.authorityDir, 'federation-root.pub')
  const manifests = await readManifestTexts([join(f.fed.authorityDir, 'manifests')])
  return { f, root, rootPub, manifests, ...out, cpA: join(root, 'a.note'), cpB: join(root, 'b.note'), proofFile, peerReceipt, xids: { batch: batch.xid, denied: denied.xid, single: single.xid } }
}

async function readLeaves(dir: string): Promise<string[]> {
  const lines = (await readFile(join(dir, 'entries.jsonl'), 'utf8')).split('\n')
  lines.pop()
  return lines
}

/** A copy of `from` whose leaves are edited and whose checkpoints are replaced by one re-signed with `member`'s real log key. */
async function tampered(s: Scenario, from: string, member: string, edit: (leaves: string[]) => string[]): Promise<{ dir: string; note: string }> {
  const dir = fresh(s, 'tampered')
  await cp(from, dir, { recursive: true })
  const leaves = edit(await readLeaves(dir))
  await writeFile(join(dir, 'entries.jsonl'), leaves.map((l) => `${l}\n`).join(''))
  const logKey = await loadPrivateKey(join(s.f.fed.dir, member, 'keys', 'log.key'))
  const origin = logOrigin(s.f.fed.federation, member)
  const note = signCheckpoint({ origin, size: leaves.length, rootHash: rootFromLeafHashes(leaves.map((l) => leafHash(Buffer.from(l, 'utf8')))) }, noteSigner(origin, logKey))
  await rm(join(dir, 'checkpoints'), { recursive: true })
  await mkdir(join(dir, 'checkpoints'))
  await writeFile(join(dir, 'checkpoints', `${leaves.length}.note`), note)
  return { dir, note }
}

/** Drops (change returns undefined) or rewrites the leaves `pick` selects; at least one must match. */
const editRecords = (pick: (r: Record<string, unknown>) => boolean, change: (r: Record<string, unknown>) => Record<string, unknown> | undefined) => (leaves: string[]): string[] => {
  let hit = 0
  const out = leaves.flatMap((l) => {
    const r = JSON.parse(l) as Record<string, unknown>
    if (!pick(r)) return [l]
    hit++
    const c = change(r)
    return c === undefined ? [] : [canonicalJson(c)]
  })
  if (hit === 0) throw new Error('editRecords: no leaf matched')
  return out
}

function captureIo(json = false): CliIo & { lines: string[]; errs: string[] } {
  const lines: string[] = []
  const errs: string[] = []
  return { lines, errs, out: (l) => lines.push(l), err: (l) => errs.push(l), json, tty: false, cwd: process.cwd(), env: {} }
}

const errorCodes = (r: { findings: { code: string; severity: string }[] }): string[] => [...new Set(r.findings.filter((f) => f.severity === 'error').map((f) => f.code))].sort()
const show = (r: { findings: unknown[] }): string => JSON.stringify(r.findings, null, 1)
const flipB64 = (s: string, at: number): string => `${s.slice(0, at)}${s[at] === 'A' ? 'B' : 'A'}${s.slice(at + 1)}`

t.test('auditor tools on real exchanges', async (t) => {
  const s = await buildScenario(t)
  const note = async (p: string): Promise<{ file: string; note: string }> => ({ file: p, note: await readFile(p, 'utf8') })

  // -------------------------------------------------------------------------------------------
  // audit consistency

  t.test('consistency: two checkpoints of the running node, proved from the export', async (t) => {
    const r = await auditConsistency(await note(s.cpA), await note(s.cpB), { exportDir: s.psb, rootKey: s.rootPub })
    t.ok(r.ok, show(r))
    t.equal(r.method, 'export')
    t.equal(r.consistent, true)
    t.equal(r.member, PSB)
    t.ok(r.older!.size < r.newer!.size)
    t.ok(r.proof.length > 0)
    const swapped = await auditConsistency(await note(s.cpB), await note(s.cpA), { exportDir: s.psb })
    t.ok(swapped.ok, 'order does not matter')
    t.equal(swapped.older?.file, s.cpA)
    t.equal(swapped.trustAnchor.source, 'export')
  })

  t.test('consistency: with the proof the node served, and without any export', async (t) => {
    const proof = parseProofFile(await readFile(s.proofFile, 'utf8'))
    const r = await auditConsistency(await note(s.cpA), await note(s.cpB), { proof, rootKey: s.rootPub, manifests: s.manifests })
    t.ok(r.ok, show(r))
    t.equal(r.method, 'proof')
    // The export-made proof is the same as the node's: one planner for both.
    const e = await auditConsistency(await note(s.cpA), await note(s.cpB), { exportDir: s.psb })
    t.same(e.proof, JSON.parse(await readFile(s.proofFile, 'utf8')).proof)
  })

  t.test('consistency: a flipped proof byte is AUDIT_CONSISTENCY_PROOF_INVALID', async (t) => {
    const proof = parseProofFile(await readFile(s.proofFile, 'utf8'))
    const p0 = proof[0]!
    p0[3] = (p0[3] ?? 0) ^ 1
    const r = await auditConsistency(await note(s.cpA), await note(s.cpB), { proof, rootKey: s.rootPub, manifests: s.manifests })
    t.notOk(r.ok)
    t.same(errorCodes(r), ['AUDIT_CONSISTENCY_PROOF_INVALID'])
    t.equal(r.consistent, false)
  })

  t.test('consistency: a checkpoint whose signature is altered, or signed by another key', async (t) => {
    const a = await note(s.cpA)
    const lines = a.note.split('\n')
    const sigLine = lines.length - 2
    lines[sigLine] = flipB64(lines[sigLine]!, lines[sigLine]!.length - 5)
    const r = await auditConsistency({ file: 'a-altered', note: lines.join('\n') }, await note(s.cpB), { exportDir: s.psb, rootKey: s.rootPub })
    t.same(errorCodes(r), ['AUDIT_CHECKPOINT_SIGNATURE'], show(r))
    t.notOk(r.ok)
    const origin = logOrigin(s.f.fed.federation, PSB)
    const leaves = await readLeaves(s.psb)
    const forged = signCheckpoint({ origin, size: 3, rootHash: rootFromLeafHashes(leaves.slice(0, 3).map((l) => leafHash(Buffer.from(l)))) }, noteSigner(origin, generateEd25519().privateKey))
    const r2 = await auditConsistency({ file: 'forged', note: forged }, await note(s.cpB), { exportDir: s.psb, rootKey: s.rootPub })
    t.same(errorCodes(r2), ['AUDIT_CHECKPOINT_SIGNATURE'], 'consistent, but not signed by the log key')
    t.equal(r2.consistent, true)
  })

  t.test('consistency: a forked history shown as two exports of one log (tamper: fork)', async (t) => {
    // fj-psb shows one auditor the real log and another a history where an early leaf differs,
    // both signed with its real log key. Each export verifies on its own...
    const agreements = (r: Record<string, unknown>): boolean => r.t === 'agreements'
    const fork = await tampered(s, s.psb, PSB, editRecords(agreements, (r) => ({ ...r, at: (r.at as number) + 1 })))
    const realNote = await note(join(s.psb, 'checkpoints', (await readFile(join(s.psb, 'export.json'), 'utf8')).match(/"file": "checkpoints\/([0-9]+\.note)"/)![1]!))
    // ...but the two checkpoints cannot both be honest.
    const sameSize = await auditConsistency(realNote, { file: 'fork', note: fork.note }, { exportDir: fork.dir, rootKey: s.rootPub })
    t.same(errorCodes(sameSize), ['AUDIT_INCONSISTENT'], show(sameSize))
    t.equal(sameSize.method, 'equal-size')
    // The older real checkpoint against the fork's larger one, proved from the fork's own leaves.
    const grown = await tampered(s, fork.dir, PSB, (ls) => [...ls, ls[ls.length - 1]!])
    const r = await auditConsistency(await note(s.cpA), { file: 'fork-grown', note: grown.note }, { exportDir: grown.dir, rootKey: s.rootPub })
    t.same(errorCodes(r), ['AUDIT_INCONSISTENT'], show(r))
    t.equal(r.method, 'export')
    t.equal(r.consistent, false)
    // Checked against the real export instead, the fork's checkpoint is not of that history.
    const other = await auditConsistency(await note(s.cpA), { file: 'fork-grown', note: grown.note }, { exportDir: s.psb, rootKey: s.rootPub })
    t.same(errorCodes(other), ['AUDIT_CHECKPOINT_BEYOND_LOG'])
    const same = await auditConsistency(realNote, { file: 'fork', note: fork.note }, { exportDir: s.psb, rootKey: s.rootPub })
    t.same(errorCodes(same), ['AUDIT_INCONSISTENT'])

    // A witness that was shown both keeps them as fork-evidence; auditing its log reports it.
    const witness = await tampered(s, s.tax, TAX, (ls) => [...ls, canonicalJson({ v: 1, at: Date.now(), t: 'fork-evidence', peer: PSB, notes: [realNote.note, fork.note] })])
    const w = await auditExport(witness.dir, { rootKey: s.rootPub })
    const fork2 = (r: { findings: { code: string; severity: string }[] }): string[][] => r.findings.filter((x) => x.severity === 'error' || x.code === 'AUDIT_PEER_FORK_REPORTED').map((x) => [x.code, x.severity])
    t.same(fork2(w), [['AUDIT_PEER_FORK_REPORTED', 'error']], JSON.stringify(w.findings))
    const unsigned = await tampered(s, s.tax, TAX, (ls) => [...ls, canonicalJson({ v: 1, at: Date.now(), t: 'fork-evidence', peer: PSB, notes: [realNote.note, 'not a note'] })])
    t.same(fork2(await auditExport(unsigned.dir, { rootKey: s.rootPub })), [['AUDIT_PEER_FORK_REPORTED', 'warning']])
  })

  t.test('consistency: checkpoints of two different logs', async (t) => {
    const taxCp = (await readFile(join(s.tax, 'export.json'), 'utf8')).match(/"file": "(checkpoints\/[0-9]+\.note)"/)![1]!
    const r = await auditConsistency(await note(s.cpA), await note(join(s.tax, taxCp)), { exportDir: s.psb, rootKey: s.rootPub })
    t.notOk(r.ok)
    t.ok(errorCodes(r).includes('AUDIT_CHECKPOINT_INVALID'))
  })

  t.test('CLI: audit consistency exit codes', async (t) => {
    const io = captureIo()
    t.equal(await auditCommand.run(['consistency', s.cpA, s.cpB, '--export', s.psb, '--root', s.rootPub], io), 0, io.errs.join('\n'))
    t.match(io.lines.at(-1), /^PASS: 0 errors/)
    const json = captureIo(true)
    t.equal(await auditCommand.run(['consistency', s.cpA, s.cpB, '--proof', s.proofFile, '--root', s.rootPub, '--manifests', join(s.f.fed.authorityDir, 'manifests')], json), 0)
    t.equal(JSON.parse(json.lines[0]!).consistent, true)
    const bad = JSON.parse(await readFile(s.proofFile, 'utf8'))
    bad.proof[0] = flipB64(bad.proof[0], 2)
    const badFile = join(s.root, 'bad-proof.json')
    await writeFile(badFile, JSON.stringify(bad))
    t.equal(await auditCommand.run(['consistency', s.cpA, s.cpB, '--proof', badFile, '--root', s.rootPub, '--manifests', join(s.f.fed.authorityDir, 'manifests')], captureIo()), 1)
    t.equal(await auditCommand.run(['consistency', s.cpA, s.cpB], captureIo()), 2, 'neither --export nor --proof')
    t.equal(await auditCommand.run(['consistency', s.cpA, s.cpB, '--proof', s.proofFile], captureIo()), 2, '--proof without --root')
    t.equal(await auditCommand.run(['consistency', s.cpA, '--export', s.psb], captureIo()), 2, 'one checkpoint')
    const notJson = captureIo(true)
    t.equal(await auditCommand.run(['consistency', s.cpA, s.cpB, '--proof', s.cpA, '--root', s.rootPub], notJson), 2)
    t.equal(JSON.parse(notJson.lines[0]!).error.code, 'VN_ERR_AUDIT_INPUT_INVALID')
    t.equal(await auditCommand.run(['verify', s.psb, '--proof', s.proofFile], captureIo()), 2, 'an option of another subcommand')
  })

  // -------------------------------------------------------------------------------------------
  // audit prove / check-receipt

  const trust = (): { rootKey: string; manifests: { name: string; jws: string }[] } => ({ rootKey: s.rootPub, manifests: s.manifests })

  t.test('prove: a receipt of every leaf of one exchange that checks offline', async (t) => {
    const receipt = await proveInclusion(s.psb, s.xids.batch)
    t.same(receipt.entries.map((e) => JSON.parse(e.leaf).t), ['request-in', 'decision', 'response-out'])
    const r = await checkReceipt(parseReceipt(JSON.stringify(receipt)), trust())
    t.ok(r.ok, show(r))
    t.equal(r.member, PSB)
    t.same(r.entries.map((e) => e.included), [true, true, true])
    t.equal(r.checkpoint?.signed, true)
    const consumer = await proveInclusion(s.tax, s.xids.denied)
    t.same(consumer.entries.map((e) => JSON.parse(e.leaf).t), ['request-out', 'response-in'])
    t.ok((await checkReceipt(consumer, trust())).ok)
  })

  t.test('check-receipt: the receipt the consumer node fetched from the provider', async (t) => {
    const receipt = parseReceipt(await readFile(s.peerReceipt, 'utf8'))
    t.equal(receipt.xid, s.xids.single)
    const r = await checkReceipt(receipt, trust())
    t.ok(r.ok, show(r))
    t.same(r.entries.map((e) => e.t), ['request-in'])
  })

  t.test('check-receipt tampering: leaf, proof, xid, checkpoint, trust anchor', async (t) => {
    const good = await proveInclusion(s.psb, s.xids.single)
    const copy = (): InclusionReceipt => JSON.parse(JSON.stringify(good)) as InclusionReceipt
    const leaf = copy()
    leaf.entries[0]!.leaf = leaf.entries[0]!.leaf.replace(/"count":1/, '"count":2')
    t.not(leaf.entries[0]!.leaf, good.entries[0]!.leaf)
    t.same(errorCodes(await checkReceipt(leaf, trust())), ['AUDIT_INCLUSION_INVALID'])
    const proof = copy()
    proof.entries[1]!.proof[0] = flipB64(proof.entries[1]!.proof[0]!, 4)
    const rp = await checkReceipt(proof, trust())
    t.same(errorCodes(rp), ['AUDIT_INCLUSION_INVALID'])
    t.same(rp.entries.map((e) => e.included), [true, false, true])
    const xid = copy()
    xid.xid = s.xids.batch
    t.same(errorCodes(await checkReceipt(xid, trust())), ['AUDIT_RECEIPT_MISMATCH'])
    const other = copy()
    other.entries.push((await proveInclusion(s.psb, s.xids.batch)).entries[0]!)
    t.same(errorCodes(await checkReceipt(other, trust())), ['AUDIT_RECEIPT_MISMATCH'], 'a leaf of another exchange, validly included')
    const sig = copy()
    const lines = sig.checkpoint.split('\n')
    lines[lines.length - 2] = flipB64(lines[lines.length - 2]!, lines[lines.length - 2]!.length - 6)
    sig.checkpoint = lines.join('\n')
    t.same(errorCodes(await checkReceipt(sig, trust())), ['AUDIT_CHECKPOINT_SIGNATURE'])
    const anchor = await checkReceipt(good, { rootKey: generateEd25519().publicKey, manifests: s.manifests })
    t.notOk(anchor.ok)
    t.same(errorCodes(anchor), ['AUDIT_CHECKPOINT_SIGNATURE', 'AUDIT_MANIFEST_INVALID', 'AUDIT_NO_MANIFEST'])
  })

  t.test('prove refuses an unknown xid and an export whose checkpoint does not match', async (t) => {
    await t.rejects(proveInclusion(s.psb, 'no-such-xid'), { code: 'VN_ERR_AUDIT_NOT_FOUND' })
    const d = fresh(s, 'broken')
    await cp(s.psb, d, { recursive: true })
    const leaves = await readLeaves(d)
    leaves[0] = leaves[0]!.replace('"at":', '"at":1')
    await writeFile(join(d, 'entries.jsonl'), leaves.map((l) => `${l}\n`).join(''))
    await t.rejects(proveInclusion(d, s.xids.batch), { code: 'VN_ERR_LOG_PROOF' })
    t.throws(() => parseReceipt('{"v":1}'), { code: 'VN_ERR_AUDIT_INPUT_INVALID' })
    t.throws(() => parseReceipt('not json'), { code: 'VN_ERR_AUDIT_INPUT_INVALID' })
  })

  t.test('CLI: audit prove --out and check-receipt', async (t) => {
    const out = join(s.root, 'receipt.json')
    const io = captureIo()
    t.equal(await auditCommand.run(['prove', s.psb, s.xids.denied, '--out', out], io), 0, io.errs.join('\n'))
    t.match(io.lines[0], new RegExp(`^wrote the receipt of xid ${s.xids.denied}`))
    t.equal(await auditCommand.run(['prove', s.psb, s.xids.denied, '--out', out], captureIo()), 2, 'never overwrites')
    const check = captureIo()
    t.equal(await auditCommand.run(['check-receipt', out, '--root', s.rootPub, '--manifests', join(s.f.fed.authorityDir, 'manifests')], check), 0, check.errs.join('\n'))
    t.match(check.lines.at(-1), /^PASS/)
    const stdout = captureIo()
    t.equal(await auditCommand.run(['prove', s.psb, s.xids.denied], stdout), 0)
    t.equal(JSON.parse(stdout.lines.join('\n')).xid, s.xids.denied)
    const r = JSON.parse(await readFile(out, 'utf8'))
    r.entries[0].proof[0] = flipB64(r.entries[0].proof[0], 1)
    await writeFile(out, JSON.stringify(r))
    const bad = captureIo(true)
    t.equal(await auditCommand.run(['check-receipt', out, '--root', s.rootPub, '--manifests', join(s.f.fed.authorityDir, 'manifests')], bad), 1)
    t.equal(JSON.parse(bad.lines[0]!).findings[0].code, 'AUDIT_INCLUSION_INVALID')
    t.equal(await auditCommand.run(['check-receipt', out, '--manifests', join(s.f.fed.authorityDir, 'manifests')], captureIo()), 2, '--root required')
    t.equal(await auditCommand.run(['check-receipt', out, '--root', s.rootPub], captureIo()), 2, '--manifests required')
    t.equal(await auditCommand.run(['prove', s.psb, 'nope'], captureIo()), 2, 'unknown xid')
  })

  // -------------------------------------------------------------------------------------------
  // audit cross-check

  const crossCodes = (r: CrossCheckReport): [string, string | undefined, string][] => r.findings.filter((f) => f.severity !== 'info').map((f) => [f.code, f.xid, f.severity])

  t.test('cross-check: the two real logs agree on every exchange', async (t) => {
    const r = await crossCheck(s.tax, s.psb, { rootKey: s.rootPub })
    t.ok(r.ok, show(r))
    t.same(r.findings, [])
    t.same([r.counts.joined, r.counts.consumerOnly, r.counts.providerOnly], [3, 0, 0])
    t.same([r.consumer.verified, r.provider.verified], [true, true])
    await t.rejects(crossCheck(s.psb, s.psb), { code: 'VN_ERR_AUDIT_INPUT_INVALID' })
  })

  t.test('cross-check: a consumer entry without a provider entry (tamper: provider drops an exchange)', async (t) => {
    // The provider rewrites its log without the first exchange and re-signs it. The consumer's
    // log still holds the request and the provider's signed answer.
    const p = await tampered(s, s.psb, PSB, editRecords((r) => r.xid === s.xids.batch, () => undefined))
    const r = await crossCheck(s.tax, p.dir, { verify: false })
    // Dropping leaves also moved every later exchange to other indices than its signed answers name.
    t.same(crossCodes(r), [
      ['AUDIT_CROSS_MISSING_AT_PROVIDER', s.xids.batch, 'error'],
      ['AUDIT_CROSS_PEER_INDEX', s.xids.denied, 'error'],
      ['AUDIT_CROSS_PEER_INDEX', s.xids.single, 'error'],
    ], show(r))
    t.same(r.exchanges[0]?.providerIndices, [])
    // Those moved indices also break the provider's own response bindings (audit verify).
    const verified = await crossCheck(s.tax, p.dir, { rootKey: s.rootPub })
    t.equal(verified.provider.verified, false)
    t.same(crossCodes(verified), [['AUDIT_CROSS_EXPORT_FAILED', undefined, 'error'], ...crossCodes(r)])
    // Dropping the last exchange instead leaves it beyond the end of the provider's export.
    const tail = await tampered(s, s.psb, PSB, editRecords((r) => r.xid === s.xids.single, () => undefined))
    const r2 = await crossCheck(s.tax, tail.dir, { verify: false })
    t.same(r2.findings.map((f) => [f.code, f.xid]), [['AUDIT_CROSS_OUTSIDE_WINDOW', s.xids.single]])
    t.ok(r2.ok, 'info only: the export ends before that leaf (compare checkpoints with audit consistency)')
  })

  t.test('cross-check: a provider entry without a consumer entry (tamper: consumer drops an exchange)', async (t) => {
    const c = await tampered(s, s.tax, TAX, editRecords((r) => r.xid === s.xids.batch, () => undefined))
    const r = await crossCheck(c.dir, s.psb, { rootKey: s.rootPub })
    t.same(crossCodes(r), [['AUDIT_CROSS_MISSING_AT_CONSUMER', s.xids.batch, 'error']], show(r))
  })

  t.test('cross-check: an answer the provider released without logging it, nor its decision', async (t) => {
    const p = await tampered(s, s.psb, PSB, editRecords((r) => r.xid === s.xids.single && (r.t === 'response-out' || r.t === 'decision'), () => undefined))
    const r = await crossCheck(s.tax, p.dir, { verify: false })
    t.same(crossCodes(r), [['AUDIT_NO_PERMIT', s.xids.single, 'error'], ['AUDIT_CROSS_RESPONSE_MISSING', s.xids.single, 'error']], show(r))
    t.equal(r.provider.verified, null)
    // Alone, the provider's log shows only a request never answered (a warning): the consumer's
    // log is what proves the answer was released.
    const verified = await crossCheck(s.tax, p.dir, { rootKey: s.rootPub })
    t.equal(verified.provider.verified, true)
    t.same(crossCodes(verified), crossCodes(r))
  })

  t.test('cross-check: the two sides logged the request differently, and different evidence', async (t) => {
    const p = await tampered(s, s.psb, PSB, editRecords((r) => r.xid === s.xids.denied && r.t === 'request-in', (r) => ({ ...r, purpose: PURPOSE })))
    const r = await crossCheck(s.tax, p.dir, { verify: false })
    t.same(crossCodes(r), [['AUDIT_CROSS_ALTERED', s.xids.denied, 'error']])
    t.match(r.findings[0]?.message, /differ in purpose$/)

    const c = fresh(s, 'evidence')
    await cp(s.tax, c, { recursive: true })
    const reqDigest = (await readLeaves(c)).map((l) => JSON.parse(l)).find((x) => x.t === 'request-out' && x.xid === s.xids.batch).reqDigest
    const lines = (await readFile(join(c, 'evidence.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l))
    const e = lines.find((x) => x.digest === reqDigest)
    e.jws = flipB64(e.jws, e.jws.length - 3)
    await writeFile(join(c, 'evidence.jsonl'), lines.map((x) => `${JSON.stringify(x)}\n`).join(''))
    const r2 = await crossCheck(c, s.psb, { verify: false })
    t.same(crossCodes(r2), [['AUDIT_CROSS_EVIDENCE_DIFFERS', s.xids.batch, 'error']])
  })

  t.test('cross-check: a wrong peerIndex, and a response not bound to the request', async (t) => {
    const c = await tampered(s, s.tax, TAX, editRecords((r) => r.xid === s.xids.batch && r.t === 'response-in', (r) => ({ ...r, peerIndex: (r.peerIndex as number) + 1 })))
    const r = await crossCheck(c.dir, s.psb, { verify: false })
    t.same(crossCodes(r), [['AUDIT_CROSS_PEER_INDEX', s.xids.batch, 'error']])
    // Both sides agree on a request digest that the signed response does not name.
    const fake = 'A'.repeat(43)
    const onReq = (r: Record<string, unknown>): boolean => r.xid === s.xids.single && (r.t === 'request-out' || r.t === 'request-in' || r.t === 'decision')
    const c2 = await tampered(s, s.tax, TAX, editRecords(onReq, (r) => ({ ...r, reqDigest: fake })))
    const p2 = await tampered(s, s.psb, PSB, editRecords(onReq, (r) => ({ ...r, reqDigest: fake })))
    const r2 = await crossCheck(c2.dir, p2.dir, { verify: false })
    t.same(crossCodes(r2), [['AUDIT_RESPONSE_UNBOUND', s.xids.single, 'error']], show(r2))
    t.match(r2.findings[0]?.message, /reqDigest$/)
  })

  t.test('CLI: audit cross-check', async (t) => {
    const io = captureIo()
    t.equal(await auditCommand.run(['cross-check', s.tax, s.psb, '--root', s.rootPub], io), 0, io.errs.join('\n'))
    t.ok(io.lines.some((l) => /3 on both sides, 0 only at the consumer, 0 only at the provider/.test(l)))
    const p = await tampered(s, s.psb, PSB, editRecords((r) => r.xid === s.xids.batch, () => undefined))
    const human = captureIo()
    t.equal(await auditCommand.run(['cross-check', s.tax, p.dir, '--skip-verify'], human), 1)
    t.ok(human.lines.some((l) => l.startsWith(`exchange ${s.xids.batch} (consumer leaves`)))
    t.ok(human.lines.some((l) => l.includes('AUDIT_CROSS_MISSING_AT_PROVIDER')))
    t.equal(await auditCommand.run(['cross-check', s.tax], captureIo()), 2)
  })

  // -------------------------------------------------------------------------------------------
  // audit replay

  t.test('replay: every decision re-run agrees, every answer followed a permit', async (t) => {
    const r = await replayExport(s.psb, { rootKey: s.rootPub })
    t.ok(r.ok, show(r))
    t.same(r.decisions.map((d) => [d.xid, d.logged.permit, d.replayed?.permit, d.agrees, d.source]), [
      [s.xids.batch, true, true, true, 'signed request'],
      [s.xids.denied, false, false, true, 'signed request'],
      [s.xids.single, true, true, true, 'signed request'],
    ])
    t.equal(r.decisions[1]?.logged.code, 'VN_ERR_POLICY_NO_AGREEMENT')
    t.same(r.answers.map((a) => [a.status, a.permitted]), [['ok', true], ['denied', false], ['ok', true]])
    t.same([r.counts.disagreements, r.counts.unpermitted, r.policies], [0, 0, 1])
  })

  t.test('replay: a denial rewritten into a permit, and an answer with its decision removed', async (t) => {
    const p = await tampered(s, s.psb, PSB, (ls) => {
      const a = editRecords((r) => r.t === 'decision' && r.xid === s.xids.denied, ({ code: _c, ...r }) => ({ ...r, permit: true, agreement: 'psb-tax-identity' }))(ls)
      return editRecords((r) => r.t === 'decision' && r.xid === s.xids.single, () => undefined)(a)
    })
    const r = await replayExport(p.dir, { rootKey: s.rootPub })
    t.notOk(r.ok)
    const d = r.decisions.find((x) => x.xid === s.xids.denied)
    t.same([d?.logged.permit, d?.replayed?.permit, d?.agrees], [true, false, false])
    t.same(r.answers.filter((a) => a.status === 'ok' && !a.permitted).map((a) => [a.xid, a.decisionIndex]), [[s.xids.single, null]])
    t.same(errorCodes(r), ['AUDIT_DECISION_REPLAY_MISMATCH', 'AUDIT_NO_PERMIT', 'AUDIT_STATUS_MISMATCH'], show(r))
    const io = captureIo()
    t.equal(await auditCommand.run(['replay', p.dir, '--root', s.rootPub], io), 1)
    t.ok(io.lines.some((l) => l.includes(s.xids.denied) && l.includes('DIFFERS')))
    t.ok(io.lines.some((l) => l.includes(`xid ${s.xids.single} (no decision for this request)`)))
    const ok = captureIo(true)
    t.equal(await auditCommand.run(['replay', s.psb], ok), 0)
    t.equal(JSON.parse(ok.lines[0]!).counts.decisions, 3)
  })
})
