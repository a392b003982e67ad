/**
 * Test fixtures: a real federation of demo departments in a temp folder, nodes listening on
 * 127.0.0.1, torn down after the test. Nodes talk over real HTTP.
 */
import type { Test } from 'tap'
import { request } from 'undici'
import { buildDemoFederation, type DemoFederation, type BuildDemoOptions } from '../src/demo/federation.js'
import { startNode, type RunningNode } from '../src/http/server.js'
import { pino, type Logger } from 'pino'

export interface Fixture {
  fed: DemoFederation
  nodes: Record<string, RunningNode>
  /** POST /local/v1/verify on `member`'s local API with its app token */
  verify(member: string, body: unknown, token?: string): Promise<{ status: number; json: any }> // eslint-disable-line @typescript-eslint/no-explicit-any
}

export async function federationFixture(t: Test, opts: BuildDemoOptions & { start?: string[]; logger?: Logger } = {}): Promise<Fixture> {
  const root = t.testdir({})
  const nodes: Record<string, RunningNode> = {}
  // Registered first, so nodes already started are closed even if a later one fails to start.
  t.teardown(async () => {
    for (const n of Object.values(nodes)) await n.close()
  })
  // Ports are chosen before the manifest is signed; another process may take one in between. Then
  // the whole federation is built again on fresh ports.
  let fed: DemoFederation | undefined
  for (let attempt = 1; fed === undefined; attempt++) {
    const built = await buildDemoFederation(`${root}/try-${attempt}`, { sizes: { residents: 300, enterprises: 200, taxYears: [2024, 2025] }, ...opts })
    try {
      for (const id of opts.start ?? Object.keys(built.nodes)) {
        const n = built.nodes[id]
        if (n === undefined) throw new Error(`no node ${id}`)
        nodes[id] = await startNode(n.configPath, { logger: opts.logger ?? pino({ level: 'silent' }), checkpointEveryMs: 0, witnessEveryMs: 0 })
      }
      fed = built
    } catch (e) {
      for (const [id, n] of Object.entries(nodes)) { await n.close(); delete nodes[id] }
      if ((e as { code?: string }).code !== 'EADDRINUSE' || attempt >= 3) throw e
    }
  }
  return {
    fed,
    nodes,
    async verify(member, body, token) {
      const n = nodes[member]
      if (n === undefined) throw new Error(`node ${member} not started`)
      const res = await request(`${n.localUrl}/local/v1/verify`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token ?? fed.nodes[member]?.appToken}` },
        body: JSON.stringify(body),
      })
      return { status: res.statusCode, json: await res.body.json() }
    },
  }
}
