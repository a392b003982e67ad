/**
 * oprf mode over sharded tag sets, the provider and consumer modes wired back to back (no HTTP,
 * no JWS; the exchange core around them is the same for every mode): a single check is one
 * round trip that carries its shard, answers agree with plain membership on random members and
 * non-members, a shard number out of range is a coded 400, a shard inconsistent with the signed
 * epoch header is caught, an epoch change mid-check is refused and the retry succeeds, and the
 * consumer's shard cache is used and bounded.
 */
import t from 'tap'
import { generateKeyPairSync } from 'node:crypto'
import { open as openFile, utimes } from 'node:fs/promises'
import { pino } from 'pino'
import {
  blind, blindEvaluateBatch, finalizeBatch, offloadSingleEvaluation, offloadSingleProof, type SingleProofPlan,
} from '../../src/crypto/oprf.js'
import { ERRORS, VnError } from '../../src/errors.js'
import { oprfConsumer, oprfProvider } from '../../src/exchange/modes/oprf.js'
import type { CatalogService } from '../../src/exchange/catalog.js'
import type { ServiceConfig } from '../../src/config/schema.js'
import type { RequestPayload } from '../../src/protocol/envelope.js'
import { makeUscc } from '../../src/demo/synthetic.js'
import { shardOfHash, TagSet } from '../../src/oprf/tagset.js'
import { ShardCache, ShardRoot } from '../../src/oprf/tagshards.js'
import { buildServiceTagSet, shardFilePath, subjectShardHash, tagSetFile, TagSetPublisher, type OprfProviderService } from '../../src/oprf/tagset-service.js'
import type { DataSource, Row } from '../../src/sources/types.js'
import type { WorkerPool } from '../../src/util/worker-pool.js'

const HOUR = 3_600_000
const uscc = (i: number): string => makeUscc('91', '350100', `M${String(i).padStart(7, '0')}`)
const LIST: OprfProviderService = {
  id: 'credit.dishonest', kind: 'membership', modes: ['plain', 'oprf'],
  fields: { id: { kind: 'partyId', key: true, required: true } },
  enumerate: 'SELECT subject_id AS id FROM dishonest_debtors',
  oprf: { epochHours: 1, shardRecords: 100, minAnonymitySet: 100 },
}

/** The OPRF worker's operations, run in this thread (no worker start-up in this file). */
const inThreadPool = {
  size: 1,
  busy: false,
  async run(task: string, a: any): Promise<unknown> { // eslint-disable-line @typescript-eslint/no-explicit-any
    switch (task) {
      case 'offloadSingleEvaluation': return offloadSingleEvaluation(a)
      case 'offloadSingleProof': return offloadSingleProof(a.plan as SingleProofPlan, a.input, a.blind)
      case 'blind': return blind(a.inputs, { maxBatch: a.maxBatch })
      case 'blindEvaluateBatch': return blindEvaluateBatch(a.secretKey, a.publicKey, a.blindedElements, { maxBatch: a.maxBatch })
      case 'finalizeBatch': return finalizeBatch(a.inputs, a.blinds, a.evaluatedElements, a.blindedElements, a.publicKey, a.proof, { maxBatch: a.maxBatch })
      default: throw new Error(`no task ${task} in this file`)
    }
  },
} as unknown as WorkerPool

function memorySource(rows: () => Row[]): DataSource {
  return {
    kind: 'memory',
    async assertReadOnly() {},
    async describe() { return { columns: [] } },
    async query() { return [] },
    async *iterate(_sql: string, _p: unknown, batch = 1000) {
      const all = rows()
      for (let i = 0; i < all.length; i += batch) yield all.slice(i, i + batch)
    },
    async ping() {},
    async close() {},
  } as unknown as DataSource
}

// 1,200 listed parties (members: even numbers), 100 per shard aimed at: 2^3 = 8 shards of ~150.
const MEMBERS = 1200
const table: Row[] = Array.from({ length: MEMBERS }, (_, i) => ({ id: uscc(2 * i) }))
let now = 400_000 * HOUR + 60_000
const dir = t.testdir({})
const signer = { kid: 'fj-credit#k1', privateKey: generateKeyPairSync('ed25519').privateKey }
const pub = new TagSetPublisher({
  services: [LIST], source: memorySource(() => table), seed: new Uint8Array(32).fill(7), signer: () => signer, pool: () => undefined,
  dir, logger: pino({ level: 'silent' }), now: () => now, tickMs: 0, leadMs: 0,
})
t.teardown(() => pub.close())
await pub.whenReady()

/** The consumer's view of the provider: the verified epoch header and full set, cached until invalidated. */
const fetched = { root: 0, full: 0, invalidated: 0 }
let rootCache: ShardRoot | undefined
let rootOverride: ShardRoot | undefined
const tagsets = {
  async get() {
    fetched.full++
    return TagSet.parse(pub.current(LIST.id).bytes)
  },
  async root() {
    if (rootOverride !== undefined) return rootOverride
    if (rootCache === undefined) {
      fetched.root++
      rootCache = ShardRoot.parse(pub.currentShards(LIST.id).header)
    }
    return rootCache
  },
  invalidate() {
    fetched.invalidated++
    rootCache = undefined
  },
}
const cache = new ShardCache(4)
const consumer = oprfConsumer({ tagsets, shards: cache, pool: () => inThreadPool })
const provider = oprfProvider({ keys: pub, pool: () => inThreadPool, now: () => now })
const svcCfg = LIST as unknown as ServiceConfig
const svcCat = LIST as unknown as CatalogService

let xid = 0
/** One exchange, back to back; the q and r as they would travel. */
async function check(subjects: { id: string }[]): Promise<{ answers: Record<string, unknown>[]; q: Record<string, unknown>; r: Record<string, unknown> }> {
  const built = await consumer.build(svcCat, subjects, { provider: 'fj-credit', now })
  const req: RequestPayload = {
    v: 1, xid: String(++xid).padStart(16, 'x'), iat: now, iss: 'fj-amr', aud: 'fj-credit', svc: LIST.id, purpose: 'p', basis: 'b', mode: 'oprf', q: built.q,
  }
  let prepared
  try {
    prepared = await provider.prepare(svcCfg, req, [], { source: undefined, limits: { batchMax: 4096 }, now })
  } catch (e) {
    consumer.refused?.('fj-credit', LIST.id, (e as VnError).code)
    throw e
  }
  const reply = await prepared.answer()
  return { answers: await built.finish(reply), q: built.q, r: reply.r ?? {} }
}

/** A subject (odd: not listed) whose shard (or the given one) is not cached now. */
function uncached(epoch: number, want?: number): number {
  for (let i = 1; i < 100_000; i += 2) {
    const sh = shardOfHash(subjectShardHash(LIST, { id: uscc(i) }), 3)
    if ((want === undefined || sh === want) && cache.peek('fj-credit', LIST.id, epoch, sh) === undefined) return i
  }
  throw new Error('no such subject')
}

async function rejects(t: Test, p: Promise<unknown>, code: string): Promise<VnError> {
  const e = await p.then(() => null, (err: unknown) => err)
  t.ok(e instanceof VnError, `rejects with a VnError (${(e as Error | null)?.message})`)
  t.equal((e as VnError).code, code)
  return e as VnError
}
type Test = Parameters<Parameters<typeof t.test>[0]>[0]

t.test('the epoch header commits to 8 shards; a single check is one round trip carrying its shard', async (t) => {
  const root = ShardRoot.parse(pub.currentShards(LIST.id).header)
  t.equal(root.bits, 3, '1,200 records at 100 per shard: 8 shards')
  t.equal(root.count, MEMBERS)
  const { answers, q, r } = await check([{ id: uscc(10) }])
  t.same(answers, [{ listed: true }])
  t.equal((q.shards as number[]).length, 1, 'the request names one shard')
  t.equal((q.blinded as string[]).length, 1)
  const shards = r.shards as { shard: number; tags: string; path: string[] }[]
  t.equal(shards.length, 1, 'the response carries that shard')
  t.equal(shards[0]?.shard, (q.shards as number[])[0])
  t.equal(shards[0]?.path.length, 3, 'with its inclusion proof')
  t.ok(Buffer.from(shards[0]?.tags ?? '', 'base64url').length < 4 * 150 * root.tagLength, 'a shard, not the set')
  t.equal(fetched.full, 0, 'the full set was never fetched')
  t.equal(fetched.root, 1, 'the epoch header once')
  // Asking again for the same subject: the shard is cached, the request names none.
  const again = await check([{ id: uscc(10) }])
  t.same(again.answers, [{ listed: true }])
  t.equal(again.q.shards, undefined, 'cached shard: none asked for')
  t.equal(again.r.shards, undefined)
})

t.test('agreement with plain membership on random members and non-members', async (t) => {
  // 300 by default (the suite stays fast); VN_TEST_SHARD_AGREEMENT=100000 runs the 10^5.
  const n = Number(process.env.VN_TEST_SHARD_AGREEMENT ?? 300)
  let listed = 0
  for (let k = 0; k < n; k++) {
    const i = Math.floor(Math.random() * 2 * MEMBERS + 20)
    const member = i % 2 === 0 && i < 2 * MEMBERS
    const { answers } = await check([{ id: uscc(i) }])
    if (member) listed++
    if (answers[0]?.listed !== member) t.fail(`subject ${i}: ${JSON.stringify(answers[0])}, plain says ${member}`)
  }
  t.pass(`${n} single checks agree (${listed} members)`)
  t.ok(cache.size <= 4, 'the cache stayed within its bound')
  // A batch spread over most shards takes the full set (cheaper than the shards), with the same answers.
  const batch = Array.from({ length: 40 }, (_, k) => ({ id: uscc(k * 61) }))
  const before = fetched.full
  const { answers, q } = await check(batch)
  t.equal(q.shards, undefined, 'no shards asked')
  t.equal(fetched.full, before + 1, 'the full set was used')
  t.same(answers.map((a) => a.listed), batch.map((_, k) => (k * 61) % 2 === 0 && k * 61 < 2 * MEMBERS))
})

t.test('a shard number out of range, repeated or malformed is a coded 400; too many shards too', async (t) => {
  const ctx = { source: undefined, limits: { batchMax: 100 }, now }
  const el = Buffer.from(blind([new Uint8Array([1, 2, 3])]).blindedElements[0] as Uint8Array).toString('base64url')
  const req = (shards: unknown): RequestPayload => ({ v: 1, xid: 'y'.repeat(16), iat: now, iss: 'fj-amr', aud: 'fj-credit', svc: LIST.id, purpose: 'p', basis: 'b', mode: 'oprf', q: { epoch: pub.currentEpoch(LIST.id), blinded: [el], shards } })
  for (const bad of [[8], [-1], [1.5], ['2'], [2, 2], Array.from({ length: 17 }, (_, i) => i % 8)]) {
    const e = await rejects(t, provider.prepare(svcCfg, req(bad), [], ctx), 'VN_ERR_OPRF_SHARD')
    t.notOk(e.detail?.includes(el), 'the detail names no element')
  }
  t.equal(ERRORS.VN_ERR_OPRF_SHARD.status, 400)
  for (const root of ['!!', 'AAAA', 'A'.repeat(44)]) await rejects(t, provider.prepare(svcCfg, { ...req(undefined), q: { epoch: pub.currentEpoch(LIST.id), blinded: [el], root } }, [], ctx), 'VN_ERR_OPRF_SHARD')
  t.equal((await provider.prepare(svcCfg, req([0, 7]), [], ctx)).count, 1, 'shards 0 and 7 are in range')
})

t.test('a provider serving a shard inconsistent with its signed root is caught (VN_ERR_OPRF_SHARD_PROOF)', async (t) => {
  const root = ShardRoot.parse(pub.currentShards(LIST.id).header)
  cache.clear()
  // Change one tag of the file on disk: the provider reads shards from it, its signed root stays.
  const path = shardFilePath(dir, LIST.id, root.epoch)
  const fh = await openFile(path, 'r+')
  const { size } = await fh.stat()
  const pos = size - 3 // in the last shard
  const b = Buffer.alloc(1)
  await fh.read(b, 0, 1, pos)
  await fh.write(Uint8Array.of((b[0] as number) ^ 0x10), 0, 1, pos)
  try {
    // A subject in the last shard (7), not cached.
    const i = uncached(root.epoch, 7)
    const e = await rejects(t, check([{ id: uscc(i) }]), 'VN_ERR_OPRF_SHARD_PROOF')
    t.equal(ERRORS.VN_ERR_OPRF_SHARD_PROOF.status, 502)
    t.notOk(e.message.includes(uscc(i)), 'no subject in the error')
    t.equal(cache.peek('fj-credit', LIST.id, root.epoch, 7), undefined, 'the bad shard was not cached')
  } finally {
    await fh.write(b, 0, 1, pos)
    await fh.close()
  }
  // A provider that sends another shard than the one asked for, or a shard nobody asked for.
  const built = await consumer.build(svcCat, [{ id: uscc(uncached(root.epoch)) }], { provider: 'fj-credit', now })
  const asked = built.q.shards as number[]
  t.equal(asked.length, 1)
  {
    const prepared = await provider.prepare(svcCfg, { v: 1, xid: 'z'.repeat(16), iat: now, iss: 'fj-amr', aud: 'fj-credit', svc: LIST.id, purpose: 'p', basis: 'b', mode: 'oprf', q: { ...built.q, shards: [((asked[0] as number) + 1) % 8] } }, [], { source: undefined, limits: { batchMax: 100 }, now })
    await rejects(t, built.finish(await prepared.answer()), 'VN_ERR_PEER_BAD_RESPONSE')
  }
})

t.test('an epoch change mid-check: refused with VN_ERR_OPRF_EPOCH, the consumer refetches, the retry agrees', async (t) => {
  const built = await consumer.build(svcCat, [{ id: uscc(40) }], { provider: 'fj-credit', now })
  const oldEpoch = built.q.epoch as number
  now = (oldEpoch + 1) * HOUR + 1_000 // the provider rotates before the request arrives
  await pub.whenReady()
  await rejects(t, check([{ id: uscc(40) }]), 'VN_ERR_OPRF_EPOCH')
  t.ok(fetched.invalidated >= 1, 'the epoch header was dropped')
  const { answers, q } = await check([{ id: uscc(40) }, { id: uscc(41) }])
  t.equal(q.epoch, oldEpoch + 1, 'the retry uses the new epoch')
  t.same(answers, [{ listed: true }, { listed: false }])
  for (let sh = 0; sh < 8; sh++) t.equal(cache.peek('fj-credit', LIST.id, oldEpoch, sh), undefined, `shard ${sh} of the old epoch is gone from the cache`)
  // A reply for another epoch than asked (a provider mid-rotation) is refused too.
  rootOverride = ShardRoot.parse(pub.currentShards(LIST.id).header)
  const b2 = await consumer.build(svcCat, [{ id: uscc(42) }], { provider: 'fj-credit', now })
  const prepared = await provider.prepare(svcCfg, { v: 1, xid: 'w'.repeat(16), iat: now, iss: 'fj-amr', aud: 'fj-credit', svc: LIST.id, purpose: 'p', basis: 'b', mode: 'oprf', q: b2.q }, [], { source: undefined, limits: { batchMax: 100 }, now })
  const reply = await prepared.answer()
  await rejects(t, b2.finish({ r: { ...reply.r, epoch: oldEpoch } }), 'VN_ERR_PEER_BAD_RESPONSE')
  rootOverride = undefined
})

t.test('a set rebuilt within its epoch: a consumer holding the old header is refused, refetches, and its old shards are not used', async (t) => {
  const epoch = pub.currentEpoch(LIST.id)
  const newcomer = { id: uscc(1) } // odd: not listed so far
  t.same((await check([newcomer])).answers, [{ listed: false }])
  const invalidated = fetched.invalidated
  table.push({ id: uscc(1) })
  await buildServiceTagSet({ svc: LIST, source: memorySource(() => table), key: pub.key(LIST.id, epoch), epoch, dir })
  await utimes(tagSetFile(dir, LIST.id, epoch), new Date(), new Date(Date.now() + 10_000))
  await pub.tick()
  t.equal(pub.current(LIST.id).count, MEMBERS + 1, 'the provider serves the rebuilt set')
  await rejects(t, check([newcomer]), 'VN_ERR_OPRF_EPOCH')
  t.equal(fetched.invalidated, invalidated + 1, 'the consumer dropped its header')
  const { answers, q } = await check([newcomer])
  t.same(answers, [{ listed: true }], 'the rebuilt shard answers, not the cached one')
  t.equal((q.shards as number[]).length, 1, 'the shard was fetched again under the new header')
})
