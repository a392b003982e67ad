import t from 'tap'
import Database from 'better-sqlite3'
import { createHash } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { VnError } from '../../src/errors.js'
import { openDataSource, SqliteSource, type DataSource, type Row } from '../../src/sources/index.js'

const ROWS = 2500

/** A small department database: people(id TEXT PRIMARY KEY, name, n). */
function makeDb(dir: string): string {
  const path = join(dir, 'dept.sqlite')
  const db = new Database(path)
  db.exec('CREATE TABLE people (id TEXT PRIMARY KEY, name TEXT NOT NULL, n INTEGER NOT NULL)')
  const ins = db.prepare('INSERT INTO people VALUES (?, ?, ?)')
  db.transaction(() => {
    for (let i = 0; i < ROWS; i++) ins.run(`id${String(i).padStart(5, '0')}`, `name${i}`, i)
  })()
  db.close()
  return path
}

const fileHash = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex')

async function rejection(p: Promise<unknown>): Promise<{ code: string; detail: string | undefined } | Error> {
  try {
    await p
  } catch (e) {
    if (e instanceof VnError) return { code: e.code, detail: e.detail }
    return e as Error
  }
  throw new Error('expected a rejection')
}

async function collect(it: AsyncIterable<Row[]>): Promise<Row[][]> {
  const out: Row[][] = []
  for await (const b of it) out.push(b)
  return out
}

t.test('lookups bind named parameters and return rows', async (t) => {
  const path = makeDb(t.testdir())
  const src = await openDataSource({ kind: 'sqlite', path })
  t.teardown(() => src.close())
  t.equal(src.kind, 'sqlite')
  t.same(await src.query('SELECT name, n FROM people WHERE id = :id', { id: 'id00042' }), [{ name: 'name42', n: 42 }])
  t.same(await src.query('SELECT name FROM people WHERE id = :id', { id: 'nobody' }), [])
  t.same(await src.query('SELECT count(*) AS c FROM people WHERE n >= :lo AND name IS NOT :nul', { lo: 2490, nul: null }), [{ c: 10 }])
  await src.ping()
})

t.test('the connection is read-only and query_only', async (t) => {
  const path = makeDb(t.testdir())
  const src = await openDataSource({ kind: 'sqlite', path })
  t.teardown(() => src.close())
  t.same(await src.query('PRAGMA query_only', {}), [{ query_only: 1 }])
})

t.test('write statements are refused when declared, at open time', async (t) => {
  const path = makeDb(t.testdir())
  const before = fileHash(path)
  const writes = [
    'DELETE FROM people',
    "UPDATE people SET name = 'x'",
    "INSERT INTO people VALUES ('a', 'b', 1)",
    "INSERT INTO people VALUES ('a', 'b', 1) RETURNING id", // returns rows, still a write
    'CREATE TABLE t (x)',
    'DROP TABLE people',
    'PRAGMA query_only = OFF',
    "ATTACH DATABASE ':memory:' AS other",
    'BEGIN',
  ]
  for (const sql of writes) {
    t.same(await rejection(openDataSource({ kind: 'sqlite', path }, { statements: { 'svc.lookup': 'SELECT 1 AS x', 'svc.bad': sql } })), {
      code: 'VN_ERR_SOURCE_NOT_READONLY',
      detail: 'svc.bad: statement is not a read-only query (it must return rows and modify nothing)',
    }, sql)
  }
  for (const sql of ['SELECT 1; DELETE FROM people', '   ']) {
    const r = await rejection(openDataSource({ kind: 'sqlite', path }, { statements: { 'svc.bad': sql } }))
    t.equal((r as { code: string }).code, 'VN_ERR_SOURCE_NOT_READONLY', sql)
  }
  // a typo is a statement that does not compile, named as such (not as a write)
  for (const sql of ['SELEC nonsense', 'SELECT * FROM missing_table', 'SELECT nme FROM people WHERE id = :id']) {
    const r = await rejection(openDataSource({ kind: 'sqlite', path }, { statements: { 'svc.bad': sql } }))
    t.match(r, { code: 'VN_ERR_SOURCE_SQL_INVALID', detail: /^svc\.bad: statement does not compile \(SQLITE_ERROR: / }, sql)
  }
  t.equal(fileHash(path), before, 'database file unchanged')
})

t.test('declared read-only statements are accepted', async (t) => {
  const path = makeDb(t.testdir())
  const src = await openDataSource({ kind: 'sqlite', path }, {
    statements: { 'a.lookup': 'SELECT name FROM people WHERE id = :id', 'a.enumerate': 'SELECT id, name FROM people' },
  })
  await src.close()
  t.pass()
})

t.test('write statements are refused at query time too, and change nothing', async (t) => {
  const path = makeDb(t.testdir())
  const before = fileHash(path)
  const src = await openDataSource({ kind: 'sqlite', path })
  t.teardown(() => src.close())
  for (const sql of ['DELETE FROM people WHERE id = :id', "INSERT INTO people VALUES (:id, 'x', 1) RETURNING id"]) {
    t.equal((await rejection(src.query(sql, { id: 'id00001' })) as { code: string }).code, 'VN_ERR_SOURCE_NOT_READONLY', sql)
  }
  t.equal(((await rejection(collect(src.iterate('DELETE FROM people', {})))) as { code: string }).code, 'VN_ERR_SOURCE_NOT_READONLY')
  t.equal(fileHash(path), before)
})

t.test('SQL-looking subject strings are bound as values: they match nothing and change nothing', async (t) => {
  const path = makeDb(t.testdir())
  const before = fileHash(path)
  const src = await openDataSource({ kind: 'sqlite', path })
  t.teardown(() => src.close())
  const hostile = ["' OR 1=1 --", '"; DROP TABLE people; --', "id00001' OR '1'='1", '1; DELETE FROM people', "') UNION SELECT name FROM people --"]
  for (const id of hostile) {
    t.same(await src.query('SELECT name FROM people WHERE id = :id', { id }), [], id)
    t.same(await collect(src.iterate('SELECT name FROM people WHERE id = :id', { id })), [], id)
  }
  t.same(await src.query('SELECT count(*) AS c FROM people', {}), [{ c: ROWS }])
  t.equal(fileHash(path), before)
})

t.test('parameters: named only, checked types, missing ones reported', async (t) => {
  const path = makeDb(t.testdir())
  const src = await openDataSource({ kind: 'sqlite', path })
  t.teardown(() => src.close())
  const positional = await rejection(src.query('SELECT name FROM people WHERE id = ?', { id: 'id00001' }))
  t.equal((positional as { code: string }).code, 'VN_ERR_SOURCE_QUERY', 'positional parameters are not bound from a named object')
  t.same(await rejection(src.query('SELECT name FROM people WHERE id = :id', {})), { code: 'VN_ERR_SOURCE_QUERY', detail: 'sqlite: error: Missing named parameter "id"' })
  const bad: unknown[] = [{ id: true }, { id: Number.NaN }, { id: 1n }, { 'i d': 'x' }, null, ['id00001']]
  for (const params of bad) {
    t.ok((await rejection(src.query('SELECT name FROM people WHERE id = :id', params as never))) instanceof TypeError, JSON.stringify(String(params)))
  }
})

t.test('iterate yields batches, leaves the main connection free and stops early cleanly', async (t) => {
  const path = makeDb(t.testdir())
  const src = await openDataSource({ kind: 'sqlite', path })
  t.teardown(() => src.close())
  const sizes: number[] = []
  let seen = 0
  for await (const batch of src.iterate('SELECT id, n FROM people WHERE n >= :lo ORDER BY n', { lo: 0 }, 1000)) {
    sizes.push(batch.length)
    t.equal(batch[0]!.n, seen)
    seen += batch.length
    // A lookup in the middle of an enumeration works (separate connection).
    t.same(await src.query('SELECT n FROM people WHERE id = :id', { id: 'id00007' }), [{ n: 7 }])
  }
  t.same(sizes, [1000, 1000, 500])
  t.same((await collect(src.iterate('SELECT id FROM people', {}))).map((b) => b.length), [1000, 1000, 500], 'default batch size 1000')
  t.same(await collect(src.iterate('SELECT id FROM people WHERE 0', {})), [], 'no rows, no batches')

  let batches = 0
  for await (const _ of src.iterate('SELECT id FROM people', {}, 10)) {
    if (++batches === 3) break
  }
  t.equal(batches, 3)
  t.same(await src.query('SELECT count(*) AS c FROM people', {}), [{ c: ROWS }])

  for (const size of [0, -1, 1.5, 100_001]) {
    t.ok((await rejection(collect(src.iterate('SELECT id FROM people', {}, size)))) instanceof RangeError, String(size))
  }
})

t.test('closing during an iteration ends it with VN_ERR_SOURCE_UNAVAILABLE', async (t) => {
  const path = makeDb(t.testdir())
  const src = await openDataSource({ kind: 'sqlite', path })
  const it = src.iterate('SELECT id FROM people', {}, 100)[Symbol.asyncIterator]()
  t.equal((await it.next()).value?.length, 100)
  await src.close()
  t.same(await rejection(it.next()), { code: 'VN_ERR_SOURCE_UNAVAILABLE', detail: 'sqlite: data source closed during iteration' })
})

t.test('missing, non-database and closed sources are unavailable', async (t) => {
  const dir = t.testdir()
  const missing = await rejection(openDataSource({ kind: 'sqlite', path: join(dir, 'nope.sqlite') }))
  t.equal((missing as { code: string }).code, 'VN_ERR_SOURCE_UNAVAILABLE')
  const junk = join(dir, 'junk.sqlite')
  writeFileSync(junk, Buffer.alloc(4096, 0x41))
  t.same(await rejection(openDataSource({ kind: 'sqlite', path: junk })), {
    code: 'VN_ERR_SOURCE_UNAVAILABLE',
    detail: 'sqlite: file is not a readable database (SQLITE_NOTADB)',
  })

  const src: DataSource = SqliteSource.open(makeDb(dir))
  await src.close()
  await src.close()
  for (const p of [src.query('SELECT 1 AS x', {}), src.ping(), collect(src.iterate('SELECT 1 AS x', {})), src.assertReadOnly('SELECT 1 AS x', 'l')]) {
    t.same(await rejection(p), { code: 'VN_ERR_SOURCE_UNAVAILABLE', detail: 'sqlite: data source is closed' })
  }
})

t.test('runtime SQL errors are VN_ERR_SOURCE_QUERY, for lookups and enumerations', async (t) => {
  const path = makeDb(t.testdir())
  const src = await openDataSource({ kind: 'sqlite', path, statementCacheSize: 8, busyTimeoutMs: 100 })
  t.teardown(() => src.close())
  // abs() of the smallest 64-bit integer overflows when the row is computed, not when prepared.
  const overflow = 'SELECT abs(-9223372036854775807 - n) AS x FROM people WHERE n < :k'
  t.same(await rejection(src.query(overflow, { k: 2 })), { code: 'VN_ERR_SOURCE_QUERY', detail: 'sqlite: SQLITE_ERROR: integer overflow' })
  t.same(await rejection(collect(src.iterate(overflow, { k: 2 }))), { code: 'VN_ERR_SOURCE_QUERY', detail: 'sqlite: SQLITE_ERROR: integer overflow' })
  t.same(await rejection(collect(src.iterate('SELECT id FROM people WHERE id = :id', {}))), {
    code: 'VN_ERR_SOURCE_QUERY',
    detail: 'sqlite: error: Missing named parameter "id"',
  })
})

t.test('ping notices a database file corrupted under the node', async (t) => {
  const path = makeDb(t.testdir())
  const src = await openDataSource({ kind: 'sqlite', path })
  t.teardown(() => src.close())
  await src.ping()
  writeFileSync(path, Buffer.alloc(readFileSync(path).length, 0x41))
  t.equal(((await rejection(src.ping())) as { code: string }).code, 'VN_ERR_SOURCE_UNAVAILABLE')
})

t.test('unsupported kinds are a config error', async (t) => {
  t.same(await rejection(openDataSource({ kind: 'oracle', path: 'x' } as never)), {
    code: 'VN_ERR_CONFIG_INVALID',
    detail: 'dataSource.kind: unsupported data source kind (supported: sqlite, postgres, mysql)',
  })
  t.equal((await rejection(openDataSource({ kind: 'toString', path: 'x' } as never)) as { code: string }).code, 'VN_ERR_CONFIG_INVALID')
})

t.test('the statement cache evicts and re-prepares', async (t) => {
  const path = makeDb(t.testdir())
  const src = SqliteSource.open(path, { statementCacheSize: 2, busyTimeoutMs: 100 })
  t.teardown(() => src.close())
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < 4; i++) t.same(await src.query(`SELECT ${i} AS v, n FROM people WHERE id = :id`, { id: 'id00003' }), [{ v: i, n: 3 }])
  }
  t.same(await src.query('SELECT 0 AS v, n FROM people WHERE id = :id', { id: 'id00003' }), [{ v: 0, n: 3 }])
  t.same(await src.query('SELECT 0 AS v, n FROM people WHERE id = :id', { id: 'id00004' }), [{ v: 0, n: 4 }], 'cache hit')
})
