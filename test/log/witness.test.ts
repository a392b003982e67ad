/**
 * Witnessing between real nodes: cosignatures land on the peer's checkpoint, receipts prove that the
 * provider logged an exchange, and a forked history shown to a witness is caught and kept.
 */
import t from 'tap'
import { request } from 'undici'
import { pino } from 'pino'
import { auditEditedExport, federationFixture } from '../helper.js'
import { startNode } from '../../src/http/server.js'
import { exportLog } from '../../src/node/export.js'
import { auditExport } from '../../src/audit/verify.js'
import { openCheckpoint, noteVerifier, notePublicKey, cosignatureVerifier, signCheckpoint, noteSigner, parseCheckpoint, parseNote } from '../../src/log/checkpoint.js'
import { logOrigin } from '../../src/log/peer-logs.js'
import { loadPrivateKey } from '../../src/crypto/keys.js'
import { join } from 'node:path'

t.test('receipts, cosignatures and fork evidence', async (t) => {
  const f = await federationFixture(t, { start: ['fj-psb', 'fj-tax'] })
  const m = f.fed.dataset.samples.identity.matches[0]!
  const r = await f.verify('fj-tax', { provider: 'fj-psb', service: 'identity.match', purpose: 'taxpayer-registration', basis: 'Tax Collection Administration Law art. 15', subjects: [{ id: m.id, name: m.name }] })
  t.equal(r.status, 200)
  const psb = f.nodes['fj-psb']!
  const tax = f.nodes['fj-tax']!

  // receipt through the consumer's local API
  const res = await request(`${tax.localUrl}/local/v1/receipts/fj-psb/${r.json.providerLogIndex}`, { headers: { authorization: `Bearer ${f.fed.nodes['fj-tax']!.appToken}` } })
  const receipt = (await res.body.json()) as { leaf: Record<string, unknown>; proof: string[] }
  t.equal(res.statusCode, 200, JSON.stringify(receipt))
  t.equal(receipt.leaf.t, 'request-in')
  t.equal(receipt.leaf.xid, r.json.xid)
  t.equal(receipt.leaf.reqDigest, r.json.reqDigest, 'the provider logged exactly our request')

  // leaves are not served without member authentication
  const anon = await request(`${psb.publicUrl}/v1/log/entries?start=0&end=1`)
  t.equal(anon.statusCode, 401)
  t.equal(((await anon.body.json()) as { code: string }).code, 'VN_ERR_LOCAL_UNAUTHORIZED')
  const badProof = await request(`${psb.publicUrl}/v1/log/proof/inclusion?index=5&size=2`)
  t.equal(badProof.statusCode, 400)

  // witnessing: tax cosigns psb's checkpoint; psb serves it with the cosignature
  await psb.node.checkpoint()
  const w = await tax.node.peerLogs.witness('fj-psb')
  t.ok(w.cosigned)
  const note = await (await request(`${psb.publicUrl}/v1/log/checkpoint`)).body.text()
  const fed = psb.node.federation.get()
  const cos = cosignatureVerifier(logOrigin(fed.name, 'fj-tax'), notePublicKey(fed.logPublicKey('fj-tax')))
  const own = noteVerifier(logOrigin(fed.name, 'fj-psb'), notePublicKey(fed.logPublicKey('fj-psb')))
  const opened = openCheckpoint(note, [own, cos])
  t.equal(opened.note.verified.length, 2, 'signed by the log and cosigned by the witness')

  // a fork: psb's log key signs a different root at a larger size; the witness must catch it
  const logKey = await loadPrivateKey(join(f.fed.dir, 'fj-psb', 'keys', 'log.key'))
  const cp = parseCheckpoint(parseNote(note).text)
  const forged = signCheckpoint({ origin: cp.origin, size: cp.size + 5, rootHash: new Uint8Array(32).fill(7) }, noteSigner(cp.origin, logKey))
  // Serve the forged note to the witness by swapping the peer's checkpoint function.
  const orig = psb.node.checkpoint
  ;(psb.node as { checkpoint: () => Promise<string> }).checkpoint = async () => forged
  const w2 = await tax.node.peerLogs.witness('fj-psb')
  ;(psb.node as { checkpoint: () => Promise<string> }).checkpoint = orig
  t.notOk(w2.cosigned, 'not cosigned')
  t.equal(tax.node.peerLogs.forks.length, 1, 'kept as evidence')
  const metrics = await (await request(tax.metricsUrl)).body.text()
  t.match(metrics, /verinode_peer_fork_alerts_total\{member="fj-tax"\} 1/)
})

t.test('a restarted witness remembers what it saw: a fork across its restart is caught', async (t) => {
  const f = await federationFixture(t, { start: ['fj-psb', 'fj-tax'] })
  const psb = f.nodes['fj-psb']!
  await psb.node.checkpoint()
  t.ok((await f.nodes['fj-tax']!.node.peerLogs.witness('fj-psb')).cosigned)
  const seen = f.nodes['fj-tax']!.node.peerLogs.lastSeen('fj-psb')!
  await f.nodes['fj-tax']!.close()
  // Restarted (registered with the fixture so its teardown closes it).
  const tax = await startNode(f.fed.nodes['fj-tax']!.configPath, { logger: pino({ level: 'silent' }), checkpointEveryMs: 0, witnessEveryMs: 0 })
  f.nodes['fj-tax'] = tax
  t.equal(tax.node.peerLogs.lastSeen('fj-psb')?.note, seen.note, 'taken from its own log')

  // psb's log key signs a smaller tree than the one tax saw before its restart.
  const logKey = await loadPrivateKey(join(f.fed.dir, 'fj-psb', 'keys', 'log.key'))
  const cp = seen.checkpoint
  const forged = signCheckpoint({ origin: cp.origin, size: cp.size - 1, rootHash: new Uint8Array(32).fill(9) }, noteSigner(cp.origin, logKey))
  const orig = psb.node.checkpoint
  ;(psb.node as { checkpoint: () => Promise<string> }).checkpoint = async () => forged
  const w = await tax.node.peerLogs.witness('fj-psb')
  ;(psb.node as { checkpoint: () => Promise<string> }).checkpoint = orig
  t.notOk(w.cosigned, 'not cosigned')
  t.same(tax.node.peerLogs.forks.map((x) => x.notes), [[seen.note, forged]], 'both signed notes kept')

  // The auditor: the peer-checkpoint note matches its record; the fork is reported; a record
  // whose note says something else is a finding.
  await tax.close()
  const out = join(f.fed.dir, 'export-tax')
  await exportLog(f.fed.nodes['fj-tax']!.configPath, out)
  const r = await auditExport(out)
  const codes = r.findings.map((x) => x.code)
  t.ok(codes.includes('AUDIT_PEER_FORK_REPORTED'))
  t.same(r.findings.filter((x) => x.severity !== 'info' && x.code !== 'AUDIT_PEER_FORK_REPORTED').map((x) => x.code), [], JSON.stringify(r.findings))
  const bent = await auditEditedExport(f.fed, 'fj-tax', out, join(f.fed.dir, 'bent'), (rs) => rs.map((x) => (x.t === 'peer-checkpoint' ? { ...x, size: (x.size as number) + 1 } : x)))
  t.ok(bent.findings.some((x) => x.code === 'AUDIT_LEAF_INVALID' && /differs from the note it carries in size/.test(x.message)), JSON.stringify(bent.findings))
})
