/**
 * Sharded oprf end to end between real nodes on 127.0.0.1: the provider's identity.match register
 * is split into 4 shards (300 residents, 50 per shard aimed at); a single check asks for its
 * shard and gets it in the signed response (the full set is never fetched), answers agree with
 * plain mode, the signed epoch header is served at /tagset/root, and a provider whose shard on
 * disk no longer matches its signed root is refused with VN_ERR_OPRF_SHARD_PROOF, logged.
 */
import t from 'tap'
import { join } from 'node:path'
import { open, readFile, readdir, writeFile } from 'node:fs/promises'
import Database from 'better-sqlite3'
import { request } from 'undici'
import { pino } from 'pino'
import { buildDemoFederation } from '../../src/demo/federation.js'
import { startNode, type RunningNode } from '../../src/http/server.js'
import { createOprfPool } from '../../src/oprf/oprf-pool.js'
import { ShardRoot } from '../../src/oprf/tagshards.js'

const pool = createOprfPool(1)
t.teardown(() => pool.close())

const fed = await buildDemoFederation(t.testdir({}), { sizes: { residents: 300, enterprises: 50, taxYears: [2025] } })
// The provider shards identity.match: 300 records, 50 per shard aimed at, floor lowered to 50.
const psbConfig = fed.nodes['fj-psb']?.configPath as string
const cfg = JSON.parse(await readFile(psbConfig, 'utf8')) as { services: { id: string; oprf?: Record<string, unknown> }[] }
for (const s of cfg.services) if (s.id === 'identity.match') s.oprf = { ...s.oprf, shardRecords: 50, minAnonymitySet: 50 }
await writeFile(psbConfig, JSON.stringify(cfg, null, 2))

const nodes: Record<string, RunningNode> = {}
for (const id of ['fj-psb', 'fj-tax']) {
  nodes[id] = await startNode(fed.nodes[id]?.configPath as string, { logger: pino({ level: 'silent' }), checkpointEveryMs: 0, oprfPool: pool, tagSetTickMs: 0 })
}
t.teardown(async () => {
  for (const n of Object.values(nodes)) await n.close()
})
for (const n of Object.values(nodes)) await n.node.tagsets?.whenReady()

const ASK = { provider: 'fj-psb', service: 'identity.match', purpose: 'taxpayer-registration', basis: 'Tax Collection Administration Law art. 15' }
async function verify(body: unknown): Promise<{ status: number; json: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const res = await request(`${nodes['fj-tax']?.localUrl}/local/v1/verify`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${fed.nodes['fj-tax']?.appToken}` },
    body: JSON.stringify(body),
  })
  return { status: res.statusCode, json: await res.body.json() }
}

/** Count the provider's tag-set answers (full sets and epoch headers): both routes ask it for their headers. */
const gets = { full: 0, root: 0 }
const publisher = nodes['fj-psb']?.node.tagsets
if (publisher === undefined) throw new Error('fj-psb publishes no tag sets')
const headersOf = publisher.responseHeaders.bind(publisher)
publisher.responseHeaders = (p) => {
  if ('header' in p) gets.root++
  else gets.full++
  return headersOf(p)
}

/** Every stored JWS payload of a node's log, as text. */
function jwsText(member: string): string {
  const d = new Database(join(fed.dir, member, 'var', 'log.db'), { readonly: true })
  try {
    const leaves = (d.prepare('SELECT data FROM leaves').pluck().all() as Uint8Array[]).map((b) => Buffer.from(b).toString('utf8'))
    const jws = (d.prepare('SELECT * FROM evidence_jws').all() as Record<string, unknown>[]).map((r) => {
      const v = Object.values(r).map((x) => (x instanceof Uint8Array ? Buffer.from(x).toString('utf8') : x))
      const s = v.find((x): x is string => typeof x === 'string' && x.split('.').length === 3) ?? ''
      return Buffer.from(s.split('.')[1] ?? '', 'base64url').toString('utf8')
    })
    return [...leaves, ...jws].join('\n')
  } finally {
    d.close()
  }
}

const s = fed.dataset.samples.identity
const singles = [
  ...s.matches.slice(0, 4).map((m) => ({ id: m.id, name: m.name })),
  ...s.nameMismatches.slice(0, 2).map((m) => ({ id: m.id, name: m.name })),
  ...s.unknownIds.slice(0, 2).map((id) => ({ id, name: '张三' })),
]

t.test('/tagset/root: the signed epoch header with 4 shards, ETag and 304', async (t) => {
  const base = nodes['fj-psb']?.publicUrl
  const res = await request(`${base}/v1/services/identity.match/tagset/root`)
  t.equal(res.statusCode, 200)
  const root = ShardRoot.parse(new Uint8Array(await res.body.arrayBuffer()))
  t.equal(root.bits, 2, '300 records at 50 per shard: 4 shards')
  t.equal(root.service, 'identity.match')
  t.equal(String(root.epoch), res.headers['x-verinode-epoch'])
  t.match(String(res.headers['x-verinode-kid']), /^fj-psb#/)
  t.match(String(res.headers['x-verinode-signature']), /^[A-Za-z0-9_-]{86}$/)
  const again = await request(`${base}/v1/services/identity.match/tagset/root`, { headers: { 'if-none-match': String(res.headers.etag) } })
  t.equal(again.statusCode, 304)
  await again.body.dump()
  const full = await request(`${base}/v1/services/identity.match/tagset`)
  t.equal(full.statusCode, 200, 'the full set is still served (batches, older consumers)')
  await full.body.dump()
  gets.full = 0
  gets.root = 0
})

t.test('a shard on the provider that no longer matches its signed root: VN_ERR_OPRF_SHARD_PROOF, logged', async (t) => {
  const dir = join(fed.dir, 'fj-psb', 'var', 'tagsets')
  const file = (await readdir(dir)).find((f) => f.startsWith('identity.match@') && f.endsWith('.vnsh'))
  t.ok(file, 'the sharded file is on disk')
  const fh = await open(join(dir, file as string), 'r+')
  const { size } = await fh.stat()
  // Damage every shard: flip one byte in every 40 of the tag area (the file ends with the tags).
  const head = Buffer.alloc(128)
  await fh.read(head, 0, 128, 0)
  const root = ShardRoot.parse(new Uint8Array(head.subarray(0, 84 + (head[7] as number))))
  const saved: [number, Buffer][] = []
  for (let pos = size - root.count * root.tagLength; pos < size; pos += 40) {
    const b = Buffer.alloc(1)
    await fh.read(b, 0, 1, pos)
    saved.push([pos, b])
    await fh.write(Uint8Array.of((b[0] as number) ^ 0x01), 0, 1, pos)
  }
  // The consumer's shard cache is still empty: its first single check asks for a shard.
  const id = s.unknownIds[3] as string
  let refused = false
  try {
    const r = await verify({ ...ASK, mode: 'oprf', subjects: [{ id, name: '李四' }] })
    t.equal(r.status, 502)
    t.match(JSON.stringify(r.json), /VN_ERR_OPRF_SHARD_PROOF/)
    t.notOk(JSON.stringify(r.json).includes(id), 'no subject in the error')
    refused = true
  } finally {
    for (const [pos, b] of saved) await fh.write(b, 0, 1, pos)
    await fh.close()
  }
  t.ok(refused, 'a damaged shard was refused')
  t.match(jwsText('fj-tax'), /"code":"VN_ERR_OPRF_SHARD_PROOF"[^\n]*"t":"response-refused"/, 'the consumer logged the refusal')
  gets.full = 0
  gets.root = 0
})

t.test('single checks: one shard in the signed response, never the full set, answers as in plain mode', async (t) => {
  const plain = await verify({ ...ASK, subjects: singles })
  t.equal(plain.status, 200)
  for (const [i, subject] of singles.entries()) {
    const r = await verify({ ...ASK, mode: 'oprf', subjects: [subject] })
    t.equal(r.status, 200, JSON.stringify(r.json))
    t.same(r.json.results.map((x: { match: boolean }) => x.match), [plain.json.results[i].match], `subject ${i}: the match flag agrees with plain mode`)
  }
  t.equal(gets.full, 0, 'the full set was never fetched')
  t.equal(gets.root, 0, 'the epoch header was fetched once, before (cached for the epoch)')
  const consumerLog = jwsText('fj-tax')
  t.match(consumerLog, /"shards":\[\{"shard":\d,"tags":"[A-Za-z0-9_-]+","path":\["[A-Za-z0-9_-]{43}","[A-Za-z0-9_-]{43}"\]\}\]/, 'the signed response carried the shard and its path')
  const providerLog = jwsText('fj-psb')
  t.match(providerLog, /"q":\{"epoch":\d+,"blinded":\["[A-Za-z0-9_-]{43}"\],"root":"[A-Za-z0-9_-]{43}","shards":\[\d\]\}/, 'the request named its shard (the leakage, on record)')
  for (const x of singles) t.notOk(providerLog.includes(x.id), 'no ID number in the provider log')
})
