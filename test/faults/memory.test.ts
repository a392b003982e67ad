/**
 * Memory and queues under sustained load (docs/OPERATIONS.md, "Memory and latency under sustained
 * load"): every cache and queue a node keeps per exchange is bounded, and a bound that is hit
 * refuses with a coded, retryable 503 rather than forgetting what replay protection needs.
 * Unit tier over the in-memory stores and a real Provider/Consumer; a few seconds in all.
 */
import t from 'tap'
import Fastify from 'fastify'
import { VnError } from '../../src/errors.js'
import { errorHandler } from '../../src/http/errors.js'
import { MemoryReplayMemory } from '../../src/log/memory-store.js'
import { DEFAULT_REPLAY_MAX_ENTRIES } from '../../src/log/storage.js'
import { ConfigSchema } from '../../src/config/schema.js'
import { Metrics } from '../../src/node/metrics.js'
import { BASIS, CONSUMER, NOW, PROVIDER, PURPOSE, SERVICE, makeConsumer, makeProvider, plainRequest, toProvider } from '../helper-exchange-unit.js'

const WINDOW = 120_000
const digest = (i: number): string => `digest-${i}`.padEnd(43, 'x')

t.test('fault: the replay memory stays within its bound, refuses when full and forgets no live entry', async (t) => {
  const replay = new MemoryReplayMemory({ maxEntries: 1000 })
  let refused = 0
  let largest = 0
  for (let i = 0; i < 5000; i++) {
    try {
      await replay.claim(CONSUMER, `x${i}`, { reqDigest: digest(i), expiresAt: NOW + WINDOW }, NOW + (i % 100))
    } catch (e) {
      if (!(e instanceof VnError) || e.code !== 'VN_ERR_EXCH_REPLAY_FULL' || e.statusCode !== 503) throw e
      refused++
    }
    largest = Math.max(largest, replay.size)
  }
  t.equal(largest, 1000, 'never more than the bound')
  t.equal(replay.size, 1000, 'full')
  t.equal(refused, 4000, 'every claim beyond the bound was refused')
  for (const i of [0, 500, 999]) {
    t.equal((await replay.claim(CONSUMER, `x${i}`, { reqDigest: 'other', expiresAt: NOW + WINDOW }, NOW + 1000))?.reqDigest, digest(i), `x${i} is still a replay while its window lasts`)
  }
  await t.rejects(replay.claim(CONSUMER, 'new', { reqDigest: 'n', expiresAt: NOW + WINDOW }, NOW + WINDOW), { code: 'VN_ERR_EXCH_REPLAY_FULL' }, 'still full at the last instant of the window')
  t.equal(await replay.claim(CONSUMER, 'new', { reqDigest: 'n', expiresAt: NOW + 2 * WINDOW }, NOW + WINDOW + 1), undefined, 'room again once the window has passed')
  t.throws(() => new MemoryReplayMemory({ maxEntries: 0 }), { code: 'VN_ERR_CONFIG_INVALID' })
  t.equal(new MemoryReplayMemory().capacity, DEFAULT_REPLAY_MAX_ENTRIES)
  t.equal(ConfigSchema.shape.limits.parse(undefined).replayMaxEntries, DEFAULT_REPLAY_MAX_ENTRIES, 'the config default is the store default')
})

t.test('fault: expired replay entries are dropped, in order and out of order', async (t) => {
  const replay = new MemoryReplayMemory({ maxEntries: 100 })
  for (let i = 0; i < 50; i++) await replay.claim(CONSUMER, `x${i}`, { reqDigest: digest(i), expiresAt: NOW + i }, NOW)
  t.equal(replay.size, 50)
  await replay.claim(CONSUMER, 'late', { reqDigest: 'l', expiresAt: NOW + 1000 }, NOW + 24.5)
  t.equal(replay.size, 26, 'the 25 that expired are gone from the head, the 25 live ones and the new one stay')
  // out of order: the clock stepped back, so a short entry sits behind a long one
  const r2 = new MemoryReplayMemory({ maxEntries: 2 })
  await r2.claim(CONSUMER, 'long', { reqDigest: 'a', expiresAt: NOW + 10_000 }, NOW)
  await r2.claim(CONSUMER, 'short', { reqDigest: 'b', expiresAt: NOW + 10 }, NOW)
  t.equal(await r2.claim(CONSUMER, 'next', { reqDigest: 'c', expiresAt: NOW + 20_000 }, NOW + 100), undefined, 'a full memory sweeps once before refusing')
  t.equal(r2.size, 2)
})

t.test('fault: a replay entry holds the request digest and the log index of the answer, not the reply', async (t) => {
  const { provider, stores, records } = await makeProvider()
  const { body, payload } = plainRequest(['A-1'])
  const first = await provider.handle(body)
  const held = await stores.replay.claim(CONSUMER, payload.xid, { reqDigest: 'probe', expiresAt: 0 }, NOW)
  t.same(Object.keys(held ?? {}).sort(), ['expiresAt', 'index', 'reqDigest'], 'three fields')
  t.equal(held?.index, (await records()).findIndex((r) => r.t === 'response-out'), 'the index of the response-out record')
  t.notMatch(JSON.stringify(held), first.body.jws as string, 'the signed response is not in the entry')
  t.same(await provider.handle(body), first, 'a retry still gets the first signed response, read back from the log')
  t.equal(await stores.log.size(), 3, 'and nothing more was written')
})

t.test('fault: a full replay memory refuses new exchanges with 503 and writes nothing; retries are still answered', async (t) => {
  const { provider, stores } = await makeProvider({ deps: { replay: new MemoryReplayMemory({ maxEntries: 1 }) } })
  const a = plainRequest(['A-1'])
  const first = await provider.handle(a.body)
  await t.rejects(provider.handle(plainRequest(['A-2']).body), { code: 'VN_ERR_EXCH_REPLAY_FULL' })
  t.equal(await stores.log.size(), 3, 'the refused request wrote nothing')
  const dup = plainRequest(['A-2']).body
  const both = await Promise.allSettled([provider.handle(dup), provider.handle(dup)])
  t.same(both.map((r) => r.status === 'rejected' && (r.reason as VnError).code), ['VN_ERR_EXCH_REPLAY_FULL', 'VN_ERR_EXCH_REPLAY_FULL'], 'a duplicate sent alongside is refused too, never left waiting')
  t.same(await provider.handle(a.body), first, 'a retry of a held exchange is answered')
  await t.rejects(provider.handle(plainRequest(['A-2'], { xid: a.payload.xid }).body), { code: 'VN_ERR_EXCH_REPLAY' }, 'a replay of a held exchange is refused')
  // over HTTP: 503 with Retry-After, the code, no detail
  const app = Fastify()
  app.setErrorHandler(errorHandler())
  app.post('/v1/exchange', async () => provider.handle(plainRequest(['A-3']).body))
  const res = await app.inject({ method: 'POST', url: '/v1/exchange', payload: {} })
  t.equal(res.statusCode, 503)
  t.equal(res.headers['retry-after'], '5')
  t.match(res.json(), { code: 'VN_ERR_EXCH_REPLAY_FULL', status: 503 })
  t.notOk('detail' in res.json(), '5xx carries no detail')
  await app.close()
})

t.test('fault: a provider at its in-flight bound refuses new exchanges with 503 before any work', async (t) => {
  let release!: () => void
  const gate = new Promise<void>((r) => (release = r))
  const { provider, stores, data } = await makeProvider({ deps: { limits: { batchMax: 10, skewMs: 300_000, retentionDays: 30, inFlight: 2 } } })
  const slowQuery = data.query.bind(data)
  data.query = async (...args: Parameters<typeof slowQuery>) => {
    await gate
    return slowQuery(...args)
  }
  const running = [provider.handle(plainRequest(['A-1']).body), provider.handle(plainRequest(['A-2']).body)]
  await t.rejects(provider.handle(plainRequest(['A-3']).body), { code: 'VN_ERR_EXCH_BUSY' }, 'the third is refused')
  t.equal(provider.inFlight, 2)
  release()
  t.equal((await Promise.all(running)).filter((r) => r.status === 200).length, 2, 'the two in progress complete')
  t.equal(provider.inFlight, 0)
  t.equal((await provider.handle(plainRequest(['A-3']).body)).status, 200, 'and there is room again')
  t.equal(await stores.log.size(), 9, 'three exchanges logged, the refused one not')
})

t.test('fault: a consumer at its in-flight bound refuses before signing or logging', async (t) => {
  const p = await makeProvider()
  let release!: () => void
  const gate = new Promise<void>((r) => (release = r))
  const c = await makeConsumer(async (body) => {
    await gate
    return toProvider(p.provider)(body)
  }, { inFlight: 2 })
  const ask = (ref: string) => ({ provider: PROVIDER, service: SERVICE, purpose: PURPOSE, basis: BASIS, subjects: [{ ref }] })
  const running = [c.consumer.verify(ask('A-1')), c.consumer.verify(ask('A-2'))]
  await t.rejects(c.consumer.verify(ask('A-3')), { code: 'VN_ERR_EXCH_BUSY' })
  t.equal(c.posts, 0)
  release()
  t.equal((await Promise.all(running)).length, 2)
  t.equal(c.posts, 2, 'the refused one was never sent')
  t.same((await c.records()).map((r) => r.t).filter((x) => x === 'request-out').length, 2, 'nor logged')
  t.equal(c.consumer.inFlight, 0)
  t.equal((await c.consumer.verify(ask('A-3'))).status, 'ok', 'room again')
})

t.test('fault: what holds memory or queues is visible in the metrics, with the process heap and RSS', async (t) => {
  const m = new Metrics('fj-psb', true)
  m.watch({ replayEntries: () => 75_600, inFlight: (role) => (role === 'provider' ? 16 : 240), logQueued: () => 3 })
  const text = await m.registry.metrics()
  t.match(text, /^verinode_replay_entries\{member="fj-psb"\} 75600$/m)
  t.match(text, /^verinode_exchanges_in_flight\{role="provider",member="fj-psb"\} 16$/m)
  t.match(text, /^verinode_exchanges_in_flight\{role="consumer",member="fj-psb"\} 240$/m)
  t.match(text, /^verinode_log_queued_appends\{member="fj-psb"\} 3$/m)
  t.match(text, /^process_resident_memory_bytes\{member="fj-psb"\} \d+/m, 'RSS')
  t.match(text, /^nodejs_heap_size_used_bytes\{member="fj-psb"\} \d+/m, 'V8 heap')
  t.notMatch(await new Metrics('fj-psb').registry.metrics(), /process_resident_memory_bytes/, 'off unless asked for (several nodes may share a process)')
})
