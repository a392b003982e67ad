/**
 * The checkpoint lease of replicas sharing a log on PostgreSQL (PgLease), on the real server: one
 * holder at a time, renewed by its holder, taken over once it expired, given up on close; and the
 * Checkpointer signs and stores only while it holds the lease.
 */
import t from 'tap'
import pg from 'pg'
import { generateKeyPairSync } from 'node:crypto'
import { PgLease, openPgNodeStores } from '../../src/log/pg-store.js'
import { Checkpointer } from '../../src/node/checkpointer.js'
import { PG_URL, pgSkipReason, uniqueName } from '../helper-db.js'

const skip = await pgSkipReason()
if (skip !== undefined) {
  t.plan(0, skip)
} else {
  const schema = uniqueName('vn_lease')
  const stores = await openPgNodeStores({ url: PG_URL, schema, poolSize: 2 })
  t.teardown(async () => {
    await stores.close()
    const c = new pg.Client({ connectionString: PG_URL })
    await c.connect()
    await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
    await c.end()
  })
  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

  t.test('one holder at a time; renewal; take-over after expiry; release', async (t) => {
    // A 3 s term, renewed after 1.8 s and tried again 1.8 s later: past the first term, with 1.2 s
    // to spare for a loaded machine (with a 1 s term and 0.6 s sleeps, a stall of 0.4 s between the
    // renewal and the second try failed it under load).
    const TERM = 3000
    const a = new PgLease(stores.pool, 'checkpoint', 'replica-a', TERM)
    const b = new PgLease(stores.pool, 'checkpoint', 'replica-b', TERM)
    t.equal(await a.acquire(), true, 'a free lease is taken')
    t.equal(await b.acquire(), false, 'held by another: refused')
    t.equal(await a.current(), 'replica-a')
    await sleep(0.6 * TERM)
    t.equal(await a.acquire(), true, 'the holder renews')
    await sleep(0.6 * TERM)
    t.equal(await b.acquire(), false, 'renewed: still refused after the first term would have ended')
    await sleep(0.4 * TERM + 600)
    t.equal(await b.acquire(), true, 'expired (the holder died): taken over')
    t.equal(await a.acquire(), false, 'the old holder no longer has it')
    await b.release()
    t.equal(await a.current(), undefined, 'released')
    t.equal(await a.acquire(), true, 'and taken at once')
    await a.release()
    t.throws(() => new PgLease(stores.pool, 'checkpoint', 'x', 0), { code: 'VN_ERR_CONFIG_INVALID' })
  })

  t.test('the Checkpointer signs and stores only while it holds the lease', async (t) => {
    const { privateKey } = generateKeyPairSync('ed25519')
    const holder = new PgLease(stores.pool, 'checkpoint', 'replica-a', 60_000)
    const other = new PgLease(stores.pool, 'checkpoint', 'replica-b', 60_000)
    const a = new Checkpointer(stores.log, 'lease.example/log', privateKey, holder)
    const b = new Checkpointer(stores.log, 'lease.example/log', privateKey, other)
    await stores.log.appendMany([new TextEncoder().encode('{"n":0}')])
    const noteA = await a.checkpoint()
    t.equal((await stores.log.latestCheckpoint())?.size, 1, 'the holder stored its checkpoint')
    await stores.log.appendMany([new TextEncoder().encode('{"n":1}')])
    const noteB = await b.checkpoint()
    t.equal(noteB, noteA, 'not the holder: serves the latest stored, signs nothing new')
    t.equal((await stores.log.latestCheckpoint())?.size, 1, 'and stores nothing')
    t.not(await a.checkpoint(), noteA, 'the holder signs the new size')
    t.equal((await stores.log.latestCheckpoint())?.size, 2)
    await holder.release()
  })
}
