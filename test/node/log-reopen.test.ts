/**
 * The closed log's state machine (src/node/log-reopen.ts) and the checkpointer while the log is
 * closed, over the in-memory store and a clock the test moves: noticing, failed tries with
 * backoff, the reopen (held checkpoint stored, write path resumed, metrics, log line), and a
 * stored tree that does not match (stays closed, no more tries). The real fault, a full disk, is
 * test/faults/disk.test.ts.
 */
import t from 'tap'
import { generateKeyPairSync } from 'node:crypto'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { memoryNodeStores } from '../../src/log/memory-store.js'
import { StoreNodeLog } from '../../src/log/node-log.js'
import { noteVerifier, notePublicKey, parseCheckpoint, parseNote } from '../../src/log/checkpoint.js'
import { Checkpointer } from '../../src/node/checkpointer.js'
import { LogReopener } from '../../src/node/log-reopen.js'
import { Metrics } from '../../src/node/metrics.js'
import type { LogRecord } from '../../src/log/records.js'

const ORIGIN = 'm.fed.verinode/log'
const rec = (n: number): LogRecord => ({ v: 1, at: n, t: 'disclosure-export', reasonDigest: 'x'.repeat(43), count: n })

async function setup() {
  const stores = memoryNodeStores()
  const store = stores.log
  const nodeLog = await StoreNodeLog.open(store)
  const key = generateKeyPairSync('ed25519').privateKey
  const checkpointer = new Checkpointer(store, ORIGIN, key)
  const metrics = new Metrics('m')
  const lines: Record<string, unknown>[] = []
  const sink = new Writable({
    write(chunk: Buffer, _e, done) {
      for (const l of chunk.toString().split('\n')) if (l !== '') lines.push(JSON.parse(l) as Record<string, unknown>)
      done()
    },
  })
  let clock = 1_000_000
  let verifiers = [noteVerifier(ORIGIN, notePublicKey(key))]
  const reopener = new LogReopener({
    store, nodeLog, checkpointer, metrics, logger: pino({ level: 'debug' }, sink), now: () => clock, verifiers: () => verifiers,
  })
  const metric = async (name: string): Promise<number> => (await metrics.registry.getSingleMetric(name)?.get())?.values[0]?.value ?? NaN
  return {
    store, nodeLog, checkpointer, reopener, lines, metric,
    advance: (ms: number) => { clock += ms },
    otherKey: () => { verifiers = [noteVerifier(ORIGIN, notePublicKey(generateKeyPairSync('ed25519').privateKey))] },
  }
}

t.test('closed: noticed, tried with backoff, reopened with the held checkpoint stored', async (t) => {
  const s = await setup()
  await s.nodeLog.append([rec(0), rec(1)])
  const first = await s.checkpointer.checkpoint()
  await s.reopener.tick()
  t.same(s.reopener.status(), { ok: true })
  t.equal(s.lines.length, 0, 'an open log: nothing to say')

  await s.nodeLog.append([rec(2)])
  s.store.failNextCommit()
  await t.rejects(s.nodeLog.append([rec(3)]), { code: 'VN_ERR_LOG_UNAVAILABLE' })
  await s.reopener.tick()
  t.equal(await s.metric('verinode_log_closed'), 1)
  t.match(s.reopener.status(), { ok: false, detail: /^closed since .*writes refused/ })
  t.match(s.lines.at(-1), { level: 50, code: 'VN_ERR_LOG_UNAVAILABLE', msg: /^log closed/ })

  // The head is still signed and served, held in memory, not stored.
  const head = await s.checkpointer.checkpoint()
  t.not(head, first)
  t.equal(parseCheckpoint(parseNote(head).text).size, 3)
  t.equal(s.checkpointer.held?.size, 3)
  t.equal((await s.store.latestCheckpoint())?.size, 2, 'not stored while closed')
  t.equal(await s.checkpointer.checkpoint(), head, 'served again as it is')

  // Not yet due; then a try whose trial write fails: still closed, next try later.
  await s.reopener.tick()
  t.equal(s.lines.length, 1, 'no try before the first delay')
  s.advance(1000)
  s.store.failNextCommit()
  await s.reopener.tick()
  t.match(s.lines.at(-1), { level: 40, msg: 'log still closed: the trial write failed', attempt: 1, retryInMs: 2000 })
  t.equal(s.store.writable, false)
  s.advance(1999)
  await s.reopener.tick()
  t.equal(s.lines.length, 2, 'waits out the backoff')

  s.advance(1)
  await s.reopener.tick()
  t.match(s.lines.at(-1), { level: 40, msg: 'log reopened after 3.0 s', closedSeconds: 3, attempts: 2 })
  t.same(s.reopener.status(), { ok: true })
  t.equal(await s.metric('verinode_log_closed'), 0)
  t.equal(await s.metric('verinode_log_closed_seconds_total'), 3)
  t.equal(await s.metric('verinode_log_reopens_total'), 1)
  t.equal(await s.store.checkpointAt(3), head, 'the held checkpoint is stored')
  t.equal(s.checkpointer.held, undefined)
  t.same(await s.nodeLog.append([rec(4)]), [3], 'the write path goes on at the stored size')
})

t.test('the backoff stops at 5 s', async (t) => {
  const s = await setup()
  s.store.failNextCommit()
  await t.rejects(s.nodeLog.append([rec(0)]))
  await s.reopener.tick()
  const delays: unknown[] = []
  for (const wait of [1000, 2000, 4000, 5000]) {
    s.advance(wait)
    s.store.failNextCommit()
    await s.reopener.tick()
    delays.push(s.lines.at(-1)?.retryInMs)
  }
  t.same(delays, [2000, 4000, 5000, 5000])
})

t.test('a stored tree that does not match its signed checkpoint keeps the log closed', async (t) => {
  const s = await setup()
  await s.nodeLog.append([rec(0)])
  await s.checkpointer.checkpoint()
  s.store.failNextCommit()
  await t.rejects(s.nodeLog.append([rec(1)]))
  await s.reopener.tick()
  s.otherKey() // the stored checkpoint no longer verifies under the node's keys
  s.advance(1000)
  await s.reopener.tick()
  t.match(s.lines.at(-1), { level: 60, code: 'VN_ERR_LOG_TREE_MISMATCH', msg: /^ALERT: the stored log tree does not match/ })
  t.match(s.reopener.status(), { ok: false, detail: /does not match the last signed checkpoint.*restart only after investigating/ })
  t.equal(s.store.writable, false)
  const n = s.lines.length
  s.advance(60_000)
  await s.reopener.tick()
  t.equal(s.lines.length, n, 'no more tries')
  t.equal(await s.metric('verinode_log_closed'), 1)
  t.equal(await s.metric('verinode_log_reopens_total'), 0)
})

t.test('a broken write path over a writable store (an abandoned slot) reopens too', async (t) => {
  const s = await setup()
  s.nodeLog.reserve(1).abandon(new Error('could not sign'))
  t.equal(s.store.writable, true)
  await s.reopener.tick()
  t.equal(s.reopener.open, false)
  s.advance(1000)
  await s.reopener.tick()
  t.equal(s.reopener.open, true)
  t.same(await s.nodeLog.append([rec(0)]), [0], 'no gap: the abandoned index is handed out again')
})
