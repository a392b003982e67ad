/**
 * The conformance suite every storage backend must pass (src/log/storage.ts): the log (append and
 * read order, indices, proofs, checkpoints, fail closed), the evidence kept with its records
 * (round trip, offsets, expiry and purge, refusals that write nothing), index reservations and
 * abandoned slots through the node's write path (`StoreNodeLog` over the store), the replay memory
 * and the quota counts, the consistent snapshot `log export` reads, and, for a backend that keeps
 * its data, a reopen.
 *
 * Run it from a test file per backend: `runStoreConformance(t, factory)`
 * (sqlite-store-conformance.test.ts, memory-store-conformance.test.ts). It is a module, not a test
 * file: it runs nothing by itself.
 */
import type { Test } from 'tap'
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import type { LogReader, LogSnapshot, NodeStores, ReplayEntry } from '../../src/log/storage.js'
import { MAX_ENTRIES_PER_READ } from '../../src/log/storage.js'
import { receivedDigest, type EvidenceRow } from '../../src/log/evidence.js'
import { StoreNodeLog, parseLeaf } from '../../src/log/node-log.js'
import type { LogRecord } from '../../src/log/records.js'
import { leafHash, rootFromLeafHashes, verifyConsistency, verifyInclusion } from '../../src/log/merkle.js'
import { noteSigner, signCheckpoint } from '../../src/log/checkpoint.js'
import { jwsDigest } from '../../src/protocol/jws-digest.js'
import { decryptDisclosures } from '../../src/log/sealing.js'

/** One backend's stores as the suite drives them. */
export interface StoresUnderTest {
  readonly stores: NodeStores
  /** The next write fails (as a failed commit would); the store must then fail closed. */
  failNextCommit?(): void
  /** Closes and opens the same data again (undefined: the backend keeps nothing). */
  reopen?(): Promise<StoresUnderTest>
  /** A read-only reader over the same data, as another process would open it (`log export`). */
  reader(): Promise<LogReader>
}

export interface StoreFactory {
  /** Fresh, empty stores; the suite closes them. */
  open(opts: { evidenceKey?: Uint8Array; replayMaxEntries?: number }): Promise<StoresUnderTest>
  /** what `reopen` keeps besides log and evidence (the SQLite backend rebuilds these from the log) */
  reopenKeeps?: { replay: boolean; quotas: boolean }
}

const enc = new TextEncoder()
const leafOf = (i: number): Uint8Array => enc.encode(JSON.stringify({ n: i, t: 'conformance' }))
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const jwsOf = (i: number): string => `eyJhbGciOiJFZERTQSJ9.${Buffer.from(`{"n":${i}}`).toString('base64url')}.c2ln`
const jwsRow = (record: number, i: number): EvidenceRow => ({ kind: 'jws', record, digest: jwsDigest(jwsOf(i)), jws: jwsOf(i) })
const DISCLOSURES = ['WyJzYWx0IiwiaWQiLCIxMTAxMDUxOTQ5MTIzMTAwMlgiXQ', 'WyJzYWx0LTIiLCJuYW1lIiwiWmhhbmcgU2FuIl0']
const discRow = (record: number, xid: string, expiresAt: number): EvidenceRow => ({ kind: 'disclosures', record, xid, disclosures: DISCLOSURES, expiresAt })
/** What a peer might send instead of its signed answer: anything, personal data included. */
const RECEIVED = new Uint8Array(Buffer.from('<html>11010519491231002X Zhang San</html>\x00\xff', 'latin1'))
const recvRow = (record: number, xid: string, expiresAt: number, bytes: Uint8Array = RECEIVED): EvidenceRow => ({ kind: 'received', record, xid, digest: receivedDigest(bytes), bytes, expiresAt })
const rec = (n: number): LogRecord => ({ v: 1, at: n, t: 'disclosure-export', reasonDigest: jwsDigest(`r${n}`), count: n })
const entry = (reqDigest: string, expiresAt: number): ReplayEntry => ({ reqDigest, expiresAt })
const answered = (reqDigest: string, index: number, expiresAt: number): ReplayEntry & { index: number } => ({ reqDigest, index, expiresAt })

export function runStoreConformance(t: Test, factory: StoreFactory): void {
  const KEY = new Uint8Array(randomBytes(32))
  const open = async (t: Test, opts: { evidenceKey?: Uint8Array; replayMaxEntries?: number } = { evidenceKey: KEY }): Promise<StoresUnderTest> => {
    const s = await factory.open(opts)
    t.teardown(() => s.stores.close())
    return s
  }

  t.test('log: appends land contiguously in call order and read back byte for byte', async (t) => {
    const { stores: { log } } = await open(t)
    t.equal(await log.size(), 0)
    t.equal(hex(await log.rootHash()), hex(rootFromLeafHashes([])), 'empty tree root')
    const first = await log.append(leafOf(0))
    t.same([first.index, hex(first.leafHash)], [0, hex(leafHash(leafOf(0)))])
    // concurrent calls: indices follow the order of the calls, whatever their sizes
    const calls = [log.appendMany([leafOf(1), leafOf(2)]), log.append(leafOf(3)), log.appendMany([leafOf(4), leafOf(5), leafOf(6)]), log.append(leafOf(7))]
    const [a, b, c, d] = await Promise.all(calls)
    t.same([a, [b], c, [d]].map((r) => (r as { index: number }[]).map((x) => x.index)), [[1, 2], [3], [4, 5, 6], [7]])
    t.same(await log.appendMany([]), [], 'an empty append writes nothing')
    const all = Array.from({ length: 8 }, (_, i) => leafOf(i))
    t.equal(await log.size(), 8)
    t.same((await log.entries(0, 8)).map(hex), all.map(hex))
    t.same(hex(await log.leaf(5)), hex(leafOf(5)))
    t.same(await log.entries(3, 3), [])
    t.equal(hex(await log.rootHash()), hex(rootFromLeafHashes(all.map(leafHash))))
    t.equal(hex(await log.rootHash(5)), hex(rootFromLeafHashes(all.slice(0, 5).map(leafHash))), 'historical root')
    // a caller's buffer changing later does not change the log
    const mine = leafOf(8)
    await log.append(mine)
    mine[0] = 0
    t.equal(hex(await log.leaf(8)), hex(leafOf(8)))
  })

  t.test('log: reads beyond the log and bad inputs are refused with their codes', async (t) => {
    const { stores: { log } } = await open(t)
    await log.appendMany([leafOf(0), leafOf(1)])
    await t.rejects(log.append('text' as unknown as Uint8Array), { code: 'VN_ERR_LOG_ENTRY_INVALID' })
    await t.rejects(log.appendMany('x' as unknown as Uint8Array[]), { code: 'VN_ERR_LOG_ENTRY_INVALID' })
    await t.rejects(log.appendMany([leafOf(2), 7 as unknown as Uint8Array]), { code: 'VN_ERR_LOG_ENTRY_INVALID' })
    t.equal(await log.size(), 2, 'nothing written')
    t.ok(log.writable, 'bad input does not fail the store')
    await t.rejects(log.leaf(2), { code: 'VN_ERR_LOG_PROOF' })
    await t.rejects(log.leaf(-1), { code: 'VN_ERR_LOG_PROOF' })
    await t.rejects(log.entries(0, 3), { code: 'VN_ERR_LOG_PROOF' })
    await t.rejects(log.entries(2, 1), { code: 'VN_ERR_LOG_PROOF' })
    await t.rejects(log.rootHash(3), { code: 'VN_ERR_LOG_PROOF' })
    await t.rejects(log.inclusionProof(0, 3), { code: 'VN_ERR_LOG_PROOF' })
    await t.rejects(log.inclusionProof(2, 2), { code: 'VN_ERR_LOG_PROOF' })
    await t.rejects(log.consistencyProof(1, 3), { code: 'VN_ERR_LOG_PROOF' })
    await t.rejects(log.checkpointAt(-1), { code: 'VN_ERR_LOG_PROOF' })
  })

  t.test('log: entries are capped per read', async (t) => {
    const { stores: { log } } = await open(t)
    for (let i = 0; i <= MAX_ENTRIES_PER_READ; i += 256) await log.appendMany(Array.from({ length: Math.min(256, MAX_ENTRIES_PER_READ + 1 - i) }, (_, k) => leafOf(i + k)))
    t.equal(await log.size(), MAX_ENTRIES_PER_READ + 1)
    t.equal((await log.entries(0, MAX_ENTRIES_PER_READ)).length, MAX_ENTRIES_PER_READ)
    await t.rejects(log.entries(0, MAX_ENTRIES_PER_READ + 1), { code: 'VN_ERR_LOG_PROOF' })
  })

  t.test('log: inclusion and consistency proofs verify against the roots, at every size', async (t) => {
    const { stores: { log } } = await open(t)
    const leaves = Array.from({ length: 21 }, (_, i) => leafOf(i))
    await log.appendMany(leaves.slice(0, 13))
    await log.appendMany(leaves.slice(13))
    const hashes = leaves.map(leafHash)
    const bad: string[] = []
    for (let size = 1; size <= leaves.length; size++) {
      const root = await log.rootHash(size)
      if (hex(root) !== hex(rootFromLeafHashes(hashes.slice(0, size)))) bad.push(`root ${size}`)
      for (let i = 0; i < size; i++) {
        try {
          verifyInclusion(i, size, hashes[i] as Uint8Array, await log.inclusionProof(i, size), root)
        } catch {
          bad.push(`inclusion ${i}/${size}`)
        }
      }
      for (let first = 1; first < size; first++) {
        try {
          verifyConsistency(first, size, await log.consistencyProof(first, size), await log.rootHash(first), root)
        } catch {
          bad.push(`consistency ${first}/${size}`)
        }
      }
    }
    t.same(bad, [], 'every proof verifies')
    // and a proof does not verify another leaf (the check above can fail)
    t.throws(() => verifyInclusion(3, 21, hashes[4] as Uint8Array, [new Uint8Array(32)], new Uint8Array(32)))
  })

  t.test('log: checkpoints are saved, replaced, listed, and refused when they contradict the log', async (t) => {
    const { stores: { log } } = await open(t)
    const { privateKey } = generateKeyPairSync('ed25519')
    const signer = noteSigner('conformance.example/log', privateKey)
    const note = async (size: number, rootSize = size): Promise<string> => signCheckpoint({ origin: 'conformance.example/log', size, rootHash: await log.rootHash(rootSize) }, signer)
    t.equal(await log.latestCheckpoint(), undefined)
    await log.appendMany([leafOf(0), leafOf(1), leafOf(2)])
    const n2 = await note(2)
    const n3 = await note(3)
    await log.saveCheckpoint(3, n3)
    await log.saveCheckpoint(2, n2)
    t.same(await log.latestCheckpoint(), { size: 3, note: n3 }, 'latest is the largest size, not the last saved')
    t.equal(await log.checkpointAt(2), n2)
    t.equal(await log.checkpointAt(1), undefined)
    const cosigned = `${n3}\u2014 witness.example ${randomBytes(68).toString('base64')}\n` // key id and signature
    await log.saveCheckpoint(3, cosigned)
    t.equal(await log.checkpointAt(3), cosigned, 'a note of the same size replaces the earlier one (cosignatures)')
    await t.rejects(log.saveCheckpoint(2, await note(2, 3)), { code: 'VN_ERR_LOG_NOTE_MALFORMED' }, 'wrong root')
    await t.rejects(log.saveCheckpoint(3, n2), { code: 'VN_ERR_LOG_NOTE_MALFORMED' }, 'wrong size')
    await t.rejects(log.saveCheckpoint(4, n3), { code: 'VN_ERR_LOG_PROOF' }, 'beyond the log')
    await t.rejects(log.saveCheckpoint(3, 'garbage'), { code: 'VN_ERR_LOG_NOTE_MALFORMED' })
    t.equal(await log.checkpointAt(2), n2, 'refused checkpoints were not stored')
  })

  t.test('evidence: kept under the index of its record, across appends that share a commit', async (t) => {
    const { stores: { log, evidence } } = await open(t)
    const later = Date.now() + 60_000
    const [a, b, c] = await Promise.all([
      log.appendMany([leafOf(0), leafOf(1)], [jwsRow(1, 1)]),
      log.appendMany([leafOf(2)], [jwsRow(0, 2), discRow(0, 'xid-2', later)]),
      log.appendMany([leafOf(3), leafOf(4), leafOf(5)], [discRow(2, 'xid-5', later), jwsRow(0, 3)]),
    ])
    t.same([a, b, c].map((r) => r.map((x) => x.index)), [[0, 1], [2], [3, 4, 5]])
    t.same(await evidence.getJws(1), { digest: jwsDigest(jwsOf(1)), jws: jwsOf(1) })
    t.same(await evidence.getJws(2), { digest: jwsDigest(jwsOf(2)), jws: jwsOf(2) })
    t.same(await evidence.getJws(3), { digest: jwsDigest(jwsOf(3)), jws: jwsOf(3) })
    for (const i of [0, 4, 5, 6, 99]) t.equal(await evidence.getJws(i), undefined, `no JWS at ${i}`)
    t.same(await evidence.getDisclosures(2), { xid: 'xid-2', disclosures: DISCLOSURES })
    t.same(await evidence.getDisclosures(5), { xid: 'xid-5', disclosures: DISCLOSURES })
    t.equal(await evidence.getDisclosures(3), undefined)
    await t.rejects(evidence.getJws(-1), { code: 'VN_ERR_EVIDENCE_INVALID' })
    await t.rejects(evidence.getDisclosures(1.5), { code: 'VN_ERR_EVIDENCE_INVALID' })
  })

  t.test('evidence: disclosures expire and are purged; JWS are kept', async (t) => {
    const { stores: { log, evidence } } = await open(t)
    const now = 1_800_000_000_000
    await log.appendMany([leafOf(0), leafOf(1), leafOf(2)], [discRow(0, 'xid-a', now + 1000), discRow(1, 'xid-b', now - 1), discRow(2, 'xid-c', now), jwsRow(1, 1)])
    t.same(await evidence.getDisclosures(0, now), { xid: 'xid-a', disclosures: DISCLOSURES })
    t.equal(await evidence.getDisclosures(1, now), undefined, 'expired before now')
    t.equal(await evidence.getDisclosures(2, now), undefined, 'expiring at now counts as expired')
    t.same(await evidence.getDisclosures(1, now - 2), { xid: 'xid-b', disclosures: DISCLOSURES }, 'still there until purged')
    t.equal(await evidence.purgeExpired(now), 2)
    t.equal(await evidence.getDisclosures(1, now - 2), undefined, 'purged')
    t.equal(await evidence.purgeExpired(now), 0)
    t.equal(await evidence.purgeExpired(now + 1000), 1)
    t.equal(await evidence.getDisclosures(0, now), undefined)
    t.equal((await evidence.getJws(1))?.jws, jwsOf(1), 'JWS evidence is never purged')
    await t.rejects(evidence.purgeExpired(Number.NaN), { code: 'VN_ERR_EVIDENCE_INVALID' })
    t.equal(await log.size(), 3, 'purging touches no leaf')
  })

  t.test('evidence: the bytes of a refused answer are kept sealed under their record, opened byte for byte, and purged when they expire', async (t) => {
    const { stores: { log, evidence } } = await open(t)
    const now = 1_800_000_000_000
    const empty = new Uint8Array(0)
    await log.appendMany([leafOf(0), leafOf(1)], [recvRow(0, 'xid-r', now + 1000), jwsRow(0, 0), recvRow(1, 'xid-e', now - 1, empty)])
    t.same(await evidence.getReceived(0, now), { xid: 'xid-r', digest: receivedDigest(RECEIVED), bytes: RECEIVED })
    t.same(await evidence.getReceived(1, now - 2), { xid: 'xid-e', digest: receivedDigest(empty), bytes: empty }, 'an empty body too')
    t.equal(await evidence.getReceived(1, now), undefined, 'expired')
    t.equal((await evidence.getJws(0))?.jws, jwsOf(0), 'beside a JWS of the same record')
    t.equal(await evidence.getDisclosures(0, now), undefined, 'not readable as disclosures')
    t.equal(await evidence.purgeExpired(now), 1)
    t.equal(await evidence.purgeExpired(now + 1000), 1)
    t.equal(await evidence.getReceived(0, now), undefined, 'purged')
    await t.rejects(log.appendMany([leafOf(2)], [{ ...(recvRow(0, 'x', now + 1000) as Extract<EvidenceRow, { kind: 'received' }>), digest: receivedDigest(empty) }]), { code: 'VN_ERR_EVIDENCE_INVALID' }, 'a digest of other bytes')
    await t.rejects(log.appendMany([leafOf(2)], [recvRow(0, 'x', now), recvRow(0, 'y', now)]), { code: 'VN_ERR_EVIDENCE_INVALID' }, 'two rows for one record')
    await t.rejects(log.appendMany([leafOf(2)], [{ kind: 'received', record: 0, xid: 'x', digest: receivedDigest(empty), bytes: 'text' as unknown as Uint8Array, expiresAt: now }]), { code: 'VN_ERR_EVIDENCE_INVALID' }, 'bytes that are not bytes')
    t.equal(await log.size(), 2, 'nothing written by the refused rows')
    const keyless = await open(t, {})
    await t.rejects(keyless.stores.log.appendMany([leafOf(0)], [recvRow(0, 'xid', now)]), { code: 'VN_ERR_EVIDENCE_INVALID' }, 'sealing needs the evidence key')
  })

  t.test('evidence: a bad row is refused, writes nothing (not even its leaves) and does not fail the store', async (t) => {
    const { stores: { log, evidence } } = await open(t)
    const later = Date.now() + 60_000
    const refused: [readonly Uint8Array[], EvidenceRow[], string][] = [
      [[], [jwsRow(0, 0)], 'no record to belong to'],
      [[leafOf(0)], [jwsRow(1, 0)], 'beyond the call'],
      [[leafOf(0)], [jwsRow(0, 0), jwsRow(0, 1)], 'two JWS for one record'],
      [[leafOf(0)], [discRow(0, 'x', later), discRow(0, 'y', later)], 'two disclosure rows for one record'],
      [[leafOf(0)], [{ kind: 'jws', record: 0, digest: jwsDigest(jwsOf(1)), jws: jwsOf(0) }], 'digest of another JWS'],
      [[leafOf(0)], [{ kind: 'jws', record: 0, digest: jwsDigest('x'), jws: 'x' }], 'not a compact JWS'],
      [[leafOf(0)], [discRow(0, 'has space', later)], 'bad xid'],
      [[leafOf(0)], [discRow(0, 'x', -5)], 'bad expiry'],
      [[leafOf(0)], [{ kind: 'nope', record: 0 } as unknown as EvidenceRow], 'unknown kind'],
    ]
    for (const [leaves, rows, what] of refused) await t.rejects(log.appendMany(leaves, rows), { code: 'VN_ERR_EVIDENCE_INVALID' }, what)
    t.equal(await log.size(), 0, 'nothing written')
    t.equal(await evidence.getJws(0), undefined)
    t.ok(log.writable)
    t.same((await log.appendMany([leafOf(0)], [jwsRow(0, 0), discRow(0, 'ok', later)])).map((r) => r.index), [0], 'the store still writes')
  })

  t.test('evidence: disclosures need a store opened with the evidence key', async (t) => {
    const { stores: { log, evidence } } = await open(t, {})
    await t.rejects(log.appendMany([leafOf(0)], [discRow(0, 'xid', Date.now() + 60_000)]), { code: 'VN_ERR_EVIDENCE_INVALID' })
    t.ok(log.writable)
    await log.appendMany([leafOf(0)], [jwsRow(0, 0)])
    t.equal((await evidence.getJws(0))?.jws, jwsOf(0), 'JWS evidence needs no key')
    t.equal(await log.size(), 1)
    await t.rejects(factory.open({ evidenceKey: new Uint8Array(16) }), { code: 'VN_ERR_CONFIG_INVALID' }, 'a key of the wrong length is refused')
  })

  t.test('fail closed: a failed write refuses every later write; reads of committed data keep working', async (t) => {
    const s = await open(t)
    if (s.failNextCommit === undefined) return t.pass('skipped: this backend has no failure hook')
    const { log, evidence } = s.stores
    await log.appendMany([leafOf(0), leafOf(1)], [jwsRow(1, 1)])
    const root = await log.rootHash()
    s.failNextCommit()
    await t.rejects(log.appendMany([leafOf(2)], [jwsRow(0, 2)]), { code: 'VN_ERR_LOG_UNAVAILABLE' })
    t.equal(log.writable, false)
    await t.rejects(log.append(leafOf(3)), { code: 'VN_ERR_LOG_UNAVAILABLE' }, 'refuses further appends')
    t.equal(await log.size(), 2, 'the failed write left nothing')
    t.equal(hex(await log.rootHash()), hex(root))
    t.equal(await evidence.getJws(2), undefined)
    t.equal((await evidence.getJws(1))?.jws, jwsOf(1), 'committed evidence still reads')
  })

  t.test('reopen: a trial write, then the caller\'s check of the stored tree, then writes continue the same tree', async (t) => {
    const s = await open(t)
    if (s.failNextCommit === undefined) return t.pass('skipped: this backend has no failure hook')
    const { log, evidence } = s.stores
    const noCheck = async (): Promise<void> => { t.fail('a writable store runs no check') }
    await log.reopen(noCheck)
    await log.appendMany([leafOf(0), leafOf(1)], [jwsRow(1, 1)])
    const root = await log.rootHash()
    s.failNextCommit()
    await t.rejects(log.append(leafOf(2)), { code: 'VN_ERR_LOG_UNAVAILABLE' })
    t.equal(log.writable, false)

    // The trial write fails (the medium still refuses): still closed, nothing checked.
    s.failNextCommit()
    await t.rejects(log.reopen(noCheck), { code: 'VN_ERR_LOG_UNAVAILABLE' })
    t.equal(log.writable, false)
    // The check of the stored tree refuses: still closed, with the check's error.
    const seen: { size: number; root: string; at1: string }[] = []
    await t.rejects(log.reopen(async (stored) => {
      seen.push({ size: stored.size, root: hex(await stored.rootHash(stored.size)), at1: hex(await stored.rootHash(1)) })
      throw new Error('tree differs')
    }), /tree differs/)
    t.same(seen, [{ size: 2, root: hex(root), at1: hex(rootFromLeafHashes([leafHash(leafOf(0))])) }], 'the check saw the stored tree')
    t.equal(log.writable, false)
    await t.rejects(log.append(leafOf(2)), { code: 'VN_ERR_LOG_UNAVAILABLE' })

    // The check passes: writable again, appends continue at the next index of the same tree.
    await log.reopen(async (stored) => {
      await t.rejects(stored.rootHash(3), { code: 'VN_ERR_LOG_PROOF' }, 'nothing beyond the stored tree')
    })
    t.equal(log.writable, true)
    t.same((await log.appendMany([leafOf(2)], [jwsRow(0, 2)])).map((r) => r.index), [2])
    t.equal(hex(await log.rootHash()), hex(rootFromLeafHashes([0, 1, 2].map((i) => leafHash(leafOf(i))))))
    t.equal((await evidence.getJws(2))?.jws, jwsOf(2))

    // The node write path starts again at the store's size; slots of before stay void.
    const nodeLog = await StoreNodeLog.open(log)
    const failing = nodeLog.reserve(1)
    const stale = nodeLog.reserve(1)
    s.failNextCommit()
    await t.rejects(failing.append([rec(3)]), { code: 'VN_ERR_LOG_UNAVAILABLE' })
    t.ok(nodeLog.failure, 'the write path reports its failure')
    await t.rejects(nodeLog.resume(), { code: 'VN_ERR_LOG_UNAVAILABLE' }, 'no resuming while the store refuses writes')
    await log.reopen(async () => undefined)
    await nodeLog.resume()
    t.equal(nodeLog.failure, undefined)
    await t.rejects(stale.append([rec(3)]), { code: 'VN_ERR_LOG_UNAVAILABLE' }, 'a slot reserved before the failure is void')
    stale.abandon(new Error('late'))
    t.same(await nodeLog.append([rec(4)]), [3], 'the write path continues at the store\'s size')
    t.equal(await log.size(), 4)

    await s.stores.close()
    await t.rejects(log.reopen(async () => undefined), { code: 'VN_ERR_LOG_UNAVAILABLE' }, 'a closed store never reopens')
  })

  t.test('close: a closed store refuses writes', async (t) => {
    const { stores } = await open(t)
    await stores.log.append(leafOf(0))
    await stores.close()
    t.equal(stores.log.writable, false)
    await t.rejects(stores.log.append(leafOf(1)), { code: 'VN_ERR_LOG_UNAVAILABLE' })
  })

  t.test('the node write path: reserved slots commit in index order; an abandoned slot fails the log closed', async (t) => {
    const { stores: { log, evidence } } = await open(t)
    const nodeLog = await StoreNodeLog.open(log)
    const a = nodeLog.reserve(2)
    const b = nodeLog.reserve(1)
    const c = nodeLog.reserve(3)
    t.same([a.index, b.index, c.index], [0, 2, 3])
    const pc = c.append([rec(3), rec(4), rec(5)], [jwsRow(2, 5)])
    const pb = b.append([rec(2)])
    await new Promise((r) => setTimeout(r, 10))
    t.equal(await log.size(), 0, 'a filled slot waits for every earlier one')
    const pa = a.append([rec(0), rec(1)], [discRow(1, 'xid-1', Date.now() + 60_000)])
    t.same(await Promise.all([pa, pb, pc]), [[0, 1], [2], [3, 4, 5]])
    t.same((await log.entries(0, 6)).map((l) => parseLeaf(l).at), [0, 1, 2, 3, 4, 5], 'leaves in index order')
    t.equal((await evidence.getJws(5))?.jws, jwsOf(5), 'evidence lands with the record it names')
    t.equal((await evidence.getDisclosures(1))?.xid, 'xid-1')
    t.same(await nodeLog.append([rec(6)]), [6])
    // An abandoned slot: the slots after it are refused, nothing more is written.
    const gone = nodeLog.reserve(1)
    const after = nodeLog.reserve(1)
    const pAfter = after.append([rec(8)])
    gone.abandon(new Error('could not sign'))
    await t.rejects(pAfter, { code: 'VN_ERR_LOG_UNAVAILABLE' })
    await t.rejects(nodeLog.append([rec(9)]), { code: 'VN_ERR_LOG_UNAVAILABLE' })
    t.throws(() => nodeLog.reserve(1), { code: 'VN_ERR_LOG_UNAVAILABLE' })
    t.equal(await log.size(), 7, 'no gap and nothing after it was written')
  })

  t.test('replay memory: one claim per (iss, xid); settle names the answer; release and remember', async (t) => {
    const { stores: { replay } } = await open(t)
    const now = 1_800_000_000_000
    t.equal(await replay.claim('m1', 'x1', entry('digest-1', now + 60_000), now), undefined, 'a new (iss, xid) is claimed')
    const again = await replay.claim('m1', 'x1', entry('digest-2', now + 60_000), now)
    t.equal(again?.reqDigest, 'digest-1', 'a second claim sees the first request digest')
    t.equal(again?.index, undefined, 'and no answer yet')
    await replay.settle('m1', 'x1', 'digest-1', 41)
    t.same(await replay.claim('m1', 'x1', entry('digest-2', now + 60_000), now), answered('digest-1', 41, now + 60_000), 'once answered: the digest, the log index of the answer and the expiry, nothing else')
    await replay.settle('m1', 'x1', 'digest-1', 99)
    t.equal((await replay.claim('m1', 'x1', entry('d', now + 60_000), now))?.index, 41, 'an answer is settled once')
    t.equal(await replay.claim('m2', 'x1', entry('digest-3', now + 60_000), now), undefined, 'another issuer may use the same xid')
    t.equal(await replay.claim('m1', 'x2', entry('digest-4', now + 60_000), now), undefined)
    // concurrent claims of one new key: exactly one wins
    const racing = await Promise.all(Array.from({ length: 5 }, (_, i) => replay.claim('m3', 'x', entry(`d${i}`, now + 60_000), now)))
    t.equal(racing.filter((r) => r === undefined).length, 1, 'one of five concurrent claims wins')
    const winner = racing.find((r) => r !== undefined)?.reqDigest
    t.ok(racing.every((r) => r === undefined || r.reqDigest === winner), 'the others all see the same winner')
    // release: only an unanswered claim with that digest is forgotten
    await replay.release('m1', 'x2', 'digest-other')
    t.equal((await replay.claim('m1', 'x2', entry('z', now + 60_000), now))?.reqDigest, 'digest-4', 'releasing another digest forgets nothing')
    await replay.release('m1', 'x1', 'digest-1')
    t.equal((await replay.claim('m1', 'x1', entry('z', now + 60_000), now))?.index, 41, 'an answered exchange is never released')
    await replay.release('m1', 'x2', 'digest-4')
    t.equal(await replay.claim('m1', 'x2', entry('digest-5', now + 60_000), now), undefined, 'a released xid may be used again')
    // remember: an exchange answered before a restart
    await replay.remember('m9', 'x9', answered('digest-9', 7, now + 60_000))
    const known = await replay.claim('m9', 'x9', entry('other', now + 60_000), now)
    t.equal(known?.reqDigest, 'digest-9')
    t.equal(known?.index, 7)
    // expiry: after its expiry an entry is no longer returned
    await replay.remember('m8', 'x8', answered('digest-8', 8, now + 1000))
    t.equal((await replay.claim('m8', 'x8', entry('n', now + 70_000), now + 500))?.reqDigest, 'digest-8', 'live inside its window')
    t.equal(await replay.claim('m8', 'x8', entry('n', now + 70_000), now + 5000), undefined, 'forgotten after it')
    await replay.remember('m7', 'x7', answered('digest-7', 9, now + 600))
    t.equal(await replay.claim('m7', 'x7', entry('n', now + 70_000), now + 5700), undefined, 'an expired entry is never returned, swept or not')
    await replay.remember('m6', 'x6', answered('digest-6', 10, now + 5800))
    t.equal(await replay.claim('m6', 'x6', entry('n', now + 70_000), now + 5900), undefined, 'even within a second of the last sweep')
  })

  t.test('replay memory: bounded; full, it refuses new claims and forgets no live entry', async (t) => {
    const { stores: { replay } } = await open(t, { evidenceKey: KEY, replayMaxEntries: 3 })
    const now = 1_800_000_000_000
    t.equal(replay.capacity, 3)
    for (let i = 0; i < 3; i++) t.equal(await replay.claim('m', `x${i}`, entry(`d${i}`, now + 1000), now), undefined)
    await t.rejects(replay.claim('m', 'x3', entry('d3', now + 1000), now), { code: 'VN_ERR_EXCH_REPLAY_FULL' }, 'a fourth is refused')
    for (let i = 0; i < 3; i++) t.equal((await replay.claim('m', `x${i}`, entry('other', now + 1000), now))?.reqDigest, `d${i}`, `x${i} is still held`)
    t.equal(await replay.claim('m', 'x3', entry('d3', now + 3000), now + 1001), undefined, 'once the oldest expire, new claims are held')
    t.ok(replay.size <= 3, 'never more than the bound')
  })

  t.test('quota counts: atomic check-and-add, per agreement and day, restorable', async (t) => {
    const { stores: { quotas } } = await open(t)
    const day = '2026-12-02'
    t.equal(await quotas.used('ag-1', day), 0)
    t.match(await quotas.tryConsume('ag-1', day, 3, 5), { ok: true, used: 3, remaining: 2 })
    t.match(await quotas.tryConsume('ag-1', day, 3, 5), { ok: false, used: 3, remaining: 2 }, 'a batch that does not fit is refused whole')
    t.equal(await quotas.used('ag-1', day), 3, 'and counts nothing')
    t.match(await quotas.tryConsume('ag-1', day, 2, 5), { ok: true, used: 5, remaining: 0 })
    t.match(await quotas.tryConsume('ag-2', day, 5, 5), { ok: true }, 'agreements count apart')
    t.match(await quotas.tryConsume('ag-1', '2026-12-03', 5, 5), { ok: true }, 'days count apart')
    // concurrent consumers never overrun the limit
    const results = await Promise.all(Array.from({ length: 20 }, () => quotas.tryConsume('ag-3', day, 3, 10)))
    t.equal(results.filter((r) => r.ok).length, 3, 'three batches of 3 fit under 10')
    t.equal(await quotas.used('ag-3', day), 9)
    await t.rejects(quotas.tryConsume('ag-1', day, 0, 5), RangeError)
    await t.rejects(quotas.tryConsume('ag-1', 'yesterday', 1, 5), RangeError)
    await quotas.restore([{ agreementId: 'ag-4', day, count: 4 }, { agreementId: 'ag-4', day: '2026-12-01', count: 7 }], day)
    t.equal(await quotas.used('ag-4', day), 4, 'restored')
    t.equal(await quotas.used('ag-4', '2026-12-01'), 0, 'other days skipped with onlyDay')
    t.match(await quotas.tryConsume('ag-4', day, 2, 5), { ok: false, used: 4 }, 'restored counts bind')
  })

  t.test('snapshot: one consistent read of the committed log, unchanged by later appends, purges and checkpoints', async (t) => {
    const { stores: { log, evidence }, reader } = await open(t)
    const now = 1_800_000_000_000
    const { privateKey } = generateKeyPairSync('ed25519')
    const note = async (size: number): Promise<string> => signCheckpoint({ origin: 'conformance.example/log', size, rootHash: await log.rootHash(size) }, noteSigner('conformance.example/log', privateKey))
    const many = Array.from({ length: 2500 }, (_, i) => leafOf(i)) // more than one chunk
    for (let i = 0; i < many.length; i += 500) await log.appendMany(many.slice(i, i + 500), i === 0 ? [jwsRow(3, 3), discRow(1, 'xid-1', now + 1000), discRow(2, 'xid-2', now - 1)] : [jwsRow(0, i)])
    const cp = await note(2500)
    await log.saveCheckpoint(2500, cp)
    const r = await reader()
    t.teardown(() => r.close())
    const collect = async <T>(it: AsyncIterable<readonly T[]>): Promise<T[]> => {
      const out: T[] = []
      for await (const chunk of it) out.push(...chunk)
      return out
    }
    const read = async (s: LogSnapshot): Promise<{ size: number; leaves: string[]; jws: string[]; disc: string[]; count: number; cps: number[] }> => ({
      size: s.size,
      leaves: (await collect(s.leaves())).map(hex),
      jws: (await collect(s.jws())).map((j) => j.jws),
      disc: (await collect(s.sealedDisclosures(now))).map((d) => `${d.xid}:${JSON.stringify(decryptDisclosures(KEY, d.xid, d.nonce, d.ciphertext))}`),
      count: await s.countDisclosures(now),
      cps: (await s.checkpoints()).map((c) => c.size),
    })
    const seen = await r.snapshot(async (s) => {
      // Everything below happens after the snapshot began; none of it may show in it.
      const before = s.size
      await log.appendMany([leafOf(9000), leafOf(9001)], [jwsRow(0, 9000), discRow(1, 'xid-late', now + 1000)])
      await log.saveCheckpoint(2502, await note(2502))
      t.equal(before, 2500, 'size as of the snapshot')
      return read(s)
    })
    t.equal(seen.size, 2500)
    t.same(seen.leaves, many.map(hex), 'every leaf, in order, byte for byte, across chunks')
    t.same(seen.jws, [jwsOf(3), ...Array.from({ length: 4 }, (_, k) => jwsOf((k + 1) * 500))], 'the JWS in leaf order, none of the later ones')
    t.same(seen.disc, [`xid-1:${JSON.stringify(DISCLOSURES)}`], 'only disclosures still kept at nowMs, none of the later ones; sealed, opened with the key')
    t.equal(seen.count, 1)
    t.same(seen.cps, [2500], 'checkpoints up to the snapshot size')
    await evidence.purgeExpired(now + 5000)
    const after = await r.snapshot(read)
    t.equal(after.size, 2502, 'a new snapshot sees the later appends')
    t.same(after.cps, [2500, 2502])
    t.equal(after.count, 0, 'and the purge')
  })

  t.test('snapshot: an empty log', async (t) => {
    const { reader } = await open(t)
    const r = await reader()
    t.teardown(() => r.close())
    t.same(await r.snapshot(async (s) => {
      let chunks = 0
      for await (const _ of s.leaves()) chunks++
      return { size: s.size, chunks, cps: await s.checkpoints(), count: await s.countDisclosures(0) }
    }), { size: 0, chunks: 0, cps: [], count: 0 })
  })

  t.test('reopen: the log, its tree, checkpoints and evidence survive; appending continues the same tree', async (t) => {
    const s = await factory.open({ evidenceKey: KEY })
    if (s.reopen === undefined) {
      await s.stores.close()
      return t.pass('skipped: this backend keeps nothing across a reopen')
    }
    const { log } = s.stores
    const leaves = Array.from({ length: 11 }, (_, i) => leafOf(i))
    await log.appendMany(leaves.slice(0, 6), [jwsRow(5, 5), discRow(2, 'xid-2', Date.now() + 60_000), recvRow(3, 'xid-3', Date.now() + 60_000)])
    await log.appendMany(leaves.slice(6))
    const { privateKey } = generateKeyPairSync('ed25519')
    const cp = signCheckpoint({ origin: 'conformance.example/log', size: 11, rootHash: await log.rootHash() }, noteSigner('conformance.example/log', privateKey))
    await log.saveCheckpoint(11, cp)
    await s.stores.replay.remember('m', 'x', answered('d', 3, Date.now() + 60_000))
    await s.stores.quotas.tryConsume('ag', '2026-12-02', 2, 10)
    const root = await log.rootHash()
    const again = await s.reopen()
    t.teardown(() => again.stores.close())
    const l2 = again.stores.log
    t.equal(await l2.size(), 11)
    t.equal(hex(await l2.rootHash()), hex(root))
    t.same((await l2.entries(0, 11)).map(hex), leaves.map(hex))
    t.same(await l2.latestCheckpoint(), { size: 11, note: cp })
    t.equal((await again.stores.evidence.getJws(5))?.jws, jwsOf(5))
    t.same(await again.stores.evidence.getDisclosures(2), { xid: 'xid-2', disclosures: DISCLOSURES })
    t.same(await again.stores.evidence.getReceived(3), { xid: 'xid-3', digest: receivedDigest(RECEIVED), bytes: RECEIVED })
    t.same((await l2.appendMany([leafOf(11), leafOf(12)])).map((r) => r.index), [11, 12], 'appending continues')
    t.equal(hex(await l2.rootHash()), hex(rootFromLeafHashes([...leaves, leafOf(11), leafOf(12)].map(leafHash))))
    t.equal(hex(await l2.rootHash(11)), hex(root), 'the old root is still the root at the old size')
    const keeps = factory.reopenKeeps ?? { replay: true, quotas: true }
    const remembered = await again.stores.replay.claim('m', 'x', entry('other', Date.now() + 60_000), Date.now())
    t.equal(remembered?.reqDigest, keeps.replay ? 'd' : undefined, keeps.replay ? 'replay memory survives' : 'replay memory is rebuilt from the log by the node, not kept')
    t.equal(await again.stores.quotas.used('ag', '2026-12-02'), keeps.quotas ? 2 : 0, keeps.quotas ? 'quota counts survive' : 'quota counts are rebuilt from the log by the node, not kept')
  })
}
