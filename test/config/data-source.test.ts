/**
 * The `dataSource` config of the server kinds: where the server is, and where its password is
 * (a file or an environment variable), never the password itself.
 */
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadConfig, parseConfig } from '../../src/config/load.js'
import { dataSourceConfig } from '../../src/node/source-watch.js'

const base = { member: 'fj-tax' }
const ds = (d: Record<string, unknown>): Record<string, unknown> => ({ ...base, dataSource: d })

t.test('postgres and mysql sources are accepted with a URL or fields', async (t) => {
  const pgc = parseConfig(ds({ kind: 'postgres', url: 'postgres://verinode_ro@db.example:5432/dept', passwordFile: 'secrets/db-password', poolSize: 8, statementTimeoutMs: 2000, tls: { ca: 'db-ca.pem' } }))
  t.match(pgc.dataSource, { kind: 'postgres', poolSize: 8, tls: { ca: 'db-ca.pem' } })
  const my = parseConfig(ds({ kind: 'mysql', host: 'db.example', port: 3306, database: 'dept', user: 'verinode_ro', passwordEnv: 'DEPT_DB_PASSWORD', tls: { rejectUnauthorized: false } }))
  t.match(my.dataSource, { kind: 'mysql', host: 'db.example' })
  t.doesNotThrow(() => parseConfig(ds({ kind: 'mysql', url: 'mariadb://verinode_ro@db/dept' })))
})

t.test('a password in verinode.json is refused, in the field or in the URL', async (t) => {
  const bad: Array<[Record<string, unknown>, RegExp]> = [
    [{ kind: 'postgres', url: 'postgres://ro:secret@db/dept' }, /dataSource\.url: the password must not be in verinode\.json/],
    [{ kind: 'postgres', url: 'postgres://ro@db/dept?password=secret' }, /dataSource\.url: the password must not be in verinode\.json/],
    [{ kind: 'mysql', host: 'db', password: 'secret' }, /dataSource\.password: must not be in verinode\.json: give passwordFile or passwordEnv/],
    [{ kind: 'mysql', url: 'mysql://ro:secret@db/dept' }, /dataSource\.url: the password/],
    [{ kind: 'postgres', database: 'dept' }, /dataSource\.url: url or host is required/],
    [{ kind: 'postgres', url: 'mysql://ro@db/dept' }, /dataSource\.url: expected a postgres:\/\/ or postgresql:\/\/ URL/],
    [{ kind: 'postgres', host: 'db', passwordFile: 'a', passwordEnv: 'B' }, /dataSource\.passwordEnv: give passwordFile or passwordEnv, not both/],
    [{ kind: 'postgres', host: 'db', passwordEnv: 'not a name' }, /dataSource\.passwordEnv/],
    [{ kind: 'postgres', host: 'db', poolSize: 0 }, /dataSource\.poolSize/],
    [{ kind: 'postgres', host: 'db', path: 'x.sqlite' }, /dataSource/],
    [{ kind: 'oracle', host: 'db' }, /dataSource\.kind/],
  ]
  for (const [d, re] of bad) {
    t.throws(() => parseConfig(ds(d)), { code: 'VN_ERR_CONFIG_INVALID', message: re }, JSON.stringify(d))
    t.notMatch((() => { try { parseConfig(ds(d)) } catch (e) { return (e as Error).message } return '' })(), /secret/, 'the password is not echoed')
  }
})

t.test('the node reads the password from the file (each time) or the environment', async (t) => {
  const dir = t.testdir()
  writeFileSync(join(dir, 'pw'), 'first\n')
  const cfgFile = join(dir, 'verinode.json')
  writeFileSync(cfgFile, JSON.stringify(ds({ kind: 'postgres', host: 'db', passwordFile: 'pw', tls: { ca: 'ca.pem' } })))
  const loaded = await loadConfig(cfgFile, {})
  const c = dataSourceConfig(loaded.config.dataSource!, loaded) as { password: () => Promise<string>; tls: { ca: string }; passwordFile?: string }
  t.equal(await c.password(), 'first')
  writeFileSync(join(dir, 'pw'), 'rotated')
  t.equal(await c.password(), 'rotated', 'read again on the next connection')
  t.equal(c.tls.ca, join(dir, 'ca.pem'), 'relative to the config file')
  t.equal(c.passwordFile, undefined)

  writeFileSync(cfgFile, JSON.stringify(ds({ kind: 'mysql', host: 'db', passwordEnv: 'DEPT_DB_PASSWORD' })))
  const withEnv = await loadConfig(cfgFile, { DEPT_DB_PASSWORD: 'from-env' })
  t.match(dataSourceConfig(withEnv.config.dataSource!, withEnv), { kind: 'mysql', host: 'db', password: 'from-env' })
  const without = await loadConfig(cfgFile, {})
  t.throws(() => dataSourceConfig(without.config.dataSource!, without), {
    code: 'VN_ERR_CONFIG_INVALID', message: /dataSource\.passwordEnv: the environment variable DEPT_DB_PASSWORD is not set/,
  })
})
