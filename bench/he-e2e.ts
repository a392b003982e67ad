/**
 * bench:he-e2e — a whole `he` exchange on loopback (local API → consumer node → provider node →
 * back), against the provider's HE evaluation alone on the same worker pool size, in the same run.
 *
 * Two real nodes of the demo federation (fj-credit asks fj-tax `tax.compliance`), batches of
 * 1,000 distinct enterprises with a hidden bound each (8 ciphertexts). The end-to-end time covers
 * the consumer's encryption and decryption, disclosures, signing, both logs' group commits with
 * the ciphertexts as evidence, the provider's checks (SEAL loads on the main thread), lookups and
 * the evaluation on its worker pool. The reference is `HeEvaluatorPool.evaluate` of the same 8
 * ciphertexts alone. Last line: `ratio: reference / end-to-end` (1 would mean the exchange costs
 * nothing beyond the HE evaluation).
 *
 * Run compiled (worker threads need JS): tsc -p tsconfig.bench.json && node .bench-build/bench/he-e2e.js
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { request } from 'undici'
import { pino } from 'pino'
import { buildDemoFederation } from '../src/demo/federation.js'
import { startNode, type RunningNode } from '../src/http/server.js'
import { HeClient } from '../src/he/threshold.js'
import { HeEvaluatorPool } from '../src/he/he-pool.js'
import { gridValues } from '../src/he/grid.js'

const BATCH = 1000
const RUNS = Number(process.env.HE_E2E_RUNS ?? 7)
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1] as number
const g = gridValues()

const dir = await mkdtemp(join(tmpdir(), 'verinode-he-e2e-'))
const fed = await buildDemoFederation(dir, { sizes: { residents: 500, enterprises: 2500, taxYears: [2025] }, configOverrides: { logLevel: 'warn' } })
const nodes: RunningNode[] = []
try {
  for (const id of ['fj-tax', 'fj-credit']) {
    nodes.push(await startNode(fed.nodes[id]?.configPath as string, { logger: pino({ level: 'warn' }), checkpointEveryMs: 0 }))
  }
  const consumer = nodes[1] as RunningNode
  const tdb = new Database(join(fed.dataset.dir, 'tax-bureau.sqlite'), { readonly: true })
  const rows = tdb.prepare('SELECT uscc, tax_paid_fen AS paid FROM tax_payments WHERE year = 2025 LIMIT ?').all(BATCH) as { uscc: string; paid: number }[]
  tdb.close()
  if (rows.length < BATCH) throw new Error(`only ${rows.length} tax records`)
  const subjects = rows.map((r, i) => ({ uscc: r.uscc, year: 2025, bound: g[(i * 7) % 40] as number }))
  const ask = async (): Promise<number> => {
    const t0 = performance.now()
    const res = await request(`${consumer.localUrl}/local/v1/verify`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${fed.nodes['fj-credit']?.appToken}` },
      body: JSON.stringify({ provider: 'fj-tax', service: 'tax.compliance', purpose: 'credit-evaluation', basis: 'Social Credit Regulations art. 12', mode: 'he', subjects }),
    })
    const json = (await res.body.json()) as { results?: { atLeast: boolean }[] }
    const ms = performance.now() - t0
    if (res.statusCode !== 200 || json.results?.some((x, i) => x.atLeast !== ((rows[i]?.paid ?? -1) >= (subjects[i]?.bound ?? 0)))) {
      throw new Error(`HTTP ${res.statusCode}: wrong or missing answers`)
    }
    return ms
  }
  await ask() // warm: keys, SEAL contexts, worker, key sent inline
  const e2e: number[] = []
  for (let i = 0; i < RUNS; i++) e2e.push(await ask())

  // Bytes each way, from the consumer's evidence (the signed request and response of the last run).
  const cdb = new Database(join(fed.dir, 'fj-credit', 'var', 'log.db'), { readonly: true })
  const jws = (cdb.prepare('SELECT jws FROM evidence_jws').pluck().all() as string[])
    .map((j) => ({ j, p: JSON.parse(Buffer.from(j.split('.')[1] ?? '', 'base64url').toString()) as { iat: number; mode?: string; q?: { pkBytes?: string }; r?: unknown } }))
  cdb.close()
  const reqs = jws.filter((x) => x.p.mode === 'he').sort((a, b) => a.p.iat - b.p.iat)
  const resps = jws.filter((x) => x.p.r !== undefined)
  const upKey = reqs[0]?.j.length ?? 0
  const up = reqs.at(-1)?.j.length ?? 0
  const down = resps[0]?.j.length ?? 0

  // Reference: the HE evaluation alone, same pool size as the node's default.
  const client = await HeClient.create()
  const pool = new HeEvaluatorPool()
  const cts = client.encryptBounds(subjects.map((s) => g.indexOf(s.bound)))
  const values = rows.map((r) => r.paid)
  await pool.evaluate(client.publicKeyBytes(), cts, values)
  const ref: number[] = []
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now()
    await pool.evaluate(client.publicKeyBytes(), cts, values)
    ref.push(performance.now() - t0)
  }
  await pool.close()
  client.delete()

  const e = median(e2e)
  const r = median(ref)
  console.log(`he end to end, ${BATCH} subjects per request (${cts.length} ciphertexts), pool of ${pool.size}, median of ${RUNS}`)
  console.log(`  end to end (local API → consumer → provider → back): ${e.toFixed(0)} ms, ${(e / BATCH).toFixed(3)} ms/subject, ${(BATCH / e * 1000).toFixed(0)} subjects/s`)
  console.log(`  HE evaluation alone on the pool:                      ${r.toFixed(0)} ms, ${(r / BATCH).toFixed(3)} ms/subject`)
  console.log(`  signed request ${(up / 1e6).toFixed(2)} MB (first, with the public key: ${(upKey / 1e6).toFixed(2)} MB), signed response ${(down / 1e6).toFixed(2)} MB`)
  console.log(`ratio: ${(r / e).toFixed(3)}`)
} finally {
  for (const n of nodes) await n.close()
  await rm(dir, { recursive: true, force: true })
}
