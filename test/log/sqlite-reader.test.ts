/** The SQLite LogReader's refusals: a log database that is missing, or whose leaves have a gap. */
import t from 'tap'
import Database from 'better-sqlite3'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SqliteLogReader } from '../../src/log/sqlite-reader.js'
import { SqliteLogStore } from '../../src/log/store.js'

const dir = mkdtempSync(join(tmpdir(), 'vn-reader-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
const enc = new TextEncoder()

t.test('a missing database is VN_ERR_AUDIT_EXPORT_INVALID', async (t) => {
  await t.rejects(SqliteLogReader.open(join(dir, 'nope.db')), { code: 'VN_ERR_AUDIT_EXPORT_INVALID' })
})

t.test('a leaf missing from the middle of the log is found while reading, and nothing is written', async (t) => {
  const path = join(dir, 'gap.db')
  const store = await SqliteLogStore.open(path, { writer: 'inline' })
  await store.appendMany(Array.from({ length: 5 }, (_, i) => enc.encode(`{"n":${i}}`)))
  await store.close()
  const db = new Database(path)
  db.prepare('DELETE FROM leaves WHERE idx = 2').run()
  db.close()
  const r = await SqliteLogReader.open(path)
  t.teardown(() => r.close())
  await t.rejects(
    r.snapshot(async (s) => {
      for await (const _ of s.leaves());
    }),
    { code: 'VN_ERR_AUDIT_EXPORT_INVALID', message: /index 2 is missing/ },
  )
  // the snapshot's transaction ended: the reader still works
  t.equal(await r.snapshot(async (s) => s.size), 5)
  const last = new Database(path)
  last.prepare('DELETE FROM leaves WHERE idx = 4').run()
  last.close()
  t.equal(await r.snapshot(async (s) => s.size), 4, 'a missing tail is a shorter log')
})
