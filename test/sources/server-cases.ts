/**
 * The data-source contract on a real database server, once for PostgreSQL and once for
 * MySQL/MariaDB (./postgres.test.ts, ./mysql.test.ts): the same cases as ./sqlite.test.ts where
 * they apply, and the server-only ones (named parameters inside literals, the read-only session,
 * statement timeout, password handling). Each run works in a schema / database of its own, read
 * through the read-only role `verinode_ro` (the admin connection only sets it up).
 */
import type { Test } from 'tap'
import { VnError } from '../../src/errors.js'
import { openDataSource, SupervisedSource, type DataSource, type DataSourceConfig, type Row, type SourceTransition } from '../../src/sources/index.js'
import { RO_ROLE, uniqueName } from '../helper-db.js'

export const ROWS = 2500

/** One database server as the cases need it. */
export interface ServerKit {
  readonly kind: 'postgres' | 'mysql'
  /** Why to skip (the server does not answer), or undefined. */
  skip(): Promise<string | undefined>
  /**
   * Creates the scratch namespace with `people` (ROWS rows: id, name, n, flag, big, born, amount)
   * and a function `bump()` that inserts into it (a write the text checks cannot see), readable
   * by RO_ROLE; drops it at teardown; returns its name.
   */
  setup(t: Test): Promise<string>
  /** Runs an admin statement (the test's own writes), returning rows. */
  admin(sql: string): Promise<Record<string, unknown>[]>
  /** Source config reading as RO_ROLE (or as the admin, able to write, when `admin`). */
  config(ns: string, extra?: Record<string, unknown>, admin?: boolean): DataSourceConfig
  /** Literal syntax of the dialect hiding a `:name` (string, comment, quoted identifier...). */
  readonly literalCases: ReadonlyArray<readonly [sql: string, expected: Row[]]>
  /** Whether the server refuses a wrong password (the local PostgreSQL trusts 127.0.0.1). */
  readonly checksPasswords: boolean
  /** A lookup that takes about `seconds`. */
  sleep(seconds: number): string
  /** Expected typed values of row id00042 for `SELECT flag, n, big, born, amount FROM people`. */
  readonly typed: Row
}

export async function rejection(p: Promise<unknown>): Promise<{ code: string; detail: string | undefined } | Error> {
  try {
    await p
  } catch (e) {
    if (e instanceof VnError) return { code: e.code, detail: e.detail }
    return e as Error
  }
  throw new Error('expected a rejection')
}

export async function collect(it: AsyncIterable<Row[]>): Promise<Row[][]> {
  const out: Row[][] = []
  for await (const b of it) out.push(b)
  return out
}

export function serverCases(t: Test, kit: ServerKit): void {
  let ns = ''
  let src: DataSource
  t.before(async () => {
    ns = await kit.setup(t)
    src = await openDataSource(kit.config(ns))
  })
  t.teardown(() => src?.close())
  const P = (): string => `${ns}.people`

  t.test('lookups bind named parameters and return typed rows', async (t) => {
    t.equal(src.kind, kit.kind)
    t.same(await src.query(`SELECT name, n FROM ${P()} WHERE id = :id`, { id: 'id00042' }), [{ name: 'name42', n: 42 }])
    t.same(await src.query(`SELECT name FROM ${P()} WHERE id = :id`, { id: 'nobody' }), [])
    t.same(await src.query(`SELECT count(*) AS c FROM ${P()} WHERE n >= :lo AND (name = :nul OR :nul IS NULL)`, { lo: 2490, nul: null }), [{ c: 10 }], 'a name used twice, null bound')
    t.same(await src.query(`SELECT flag, n, big, born, amount FROM ${P()} WHERE id = :id`, { id: 'id00042' }), [kit.typed])
    t.same(await src.query(`SELECT (n > :k) AS above FROM ${P()} WHERE id = :id`, { id: 'id00042', k: 10 }), [{ above: 1 }], 'a comparison reads as 1/0, as in SQLite')
    t.same(await src.query(`SELECT name FROM ${P()} WHERE id = :id;`, { id: 'id00001' }), [{ name: 'name1' }], 'a final ; is dropped')
    await src.ping()
  })

  t.test('a :name inside a literal, comment or quoted identifier is not a parameter', async (t) => {
    for (const [sql, expected] of kit.literalCases) {
      t.same(await src.query(sql.replaceAll('PEOPLE', P()), { id: 'id00007' }), expected, sql)
    }
  })

  t.test('the session is read-only, and a write that slips past the text checks is refused by it', async (t) => {
    // As the admin, who could write: only the session stops it.
    const writer = await openDataSource(kit.config(ns, {}, true))
    t.teardown(() => writer.close())
    const before = await kit.admin(`SELECT count(*) AS c FROM ${P()}`)
    const sneaky = `SELECT ${ns}.bump() AS x`
    // The text cannot see inside a function. PostgreSQL's LIMIT 0 run does not call it either;
    // MariaDB's does, and the read-only transaction already refuses it there.
    const early = await writer.assertReadOnly(sneaky, 'sneaky').then(() => undefined, (e: unknown) => e as VnError)
    if (early !== undefined) t.match(early, { code: 'VN_ERR_SOURCE_NOT_READONLY', detail: /READ ONLY transaction/ })
    const r = await rejection(writer.query(sneaky, {}))
    t.match(r, { code: 'VN_ERR_SOURCE_QUERY', detail: new RegExp(`^${kit.kind}: query failed`) }, 'refused by the server, not run')
    t.equal(((await rejection(collect(writer.iterate(sneaky, {})))) as { code: string }).code, 'VN_ERR_SOURCE_QUERY', 'enumerations too')
    t.same(await kit.admin(`SELECT count(*) AS c FROM ${P()}`), before)
  })

  t.test('write statements are refused at open time, even for a role that can write', async (t) => {
    const before = await kit.admin(`SELECT count(*) AS c FROM ${P()}`)
    const writes = [
      `DELETE FROM ${P()}`,
      `UPDATE ${P()} SET name = 'x'`,
      `INSERT INTO ${P()} (id, name, n) VALUES ('a', 'b', 1)`,
      `WITH d AS (DELETE FROM ${P()} WHERE n = 1 RETURNING id) SELECT id FROM d`,
      `SELECT 1 AS x; DELETE FROM ${P()}`,
      `SELECT id INTO scratch FROM ${P()}`,
      `SELECT id FROM ${P()} FOR UPDATE`,
      `CREATE TABLE ${ns}.t2 (x int)`,
      `DROP TABLE ${P()}`,
      'SET statement_timeout = 0',
      'BEGIN',
      'SELEC nonsense',
      '   ',
    ]
    for (const sql of writes) {
      const r = await rejection(openDataSource(kit.config(ns, {}, true), { statements: { 'svc.lookup': 'SELECT 1 AS x', 'svc.bad': sql } }))
      t.equal((r as { code: string }).code, 'VN_ERR_SOURCE_NOT_READONLY', sql)
      t.match((r as { detail: string }).detail, /^svc\.bad: /, sql)
    }
    // a statement that names a missing table does not compile: named as such, not as a write
    for (const sql of [`SELECT * FROM ${ns}.missing_table`, `SELECT no_such_column FROM ${P()}`]) {
      const r = await rejection(openDataSource(kit.config(ns, {}, true), { statements: { 'svc.lookup': 'SELECT 1 AS x', 'svc.bad': sql } }))
      t.match(r, { code: 'VN_ERR_SOURCE_SQL_INVALID', detail: /^svc\.bad: statement does not compile / }, sql)
    }
    t.same(await kit.admin(`SELECT count(*) AS c FROM ${P()}`), before, 'nothing changed')
    const ok = await openDataSource(kit.config(ns, {}, true), {
      statements: { 'a.lookup': `SELECT name FROM ${P()} WHERE id = :id`, 'a.enumerate': `SELECT id, name FROM ${P()}`, 'a.with': `WITH x AS (SELECT id FROM ${P()}) SELECT id FROM x WHERE id = :id` },
    })
    await ok.close()
  })

  t.test('write statements are refused at query time too', async (t) => {
    for (const sql of [`DELETE FROM ${P()} WHERE id = :id`, `WITH d AS (DELETE FROM ${P()} WHERE id = :id RETURNING id) SELECT id FROM d`]) {
      t.equal((await rejection(src.query(sql, { id: 'id00001' })) as { code: string }).code, 'VN_ERR_SOURCE_NOT_READONLY', sql)
    }
    t.equal(((await rejection(collect(src.iterate(`DELETE FROM ${P()}`, {})))) as { code: string }).code, 'VN_ERR_SOURCE_NOT_READONLY')
  })

  t.test('describe: result columns, parameters outside the allowed list refused', async (t) => {
    t.same(await src.describe(`SELECT name, n AS num FROM ${P()} WHERE id = :id`, 'l', ['id', 'name']), { columns: ['name', 'num'] })
    t.same(await src.describe(`SELECT id FROM ${P()}`, 'e', []), { columns: ['id'] })
    t.same(await rejection(src.describe(`SELECT name FROM ${P()} WHERE id = :id AND n = :other`, 'svc.lookup', ['id'])), {
      code: 'VN_ERR_CONFIG_INVALID', detail: 'svc.lookup: Missing named parameter "other" (bound parameters: id)',
    })
    const positional = kit.kind === 'postgres' ? '$1' : '?'
    t.equal((await rejection(src.describe(`SELECT name FROM ${P()} WHERE id = ${positional}`, 'svc.lookup', ['id'])) as { code: string }).code, 'VN_ERR_CONFIG_INVALID', 'positional parameters')
    t.equal((await rejection(src.query(`SELECT name FROM ${P()} WHERE id = ${positional}`, { id: 'x' })) as { code: string }).code, 'VN_ERR_SOURCE_QUERY')
    t.equal((await rejection(src.describe(`DELETE FROM ${P()}`, 'svc.lookup', []))  as { code: string }).code, 'VN_ERR_SOURCE_NOT_READONLY')
  })

  t.test('SQL-looking subject strings are bound as values', async (t) => {
    const hostile = ["' OR 1=1 --", '"; DROP TABLE people; --', "id00001' OR '1'='1", '1; DELETE FROM people', "') UNION SELECT name FROM people --", ':id', '$1', '?']
    for (const id of hostile) {
      t.same(await src.query(`SELECT name FROM ${P()} WHERE id = :id`, { id }), [], id)
      t.same(await collect(src.iterate(`SELECT name FROM ${P()} WHERE id = :id`, { id })), [], id)
    }
    t.same(await kit.admin(`SELECT count(*) AS c FROM ${P()}`), [{ c: kit.kind === 'postgres' ? '2500' : 2500 }])
  })

  t.test('parameters: checked types, missing ones reported by name; errors carry no bound value', async (t) => {
    t.same(await rejection(src.query(`SELECT name FROM ${P()} WHERE id = :id`, {})), { code: 'VN_ERR_SOURCE_QUERY', detail: `${kit.kind}: missing named parameter "id"` })
    for (const params of [{ id: true }, { id: Number.NaN }, { id: 1n }, { 'i d': 'x' }, null, ['id00001']] as unknown[]) {
      t.ok((await rejection(src.query(`SELECT name FROM ${P()} WHERE id = :id`, params as never))) instanceof TypeError, JSON.stringify(String(params)))
    }
    // A value PostgreSQL cannot convert: its message would quote it (MySQL compares and finds nothing).
    const bad = src.query(`SELECT name FROM ${P()} WHERE born = :d`, { d: 'SECRET-110101199003074477' })
    if (kit.kind === 'postgres') {
      const r = await rejection(bad)
      t.same(r, { code: 'VN_ERR_SOURCE_QUERY', detail: 'postgres: query failed (SQLSTATE 22007)' }, 'the bound value is not in the error')
    } else {
      t.same(await bad, [])
    }
  })

  t.test('iterate yields batches, leaves lookups free and stops early cleanly', async (t) => {
    const sizes: number[] = []
    let seen = 0
    for await (const batch of src.iterate(`SELECT id, n FROM ${P()} WHERE n >= :lo ORDER BY n`, { lo: 0 }, 1000)) {
      sizes.push(batch.length)
      t.equal(batch[0]!.n, seen)
      seen += batch.length
      t.same(await src.query(`SELECT n FROM ${P()} WHERE id = :id`, { id: 'id00007' }), [{ n: 7 }])
    }
    t.same(sizes, [1000, 1000, 500])
    t.same((await collect(src.iterate(`SELECT id FROM ${P()}`, {}))).map((b) => b.length), [1000, 1000, 500], 'default batch size 1000')
    t.same(await collect(src.iterate(`SELECT id FROM ${P()} WHERE n < 0`, {})), [], 'no rows, no batches')
    t.same((await collect(src.iterate(`SELECT id FROM ${P()} WHERE n < 2000`, {}, 1000))).map((b) => b.length), [1000, 1000], 'an exact multiple')
    for (let round = 0; round < 6; round++) {
      // more early stops than the pool has connections: each gives its connection back
      let batches = 0
      for await (const _ of src.iterate(`SELECT id FROM ${P()}`, {}, 10)) {
        if (++batches === 3) break
      }
      t.equal(batches, 3)
    }
    t.same(await src.query(`SELECT count(*) AS c FROM ${P()}`, {}), [{ c: ROWS }])
    for (const size of [0, -1, 1.5, 100_001]) {
      t.ok((await rejection(collect(src.iterate(`SELECT id FROM ${P()}`, {}, size)))) instanceof RangeError, String(size))
    }
    // a subquery that returns two rows from the second row on: a runtime error mid-enumeration
    const twoRows = `SELECT id, (SELECT p2.id FROM ${P()} p2 WHERE p2.n <= p.n AND p2.n < 2) AS x FROM ${P()} p ORDER BY n`
    t.match(await rejection(collect(src.iterate(twoRows, {}, 1))), { code: 'VN_ERR_SOURCE_QUERY', detail: new RegExp(`^${kit.kind}: query failed`) })
    t.same(await src.query(`SELECT n FROM ${P()} WHERE id = :id`, { id: 'id00009' }), [{ n: 9 }], 'the source still answers')
  })

  t.test('a statement past the statement timeout is a 503, and the source stays usable', async (t) => {
    const slow = await openDataSource(kit.config(ns, { statementTimeoutMs: 300 }))
    t.teardown(() => slow.close())
    const started = Date.now()
    const r = await rejection(slow.query(kit.sleep(3), {}))
    t.match(r, { code: 'VN_ERR_SOURCE_UNAVAILABLE', detail: new RegExp(`^${kit.kind}: statement timeout`) })
    t.ok(Date.now() - started < 2500, 'cancelled near the timeout')
    t.equal(new VnError((r as { code: 'VN_ERR_SOURCE_UNAVAILABLE' }).code).statusCode, 503)
    await slow.ping()
    t.same(await slow.query(`SELECT n FROM ${P()} WHERE id = :id`, { id: 'id00003' }), [{ n: 3 }])
    // supervised, as in a node: a slow lookup is a 503, but the server answers a ping, so the
    // source stays available on the same pool (no re-open, no transition)
    let opens = 0
    const transitions: SourceTransition[] = []
    const sup = new SupervisedSource(await openDataSource(kit.config(ns, { statementTimeoutMs: 300 })), {
      open: async () => {
        opens++
        return openDataSource(kit.config(ns, { statementTimeoutMs: 300 }))
      },
      onTransition: (x) => transitions.push(x),
    })
    t.teardown(() => sup.close())
    t.match(await rejection(sup.query(kit.sleep(3), {})), { code: 'VN_ERR_SOURCE_UNAVAILABLE', detail: new RegExp(`^${kit.kind}: statement timeout`) })
    t.same([opens, transitions, sup.unavailable], [0, [], undefined], 'still available, not re-opened')
    t.same(await sup.query(`SELECT n FROM ${P()} WHERE id = :id`, { id: 'id00004' }), [{ n: 4 }])
  })

  t.test('closing during an iteration ends it with VN_ERR_SOURCE_UNAVAILABLE; closed sources refuse', async (t) => {
    const s = await openDataSource(kit.config(ns))
    const it = s.iterate(`SELECT id FROM ${P()}`, {}, 100)[Symbol.asyncIterator]()
    t.equal((await it.next()).value?.length, 100)
    await s.close()
    await s.close()
    t.same(await rejection(it.next()), { code: 'VN_ERR_SOURCE_UNAVAILABLE', detail: `${kit.kind}: data source closed during iteration` })
    for (const p of [s.query('SELECT 1 AS x', {}), s.ping(), collect(s.iterate('SELECT 1 AS x', {})), s.assertReadOnly('SELECT 1 AS x', 'l')]) {
      t.same(await rejection(p), { code: 'VN_ERR_SOURCE_UNAVAILABLE', detail: `${kit.kind}: data source is closed` })
    }
  })

  t.test('passwords: from a function (file, env), never in the URL; a wrong one is unavailable', async (t) => {
    const cfg = kit.config(ns) as DataSourceConfig & { url: string }
    let asked = 0
    const viaFn = await openDataSource({ ...cfg, password: async () => { asked++; return RO_ROLE } } as DataSourceConfig)
    t.same(await viaFn.query(`SELECT n FROM ${P()} WHERE id = :id`, { id: 'id00003' }), [{ n: 3 }])
    await viaFn.close()
    if (kit.checksPasswords) t.ok(asked >= 1, 'asked for the password')
    const u = new URL(cfg.url)
    u.password = 'secret'
    t.same(await rejection(openDataSource({ ...cfg, url: u.toString() } as DataSourceConfig)), {
      code: 'VN_ERR_CONFIG_INVALID', detail: 'dataSource.url: must not contain a password (use passwordFile or passwordEnv)',
    })
    if (kit.checksPasswords) {
      const wrong = await rejection(openDataSource({ ...cfg, password: 'not-the-password' } as DataSourceConfig))
      t.match(wrong, { code: 'VN_ERR_SOURCE_UNAVAILABLE', detail: new RegExp(`^${kit.kind}: database unavailable \\(`) })
      t.notMatch(JSON.stringify(wrong), /not-the-password/)
    }
    if (kit.checksPasswords) {
      const unreadable = await rejection(openDataSource({ ...cfg, password: async () => { throw Object.assign(new Error('x'), { code: 'ENOENT' }) } } as DataSourceConfig))
      t.same(unreadable, { code: 'VN_ERR_SOURCE_UNAVAILABLE', detail: `${kit.kind}: the database password cannot be read (ENOENT)` })
    }
  })

  t.test('a server that does not answer is unavailable at open', async (t) => {
    const cfg = kit.config(ns) as DataSourceConfig & { url: string }
    const u = new URL(cfg.url)
    u.port = '1' // nothing listens on port 1
    const r = await rejection(openDataSource({ ...cfg, url: u.toString(), connectTimeoutMs: 1000 } as DataSourceConfig))
    t.match(r, { code: 'VN_ERR_SOURCE_UNAVAILABLE', detail: `${kit.kind}: database unavailable (ECONNREFUSED)` })
  })
}

/** `RO_ROLE`'s URL from an admin URL (same host, port and database). */
export function roUrl(adminUrl: string): string {
  const u = new URL(adminUrl)
  u.username = RO_ROLE
  u.password = ''
  return u.toString()
}

export { uniqueName }
