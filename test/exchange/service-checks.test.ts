/**
 * Start-up checks of the services' statements against the data source (issue 12 §7): a lookup
 * its question kind cannot answer from, an he value lookup without `value`, an oprf enumeration
 * missing a field, or SQL naming a parameter the node never binds stops start-up with
 * VN_ERR_CONFIG_INVALID, every problem named; the demo-shaped statements pass.
 */
import t from 'tap'
import Database from 'better-sqlite3'
import { join } from 'node:path'
import { checkServiceStatements } from '../../src/exchange/service-checks.js'
import { ServiceSchema, type ServiceConfig } from '../../src/config/schema.js'
import { SqliteSource } from '../../src/sources/index.js'

const dir = t.testdir()
const path = join(dir, 'dept.db')
const db = new Database(path)
db.exec(`
  CREATE TABLE residents (id_number TEXT PRIMARY KEY, name TEXT);
  CREATE TABLE enterprises (uscc TEXT PRIMARY KEY, status TEXT, tier TEXT);
  CREATE TABLE tax (uscc TEXT, year INTEGER, paid INTEGER, due INTEGER);
`)
db.close()
const source = SqliteSource.open(path)
t.teardown(() => source.close())

const svc = (o: Record<string, unknown>): ServiceConfig => ServiceSchema.parse({ id: 'a.b', title: { en: 'x' }, ...o })
const matchSvc = (lookup: string): ServiceConfig => svc({ kind: 'match', fields: { id: { kind: 'residentId', key: true }, name: { kind: 'name' } }, lookup })
const statusSvc = (lookup: string, o: Record<string, unknown> = {}): ServiceConfig =>
  svc({ kind: 'status', statuses: ['open', 'closed'], fields: { uscc: { kind: 'uscc', key: true } }, lookup, ...o })
const taxSvc = (o: Record<string, unknown>): ServiceConfig => svc({
  kind: 'threshold', fields: { uscc: { kind: 'uscc', key: true }, year: { kind: 'year', key: true }, bound: { kind: 'amount', required: false } },
  modes: ['plain', 'he'], lookup: 'SELECT paid >= due AS paid_in_full, paid >= CAST(:bound AS INTEGER) AS meets_bound FROM tax WHERE uscc = :uscc AND year = :year',
  he: { valueLookup: 'SELECT paid AS value FROM tax WHERE uscc = :uscc AND year = :year' }, ...o,
})

t.test('statements that fit their services pass', async (t) => {
  await t.resolves(checkServiceStatements([
    matchSvc('SELECT name FROM residents WHERE id_number = :id'),
    statusSvc('SELECT status FROM enterprises WHERE uscc = :uscc', { modes: ['plain', 'oprf'], enumerate: 'SELECT uscc, status FROM enterprises' }),
    taxSvc({}),
  ], source))
})

t.test('each fault stops start-up with VN_ERR_CONFIG_INVALID naming the statement', async (t) => {
  const faults: Array<[string, ServiceConfig, RegExp]> = [
    ['match lookup without the compared column', matchSvc('SELECT id_number FROM residents WHERE id_number = :id'), /services\.a\.b\.lookup: no result column name/],
    ['status lookup without status', statusSvc('SELECT uscc FROM enterprises WHERE uscc = :uscc'), /lookup: no result column status/],
    ['tier lookup without value', svc({ kind: 'tier', tiers: [{ id: 'l', min: 0 }], fields: { uscc: { kind: 'uscc', key: true } }, lookup: 'SELECT paid FROM tax WHERE uscc = :uscc' }), /lookup: no result column value/],
    ['he value lookup without value', taxSvc({ he: { valueLookup: 'SELECT paid FROM tax WHERE uscc = :uscc' } }), /he\.valueLookup: no result column value/],
    ['lookup naming a parameter that is not a field', statusSvc('SELECT status FROM enterprises WHERE uscc = :code'), /lookup: Missing named parameter "code"/],
    ['positional parameter', statusSvc('SELECT status FROM enterprises WHERE uscc = ?'), /services\.a\.b\.lookup/],
    ['oprf enumeration without the label column', statusSvc('SELECT status FROM enterprises WHERE uscc = :uscc', { modes: ['oprf'], enumerate: 'SELECT uscc FROM enterprises' }), /enumerate: no result column status/],
    ['oprf enumeration taking a parameter', statusSvc('SELECT status FROM enterprises WHERE uscc = :uscc', { modes: ['oprf'], enumerate: 'SELECT uscc, status FROM enterprises WHERE uscc > :after' }), /enumerate: Missing named parameter "after"/],
  ]
  for (const [name, s, re] of faults) await t.rejects(checkServiceStatements([s], source), { code: 'VN_ERR_CONFIG_INVALID', message: re }, name)
})

t.test('every problem is listed at once; a writing statement keeps its own code', async (t) => {
  const two = [statusSvc('SELECT uscc FROM enterprises WHERE uscc = :uscc'), taxSvc({ id: 'c.d', he: { valueLookup: 'SELECT paid FROM tax WHERE uscc = :uscc' } })]
  await t.rejects(checkServiceStatements(two, source), { code: 'VN_ERR_CONFIG_INVALID', message: /a\.b\.lookup: no result column status.*; services\.c\.d\.he\.valueLookup/ })
  await t.rejects(checkServiceStatements([statusSvc('DELETE FROM enterprises RETURNING status')], source), { code: 'VN_ERR_SOURCE_NOT_READONLY' })
})
