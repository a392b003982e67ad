import t from 'tap'
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import Database from 'better-sqlite3'
import { SqliteLogStore } from '../../src/log/store.js'
import { SqliteEvidenceStore, jwsDigest, encryptDisclosures, decryptDisclosures } from '../../src/log/evidence.js'

const KEY = new Uint8Array(randomBytes(32))
// Synthetic SD-JWT-style disclosures holding a (made-up) ID number and name.
const SECRET_ID = '11010519491231002X'
const SECRET_NAME = 'Zhang San Testperson'
const DISCLOSURES = [
  Buffer.from(JSON.stringify(['salt-1', 'id', SECRET_ID])).toString('base64url'),
  Buffer.from(JSON.stringify(['salt-2', 'name', SECRET_NAME])).toString('base64url'),
]
const JWS = 'eyJhbGciOiJFZERTQSJ9.eyJ2IjoxfQ.c2lnbmF0dXJl'

async function setup(t: { teardown(fn: () => unknown): void }): Promise<{ dir: string; path: string; log: SqliteLogStore; ev: SqliteEvidenceStore }> {
  const dir = mkdtempSync(join(tmpdir(), 'vn-ev-'))
  const path = join(dir, 'log.db')
  const log = await SqliteLogStore.open(path, { writer: 'inline' })
  t.teardown(async () => {
    await log.close()
    rmSync(dir, { recursive: true, force: true })
  })
  return { dir, path, log, ev: new SqliteEvidenceStore(log, KEY) }
}

const LEAF = (s: string): Uint8Array => new TextEncoder().encode(s)

t.test('JWS evidence: stored with the record that names it, digest checked', async (t) => {
  const { log, ev } = await setup(t)
  const d = jwsDigest(JWS)
  t.equal(d.length, 43)
  const [r0, r1] = await log.appendWithEvidence([LEAF('{"t":"a"}'), LEAF('{"t":"b"}')], [ev.jwsRecord(1, d, JWS)])
  t.same([r0?.index, r1?.index], [0, 1])
  t.same(await ev.getJws(1), { digest: d, jws: JWS }, 'under the index of the record it belongs to')
  t.equal(await ev.getJws(0), undefined)
  t.equal(await ev.getJws(7), undefined)
  t.throws(() => ev.jwsRecord(0, jwsDigest('a.b.c'), JWS), { code: 'VN_ERR_EVIDENCE_INVALID' }, 'digest of another JWS')
  t.throws(() => ev.jwsRecord(0, 'short', JWS), { code: 'VN_ERR_EVIDENCE_INVALID' })
  t.throws(() => ev.jwsRecord(0, jwsDigest('not a jws'), 'not a jws'), { code: 'VN_ERR_EVIDENCE_INVALID' })
  await t.rejects(ev.getJws(-1), { code: 'VN_ERR_EVIDENCE_INVALID' })
  await t.rejects(ev.getJws(1.5), { code: 'VN_ERR_EVIDENCE_INVALID' })
})

t.test('evidence must name a distinct leaf of its own append (else nothing is written)', async (t) => {
  const { log, ev } = await setup(t)
  const row = ev.jwsRecord(0, jwsDigest(JWS), JWS)
  await t.rejects(log.appendWithEvidence([], [row]), { code: 'VN_ERR_EVIDENCE_INVALID' }, 'no leaf to belong to')
  await t.rejects(log.appendWithEvidence([LEAF('{}')], [ev.jwsRecord(1, jwsDigest(JWS), JWS)]), { code: 'VN_ERR_EVIDENCE_INVALID' }, 'beyond the call')
  await t.rejects(log.appendWithEvidence([LEAF('{}')], [row, row]), { code: 'VN_ERR_EVIDENCE_INVALID' }, 'two JWS for one leaf')
  await t.rejects(log.appendWithEvidence([LEAF('{}')], [{ ...row, leaf: -1 }]), { code: 'VN_ERR_EVIDENCE_INVALID' })
  t.equal(await log.size(), 0)
  t.ok(log.writable, 'a bad row never fails the store closed')
  // A JWS and disclosures may share a leaf; the offsets stay right when appends share a commit.
  const a = log.appendWithEvidence([LEAF('{"n":0}'), LEAF('{"n":1}')], [ev.jwsRecord(1, jwsDigest(JWS), JWS)])
  const b = log.appendWithEvidence([LEAF('{"n":2}')], [ev.jwsRecord(0, jwsDigest(JWS), JWS), ev.sealDisclosures(0, 'xid-b', DISCLOSURES, Date.now() + 60_000)])
  await Promise.all([a, b])
  t.equal((await ev.getJws(1))?.jws, JWS)
  t.equal((await ev.getJws(2))?.jws, JWS)
  t.equal(await ev.getJws(0), undefined)
  t.same(await ev.getDisclosures(2), { xid: 'xid-b', disclosures: DISCLOSURES })
})

t.test('disclosures: sealed at rest (file scan), round-trip, tamper detected, purge deletes', async (t) => {
  const { dir, path, log, ev } = await setup(t)
  const now = 1_800_000_000_000
  await log.appendWithEvidence([LEAF('{"x":1}'), LEAF('{"x":2}')], [ev.sealDisclosures(0, 'xid-1', DISCLOSURES, now + 1000), ev.sealDisclosures(1, 'xid-2', DISCLOSURES, now - 1)])
  t.same(await ev.getDisclosures(0, now), { xid: 'xid-1', disclosures: DISCLOSURES })
  t.equal(await ev.getDisclosures(1, now), undefined, 'expired rows are not returned')
  t.equal(await ev.getDisclosures(2, now), undefined)

  // Scan every file of the database (main file and WAL) for any plaintext form of the disclosures.
  const raw = Buffer.concat(readdirSync(dir).map((f) => readFileSync(join(dir, f))))
  for (const needle of [SECRET_ID, SECRET_NAME, ...DISCLOSURES, JSON.stringify(DISCLOSURES)]) {
    t.equal(raw.indexOf(Buffer.from(needle)), -1, `plaintext ${needle.slice(0, 12)}… not on disk`)
  }
  t.ok(raw.indexOf(Buffer.from('xid-1')) >= 0, 'the scan does see the row (the xid is stored in clear)')

  // Tamper with the stored ciphertext through a second connection: authentication fails.
  const db = new Database(path)
  t.teardown(() => db.close())
  const row = db.prepare('SELECT ciphertext FROM evidence_disclosures WHERE leaf = 0').get() as { ciphertext: Buffer }
  const bad = Buffer.from(row.ciphertext)
  bad[0] = (bad[0] as number) ^ 1
  db.prepare('UPDATE evidence_disclosures SET ciphertext = ? WHERE leaf = 0').run(bad)
  await t.rejects(ev.getDisclosures(0, now), { code: 'VN_ERR_EVIDENCE_CORRUPT' })
  // Moving a row to another exchange (AAD = xid) is detected too.
  db.prepare('UPDATE evidence_disclosures SET ciphertext = ? WHERE leaf = 0').run(row.ciphertext)
  t.same(await ev.getDisclosures(0, now), { xid: 'xid-1', disclosures: DISCLOSURES }, 'restored row opens again')
  db.prepare("UPDATE evidence_disclosures SET xid = 'xid-9' WHERE leaf = 0").run()
  await t.rejects(ev.getDisclosures(0, now), { code: 'VN_ERR_EVIDENCE_CORRUPT' })
  db.prepare("UPDATE evidence_disclosures SET xid = 'xid-1' WHERE leaf = 0").run()

  t.equal(await ev.purgeExpired(now), 1, 'one expired row purged')
  t.equal(db.prepare('SELECT COUNT(*) FROM evidence_disclosures').pluck().get(), 1)
  t.equal(await ev.purgeExpired(now + 1000), 1)
  t.equal(db.prepare('SELECT COUNT(*) FROM evidence_disclosures').pluck().get(), 0, 'purge deletes')
  t.equal(await ev.purgeExpired(now + 1000), 0)
  t.ok(log.writable)
})

t.test('log leaves and evidence commit in one transaction (appendWithEvidence)', async (t) => {
  const { log, ev, path } = await setup(t)
  const leaf = LEAF('{"type":"response-out","xid":"xid-5"}')
  const [r] = await log.appendWithEvidence([leaf], [ev.jwsRecord(0, jwsDigest(JWS), JWS), ev.sealDisclosures(0, 'xid-5', DISCLOSURES, Date.now() + 60_000)])
  t.equal(r?.index, 0)
  t.equal((await ev.getJws(0))?.jws, JWS)
  t.same((await ev.getDisclosures(0))?.disclosures, DISCLOSURES)
  // A failed commit writes neither the leaf nor the evidence.
  log.failNextCommit()
  const jws2 = 'eyJhbGciOiJFZERTQSJ9.eyJ2IjoyfQ.c2lnbmF0dXJl'
  await t.rejects(log.appendWithEvidence([leaf], [ev.jwsRecord(0, jwsDigest(jws2), jws2), ev.sealDisclosures(0, 'xid-6', DISCLOSURES, Date.now() + 60_000)]), { code: 'VN_ERR_LOG_UNAVAILABLE' })
  await t.rejects(log.appendWithEvidence([leaf], [ev.jwsRecord(0, jwsDigest(jws2), jws2)]), { code: 'VN_ERR_LOG_UNAVAILABLE' }, 'evidence writes fail closed with the log')
  const db = new Database(path, { readonly: true })
  t.teardown(() => db.close())
  t.equal(db.prepare('SELECT COUNT(*) FROM leaves').pluck().get(), 1)
  t.equal(db.prepare('SELECT COUNT(*) FROM evidence_jws').pluck().get(), 1)
  t.equal(db.prepare('SELECT COUNT(*) FROM evidence_disclosures').pluck().get(), 1)
})

t.test('bad evidence inputs are rejected with their codes and write nothing', async (t) => {
  const { log, ev } = await setup(t)
  t.throws(() => new SqliteEvidenceStore(log, new Uint8Array(16)), { code: 'VN_ERR_CONFIG_INVALID' })
  t.throws(() => ev.sealDisclosures(0, '', DISCLOSURES, 1), { code: 'VN_ERR_EVIDENCE_INVALID' })
  t.throws(() => ev.sealDisclosures(0, 'has space', DISCLOSURES, 1), { code: 'VN_ERR_EVIDENCE_INVALID' })
  t.throws(() => ev.sealDisclosures(0, 'x', [1 as unknown as string], 1), { code: 'VN_ERR_EVIDENCE_INVALID' })
  t.throws(() => ev.sealDisclosures(0, 'x', DISCLOSURES, -1), { code: 'VN_ERR_EVIDENCE_INVALID' })
  t.throws(() => ev.sealDisclosures(0, 'x', DISCLOSURES, 1.5), { code: 'VN_ERR_EVIDENCE_INVALID' })
  await t.rejects(ev.getDisclosures(-1), { code: 'VN_ERR_EVIDENCE_INVALID' })
  await t.rejects(ev.purgeExpired(Number.NaN), { code: 'VN_ERR_EVIDENCE_INVALID' })
  t.equal(log.database.prepare('SELECT COUNT(*) FROM evidence_disclosures').pluck().get(), 0)
})

t.test('sealing primitives: fresh nonce per row, wrong key and short rows rejected', async (t) => {
  const a = encryptDisclosures(KEY, 'x', DISCLOSURES)
  const b = encryptDisclosures(KEY, 'x', DISCLOSURES)
  t.not(Buffer.from(a.nonce).toString('hex'), Buffer.from(b.nonce).toString('hex'))
  // nonces come from a pool of 256: across several refills every one is distinct and owns its bytes
  const seen = new Set<string>()
  let views = 0
  for (let i = 0; i < 1000; i++) {
    const n = encryptDisclosures(KEY, 'x', DISCLOSURES).nonce
    if (n.buffer.byteLength !== 12) views++ // a row is cloned to the writer thread: it must not carry the pool
    seen.add(Buffer.from(n).toString('hex'))
  }
  t.equal(views, 0, 'each nonce owns its bytes (not a view into the pool)')
  t.equal(seen.size, 1000, 'no nonce repeats')
  t.same(decryptDisclosures(KEY, 'x', a.nonce, a.ciphertext), DISCLOSURES)
  t.throws(() => decryptDisclosures(new Uint8Array(randomBytes(32)), 'x', a.nonce, a.ciphertext), { code: 'VN_ERR_EVIDENCE_CORRUPT' })
  t.throws(() => decryptDisclosures(KEY, 'x', a.nonce.subarray(1), a.ciphertext), { code: 'VN_ERR_EVIDENCE_CORRUPT' })
  t.throws(() => decryptDisclosures(KEY, 'x', a.nonce, a.ciphertext.subarray(0, 10)), { code: 'VN_ERR_EVIDENCE_CORRUPT' })
  const tag = new Uint8Array(a.ciphertext)
  tag[tag.length - 1] = (tag[tag.length - 1] as number) ^ 0x80
  t.throws(() => decryptDisclosures(KEY, 'x', a.nonce, tag), { code: 'VN_ERR_EVIDENCE_CORRUPT' }, 'flipped tag byte')
})

t.test('disclosures sealed on the writer thread: same sealed row at rest, same checks', async (t) => {
  for (const writer of ['worker', 'inline'] as const) {
    const dir = mkdtempSync(join(tmpdir(), 'vn-ev-seal-'))
    const path = join(dir, 'log.db')
    const log = await SqliteLogStore.open(path, { writer, sealKey: KEY })
    const ev = new SqliteEvidenceStore(log, KEY)
    const row = ev.disclosuresRecord(0, 'xid-w', DISCLOSURES, Date.now() + 60_000)
    t.notOk('ciphertext' in row, `${writer}: the row goes to the writer in the clear (same process, never at rest)`)
    await log.appendWithEvidence([LEAF('{"t":"request-in"}')], [row])
    t.same((await ev.getDisclosures(0))?.disclosures, DISCLOSURES, `${writer}: readable with the evidence key`)
    const db = new Database(path, { readonly: true })
    const stored = db.prepare('SELECT nonce, ciphertext FROM evidence_disclosures WHERE leaf = 0').get() as { nonce: Buffer; ciphertext: Buffer }
    db.close()
    t.same(decryptDisclosures(KEY, 'xid-w', stored.nonce, stored.ciphertext), DISCLOSURES, `${writer}: AES-256-GCM with the xid as AAD, as evidence.ts seals`)
    t.throws(() => decryptDisclosures(KEY, 'xid-other', stored.nonce, stored.ciphertext), { code: 'VN_ERR_EVIDENCE_CORRUPT' })
    t.throws(() => ev.disclosuresRecord(0, 'has space', DISCLOSURES, 1), { code: 'VN_ERR_EVIDENCE_INVALID' }, 'xid checked before queueing')
    t.throws(() => ev.disclosuresRecord(0, 'x', [1 as unknown as string], 1), { code: 'VN_ERR_EVIDENCE_INVALID' })
    t.throws(() => ev.disclosuresRecord(0, 'x', DISCLOSURES, -1), { code: 'VN_ERR_EVIDENCE_INVALID' })
    await log.close()
    const files = readdirSync(dir).map((f) => readFileSync(join(dir, f)).toString('latin1')).join('')
    t.notOk(files.includes(SECRET_ID) || files.includes(DISCLOSURES[0] as string), `${writer}: no disclosure in clear in the database files`)
    rmSync(dir, { recursive: true, force: true })
  }
})

t.test('disclosures in the clear need a store opened with the key', async (t) => {
  const { log, ev, path } = await setup(t) // no sealKey
  const sealed = ev.disclosuresRecord(0, 'xid-m', DISCLOSURES, Date.now() + 60_000)
  t.ok('ciphertext' in sealed, 'without a writer key the evidence store seals on this thread')
  await t.rejects(log.appendWithEvidence([LEAF('{}')], [{ kind: 'disclosures', leaf: 0, xid: 'xid-m', disclosures: DISCLOSURES, expiresAtMs: 1 }]), { code: 'VN_ERR_EVIDENCE_INVALID' })
  t.ok(log.writable, 'a refused row does not fail the store closed')
  await log.appendWithEvidence([LEAF('{}')], [sealed])
  t.same((await ev.getDisclosures(0))?.disclosures, DISCLOSURES)
  const db = new Database(path, { readonly: true })
  t.teardown(() => db.close())
  t.equal(db.prepare('SELECT COUNT(*) FROM leaves').pluck().get(), 1, 'the refused append wrote nothing')
  // An evidence store whose key is not the writer's seals on its own thread, with its own key.
  const dir = mkdtempSync(join(tmpdir(), 'vn-ev-seal-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const other = await SqliteLogStore.open(join(dir, 'log.db'), { writer: 'inline', sealKey: new Uint8Array(randomBytes(32)) })
  t.teardown(() => other.close())
  const ev2 = new SqliteEvidenceStore(other, KEY)
  const r = ev2.disclosuresRecord(0, 'xid-k', DISCLOSURES, Date.now() + 60_000)
  t.ok('ciphertext' in r, 'a different writer key is never used for this store\'s rows')
  await other.appendWithEvidence([LEAF('{}')], [r])
  t.same((await ev2.getDisclosures(0))?.disclosures, DISCLOSURES)
  await t.rejects(SqliteLogStore.open(join(dir, 'bad.db'), { sealKey: new Uint8Array(16) }), { code: 'VN_ERR_CONFIG_INVALID' })
})
