/**
 * A database server that goes down and comes back, for real: a private PostgreSQL cluster and a
 * private MariaDB instance (test/helper-db-server.ts) are stopped and started under an open
 * source. While down, lookups and enumerations fail with the coded 503 (no bound value in the
 * detail), `ping` rejects (readiness false) and the supervised source reports one transition;
 * when the server is back the same pool answers again, and the supervised source is available
 * again by itself, without a restart.
 */
import t, { type Test } from 'tap'
import { VnError } from '../../src/errors.js'
import { openDataSource, SupervisedSource, type DataSource, type DataSourceConfig, type SourceTransition } from '../../src/sources/index.js'
import {
  privateAdmin, privateMariadbSkipReason, privatePgSkipReason, startPrivateMariadb, startPrivatePostgres, type PrivateServer,
} from '../helper-db-server.js'

const LOOKUP = 'SELECT name FROM people WHERE id = :id'
const SECRET = 'id-110101199003074477'

async function rejection(p: Promise<unknown>): Promise<{ code: string; detail: string | undefined; status: number }> {
  try {
    await p
  } catch (e) {
    if (e instanceof VnError) return { code: e.code, detail: e.detail, status: e.statusCode }
    throw e
  }
  throw new Error('expected a rejection')
}

async function outage(t: Test, kind: 'postgres' | 'mysql', server: PrivateServer, cfg: DataSourceConfig): Promise<void> {
  const fits = async (s: DataSource): Promise<void> => {
    await s.describe(LOOKUP, 'people.lookup', ['id'])
  }
  const open = async (): Promise<DataSource> => {
    const s = await openDataSource(cfg, { statements: { 'people.lookup': LOOKUP } })
    await fits(s).catch(async (e: unknown) => {
      await s.close()
      throw e
    })
    return s
  }
  const raw = await openDataSource(cfg)
  t.teardown(() => raw.close())
  const transitions: SourceTransition[] = []
  const sup = new SupervisedSource(await open(), { open, fits, onTransition: (x) => transitions.push(x) })
  t.teardown(() => sup.close())
  t.same(await sup.query(LOOKUP, { id: 'id1' }), [{ name: 'one' }])
  t.same(await raw.query(LOOKUP, { id: 'id1' }), [{ name: 'one' }])

  await server.stop()
  for (const src of [raw, sup]) {
    const r = await rejection(src.query(LOOKUP, { id: SECRET }))
    t.equal(r.code, 'VN_ERR_SOURCE_UNAVAILABLE', 'a lookup while down')
    t.equal(r.status, 503)
    t.match(r.detail, new RegExp(`^${kind}: database unavailable \\(`))
    t.notMatch(JSON.stringify(r), /110101/, 'no bound value in the error')
    t.equal((await rejection((async () => {
      for await (const _ of src.iterate('SELECT id FROM people', {})) break
    })())).code, 'VN_ERR_SOURCE_UNAVAILABLE', 'an enumeration while down')
    t.equal((await rejection(src.ping())).code, 'VN_ERR_SOURCE_UNAVAILABLE', 'readiness is false')
  }
  t.match(sup.unavailable, new RegExp(`^${kind}: database unavailable`))
  t.equal(transitions.length, 1, 'one transition, logged once')
  t.match(transitions[0], { available: false, noticed: /^database does not answer|^database unavailable/ })
  await sup.check()
  t.equal(transitions.length, 1, 'a failed retry is not another transition')

  await server.start()
  // the same pool reconnects by itself
  t.same(await raw.query(LOOKUP, { id: 'id1' }), [{ name: 'one' }], 'the pool answers again after the restart')
  await raw.ping()
  // the supervised source: the next check (the node's timer, a readiness probe) brings it back
  await sup.ping()
  t.same(transitions[1], { available: true })
  t.equal(sup.unavailable, undefined)
  t.same(await sup.query(LOOKUP, { id: 'id1' }), [{ name: 'one' }])
  t.same(await collectIds(sup), ['id1', 'id2'])
}

async function collectIds(s: DataSource): Promise<string[]> {
  const out: string[] = []
  for await (const b of s.iterate('SELECT id FROM people ORDER BY id', {})) out.push(...b.map((r) => String(r.id)))
  return out
}

t.test('postgres: down and back', { skip: privatePgSkipReason() ?? false }, async (t) => {
  const server = await startPrivatePostgres()
  t.teardown(() => server.destroy())
  await privateAdmin(server, 'postgres', `
    CREATE ROLE reader LOGIN;
    CREATE TABLE people (id text PRIMARY KEY, name text NOT NULL);
    INSERT INTO people VALUES ('id1', 'one'), ('id2', 'two');
    GRANT SELECT ON people TO reader;`)
  const url = new URL(server.url)
  url.username = 'reader'
  await outage(t, 'postgres', server, { kind: 'postgres', url: url.toString(), connectTimeoutMs: 2000, statementTimeoutMs: 2000 })
})

t.test('mariadb: down and back', { skip: privateMariadbSkipReason() ?? false }, async (t) => {
  const server = await startPrivateMariadb()
  t.teardown(() => server.destroy())
  await privateAdmin(server, 'mysql', `
    CREATE DATABASE dept;
    CREATE TABLE dept.people (id VARCHAR(40) PRIMARY KEY, name VARCHAR(40) NOT NULL);
    INSERT INTO dept.people VALUES ('id1', 'one'), ('id2', 'two');
    CREATE USER 'reader'@'%' IDENTIFIED BY 'reader-pw';
    GRANT SELECT ON dept.* TO 'reader'@'%';`)
  await outage(t, 'mysql', server, {
    kind: 'mysql', host: '127.0.0.1', port: server.port, database: 'dept', user: 'reader', password: 'reader-pw', connectTimeoutMs: 2000, statementTimeoutMs: 2000,
  })
})
