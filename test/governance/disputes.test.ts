/**
 * Disputes (数据异议, 校核纠错) between two real nodes over HTTP on 127.0.0.1: a consumer objects to one
 * answered exchange, the provider logs it, its operator corrects (a correction record naming the
 * dispute, then the signed resolution) or rejects, and the consumer sees the signed resolution;
 * unknown exchanges, duplicates and wrong members are refused with codes and nothing written.
 */
import t from 'tap'
import { request } from 'undici'
import { join } from 'node:path'
import { federationFixture, type Fixture } from '../helper.js'
import { signJwsJson } from '../../src/crypto/jws.js'
import { loadPrivateKey } from '../../src/crypto/keys.js'
import { makeDisclosure } from '../../src/protocol/disclosures.js'
import { GOV_TYP } from '../../src/policy/governance.js'

const TAX = 'fj-tax'
const CREDIT = 'fj-credit'
const AMR = 'fj-amr'

/* eslint-disable @typescript-eslint/no-explicit-any */
async function local(f: Fixture, member: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await request(`${f.nodes[member]!.localUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${f.fed.nodes[member]!.appToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  return { status: res.statusCode, json: await res.body.json() }
}
/* eslint-enable @typescript-eslint/no-explicit-any */

const size = (f: Fixture, m: string): Promise<number> => f.nodes[m]!.node.log.size()

t.test('a dispute filed, corrected and rejected; the consumer sees the signed resolution', async (t) => {
  const f = await federationFixture(t, { start: [TAX, CREDIT, AMR] })
  const s = f.fed.dataset.samples.tax
  const ask = async (): Promise<{ xid: string; providerLogIndex: number }> => {
    const r = await f.verify(CREDIT, {
      provider: TAX, service: 'tax.compliance', purpose: 'credit-evaluation', basis: 'Social Credit Regulations art. 12',
      subjects: [{ uscc: s.paidInFull[0]!.uscc, year: s.year }],
    })
    t.equal(r.status, 200)
    return r.json
  }
  const x1 = await ask()
  const x2 = await ask()

  const filed = await local(f, CREDIT, 'POST', '/local/v1/disputes', { provider: TAX, xid: x1.xid, index: x1.providerLogIndex, reason: 'outdated', note: 'paid on 2025-12-30, receipt no. 778' })
  t.equal(filed.status, 201, JSON.stringify(filed.json))
  const id = filed.json.id as string
  t.type(filed.json.due, 'number')
  const leaf = Buffer.from(await f.nodes[TAX]!.node.log.leaf(filed.json.providerIndex)).toString('utf8')
  t.match(leaf, /"kind":"dispute"/)
  t.match(leaf, new RegExp(`"xid":"${x1.xid}"`))
  t.notMatch(leaf, /receipt/, 'the note is sealed, not logged')

  // duplicate: the same exchange again, at the consumer and (forced) at the provider
  const before = [await size(f, CREDIT), await size(f, TAX)]
  t.equal((await local(f, CREDIT, 'POST', '/local/v1/disputes', { provider: TAX, xid: x1.xid, index: x1.providerLogIndex, reason: 'other', note: 'again' })).json.code, 'VN_ERR_GOV_DUPLICATE')
  const creditKey = await loadPrivateKey(join(f.fed.dir, CREDIT, 'keys', 'message.key'))
  const kid = `${CREDIT}#${f.nodes[CREDIT]!.node.federation.get().member(CREDIT).messageKeys.keys().next().value as string}`
  const note = makeDisclosure('note', 'again')
  const dispute = (over: Record<string, unknown>): string => signJwsJson({ v: 1, t: 'dispute', id: 'DDDDDDDDDDDDDDDDDDDDDD', iat: Date.now(), iss: CREDIT, aud: TAX, xid: x1.xid, index: x1.providerLogIndex, reason: 'other', note: note.digest, ...over }, creditKey, kid, GOV_TYP)
  const post = async (jws: string): Promise<string> => {
    const res = await request(`${f.nodes[TAX]!.publicUrl}/v1/governance`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jws, disclosures: [note.disclosure] }) })
    return ((await res.body.json()) as { code: string }).code
  }
  t.equal(await post(dispute({})), 'VN_ERR_GOV_DUPLICATE', 'a second dispute about the same exchange')
  // unsigned, wrongly signed, signed by another member than its issuer, addressed to another member
  const fresh = dispute({ xid: x2.xid, index: x2.providerLogIndex })
  const [h, p] = fresh.split('.')
  t.equal(await post(`${h}.${p}.`), 'VN_ERR_JWS_MALFORMED', 'unsigned')
  const sig = Buffer.from(fresh.split('.')[2]!, 'base64url')
  sig[0] = sig[0]! ^ 1
  t.equal(await post(`${h}.${p}.${sig.toString('base64url')}`), 'VN_ERR_JWS_SIGNATURE', 'one bit of the signature flipped')
  const amrKey = await loadPrivateKey(join(f.fed.dir, AMR, 'keys', 'message.key'))
  const amrKid = `${AMR}#${f.nodes[AMR]!.node.federation.get().member(AMR).messageKeys.keys().next().value as string}`
  const asAmr = (payload: Record<string, unknown>): string => signJwsJson(payload, amrKey, amrKid, GOV_TYP)
  t.equal(await post(asAmr({ v: 1, t: 'dispute', id: 'DDDDDDDDDDDDDDDDDDDDDD', iat: Date.now(), iss: CREDIT, aud: TAX, xid: x2.xid, index: x2.providerLogIndex, reason: 'other', note: note.digest })),
    'VN_ERR_EXCH_ISSUER_MISMATCH', "signed with another member's key")
  t.equal(await post(asAmr({ v: 1, t: 'dispute', id: 'DDDDDDDDDDDDDDDDDDDDDD', iat: Date.now(), iss: AMR, aud: TAX, xid: x2.xid, index: x2.providerLogIndex, reason: 'other', note: note.digest })),
    'VN_ERR_GOV_UNKNOWN_EXCHANGE', 'a member disputing an exchange it did not ask')
  const toCredit = async (jws: string): Promise<string> => {
    const res = await request(`${f.nodes[CREDIT]!.publicUrl}/v1/governance`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jws }) })
    return ((await res.body.json()) as { code: string }).code
  }
  // a resolution from a member that is not the provider the dispute went to
  t.equal(await toCredit(asAmr({ v: 1, t: 'dispute-resolution', id, iat: Date.now(), iss: AMR, aud: CREDIT, dispute: filed.json.digest ?? note.digest, outcome: 'rejected', reason: 'no' })),
    'VN_ERR_GOV_WRONG_MEMBER', 'resolved by another member than the provider')
  t.equal(await toCredit(asAmr({ v: 1, t: 'dispute-resolution', id: 'GGGGGGGGGGGGGGGGGGGGGG', iat: Date.now(), iss: AMR, aud: CREDIT, dispute: note.digest, outcome: 'rejected', reason: 'no' })),
    'VN_ERR_GOV_UNKNOWN', 'a resolution of an unknown dispute')
  // unknown exchange: an index that is not this xid's request, an xid never seen, an index past the log
  t.equal(await post(dispute({ xid: x2.xid, index: x1.providerLogIndex })), 'VN_ERR_GOV_UNKNOWN_EXCHANGE')
  t.equal(await post(dispute({ xid: 'EEEEEEEEEEEEEEEEEEEEEE', index: x2.providerLogIndex })), 'VN_ERR_GOV_UNKNOWN_EXCHANGE')
  t.equal(await post(dispute({ xid: x2.xid, index: 1_000_000 })), 'VN_ERR_GOV_UNKNOWN_EXCHANGE')
  // an exchange of another consumer
  const amrAsk = await f.verify(AMR, { provider: CREDIT, service: 'credit.dishonest', purpose: 'registration-review', basis: 'Regulation on the Registration of Market Entities art. 12', subjects: [{ id: f.fed.dataset.samples.credit.unlistedPersons[0] }] })
  const afterAmr = [await size(f, CREDIT), await size(f, TAX)]
  t.equal(await post(dispute({ xid: amrAsk.json.xid, index: amrAsk.json.providerLogIndex })), 'VN_ERR_GOV_UNKNOWN_EXCHANGE', 'an exchange this provider did not answer for this consumer')
  t.equal((await local(f, CREDIT, 'POST', '/local/v1/disputes', { provider: TAX, xid: x2.xid, index: x2.providerLogIndex, reason: 'nonsense', note: 'x' })).json.code, 'VN_ERR_GOV_INVALID', 'an unknown reason code')
  t.same([await size(f, CREDIT), await size(f, TAX)], afterAmr, 'nothing written')
  t.ok(afterAmr[0]! >= before[0]!)

  // only the provider resolves; a resolution needs its reason
  t.equal((await local(f, CREDIT, 'POST', `/local/v1/disputes/${id}/correct`, { reason: 'x' })).json.code, 'VN_ERR_GOV_WRONG_MEMBER')
  t.equal((await local(f, TAX, 'POST', `/local/v1/disputes/${id}/correct`, {})).json.code, 'VN_ERR_GOV_INVALID')
  t.equal((await local(f, TAX, 'POST', '/local/v1/disputes/FFFFFFFFFFFFFFFFFFFFFF/reject', { reason: 'x' })).json.code, 'VN_ERR_GOV_UNKNOWN')

  // the provider's queue shows it with its note; it corrects
  const shown = await local(f, TAX, 'GET', `/local/v1/disputes/${id}`)
  t.match(shown.json, { state: 'filed', role: 'provider', xid: x1.xid, note: 'paid on 2025-12-30, receipt no. 778' })
  const fixed = await local(f, TAX, 'POST', `/local/v1/disputes/${id}/correct`, { reason: 'late payment booked; record corrected' })
  t.equal(fixed.json.state, 'corrected')
  t.equal(fixed.json.delivered, true)
  t.equal(fixed.json.correctionIndex, fixed.json.index - 1, 'the correction record comes right before the resolution')
  const correction = JSON.parse(Buffer.from(await f.nodes[TAX]!.node.log.leaf(fixed.json.correctionIndex)).toString('utf8'))
  t.match(correction, { t: 'governance', kind: 'correction', id, xid: x1.xid, ref: x1.providerLogIndex })
  t.equal((await local(f, TAX, 'POST', `/local/v1/disputes/${id}/reject`, { reason: 'x' })).json.code, 'VN_ERR_GOV_STATE', 'resolving twice')

  const status = await local(f, CREDIT, 'GET', `/local/v1/disputes/${id}`)
  t.equal(status.json.state, 'corrected')
  t.equal(status.json.messages.at(-1).payload.outcome, 'corrected')
  t.equal(status.json.messages.at(-1).payload.reason, 'late payment booked; record corrected')

  // a second dispute, rejected while the consumer's node cannot be reached: it learns of it by asking
  const d2 = (await local(f, CREDIT, 'POST', '/local/v1/disputes', { provider: TAX, xid: x2.xid, index: x2.providerLogIndex, reason: 'wrong-answer', note: 'n' })).json.id as string
  const pub = f.nodes[CREDIT]!.publicApp
  const orig = pub.governance.receive.bind(pub.governance)
  pub.governance.receive = async () => { throw new Error('down') }
  const rej = await local(f, TAX, 'POST', `/local/v1/disputes/${d2}/reject`, { reason: 'the record was right' })
  t.equal(rej.json.delivered, false, 'the push failed')
  pub.governance.receive = orig
  const polled = await local(f, CREDIT, 'GET', `/local/v1/disputes/${d2}`)
  t.equal(polled.json.state, 'rejected', 'the consumer fetched the signed resolution')
  t.equal(polled.json.polled.delivered, true)
})
