/**
 * Faults: the data source changes under a running node (docs/OPERATIONS.md "The data source
 * changes under the node"). Real nodes on loopback, the provider's real SQLite file unlinked,
 * renamed over, truncated and overwritten, then restored: the provider must stop answering from
 * it (readiness false, 503 VN_ERR_SOURCE_UNAVAILABLE, nothing logged for the refused exchange)
 * and come back by itself once a valid file is at the configured path.
 */
import t, { type Test } from 'tap'
import Database from 'better-sqlite3'
import { copyFile, readFile, rename, truncate, unlink, writeFile } from 'node:fs/promises'
import { Writable } from 'node:stream'
import { join } from 'node:path'
import { pino } from 'pino'
import { request } from 'undici'
import { startDemoFederation, type DemoFederation } from '../../src/demo/federation.js'
import { startNode, type RunningNode } from '../../src/http/server.js'

const PROVIDER = 'fj-psb'
const CONSUMER = 'fj-tax'

interface SourceFixture {
  fed: DemoFederation
  provider: RunningNode
  /** the provider's configured data file */
  file: string
  /** a pristine copy of it, to restore from */
  backup: string
  /** the provider's operational log lines (pino JSON) */
  logLines: string[]
  /** put the pristine file back (by rename) and wait until the provider answers from it */
  reset(): Promise<void>
  /** one identity check through the consumer's local API */
  ask(subject?: { id: string; name: string }): Promise<{ status: number; json: any }> // eslint-disable-line @typescript-eslint/no-explicit-any
  ready(): Promise<{ status: number; json: any }> // eslint-disable-line @typescript-eslint/no-explicit-any
  /** poll until `cond` holds (generous deadline: the machine may be loaded) */
  until(what: string, cond: () => Promise<boolean>): Promise<void>
}

async function sourceFixture(t: Test): Promise<SourceFixture> {
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
    { sizes: { residents: 60, enterprises: 30, taxYears: [2025] }, ids: [PROVIDER, CONSUMER] },
    (id, configPath) => startNode(configPath, {
      logger: id === PROVIDER ? pino({ level: 'info' }, sink) : pino({ level: 'silent' }),
      checkpointEveryMs: 0, witnessEveryMs: 0, housekeepingEveryMs: 0, tagSetTickMs: 0,
      sourceCheckEveryMs: 50,
    }),
    nodes,
  )
  const provider = nodes[PROVIDER]!
  const file = fed.dataset.files.publicSecurity
  const backup = join(root, 'backup.sqlite')
  await copyFile(file, backup)
  const m = fed.dataset.samples.identity.matches[0]!
  const f: SourceFixture = {
    fed, provider, file, backup, logLines,
    async reset() {
      await copyFile(backup, `${file}.restore`)
      await rename(`${file}.restore`, file)
      await f.until('answering from the restored file', async () => (await f.ready()).status === 200 && (await f.ask()).status === 200)
    },
    async ask(subject = { id: m.id, name: m.name }) {
      const res = await request(`${nodes[CONSUMER]!.localUrl}/local/v1/verify`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${fed.nodes[CONSUMER]!.appToken}` },
        body: JSON.stringify({
          provider: PROVIDER, service: 'identity.match', purpose: 'taxpayer-registration',
          basis: 'Tax Collection Administration Law art. 15', subjects: [subject],
        }),
      })
      return { status: res.statusCode, json: await res.body.json() }
    },
    async ready() {
      const res = await request(`${provider.publicUrl}/readyz`)
      return { status: res.statusCode, json: await res.body.json() }
    },
    async until(what, cond) {
      const deadline = Date.now() + 30_000
      while (!(await cond())) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`)
        await new Promise((r) => setTimeout(r, 25))
      }
    },
  }
  return f
}

/** The provider is unavailable: readiness false with a reason, exchanges 503 and logged nowhere. */
async function assertUnavailable(t: Test, f: SourceFixture, reason: RegExp): Promise<void> {
  await f.until('readiness false', async () => (await f.ready()).status === 503)
  const r = await f.ready()
  t.equal(r.json.checks.dataSource.ok, false, 'readiness: dataSource false')
  t.match(r.json.checks.dataSource.detail, reason, `readiness names the reason: ${r.json.checks.dataSource.detail}`)
  t.equal(r.json.checks.log.ok, true, 'the log is fine: only the data source is down')
  const before = await f.provider.node.log.size()
  const a = await f.ask()
  // The provider's 503 reaches the consumer's application as the peer's error (its code in peer).
  t.equal(a.status, 502, `exchange refused: ${JSON.stringify(a.json)}`)
  t.match(a.json, { code: 'VN_ERR_PEER_ERROR', peer: { status: 503, code: 'VN_ERR_SOURCE_UNAVAILABLE' } })
  t.equal(await f.provider.node.log.size(), before, 'the provider logged nothing for the refused exchange (no half-written exchange)')
}

/** Back: readiness ok and the original answer, without a restart. */
async function assertBack(t: Test, f: SourceFixture): Promise<void> {
  await f.until('readiness true', async () => (await f.ready()).status === 200)
  t.equal((await f.ready()).json.checks.dataSource.ok, true, 'readiness: dataSource ok again')
  const a = await f.ask()
  t.equal(a.status, 200, `answered again: ${JSON.stringify(a.json)}`)
  t.same(a.json.results, [{ found: true, match: true, fields: { name: true } }], 'from the restored file')
}

/** The transitions are in the operational log, and no log line carries the subject. */
function assertLogged(t: Test, f: SourceFixture, since: number): void {
  const lines = f.logLines.slice(since).map((l) => JSON.parse(l) as Record<string, unknown>)
  t.ok(lines.some((l) => l.dataSource === 'unavailable' && typeof l.reason === 'string'), 'logged: data source unavailable, with a reason')
  t.ok(lines.some((l) => l.dataSource === 'available'), 'logged: data source available again')
  const m = f.fed.dataset.samples.identity.matches[0]!
  const all = f.logLines.join('\n')
  t.notOk(all.includes(m.id) || all.includes(m.name), 'no ID number or name in the provider\'s log')
}

// One federation for all faults (building one takes seconds on a loaded machine); each fault
// starts from the pristine file and ends with the node back on it.
let f: SourceFixture
t.before(async () => {
  f = await sourceFixture(t)
})

t.test('fault: data file unlinked while running', async (t) => {
  await f.reset()
  const since = f.logLines.length
  t.equal((await f.ask()).status, 200, 'answers before the fault')
  await unlink(f.file)
  // No waiting for the timer: the very next answer checks the file first.
  const a = await f.ask()
  t.equal(a.status, 502, 'the next exchange is refused, not answered from the deleted file')
  t.match(a.json, { code: 'VN_ERR_PEER_ERROR', peer: { status: 503, code: 'VN_ERR_SOURCE_UNAVAILABLE' } })
  await assertUnavailable(t, f, /missing/)
  await copyFile(f.backup, f.file)
  await assertBack(t, f)
  assertLogged(t, f, since)
})

t.test('fault: data file replaced by rename with a valid database', async (t) => {
  await f.reset()
  const since = f.logLines.length
  const m = f.fed.dataset.samples.identity.matches[0]!
  t.same((await f.ask()).json.results, [{ found: true, match: true, fields: { name: true } }], 'answers from the first file')
  // A new database (the same schema, one name changed) put in place atomically by rename.
  const next = `${f.file}.new`
  await copyFile(f.file, next)
  const db = new Database(next)
  t.equal(db.prepare('UPDATE residents SET name = :n WHERE id_number = :id').run({ n: `${m.name}甲`, id: m.id }).changes, 1)
  db.close()
  await rename(next, f.file)
  const a = await f.ask()
  t.equal(a.status, 200, JSON.stringify(a.json))
  t.same(a.json.results, [{ found: true, match: false, fields: { name: false } }], 'the very next answer comes from the new file, not the deleted one')
  t.equal((await f.ready()).status, 200, 'ready throughout')
  const lines = f.logLines.slice(since).map((l) => JSON.parse(l) as Record<string, unknown>)
  t.ok(lines.some((l) => l.dataSource === 'reopened' && /replaced/.test(String(l.noticed))), 'the switch is logged')
  t.notOk(lines.some((l) => l.dataSource === 'unavailable'), 'never unavailable')
})

t.test('fault: data file replaced by rename with one that is not a database', async (t) => {
  await f.reset()
  const since = f.logLines.length
  t.equal((await f.ask()).status, 200)
  await writeFile(`${f.file}.new`, 'this is not a database, just text that happens to be here\n'.repeat(100))
  await rename(`${f.file}.new`, f.file)
  await assertUnavailable(t, f, /not a readable database/)
  await copyFile(f.backup, `${f.file}.new`)
  await rename(`${f.file}.new`, f.file)
  await assertBack(t, f)
  assertLogged(t, f, since)
})

t.test('fault: data file replaced by rename with a database that lacks the table', async (t) => {
  await f.reset()
  const since = f.logLines.length
  t.equal((await f.ask()).status, 200)
  const other = new Database(`${f.file}.new`)
  other.exec('CREATE TABLE unrelated (x INTEGER)')
  other.close()
  await rename(`${f.file}.new`, f.file)
  await assertUnavailable(t, f, /does not fit the configured statements/)
  await copyFile(f.backup, `${f.file}.new`)
  await rename(`${f.file}.new`, f.file)
  await assertBack(t, f)
  assertLogged(t, f, since)
})

t.test('fault: data file truncated in place', async (t) => {
  await f.reset()
  const since = f.logLines.length
  t.equal((await f.ask()).status, 200)
  await truncate(f.file, 0)
  const a = await f.ask()
  t.equal(a.status, 502, `the next exchange is refused by the provider with a coded 503, not a 500: ${JSON.stringify(a.json)}`)
  t.match(a.json, { code: 'VN_ERR_PEER_ERROR', peer: { status: 503, code: 'VN_ERR_SOURCE_UNAVAILABLE' } })
  await assertUnavailable(t, f, /does not fit the configured statements/)
  // Restored in place (same inode), as a copy over it would.
  await writeFile(f.file, await readFile(f.backup))
  await assertBack(t, f)
  assertLogged(t, f, since)
})

t.test('fault: data file overwritten in place with garbage', async (t) => {
  await f.reset()
  const since = f.logLines.length
  t.equal((await f.ask()).status, 200)
  const size = (await readFile(f.file)).length
  await writeFile(f.file, Buffer.alloc(size, 0x5a))
  const a = await f.ask()
  t.equal(a.status, 502, `the next exchange is refused by the provider with a coded 503, not a 500: ${JSON.stringify(a.json)}`)
  t.match(a.json, { code: 'VN_ERR_PEER_ERROR', peer: { status: 503, code: 'VN_ERR_SOURCE_UNAVAILABLE' } })
  await assertUnavailable(t, f, /not a readable database \(SQLITE_NOTADB\)/)
  await writeFile(f.file, await readFile(f.backup))
  await assertBack(t, f)
  assertLogged(t, f, since)
})

t.test('fault: data file missing, idle node notices and recovers on its timer alone', async (t) => {
  await f.reset()
  const since = f.logLines.length
  await unlink(f.file)
  // Nobody asks: the timer alone must notice (readiness is read from state, polled below).
  await f.until('unavailable', async () => f.logLines.slice(since).some((l) => l.includes('"dataSource":"unavailable"')))
  await copyFile(f.backup, f.file)
  await f.until('available', async () => f.logLines.slice(since).some((l) => l.includes('"dataSource":"available"')))
  await assertBack(t, f)
})
