/**
 * TLS and password logins to PostgreSQL (and MariaDB), for real: a private cluster (test/helper-db-server.ts)
 * that accepts the reader only over TLS with a SCRAM password. The source connects with the CA of
 * `tls.ca` and a password read by a function (as the node reads `passwordFile`); without TLS, with
 * another CA, or with a wrong password it is unavailable, and no error repeats the password.
 */
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { VnError } from '../../src/errors.js'
import { openDataSource, type DataSourceConfig } from '../../src/sources/index.js'
import { privateAdmin, privateMariadbSkipReason, privatePgSkipReason, startPrivateMariadb, startPrivatePostgres, testCertificates } from '../helper-db-server.js'

async function rejection(p: Promise<unknown>): Promise<{ code: string; detail: string | undefined }> {
  try {
    await p
  } catch (e) {
    if (e instanceof VnError) return { code: e.code, detail: e.detail }
    throw e
  }
  throw new Error('expected a rejection')
}

t.test('postgres over TLS with a password from a file', { skip: privatePgSkipReason() ?? false }, async (t) => {
  const dir = t.testdir({ other: {} })
  const certs = await testCertificates(dir)
  const other = await testCertificates(join(dir, 'other'))
  const server = await startPrivatePostgres({
    tls: { cert: certs.cert, key: certs.key },
    hba: ['hostssl all reader 127.0.0.1/32 scram-sha-256', 'hostnossl all reader 127.0.0.1/32 reject'],
  })
  t.teardown(() => server.destroy())
  await privateAdmin(server, 'postgres', `
    CREATE ROLE reader LOGIN PASSWORD 'correct horse battery';
    CREATE TABLE people (id text PRIMARY KEY, name text NOT NULL);
    INSERT INTO people VALUES ('id1', 'one');
    GRANT SELECT ON people TO reader;`)
  const pwFile = join(dir, 'db-password')
  writeFileSync(pwFile, 'correct horse battery\n', { mode: 0o600 })
  const password = async (): Promise<string> => (await readFile(pwFile, 'utf8')).replace(/\r?\n$/, '')
  const base = { kind: 'postgres', host: '127.0.0.1', port: server.port, database: 'postgres', user: 'reader', connectTimeoutMs: 3000 } as const

  const src = await openDataSource({ ...base, password, tls: { ca: certs.ca } } as DataSourceConfig)
  t.teardown(() => src.close())
  t.same(await src.query('SELECT name FROM people WHERE id = :id', { id: 'id1' }), [{ name: 'one' }])
  t.same(await src.query('SELECT ssl AS tls FROM pg_stat_ssl WHERE pid = pg_backend_pid()', {}), [{ tls: 1 }], 'the connection is TLS')

  t.match(await rejection(openDataSource({ ...base, password } as DataSourceConfig)), { code: 'VN_ERR_SOURCE_UNAVAILABLE', detail: 'postgres: database unavailable (28000)' }, 'without TLS: refused by the server')
  const wrongCa = await rejection(openDataSource({ ...base, password, tls: { ca: other.ca } } as DataSourceConfig))
  t.match(wrongCa, { code: 'VN_ERR_SOURCE_UNAVAILABLE', detail: /^postgres: database unavailable \((SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|ERR_TLS_CERT_ALTNAME_INVALID|DEPTH_ZERO_SELF_SIGNED_CERT)\)$/ }, 'a certificate from another CA is refused')
  const unchecked = await openDataSource({ ...base, password, tls: { rejectUnauthorized: false } } as DataSourceConfig)
  t.same(await unchecked.query('SELECT 1 AS x', {}), [{ x: 1 }], 'rejectUnauthorized: false encrypts without checking')
  await unchecked.close()
  const wrong = await rejection(openDataSource({ ...base, password: 'tr0ub4dor', tls: { ca: certs.ca } } as DataSourceConfig))
  t.same(wrong, { code: 'VN_ERR_SOURCE_UNAVAILABLE', detail: 'postgres: database unavailable (28P01)' }, 'a wrong password')
  t.notMatch(JSON.stringify(wrong), /tr0ub4dor/)
  t.same(await rejection(openDataSource({ ...base, password, tls: { ca: join(dir, 'missing.pem') } } as DataSourceConfig)), {
    code: 'VN_ERR_SOURCE_UNAVAILABLE', detail: 'postgres: the tls.ca file cannot be read (ENOENT)',
  })

  // the password file is read again for each new connection: rotate it under the open pool
  await privateAdmin(server, 'postgres', "ALTER ROLE reader PASSWORD 'rotated secret'")
  writeFileSync(pwFile, 'rotated secret\n')
  const after = await openDataSource({ ...base, password, tls: { ca: certs.ca }, poolSize: 1 } as DataSourceConfig)
  t.same(await after.query('SELECT name FROM people WHERE id = :id', { id: 'id1' }), [{ name: 'one' }])
  await after.close()
})

t.test('mariadb over TLS: an account that REQUIRE SSL', { skip: privateMariadbSkipReason() ?? false }, async (t) => {
  const dir = t.testdir({ other: {} })
  const certs = await testCertificates(dir)
  const other = await testCertificates(join(dir, 'other'))
  const server = await startPrivateMariadb({ tls: { cert: certs.cert, key: certs.key } })
  t.teardown(() => server.destroy())
  await privateAdmin(server, 'mysql', `
    CREATE DATABASE dept;
    CREATE TABLE dept.people (id VARCHAR(40) PRIMARY KEY, name VARCHAR(40) NOT NULL);
    INSERT INTO dept.people VALUES ('id1', 'one');
    CREATE USER 'reader'@'%' IDENTIFIED BY 'correct horse battery' REQUIRE SSL;
    GRANT SELECT ON dept.* TO 'reader'@'%';`)
  const base = { kind: 'mysql', host: '127.0.0.1', port: server.port, database: 'dept', user: 'reader', password: 'correct horse battery', connectTimeoutMs: 3000 } as const
  const src = await openDataSource({ ...base, tls: { ca: certs.ca } } as DataSourceConfig)
  t.teardown(() => src.close())
  t.same(await src.query('SELECT name FROM people WHERE id = :id', { id: 'id1' }), [{ name: 'one' }])
  const [row] = await src.query("SELECT VARIABLE_VALUE AS cipher FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'Ssl_cipher'", {})
  t.match(row, { cipher: /\w/ }, 'the connection is TLS')
  t.match(await rejection(openDataSource(base as DataSourceConfig)), { code: 'VN_ERR_SOURCE_UNAVAILABLE', detail: 'mysql: database unavailable (ER_ACCESS_DENIED_ERROR)' }, 'without TLS: refused')
  t.match(await rejection(openDataSource({ ...base, tls: { ca: other.ca } } as DataSourceConfig)), { code: 'VN_ERR_SOURCE_UNAVAILABLE', detail: /^mysql: database unavailable \(/ }, 'a certificate from another CA is refused')
})
