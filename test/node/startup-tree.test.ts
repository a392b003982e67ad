/**
 * Start-up checks the stored log tree against the last signed checkpoint (src/node/recovery.ts
 * `checkTreeAtStart`): a log cut back or a subtree hash rewritten while the node was stopped stops
 * it with VN_ERR_LOG_TREE_MISMATCH before it appends anything; an untouched log starts.
 */
import t, { type Test } from 'tap'
import { dirname, join } from 'node:path'
import { copyFileSync, existsSync } from 'node:fs'
import { cp } from 'node:fs/promises'
import Database from 'better-sqlite3'
import { pino } from 'pino'
import { startNode } from '../../src/http/server.js'
import { federationFixture } from '../helper.js'

const PROVIDER = 'fj-psb'
const quiet = { logger: pino({ level: 'silent' }), checkpointEveryMs: 0, witnessEveryMs: 0 }

/**
 * A provider that ran, checkpointed and stopped, once for the file (root `t`: torn down at the end);
 * each test gets a copy of its folder below (`stoppedNode`), so the tests that damage a log do not
 * see each other and only one federation is built and started.
 */
let stopped: Promise<{ nodeDir: string; size: number; n: number }> | undefined
function stoppedOnce(): Promise<{ nodeDir: string; size: number; n: number }> {
  stopped ??= (async () => {
    const f = await federationFixture(t, { start: [PROVIDER] })
    const node = f.nodes[PROVIDER]!
    const size = await node.node.log.size()
    await node.close() // stores a last checkpoint
    delete f.nodes[PROVIDER]
    return { nodeDir: dirname(f.fed.nodes[PROVIDER]!.configPath), size, n: 0 }
  })()
  return stopped
}

/** A copy of the stopped provider's folder (keys, manifest, config, var/) for this test: its config path, log file and leaf count. */
async function stoppedNode(t: Test): Promise<{ configPath: string; logDb: string; size: number }> {
  const once = await stoppedOnce()
  const nodeDir = `${once.nodeDir}-copy-${++once.n}`
  await cp(once.nodeDir, nodeDir, { recursive: true })
  const configPath = join(nodeDir, 'verinode.json')
  const logDb = join(nodeDir, 'var', 'log.db')
  t.ok(existsSync(logDb), 'the log database is where the test expects it')
  return { configPath, logDb, size: once.size }
}

function edit(path: string, sql: string, ...params: (string | number)[]): number {
  const db = new Database(path)
  try {
    return db.prepare(sql).run(...params).changes
  } finally {
    db.close()
  }
}

t.test('an untouched log starts again, and its start-up entries follow the old ones', async (t) => {
  const n = await stoppedNode(t)
  const again = await startNode(n.configPath, quiet)
  t.teardown(() => again.close())
  t.ok(await again.node.log.size() > n.size)
})

t.test('a log cut back below the last checkpoint stops start-up', async (t) => {
  const n = await stoppedNode(t)
  const db = new Database(n.logDb)
  const cpSize = (db.prepare('SELECT max(size) AS s FROM checkpoints').get() as { s: number }).s
  db.close()
  t.ok(cpSize > 0, 'a checkpoint was stored')
  t.equal(edit(n.logDb, 'DELETE FROM leaves WHERE idx = ?', cpSize - 1), 1)
  await t.rejects(startNode(n.configPath, quiet), { code: 'VN_ERR_LOG_TREE_MISMATCH', detail: /holds \d+ leaves, the last signed checkpoint \d+/ })
})

t.test('a rewritten subtree hash stops start-up; the same log restored starts', async (t) => {
  const n = await stoppedNode(t)
  const backup = `${n.logDb}.bak`
  t.notOk(existsSync(`${n.logDb}-wal`), 'a stopped node leaves no write-ahead log behind')
  copyFileSync(n.logDb, backup)
  t.ok(edit(n.logDb, 'UPDATE nodes SET hash = randomblob(32)') > 0)
  await t.rejects(startNode(n.configPath, quiet), { code: 'VN_ERR_LOG_TREE_MISMATCH', detail: /is not the signed root/ })
  copyFileSync(backup, n.logDb)
  const again = await startNode(n.configPath, quiet)
  t.teardown(() => again.close())
  t.ok(await again.node.log.size() > n.size, `the restored log starts and appends (${await again.node.log.size()} > ${n.size})`)
})
