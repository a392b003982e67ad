/**
 * he mode, provider side: every bad query gets its coded 4xx before the decision and nothing is
 * written (log leaves and evidence rows counted before and after). Requests are crafted by hand
 * with fj-credit's real message key and a BFV key pair made here, and sent over real HTTP to the
 * tax bureau's node. A well-formed request still works afterwards, also naming the key by digest
 * only, and the key cache is per consumer.
 */
import t from 'tap'
import { join } from 'node:path'
import { createPublicKey, type KeyObject } from 'node:crypto'
import { inflateSync } from 'node:zlib'
import Database from 'better-sqlite3'
import { request } from 'undici'
import { federationFixture } from '../helper.js'
import { loadPrivateKey } from '../../src/crypto/keys.js'
import { keyIdFor } from '../../src/federation/manifest.js'
import { signJwsJson } from '../../src/crypto/jws.js'
import { makeDisclosure } from '../../src/protocol/disclosures.js'
import { newXid } from '../../src/exchange/consumer.js'
import { REQUEST_TYP } from '../../src/protocol/envelope.js'
import { HeClient } from '../../src/he/threshold.js'
import { HE_PARAMS } from '../../src/he/context.js'
import { gridValues } from '../../src/he/grid.js'
import { publicKeyDigest } from '../../src/he/serialization.js'

const PROVIDER = 'fj-tax'
const g = gridValues()
const b64u = (b: Uint8Array): string => Buffer.from(b).toString('base64url')

const f = await federationFixture(t, { start: [PROVIDER], configOverrides: { he: { workers: 1 } } })
const url = `${f.nodes[PROVIDER]?.publicUrl}/v1/exchange`
const db = join(f.fed.dir, PROVIDER, 'var', 'log.db')
const client = await HeClient.create()
t.teardown(() => client.delete())

async function signer(member: string): Promise<{ key: KeyObject; kid: string }> {
  const key = await loadPrivateKey(join(f.fed.dir, member, 'keys', 'message.key'))
  return { key, kid: `${member}#${keyIdFor(createPublicKey(key))}` }
}
const credit = await signer('fj-credit')
const amr = await signer('fj-amr')

function counts(): { leaves: number; jws: number; disclosures: number } {
  const d = new Database(db, { readonly: true })
  try {
    const n = (sql: string): number => (d.prepare(sql).pluck().get() as number)
    return { leaves: n('SELECT count(*) FROM leaves'), jws: n('SELECT count(*) FROM evidence_jws'), disclosures: n('SELECT count(*) FROM evidence_disclosures') }
  } finally {
    d.close()
  }
}

interface Subject { uscc: string; year: number; bound?: number }
const tax = f.fed.dataset.samples.tax
const s0 = tax.paidInFull[0]!
const s1 = tax.notPaidInFull[0]!

/** A signed he request; `q` overrides fields of the query, `fields` adds disclosed fields. */
function heBody(subjects: Subject[], q: Record<string, unknown> = {}, opts: { as?: { key: KeyObject; kid: string }; iss?: string; disclose?: string[] } = {}) {
  const disclosures: string[] = []
  const disclose = opts.disclose ?? ['uscc', 'year']
  const digests = subjects.map((s) => Object.fromEntries(disclose.map((k) => {
    const d = makeDisclosure(k, (s as unknown as Record<string, string | number>)[k] as string | number)
    disclosures.push(d.disclosure)
    return [k, d.digest]
  })))
  const query = {
    subjects: digests, kind: 'threshold', params: HE_PARAMS.id, pk: client.publicKeyDigest(), pkBytes: b64u(client.publicKeyBytes()),
    ct: client.encryptBounds(subjects.map((s) => g.indexOf(s.bound ?? g[10] as number))).map(b64u), ...q,
  }
  for (const [k, v] of Object.entries(query)) if (v === undefined) delete (query as Record<string, unknown>)[k]
  const payload = {
    v: 1, xid: newXid(), iat: Date.now(), iss: opts.iss ?? 'fj-credit', aud: PROVIDER, svc: 'tax.compliance',
    purpose: 'credit-evaluation', basis: 'Social Credit Regulations art. 12', mode: 'he', q: query,
  }
  const who = opts.as ?? credit
  return { jws: signJwsJson(payload, who.key, who.kid, REQUEST_TYP), disclosures }
}

async function post(body: unknown): Promise<{ status: number; json: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const res = await request(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  return { status: res.statusCode, json: await res.body.json() }
}

/** The query ciphertext in SEAL's uncompressed form (mode 0), with `edit` applied. */
function uncompressed(wire: Uint8Array, edit: (raw: Uint8Array) => void): Uint8Array {
  const body = inflateSync(wire.subarray(16))
  const raw = new Uint8Array(16 + body.length)
  raw.set(wire.subarray(0, 16))
  raw[5] = 0
  new DataView(raw.buffer).setBigUint64(8, BigInt(raw.length), true)
  raw.set(body, 16)
  edit(raw)
  return raw
}

t.test('bad he queries are refused with their code before the decision, and nothing is written', async (t) => {
  const before = counts()
  const one = [{ uscc: s0.uscc, year: s0.year, bound: g[20] as number }]
  const ct = client.encryptBounds([20])[0]!
  const flipped = Uint8Array.from(ct)
  flipped[ct.length >> 1] = (flipped[ct.length >> 1] as number) ^ 0x10
  // A bit flipped in the deflated body. Not any bit: about 1 flip in 1,000 lands where inflate
  // ignores it (padding bits) and gives the very same key, which the provider then rightly accepts.
  // So the first flip from the middle on that no longer inflates.
  const pkBytes = client.publicKeyBytes()
  let badKey = pkBytes
  for (let at = pkBytes.length >> 1; badKey === pkBytes && at < pkBytes.length; at++) {
    const b = Uint8Array.from(pkBytes)
    b[at] = (b[at] as number) ^ 0x10
    try {
      inflateSync(b.subarray(16))
    } catch {
      badKey = b
    }
  }
  t.not(badKey, pkBytes, 'a flip that corrupts the key was found')

  const cases: Array<[string, () => { jws: string; disclosures: string[] }, number, string]> = [
    ['corrupt ciphertext (one bit flipped)', () => heBody(one, { ct: [b64u(flipped)] }), 400, 'VN_ERR_HE_CIPHERTEXT'],
    ['truncated ciphertext', () => heBody(one, { ct: [b64u(ct.subarray(0, ct.length - 100))] }), 400, 'VN_ERR_HE_CIPHERTEXT'],
    ['oversized ciphertext', () => heBody(one, { ct: [b64u(new Uint8Array(300_000).fill(7))] }), 400, 'VN_ERR_HE_CIPHERTEXT'],
    ['ciphertext of other parameters (parms_id)', () => heBody(one, { ct: [b64u(uncompressed(ct, (raw) => { raw[16] = (raw[16] as number) ^ 1 }))] }), 400, 'VN_ERR_HE_CIPHERTEXT'],
    ['ciphertext with a coefficient out of range (SEAL refuses)', () => heBody(one, { ct: [b64u(uncompressed(ct, (raw) => { new DataView(raw.buffer).setBigUint64(113, 0xffff_ffff_ffff_ffffn, true) }))] }), 400, 'VN_ERR_HE_CIPHERTEXT'],
    ['ciphertext not base64url', () => heBody(one, { ct: ['AAAA+/=='] }), 400, 'VN_ERR_HE_CIPHERTEXT'],
    ['two ciphertexts for one subject', () => heBody(one, { ct: [b64u(ct), b64u(ct)] }), 400, 'VN_ERR_HE_CIPHERTEXT'],
    ['another parameter set', () => heBody(one, { params: 'bfv-n4096-t65537-q109-g64' }), 400, 'VN_ERR_HE_PARAMS'],
    ['key digest the provider does not know', () => heBody(one, { pkBytes: undefined }), 409, 'VN_ERR_HE_KEY_UNKNOWN'],
    ['key that does not hash to its digest', () => heBody(one, { pk: 'ab'.repeat(32) }), 400, 'VN_ERR_HE_KEY'],
    ['corrupt key (digest recomputed)', () => heBody(one, { pk: publicKeyDigest(badKey), pkBytes: b64u(badKey) }), 400, 'VN_ERR_HE_KEY'],
    ['oversized key', () => heBody(one, { pk: publicKeyDigest(new Uint8Array(400_000)), pkBytes: b64u(new Uint8Array(400_000)) }), 400, 'VN_ERR_HE_KEY'],
    ['the bound disclosed as a field', () => heBody(one, {}, { disclose: ['uscc', 'year', 'bound'] }), 400, 'VN_ERR_SUBJECT_INVALID'],
    ['the same subject twice', () => heBody([one[0]!, { ...one[0]!, bound: g[30] as number }]), 400, 'VN_ERR_SUBJECT_INVALID'],
    ['range evaluation on a threshold service', () => heBody(one, { kind: 'range' }), 400, 'VN_ERR_REQ_INVALID'],
    ['no ciphertexts', () => heBody(one, { ct: [] }), 400, 'VN_ERR_REQ_INVALID'],
    ['malformed subject (bad check character)', () => heBody([{ uscc: `${s0.uscc.slice(0, 17)}${s0.uscc.endsWith('1') ? '2' : '1'}`, year: s0.year }]), 400, 'VN_ERR_SUBJECT_USCC_CHECKSUM'],
  ]
  for (const [name, build, status, code] of cases) {
    const r = await post(build())
    t.equal(r.status, status, `${name}: status`)
    t.equal(r.json.code, code, `${name}: code (${String(r.json.detail)})`)
    t.equal(r.json.jws, undefined, `${name}: unsigned problem`)
    t.notMatch(JSON.stringify(r.json), s0.uscc, `${name}: no subject in the error`)
  }
  t.same(counts(), before, 'nothing was written')
})

t.test('a well-formed request works, then by digest only; the key is cached per consumer', async (t) => {
  const subjects = [{ uscc: s0.uscc, year: s0.year, bound: g[0] as number }, { uscc: s1.uscc, year: s1.year, bound: g[63] as number }]
  const before = counts()
  const first = await post(heBody(subjects))
  t.equal(first.status, 200, JSON.stringify(first.json).slice(0, 300))
  const payload = JSON.parse(Buffer.from(first.json.jws.split('.')[1], 'base64url').toString())
  t.equal(payload.status, 'ok')
  t.equal(payload.results, undefined, 'no clear results in he mode')
  t.equal(payload.r.ct.length, 1)
  const bits = client.decryptBits(payload.r.ct.map((s: string) => new Uint8Array(Buffer.from(s, 'base64url'))), 2)
  t.same(bits, [true, s1.paidFen >= (g[63] as number)], 'bound 0 on a record: yes; the top of the grid: no')

  const second = await post(heBody([{ uscc: s1.uscc, year: s1.year, bound: g[0] as number }], { pkBytes: undefined }))
  t.equal(second.status, 200, 'the cached key is named by its digest')
  t.same(counts(), { leaves: before.leaves + 6, jws: before.jws + 4, disclosures: before.disclosures + 2 })

  // fj-amr never sent this key: naming it by digest does not borrow fj-credit's cache entry.
  const other = await post(heBody([{ uscc: s1.uscc, year: s1.year }], { pkBytes: undefined }, { as: amr, iss: 'fj-amr' }))
  t.equal(other.status, 409)
  t.equal(other.json.code, 'VN_ERR_HE_KEY_UNKNOWN')
})
