/**
 * The PostgreSQL data source against the real server (test/helper-db.ts): the shared contract
 * (./server-cases.ts) and what is PostgreSQL's own (dollar quotes, casts, int8 and bytea).
 * Skipped with the reason when the server does not answer, failed under VN_TEST_REQUIRE_DB=1.
 */
import t from 'tap'
import pg from 'pg'
import { openDataSource } from '../../src/sources/index.js'
import { PG_URL, RO_ROLE, pgSkipReason, uniqueName } from '../helper-db.js'
import { rejection, roUrl, serverCases, type ServerKit } from './server-cases.js'

const reason = await pgSkipReason()

async function admin(sql: string): Promise<Record<string, unknown>[]> {
  const c = new pg.Client({ connectionString: PG_URL })
  await c.connect()
  try {
    return (await c.query(sql)).rows as Record<string, unknown>[]
  } finally {
    await c.end()
  }
}

let scratch = ''

const kit: ServerKit = {
  kind: 'postgres',
  skip: pgSkipReason,
  async setup(t) {
    const ns = uniqueName('vn_src')
    scratch = ns
    await admin(`
      CREATE SCHEMA ${ns};
      CREATE TABLE ${ns}.people (id text PRIMARY KEY, name text NOT NULL, n int NOT NULL, flag boolean, big bigint, born date, amount numeric(12,2));
      INSERT INTO ${ns}.people SELECT 'id' || lpad(i::text, 5, '0'), 'name' || i, i, i % 2 = 0, i::bigint * 1000000000000, date '2000-01-01' + i, i * 1.5
        FROM generate_series(0, 2499) AS i;
      CREATE FUNCTION ${ns}.bump() RETURNS int LANGUAGE plpgsql AS $$
        BEGIN INSERT INTO ${ns}.people (id, name, n) VALUES ('bump' || random(), 'x', -1); RETURN 1; END $$;
      GRANT USAGE ON SCHEMA ${ns} TO ${RO_ROLE};
      GRANT SELECT ON ALL TABLES IN SCHEMA ${ns} TO ${RO_ROLE};`)
    t.teardown(() => admin(`DROP SCHEMA ${ns} CASCADE`))
    return ns
  },
  admin,
  config(_ns, extra = {}, asAdmin = false) {
    return (asAdmin ? { kind: 'postgres', url: PG_URL, ...extra } : { kind: 'postgres', url: roUrl(PG_URL), password: RO_ROLE, ...extra }) as never
  },
  literalCases: [
    ["SELECT name FROM PEOPLE WHERE id = :id AND name <> ':id'", [{ name: 'name7' }]],
    ["SELECT ':other;' AS lit, name FROM PEOPLE WHERE id = :id", [{ lit: ':other;', name: 'name7' }]],
    ['SELECT name FROM PEOPLE WHERE id = :id -- and :other; here\n', [{ name: 'name7' }]],
    ['SELECT name /* :other /* nested :x */ ; */ FROM PEOPLE WHERE id = :id', [{ name: 'name7' }]],
    ['SELECT $$ :other; $$ AS d, $t$ it\'s :other $t$ AS e FROM PEOPLE WHERE id = :id', [{ d: ' :other; ', e: " it's :other " }]],
    ["SELECT E'it\\'s :other' AS e, 'a'':other' AS q FROM PEOPLE WHERE id = :id", [{ e: "it's :other", q: "a':other" }]],
    ['SELECT n::text AS t, name AS ":other" FROM PEOPLE WHERE id = :id::text', [{ t: '7', ':other': 'name7' }]],
  ],
  checksPasswords: false,
  sleep: (s) => `SELECT 1 AS x FROM pg_sleep(${s})`,
  typed: { flag: 1, n: 42, big: 42_000_000_000_000, born: '2000-02-12', amount: '63.00' },
}

t.test('postgres data source', { skip: reason ?? false }, async (t) => {
  serverCases(t, kit)

  t.test('int8 beyond 2^53 reads as bigint, bytea as bytes, json and arrays as text', async (t) => {
    const src = await openDataSource(kit.config(''))
    t.teardown(() => src.close())
    const [row] = await src.query("SELECT 9007199254740993::int8 AS b, 7::int8 AS s, '\\x0102'::bytea AS raw, '{\"a\": 1}'::jsonb AS j, ARRAY[1,2] AS arr, 1.5::float8 AS f", {})
    t.equal(row?.b, 9007199254740993n)
    t.equal(row?.s, 7)
    t.same(row?.raw, new Uint8Array([1, 2]))
    t.equal(row?.j, '{"a": 1}')
    t.equal(row?.arr, '{1,2}')
    t.equal(row?.f, 1.5)
    t.same(await src.query("SELECT current_setting('default_transaction_read_only') AS ro", {}), [{ ro: 'on' }])
  })

  t.test('schema: unqualified names are read from it', async (t) => {
    const src = await openDataSource({ ...kit.config(''), schema: scratch } as never)
    t.teardown(() => src.close())
    t.same(await src.query('SELECT n FROM people WHERE id = :id', { id: 'id00005' }), [{ n: 5 }])
    t.same(await rejection(openDataSource({ ...kit.config(''), schema: 'x; DROP' } as never)), {
      code: 'VN_ERR_CONFIG_INVALID', detail: 'dataSource.schema: expected a plain identifier (letters, digits, _)',
    })
  })
})
