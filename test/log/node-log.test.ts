import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SqliteLogStore } from '../../src/log/store.js'
import { jwsDigest } from '../../src/protocol/jws-digest.js'
import { StoreNodeLog, parseLeaf } from '../../src/log/node-log.js'
import type { LogRecord } from '../../src/log/records.js'

const JWS = 'eyJhbGciOiJFZERTQSJ9.eyJ2IjoxfQ.c2lnbmF0dXJl'

async function setup(t: { teardown(fn: () => unknown): void }): Promise<{ store: SqliteLogStore; ev: SqliteLogStore; log: StoreNodeLog }> {
  const dir = mkdtempSync(join(tmpdir(), 'vn-nodelog-'))
  const store = await SqliteLogStore.open(join(dir, 'log.db'), { writer: 'inline' })
  t.teardown(async () => {
    await store.close()
    rmSync(dir, { recursive: true, force: true })
  })
  return { store, ev: store, log: await StoreNodeLog.open(store) }
}

// Records of a made-up type: the node log writes whatever records it is given, in order.
const rec = (n: number): LogRecord => ({ v: 1, at: n, t: 'fork-evidence', peer: `p${n}`, notes: [] }) as unknown as LogRecord

t.test('reserved slots commit in index order, whatever order they are filled in', async (t) => {
  const { store, ev, log } = await setup(t)
  const a = log.reserve(2)
  const b = log.reserve(1)
  const c = log.reserve(3)
  t.same([a.index, b.index, c.index], [0, 2, 3])
  const pc = c.append([rec(3), rec(4), rec(5)], [{ kind: 'jws', record: 2, digest: jwsDigest(JWS), jws: JWS }])
  const pb = b.append([rec(2)])
  let cDone = false
  void pc.then(() => (cDone = true))
  await new Promise((r) => setTimeout(r, 20))
  t.equal(cDone, false, 'a filled slot waits for every earlier one')
  t.equal(await store.size(), 0)
  const pa = a.append([rec(0), rec(1)])
  t.same(await Promise.all([pa, pb, pc]), [[0, 1], [2], [3, 4, 5]])
  const leaves = await store.entries(0, 6)
  t.same(leaves.map((l) => (parseLeaf(l) as unknown as { at: number }).at), [0, 1, 2, 3, 4, 5])
  t.equal((await ev.getJws(5))?.jws, JWS, 'evidence lands with the record it names')
  t.same(await log.append([rec(6)]), [6], 'plain appends queue behind reservations')
  t.same(await log.append([]), [])
  await t.rejects(log.append([], [{ kind: 'jws', record: 0, digest: jwsDigest(JWS), jws: JWS }]), { code: 'VN_ERR_EVIDENCE_INVALID' }, 'evidence needs its record')
  t.equal(await store.size(), 7)
})

t.test('an abandoned slot fails the log closed: no gap is ever written', async (t) => {
  const { store, log } = await setup(t)
  const a = log.reserve(1)
  const b = log.reserve(1)
  const pb = b.append([rec(1)])
  a.abandon(new Error('could not sign'))
  await t.rejects(pb, { code: 'VN_ERR_LOG_UNAVAILABLE' }, 'the waiting slot is refused')
  await t.rejects(log.append([rec(2)]), { code: 'VN_ERR_LOG_UNAVAILABLE' })
  t.throws(() => log.reserve(1), { code: 'VN_ERR_LOG_UNAVAILABLE' })
  t.equal(await store.size(), 0, 'nothing written')
})

t.test('a slot filled with the wrong number of records, or twice, is refused', async (t) => {
  const { store, log } = await setup(t)
  t.throws(() => log.reserve(0), { code: 'VN_ERR_LOG_ENTRY_INVALID' })
  t.throws(() => log.reserve(1.5), { code: 'VN_ERR_LOG_ENTRY_INVALID' })
  const ok = log.reserve(1)
  t.same(await ok.append([rec(0)]), [0])
  await t.rejects(ok.append([rec(1)]), { code: 'VN_ERR_INTERNAL' }, 'used twice')
  const short = log.reserve(2)
  await t.rejects(short.append([rec(1)]), { code: 'VN_ERR_LOG_UNAVAILABLE' }, 'a gap would follow: fail closed')
  t.equal(await store.size(), 1)
})

t.test('a failed commit fails every later slot', async (t) => {
  const { store, log } = await setup(t)
  store.failNextCommit()
  const a = log.reserve(1)
  const b = log.reserve(1)
  const pa = a.append([rec(0)])
  const pb = b.append([rec(1)])
  await t.rejects(pa, { code: 'VN_ERR_LOG_UNAVAILABLE' })
  await t.rejects(pb, { code: 'VN_ERR_LOG_UNAVAILABLE' })
  await t.rejects(log.append([rec(2)]), { code: 'VN_ERR_LOG_UNAVAILABLE' })
})
