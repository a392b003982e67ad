/**
 * The offline auditor on real logs: three demo nodes (fj-psb and fj-credit providing, fj-tax
 * consuming) exchange over real HTTP on 127.0.0.1; their logs are exported with `exportLog` and
 * verified with `auditExport`. A clean export passes; each way of tampering with an export is
 * caught with its own finding code. Where a tamper would also break the checkpoint root, the test
 * re-signs a checkpoint with the node's real log key so the finding under test stands alone.
 */
import t, { type Test } from 'tap'
import { cp, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { federationFixture, type Fixture } from '../helper.js'
import { exportLog } from '../../src/node/export.js'
import { auditExport, type AuditReport } from '../../src/audit/verify.js'
import { summarizeReport } from '../../src/audit/format.js'
import type { AuditCode } from '../../src/audit/findings.js'
import { auditCommand } from '../../src/cli/commands/audit.js'
import { logExportCommand } from '../../src/cli/commands/log-export.js'
import type { CliIo } from '../../src/cli/types.js'
import { generateEd25519, loadPrivateKey } from '../../src/crypto/keys.js'
import { addKey, archivedManifests, loadDraft, removeKey, signAuthorityManifest } from '../../src/federation/authority.js'
import { manifestHash } from '../../src/federation/federation.js'
import { noteSigner, signCheckpoint } from '../../src/log/checkpoint.js'
import { leafHash, rootFromLeafHashes } from '../../src/log/merkle.js'
import { logOrigin } from '../../src/node/runtime.js'
import { canonicalJson } from '../../src/protocol/canonical-json.js'
import { jwsDigest } from '../../src/protocol/jws-digest.js'
import { signJws } from '../../src/crypto/jws.js'

const PSB = 'fj-psb'
const TAX = 'fj-tax'
const CREDIT = 'fj-credit'
const PURPOSE = 'taxpayer-registration'
const BASIS = 'Tax Collection Administration Law art. 15'

interface Scenario {
  f: Fixture
  root: string
  /** exports written after the nodes closed */
  psb: string
  tax: string
  credit: string
  /** the provider's export taken while it was running */
  psbLive: string
  /** manifest seq 2 (revokes fj-tax's message key), signed but never deployed */
  seq2: string
  xids: { batch: string; denied: string; single: string; revoked: string; quotaOk: string; quotaDenied: string }
  /** every ID number and name that travelled, to scan the exports for */
  pii: string[]
}

async function verifyVia(f: Fixture, body: Record<string, unknown>): Promise<string> {
  const r = await f.verify(TAX, body)
  if (typeof r.json?.xid !== 'string') throw new Error(`no xid in ${JSON.stringify(r.json).slice(0, 300)}`)
  return r.json.xid as string
}

async function buildScenario(t: Test): Promise<Scenario> {
  const f = await federationFixture(t, { start: [PSB, TAX, CREDIT] })
  const id = f.fed.dataset.samples.identity
  const credit = f.fed.dataset.samples.credit
  const subjects = [
    { id: id.matches[0]!.id, name: id.matches[0]!.name },
    { id: id.nameMismatches[0]!.id, name: id.nameMismatches[0]!.name },
    { id: id.unknownIds[0]!, name: id.matches[1]!.name },
  ]
  const pii = [...subjects.flatMap((s) => [s.id, s.name]), id.matches[2]!.id, id.matches[2]!.name, ...credit.listedPersons.slice(0, 3), ...credit.unlistedPersons.slice(0, 4)]
  const ask = { provider: PSB, service: 'identity.match', purpose: PURPOSE, basis: BASIS }
  const batch = await verifyVia(f, { ...ask, subjects })
  const denied = await verifyVia(f, { ...ask, purpose: 'marketing', subjects: [subjects[0]] })
  const single = await verifyVia(f, { ...ask, subjects: [{ id: id.matches[2]!.id, name: id.matches[2]!.name }] })
  // fj-credit gives fj-tax a daily quota of 5: 4 fit, the next 3 do not.
  const dishonest = { provider: CREDIT, service: 'credit.dishonest', purpose: 'tax-credit-rating', basis: 'Tax Collection Administration Law art. 45' }
  const quotaOk = await verifyVia(f, { ...dishonest, subjects: [...credit.listedPersons.slice(0, 2), ...credit.unlistedPersons.slice(0, 2)].map((x) => ({ id: x })) })
  const quotaDenied = await verifyVia(f, { ...dishonest, subjects: [credit.listedPersons[2]!, ...credit.unlistedPersons.slice(2, 4)].map((x) => ({ id: x })) })

  const root = join(f.fed.dir, 'exports')
  await mkdir(root)
  const psbLive = join(root, 'psb-live')
  await exportLog(f.fed.nodes[PSB]!.configPath, psbLive)

  // The authority revokes fj-tax's message key in manifest seq 2, but nobody deploys it: the next
  // request is still accepted, and only an auditor with the full manifest history can tell.
  const auth = f.fed.authorityDir
  const taxKeys = (await loadDraft(auth)).members.find((m) => m.id === TAX)!.messageKeys
  await addKey(auth, TAX, 'message', { key: generateEd25519().publicKey })
  for (const k of taxKeys) await removeKey(auth, TAX, k.kid)
  await sleep(5)
  const seq2 = (await signAuthorityManifest(auth)).jws
  await sleep(5)
  const revoked = await verifyVia(f, { ...ask, subjects: [subjects[0]] })

  for (const n of Object.values(f.nodes)) await n.close()
  const out = { psb: join(root, 'psb'), tax: join(root, 'tax'), credit: join(root, 'credit') }
  await exportLog(f.fed.nodes[PSB]!.configPath, out.psb)
  await exportLog(f.fed.nodes[TAX]!.configPath, out.tax)
  await exportLog(f.fed.nodes[CREDIT]!.configPath, out.credit)
  return { f, root, ...out, psbLive, seq2, xids: { batch, denied, single, revoked, quotaOk, quotaDenied }, pii }
}


const codes = (r: AuditReport, severity?: string): AuditCode[] => r.findings.filter((f) => severity === undefined || f.severity === severity).map((f) => f.code)
const errorsOf = (r: AuditReport): string => JSON.stringify(r.findings.filter((f) => f.severity !== 'info'), null, 1)

let n = 0
async function copyExport(s: Scenario, from: string): Promise<string> {
  const to = join(s.root, `tampered-${n++}`)
  await cp(from, to, { recursive: true })
  return to
}

async function readLeaves(dir: string): Promise<string[]> {
  const lines = (await readFile(join(dir, 'entries.jsonl'), 'utf8')).split('\n')
  lines.pop()
  return lines
}

/** Rewrites entries.jsonl and replaces the checkpoints with one re-signed by `member`'s real log key. */
async function rewriteAndResign(s: Scenario, dir: string, member: string, edit: (leaves: string[]) => string[]): Promise<void> {
  const leaves = edit(await readLeaves(dir))
  await writeFile(join(dir, 'entries.jsonl'), leaves.map((l) => `${l}\n`).join(''))
  const logKey = await loadPrivateKey(join(s.f.fed.dir, member, 'keys', 'log.key'))
  const origin = logOrigin(s.f.fed.federation, member)
  const rootHash = rootFromLeafHashes(leaves.map((l) => leafHash(Buffer.from(l, 'utf8'))))
  const note = signCheckpoint({ origin, size: leaves.length, rootHash }, noteSigner(origin, logKey))
  await rm(join(dir, 'checkpoints'), { recursive: true })
  await mkdir(join(dir, 'checkpoints'))
  await writeFile(join(dir, 'checkpoints', `${leaves.length}.note`), note)
}

const editRecord = (leaves: string[], pick: (r: Record<string, unknown>) => boolean, change: (r: Record<string, unknown>) => Record<string, unknown> | undefined): string[] => {
  let hit = 0
  const out = leaves.flatMap((l) => {
    const r = JSON.parse(l) as Record<string, unknown>
    if (!pick(r)) return [l]
    hit++
    const c = change(r)
    return c === undefined ? [] : [canonicalJson(c)]
  })
  if (hit !== 1) throw new Error(`editRecord: ${hit} leaves matched, expected 1`)
  return out
}

function captureIo(json = false): CliIo & { lines: string[]; errs: string[] } {
  const lines: string[] = []
  const errs: string[] = []
  return { lines, errs, out: (l) => lines.push(l), err: (l) => errs.push(l), json, tty: false, cwd: process.cwd(), env: {} }
}

t.test('auditor on real exchanges', async (t) => {
  const s = await buildScenario(t)
  const rootPub = join(s.f.fed.authorityDir, 'federation-root.pub')

  t.test('a clean provider export passes with no finding but the info ones', async (t) => {
    const r = await auditExport(s.psb, { rootKey: rootPub })
    t.ok(r.ok, errorsOf(r))
    t.same(codes(r).filter((c) => c !== 'AUDIT_NOT_CHECKPOINTED'), [], errorsOf(r))
    t.equal(r.member, PSB)
    t.equal(r.trustAnchor.source, 'given')
    t.equal(r.counts.provider, 4, 'batch, denial, single, revoked-key request')
    t.equal(r.counts.consumer, 0)
    t.equal(r.checkpoint?.size, r.leaves, 'closing the node checkpointed everything')
    t.equal(r.checkpoint?.rootMatches, true)
  })

  t.test('a clean consumer export passes, and the quota replay agrees with the logged denial', async (t) => {
    const r = await auditExport(s.tax)
    t.ok(r.ok, errorsOf(r))
    t.same(codes(r), [], errorsOf(r))
    t.equal(r.trustAnchor.source, 'export')
    t.equal(r.counts.consumer, 6)
    const c = await auditExport(s.credit, { rootKey: rootPub })
    t.ok(c.ok, errorsOf(c))
    // The second batch was denied for quota; a replay without the earlier permit counted would
    // permit it and report a mismatch.
    t.same(codes(c), [], errorsOf(c))
  })

  t.test('an export taken while the node runs is consistent; later leaves are only "not yet checkpointed"', async (t) => {
    const r = await auditExport(s.psbLive, { rootKey: rootPub })
    t.ok(r.ok, errorsOf(r))
    t.same(codes(r), ['AUDIT_NOT_CHECKPOINTED'])
    t.ok(r.checkpoint !== null && r.checkpoint.size < r.leaves)
  })

  t.test('the export holds no personal data and no disclosures', async (t) => {
    const meta = JSON.parse(await readFile(join(s.psb, 'export.json'), 'utf8'))
    t.equal(meta.disclosures, false)
    t.equal(s.pii.length, 15)
    for (const dir of [s.psb, s.tax, s.credit]) {
      const files = ['entries.jsonl', 'evidence.jsonl', 'export.json', ...(await readdir(join(dir, 'checkpoints'))).map((x) => `checkpoints/${x}`)]
      const hits: string[] = []
      for (const file of files) {
        const text = await readFile(join(dir, file), 'utf8')
        for (const p of s.pii) if (text.includes(p)) hits.push(file)
      }
      t.same(hits, [], `no subject ID number or name in any file of ${dir.split('/').pop()}`)
      const keys = new Set((await readFile(join(dir, 'evidence.jsonl'), 'utf8')).trim().split('\n').map((l) => Object.keys(JSON.parse(l)).sort().join(',')))
      t.same([...keys], ['digest,jws'], 'evidence lines hold a digest and a JWS, nothing else')
    }
  })

  t.test('a changed leaf breaks the checkpoint root', async (t) => {
    const d = await copyExport(s, s.psb)
    const leaves = await readLeaves(d)
    const i = leaves.findIndex((l) => l.includes('"t":"agreements"'))
    const rec = JSON.parse(leaves[i]!)
    rec.at += 1
    leaves[i] = canonicalJson(rec)
    await writeFile(join(d, 'entries.jsonl'), leaves.map((l) => `${l}\n`).join(''))
    const r = await auditExport(d, { rootKey: rootPub })
    t.notOk(r.ok)
    t.same([...new Set(codes(r, 'error'))], ['AUDIT_ROOT_MISMATCH'])
    t.ok(codes(r, 'warning').includes('AUDIT_EXPORT_FILE_HASH'), 'export.json hash noticed the change too')
  })

  t.test('a changed byte anywhere in a leaf is caught (tamper: flip one byte)', async (t) => {
    const d = await copyExport(s, s.psb)
    const buf = await readFile(join(d, 'entries.jsonl'))
    const pos = buf.indexOf('"xid":"') + 10
    buf[pos] = buf[pos] === 0x41 ? 0x42 : 0x41
    await writeFile(join(d, 'entries.jsonl'), buf)
    const r = await auditExport(d, { rootKey: rootPub })
    t.ok(codes(r).includes('AUDIT_ROOT_MISMATCH'))
  })

  t.test('a removed leaf: the signed checkpoint covers more than the export holds', async (t) => {
    const d = await copyExport(s, s.psb)
    const leaves = await readLeaves(d)
    leaves.splice(3, 1)
    await writeFile(join(d, 'entries.jsonl'), leaves.map((l) => `${l}\n`).join(''))
    const r = await auditExport(d, { rootKey: rootPub })
    t.notOk(r.ok)
    t.ok(codes(r).includes('AUDIT_CHECKPOINT_BEYOND_LOG'), errorsOf(r))
  })

  t.test('a reordered pair of leaves breaks the root', async (t) => {
    const d = await copyExport(s, s.psb)
    const leaves = await readLeaves(d)
    ;[leaves[4], leaves[5]] = [leaves[5]!, leaves[4]!]
    await writeFile(join(d, 'entries.jsonl'), leaves.map((l) => `${l}\n`).join(''))
    const r = await auditExport(d, { rootKey: rootPub })
    t.ok(codes(r).includes('AUDIT_ROOT_MISMATCH'))
  })

  t.test('an altered evidence JWS no longer hashes to its digest', async (t) => {
    const d = await copyExport(s, s.psb)
    const lines = (await readFile(join(d, 'evidence.jsonl'), 'utf8')).trim().split('\n')
    const respOut = (await readLeaves(d)).map((l) => JSON.parse(l)).find((r) => r.t === 'response-out' && r.xid === s.xids.single)
    const k = lines.findIndex((l) => JSON.parse(l).digest === respOut.respDigest)
    const e = JSON.parse(lines[k]!)
    // Flip one character of the signature (never a no-op: the replacement always differs).
    const i = e.jws.length - 10
    e.jws = e.jws.slice(0, i) + (e.jws[i] === 'A' ? 'B' : 'A') + e.jws.slice(i + 1)
    lines[k] = JSON.stringify(e)
    await writeFile(join(d, 'evidence.jsonl'), `${lines.join('\n')}\n`)
    const r = await auditExport(d, { rootKey: rootPub })
    t.notOk(r.ok)
    const hit = r.findings.filter((x) => x.code === 'AUDIT_EVIDENCE_DIGEST_MISMATCH')
    t.equal(hit.length, 1)
    t.equal(hit[0]?.xid, s.xids.single)
    t.ok(r.exchanges.some((x) => x.xid === s.xids.single && x.findings.some((y) => y.code === 'AUDIT_EVIDENCE_DIGEST_MISMATCH')), 'listed under its exchange')
  })

  t.test('evidence removed for a digest is reported missing', async (t) => {
    const d = await copyExport(s, s.tax)
    const reqOut = (await readLeaves(d)).map((l) => JSON.parse(l)).find((r) => r.t === 'request-out' && r.xid === s.xids.batch)
    const lines = (await readFile(join(d, 'evidence.jsonl'), 'utf8')).trim().split('\n').filter((l) => JSON.parse(l).digest !== reqOut.reqDigest)
    await writeFile(join(d, 'evidence.jsonl'), `${lines.join('\n')}\n`)
    const r = await auditExport(d)
    t.same(r.findings.filter((x) => x.severity === 'error').map((x) => [x.code, x.xid]), [['AUDIT_EVIDENCE_MISSING', s.xids.batch]])
  })

  t.test('a response JWS whose signature was tampered with (digest and leaves consistently rewritten)', async (t) => {
    const d = await copyExport(s, s.psb)
    const lines = (await readFile(join(d, 'evidence.jsonl'), 'utf8')).trim().split('\n')
    const leaves = (await readLeaves(d)).map((l) => JSON.parse(l))
    const respOut = leaves.find((r) => r.t === 'response-out' && r.xid === s.xids.single)
    const k = lines.findIndex((l) => JSON.parse(l).digest === respOut.respDigest)
    const e = JSON.parse(lines[k]!)
    const [h, p, sig] = e.jws.split('.')
    const raw = Buffer.from(sig, 'base64url')
    raw[0] = (raw[0] ?? 0) ^ 1
    e.jws = `${h}.${p}.${raw.toString('base64url')}`
    e.digest = jwsDigest(e.jws)
    lines[k] = JSON.stringify(e)
    await writeFile(join(d, 'evidence.jsonl'), `${lines.join('\n')}\n`)
    await rewriteAndResign(s, d, PSB, (ls) => editRecord(ls, (r) => r.t === 'response-out' && r.xid === s.xids.single, (r) => ({ ...r, respDigest: e.digest })))
    const r = await auditExport(d, { rootKey: rootPub })
    t.same(r.findings.filter((x) => x.severity === 'error').map((x) => [x.code, x.xid]), [['AUDIT_SIGNATURE_INVALID', s.xids.single]], errorsOf(r))
  })

  t.test('a response-out without a decision: an answer released without a permit', async (t) => {
    const d = await copyExport(s, s.psb)
    await rewriteAndResign(s, d, PSB, (ls) => editRecord(ls, (r) => r.t === 'decision' && r.xid === s.xids.revoked, () => undefined))
    const r = await auditExport(d, { rootKey: rootPub })
    t.notOk(r.ok)
    t.same(r.findings.filter((x) => x.severity === 'error').map((x) => [x.code, x.xid]), [['AUDIT_NO_PERMIT', s.xids.revoked]], errorsOf(r))
  })

  t.test('a denial rewritten into a permit: the replay of the decision disagrees', async (t) => {
    const d = await copyExport(s, s.psb)
    await rewriteAndResign(s, d, PSB, (ls) =>
      editRecord(ls, (r) => r.t === 'decision' && r.xid === s.xids.denied, ({ code: _code, ...r }) => ({ ...r, permit: true, agreement: 'psb-tax-identity' })))
    const r = await auditExport(d, { rootKey: rootPub })
    const mine = r.findings.filter((x) => x.xid === s.xids.denied && x.severity === 'error').map((x) => x.code)
    t.ok(mine.includes('AUDIT_DECISION_REPLAY_MISMATCH'), errorsOf(r))
    t.ok(mine.includes('AUDIT_STATUS_MISMATCH'), 'and the response says denied')
  })

  t.test('a quota denial rewritten into a permit: the replayed quota counter disagrees', async (t) => {
    const d = await copyExport(s, s.credit)
    await rewriteAndResign(s, d, CREDIT, (ls) =>
      editRecord(ls, (r) => r.t === 'decision' && r.xid === s.xids.quotaDenied, ({ code: _code, ...r }) => ({ ...r, permit: true, agreement: 'credit-tax-dishonest' })))
    const r = await auditExport(d, { rootKey: rootPub })
    const f = r.findings.find((x) => x.code === 'AUDIT_DECISION_REPLAY_MISMATCH')
    t.equal(f?.xid, s.xids.quotaDenied)
    t.equal(f?.severity, 'error')
    t.match(f?.message, /VN_ERR_POLICY_QUOTA_EXHAUSTED/)
  })

  t.test('a decision under a policy other than the one in force', async (t) => {
    const d = await copyExport(s, s.psb)
    await rewriteAndResign(s, d, PSB, (ls) => editRecord(ls, (r) => r.t === 'decision' && r.xid === s.xids.batch, (r) => ({ ...r, policy: 'A'.repeat(43) })))
    const r = await auditExport(d, { rootKey: rootPub })
    t.ok(r.findings.some((x) => x.code === 'AUDIT_POLICY_NOT_IN_FORCE' && x.xid === s.xids.batch), errorsOf(r))
  })

  t.test('a signature by a key revoked in a manifest the node never loaded: the propagation window, a warning', async (t) => {
    const withHistory = { rootKey: rootPub, manifests: await archivedManifests(s.f.fed.authorityDir) }
    t.equal(withHistory.manifests.length, 2)
    for (const [dir, role] of [[s.psb, 'provider'], [s.tax, 'consumer']] as const) {
      const r = await auditExport(dir, withHistory)
      t.ok(r.ok, errorsOf(r))
      t.same(r.findings.filter((x) => x.code === 'AUDIT_KEY_REVOCATION_WINDOW').map((x) => [x.severity, x.xid, x.role]), [['warning', s.xids.revoked, role]])
      t.same(r.manifests.map((m) => m.seq), [1, 2])
    }
  })

  t.test('a signature by a key revoked in a manifest the node had loaded: AUDIT_KEY_NOT_VALID', async (t) => {
    const d = await copyExport(s, s.psb)
    await rewriteAndResign(s, d, PSB, (ls) => editRecord(ls, (r) => r.t === 'key-event' && r.event === 'node-started', (r) => ({ ...r, manifestSeq: 2, manifestHash: manifestHash(s.seq2) })))
    const r = await auditExport(d, { rootKey: rootPub, manifests: await archivedManifests(s.f.fed.authorityDir) })
    t.notOk(r.ok)
    t.same(r.findings.filter((x) => x.severity === 'error').map((x) => [x.code, x.xid, x.role]), [['AUDIT_KEY_NOT_VALID', s.xids.revoked, 'provider']], errorsOf(r))
  })

  t.test('a request signed with a key the manifest never listed', async (t) => {
    const d = await copyExport(s, s.tax)
    const lines = (await readFile(join(d, 'evidence.jsonl'), 'utf8')).trim().split('\n')
    const reqOut = (await readLeaves(d)).map((l) => JSON.parse(l)).find((r) => r.t === 'request-out' && r.xid === s.xids.denied)
    const k = lines.findIndex((l) => JSON.parse(l).digest === reqOut.reqDigest)
    const e = JSON.parse(lines[k]!)
    const header = JSON.parse(Buffer.from(e.jws.split('.')[0], 'base64url').toString())
    const forged = signJws(Buffer.from(e.jws.split('.')[1], 'base64url'), generateEd25519().privateKey, `${TAX}#not-listed`, header.typ)
    const digest = jwsDigest(forged)
    lines[k] = JSON.stringify({ digest, jws: forged })
    await writeFile(join(d, 'evidence.jsonl'), `${lines.join('\n')}\n`)
    await rewriteAndResign(s, d, TAX, (ls) =>
      editRecord(ls, (r) => r.t === 'request-out' && r.xid === s.xids.denied, (r) => ({ ...r, reqDigest: digest })))
    const r = await auditExport(d)
    const mine = r.findings.filter((x) => x.xid === s.xids.denied && x.severity === 'error').map((x) => x.code)
    t.ok(mine.includes('AUDIT_KEY_NOT_VALID'), errorsOf(r))
    t.ok(mine.includes('AUDIT_BINDING_MISMATCH'), 'response-in still names the original request digest')
  })

  t.test('a leaf with an unknown field, a non-canonical leaf, and personal data in a leaf', async (t) => {
    const d = await copyExport(s, s.tax)
    const id = s.f.fed.dataset.samples.identity.matches[0]!
    await rewriteAndResign(s, d, TAX, (ls) => {
      const out = editRecord(ls, (r) => r.t === 'response-in' && r.xid === s.xids.batch, (r) => ({ ...r, subjectName: id.name }))
      const i = out.findIndex((l) => l.includes(s.xids.single) && l.includes('"request-out"'))
      const r = JSON.parse(out[i]!)
      out[i] = JSON.stringify({ t: r.t, ...r, purpose: `${PURPOSE} ${id.id}` })
      return out
    })
    const r = await auditExport(d)
    const batch = r.findings.filter((x) => x.xid === s.xids.batch).map((x) => x.code)
    t.ok(batch.includes('AUDIT_LEAF_INVALID'), 'unknown field subjectName')
    t.ok(batch.includes('AUDIT_PII_NAME'), 'a Chinese name in a structural field')
    const single = r.findings.filter((x) => x.xid === s.xids.single).map((x) => x.code)
    t.ok(single.includes('AUDIT_LEAF_NOT_CANONICAL'))
    t.ok(single.includes('AUDIT_PII_IDENTIFIER'))
    for (const f of r.findings) t.notOk(f.message.includes(id.id) || f.message.includes(id.name), 'findings never repeat the personal data')
  })

  t.test('a checkpoint signed by a key that is not the member\'s log key', async (t) => {
    const d = await copyExport(s, s.psb)
    const leaves = await readLeaves(d)
    const origin = logOrigin(s.f.fed.federation, PSB)
    const note = signCheckpoint({ origin, size: leaves.length, rootHash: rootFromLeafHashes(leaves.map((l) => leafHash(Buffer.from(l)))) }, noteSigner(origin, generateEd25519().privateKey))
    await rm(join(d, 'checkpoints'), { recursive: true })
    await mkdir(join(d, 'checkpoints'))
    await writeFile(join(d, 'checkpoints', 'x.note'), note)
    const r = await auditExport(d, { rootKey: rootPub })
    t.same([...new Set(codes(r, 'error'))].sort(), ['AUDIT_CHECKPOINT_SIGNATURE', 'AUDIT_NO_CHECKPOINT'])
  })

  t.test('a manifest that does not verify against the trust anchor', async (t) => {
    const d = await copyExport(s, s.psb)
    const [file] = await readdir(join(d, 'manifests'))
    const jws = (await readFile(join(d, 'manifests', file!), 'utf8')).trim()
    const [h, p, sig] = jws.split('.')
    await writeFile(join(d, 'manifests', file!), `${h}.${p}.${sig!.slice(0, 10)}${sig![10] === 'A' ? 'B' : 'A'}${sig!.slice(11)}\n`)
    const r = await auditExport(d, { rootKey: rootPub })
    t.notOk(r.ok)
    t.ok(codes(r).includes('AUDIT_MANIFEST_INVALID'))
    t.ok(codes(r).includes('AUDIT_NO_MANIFEST'))
    t.ok(codes(r).includes('AUDIT_KEY_NOT_VALID'), 'with no key history no signature is accepted')
  })

  t.test('an export audited against another federation\'s root key', async (t) => {
    const r = await auditExport(s.psb, { rootKey: generateEd25519().publicKey })
    t.notOk(r.ok)
    t.ok(codes(r).includes('AUDIT_NO_MANIFEST'))
    t.ok(codes(r).includes('AUDIT_NO_CHECKPOINT'))
  })

  t.test('CLI: audit verify exit codes and JSON report', async (t) => {
    const io = captureIo()
    t.equal(await auditCommand.run(['verify', s.tax], io), 0)
    t.match(io.lines.at(-1), /^PASS: 0 errors/)
    const json = captureIo(true)
    const manifests = join(s.f.fed.authorityDir, 'manifests')
    t.equal(await auditCommand.run(['verify', s.psb, '--root', rootPub, '--manifests', manifests], captureIo()), 0, 'a revocation window is a warning')
    // The same export, saying the node had loaded the revoking manifest: an error, exit 1.
    const d = await copyExport(s, s.psb)
    await rewriteAndResign(s, d, PSB, (ls) => editRecord(ls, (r) => r.t === 'key-event' && r.event === 'node-started', (r) => ({ ...r, manifestSeq: 2, manifestHash: manifestHash(s.seq2) })))
    t.equal(await auditCommand.run(['verify', d, '--root', rootPub, '--manifests', manifests], json), 1)
    t.equal(json.lines.length, 1)
    const report = JSON.parse(json.lines[0]!) as AuditReport
    t.equal(report.ok, false)
    t.same(report.exchanges.map((e) => [e.xid, e.findings.map((f) => f.code)]), [[s.xids.revoked, ['AUDIT_KEY_NOT_VALID']]])
    const human = captureIo()
    t.equal(await auditCommand.run(['verify', d, '--root', rootPub, '--manifests', manifests], human), 1)
    t.ok(human.lines.some((l) => l.startsWith(`exchange ${s.xids.revoked} (provider, consumer ${TAX}`)))
    t.match(human.lines.at(-1), /^FAIL: 1 error/)
    t.match(summarizeReport(report), /^FAIL: \d+ leaves, 4 exchanges, checkpoint (\d+)\/\1; 1 errors, \d+ warnings$/, 'the edited copy also warns that its files differ from export.json')
    t.equal(await auditCommand.run(['verify'], captureIo()), 2, 'missing export dir')
    t.equal(await auditCommand.run(['check', s.psb], captureIo()), 2, 'unknown subcommand')
    t.equal(await auditCommand.run(['verify', s.psb, '--bogus'], captureIo()), 2, 'unknown option')
    const notExport = captureIo(true)
    t.equal(await auditCommand.run(['verify', s.root], notExport), 2, 'a folder that is not an export')
    t.equal(JSON.parse(notExport.lines[0]!).error.code, 'VN_ERR_AUDIT_EXPORT_INVALID')
  })

  t.test('CLI: log export', async (t) => {
    const out = join(s.root, 'cli-export')
    const io = captureIo(true)
    t.equal(await logExportCommand.run(['export', '--config', s.f.fed.nodes[PSB]!.configPath, '--out', out], io), 0)
    const doc = JSON.parse(io.lines[0]!)
    t.equal(doc.member, PSB)
    t.equal(doc.disclosures, false)
    t.ok((await auditExport(out, { rootKey: rootPub })).ok)
    const again = captureIo()
    t.equal(await logExportCommand.run(['export', '--config', s.f.fed.nodes[PSB]!.configPath, '--out', out], again), 2, 'target not empty')
    t.match(again.errs.join('\n'), /VN_ERR_AUDIT_EXPORT_TARGET/)
    t.equal(await logExportCommand.run(['export', '--out', out], captureIo()), 2, '--config missing')
    t.equal(await logExportCommand.run(['export', '--config', join(s.root, 'nope.json'), '--out', join(s.root, 'x')], captureIo()), 2, 'bad config')
  })

  t.test('exportLog and auditExport refuse bad targets and non-exports with their codes', async (t) => {
    await t.rejects(exportLog(s.f.fed.nodes[PSB]!.configPath, s.psb), { code: 'VN_ERR_AUDIT_EXPORT_TARGET' })
    await t.rejects(auditExport(join(s.root, 'missing')), { code: 'VN_ERR_AUDIT_EXPORT_INVALID' })
    await t.rejects(auditExport(s.psb, { rootKey: join(s.root, 'no-such.pub') }), { code: 'VN_ERR_KEY_FILE' })
    await t.rejects(auditExport(s.psb, { rootKey: 'A'.repeat(42) + '!' }), { code: 'VN_ERR_KEY_FILE' })
    const d = await copyExport(s, s.psb)
    await rm(join(d, 'entries.jsonl'))
    await t.rejects(auditExport(d), { code: 'VN_ERR_AUDIT_EXPORT_INVALID' })
    await writeFile(join(d, 'export.json'), '{"v":1}')
    await t.rejects(auditExport(d), { code: 'VN_ERR_AUDIT_EXPORT_INVALID' })
  })
})
