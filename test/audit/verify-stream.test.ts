/**
 * `audit verify` as a pipeline (src/audit/verify.ts): signatures checked in batches on worker
 * threads give the same report as checked one by one; the evidence is streamed, so an export whose
 * evidence.jsonl is in another order than the leaves is audited the same; and the one findings
 * collector (findings.ts) orders log-wide findings learnt late by their step.
 */
import t from 'tap'
import { cp, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { federationFixture } from '../helper.js'
import { exportLog } from '../../src/node/export.js'
import { auditExport, type AuditReport } from '../../src/audit/verify.js'
import { Findings } from '../../src/audit/findings.js'
import { canonicalJson } from '../../src/protocol/canonical-json.js'
import { REQUEST_TYP } from '../../src/protocol/envelope.js'
import { jwsDigest } from '../../src/protocol/jws-digest.js'
import { signJws } from '../../src/crypto/jws.js'
import { loadPrivateKey } from '../../src/crypto/keys.js'
import { nodeKeyFiles } from '../../src/node/files.js'

const PSB = 'fj-psb'
const TAX = 'fj-tax'

t.test('findings: log-wide ones by stage, then by leaf; a reserved place keeps its order', async (t) => {
  const f = new Findings()
  f.stage = 3
  f.add('AUDIT_CHECKPOINT_INVALID', 'cp')
  f.add('AUDIT_LEAF_INVALID', 'leaf 2', { index: 2 })
  const place = f.reserve()
  f.add('AUDIT_LEAF_NOT_CANONICAL', 'leaf 1 b', { index: 1 })
  f.during(0, () => f.add('AUDIT_EXPORT_FILE_HASH', 'file'))
  f.addAt(place, 'AUDIT_PII_NAME', 'leaf 1 a', { index: 1 })
  t.same(f.sorted().map((x) => x.message), ['file', 'cp', 'leaf 1 a', 'leaf 1 b', 'leaf 2'])
  t.same(f.list.map((x) => x.message), ['cp', 'leaf 2', 'leaf 1 b', 'file', 'leaf 1 a'], 'list: as added')
  t.same(f.counts(), { errors: 4, warnings: 1, infos: 0 })
})

t.test('worker batches and streamed, reordered evidence give the same report', async (t) => {
  const f = await federationFixture(t, { start: [PSB, TAX] })
  const id = f.fed.dataset.samples.identity
  const ask = { provider: PSB, service: 'identity.match', purpose: 'taxpayer-registration', basis: 'Tax Collection Administration Law art. 15' }
  for (let k = 0; k < 4; k++) {
    const r = await f.verify(TAX, { ...ask, subjects: [{ id: id.matches[k]!.id, name: id.matches[k]!.name }] })
    t.equal(r.status, 200)
  }
  for (const n of Object.values(f.nodes)) await n.close()
  const out = join(f.fed.dir, 'exports')
  const psb = join(out, 'psb')
  await exportLog(f.fed.nodes[PSB]!.configPath, psb)

  const inline = await auditExport(psb, { workers: 0 })
  t.ok(inline.ok, JSON.stringify(inline.findings))
  t.ok(inline.counts.provider >= 4)
  const batched = await auditExport(psb, { workers: 2 })
  t.same(batched, inline, 'same report with the signatures checked on 2 worker threads')

  // A tampered export: the workers' summaries (precheck.ts) must lead to exactly the findings, in
  // the same order, that the checks on one thread give. A leaf with a name in it and made
  // non-canonical, a leaf that is not JSON, two JWS altered (in the payload, in the signature: their
  // digests no longer match), and an evidence line that is not a record.
  const tampered = join(out, 'psb-tampered')
  await cp(psb, tampered, { recursive: true })
  const leafLines = (await readFile(join(tampered, 'entries.jsonl'), 'utf8')).split('\n').filter((l) => l !== '')
  const reqIn = leafLines.findIndex((l) => l.includes('"t":"request-in"'))
  const decision = leafLines.findIndex((l) => l.includes('"t":"decision"'))
  leafLines[reqIn] = (leafLines[reqIn] as string).replace('"purpose":"taxpayer-registration"', '"purpose": "\u738b\u5c0f\u660e"')
  leafLines[decision] = '{"t":"decision",'
  await writeFile(join(tampered, 'entries.jsonl'), `${leafLines.join('\n')}\n`)
  const ev = (await readFile(join(tampered, 'evidence.jsonl'), 'utf8')).split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { digest: string; jws: string })
  const alter = (jws: string, at: number): string => `${jws.slice(0, at)}${jws[at] === 'A' ? 'B' : 'A'}${jws.slice(at + 1)}`
  const [e0, e1, e2] = ev as [typeof ev[0], typeof ev[0], typeof ev[0]]
  e0.jws = alter(e0.jws, e0.jws.indexOf('.') + 5)
  e1.jws = alter(e1.jws, e1.jws.length - 5)
  await writeFile(join(tampered, 'evidence.jsonl'), `${ev.map((e, k) => (k === 2 ? 'not json' : JSON.stringify(e))).join('\n')}\n`)
  t.ok(e2.digest.length > 0)
  const oneThread = await auditExport(tampered, { workers: 0 })
  t.notOk(oneThread.ok)
  for (const code of ['AUDIT_PII_NAME', 'AUDIT_LEAF_NOT_CANONICAL', 'AUDIT_LEAF_INVALID', 'AUDIT_EVIDENCE_DIGEST_MISMATCH', 'AUDIT_EVIDENCE_MALFORMED', 'AUDIT_ROOT_MISMATCH']) {
    t.ok(oneThread.findings.some((g) => g.code === code), code)
  }
  t.same(await auditExport(tampered, { workers: 2 }), oneThread, 'tampered: the same report with the work on 2 worker threads')

  // The evidence in reverse order: only export.json's hash of the file differs.
  const reversed = join(out, 'psb-reversed')
  await cp(psb, reversed, { recursive: true })
  const lines = (await readFile(join(reversed, 'evidence.jsonl'), 'utf8')).split('\n').filter((l) => l !== '')
  await writeFile(join(reversed, 'evidence.jsonl'), `${[...lines].reverse().join('\n')}\n`)
  const r = await auditExport(reversed, { workers: 2 })
  const strip = (x: AuditReport): unknown => ({ ...x, dir: '', counts: { ...x.counts, warnings: 0 }, findings: x.findings.filter((g) => g.code !== 'AUDIT_EXPORT_FILE_HASH') })
  t.same(strip(r), strip(inline), 'reordered evidence: same findings')
  t.same(r.findings.filter((g) => g.code === 'AUDIT_EXPORT_FILE_HASH').map((g) => g.message), ['evidence.jsonl: differs from the SHA-256 export.json lists'])

  // A second, different JWS for a digest that a leaf names (after its first): reported, first one used.
  const dup = join(out, 'psb-dup')
  await cp(psb, dup, { recursive: true })
  const first = JSON.parse(lines[0] as string) as { digest: string; jws: string }
  const other = JSON.parse(lines[1] as string) as { digest: string; jws: string }
  await writeFile(join(dup, 'evidence.jsonl'), `${lines.join('\n')}\n${JSON.stringify({ digest: first.digest, jws: other.jws })}\n${lines[0]}\nnot json\n`)
  const d = await auditExport(dup)
  t.same(d.findings.filter((g) => g.code === 'AUDIT_EVIDENCE_MALFORMED').map((g) => g.message), [
    `evidence.jsonl line ${lines.length + 1}: a second, different JWS for digest ${first.digest}`,
    `evidence.jsonl line ${lines.length + 3}: not a { digest, jws } record`,
  ])
  t.equal(d.findings.filter((g) => g.severity === 'error').length, 2, 'nothing else is wrong')

  // Late leaves of an exchange that has ended: its records were dropped once its response-out was
  // checked, and are read back from entries.jsonl to check these against.
  const late = join(out, 'psb-late')
  await cp(psb, late, { recursive: true })
  const leavesOf = leafLinesOf(await readFile(join(late, 'entries.jsonl'), 'utf8'))
  const at = (type: string): number => leavesOf.findIndex((l) => l.includes(`"t":"${type}"`))
  const [reqInAt, decisionAt, respOutAt] = [at('request-in'), at('decision'), at('response-out')]
  const edited = (k: number, edit: (r: Record<string, unknown>) => void): string => {
    const r = JSON.parse(leavesOf[k] as string) as Record<string, unknown>
    edit(r)
    return canonicalJson(r)
  }
  const n = leavesOf.length
  const extra = [edited(decisionAt, (r) => { r.count = 7 }), edited(respOutAt, (r) => { r.requestIndex = 0 })]
  await writeFile(join(late, 'entries.jsonl'), [...leavesOf, ...extra].map((l) => `${l}\n`).join(''))
  const lateReport = await auditExport(late, { workers: 0 })
  const mine = (r: AuditReport): string[] => r.findings.filter((g) => g.index !== undefined && g.index >= n).map((g) => `${g.code}: ${g.message}`)
  const found = mine(lateReport)
  for (const m of [
    `AUDIT_BINDING_MISMATCH: leaf ${n}: decision differs from request-in (leaf ${reqInAt}) in count`,
    `AUDIT_DUPLICATE_EXCHANGE: leaf ${n}: a second decision for this xid (first at leaf ${decisionAt})`,
    `AUDIT_BINDING_MISMATCH: leaf ${n + 1}: response-out differs from request-in (leaf ${reqInAt}) in requestIndex`,
    `AUDIT_DUPLICATE_EXCHANGE: leaf ${n + 1}: a second response-out for this xid (first at leaf ${respOutAt})`,
  ]) t.ok(found.includes(m), `${m} (among ${JSON.stringify(found)})`)
  t.same(await auditExport(late, { workers: 2 }), lateReport, 'the same with workers')

  // A plain request, re-signed by its consumer, whose q asks about no subject: the workers send
  // the subject count (or the reason there is none) instead of q; the finding is the same.
  const badQ = join(out, 'psb-bad-q')
  await cp(psb, badQ, { recursive: true })
  const evLines = leafLinesOf(await readFile(join(badQ, 'evidence.jsonl'), 'utf8'))
  const reqAt = evLines.findIndex((l) => JSON.parse(Buffer.from((JSON.parse(l) as { jws: string }).jws.split('.')[0] as string, 'base64url').toString()).typ === REQUEST_TYP)
  const old = JSON.parse(evLines[reqAt] as string) as { digest: string; jws: string }
  const [h, p] = old.jws.split('.') as [string, string]
  const header = JSON.parse(Buffer.from(h, 'base64url').toString()) as { kid: string }
  const payload = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>
  t.equal(payload.mode, 'plain')
  const key = await loadPrivateKey(nodeKeyFiles(join(f.fed.dir, TAX, 'keys')).messageKey)
  const jws = signJws(JSON.stringify({ ...payload, q: { subjects: [] } }), key, header.kid, REQUEST_TYP)
  const digest = jwsDigest(jws)
  evLines[reqAt] = JSON.stringify({ digest, jws })
  await writeFile(join(badQ, 'evidence.jsonl'), evLines.map((l) => `${l}\n`).join(''))
  const entries = await readFile(join(badQ, 'entries.jsonl'), 'utf8')
  t.ok(entries.includes(old.digest))
  await writeFile(join(badQ, 'entries.jsonl'), entries.split(old.digest).join(digest))
  const qReport = await auditExport(badQ, { workers: 0 })
  t.ok(qReport.findings.some((g) => g.code === 'AUDIT_ENVELOPE_INVALID' && g.message.startsWith(`request ${digest}: q: `)), JSON.stringify(qReport.findings.map((g) => g.message)))
  t.same(await auditExport(badQ, { workers: 2 }), qReport, 'the same with workers')
})

const leafLinesOf = (text: string): string[] => text.split('\n').filter((l) => l !== '')
