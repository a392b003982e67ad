/**
 * For the tests of the log on PostgreSQL (test/log/pg-*.test.ts): the demo federation's provider
 * fj-psb asked directly with signed plain requests (as bench/plain.ts makes them), and reads of the
 * shared log's rows.
 */
import { createPublicKey, type KeyObject } from 'node:crypto'
import { join } from 'node:path'
import type pg from 'pg'
import { request } from 'undici'
import type { DemoFederation } from '../src/demo/federation.js'
import { loadPrivateKey } from '../src/crypto/keys.js'
import { keyIdFor } from '../src/federation/manifest.js'
import { signJwsJson } from '../src/crypto/jws.js'
import { makeDisclosure } from '../src/protocol/disclosures.js'
import { newXid } from '../src/exchange/consumer.js'
import { REQUEST_TYP } from '../src/protocol/envelope.js'
import { jwsDigest } from '../src/protocol/jws-digest.js'

export type Asker = 'fj-tax' | 'fj-credit'

export interface Requests {
  /** a fresh signed identity.match request of `from` to fj-psb (one subject that matches) */
  body(from?: Asker): { xid: string; text: string }
  send(url: string, text: string): Promise<{ status: number; json: { jws?: string; code?: string } }>
}

export async function requestsTo(fed: DemoFederation): Promise<Requests> {
  const signerOf = async (member: string): Promise<{ key: KeyObject; kid: string }> => {
    const key = await loadPrivateKey(join(fed.dir, member, 'keys', 'message.key'))
    return { key, kid: `${member}#${keyIdFor(createPublicKey(key))}` }
  }
  const signers = { 'fj-tax': await signerOf('fj-tax'), 'fj-credit': await signerOf('fj-credit') }
  const asked = {
    'fj-tax': { purpose: 'taxpayer-registration', basis: 'Tax Collection Administration Law art. 15' },
    'fj-credit': { purpose: 'credit-record-correction', basis: 'Social Credit Regulations art. 20' },
  }
  const people = fed.dataset.samples.identity.matches
  let next = 0
  return {
    body(from = 'fj-tax') {
      const p = people[next++ % people.length]!
      const x = makeDisclosure('id', p.id)
      const y = makeDisclosure('name', p.name)
      const xid = newXid()
      const s = signers[from]
      const payload = { v: 1, xid, iat: Date.now(), iss: from, aud: 'fj-psb', svc: 'identity.match', ...asked[from], mode: 'plain', q: { subjects: [{ id: x.digest, name: y.digest }] } }
      return { xid, text: JSON.stringify({ jws: signJwsJson(payload, s.key, s.kid, REQUEST_TYP), disclosures: [x.disclosure, y.disclosure] }) }
    },
    async send(url, text) {
      const res = await request(`${url}/v1/exchange`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: text })
      return { status: res.statusCode, json: (await res.body.json()) as { jws?: string; code?: string } }
    },
  }
}

/** The payload of a signed response (not verified: the tests compare it with the log). */
export const payloadOf = (jws: string): { xid: string; log: { index: number }; status: string } => JSON.parse(Buffer.from(jws.split('.')[1]!, 'base64url').toString('utf8'))

/** Answered exchanges that are NOT in the log as their answer says: request-in at the index it names, response-out two after with this response's digest. */
export async function notInLog(db: pg.Client, schema: string, answers: readonly { xid: string; jws: string }[]): Promise<string[]> {
  const leafAt = async (i: number): Promise<Record<string, unknown>> => {
    const row = (await db.query<{ data: Buffer }>(`SELECT data FROM ${schema}.log_leaves WHERE idx = $1`, [i])).rows[0]
    return row === undefined ? {} : (JSON.parse(row.data.toString('utf8')) as Record<string, unknown>)
  }
  const bad: string[] = []
  for (const { xid, jws } of answers) {
    const p = payloadOf(jws)
    const req = await leafAt(p.log.index)
    const resp = await leafAt(p.log.index + 2)
    if (req['t'] !== 'request-in' || req['xid'] !== xid || resp['t'] !== 'response-out' || resp['xid'] !== xid || resp['respDigest'] !== jwsDigest(jws)) bad.push(xid)
  }
  return bad
}

/** The head's size and the leaves table's count and largest index (gap-free: all three agree). */
export async function leafCounts(db: pg.Client, schema: string): Promise<{ size: number; count: number; max: number }> {
  const head = (await db.query<{ size: string }>(`SELECT size FROM ${schema}.log_head`)).rows[0]!
  const c = (await db.query<{ n: string; max: string | null }>(`SELECT count(*) AS n, max(idx) AS max FROM ${schema}.log_leaves`)).rows[0]!
  return { size: Number(head.size), count: Number(c.n), max: c.max === null ? -1 : Number(c.max) }
}
