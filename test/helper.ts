/**
 * Test fixtures: a real federation of demo departments in a temp folder, nodes listening on
 * 127.0.0.1, torn down after the test. Nodes talk over real HTTP.
 */
import type { Test } from 'tap'
import { request } from 'undici'
import { startDemoFederation, type DemoFederation, type BuildDemoOptions } from '../src/demo/federation.js'
import { startNode, type RunningNode } from '../src/http/server.js'
import { pino, type Logger } from 'pino'
import { dirname, join } from 'node:path'
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { auditExport, type AuditReport } from '../src/audit/verify.js'
import { loadPrivateKey } from '../src/crypto/keys.js'
import { noteSigner, signCheckpoint } from '../src/log/checkpoint.js'
import { leafHash, rootFromLeafHashes } from '../src/log/merkle.js'
import { logOrigin } from '../src/node/runtime.js'
import { canonicalJson } from '../src/protocol/canonical-json.js'

export interface Fixture {
  fed: DemoFederation
  nodes: Record<string, RunningNode>
  /** POST /local/v1/verify on `member`'s local API with its app token */
  verify(member: string, body: unknown, token?: string): Promise<{ status: number; json: any }> // eslint-disable-line @typescript-eslint/no-explicit-any
}

export async function federationFixture(
  t: Test,
  opts: BuildDemoOptions & {
    start?: string[]
    logger?: Logger
    housekeepingEveryMs?: number
    /** prom-client's process metrics on /metrics, as `verinode serve` has them */
    processMetrics?: boolean
    /** runs before each node starts, with its folder (e.g. to put its var/ on another file system) */
    beforeStart?: (id: string, nodeDir: string) => Promise<void>
  } = {},
): Promise<Fixture> {
  const nodes: Record<string, RunningNode> = {}
  // Registered first, so nodes already started are closed even if a later one fails to start, and
  // before the test folder (whose removal is a teardown too, run in order): a node still building
  // its tag set writes into it until it is closed.
  t.teardown(async () => {
    for (const n of Object.values(nodes)) await n.close()
  })
  const root = t.testdir({})
  // Ports are chosen before the manifest is signed; another process may take one in between.
  // Then the whole federation is built again on fresh ports.
  const { fed } = await startDemoFederation(
    (attempt) => `${root}/try-${attempt}`,
    { sizes: { residents: 300, enterprises: 200, taxYears: [2024, 2025] }, ...opts, ...(opts.start ? { ids: opts.start } : {}) },
    async (id, configPath) => {
      await opts.beforeStart?.(id, dirname(configPath))
      return startNode(configPath, {
        logger: opts.logger ?? pino({ level: 'silent' }), checkpointEveryMs: 0, witnessEveryMs: 0,
        ...(opts.housekeepingEveryMs === undefined ? {} : { housekeepingEveryMs: opts.housekeepingEveryMs }),
        ...(opts.processMetrics === undefined ? {} : { processMetrics: opts.processMetrics }),
      })
    },
    nodes,
  )
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

/**
 * Audits a copy of the log export `exportDir` whose records `edit` rewrote, with the checkpoints
 * re-signed by `member`'s real log key: only the records are wrong, every signature is good.
 */
export async function auditEditedExport(
  fed: DemoFederation, member: string, exportDir: string, copyDir: string,
  edit: (records: Record<string, unknown>[]) => Record<string, unknown>[],
): Promise<AuditReport> {
  await cp(exportDir, copyDir, { recursive: true })
  const lines = (await readFile(join(copyDir, 'entries.jsonl'), 'utf8')).split('\n').filter((l) => l !== '')
  const leaves = edit(lines.map((l) => JSON.parse(l) as Record<string, unknown>)).map((x) => canonicalJson(x))
  await writeFile(join(copyDir, 'entries.jsonl'), leaves.map((l) => `${l}\n`).join(''))
  const logKey = await loadPrivateKey(join(fed.dir, member, 'keys', 'log.key'))
  const origin = logOrigin(fed.federation, member)
  const rootHash = rootFromLeafHashes(leaves.map((l) => leafHash(Buffer.from(l, 'utf8'))))
  await rm(join(copyDir, 'checkpoints'), { recursive: true })
  await mkdir(join(copyDir, 'checkpoints'))
  await writeFile(join(copyDir, 'checkpoints', `${leaves.length}.note`), signCheckpoint({ origin, size: leaves.length, rootHash }, noteSigner(origin, logKey)))
  return auditExport(copyDir)
}
