import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPairSync } from 'node:crypto'
import Database from 'better-sqlite3'
import { SqliteLogStore, INLINE_COMMIT_MAX_LEAVES, type SqliteLogStoreOptions } from '../../src/log/store.js'
import { MAX_ENTRIES_PER_READ } from '../../src/log/storage.js'
import type { EvidenceRow } from '../../src/log/evidence.js'
import { jwsDigest } from '../../src/protocol/jws-digest.js'
import { LogWriter } from '../../src/log/log-writer.js'
import { leafHash, rootFromLeafHashes, verifyInclusion, verifyConsistency } from '../../src/log/merkle.js'
import { noteSigner, signCheckpoint } from '../../src/log/checkpoint.js'

const enc = new TextEncoder()
const leafOf = (i: number): Uint8Array => enc.encode(JSON.stringify({ n: i, type: 'test' }))
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
interface HasTeardown {
  teardown(fn: () => unknown): void
}

function tempDb(t: HasTeardown): string {
  const dir = mkdtempSync(join(tmpdir(), 'vn-log-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return join(dir, 'log.db')
}

// Tests default to the inline writer: under tap's TypeScript loader each worker thread takes ~3 s to
// start (it loads the compiler), so only the tests about the worker itself spawn one.
async function openStore(t: HasTeardown, path: string, opts: SqliteLogStoreOptions = {}): Promise<SqliteLogStore> {
  const s = await SqliteLogStore.open(path, { writer: 'inline', ...opts })
  t.teardown(() => s.close())
  return s
}


for (const writer of ['auto', 'worker', 'inline'] as const) {
  t.test(`${writer} writer: concurrent appends are group-committed, contiguous and hash correctly`, async (t) => {
    const path = tempDb(t)
    const s = await openStore(t, path, { writer, maxBatch: 64 })
    t.equal(await s.size(), 0)
    t.equal(hex(await s.rootHash()), hex(rootFromLeafHashes([])))
    const leaves = Array.from({ length: 300 }, (_, i) => leafOf(i))
    const results = await Promise.all(leaves.map((l) => s.append(l)))
    t.same(results.map((r) => r.index), leaves.map((_, i) => i), 'indexes follow submission order')
    t.ok(results.every((r, i) => hex(r.leafHash) === hex(leafHash(leaves[i] as Uint8Array))), 'leaf hashes')
    t.equal(await s.size(), 300)
    t.equal(hex(await s.rootHash()), hex(rootFromLeafHashes(leaves.map(leafHash))))
    t.ok(s.stats.commits < 300 / 10, `batched: ${s.stats.commits} commits for 300 appends`)
    t.ok(s.stats.largestBatch <= 64, 'maxBatch respected')
    const many = await s.appendMany([leafOf(300), leafOf(301)])
    t.same(many.map((r) => r.index), [300, 301])
    t.same(await s.leaf(301), leafOf(301))
    t.same(await s.entries(298, 302), [leafOf(298), leafOf(299), leafOf(300), leafOf(301)])
    t.same(await s.appendMany([]), [])
    // "Log before answer": once an append resolved, another connection already sees its row.
    const r = await s.append(leafOf(7))
    const other = new Database(path, { readonly: true })
    t.teardown(() => other.close())
    t.same(other.prepare('SELECT data FROM leaves WHERE idx = ?').pluck().get(r.index), leafOf(7))
    t.equal(other.pragma('journal_mode', { simple: true }), 'wal')
  })
}

const pause = (ms = 5): Promise<void> => new Promise((r) => setTimeout(r, ms))
// a compact-JWS-shaped string per leaf, and its digest (the store checks that one names the other)
const jwsOf = (i: number): string => `eyJhbGciOiJFZERTQSJ9.${Buffer.from(`{"n":${i}}`).toString('base64url')}.c2ln`
const digestOf = (i: number): string => jwsDigest(jwsOf(i))

t.test('auto writer: a lone append after a pause commits inline, bursts go to the worker, and both build one tree', async (t) => {
  const path = tempDb(t)
  const s = await openStore(t, path, { writer: 'auto' })
  const all: Uint8Array[] = []
  const add = (n: number): Promise<unknown> => {
    const ls = Array.from({ length: n }, (_, k) => leafOf(all.length + k))
    const first = all.length
    all.push(...ls)
    // every leaf carries its evidence row, so a misplaced row would show
    return s.appendMany(ls, ls.map((_, k) => ({ kind: 'jws' as const, record: k, digest: digestOf(first + k), jws: jwsOf(first + k) })))
  }
  const seen: string[] = []
  // A round counts when the follow-up append was made while the burst was still being committed:
  // on a busy machine the burst may be done before the follow-up is made, and then the follow-up
  // is rightly lone (inline). Such a round is not counted, and its inline commit is expected.
  let inlineExpected = 0
  for (let round = 0, counted = 0; counted < 4; round++) {
    if (round >= 20) {
      t.fail('the burst was never still in flight when the follow-up came (machine too busy?)')
      break
    }
    await pause()
    const before = s.stats.inline
    await add(1 + (round % 4)) // lone, small
    const lone = s.stats.inline - before === 1 ? 'inline' : 'worker'
    inlineExpected++
    const b2 = s.stats.inline
    let burstDone = false
    const burst = Promise.all(Array.from({ length: 20 }, () => add(1))).then(() => { burstDone = true }) // a burst: one group commit
    await new Promise((r) => setImmediate(r))
    await new Promise((r) => setImmediate(r))
    const inFlight = !burstDone
    const follow = add(2) // while the burst is being committed: not lone
    await burst
    const burstAt = s.stats.inline === b2 ? 'worker' : 'inline'
    await follow
    if (!inFlight) {
      inlineExpected += s.stats.inline - b2
      continue
    }
    counted++
    seen.push(lone, burstAt, s.stats.inline === b2 ? 'worker' : 'inline')
  }
  t.same(seen, Array.from({ length: 4 }, () => ['inline', 'worker', 'worker']).flat(), 'where each commit ran')
  await pause()
  await add(INLINE_COMMIT_MAX_LEAVES + 1)
  t.equal(s.stats.inline, inlineExpected, `a lone append of more than ${INLINE_COMMIT_MAX_LEAVES} leaves goes to the worker`)
  const hashes = all.map(leafHash)
  t.equal(await s.size(), all.length)
  t.equal(hex(await s.rootHash()), hex(rootFromLeafHashes(hashes)), 'one tree, whichever connection wrote each batch')
  const n = all.length
  const problems: string[] = []
  for (let i = 0; i < n; i++) {
    try {
      verifyInclusion(i, n, hashes[i] as Uint8Array, await s.inclusionProof(i, n), await s.rootHash())
    } catch {
      problems.push(`inclusion ${i}`)
    }
  }
  t.same(problems, [], 'every stored node is right')
  const db = new Database(path, { readonly: true })
  const rows = db.prepare('SELECT leaf, digest FROM evidence_jws ORDER BY leaf').all() as { leaf: number; digest: string }[]
  db.close()
  t.same(rows, all.map((_, i) => ({ leaf: i, digest: digestOf(i) })), 'every evidence row names its own leaf')
  await s.close()
  const again = await openStore(t, path, { writer: 'auto' })
  t.equal(hex(await again.rootHash()), hex(rootFromLeafHashes(hashes)), 'reopened: same root')
  await pause()
  await again.append(leafOf(n))
  t.equal(again.stats.inline, 1)
  t.equal(hex(await again.rootHash()), hex(rootFromLeafHashes([...hashes, leafHash(leafOf(n))])))
})

t.test('auto writer: a failed inline commit fails the store closed and writes nothing', async (t) => {
  const path = tempDb(t)
  const s = await SqliteLogStore.open(path, { writer: 'auto' })
  await s.appendMany([leafOf(0), leafOf(1)])
  t.equal(s.stats.inline, 1, 'the first append after opening is lone')
  const inline = (s as unknown as { writer: { inline: { commitNow: (...a: unknown[]) => unknown } } }).writer.inline
  let calls = 0
  const commitNow = inline.commitNow.bind(inline)
  inline.commitNow = (...a: unknown[]) => (calls++, commitNow(...a))
  await pause()
  s.failNextCommit()
  await t.rejects(s.append(leafOf(2)), { code: 'VN_ERR_LOG_UNAVAILABLE' })
  t.equal(calls, 1, 'the failed commit ran inline')
  t.equal(s.stats.inline, 1, 'and was not counted')
  t.equal(s.writable, false)
  await t.rejects(s.append(leafOf(3)), { code: 'VN_ERR_LOG_UNAVAILABLE' }, 'refuses further appends')
  t.equal(await s.size(), 2)
  await s.close()
  const again = await openStore(t, path)
  t.equal(await again.size(), 2, 'the failed batch left no leaf')
  t.equal(hex(await again.rootHash()), hex(rootFromLeafHashes([leafOf(0), leafOf(1)].map(leafHash))))
})

t.test('two LogWriters on one file take turns and read back what the other committed', async (t) => {
  const path = tempDb(t)
  const a = new LogWriter(path)
  const b = new LogWriter(path, undefined, { checkGaps: false })
  t.teardown(() => {
    a.close()
    b.close()
  })
  const leaves: Uint8Array[] = []
  const batch = (n: number): Parameters<LogWriter['commit']>[0] => {
    const ls = Array.from({ length: n }, (_, k) => leafOf(leaves.length + k))
    leaves.push(...ls)
    const data = new Uint8Array(ls.reduce((x, l) => x + l.length, 0))
    let off = 0
    for (const l of ls) {
      data.set(l, off)
      off += l.length
    }
    return { leafData: data, leafLengths: ls.map((l) => l.length), evidence: [], checkpoints: [] }
  }
  const order = [a, a, b, a, b, b, b, a, b, a, a, a, b]
  order.forEach((w, i) => {
    const r = w.commit(batch(1 + (i % 5)))
    t.equal(r.size, leaves.length, `commit ${i}: size`)
    t.equal(hex(r.root), hex(rootFromLeafHashes(leaves.map(leafHash))), `commit ${i}: root`)
  })
})

t.test('proofs served by the store verify, at every size, against historical roots', async (t) => {
  const s = await openStore(t, tempDb(t), { maxBatch: 1000 })
  const leaves = Array.from({ length: 70 }, (_, i) => leafOf(i))
  await s.appendMany(leaves)
  const hashes = leaves.map(leafHash)
  const problems: string[] = []
  for (let n = 1; n <= 70; n++) {
    const root = await s.rootHash(n)
    if (hex(root) !== hex(rootFromLeafHashes(hashes.slice(0, n)))) problems.push(`root ${n}`)
    for (const i of [0, n >> 1, n - 1]) {
      try {
        verifyInclusion(i, n, hashes[i] as Uint8Array, await s.inclusionProof(i, n), root)
      } catch {
        problems.push(`inclusion ${i}/${n}`)
      }
    }
    for (const m of [1, n >> 1 || 1, n]) {
      try {
        verifyConsistency(m, n, await s.consistencyProof(m, n), await s.rootHash(m), root)
      } catch {
        problems.push(`consistency ${m}->${n}`)
      }
    }
  }
  t.same(problems, [])
  // A proof for a different leaf does not verify (tamper check through the store path).
  const p = await s.inclusionProof(3, 70)
  const root = await s.rootHash(70)
  t.doesNotThrow(() => verifyInclusion(3, 70, hashes[3] as Uint8Array, p, root))
  t.throws(() => verifyInclusion(3, 70, hashes[4] as Uint8Array, p, root), { code: 'VN_ERR_LOG_PROOF_INVALID' })
})

t.test('restart recovers size and root exactly, and appending continues the same tree', async (t) => {
  const path = tempDb(t)
  const a = await SqliteLogStore.open(path, { writer: 'inline' })
  const leaves = Array.from({ length: 37 }, (_, i) => leafOf(i))
  await Promise.all(leaves.map((l) => a.append(l)))
  const root = await a.rootHash()
  await a.close()
  const b = await openStore(t, path)
  t.equal(await b.size(), 37)
  t.equal(hex(await b.rootHash()), hex(root))
  await b.appendMany([leafOf(37), leafOf(38)])
  t.equal(hex(await b.rootHash()), hex(rootFromLeafHashes([...leaves, leafOf(37), leafOf(38)].map(leafHash))))
  t.equal(hex(await b.rootHash(37)), hex(root))
})

for (const writer of ['auto', 'worker', 'inline'] as const) {
  t.test(`${writer} writer: a failed commit fails closed, writes nothing, and reopening recovers`, async (t) => {
    const path = tempDb(t)
    const s = await SqliteLogStore.open(path, { writer })
    await s.appendMany([leafOf(0), leafOf(1), leafOf(2)])
    const root = await s.rootHash()
    s.failNextCommit()
    const doomed = Array.from({ length: 20 }, (_, i) => s.append(leafOf(100 + i)))
    const results = await Promise.allSettled(doomed)
    t.ok(results.every((r) => r.status === 'rejected' && (r.reason as { code?: string }).code === 'VN_ERR_LOG_UNAVAILABLE'), 'every pending append rejects')
    t.equal(s.writable, false)
    await t.rejects(s.append(leafOf(200)), { code: 'VN_ERR_LOG_UNAVAILABLE' }, 'refuses further appends')
    await t.rejects(s.appendMany([leafOf(201)], [{ kind: 'jws', record: 0, digest: digestOf(201), jws: jwsOf(201) }]), { code: 'VN_ERR_LOG_UNAVAILABLE' })
    t.equal(await s.size(), 3, 'reads still work and see only durable data')
    await s.close()
    const db = new Database(path, { readonly: true })
    t.equal(db.prepare('SELECT COUNT(*) FROM leaves').pluck().get(), 3, 'no leaf of the failed batch was written')
    t.equal(db.prepare('SELECT COUNT(*) FROM nodes').pluck().get(), 1, 'no node of the failed batch was written (only node 1:0)')
    db.close()
    const again = await openStore(t, path) // inline: recovery does not depend on the writer mode
    t.equal(await again.size(), 3)
    t.equal(hex(await again.rootHash()), hex(root))
    t.equal((await again.append(leafOf(3))).index, 3)
  })
}

t.test('bad inputs are rejected with their codes and write nothing', async (t) => {
  const s = await openStore(t, tempDb(t), { maxLeafBytes: 100, maxBatch: 4 })
  await s.append(leafOf(0))
  await t.rejects(s.append('text' as unknown as Uint8Array), { code: 'VN_ERR_LOG_ENTRY_INVALID' })
  await t.rejects(s.append(new Uint8Array(101)), { code: 'VN_ERR_LOG_ENTRY_INVALID' })
  await t.rejects(s.appendMany([leafOf(1), leafOf(2), leafOf(3), leafOf(4), leafOf(5)]), { code: 'VN_ERR_LOG_ENTRY_INVALID' })
  await t.rejects(s.appendMany('x' as unknown as Uint8Array[]), { code: 'VN_ERR_LOG_ENTRY_INVALID' })
  await t.rejects(s.appendMany([leafOf(1)], [{ kind: 'jws', record: 0, digest: 'x', jws: 'y' }]), { code: 'VN_ERR_EVIDENCE_INVALID' })
  await t.rejects(s.appendMany([leafOf(1)], [{ kind: 'disclosures', record: 0, xid: 'x', disclosures: ['d'], expiresAt: 1 }]), { code: 'VN_ERR_EVIDENCE_INVALID' }, 'disclosures need the evidence key')
  await t.rejects(s.appendMany([leafOf(1)], [{ kind: 'other', record: 0 } as unknown as EvidenceRow]), { code: 'VN_ERR_EVIDENCE_INVALID' })
  t.equal(await s.size(), 1, 'nothing written')
  t.equal(s.writable, true, 'bad input does not fail the store')
  await t.rejects(s.leaf(1), { code: 'VN_ERR_LOG_PROOF' })
  await t.rejects(s.leaf(-1), { code: 'VN_ERR_LOG_PROOF' })
  await t.rejects(s.entries(0, 2), { code: 'VN_ERR_LOG_PROOF' })
  await t.rejects(s.entries(1, 0), { code: 'VN_ERR_LOG_PROOF' })
  await t.rejects(s.rootHash(2), { code: 'VN_ERR_LOG_PROOF' })
  await t.rejects(s.inclusionProof(0, 2), { code: 'VN_ERR_LOG_PROOF' })
  await t.rejects(s.inclusionProof(1, 1), { code: 'VN_ERR_LOG_PROOF' })
  await t.rejects(s.consistencyProof(1, 2), { code: 'VN_ERR_LOG_PROOF' })
  await t.rejects(s.consistencyProof(0, 1), { code: 'VN_ERR_LOG_PROOF' })
  await t.rejects(s.checkpointAt(-1), { code: 'VN_ERR_LOG_PROOF' })
  t.equal(MAX_ENTRIES_PER_READ, 1024)
  await t.rejects(SqliteLogStore.open(join(tmpdir(), 'no-such-dir-vn', 'x', 'log.db'), { writer: 'inline' }), { code: 'VN_ERR_LOG_UNAVAILABLE' })
  await t.rejects(SqliteLogStore.open(tempDb(t), { maxBatch: 0 }), { code: 'VN_ERR_CONFIG_INVALID' })
})

t.test('entries are capped per read', async (t) => {
  const s = await openStore(t, tempDb(t), { maxBatch: 2000 })
  await s.appendMany(Array.from({ length: MAX_ENTRIES_PER_READ + 1 }, (_, i) => leafOf(i)))
  t.equal((await s.entries(0, MAX_ENTRIES_PER_READ)).length, MAX_ENTRIES_PER_READ)
  await t.rejects(s.entries(0, MAX_ENTRIES_PER_READ + 1), { code: 'VN_ERR_LOG_PROOF' })
})

t.test('checkpoints: saved, listed, and refused when they contradict the log', async (t) => {
  const path = tempDb(t)
  const s = await openStore(t, path)
  const { privateKey } = generateKeyPairSync('ed25519')
  const signer = noteSigner('test.example/log', privateKey)
  t.equal(await s.latestCheckpoint(), undefined)
  await s.appendMany([leafOf(0), leafOf(1), leafOf(2)])
  const n2 = signCheckpoint({ origin: 'test.example/log', size: 2, rootHash: await s.rootHash(2) }, signer)
  const n3 = signCheckpoint({ origin: 'test.example/log', size: 3, rootHash: await s.rootHash(3) }, signer)
  await s.saveCheckpoint(3, n3)
  await s.saveCheckpoint(2, n2)
  t.same(await s.latestCheckpoint(), { size: 3, note: n3 })
  t.equal(await s.checkpointAt(2), n2)
  t.equal(await s.checkpointAt(1), undefined)
  const wrongRoot = signCheckpoint({ origin: 'test.example/log', size: 2, rootHash: await s.rootHash(3) }, signer)
  await t.rejects(s.saveCheckpoint(2, wrongRoot), { code: 'VN_ERR_LOG_NOTE_MALFORMED' })
  await t.rejects(s.saveCheckpoint(3, n2), { code: 'VN_ERR_LOG_NOTE_MALFORMED' })
  await t.rejects(s.saveCheckpoint(4, n3), { code: 'VN_ERR_LOG_PROOF' })
  await t.rejects(s.saveCheckpoint(3, 'garbage'), { code: 'VN_ERR_LOG_NOTE_MALFORMED' })
  t.equal(await s.checkpointAt(2), n2, 'rejected checkpoints were not stored')
})
