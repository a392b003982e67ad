/**
 * The MySQL/MariaDB data source against the real server (test/helper-db.ts): the shared contract
 * (./server-cases.ts) and what is MySQL's own (backslash escapes, `#` comments, backquotes,
 * executable comments refused). Skipped with the reason when the server does not answer, failed
 * under VN_TEST_REQUIRE_DB=1.
 */
import t from 'tap'
import mysql from 'mysql2/promise'
import { openDataSource } from '../../src/sources/index.js'
import { MYSQL_URL, RO_ROLE, mysqlSkipReason, uniqueName } from '../helper-db.js'
import { rejection, roUrl, serverCases, type ServerKit } from './server-cases.js'

const reason = await mysqlSkipReason()

async function admin(sql: string): Promise<Record<string, unknown>[]> {
  const c = await mysql.createConnection({ uri: MYSQL_URL, multipleStatements: true })
  try {
    const [rows] = await c.query(sql)
    return rows as Record<string, unknown>[]
  } finally {
    await c.end()
  }
}

/** The scratch database of this run (the read-only account may use no other). */
let scratch = ''

const kit: ServerKit = {
  kind: 'mysql',
  skip: mysqlSkipReason,
  async setup(t) {
    const ns = uniqueName('vn_src')
    scratch = ns
    t.teardown(async () => {
      await admin(`DROP DATABASE IF EXISTS ${ns}`)
      // DROP DATABASE leaves the database-level grants behind.
      await admin(`REVOKE ALL PRIVILEGES ON ${ns}.* FROM '${RO_ROLE}'@'%'; REVOKE ALL PRIVILEGES ON ${ns}.* FROM '${RO_ROLE}'@'localhost'`).catch(() => undefined)
    })
    await admin(`
      CREATE DATABASE ${ns};
      CREATE TABLE ${ns}.people (id VARCHAR(40) PRIMARY KEY, name VARCHAR(40) NOT NULL, n INT NOT NULL, flag BOOLEAN, big BIGINT, born DATE, amount DECIMAL(12,2));
      INSERT INTO ${ns}.people
        WITH d(x) AS (SELECT 0 UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9),
          s(i) AS (SELECT a.x + 10 * b.x + 100 * c.x + 1000 * e.x FROM d a, d b, d c, d e)
        SELECT CONCAT('id', LPAD(i, 5, '0')), CONCAT('name', i), i, i % 2 = 0, i * 1000000000000, DATE_ADD('2000-01-01', INTERVAL i DAY), i * 1.5 FROM s WHERE i < 2500;
      CREATE FUNCTION ${ns}.bump() RETURNS INT MODIFIES SQL DATA
        BEGIN INSERT INTO ${ns}.people (id, name, n) VALUES (CONCAT('bump', RAND()), 'x', -1); RETURN 1; END;
      GRANT SELECT, EXECUTE ON ${ns}.* TO '${RO_ROLE}'@'%';
      GRANT SELECT, EXECUTE ON ${ns}.* TO '${RO_ROLE}'@'localhost';`)
    return ns
  },
  admin,
  config(ns, extra = {}, asAdmin = false) {
    const database = ns === '' ? scratch : ns
    return (asAdmin ? { kind: 'mysql', url: MYSQL_URL, ...extra } : { kind: 'mysql', url: roUrl(MYSQL_URL), database, password: RO_ROLE, ...extra }) as never
  },
  literalCases: [
    ["SELECT name FROM PEOPLE WHERE id = :id AND name <> ':id'", [{ name: 'name7' }]],
    ['SELECT ":other;" AS lit, name FROM PEOPLE WHERE id = :id', [{ lit: ':other;', name: 'name7' }]],
    ['SELECT name FROM PEOPLE WHERE id = :id -- and :other; here\n', [{ name: 'name7' }]],
    ['SELECT name FROM PEOPLE WHERE id = :id # and :other; here\n', [{ name: 'name7' }]],
    ['SELECT name /* :other ; */ FROM PEOPLE WHERE id = :id', [{ name: 'name7' }]],
    ["SELECT 'it\\'s :other' AS e, 'a'':other' AS q FROM PEOPLE WHERE id = :id", [{ e: "it's :other", q: "a':other" }]],
    ['SELECT CAST(n AS CHAR) AS t, name AS `:other` FROM PEOPLE WHERE id = :id', [{ t: '7', ':other': 'name7' }]],
  ],
  checksPasswords: true,
  sleep: (s) => `SELECT SLEEP(${s}) AS x`,
  typed: { flag: 1, n: 42, big: 42_000_000_000_000, born: '2000-02-12', amount: '63.00' },
}

t.test('mysql data source', { skip: reason ?? false }, async (t) => {
  serverCases(t, kit)

  t.test('executable comments are refused; the session is read-only', async (t) => {
    const src = await openDataSource(kit.config(''))
    t.teardown(() => src.close())
    t.same(await rejection(src.query('SELECT 1 AS x /*! , 2 AS y */', {})), { code: 'VN_ERR_SOURCE_NOT_READONLY', detail: 'query: executable comments (/*! ... */) are not accepted' })
    t.same(await src.query('SELECT @@session.tx_read_only AS ro, @@session.max_statement_time AS t', {}), [{ ro: 1, t: 5 }])
  })
})
