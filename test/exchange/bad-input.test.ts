/**
 * Every bad input to POST /v1/exchange gets its coded error, and nothing is written: the provider's
 * log leaves and evidence rows are counted before and after. Requests are crafted by hand with the
 * consumer's real key and sent over real HTTP.
 */
import t, { type Test } from 'tap'
import { join } from 'node:path'
import { createHash, generateKeyPairSync } from 'node:crypto'
import Database from 'better-sqlite3'
import { request } from 'undici'
import { readFile, writeFile } from 'node:fs/promises'
import { pino } from 'pino'
import { startNode } from '../../src/http/server.js'
import { federationFixture, type Fixture } from '../helper.js'
import { loadPrivateKey } from '../../src/crypto/keys.js'
import { keyIdFor } from '../../src/federation/manifest.js'
import { signJwsJson } from '../../src/crypto/jws.js'
import { makeDisclosure } from '../../src/protocol/disclosures.js'
import { Consumer, newXid } from '../../src/exchange/consumer.js'
import type { CatalogService } from '../../src/exchange/catalog.js'
import { REQUEST_TYP } from '../../src/protocol/envelope.js'
import { createPublicKey, type KeyObject } from 'node:crypto'

const CONSUMER = 'fj-tax'
const PROVIDER = 'fj-psb'
const PURPOSE = 'taxpayer-registration'
const BASIS = 'Tax Collection Administration Law art. 15'

interface Ctx {
  f: Fixture
  key: KeyObject
  kid: string
  url: string
  db: string
}

const LIMITS = { limits: { batchMax: 10, bodyBytes: 64 * 1024, skewMs: 60_000, retentionDays: 30 } }

function ctxOf(f: Fixture, key: KeyObject, provider: string): Ctx {
  const kid = `${CONSUMER}#${keyIdFor(createPublicKey(key))}`
  return { f, key, kid, url: `${f.nodes[provider]?.publicUrl}/v1/exchange`, db: join(f.fed.dir, provider, 'var', 'log.db') }
}

/** A federation of its own with only `provider` started (for a test that restarts it). */
async function setup(t: Test, provider = PROVIDER): Promise<Ctx> {
  const f = await federationFixture(t, { start: [provider], configOverrides: LIMITS })
  return ctxOf(f, await loadPrivateKey(join(f.fed.dir, CONSUMER, 'keys', 'message.key')), provider)
}

/*
 * One federation for the file, started once (fj-psb and fj-credit as providers, fj-tax as the
 * consumer): every test that uses it counts only what it wrote itself (the provider's leaves and
 * evidence before and after), uses fresh xids and stays far below the agreements' daily quotas, so
 * the tests do not see each other. Starting nodes per test cost most of this file's time. The
 * tests run in the order written; the two that change the consumer's keys in the manifest come last.
 */
let sharedFed: Promise<{ f: Fixture; key: KeyObject }> | undefined
async function shared(provider = PROVIDER): Promise<Ctx> {
  sharedFed ??= (async () => {
    const f = await federationFixture(t, { start: [PROVIDER, 'fj-credit', CONSUMER], configOverrides: LIMITS })
    return { f, key: await loadPrivateKey(join(f.fed.dir, CONSUMER, 'keys', 'message.key')) }
  })()
  const { f, key } = await sharedFed
  return ctxOf(f, key, provider)
}

function counts(db: string): { leaves: number; jws: number; disclosures: number } {
  const d = new Database(db, { readonly: true })
  try {
    const n = (sql: string): number => (d.prepare(sql).pluck().get() as number)
    return { leaves: n('SELECT count(*) FROM leaves'), jws: n('SELECT count(*) FROM evidence_jws'), disclosures: n('SELECT count(*) FROM evidence_disclosures') }
  } finally {
    d.close()
  }
}

function plainBody(c: Ctx, subjects: Array<Record<string, string>>, over: Record<string, unknown> = {}, svc = 'identity.match', aud = PROVIDER) {
  const disclosures: string[] = []
  const digests = subjects.map((s) => Object.fromEntries(Object.entries(s).map(([k, v]) => {
    const d = makeDisclosure(k, v)
    disclosures.push(d.disclosure)
    return [k, d.digest]
  })))
  const payload = { v: 1, xid: newXid(), iat: Date.now(), iss: CONSUMER, aud, svc, purpose: PURPOSE, basis: BASIS, mode: 'plain', q: { subjects: digests }, ...over }
  return { payload, jws: signJwsJson(payload, c.key, c.kid, REQUEST_TYP), disclosures }
}

async function post(c: Ctx, body: unknown, raw?: string): Promise<{ status: number; json: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const res = await request(c.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: raw ?? JSON.stringify(body) })
  return { status: res.statusCode, json: await res.body.json() }
}

t.test('bad requests are refused with their code and nothing is written', async (t) => {
  const c = await shared()
  const s = c.f.fed.dataset.samples.identity
  const m = s.matches[0]!
  const good = () => plainBody(c, [{ id: m.id, name: m.name }])
  const before = counts(c.db)
  const other = generateKeyPairSync('ed25519')

  const cases: Array<[string, () => Promise<{ status: number; json: any }>, number, string]> = [ // eslint-disable-line @typescript-eslint/no-explicit-any
    ['malformed JSON', () => post(c, null, '{"jws": "abc'), 400, 'VN_ERR_REQ_MALFORMED_JSON'],
    ['not a JWS', () => post(c, { jws: 'hello' }), 400, 'VN_ERR_JWS_MALFORMED'],
    ['unknown body member', () => { const g = good(); return post(c, { ...g, extra: 1 }) }, 400, 'VN_ERR_REQ_INVALID'],
    ['alg none', () => {
      const g = good()
      const [, p] = g.jws.split('.')
      return post(c, { jws: `${Buffer.from(JSON.stringify({ alg: 'none', kid: c.kid })).toString('base64url')}.${p}.`, disclosures: g.disclosures })
    }, 400, 'VN_ERR_JWS_ALG'],
    ['alg HS256', () => {
      const g = good()
      const [, p, sig] = g.jws.split('.')
      return post(c, { jws: `${Buffer.from(JSON.stringify({ alg: 'HS256', kid: c.kid })).toString('base64url')}.${p}.${sig}`, disclosures: g.disclosures })
    }, 400, 'VN_ERR_JWS_ALG'],
    ['unknown kid', () => {
      const g = good()
      return post(c, { jws: signJwsJson(g.payload, other.privateKey, `${CONSUMER}#nope`, REQUEST_TYP), disclosures: g.disclosures })
    }, 401, 'VN_ERR_JWS_UNKNOWN_KID'],
    ['unknown member', () => {
      const g = good()
      return post(c, { jws: signJwsJson({ ...g.payload, iss: 'stranger' }, other.privateKey, 'stranger#k1', REQUEST_TYP), disclosures: g.disclosures })
    }, 401, 'VN_ERR_JWS_UNKNOWN_KID'],
    ['right kid, wrong key', () => {
      const g = good()
      return post(c, { jws: signJwsJson(g.payload, other.privateKey, c.kid, REQUEST_TYP), disclosures: g.disclosures })
    }, 401, 'VN_ERR_JWS_SIGNATURE'],
    ['tampered payload', () => {
      const g = good()
      const [h, , sig] = g.jws.split('.')
      const p = Buffer.from(JSON.stringify({ ...g.payload, purpose: 'something-else' })).toString('base64url')
      return post(c, { jws: `${h}.${p}.${sig}`, disclosures: g.disclosures })
    }, 401, 'VN_ERR_JWS_SIGNATURE'],
    ['flipped signature byte', () => {
      const g = good()
      const i = g.jws.length - 10
      return post(c, { jws: g.jws.slice(0, i) + (g.jws[i] === 'A' ? 'B' : 'A') + g.jws.slice(i + 1), disclosures: g.disclosures })
    }, 401, 'VN_ERR_JWS_SIGNATURE'],
    ['issuer is not the signer', () => {
      const g = plainBody(c, [{ id: m.id, name: m.name }], { iss: 'fj-amr' })
      return post(c, { jws: g.jws, disclosures: g.disclosures })
    }, 401, 'VN_ERR_EXCH_ISSUER_MISMATCH'],
    ['wrong audience', () => { const g = plainBody(c, [{ id: m.id, name: m.name }], { aud: 'fj-amr' }); return post(c, { jws: g.jws, disclosures: g.disclosures }) }, 400, 'VN_ERR_EXCH_WRONG_AUDIENCE'],
    ['stale iat', () => { const g = plainBody(c, [{ id: m.id, name: m.name }], { iat: Date.now() - 5 * 60_000 }); return post(c, { jws: g.jws, disclosures: g.disclosures }) }, 401, 'VN_ERR_EXCH_STALE'],
    ['iat in the future', () => { const g = plainBody(c, [{ id: m.id, name: m.name }], { iat: Date.now() + 5 * 60_000 }); return post(c, { jws: g.jws, disclosures: g.disclosures }) }, 401, 'VN_ERR_EXCH_STALE'],
    ['disclosure does not match its digest', () => {
      const g = good()
      const other = makeDisclosure('name', '李四').disclosure
      return post(c, { jws: g.jws, disclosures: [g.disclosures[0], other] })
    }, 400, 'VN_ERR_EXCH_DISCLOSURE'],
    ['missing disclosure', () => { const g = good(); return post(c, { jws: g.jws, disclosures: [g.disclosures[0]] }) }, 400, 'VN_ERR_EXCH_DISCLOSURE'],
    ['extra disclosure', () => { const g = good(); return post(c, { jws: g.jws, disclosures: [...g.disclosures, makeDisclosure('name', 'x').disclosure] }) }, 400, 'VN_ERR_EXCH_DISCLOSURE'],
    ['disclosure swapped between fields', () => {
      const g = good()
      return post(c, { jws: g.jws, disclosures: [g.disclosures[1], g.disclosures[0]] })
    }, 200, ''],
    ['malformed ID number', () => {
      const bad = `${m.id.slice(0, 17)}${m.id.endsWith('1') ? '2' : '1'}`
      const g = plainBody(c, [{ id: bad, name: m.name }])
      return post(c, { jws: g.jws, disclosures: g.disclosures })
    }, 400, 'VN_ERR_SUBJECT_ID_CHECKSUM'],
    ['batch over the limit', () => { const g = plainBody(c, Array(11).fill({ id: m.id, name: m.name })); return post(c, { jws: g.jws, disclosures: g.disclosures }) }, 413, 'VN_ERR_REQ_BATCH_TOO_LARGE'],
    ['body over the limit', () => post(c, { jws: 'a'.repeat(70 * 1024) }), 413, 'VN_ERR_REQ_TOO_LARGE'],
    ['unknown service', () => { const g = plainBody(c, [{ id: m.id, name: m.name }], {}, 'tax.compliance'); return post(c, { jws: g.jws, disclosures: g.disclosures }) }, 404, 'VN_ERR_POLICY_UNKNOWN_SERVICE'],
    ['unknown field', () => { const g = plainBody(c, [{ id: m.id, name: m.name, phone: '1' }]); return post(c, { jws: g.jws, disclosures: g.disclosures }) }, 400, 'VN_ERR_SUBJECT_INVALID'],
    ['mode not offered', () => { const g = plainBody(c, [{ id: m.id, name: m.name }], { mode: 'he' }); return post(c, { jws: g.jws, disclosures: g.disclosures }) }, 400, 'VN_ERR_EXCH_MODE'],
    ['wrong media type', async () => {
      const res = await request(c.url, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'x' })
      return { status: res.statusCode, json: await res.body.json() }
    }, 415, 'VN_ERR_REQ_UNSUPPORTED_MEDIA'],
  ]
  for (const [name, send, status, code] of cases) {
    const r = await send()
    if (status === 200) {
      // Order of disclosures does not matter: they are matched by digest, not position.
      t.equal(r.status, 200, name)
      continue
    }
    t.equal(r.status, status, `${name}: status`)
    t.equal(r.json.code, code, `${name}: code`)
    t.equal(r.json.jws, undefined, `${name}: unsigned problem`)
    t.notMatch(JSON.stringify(r.json), m.id, `${name}: no ID number in the error`)
  }
  const after = counts(c.db)
  // Only the one successful exchange above wrote: request-in, decision, response-out and its evidence.
  t.same(after, { leaves: before.leaves + 3, jws: before.jws + 2, disclosures: before.disclosures + 1 })
})

t.test('subject field names that every object inherits are refused with a code, and nothing is written', async (t) => {
  const c = await shared()
  const f = c.f
  const consumerDb = join(f.fed.dir, CONSUMER, 'var', 'log.db')
  const m = f.fed.dataset.samples.identity.matches[0]!
  const before = { provider: counts(c.db), consumer: counts(consumerDb) }

  // Signed requests whose q.subjects[0] carries the name as an own member, with a disclosure that
  // matches its digest (makeDisclosure refuses such names, so it is built by hand).
  for (const name of ['constructor', 'toString', 'hasOwnProperty', '__proto__']) {
    const g = plainBody(c, [{ id: m.id, name: m.name }])
    const disclosure = Buffer.from(JSON.stringify(['2GLC42sKQveCfGfryNRN9w', name, 'x'])).toString('base64url')
    const digest = createHash('sha256').update(disclosure).digest('base64url')
    const subjects = g.payload.q.subjects.map((s) => JSON.parse(`{${JSON.stringify(name)}:${JSON.stringify(digest)},${JSON.stringify(s).slice(1)}`) as unknown)
    t.ok(Object.hasOwn(subjects[0] as object, name), `${name} is an own member of the subject`)
    const jws = signJwsJson({ ...g.payload, q: { subjects } }, c.key, c.kid, REQUEST_TYP)
    t.match(Buffer.from(jws.split('.')[1]!, 'base64url').toString(), JSON.stringify(name), `${name} is in the signed bytes`)
    for (const disclosures of [[...g.disclosures, disclosure], g.disclosures]) {
      const r = await post(c, { jws, disclosures })
      t.equal(r.status, 400, `${name}: status`)
      t.equal(r.json.code, 'VN_ERR_REQ_INVALID', `${name}: code`)
      t.notMatch(JSON.stringify(r.json), m.id, `${name}: no ID number in the error`)
    }
  }

  // The consumer's local API: refused before anything is signed, logged or sent.
  for (const name of ['constructor', 'toString', 'valueOf']) {
    const r = await f.verify(CONSUMER, { provider: PROVIDER, service: 'identity.match', purpose: PURPOSE, basis: BASIS, subjects: [{ id: m.id, name: m.name, [name]: 'x' }] })
    t.equal(r.status, 400, `local ${name}: status`)
    t.equal(r.json.code, 'VN_ERR_SUBJECT_INVALID', `local ${name}: code`)
    t.match(r.json.detail, `subjects[0]: unknown field ${name}`)
  }
  // JSON bodies carrying __proto__ are refused by the local API's parser with a code of their own.
  const raw = `{"provider":"${PROVIDER}","service":"identity.match","purpose":"${PURPOSE}","basis":"${BASIS}","subjects":[{"id":"${m.id}","name":"x","__proto__":"x"}]}`
  const res = await request(`${f.nodes[CONSUMER]!.localUrl}/local/v1/verify`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${f.fed.nodes[CONSUMER]!.appToken}` }, body: raw })
  t.equal(res.statusCode, 400, 'local __proto__: status')
  t.equal(((await res.body.json()) as { code: string }).code, 'VN_ERR_REQ_MALFORMED_JSON', 'local __proto__: code')

  t.same({ provider: counts(c.db), consumer: counts(consumerDb) }, before, 'nothing was written on either side')
})

t.test('the consumer canonicalizes subjects with own-property lookups', async (t) => {
  const svc = { fields: { id: { kind: 'residentId', key: true, required: true }, name: { kind: 'name', key: false, required: false } } } as unknown as CatalogService
  const ID = '11010519491231002X'
  t.same(Consumer.canonicalSubjects(svc, [{ id: ID, name: '' }, { id: ID, name: null }, { id: ID }]), [{ id: ID }, { id: ID }, { id: ID }], 'empty optional fields are left out')
  for (const subject of [{ id: ID, constructor: 'x' }, { id: ID, toString: 'x' }, JSON.parse(`{"id":"${ID}","__proto__":"x"}`) as unknown]) {
    t.throws(() => Consumer.canonicalSubjects(svc, [subject]), { code: 'VN_ERR_SUBJECT_INVALID' }, JSON.stringify(subject))
  }
  t.throws(() => Consumer.canonicalSubjects(svc, [{ name: 'x' }]), { code: 'VN_ERR_SUBJECT_INVALID', detail: 'subjects[0].id: missing' })
})

t.test('replays: the same request gets the same answer once; another body with the same xid is refused', async (t) => {
  const c = await shared()
  const m = c.f.fed.dataset.samples.identity.matches[0]!
  const g = plainBody(c, [{ id: m.id, name: m.name }])
  const first = await post(c, { jws: g.jws, disclosures: g.disclosures })
  t.equal(first.status, 200)
  const mid = counts(c.db)
  const again = await post(c, { jws: g.jws, disclosures: g.disclosures })
  t.equal(again.status, 200)
  t.equal(again.json.jws, first.json.jws, 'identical signed response')
  t.same(counts(c.db), mid, 'a retry writes nothing')
  const g2 = plainBody(c, [{ id: m.id, name: '王五' }], { xid: g.payload.xid })
  const replay = await post(c, { jws: g2.jws, disclosures: g2.disclosures })
  t.equal(replay.status, 409)
  t.equal(replay.json.code, 'VN_ERR_EXCH_REPLAY')
  t.same(counts(c.db), mid, 'a replay writes nothing')
})

t.test('replay protection and the day\'s quota survive a provider restart (read back from its log)', async (t) => {
  const c = await setup(t)
  const [m, n] = c.f.fed.dataset.samples.identity.matches as [{ id: string; name: string }, { id: string; name: string }]
  const g = plainBody(c, [{ id: m.id, name: m.name }])
  const first = await post(c, { jws: g.jws, disclosures: g.disclosures })
  t.equal(first.status, 200)
  const two = plainBody(c, [{ id: m.id, name: m.name }, { id: n.id, name: n.name }])
  t.equal((await post(c, { jws: two.jws, disclosures: two.disclosures })).status, 200, '3 subjects counted today')
  // Restart the provider with a daily quota of 4 for this agreement.
  await c.f.nodes[PROVIDER]!.close()
  const cfgPath = c.f.fed.nodes[PROVIDER]!.configPath
  const cfg = JSON.parse(await readFile(cfgPath, 'utf8')) as { agreements: { id: string; dailyQuota: number }[] }
  for (const a of cfg.agreements) if (a.id === 'psb-tax-identity') a.dailyQuota = 4
  await writeFile(cfgPath, JSON.stringify(cfg))
  c.f.nodes[PROVIDER] = await startNode(cfgPath, { logger: pino({ level: 'silent' }), checkpointEveryMs: 0, witnessEveryMs: 0 })
  const again = await post(c, { jws: g.jws, disclosures: g.disclosures })
  t.equal(again.status, 200)
  t.equal(again.json.jws, first.json.jws, 'a retry after the restart gets the first signed response')
  const g2 = plainBody(c, [{ id: m.id, name: '王五' }], { xid: g.payload.xid })
  t.equal((await post(c, { jws: g2.jws, disclosures: g2.disclosures })).json.code, 'VN_ERR_EXCH_REPLAY', 'another body with that xid is still refused')
  const over = plainBody(c, [{ id: m.id, name: m.name }, { id: n.id, name: n.name }])
  const refused = await post(c, { jws: over.jws, disclosures: over.disclosures })
  t.equal(refused.json.code, 'VN_ERR_POLICY_QUOTA_EXHAUSTED', '3 + 2 > 4: the count came back from the log')
  const last = plainBody(c, [{ id: n.id, name: n.name }])
  t.equal((await post(c, { jws: last.jws, disclosures: last.disclosures })).status, 200, '3 + 1 = 4 still fits')
})

t.test('policy denials are signed and logged; no lookup happens', async (t) => {
  const c = await shared()
  const m = c.f.fed.dataset.samples.identity.matches[0]!
  const before = counts(c.db)
  const g = plainBody(c, [{ id: m.id, name: m.name }], { purpose: 'curiosity' })
  const r = await post(c, { jws: g.jws, disclosures: g.disclosures })
  t.equal(r.status, 403)
  t.equal(r.json.code, 'VN_ERR_POLICY_NO_AGREEMENT')
  t.type(r.json.jws, 'string', 'the denial carries the signed response')
  const payload = JSON.parse(Buffer.from(r.json.jws.split('.')[1], 'base64url').toString())
  t.equal(payload.status, 'denied')
  t.equal(payload.results, undefined, 'no answer in a denial')
  t.equal(payload.reqDigest, createHash('sha256').update(g.jws).digest('base64url'), 'bound to the request')
  t.same(counts(c.db), { leaves: before.leaves + 3, jws: before.jws + 2, disclosures: before.disclosures + 1 })
})

t.test('quota: a batch that does not fit is refused whole, signed and logged', async (t) => {
  // fj-credit allows fj-tax 5 credit.dishonest subjects a day (src/demo/federation.ts).
  const c = await shared('fj-credit')
  const id = c.f.fed.dataset.samples.credit.listedPersons[0] ?? c.f.fed.dataset.samples.credit.unlistedPersons[0]!
  const ask = async (n: number) => {
    const g = plainBody(c, Array(n).fill({ id }), { purpose: 'tax-credit-rating', basis: 'Tax Collection Administration Law art. 45' }, 'credit.dishonest', 'fj-credit')
    return post(c, { jws: g.jws, disclosures: g.disclosures })
  }
  t.equal((await ask(4)).status, 200, '4 of 5')
  const before = counts(c.db)
  const r = await ask(2)
  t.equal(r.status, 429)
  t.equal(r.json.code, 'VN_ERR_POLICY_QUOTA_EXHAUSTED')
  t.type(r.json.jws, 'string')
  t.same(counts(c.db), { leaves: before.leaves + 3, jws: before.jws + 2, disclosures: before.disclosures + 1 }, 'the denial is logged')
  t.equal((await ask(1)).status, 200, 'the last unit still fits')
  t.equal((await ask(1)).status, 429, 'then nothing')
})

t.test('SQL-looking subject strings are bound as values', async (t) => {
  const c = await shared()
  const m = c.f.fed.dataset.samples.identity.matches[0]!
  let reachedLookup = 0
  for (const evil of ["' OR '1'='1", '"; DROP TABLE residents; --', "x' UNION SELECT name FROM residents --", "O'Brien OR 1=1"]) {
    const g = plainBody(c, [{ id: m.id, name: evil }])
    const r = await post(c, { jws: g.jws, disclosures: g.disclosures })
    if (r.status === 400) {
      t.equal(r.json.code, 'VN_ERR_SUBJECT_INVALID', 'refused by canonicalization before any lookup')
      continue
    }
    t.equal(r.status, 200)
    reachedLookup++
    const payload = JSON.parse(Buffer.from(r.json.jws.split('.')[1], 'base64url').toString())
    t.same(payload.results[0], { found: true, match: false, fields: { name: false } }, 'bound as a value: matches nothing')
  }
  t.ok(reachedLookup > 0, 'at least one SQL-looking string reached the lookup as a bound value')
  const src = new Database(c.f.fed.dataset.files.publicSecurity.startsWith('/') ? c.f.fed.dataset.files.publicSecurity : join(c.f.fed.dataset.dir, c.f.fed.dataset.files.publicSecurity), { readonly: true })
  t.equal(src.prepare('SELECT count(*) FROM residents').pluck().get(), c.f.fed.dataset.counts.residents, 'table intact')
  src.close()
})

t.test('a signature by a key removed from a newer manifest is refused after reload', async (t) => {
  const c = await shared()
  const { removeKey, signAuthorityManifest } = await import('../../src/federation/authority.js')
  const m = c.f.fed.dataset.samples.identity.matches[0]!
  const g1 = plainBody(c, [{ id: m.id, name: m.name }])
  t.equal((await post(c, { jws: g1.jws, disclosures: g1.disclosures })).status, 200)
  await removeKey(c.f.fed.authorityDir, CONSUMER, c.kid.split('#')[1] as string)
  const signed = await signAuthorityManifest(c.f.fed.authorityDir)
  const holder = c.f.nodes[PROVIDER]!.node.federation
  const r = holder.accept(signed.jws)
  t.ok(r.ok, 'newer manifest accepted')
  const g2 = plainBody(c, [{ id: m.id, name: m.name }])
  const refused = await post(c, { jws: g2.jws, disclosures: g2.disclosures })
  t.equal(refused.status, 401)
  t.equal(refused.json.code, 'VN_ERR_JWS_UNKNOWN_KID')
})

t.test('a signature outside the key validity window is refused', async (t) => {
  const c = await shared()
  const { addKey, signAuthorityManifest } = await import('../../src/federation/authority.js')
  const m = c.f.fed.dataset.samples.identity.matches[0]!
  const fresh = generateKeyPairSync('ed25519')
  const soon = await addKey(c.f.fed.authorityDir, CONSUMER, 'message', { key: fresh.publicKey, nbf: Date.now() + 3_600_000 })
  const signed = await signAuthorityManifest(c.f.fed.authorityDir)
  t.ok(c.f.nodes[PROVIDER]!.node.federation.accept(signed.jws).ok)
  const g = plainBody(c, [{ id: m.id, name: m.name }])
  const jws = signJwsJson(g.payload, fresh.privateKey, `${CONSUMER}#${soon.kid}`, REQUEST_TYP)
  const r = await post(c, { jws, disclosures: g.disclosures })
  t.equal(r.status, 401)
  t.equal(r.json.code, 'VN_ERR_JWS_KEY_NOT_VALID')
})
