/** Traffic counts from a log's tail: what counts as an exchange, buckets, percentiles, incremental reads. */
import t from 'tap'
import { TrafficStats } from '../../src/node/traffic.js'
import { canonicalJsonBytes } from '../../src/protocol/canonical-json.js'
import type { LogRecord } from '../../src/log/records.js'

function storeOf(records: LogRecord[]) {
  const reads: [number, number][] = []
  return {
    reads,
    records,
    size: async () => records.length,
    entries: async (s: number, e: number) => { reads.push([s, e]); return records.slice(s, e).map((r) => canonicalJsonBytes(r)) },
  }
}

const T0 = Date.UTC(2026, 11, 1, 10, 0, 0)

t.test('exchanges counted per side, by dimension, and read incrementally', async (t) => {
  const recs: LogRecord[] = [
    { v: 1, at: T0, t: 'request-out', xid: 'a', aud: 'p1', svc: 's1', mode: 'plain', purpose: 'x', basis: 'y', count: 1, reqDigest: 'd' },
    { v: 1, at: T0 + 40, t: 'response-in', xid: 'a', iss: 'p1', reqDigest: 'd', status: 'ok' },
    { v: 1, at: T0 + 1000, t: 'request-in', xid: 'b', iss: 'c1', svc: 's2', mode: 'oprf', purpose: 'x', basis: 'y', count: 2, reqDigest: 'e' },
    { v: 1, at: T0 + 1000, t: 'response-out', xid: 'b', aud: 'c1', reqDigest: 'e', respDigest: 'f', status: 'denied', requestIndex: 2 },
    // an answer without its request is not an exchange; a request without an answer is pending
    { v: 1, at: T0 + 2000, t: 'response-in', xid: 'zz', iss: 'p1', reqDigest: 'd', status: 'ok' },
    { v: 1, at: T0 + 2000, t: 'request-out', xid: 'c', aud: 'p2', svc: 's1', mode: 'plain', purpose: 'x', basis: 'y', count: 1, reqDigest: 'g' },
    { v: 1, at: T0 + 3000, t: 'fork-evidence', peer: 'p2', notes: ['a', 'b'] },
    { v: 1, at: T0 + 3000, t: 'peer-checkpoint', peer: 'p1', size: 9, rootHash: 'r', noteHash: 'n' },
  ]
  const store = storeOf(recs)
  const ts = new TrafficStats(store)
  await Promise.all([ts.refresh(), ts.refresh()])
  t.same(store.reads, [[0, 8]], 'concurrent refreshes share one read')
  let s = ts.summary()
  t.same(s.exchanges, { provider: 1, consumer: 1 })
  t.equal(s.forkEvidence, 1)
  t.same(s.lastFork, { index: 6, peer: 'p2', at: T0 + 3000 })
  t.same(s.peerCheckpoints.p1, { size: 9, at: T0 + 3000, index: 7 })
  const consumer = s.latency.find((l) => l.role === 'consumer')!
  t.ok(consumer.p50 >= 40 && consumer.p50 < 50, `p50 ${consumer.p50} is the upper edge of 40 ms's bin`)
  t.same(ts.series('minute', 'decision', 3, T0 + 60_000).series, [{ name: 'denied', counts: [0, 1, 0] }, { name: 'ok', counts: [0, 1, 0] }])
  t.same(ts.series('hour', 'service', 1, T0, 'consumer').series, [{ name: 's1', counts: [1] }])
  t.same(ts.series('day', 'peer', 1, T0).series.map((x) => x.name), ['c1', 'p1'])
  t.same(ts.series('minute', 'mode', 2, T0 - 3_600_000).total, 0)

  recs.push({ v: 1, at: T0 + 4000, t: 'response-in', xid: 'c', iss: 'p2', reqDigest: 'g', status: 'refused', code: 'VN_ERR_X' })
  await ts.refresh()
  t.same(store.reads.at(-1), [8, 9], 'the next refresh reads only the new entry')
  s = ts.summary()
  t.equal(s.exchanges.consumer, 2)
  t.equal(ts.cursor, 9)
  t.same(ts.series('minute', 'decision', 1, T0, 'consumer').series.map((x) => x.name), ['ok', 'refused'])
})

t.test('old minute buckets are dropped after two days; day buckets stay', async (t) => {
  const recs: LogRecord[] = []
  for (const at of [T0, T0 + 3 * 86_400_000]) {
    recs.push({ v: 1, at, t: 'request-out', xid: String(at), aud: 'p', svc: 's', mode: 'plain', purpose: 'x', basis: 'y', count: 1, reqDigest: 'd' })
    recs.push({ v: 1, at, t: 'response-in', xid: String(at), iss: 'p', reqDigest: 'd', status: 'ok' })
  }
  const ts = new TrafficStats(storeOf(recs))
  await ts.refresh()
  t.equal(ts.series('minute', 'role', 1, T0).total, 0, 'minute bucket pruned')
  t.equal(ts.series('day', 'role', 1, T0).total, 1, 'day bucket kept')
})
