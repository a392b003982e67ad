import t from 'tap'
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import Database from 'better-sqlite3'
import { SqliteLogStore, type SqliteLogStoreOptions } from '../../src/log/store.js'
import { checkEvidenceRows, type EvidenceRow } from '../../src/log/evidence.js'
import { encryptDisclosures, decryptDisclosures } from '../../src/log/sealing.js'
import { jwsDigest } from '../../src/protocol/jws-digest.js'

const KEY = new Uint8Array(randomBytes(32))
// Synthetic SD-JWT-style disclosures holding a (made-up) ID number and name.
const SECRET_ID = '11010519491231002X'
const SECRET_NAME = 'Zhang San Testperson'
const DISCLOSURES = [
  Buffer.from(JSON.stringify(['salt-1', 'id', SECRET_ID])).toString('base64url'),
  Buffer.from(JSON.stringify(['salt-2', 'name', SECRET_NAME])).toString('base64url'),
]
const JWS = 'eyJhbGciOiJFZERTQSJ9.eyJ2IjoxfQ.c2lnbmF0dXJl'

async function setup(t: { teardown(fn: () => unknown): void }, opts: SqliteLogStoreOptions = { evidenceKey: KEY }): Promise<{ dir: string; path: string; log: SqliteLogStore }> {
  const dir = mkdtempSync(join(tmpdir(), 'vn-ev-'))
  const path = join(dir, 'log.db')
  const log = await SqliteLogStore.open(path, { writer: 'inline', ...opts })
  t.teardown(async () => {
    await log.close()
    rmSync(dir, { recursive: true, force: true })
  })
  return { dir, path, log }
}

const LEAF = (s: string): Uint8Array => new TextEncoder().encode(s)
const jwsRow = (record: number, jws = JWS): EvidenceRow => ({ kind: 'jws', record, digest: jwsDigest(jws), jws })
const discRow = (record: number, xid: string, expiresAt: number, disclosures: readonly string[] = DISCLOSURES): EvidenceRow => ({ kind: 'disclosures', record, xid, disclosures, expiresAt })

t.test('JWS evidence: stored with the record that names it, digest checked once at the store', async (t) => {
  const { log } = await setup(t)
  const d = jwsDigest(JWS)
  t.equal(d.length, 43)
  const [r0, r1] = await log.appendMany([LEAF('{"t":"a"}'), LEAF('{"t":"b"}')], [jwsRow(1)])
  t.same([r0?.index, r1?.index], [0, 1])
  t.same(await log.getJws(1), { digest: d, jws: JWS }, 'under the index of the record it belongs to')
  t.equal(await log.getJws(0), undefined)
  t.equal(await log.getJws(7), undefined)
  await t.rejects(log.appendMany([LEAF('{}')], [{ kind: 'jws', record: 0, digest: jwsDigest('a.b.c'), jws: JWS }]), { code: 'VN_ERR_EVIDENCE_INVALID' }, 'digest of another JWS')
  await t.rejects(log.appendMany([LEAF('{}')], [{ kind: 'jws', record: 0, digest: 'short', jws: JWS }]), { code: 'VN_ERR_EVIDENCE_INVALID' })
  await t.rejects(log.appendMany([LEAF('{}')], [jwsRow(0, 'not a jws')]), { code: 'VN_ERR_EVIDENCE_INVALID' })
  t.equal(await log.size(), 2, 'refused rows wrote nothing, not even their leaf')
  await t.rejects(log.getJws(-1), { code: 'VN_ERR_EVIDENCE_INVALID' })
  await t.rejects(log.getJws(1.5), { code: 'VN_ERR_EVIDENCE_INVALID' })
})

t.test('evidence must name a distinct leaf of its own append (else nothing is written)', async (t) => {
  const { log } = await setup(t)
  const row = jwsRow(0)
  await t.rejects(log.appendMany([], [row]), { code: 'VN_ERR_EVIDENCE_INVALID' }, 'no leaf to belong to')
  await t.rejects(log.appendMany([LEAF('{}')], [jwsRow(1)]), { code: 'VN_ERR_EVIDENCE_INVALID' }, 'beyond the call')
  await t.rejects(log.appendMany([LEAF('{}')], [row, row]), { code: 'VN_ERR_EVIDENCE_INVALID' }, 'two JWS for one leaf')
  await t.rejects(log.appendMany([LEAF('{}')], [{ ...row, record: -1 }]), { code: 'VN_ERR_EVIDENCE_INVALID' })
  t.equal(await log.size(), 0)
  t.ok(log.writable, 'a bad row never fails the store closed')
  // A JWS and disclosures may share a leaf; the offsets stay right when appends share a commit.
  const a = log.appendMany([LEAF('{"n":0}'), LEAF('{"n":1}')], [jwsRow(1)])
  const b = log.appendMany([LEAF('{"n":2}')], [jwsRow(0), discRow(0, 'xid-b', Date.now() + 60_000)])
  await Promise.all([a, b])
  t.equal((await log.getJws(1))?.jws, JWS)
  t.equal((await log.getJws(2))?.jws, JWS)
  t.equal(await log.getJws(0), undefined)
  t.same(await log.getDisclosures(2), { xid: 'xid-b', disclosures: DISCLOSURES })
})

t.test('disclosures: sealed at rest (file scan), round-trip, tamper detected, purge deletes', async (t) => {
  const { dir, path, log } = await setup(t)
  const now = 1_800_000_000_000
  await log.appendMany([LEAF('{"x":1}'), LEAF('{"x":2}')], [discRow(0, 'xid-1', now + 1000), discRow(1, 'xid-2', now - 1)])
  t.same(await log.getDisclosures(0, now), { xid: 'xid-1', disclosures: DISCLOSURES })
  t.equal(await log.getDisclosures(1, now), undefined, 'expired rows are not returned')
  t.equal(await log.getDisclosures(2, now), undefined)

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
  await t.rejects(log.getDisclosures(0, now), { code: 'VN_ERR_EVIDENCE_CORRUPT' })
  // Moving a row to another exchange (AAD = xid) is detected too.
  db.prepare('UPDATE evidence_disclosures SET ciphertext = ? WHERE leaf = 0').run(row.ciphertext)
  t.same(await log.getDisclosures(0, now), { xid: 'xid-1', disclosures: DISCLOSURES }, 'restored row opens again')
  db.prepare("UPDATE evidence_disclosures SET xid = 'xid-9' WHERE leaf = 0").run()
  await t.rejects(log.getDisclosures(0, now), { code: 'VN_ERR_EVIDENCE_CORRUPT' })
  db.prepare("UPDATE evidence_disclosures SET xid = 'xid-1' WHERE leaf = 0").run()

  t.equal(await log.purgeExpired(now), 1, 'one expired row purged')
  t.equal(db.prepare('SELECT COUNT(*) FROM evidence_disclosures').pluck().get(), 1)
  t.equal(await log.purgeExpired(now + 1000), 1)
  t.equal(db.prepare('SELECT COUNT(*) FROM evidence_disclosures').pluck().get(), 0, 'purge deletes')
  t.equal(await log.purgeExpired(now + 1000), 0)
  t.ok(log.writable)
})

t.test('log leaves and evidence commit in one transaction', async (t) => {
  const { log, path } = await setup(t)
  const leaf = LEAF('{"type":"response-out","xid":"xid-5"}')
  const [r] = await log.appendMany([leaf], [jwsRow(0), discRow(0, 'xid-5', Date.now() + 60_000)])
  t.equal(r?.index, 0)
  t.equal((await log.getJws(0))?.jws, JWS)
  t.same((await log.getDisclosures(0))?.disclosures, DISCLOSURES)
  // A failed commit writes neither the leaf nor the evidence.
  log.failNextCommit()
  const jws2 = 'eyJhbGciOiJFZERTQSJ9.eyJ2IjoyfQ.c2lnbmF0dXJl'
  await t.rejects(log.appendMany([leaf], [jwsRow(0, jws2), discRow(0, 'xid-6', Date.now() + 60_000)]), { code: 'VN_ERR_LOG_UNAVAILABLE' })
  await t.rejects(log.appendMany([leaf], [jwsRow(0, jws2)]), { code: 'VN_ERR_LOG_UNAVAILABLE' }, 'evidence writes fail closed with the log')
  const db = new Database(path, { readonly: true })
  t.teardown(() => db.close())
  t.equal(db.prepare('SELECT COUNT(*) FROM leaves').pluck().get(), 1)
  t.equal(db.prepare('SELECT COUNT(*) FROM evidence_jws').pluck().get(), 1)
  t.equal(db.prepare('SELECT COUNT(*) FROM evidence_disclosures').pluck().get(), 1)
})

t.test('bad evidence inputs are rejected with their codes and write nothing', async (t) => {
  const { log, path } = await setup(t)
  await t.rejects(SqliteLogStore.open(join(tmpdir(), 'never.db'), { evidenceKey: new Uint8Array(16) }), { code: 'VN_ERR_CONFIG_INVALID' })
  const later = Date.now() + 60_000
  for (const [row, what] of [
    [discRow(0, '', later), 'empty xid'],
    [discRow(0, 'has space', later), 'xid with a space'],
    [discRow(0, 'x'.repeat(129), later), 'xid too long'],
    [discRow(0, 'x', later, [1 as unknown as string]), 'a disclosure that is not a string'],
    [discRow(0, 'x', -1), 'negative expiry'],
    [discRow(0, 'x', 1.5), 'fractional expiry'],
    [{ kind: 'other', record: 0 } as unknown as EvidenceRow, 'unknown kind'],
    [null as unknown as EvidenceRow, 'not an object'],
  ] as const) {
    await t.rejects(log.appendMany([LEAF('{}')], [row]), { code: 'VN_ERR_EVIDENCE_INVALID' }, what)
  }
  await t.rejects(log.appendMany([LEAF('{}')], 'x' as unknown as EvidenceRow[]), { code: 'VN_ERR_EVIDENCE_INVALID' })
  await t.rejects(log.getDisclosures(-1), { code: 'VN_ERR_EVIDENCE_INVALID' })
  await t.rejects(log.purgeExpired(Number.NaN), { code: 'VN_ERR_EVIDENCE_INVALID' })
  t.ok(log.writable, 'refused rows do not fail the store closed')
  const db = new Database(path, { readonly: true })
  t.teardown(() => db.close())
  t.equal(db.prepare('SELECT COUNT(*) FROM leaves').pluck().get(), 0)
  t.equal(db.prepare('SELECT COUNT(*) FROM evidence_disclosures').pluck().get(), 0)
  // The check itself never echoes what a row holds (it may be personal data).
  try {
    checkEvidenceRows([discRow(0, SECRET_ID, -1)], 1, true)
    t.fail('expected a refusal')
  } catch (e) {
    t.notMatch((e as Error).message, SECRET_ID, 'the refusal does not quote the row')
  }
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
    if (n.buffer.byteLength !== 12) views++ // a row may be cloned to another thread: it must not carry the pool
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

t.test('disclosures are sealed on the writer thread: the same sealed row at rest for every writer', async (t) => {
  for (const writer of ['worker', 'inline'] as const) {
    const dir = mkdtempSync(join(tmpdir(), 'vn-ev-seal-'))
    const path = join(dir, 'log.db')
    const log = await SqliteLogStore.open(path, { writer, evidenceKey: KEY })
    await log.appendMany([LEAF('{"t":"request-in"}')], [discRow(0, 'xid-w', Date.now() + 60_000)])
    t.same((await log.getDisclosures(0))?.disclosures, DISCLOSURES, `${writer}: readable with the evidence key`)
    const db = new Database(path, { readonly: true })
    const stored = db.prepare('SELECT nonce, ciphertext FROM evidence_disclosures WHERE leaf = 0').get() as { nonce: Buffer; ciphertext: Buffer }
    db.close()
    t.same(decryptDisclosures(KEY, 'xid-w', stored.nonce, stored.ciphertext), DISCLOSURES, `${writer}: AES-256-GCM with the xid as AAD, as sealing.ts seals`)
    t.throws(() => decryptDisclosures(KEY, 'xid-other', stored.nonce, stored.ciphertext), { code: 'VN_ERR_EVIDENCE_CORRUPT' })
    await log.close()
    const files = readdirSync(dir).map((f) => readFileSync(join(dir, f)).toString('latin1')).join('')
    t.notOk(files.includes(SECRET_ID) || files.includes(DISCLOSURES[0] as string), `${writer}: no disclosure in clear in the database files`)
    rmSync(dir, { recursive: true, force: true })
  }
})

t.test('disclosures need a store opened with the evidence key', async (t) => {
  const { log, path } = await setup(t, {}) // no evidenceKey
  await t.rejects(log.appendMany([LEAF('{}')], [discRow(0, 'xid-m', Date.now() + 60_000)]), { code: 'VN_ERR_EVIDENCE_INVALID' })
  t.ok(log.writable, 'a refused row does not fail the store closed')
  await log.appendMany([LEAF('{}')], [jwsRow(0)])
  t.equal((await log.getJws(0))?.jws, JWS, 'JWS evidence needs no key')
  const db = new Database(path, { readonly: true })
  t.teardown(() => db.close())
  t.equal(db.prepare('SELECT COUNT(*) FROM leaves').pluck().get(), 1, 'the refused append wrote nothing')
  // A store reopened with another key cannot open rows sealed under the first.
  const { dir, log: first } = await setup(t)
  await first.appendMany([LEAF('{}')], [discRow(0, 'xid-k', Date.now() + 60_000)])
  await first.close()
  const other = await SqliteLogStore.open(join(dir, 'log.db'), { writer: 'inline', evidenceKey: new Uint8Array(randomBytes(32)) })
  t.teardown(() => other.close())
  await t.rejects(other.getDisclosures(0), { code: 'VN_ERR_EVIDENCE_CORRUPT' })
  const keyless = await SqliteLogStore.open(join(dir, 'log.db'), { writer: 'inline' })
  t.teardown(() => keyless.close())
  await t.rejects(keyless.getDisclosures(0), { code: 'VN_ERR_CONFIG_INVALID' }, 'a keyless store cannot open disclosures')
})
