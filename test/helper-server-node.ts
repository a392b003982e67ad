/**
 * Running demo nodes over a database server, for the server-source tests
 * (test/sources/server-node.test.ts, test/faults/database-server.test.ts): the provider fj-psb
 * answering identity.match to the consumer fj-tax, the provider's log lines captured.
 */
import type { Test } from 'tap'
import { Writable } from 'node:stream'
import { join } from 'node:path'
import { pino } from 'pino'
import { request } from 'undici'
import { startDemoFederation, type DemoFederation } from '../src/demo/federation.js'
import type { DemoServerSource } from '../src/demo/server-data.js'
import { startNode, type RunningNode } from '../src/http/server.js'

export const PROVIDER = 'fj-psb'
export const CONSUMER = 'fj-tax'
export const SIZES = { residents: 60, enterprises: 30, taxYears: [2025] }

export interface Running { fed: DemoFederation; nodes: Record<string, RunningNode>; logLines: string[] }

export async function federationOn(t: Test, source: DemoServerSource): Promise<Running> {
  const root = t.testdir({})
  const logLines: string[] = []
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logLines.push(...chunk.toString('utf8').split('\n').filter((l) => l !== ''))
      cb()
    },
  })
  const nodes: Record<string, RunningNode> = {}
  t.teardown(async () => {
    for (const n of Object.values(nodes)) await n.close()
  })
  const { fed } = await startDemoFederation(
    (attempt) => join(root, `try-${attempt}`),
    { sizes: SIZES, ids: [PROVIDER, CONSUMER], source },
    (id, configPath) => startNode(configPath, {
      logger: id === PROVIDER ? pino({ level: 'info' }, sink) : pino({ level: 'silent' }),
      checkpointEveryMs: 0, witnessEveryMs: 0, housekeepingEveryMs: 0, sourceCheckEveryMs: 100, env: {},
    }),
    nodes,
  )
  return { fed, nodes, logLines }
}

export async function ask(r: Running, subject: { id: string; name: string }): Promise<{ status: number; json: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const res = await request(`${r.nodes[CONSUMER]!.localUrl}/local/v1/verify`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${r.fed.nodes[CONSUMER]!.appToken}` },
    body: JSON.stringify({
      provider: PROVIDER, service: 'identity.match', purpose: 'taxpayer-registration',
      basis: 'Tax Collection Administration Law art. 15', subjects: [subject],
    }),
  })
  return { status: res.statusCode, json: await res.body.json() }
}

export async function ready(r: Running): Promise<{ status: number; json: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const res = await request(`${r.nodes[PROVIDER]!.publicUrl}/readyz`)
  return { status: res.statusCode, json: await res.body.json() }
}

export async function until(what: string, cond: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 30_000
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

