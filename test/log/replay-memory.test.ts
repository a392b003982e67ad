/**
 * MemoryReplayMemory's expiry queue (src/log/memory-store.ts): expired entries are dropped from
 * the head of its own queue, not by iterating the Map (whose deleted entries V8 keeps as holes
 * that every new iterator walks: claims slowed from 4 µs to 200 µs once the window was full). A
 * key held again keeps its newer entry when its older queue slot is reached; the queue is
 * compacted so it stays near the number of live entries.
 */
import t from 'tap'
import { MemoryReplayMemory } from '../../src/log/memory-store.js'

const D = 'd'.repeat(43)
const entry = (expiresAt: number, reqDigest = D) => ({ reqDigest, expiresAt })

t.test('the expired head is dropped; a key held again keeps its newer entry', async (t) => {
  const m = new MemoryReplayMemory({ maxEntries: 10 })
  t.equal(await m.claim('a', 'k1', entry(100), 0), undefined)
  t.equal(await m.claim('a', 'k2', entry(200), 0), undefined)
  t.equal(await m.claim('a', 'k3', entry(400), 150), undefined)
  t.equal(m.size, 2, 'k1 expired and was dropped by the next claim')
  t.equal(await m.claim('a', 'k1', entry(300, 'e'.repeat(43)), 150), undefined, 'k1 may be used again once expired')
  t.equal(await m.claim('a', 'k4', entry(500), 250), undefined)
  t.equal(m.size, 3, 'k2 dropped; k1 held again (its old slot, expired, left the newer entry alone)')
  t.match(await m.claim('a', 'k1', entry(999), 250), { reqDigest: 'e'.repeat(43), expiresAt: 300 }, 'the newer k1 is still held')
  await m.settle('a', 'k3', D, 7)
  t.match(await m.claim('a', 'k3', entry(999), 260), { index: 7 }, 'settled entries are found with their index')
  await m.release('a', 'k4', D)
  t.equal(await m.claim('a', 'k4', entry(600), 260), undefined, 'a released claim may be made again')
})

t.test('remembered entries (start-up) expire through the same queue', async (t) => {
  const m = new MemoryReplayMemory({ maxEntries: 10 })
  await m.remember('a', 'r1', { reqDigest: D, index: 1, expiresAt: 50 })
  await m.remember('a', 'r2', { reqDigest: D, index: 2, expiresAt: 150 })
  t.equal(await m.claim('a', 'n1', entry(300), 100), undefined)
  t.equal(m.size, 2, 'r1 dropped')
  t.match(await m.claim('a', 'r2', entry(999), 100), { index: 2 })
})

t.test('a long run at a steady rate: the size stays at the window and the queue is compacted', async (t) => {
  const m = new MemoryReplayMemory({ maxEntries: 100_000 })
  const window = 1000
  let refused = 0
  for (let i = 0; i < 50_000; i++) {
    // one claim per ms, each held for the window
    if (await m.claim('a', `x${i}`, entry(i + window), i) !== undefined) refused++
  }
  t.equal(refused, 0, 'every fresh xid was new')
  t.ok(m.size <= window + 1, `held ${m.size}, the window is ${window}`)
  const queued = (m as unknown as { queueSlots: number[]; queueHead: number })
  t.ok(queued.queueSlots.length - queued.queueHead <= window + 1, 'the queue holds about the live entries')
  t.ok(queued.queueSlots.length <= 2 * (window + 1) + 1024, `the queue's arrays are compacted (length ${queued.queueSlots.length})`)
  t.match(await m.claim('a', 'x49999', entry(0), 49_999), { expiresAt: 50_999 }, 'the newest entry is found')
})

t.test('digests are kept as 32 bytes when canonical, as strings otherwise, and compared exactly', async (t) => {
  const m = new MemoryReplayMemory({ maxEntries: 10 })
  const a = Buffer.alloc(32, 1).toString('base64url')
  const b = Buffer.alloc(32, 2).toString('base64url')
  // the same 32 bytes as `a`, spelled with non-zero padding bits in the last character: not canonical
  const aOdd = `${a.slice(0, 42)}${String.fromCharCode(a.charCodeAt(42) + 1)}`
  t.equal(await m.claim('a', 'k1', entry(100, a), 0), undefined)
  t.equal(await m.claim('a', 'k2', entry(100, aOdd), 0), undefined)
  t.match(await m.claim('a', 'k1', entry(100, b), 1), { reqDigest: a }, 'the canonical digest comes back as it was given')
  t.match(await m.claim('a', 'k2', entry(100, b), 1), { reqDigest: aOdd }, 'so does one that is not canonical')
  await m.settle('a', 'k1', b, 5)
  await m.settle('a', 'k1', aOdd, 5)
  t.notOk('index' in ((await m.claim('a', 'k1', entry(100, b), 1)) ?? {}), 'a settle with another digest (or another spelling of the same bytes) is ignored')
  await m.settle('a', 'k2', a, 6)
  t.notOk('index' in ((await m.claim('a', 'k2', entry(100, b), 1)) ?? {}), 'and the other way round')
  await m.release('a', 'k1', b)
  t.equal(m.size, 2, 'a release with another digest is ignored')
  await m.settle('a', 'k1', a, 7)
  t.match(await m.claim('a', 'k1', entry(100, b), 1), { reqDigest: a, index: 7 }, 'the right digest settles')
  await m.release('a', 'k2', aOdd)
  t.equal(m.size, 1, 'the right digest releases')
  t.equal(await m.claim('a', 'k3', entry(100, b), 1), undefined, 'a freed slot is used again')
  t.match(await m.claim('a', 'k3', entry(100, a), 1), { reqDigest: b }, 'with its own digest')
})
