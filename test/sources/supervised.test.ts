/**
 * The supervised data source on real SQLite files: what it notices (a file unlinked, renamed
 * over, broken in place, no longer fitting its statements), what it refuses meanwhile, and how it
 * comes back. The same faults against running nodes: test/faults/source.test.ts.
 */
import t from 'tap'
import Database from 'better-sqlite3'
import { copyFileSync, openSync, readFileSync, renameSync, unlinkSync, writeSync, closeSync, writeFileSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'
import { VnError } from '../../src/errors.js'
import { SqliteSource, SupervisedSource, type DataSource, type SourceTransition } from '../../src/sources/index.js'

const ROWS = 3000
const LOOKUP = 'SELECT name FROM people WHERE id = :id'

function makeDb(path: string, name = (i: number) => `name${i}`): string {
  const db = new Database(path)
  db.exec('CREATE TABLE people (id TEXT PRIMARY KEY, name TEXT NOT NULL)')
  const ins = db.prepare('INSERT INTO people VALUES (?, ?)')
  db.transaction(() => {
    for (let i = 0; i < ROWS; i++) ins.run(`id${String(i).padStart(5, '0')}`, name(i))
  })()
  db.close()
  return path
}

async function rejection(p: Promise<unknown>): Promise<{ code: string; detail: string | undefined }> {
  try {
    await p
  } catch (e) {
    if (e instanceof VnError) return { code: e.code, detail: e.detail }
    throw e
  }
  throw new Error('expected a rejection')
}

/** A supervised source over `path` whose start-up check is "LOOKUP prepares", recording transitions. */
function supervise(path: string): { src: SupervisedSource; transitions: SourceTransition[]; opens: () => number } {
  let opens = 0
  const transitions: SourceTransition[] = []
  const fits = async (s: DataSource): Promise<void> => {
    await s.describe(LOOKUP, 'people.lookup', ['id'])
  }
  const open = async (): Promise<DataSource> => {
    opens++
    const s = SqliteSource.open(path)
    await fits(s).catch(async (e: unknown) => {
      await s.close()
      throw e
    })
    return s
  }
  const src = new SupervisedSource(SqliteSource.open(path), { open, fits, onTransition: (x) => transitions.push(x) })
  return { src, transitions, opens: () => opens }
}

t.test('SqliteSource.changed: the configured path still names the open file', async (t) => {
  const dir = t.testdir()
  const path = makeDb(join(dir, 'a.sqlite'))
  const src = SqliteSource.open(path)
  t.equal(src.changed(), undefined)
  renameSync(makeDb(join(dir, 'b.sqlite')), path)
  t.equal(src.changed(), 'data file at the configured path was replaced')
  unlinkSync(path)
  t.equal(src.changed(), 'data file missing at the configured path')
  t.same(await src.query(LOOKUP, { id: 'id00001' }), [{ name: 'name1' }], 'the open connection alone would still answer from the deleted file')
  await src.close()
  t.equal(src.changed(), 'data source is closed')
  t.same(await rejection(Promise.resolve().then(() => SqliteSource.open(path))), {
    code: 'VN_ERR_SOURCE_UNAVAILABLE', detail: 'sqlite: data file missing at the configured path',
  })
  const underAFile = join(makeDb(join(dir, 'c.sqlite')), 'x.sqlite')
  t.same(await rejection(Promise.resolve().then(() => SqliteSource.open(underAFile))), {
    code: 'VN_ERR_SOURCE_UNAVAILABLE', detail: 'sqlite: data file missing at the configured path',
  })
  const loop = join(dir, 'loop.sqlite')
  symlinkSync(loop, loop)
  t.same(await rejection(Promise.resolve().then(() => SqliteSource.open(loop))), {
    code: 'VN_ERR_SOURCE_UNAVAILABLE', detail: 'sqlite: data file cannot be examined (ELOOP)',
  })
})

t.test('a corrupt page under a query is VN_ERR_SOURCE_UNAVAILABLE, not a query failure', async (t) => {
  const path = makeDb(join(t.testdir(), 'a.sqlite'))
  // Every page after the first two (the schema stays readable) overwritten in place.
  const size = readFileSync(path).length
  const fd = openSync(path, 'r+')
  writeSync(fd, Buffer.alloc(size - 8192, 0xff), 0, size - 8192, 8192)
  closeSync(fd)
  const src = SqliteSource.open(path)
  t.teardown(() => src.close())
  const r = await rejection(src.query(LOOKUP, { id: 'id02999' }))
  t.equal(r.code, 'VN_ERR_SOURCE_UNAVAILABLE')
  t.match(r.detail, /^sqlite: SQLITE_CORRUPT/)
})

t.test('replaced by a valid file: the next answer switches to it, never unavailable', async (t) => {
  const dir = t.testdir()
  const path = makeDb(join(dir, 'a.sqlite'))
  const { src, transitions } = supervise(path)
  t.teardown(() => src.close())
  await src.assertCurrent()
  t.same(await src.query(LOOKUP, { id: 'id00007' }), [{ name: 'name7' }])
  renameSync(makeDb(join(dir, 'b.sqlite'), (i) => `other${i}`), path)
  await src.assertCurrent()
  t.same(await src.query(LOOKUP, { id: 'id00007' }), [{ name: 'other7' }], 'from the new file')
  t.same(transitions, [{ available: true, replaced: 'data file at the configured path was replaced' }])
  t.equal(src.unavailable, undefined)
})

t.test('unlinked: unavailable with a reason, every call refused, back once a valid file is there', async (t) => {
  const dir = t.testdir()
  const path = makeDb(join(dir, 'a.sqlite'))
  const copy = join(dir, 'copy.sqlite')
  copyFileSync(path, copy)
  const { src, transitions, opens } = supervise(path)
  t.teardown(() => src.close())
  unlinkSync(path)
  const missing = { code: 'VN_ERR_SOURCE_UNAVAILABLE', detail: 'sqlite: data file missing at the configured path' }
  t.same(await rejection(src.assertCurrent()), missing)
  t.same(await rejection(src.ping()), missing)
  t.same(await rejection(src.query(LOOKUP, { id: 'id00001' })), missing, 'nothing answered from the deleted file')
  t.same(await rejection(src.describe(LOOKUP, 'l', ['id'])), missing)
  t.same(await rejection(src.assertReadOnly(LOOKUP, 'l')), missing)
  t.same(await rejection((async () => {
    for await (const _ of src.iterate('SELECT id FROM people', {})) break
  })()), missing)
  t.equal(src.unavailable, 'sqlite: data file missing at the configured path')
  t.equal(src.changed(), 'sqlite: data file missing at the configured path')
  const n = opens()
  await src.check()
  await src.check()
  t.equal(opens(), n + 2, 'each check tries to open it again')
  t.equal(transitions.length, 1, 'logged once, not on every failed retry')
  t.match(transitions[0], { available: false, reason: 'sqlite: data file missing at the configured path', noticed: 'data file missing at the configured path' })
  copyFileSync(copy, path)
  await src.check()
  t.same(transitions[1], { available: true })
  t.same(await src.query(LOOKUP, { id: 'id00001' }), [{ name: 'name1' }])
})

t.test('a file that no longer fits (truncated in place) is noticed on the failed query; restored in place it is back', async (t) => {
  const dir = t.testdir()
  const path = makeDb(join(dir, 'a.sqlite'))
  const saved = readFileSync(path)
  const { src, transitions } = supervise(path)
  t.teardown(() => src.close())
  writeFileSync(path, '')
  await src.assertCurrent() // same inode: the stat alone sees nothing
  const r = await rejection(src.query(LOOKUP, { id: 'id00001' }))
  t.same(r, { code: 'VN_ERR_SOURCE_UNAVAILABLE', detail: 'data file does not fit the configured statements (VN_ERR_SOURCE_SQL_INVALID)' })
  t.match(transitions[0], { available: false, noticed: /^data file no longer fits/ })
  writeFileSync(path, saved)
  await src.ping()
  t.same(await src.query(LOOKUP, { id: 'id00001' }), [{ name: 'name1' }])
})

t.test('a genuine query error leaves a healthy source available (VN_ERR_SOURCE_QUERY)', async (t) => {
  const path = makeDb(join(t.testdir(), 'a.sqlite'))
  const { src, transitions } = supervise(path)
  t.teardown(() => src.close())
  // (id = :id) is 1: the smallest 64-bit integer, whose abs() overflows when the row is computed
  const overflow = 'SELECT abs(-9223372036854775807 - (id = :id)) AS x FROM people WHERE id = :id'
  t.same(await rejection(src.query(overflow, { id: 'id00001' })), { code: 'VN_ERR_SOURCE_QUERY', detail: 'sqlite: SQLITE_ERROR: integer overflow' })
  t.same(transitions, [])
  t.equal(src.unavailable, undefined)
  await src.ping()
})

t.test('closed: refuses, checks do nothing, close is idempotent', async (t) => {
  const path = makeDb(join(t.testdir(), 'a.sqlite'))
  const { src, opens } = supervise(path)
  await src.close()
  await src.close()
  unlinkSync(path)
  await src.check()
  t.equal(opens(), 0)
  t.same(await rejection(src.query(LOOKUP, { id: 'id00001' })), { code: 'VN_ERR_SOURCE_UNAVAILABLE', detail: 'data source is closed' })
})

t.test('a corrupt page under a supervised query: 503, and the file is re-opened (its schema still passes)', async (t) => {
  const path = makeDb(join(t.testdir(), 'a.sqlite'))
  const size = readFileSync(path).length
  const fd = openSync(path, 'r+')
  writeSync(fd, Buffer.alloc(size - 8192, 0xff), 0, size - 8192, 8192)
  closeSync(fd)
  const { src, transitions } = supervise(path)
  t.teardown(() => src.close())
  const r = await rejection(src.query(LOOKUP, { id: 'id02999' }))
  t.equal(r.code, 'VN_ERR_SOURCE_UNAVAILABLE', 'not answered from the broken connection, not a 500')
  t.same(transitions, [{ available: true, replaced: 'data file broke under a query (SQLITE_CORRUPT)' }])
  t.equal(src.unavailable, undefined, 'the re-opened file passes the start-up checks: integrity_check is the operator\'s')
})
