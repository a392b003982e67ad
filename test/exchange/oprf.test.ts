/**
 * oprf mode end to end between real nodes on 127.0.0.1: private identity match and dishonest-list
 * screening give the same answers as plain mode, the provider's log and evidence hold no subject,
 * and the tag-set endpoint serves a signed binary set with ETag / If-None-Match.
 *
 * One OPRF worker pool (one worker) is shared by every node of the file: starting a worker under
 * the TypeScript loader takes seconds.
 */
import t from 'tap'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { request } from 'undici'
import { pino } from 'pino'
import { buildDemoFederation, type DemoFederation } from '../../src/demo/federation.js'
import { startNode, type RunningNode } from '../../src/http/server.js'
import { createOprfPool } from '../../src/oprf/oprf-pool.js'
import { TagSet } from '../../src/oprf/tagset.js'

const pool = createOprfPool(1)
t.teardown(() => pool.close())

type Test = typeof t

interface Fx {
  fed: DemoFederation
  nodes: Record<string, RunningNode>
  verify(member: string, body: unknown): Promise<{ status: number; json: any }> // eslint-disable-line @typescript-eslint/no-explicit-any
}

async function fixture(t: Test, start: string[]): Promise<Fx> {
  const fed = await buildDemoFederation(t.testdir({}), { sizes: { residents: 300, enterprises: 200, taxYears: [2024, 2025] } })
  const nodes: Record<string, RunningNode> = {}
  for (const id of start) {
    const n = fed.nodes[id]
    if (n === undefined) throw new Error(`no node ${id}`)
    nodes[id] = await startNode(n.configPath, { logger: pino({ level: 'silent' }), checkpointEveryMs: 0, oprfPool: pool, tagSetTickMs: 0 })
  }
  t.teardown(async () => {
    for (const n of Object.values(nodes)) await n.close()
  })
  for (const n of Object.values(nodes)) await n.node.tagsets?.whenReady()
  return {
    fed,
    nodes,
    async verify(member, body) {
      const n = nodes[member] as RunningNode
      const res = await request(`${n.localUrl}/local/v1/verify`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${fed.nodes[member]?.appToken}` },
        body: JSON.stringify(body),
      })
      return { status: res.statusCode, json: await res.body.json() }
    },
  }
}

/** Every leaf and stored JWS payload of a node's log, as text. */
function logText(fx: Fx, member: string): string {
  const d = new Database(join(fx.fed.dir, member, 'var', 'log.db'), { readonly: true })
  try {
    const leaves = (d.prepare('SELECT data FROM leaves').pluck().all() as Uint8Array[]).map((b) => Buffer.from(b).toString('utf8'))
    const jws = (d.prepare('SELECT * FROM evidence_jws').all() as Record<string, unknown>[]).map((r) => {
      const v = Object.values(r).map((x) => (x instanceof Uint8Array ? Buffer.from(x).toString('utf8') : x))
      const s = v.find((x): x is string => typeof x === 'string' && x.split('.').length === 3) ?? ''
      return Buffer.from(s.split('.')[1] ?? '', 'base64url').toString('utf8')
    })
    t.ok(leaves.length > 0 && jws.every((x) => x.startsWith('{')), 'log rows decoded')
    return [...leaves, ...jws].join('\n')
  } finally {
    d.close()
  }
}

// One federation for the file: two providers (psb, credit) and two consumers (tax, amr).
const fx = await fixture(t, ['fj-psb', 'fj-tax', 'fj-credit', 'fj-amr'])

const ID_ASK = { provider: 'fj-psb', service: 'identity.match', purpose: 'taxpayer-registration', basis: 'Tax Collection Administration Law art. 15' }
const LIST_ASK = { provider: 'fj-credit', service: 'credit.dishonest', purpose: 'registration-review', basis: 'Regulation on the Registration of Market Entities art. 12' }

t.test('private identity match: same answers as plain mode, and the provider logs no subject', async (t) => {
    const s = fx.fed.dataset.samples.identity
  const subjects = [
    ...s.matches.map((m) => ({ id: m.id, name: m.name })),
    ...s.variantMatches.map((m) => ({ id: m.id, name: m.name })),
    ...s.nameMismatches.map((m) => ({ id: m.id, name: m.name })),
    ...s.unknownIds.map((id, i) => ({ id, name: s.matches[i % s.matches.length]?.name ?? '张三' })),
  ]
  const plain = await fx.verify('fj-tax', { ...ID_ASK, subjects })
  t.equal(plain.status, 200, JSON.stringify(plain.json))
  const before = logText(fx, 'fj-psb')
  const priv = await fx.verify('fj-tax', { ...ID_ASK, mode: 'oprf', subjects })
  t.equal(priv.status, 200, JSON.stringify(priv.json))
  t.equal(priv.json.status, 'ok')
  t.same(priv.json.results.map((r: { match: boolean }) => r.match), plain.json.results.map((r: { match: boolean }) => r.match), 'match flags agree with plain mode')
  t.ok(priv.json.results.some((r: { match: boolean }) => r.match) && priv.json.results.some((r: { match: boolean }) => !r.match), 'both answers occur')
  t.same(Object.keys(priv.json.results[0]), ['match'], 'answers only "do these belong together"')

  // The provider's log (leaves and evidence) gained the exchange but no ID number or name.
  const after = logText(fx, 'fj-psb')
  t.ok(after.length > before.length, 'the provider logged the exchange')
  t.match(after, /"mode":"oprf"/)
  t.match(after, new RegExp(`"count":${subjects.length}`), 'it logged the count')
  t.match(after, /"q":\{"epoch":\d+,"blinded":\[/, 'the request JWS (blinded elements) is evidence')
  for (const x of subjects) {
    t.notOk(after.includes(x.id), 'no ID number in the provider log')
    t.notOk(after.includes(x.name), 'no name in the provider log')
  }
})

t.test('private dishonest-list screening: same answers as plain mode', async (t) => {
  const c = fx.fed.dataset.samples.credit
  const subjects = [...c.listedPersons, ...c.listedEnterprises, ...c.unlistedPersons, ...c.unlistedEnterprises].map((id) => ({ id }))
  const plain = await fx.verify('fj-amr', { ...LIST_ASK, subjects })
  const priv = await fx.verify('fj-amr', { ...LIST_ASK, mode: 'oprf', subjects })
  t.equal(priv.status, 200, JSON.stringify(priv.json))
  t.same(priv.json.results, plain.json.results, 'listed flags agree with plain mode')
  t.ok(priv.json.results.filter((r: { listed: boolean }) => r.listed).length >= 2, 'listed subjects are found')

  // A bigger batch goes through the worker pool on both sides (blind, evaluate, finalize).
  const big = Array.from({ length: 60 }, (_, i) => subjects[i % subjects.length] as { id: string })
  const r = await fx.verify('fj-amr', { ...LIST_ASK, mode: 'oprf', subjects: big })
  t.equal(r.status, 200)
  t.same(r.json.results, big.map((x) => plain.json.results[subjects.indexOf(x)]), 'pool path gives the same answers')
})

t.test('GET /v1/services/:svc/tagset: signed binary set, ETag and 304, coded 404s', async (t) => {
  const base = fx.nodes['fj-credit']?.publicUrl
  const res = await request(`${base}/v1/services/credit.dishonest/tagset`)
  t.equal(res.statusCode, 200)
  t.equal(res.headers['content-type'], 'application/octet-stream')
  const bytes = new Uint8Array(await res.body.arrayBuffer())
  const ts = TagSet.parse(bytes)
  t.equal(ts.service, 'credit.dishonest')
  t.equal(String(ts.epoch), res.headers['x-verinode-epoch'])
  t.equal(ts.count, fx.fed.dataset.counts.dishonestDebtors, 'one tag per listed debtor')
  t.match(String(res.headers['x-verinode-kid']), /^fj-credit#/)
  t.match(String(res.headers['x-verinode-signature']), /^[A-Za-z0-9_-]{86}$/)
  t.match(String(res.headers['cache-control']), /max-age=\d+/)
  const etag = String(res.headers.etag)
  const again = await request(`${base}/v1/services/credit.dishonest/tagset`, { headers: { 'if-none-match': etag } })
  t.equal(again.statusCode, 304)
  t.equal(again.headers.etag, etag)
  await again.body.dump()
  const unknown = await request(`${base}/v1/services/no.such/tagset`)
  t.equal(unknown.statusCode, 404)
  t.equal(((await unknown.body.json()) as { code: string }).code, 'VN_ERR_POLICY_UNKNOWN_SERVICE')
})
