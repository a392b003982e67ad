/**
 * Witnessing between real nodes: cosignatures land on the peer's checkpoint, receipts prove that the
 * provider logged an exchange, and a forked history shown to a witness is caught and kept.
 */
import t from 'tap'
import { request } from 'undici'
import { federationFixture } from '../helper.js'
import { openCheckpoint, ed25519NoteVerifier, ed25519RawPublicKey, cosignatureVerifier, signCheckpoint, ed25519NoteSigner, parseCheckpoint, parseNote } from '../../src/log/checkpoint.js'
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
  const cos = cosignatureVerifier(logOrigin(fed.name, 'fj-tax'), ed25519RawPublicKey(fed.logPublicKey('fj-tax')))
  const own = ed25519NoteVerifier(logOrigin(fed.name, 'fj-psb'), ed25519RawPublicKey(fed.logPublicKey('fj-psb')))
  const opened = openCheckpoint(note, [own, cos])
  t.equal(opened.note.verified.length, 2, 'signed by the log and cosigned by the witness')

  // a fork: psb's log key signs a different root at a larger size; the witness must catch it
  const logKey = await loadPrivateKey(join(f.fed.dir, 'fj-psb', 'keys', 'log.key'))
  const cp = parseCheckpoint(parseNote(note).text)
  const forged = signCheckpoint({ origin: cp.origin, size: cp.size + 5, rootHash: new Uint8Array(32).fill(7) }, ed25519NoteSigner(cp.origin, logKey))
  // Serve the forged note to the witness by swapping the peer's checkpoint function.
  const orig = psb.node.checkpoint
  ;(psb.node as { checkpoint: () => Promise<string> }).checkpoint = async () => forged
  const w2 = await tax.node.peerLogs.witness('fj-psb')
  ;(psb.node as { checkpoint: () => Promise<string> }).checkpoint = orig
  t.notOk(w2.cosigned, 'not cosigned')
  t.equal(tax.node.peerLogs.forks.length, 1, 'kept as evidence')
  const metrics = await (await request(`${tax.publicUrl}/metrics`)).body.text()
  t.match(metrics, /verinode_peer_fork_alerts_total\{member="fj-tax"\} 1/)
})
