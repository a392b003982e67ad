/**
 * oprf mode pieces without a federation: the consumer's finish step against tampered replies, the
 * consumer's tag-set cache against tampered sets (over a real HTTP server on 127.0.0.1), the
 * provider's publisher (pending, rotation, on-demand reload) on a fake data source and clock, the
 * input mapping shared by both sides, the per-consumer rate limit, and `verinode tagset build`.
 * Everything here runs in-thread (no worker threads).
 */
import t from 'tap'
import { createServer, type Server } from 'node:http'
import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import { readdir, readFile, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pino } from 'pino'
import { blind, blindEvaluateBatch, evaluate, finalizeBatch, generateKeyPair } from '../../src/crypto/oprf.js'
import { createOprfPool } from '../../src/oprf/oprf-pool.js'
import { VnError } from '../../src/errors.js'
import { finishOprf, oprfProvider } from '../../src/exchange/modes/oprf.js'
import { buildTagSet, deriveEpochKey, signTagSet, TagSet } from '../../src/oprf/tagset.js'
import {
  answersFromHits,
  buildServiceTagSet,
  epochAt,
  oprfFields,
  rowInput,
  subjectInputs,
  tagSetFile,
  shardFilePath,
  TagSetPublisher,
  type OprfProviderService,
  type PublishedTagSet,
} from '../../src/oprf/tagset-service.js'
import { TagSetCache } from '../../src/peers/tagset-cache.js'
import { encodeShardFile, encodeShardRoot, signShardRoot } from '../../src/oprf/tagshards.js'
import { makeResidentId, makeUscc } from '../../src/demo/synthetic.js'
import type { DataSource, Row } from '../../src/sources/types.js'
import type { ServiceConfig } from '../../src/config/schema.js'
import type { RequestPayload } from '../../src/protocol/envelope.js'

type Test = Parameters<Parameters<typeof t.test>[0]>[0]
const noPool = (): never => {
  throw new Error('no worker pool in this file')
}

async function rejects(t: Test, p: Promise<unknown>, code: string, detail?: RegExp): Promise<void> {
  const e = await p.then(() => null, (err: unknown) => err)
  t.ok(e instanceof VnError, `rejects with a VnError (${(e as Error | null)?.message})`)
  t.equal((e as VnError).code, code)
  if (detail !== undefined) t.match((e as VnError).detail ?? '', detail)
}

const uscc = (i: number): string => makeUscc('91', '350100', `M${String(i).padStart(7, '0')}`)
const LIST: OprfProviderService = {
  id: 'credit.dishonest', kind: 'membership', modes: ['plain', 'oprf'],
  fields: { id: { kind: 'partyId', key: true, required: true } },
  enumerate: 'SELECT subject_id AS id FROM dishonest_debtors',
  oprf: { epochHours: 1 },
}
const IDENT: OprfProviderService = {
  id: 'identity.match', kind: 'match', modes: ['oprf'],
  fields: { name: { kind: 'name', key: false, required: true }, id: { kind: 'residentId', key: true, required: true } },
}

/** A tag set over `records` (membership inputs) with a fresh key. */
async function tagSetOf(svc: OprfProviderService, records: Record<string, string>[], epoch = 7, key = generateKeyPair()): Promise<{ bytes: Uint8Array; key: ReturnType<typeof generateKeyPair> }> {
  const inputs = records.map((r) => rowInput(svc, r) as Uint8Array)
  const r = await buildTagSet({ service: svc.id, epoch, key, inputs: [inputs] })
  return { bytes: r.bytes, key }
}

t.test('inputs: the field order is fixed, records and typed subjects agree, bad rows are skipped', async (t) => {
  t.same(oprfFields(IDENT), ['id', 'name'], 'match: every field, sorted')
  t.same(oprfFields(LIST), ['id'], 'membership: the key field')
  const id = makeResidentId('350102', '1980-02-29', 17)
  const typed = id.replace(/[0-9]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 0xfee0)) // full-width digits
  const fromRow = rowInput(IDENT, { id, name: '王 小明' }) as Uint8Array
  const { canonicalizeField } = await import('../../src/protocol/canonicalize.js')
  const subject = { id: canonicalizeField('residentId', typed, 'id'), name: canonicalizeField('name', '王 小明', 'name') }
  t.same(subjectInputs(IDENT, subject, 'subjects[0]'), [fromRow], 'the same bytes on both sides')
  t.equal(rowInput(IDENT, { id: `${id.slice(0, 17)}${id.endsWith('1') ? '2' : '1'}`, name: 'x' }), null, 'bad check digit: skipped')
  t.equal(rowInput(IDENT, { id, name: null }), null, 'NULL field: skipped')
  t.throws(() => subjectInputs(IDENT, { id }, 'subjects[3]'), { code: 'VN_ERR_SUBJECT_INVALID', message: /subjects\[3\]\.name: required in oprf mode/ })

  const STATUS: OprfProviderService = { id: 'enterprise.status', kind: 'status', modes: ['oprf'], fields: { uscc: { kind: 'uscc', key: true, required: true } }, statuses: ['active', 'revoked'] }
  t.equal(subjectInputs(STATUS, { uscc: uscc(1) }, 's').length, 2, 'one input per status of the menu')
  t.equal(rowInput(STATUS, { uscc: uscc(1), status: 'merged' }), null, 'a label outside the menu is skipped')
  t.same(rowInput(STATUS, { uscc: uscc(1), status: 'revoked' }), subjectInputs(STATUS, { uscc: uscc(1) }, 's')[1])
  t.same(answersFromHits(STATUS, [[false, true], [false, false]]), [{ found: true, status: 'revoked' }, { found: false }])
  const TIER: OprfProviderService = { id: 'tax.band', kind: 'tier', modes: ['oprf'], fields: { uscc: { kind: 'uscc', key: true, required: true } }, tiers: [{ id: 'A', min: 0 }, { id: 'B', min: 10 }] }
  t.same(answersFromHits(TIER, [[true, true], [false, false]]), [{ tier: 'B' }, { tier: null }], 'the highest satisfied tier')
  t.throws(() => subjectInputs({ ...STATUS, statuses: [] }, { uscc: uscc(1) }, 's'), { code: 'VN_ERR_CONFIG_INVALID' })
})

t.test('finish: a reply is accepted only with a proof that verifies under the tag set key', async (t) => {
  const records = Array.from({ length: 20 }, (_, i) => ({ id: uscc(i) }))
  const { bytes, key } = await tagSetOf(LIST, records)
  const ts = TagSet.parse(bytes)
  const subjects = [{ id: uscc(3) }, { id: uscc(999) }, { id: uscc(19) }]
  const inputs = subjects.flatMap((s, i) => subjectInputs(LIST, s, `subjects[${i}]`))
  const b = blind(inputs)
  const b64u = (x: Uint8Array): string => Buffer.from(x).toString('base64url')
  const reply = (k = key, els = b.blindedElements): { r: Record<string, unknown> } => {
    const ev = blindEvaluateBatch(k.secretKey, k.publicKey, els)
    return { r: { epoch: 7, evaluated: ev.evaluatedElements.map(b64u), proof: b64u(ev.proof) } }
  }
  const finish = (rep: { r?: Record<string, unknown> }): Promise<unknown> => finishOprf({ pool: noPool }, ts, inputs, b, rep, LIST, 1, subjects.length)

  t.same(await finish(reply()), [{ listed: true }, { listed: false }, { listed: true }], 'honest reply: answers')
  const good = reply()
  const flipped = Buffer.from(good.r.proof as string, 'base64url')
  flipped[5] = (flipped[5] as number) ^ 1
  await rejects(t, finish({ r: { ...good.r, proof: flipped.toString('base64url') } }), 'VN_ERR_OPRF_PROOF', /does not verify|proof/i)
  const ev = [...(good.r.evaluated as string[])]
  ;[ev[0], ev[2]] = [ev[2] as string, ev[0] as string]
  await rejects(t, finish({ r: { ...good.r, evaluated: ev } }), 'VN_ERR_OPRF_PROOF', undefined)
  await rejects(t, finish(reply(generateKeyPair())), 'VN_ERR_OPRF_PROOF', undefined)
  // a reply for other elements (a replayed answer) does not verify against ours
  await rejects(t, finish(reply(key, blind(inputs).blindedElements)), 'VN_ERR_OPRF_PROOF', undefined)
  await rejects(t, finish({ r: { ...good.r, epoch: 8 } }), 'VN_ERR_PEER_BAD_RESPONSE', /r\.epoch 8/)
  await rejects(t, finish({ r: { ...good.r, evaluated: ev.slice(1) } }), 'VN_ERR_PEER_BAD_RESPONSE', /2 elements for 3 sent/)
  await rejects(t, finish({ r: { ...good.r, proof: 'AAAA' } }), 'VN_ERR_OPRF_PROOF', /expected 64 bytes/)
  await rejects(t, finish({ r: { ...good.r, evaluated: [b64u(new Uint8Array(32)), ...ev.slice(1)] } }), 'VN_ERR_OPRF_POINT', /identity/)
  await rejects(t, finish({}), 'VN_ERR_PEER_BAD_RESPONSE')
})

interface Served {
  url: string
  set(body: Uint8Array, headers: Record<string, string>, status?: number): void
  hits: { ifNoneMatch: string | undefined }[]
}

async function serve(t: Test): Promise<Served> {
  let body: Uint8Array = new Uint8Array()
  let headers: Record<string, string> = {}
  let status = 200
  const hits: Served['hits'] = []
  const server: Server = createServer((req, res) => {
    const inm = req.headers['if-none-match']
    hits.push({ ifNoneMatch: inm })
    if (status === 200 && inm !== undefined && inm === headers.etag) {
      res.writeHead(304, headers).end()
      return
    }
    res.writeHead(status, status === 200 ? { ...headers, 'content-type': 'application/octet-stream' } : { 'content-type': 'application/problem+json' }).end(body)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>((r) => server.close(() => r())))
  const a = server.address()
  return {
    url: `http://127.0.0.1:${typeof a === 'object' && a !== null ? a.port : 0}`,
    set(b, h, s = 200) {
      body = b
      headers = h
      status = s
    },
    hits,
  }
}

/**
 * A tag-set cache against the fake provider `srv`: fj-credit#k1 is the provider's key (`providerKey`),
 * fj-amr#k9 another member's (`otherKey`); the clock is `clock.now`.
 */
function cacheOn(t: Test, srv: { url: string }) {
  const providerKey = generateKeyPairSync('ed25519')
  const otherKey = generateKeyPairSync('ed25519')
  const keys: Record<string, KeyObject> = { 'fj-credit#k1': providerKey.publicKey, 'fj-amr#k9': otherKey.publicKey }
  const clock = { now: 1_000_000 }
  const cache = new TagSetCache({
    endpointOf: () => srv.url,
    messageKey: (kid, _at, member) => {
      const k = keys[kid]
      if (k === undefined || !kid.startsWith(`${member}#`)) throw new VnError('VN_ERR_JWS_UNKNOWN_KID')
      return k
    },
    insecure: false, timeoutMs: 5000, now: () => clock.now, maxAgeMs: 1000,
  })
  t.teardown(() => cache.close())
  return { cache, providerKey, otherKey, clock }
}

t.test('tag-set cache: verifies signer, signature, service and epoch; revalidates with If-None-Match', async (t) => {
  const srv = await serve(t)
  const { cache, providerKey, otherKey, clock } = cacheOn(t, srv)
  const { bytes } = await tagSetOf(LIST, [{ id: uscc(1) }, { id: uscc(2) }], 7)
  const sign = (b: Uint8Array, k = providerKey.privateKey): string => Buffer.from(signTagSet(b, k)).toString('base64url')
  const headers = (b: Uint8Array, over: Record<string, string> = {}): Record<string, string> =>
    ({ etag: '"e1"', 'x-verinode-signature': sign(b), 'x-verinode-kid': 'fj-credit#k1', 'x-verinode-epoch': '7', 'x-verinode-epoch-ends': String(clock.now + 3_600_000), ...over })

  srv.set(bytes, headers(bytes))
  const ts = await cache.get('fj-credit', 'credit.dishonest')
  t.equal(ts.count, 2)
  t.equal(await cache.get('fj-credit', 'credit.dishonest'), ts, 'cached: no second fetch')
  t.equal(srv.hits.length, 1)
  clock.now += 2000
  t.equal(await cache.get('fj-credit', 'credit.dishonest'), ts, 'revalidated: 304 keeps the verified set')
  t.equal(srv.hits[1]?.ifNoneMatch, '"e1"')

  const fresh = (h: Record<string, string>, b = bytes): Promise<unknown> => {
    cache.invalidate('fj-credit', 'credit.dishonest')
    srv.set(b, h)
    return cache.get('fj-credit', 'credit.dishonest')
  }
  const sig = Buffer.from(sign(bytes), 'base64url')
  sig[10] = (sig[10] as number) ^ 0x20
  await rejects(t, fresh(headers(bytes, { 'x-verinode-signature': sig.toString('base64url') })), 'VN_ERR_OPRF_TAGSET', /signature: does not verify/)
  const body = Uint8Array.from(bytes)
  body[body.length - 1] = (body[body.length - 1] as number) ^ 1
  await rejects(t, fresh(headers(bytes), body), 'VN_ERR_OPRF_TAGSET', /does not verify/)
  await rejects(t, fresh(headers(bytes, { 'x-verinode-kid': 'fj-amr#k9', 'x-verinode-signature': sign(bytes, otherKey.privateKey) })), 'VN_ERR_OPRF_TAGSET', /signed by another member/)
  await rejects(t, fresh(headers(bytes, { 'x-verinode-kid': 'fj-credit#k2' })), 'VN_ERR_OPRF_TAGSET', /not a valid message key/)
  await rejects(t, fresh(headers(bytes, { 'x-verinode-epoch': '8' })), 'VN_ERR_OPRF_TAGSET', /epoch header differs/)
  const other = (await tagSetOf({ ...LIST, id: 'credit.other' }, [{ id: uscc(1) }], 7)).bytes
  await rejects(t, fresh(headers(other, { 'x-verinode-signature': sign(other) }), other), 'VN_ERR_OPRF_TAGSET', /for another service/)
  srv.set(new TextEncoder().encode(JSON.stringify({ code: 'VN_ERR_OPRF_TAGSET_PENDING', detail: 'building' })), {}, 503)
  cache.invalidate('fj-credit', 'credit.dishonest')
  await rejects(t, cache.get('fj-credit', 'credit.dishonest'), 'VN_ERR_OPRF_TAGSET_PENDING', /HTTP 503: building/)

  // epochs never go backwards for a cached provider
  const e8 = (await tagSetOf(LIST, [{ id: uscc(1) }], 8)).bytes
  cache.invalidate('fj-credit', 'credit.dishonest')
  srv.set(e8, headers(e8, { etag: '"e8"', 'x-verinode-signature': sign(e8), 'x-verinode-epoch': '8' }))
  t.equal((await cache.get('fj-credit', 'credit.dishonest')).epoch, 8)
  clock.now += 2000
  srv.set(bytes, headers(bytes, { etag: '"e7"' }))
  await rejects(t, cache.get('fj-credit', 'credit.dishonest'), 'VN_ERR_OPRF_TAGSET', /epoch went backwards/)
})

t.test('tag-set cache: the sharded set\'s epoch header is verified like a set; a provider without the route means full sets', async (t) => {
  const srv = await serve(t)
  const { cache, providerKey, otherKey, clock } = cacheOn(t, srv)
  const now = clock.now
  const header = encodeShardRoot({ service: 'credit.dishonest', epoch: 7, tagLength: 6, publicKey: generateKeyPair().publicKey, count: 100, bits: 3, root: new Uint8Array(32).fill(1) })
  const sign = (k = providerKey.privateKey): string => Buffer.from(signShardRoot(header, k)).toString('base64url')
  const headers = (over: Record<string, string> = {}): Record<string, string> =>
    ({ etag: '"r1"', 'x-verinode-signature': sign(), 'x-verinode-kid': 'fj-credit#k1', 'x-verinode-epoch': '7', 'x-verinode-epoch-ends': String(now + 3_600_000), ...over })
  srv.set(header, headers())
  const root = await cache.root('fj-credit', 'credit.dishonest')
  t.equal(root?.bits, 3)
  t.equal(root?.epoch, 7)
  t.equal(srv.hits.length, 1)
  t.equal(await cache.root('fj-credit', 'credit.dishonest'), root, 'cached')
  const fresh = (h: Record<string, string>, b: Uint8Array = header, status = 200): Promise<unknown> => {
    cache.invalidate('fj-credit', 'credit.dishonest')
    srv.set(b, h, status)
    return cache.root('fj-credit', 'credit.dishonest')
  }
  await rejects(t, fresh(headers({ 'x-verinode-kid': 'fj-amr#k9', 'x-verinode-signature': sign(otherKey.privateKey) })), 'VN_ERR_OPRF_TAGSET', /signed by another member/)
  await rejects(t, fresh(headers({ 'x-verinode-signature': sign(otherKey.privateKey) })), 'VN_ERR_OPRF_TAGSET', /does not verify/)
  await rejects(t, fresh(headers({ 'x-verinode-epoch': '8' })), 'VN_ERR_OPRF_TAGSET', /differs/)
  const enc = (x: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(x))
  t.equal(await fresh({}, enc({ code: 'VN_ERR_REQ_NOT_FOUND' }), 404), null, 'no such route (an older provider): full sets only')
  await rejects(t, fresh({}, enc({ code: 'VN_ERR_POLICY_UNKNOWN_SERVICE' }), 404), 'VN_ERR_POLICY_UNKNOWN_SERVICE')
})

/** A data source over an in-memory table; `gate` holds enumeration until released. */
function memorySource(rows: () => Row[]): DataSource & { gate: Promise<void> | undefined; iterations: number } {
  const src = {
    kind: 'memory',
    gate: undefined as Promise<void> | undefined,
    iterations: 0,
    async assertReadOnly() {},
    async describe() { return { columns: [] } },
    async query() { return [] },
    async *iterate(_sql: string, _p: unknown, batch = 1000) {
      src.iterations++
      if (src.gate !== undefined) await src.gate
      const all = rows()
      for (let i = 0; i < all.length; i += batch) yield all.slice(i, i + batch)
    },
    async ping() {},
    async close() {},
  }
  return src
}

t.test('publisher: 503 while building, serves only the current epoch, prebuilds the next, rotates and reloads', async (t) => {
  const dir = t.testdir({})
  const HOUR = 3_600_000
  let now = 500_000 * HOUR + 10 * 60_000 // 10 minutes into epoch 500000 (1-hour epochs)
  let table: Row[] = [{ id: uscc(1) }, { id: uscc(2) }, { id: 'not an id' }]
  const source = memorySource(() => table)
  let release: () => void = () => undefined
  source.gate = new Promise<void>((r) => { release = r })
  const signer = { kid: 'fj-credit#k1', privateKey: generateKeyPairSync('ed25519').privateKey }
  const seed = new Uint8Array(32).fill(9)
  const pub = new TagSetPublisher({ services: [LIST], source, seed, signer: () => signer, pool: () => undefined, dir, logger: pino({ level: 'silent' }), now: () => now, tickMs: 0, leadMs: 5 * 60_000 })
  t.teardown(() => pub.close())
  pub.start()
  t.throws(() => pub.current('credit.dishonest'), { code: 'VN_ERR_OPRF_TAGSET_PENDING' }, 'the first build is running')
  t.throws(() => pub.current('identity.match'), { code: 'VN_ERR_POLICY_UNKNOWN_SERVICE' })
  release()
  source.gate = undefined
  await pub.whenReady()
  const p1: PublishedTagSet = pub.current('credit.dishonest')
  t.equal(p1.epoch, 500_000)
  t.equal(p1.count, 2, 'the row that is not an identifier was skipped')
  t.equal(p1.endsAt, 500_001 * HOUR)
  t.same(pub.responseHeaders(p1)['cache-control'], `public, max-age=${50 * 60}`)
  const ts = TagSet.parse(p1.bytes)
  t.same(ts.publicKey, deriveEpochKey(seed, 'credit.dishonest', 500_000).publicKey, 'the set carries the epoch public key')
  t.ok(ts.hasOutput(evaluate(deriveEpochKey(seed, 'credit.dishonest', 500_000).secretKey, rowInput(LIST, { id: uscc(1) }) as Uint8Array)), 'a record probes positive')

  // The exchange accepts only the current epoch.
  const mode = oprfProvider({ keys: pub, pool: noPool, now: () => now })
  const el = Buffer.from(blind([rowInput(LIST, { id: uscc(1) }) as Uint8Array]).blindedElements[0] as Uint8Array).toString('base64url')
  const req = (epoch: number, iss = 'fj-amr'): RequestPayload => ({ v: 1, xid: 'x'.repeat(16), iat: now, iss, aud: 'fj-credit', svc: LIST.id, purpose: 'p', basis: 'b', mode: 'oprf', q: { epoch, blinded: [el] } })
  const ctx = { source: undefined, limits: { batchMax: 100 }, now }
  const svc = LIST as unknown as ServiceConfig
  t.equal((await mode.prepare(svc, req(500_000), [], ctx)).count, 1)
  await rejects(t, mode.prepare(svc, req(499_999), [], ctx), 'VN_ERR_OPRF_EPOCH')

  // On-demand rebuild: a newer file for the current epoch replaces the served set.
  table = [...table, { id: uscc(3) }]
  const key = deriveEpochKey(seed, 'credit.dishonest', 500_000)
  const rebuilt = await buildTagSet({ service: LIST.id, epoch: 500_000, key, inputs: [table.map((r) => rowInput(LIST, r)).filter((x): x is Uint8Array => x !== null)] })
  await writeFile(tagSetFile(dir, LIST.id, 500_000), rebuilt.bytes)
  await utimes(tagSetFile(dir, LIST.id, 500_000), new Date(), new Date(Date.now() + 5000))
  await pub.tick()
  t.equal(pub.current('credit.dishonest').count, 3, 'reloaded')
  t.not(pub.current('credit.dishonest').etag, p1.etag)

  // Near the boundary the next epoch is built ahead; it is served only after the boundary.
  now = 500_001 * HOUR - 60_000
  const iterationsBefore = source.iterations
  await pub.tick()
  await pub.whenReady()
  await new Promise((r) => setTimeout(r, 50))
  t.equal(pub.current('credit.dishonest').epoch, 500_000, 'still the current epoch before the boundary')
  now = 500_001 * HOUR + 1
  await pub.tick()
  await pub.whenReady()
  t.equal(source.iterations, iterationsBefore + 1, 'the next epoch was built once, ahead of time')
  const p2 = pub.current('credit.dishonest')
  t.equal(p2.epoch, 500_001, 'rotated')
  t.same(TagSet.parse(p2.bytes).publicKey, deriveEpochKey(seed, 'credit.dishonest', 500_001).publicKey, 'a new key')
  t.same((await readdir(dir)).sort(), [`credit.dishonest@500001.vnsh`, `credit.dishonest@500001.vnts`], 'the old epoch is deleted')
  await rejects(t, mode.prepare(svc, req(500_000), [], { ...ctx, now }), 'VN_ERR_OPRF_EPOCH', /not the current epoch 500001/)
  t.equal(epochAt(now, HOUR), 500_001)
})

t.test('publisher: a stored set of the right epoch and key is loaded, not rebuilt; a foreign one is rebuilt', async (t) => {
  const dir = t.testdir({})
  const now = 42 * 3_600_000 + 5
  const seed = new Uint8Array(32).fill(3)
  const key = deriveEpochKey(seed, LIST.id, 42)
  const stored = await buildTagSet({ service: LIST.id, epoch: 42, key, inputs: [{ inputs: [rowInput(LIST, { id: uscc(5) }) as Uint8Array], shardHashes: Uint32Array.of(7) }], shardRecords: 10_000 })
  await writeFile(tagSetFile(dir, LIST.id, 42), stored.bytes)
  if (stored.sharded === undefined) throw new Error('no shards')
  await writeFile(shardFilePath(dir, LIST.id, 42), encodeShardFile({ service: LIST.id, epoch: 42, tagLength: stored.tagLength, publicKey: key.publicKey }, stored.sharded).file)
  const source = memorySource(() => [{ id: uscc(1) }, { id: uscc(2) }])
  const signer = { kid: 'fj-credit#k1', privateKey: generateKeyPairSync('ed25519').privateKey }
  const open = (s: Uint8Array): TagSetPublisher => new TagSetPublisher({ services: [LIST], source, seed: s, signer: () => signer, pool: () => undefined, dir, logger: pino({ level: 'silent' }), now: () => now, tickMs: 0 })
  const a = open(seed)
  await a.whenReady()
  t.equal(a.current(LIST.id).count, 1, 'loaded from the store')
  t.equal(source.iterations, 0, 'no enumeration')
  await a.close()
  const b = open(new Uint8Array(32).fill(4)) // another seed: the stored set's key does not match
  await b.whenReady()
  t.equal(b.current(LIST.id).count, 2, 'rebuilt with the right key')
  t.equal(source.iterations, 1)
  await b.close()
  const failing = new TagSetPublisher({
    // eslint-disable-next-line require-yield -- an enumeration that fails before its first row
    services: [LIST], source: { ...source, async *iterate() { throw new VnError('VN_ERR_SOURCE_QUERY', 'sqlite: broken') } }, seed: new Uint8Array(32).fill(5),
    signer: () => signer, pool: () => undefined, dir, logger: pino({ level: 'silent' }), now: () => now, tickMs: 0,
  })
  await rejects(t, failing.whenReady(), 'VN_ERR_SOURCE_QUERY')
  await failing.close()
  t.throws(() => new TagSetPublisher({ services: [{ ...LIST, enumerate: undefined }], source, seed, signer: () => signer, pool: () => undefined, dir, logger: pino({ level: 'silent' }) }), { code: 'VN_ERR_CONFIG_INVALID' })
})

t.test('service builds: small sets in-thread without the pool, larger ones ask for it and stream 4096-row chunks', async (t) => {
  const dir = t.testdir({})
  const key = generateKeyPair()
  let asked = 0
  const getPool = (): undefined => {
    asked++
    return undefined // no worker in this file: the pool path's in-thread fallback evaluates the same chunks
  }
  const small = await buildServiceTagSet({ svc: LIST, source: memorySource(() => Array.from({ length: 300 }, (_, i) => ({ id: uscc(i) }))), key, epoch: 3, dir, pool: getPool })
  t.equal(asked, 0, 'a small set never starts the pool')
  t.equal(small.count, 300)
  const sizes: number[] = []
  const big = await buildServiceTagSet({
    svc: LIST, source: memorySource(() => Array.from({ length: 4200 }, (_, i) => ({ id: uscc(i) }))), key, epoch: 4, dir, pool: getPool,
    onProgress: (p) => sizes.push(p.records),
  })
  t.equal(asked, 1, 'a large set asks for the pool')
  t.same(sizes, [4096, 4200], 'streamed in enumeration batches')
  t.equal(big.count, 4200)
  t.ok(TagSet.parse(await readFile(big.path)).hasOutput(evaluate(key.secretKey, rowInput(LIST, { id: uscc(4150) }) as Uint8Array)), 'a record of the second batch is in the set')
  t.same((await readdir(dir)).sort(), ['credit.dishonest@3.vnsh', 'credit.dishonest@3.vnts', 'credit.dishonest@4.vnsh', 'credit.dishonest@4.vnts'], 'run files removed after success')
})

t.test('per-consumer rate limit on evaluations', async (t) => {
  let now = 1_000_000
  const key = generateKeyPair()
  const mode = oprfProvider({ keys: { currentEpoch: () => 1, key: () => key }, pool: noPool, now: () => now })
  const els = blind(Array.from({ length: 4 }, (_, i) => rowInput(LIST, { id: uscc(i) }) as Uint8Array)).blindedElements.map((e) => Buffer.from(e).toString('base64url'))
  const svc = { ...LIST, oprf: { epochHours: 1, evaluationsPerSecond: 5 } } as unknown as ServiceConfig
  const req = (iss: string, n: number): RequestPayload => ({ v: 1, xid: 'x'.repeat(16), iat: now, iss, aud: 'p', svc: LIST.id, purpose: 'p', basis: 'b', mode: 'oprf', q: { epoch: 1, blinded: els.slice(0, n) } })
  const ctx = { source: undefined, limits: { batchMax: 4 }, now }
  t.equal((await mode.prepare(svc, req('fj-amr', 4), [], ctx)).count, 4, 'burst up to the batch limit')
  t.equal((await mode.prepare(svc, req('fj-amr', 1), [], ctx)).count, 1)
  await rejects(t, mode.prepare(svc, req('fj-amr', 1), [], ctx), 'VN_ERR_REQ_RATE_LIMITED', /rate of 5\/s/)
  t.equal((await mode.prepare(svc, req('fj-tax', 4), [], ctx)).count, 4, 'another consumer has its own bucket')
  now += 400
  t.equal((await mode.prepare(svc, req('fj-amr', 2), [], ctx)).count, 2, 'refilled at 5 per second')
  // the element checks come first: a bad element never spends tokens
  await rejects(t, mode.prepare(svc, { ...req('fj-amr', 1), q: { epoch: 1, blinded: ['AAAA'] } }, [], ctx), 'VN_ERR_OPRF_POINT')
})

t.test('verinode tagset build: builds into the node store, idempotent, resumable files cleaned', async (t) => {
  const { buildDemoFederation } = await import('../../src/demo/federation.js')
  const { buildTagSets, tagsetCommand } = await import('../../src/cli/commands/tagset.js')
  const fed = await buildDemoFederation(t.testdir({}), { sizes: { residents: 60, enterprises: 40, taxYears: [2025] } })
  const config = fed.nodes['fj-credit']?.configPath as string
  const r = await buildTagSets({ config, env: {}, workers: 0 })
  t.equal(r.length, 1)
  t.equal(r[0]?.service, 'credit.dishonest')
  t.equal(r[0]?.built, true)
  t.equal(r[0]?.tags, fed.dataset.counts.dishonestDebtors)
  const dir = join(fed.dir, 'fj-credit', 'var', 'tagsets')
  t.same((await readdir(dir)).sort(), [`credit.dishonest@${r[0]?.epoch}.vnsh`, `credit.dishonest@${r[0]?.epoch}.vnts`], 'only the set and its shards: run files removed')
  const again = await buildTagSets({ config, env: {}, workers: 0 })
  t.equal(again[0]?.built, false, 'up to date: not rebuilt')
  t.equal((await buildTagSets({ config, env: {}, workers: 0, force: true }))[0]?.built, true, '--force rebuilds')
  const next = await buildTagSets({ config, env: {}, workers: 0, next: true })
  t.equal(next[0]?.epoch, (r[0]?.epoch as number) + 1, '--next builds the next epoch')
  await t.rejects(buildTagSets({ config, env: {}, workers: 0, service: 'no.such' }), /does not offer oprf/)
  t.equal(r[0]?.shards, 1, 'a small register: one shard')
  t.equal(again[0]?.shards, 1)
  // Shards below the anonymity floor: nothing is built, with the coded config error.
  const { readFile: read } = await import('node:fs/promises')
  const cfg = JSON.parse(await read(config, 'utf8')) as { services: { id: string; oprf?: Record<string, unknown> }[] }
  const below = join(fed.dir, 'fj-credit', 'below-floor.json')
  await writeFile(below, JSON.stringify({ ...cfg, services: cfg.services.map((x) => (x.id === 'credit.dishonest' ? { ...x, oprf: { ...x.oprf, shardRecords: 999 } } : x)) }))
  await t.rejects(buildTagSets({ config: below, env: {}, workers: 0, force: true }), { code: 'VN_ERR_CONFIG_OPRF_ANONYMITY' })

  const lines: string[] = []
  const io = { out: (l: string) => lines.push(l), err: (l: string) => lines.push(l), json: true, tty: false, cwd: fed.dir, env: {} }
  t.equal(await tagsetCommand.run(['build', '--config', config], io), 0)
  t.match(JSON.parse(lines[0] as string), { ok: true, tagsets: [{ service: 'credit.dishonest', built: false }] })
  t.equal(await tagsetCommand.run(['rebuild', '--config', config], io), 2, 'usage error')

})

t.test('provider evaluation: a lone small request in-thread (one element split with the pool), concurrent or larger ones on the pool, same answers', async (t) => {
  const key = generateKeyPair()
  const real = createOprfPool(1)
  t.teardown(() => real.close())
  const runs: string[] = []
  const counting = new Proxy(real, { get: (o, p) => (p === 'run' ? (...a: Parameters<typeof real.run>) => (runs.push(a[0]), o.run(...a)) : Reflect.get(o, p)) })
  const mode = oprfProvider({ keys: { currentEpoch: () => 1, key: () => key }, pool: () => counting })
  const inputs = Array.from({ length: 12 }, (_, i) => rowInput(LIST, { id: uscc(i) }) as Uint8Array)
  const b = blind(inputs)
  const els = b.blindedElements.map((e) => Buffer.from(e).toString('base64url'))
  const svc = LIST as unknown as ServiceConfig
  const ctx = { source: undefined, limits: { batchMax: 100 }, now: Date.now() }
  const ask = async (from: number, n: number): Promise<{ evaluated: string[]; proof: string }> => {
    const req: RequestPayload = { v: 1, xid: 'x'.repeat(16), iat: ctx.now, iss: 'fj-amr', aud: 'p', svc: LIST.id, purpose: 'p', basis: 'b', mode: 'oprf', q: { epoch: 1, blinded: els.slice(from, from + n) } }
    const p = await mode.prepare(svc, req, [], ctx)
    return ((await p.answer()) as { r: { evaluated: string[]; proof: string } }).r
  }
  const check = (r: { evaluated: string[]; proof: string }, from: number, n: number): boolean => {
    // the consumer's verification: the proof holds for exactly these elements under the key
    const out = finalizeBatch(inputs.slice(from, from + n), b.blinds.slice(from, from + n), r.evaluated.map((e) => new Uint8Array(Buffer.from(e, 'base64url'))), b.blindedElements.slice(from, from + n), key.publicKey, new Uint8Array(Buffer.from(r.proof, 'base64url')), { maxBatch: n })
    return out.every((o, i) => Buffer.from(o).equals(Buffer.from(evaluate(key.secretKey, inputs[from + i] as Uint8Array))))
  }
  await new Promise((r) => setTimeout(r, 10))
  t.ok(check(await ask(0, 1), 0, 1), 'lone single element: correct')
  t.same(runs, ['offloadSingleEvaluation'], 'evaluated here, with t2 and t3 from the pool')
  // A pause first: the two must follow a quiet spell, or even the first is "right after another"
  // (the check above can take under the clock's 2 ms on a fast run, and both then go to the pool).
  await new Promise((r) => setTimeout(r, 10))
  const [x, y] = await Promise.all([ask(1, 1), ask(2, 1)])
  t.ok(check(x, 1, 1) && check(y, 2, 1), 'two at once: correct')
  t.same(runs.slice(1), ['offloadSingleEvaluation', 'blindEvaluateBatch'], 'the second of two at once went to the pool whole')
  await new Promise((r) => setTimeout(r, 10))
  t.ok(check(await ask(3, 5), 3, 5), 'a lone batch of five: correct')
  t.equal(runs.length, 3, 'evaluated in-thread, nothing on the pool')
  await new Promise((r) => setTimeout(r, 10))
  t.ok(check(await ask(0, 12), 0, 12), 'a larger batch: correct')
  t.same(runs.slice(3), ['blindEvaluateBatch'], 'a batch over 8 elements goes to the pool even after a pause')
})

t.test('finish, single subject: the split proof check on an idle pool accepts and refuses as the whole one', async (t) => {
  const records = Array.from({ length: 20 }, (_, i) => ({ id: uscc(i) }))
  const { bytes, key } = await tagSetOf(LIST, records)
  const ts = TagSet.parse(bytes)
  const real = createOprfPool(1)
  t.teardown(() => real.close())
  const ops: string[] = []
  const counting = new Proxy(real, { get: (o, p) => (p === 'run' ? (op: string, ...a: unknown[]) => (ops.push(op), (o.run as (...x: unknown[]) => unknown)(op, ...a)) : Reflect.get(o, p)) })
  const b64u = (x: Uint8Array): string => Buffer.from(x).toString('base64url')
  for (const [subject, listed] of [[{ id: uscc(3) }, true], [{ id: uscc(999) }, false]] as const) {
    const inputs = subjectInputs(LIST, subject, 'subjects[0]')
    const b = blind(inputs)
    const ev = blindEvaluateBatch(key.secretKey, key.publicKey, b.blindedElements)
    const good = { r: { epoch: 7, evaluated: ev.evaluatedElements.map(b64u), proof: b64u(ev.proof) } }
    const finish = (rep: { r: Record<string, unknown> }): Promise<unknown> => finishOprf({ pool: () => counting }, ts, inputs, b, rep, LIST, 1, 1)
    t.same(await finish(good), [{ listed }], `honest reply: ${listed ? 'listed' : 'not listed'}`)
    for (const at of [0, 40]) {
      const p = Buffer.from(ev.proof)
      p[at] = (p[at] as number) ^ 1
      await rejects(t, finish({ r: { ...good.r, proof: p.toString('base64url') } }), 'VN_ERR_OPRF_PROOF')
    }
    const other = generateKeyPair()
    const forged = blindEvaluateBatch(other.secretKey, other.publicKey, b.blindedElements)
    await rejects(t, finish({ r: { epoch: 7, evaluated: forged.evaluatedElements.map(b64u), proof: b64u(forged.proof) } }), 'VN_ERR_OPRF_PROOF')
  }
  t.ok(ops.length >= 6 && ops.every((o) => o === 'offloadSingleProof'), `the worker's share went to the worker (${ops.length} tasks)`)
})
