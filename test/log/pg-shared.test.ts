/**
 * Two PgLogStores on one schema, in one process, as two replicas of a node see the log: one
 * sequence of indices however their group commits interleave, each store's tree taking in the
 * other's leaves, `appendWith` building records once their index is known (a failed build drops
 * that append alone, leaving no gap), and the replay memory settled by the commit that writes the
 * answer.
 */
import t from 'tap'
import pg from 'pg'
import { PgLogStore, openPgLogPool, openPgNodeStores, type BuiltAppend } from '../../src/log/pg-store.js'
import { leafHash, rootFromLeafHashes } from '../../src/log/merkle.js'
import { PG_URL, pgSkipReason, uniqueName } from '../helper-db.js'

const skip = await pgSkipReason()
if (skip !== undefined) {
  t.plan(0, skip)
} else {
  const schema = uniqueName('vn_shared')
  const enc = new TextEncoder()
  const pools = [await openPgLogPool({ url: PG_URL, schema, poolSize: 3 }), await openPgLogPool({ url: PG_URL, schema, poolSize: 3 })]
  const [a, b] = [await PgLogStore.open(pools[0]!), await PgLogStore.open(pools[1]!)] as [PgLogStore, PgLogStore]
  t.teardown(async () => {
    await a.close()
    await b.close()
    for (const p of pools) await p.end()
    const c = new pg.Client({ connectionString: PG_URL })
    await c.connect()
    await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
    await c.end()
  })

  t.test('interleaved group commits of two stores: one gap-free sequence, one tree', async (t) => {
    const tagged = (who: string, i: number): Uint8Array => enc.encode(`{"who":"${who}","i":${i}}`)
    const calls: Promise<{ index: number }[]>[] = []
    for (let i = 0; i < 200; i++) {
      calls.push(a.appendMany([tagged('a', i)]))
      calls.push(b.appendMany([tagged('b', i), tagged('b2', i)]))
    }
    const got = (await Promise.all(calls)).flat().map((r) => r.index).sort((x, y) => x - y)
    t.same(got, Array.from({ length: 600 }, (_, i) => i), 'indices 0..599, each once')
    t.equal(await a.size(), 600, 'a took in b\'s leaves')
    t.equal(await b.size(), 600)
    const leaves: Uint8Array[] = []
    for (let i = 0; i < 600; i += 200) leaves.push(...(await a.entries(i, i + 200)))
    const root = Buffer.from(rootFromLeafHashes(leaves.map(leafHash))).toString('hex')
    t.equal(Buffer.from(await a.rootHash()).toString('hex'), root, 'a\'s root is the root of the stored leaves')
    t.equal(Buffer.from(await b.rootHash()).toString('hex'), root, 'and b\'s')
    // each store's own appends kept their order
    const mine = leaves.map((l) => JSON.parse(Buffer.from(l).toString('utf8')) as { who: string; i: number }).filter((x) => x.who === 'a').map((x) => x.i)
    t.same(mine, Array.from({ length: 200 }, (_, i) => i), 'a\'s appends in call order')
  })

  t.test('a read beyond what one store has taken in (a checkpoint the other signed) takes in the other\'s leaves first', async (t) => {
    await a.appendMany([enc.encode('{"late":1}'), enc.encode('{"late":2}')])
    const size = await a.size()
    t.equal((await b.consistencyProof(size - 2, size)).length > 0, true, 'b serves a proof up to a\'s new size')
    t.equal(Buffer.from(await b.rootHash(size)).toString('hex'), Buffer.from(await a.rootHash(size)).toString('hex'))
    t.equal((await b.entries(size - 2, size)).length, 2)
  })

  t.test('appendWith: built with the index the database assigns; a failed build drops that append alone', async (t) => {
    const start = await a.size()
    const build = (tag: string) => async (first: number): Promise<BuiltAppend> => ({ leaves: [enc.encode(`{"tag":"${tag}","first":${first}}`), enc.encode(`{"tag":"${tag}","second":${first + 1}}`)] })
    const [x, bad, y, short, z] = await Promise.allSettled([
      a.appendWith(2, build('x')),
      a.appendWith(2, async () => { throw new Error('could not sign') }),
      b.appendWith(2, build('y')),
      a.appendWith(2, async (first) => ({ leaves: [enc.encode(`{"first":${first}}`)] })),
      a.appendWith(2, build('z')),
    ])
    t.equal(bad.status, 'rejected')
    t.match(short.status === 'rejected' ? short.reason : undefined, { code: 'VN_ERR_LOG_ENTRY_INVALID' }, 'fewer leaves than announced: refused')
    for (const r of [x, y, z]) {
      t.equal(r.status, 'fulfilled')
      if (r.status !== 'fulfilled') continue
      const [first] = r.value
      const leaf = JSON.parse(Buffer.from(await a.leaf(first!.index)).toString('utf8')) as { first: number }
      t.equal(leaf.first, first!.index, 'the record names the index it landed at')
    }
    t.equal(await a.size(), start + 6, 'three appends of two, no gap where the failed ones were')
    t.ok(a.writable && b.writable, 'a failed build does not fail the store')
  })

  t.test('a commit that writes an answer settles its replay entry', async (t) => {
    const stores = await openPgNodeStores({ url: PG_URL, schema, poolSize: 2 })
    t.teardown(() => stores.close())
    const now = Date.now()
    t.equal(await stores.replay.claim('fj-tax', 'xid-s1', { reqDigest: 'd1', expiresAt: now + 60_000 }, now), undefined)
    const [, , out] = await stores.log.appendWith(3, async () => ({
      leaves: [enc.encode('{"t":"request-in"}'), enc.encode('{"t":"decision"}'), enc.encode('{"t":"response-out"}')],
      settles: [{ iss: 'fj-tax', xid: 'xid-s1', reqDigest: 'd1', record: 2 }],
    }))
    const seen = await stores.replay.claim('fj-tax', 'xid-s1', { reqDigest: 'other', expiresAt: now + 60_000 }, now)
    t.equal(seen?.index, out?.index, 'the entry names the response-out index, without a settle call')
    await stores.replay.settle('fj-tax', 'xid-s1', 'd1', out!.index)
    t.equal((await stores.replay.claim('fj-tax', 'xid-s1', { reqDigest: 'x', expiresAt: now + 60_000 }, now))?.index, out?.index)
  })
}
