/**
 * Every bad oprf query gets its coded error and nothing is written: requests are crafted by hand
 * with the consumer's real key, sent over real HTTP to a provider node, and the provider's log
 * leaves and evidence rows are counted before and after.
 */
import t from 'tap'
import { join } from 'node:path'
import { createPublicKey, type KeyObject } from 'node:crypto'
import Database from 'better-sqlite3'
import { request } from 'undici'
import { pino } from 'pino'
import { buildDemoFederation } from '../../src/demo/federation.js'
import { startNode } from '../../src/http/server.js'
import { createOprfPool } from '../../src/oprf/oprf-pool.js'
import { loadPrivateKey } from '../../src/crypto/keys.js'
import { keyIdFor } from '../../src/federation/manifest.js'
import { signJwsJson } from '../../src/crypto/jws.js'
import { newXid } from '../../src/exchange/consumer.js'
import { REQUEST_TYP } from '../../src/protocol/envelope.js'
import { blind } from '../../src/crypto/oprf.js'
import { oprfInput } from '../../src/oprf/tagset.js'

const CONSUMER = 'fj-tax'
const PROVIDER = 'fj-psb'
const pool = createOprfPool(1)
t.teardown(() => pool.close())

const fed = await buildDemoFederation(t.testdir({}), {
  sizes: { residents: 100, enterprises: 50, taxYears: [2025] },
  configOverrides: { limits: { batchMax: 10, bodyBytes: 64 * 1024, skewMs: 60_000, retentionDays: 30 } },
})
const node = await startNode(fed.nodes[PROVIDER]?.configPath as string, { logger: pino({ level: 'silent' }), checkpointEveryMs: 0, oprfPool: pool, tagSetTickMs: 0 })
t.teardown(() => node.close())
await node.node.tagsets?.whenReady()
const key: KeyObject = await loadPrivateKey(join(fed.dir, CONSUMER, 'keys', 'message.key'))
const kid = `${CONSUMER}#${keyIdFor(createPublicKey(key))}`
const db = join(fed.dir, PROVIDER, 'var', 'log.db')
const epoch = node.node.tagsets?.currentEpoch('identity.match') as number

function counts(): { leaves: number; jws: number } {
  const d = new Database(db, { readonly: true })
  try {
    const n = (sql: string): number => d.prepare(sql).pluck().get() as number
    return { leaves: n('SELECT count(*) FROM leaves'), jws: n('SELECT count(*) FROM evidence_jws') }
  } finally {
    d.close()
  }
}

const b64u = (b: Uint8Array): string => Buffer.from(b).toString('base64url')
const good = blind(Array.from({ length: 10 }, (_, i) => oprfInput('identity.match', 1, [`subject ${i}`, 'name']))).blindedElements.map(b64u)

async function send(q: Record<string, unknown>): Promise<{ status: number; body: { code?: string; detail?: string; jws?: string } }> {
  const payload = {
    v: 1, xid: newXid(), iat: Date.now(), iss: CONSUMER, aud: PROVIDER, svc: 'identity.match',
    purpose: 'taxpayer-registration', basis: 'Tax Collection Administration Law art. 15', mode: 'oprf', q,
  }
  const res = await request(`${node.publicUrl}/v1/exchange`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jws: signJwsJson(payload, key, kid, REQUEST_TYP) }),
  })
  return { status: res.statusCode, body: (await res.body.json()) as { code?: string; detail?: string } }
}

/** Sends q, expects `code` (and `detail` naming the field), and that nothing was written. */
type Test = Parameters<Parameters<typeof t.test>[0]>[0]

async function refused(t: Test, q: Record<string, unknown>, status: number, code: string, detail?: RegExp): Promise<void> {
  const before = counts()
  const r = await send(q)
  t.equal(r.status, status)
  t.equal(r.body.code, code)
  if (detail !== undefined) t.match(r.body.detail ?? '', detail)
  t.equal(r.body.jws, undefined, 'an unsigned problem, not a signed answer')
  t.same(counts(), before, 'nothing written')
}

t.test('a well-formed query is answered (the baseline the bad ones differ from)', async (t) => {
  const before = counts()
  const r = await send({ epoch, blinded: good.slice(0, 3) })
  t.equal(r.status, 200, JSON.stringify(r.body))
  t.ok(counts().leaves > before.leaves, 'answered and logged')
})

t.test('identity element', async (t) => {
  const q = [...good.slice(0, 2), b64u(new Uint8Array(32))]
  await refused(t, { epoch, blinded: q }, 400, 'VN_ERR_OPRF_POINT', /q\.blinded\[2\]: identity element/)
})

t.test('non-canonical encodings', async (t) => {
  // all 0xff: the field element is not reduced mod p (RFC 9496 §4.3.1 decode step 1)
  await refused(t, { epoch, blinded: [good[0], b64u(new Uint8Array(32).fill(0xff))] }, 400, 'VN_ERR_OPRF_POINT', /q\.blinded\[1\]: not a canonical/)
  // s = 1 is odd ("negative"): decode fails
  const odd = new Uint8Array(32)
  odd[0] = 1
  await refused(t, { epoch, blinded: [b64u(odd)] }, 400, 'VN_ERR_OPRF_POINT', /q\.blinded\[0\]: not a canonical/)
  // a valid point's base64url with the unused trailing bits set is another string for the same bytes
  const g = good[0] as string
  const last = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'.indexOf(g.slice(-1))
  const alt = `${g.slice(0, -1)}${'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'[last ^ 1]}`
  await refused(t, { epoch, blinded: [alt] }, 400, 'VN_ERR_OPRF_POINT', /q\.blinded\[0\]: not canonical base64url/)
})

t.test('wrong lengths', async (t) => {
  await refused(t, { epoch, blinded: [good[0], b64u(new Uint8Array(31).fill(7))] }, 400, 'VN_ERR_OPRF_POINT', /q\.blinded\[1\]: expected 32 bytes, got 31/)
  await refused(t, { epoch, blinded: [b64u(new Uint8Array(33).fill(7))] }, 400, 'VN_ERR_OPRF_POINT', /expected 32 bytes, got 33/)
})

t.test('too many elements, none, or a malformed q', async (t) => {
  await refused(t, { epoch, blinded: [...good, good[0]] }, 413, 'VN_ERR_REQ_BATCH_TOO_LARGE', /11 elements, limit 10/)
  await refused(t, { epoch, blinded: [] }, 400, 'VN_ERR_REQ_INVALID')
  await refused(t, { epoch, blinded: good.slice(0, 1), extra: 1 }, 400, 'VN_ERR_REQ_INVALID')
  await refused(t, { blinded: good.slice(0, 1) }, 400, 'VN_ERR_REQ_INVALID')
})

t.test('an epoch that is not the current one', async (t) => {
  await refused(t, { epoch: epoch - 1, blinded: good.slice(0, 1) }, 409, 'VN_ERR_OPRF_EPOCH', new RegExp(`q\\.epoch ${epoch - 1} is not the current epoch ${epoch}`))
  await refused(t, { epoch: epoch + 1, blinded: good.slice(0, 1) }, 409, 'VN_ERR_OPRF_EPOCH')
})
