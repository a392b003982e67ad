/**
 * The real database servers the database tests talk to (never a mock): PostgreSQL and
 * MySQL/MariaDB, at the URLs below unless `VN_TEST_PG_URL` / `VN_TEST_MYSQL_URL` say otherwise.
 * `.ci/run` starts them and creates `verinode_test` and the read-only role `verinode_ro`
 * (scripts/ci-services.sh), and sets `VN_TEST_REQUIRE_DB=1`: then a server that does not answer
 * fails the test. Elsewhere (a machine with Node alone) such a test is skipped with the reason.
 *
 * Each test works in a schema (PostgreSQL) or database (MySQL) of its own, named by `uniqueName`,
 * so tests running in parallel never see each other's tables.
 */
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import mysql from 'mysql2/promise'

export const PG_URL = process.env['VN_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/verinode_test'
export const MYSQL_URL = process.env['VN_TEST_MYSQL_URL'] ?? 'mysql://root@127.0.0.1:3306/verinode_test'
/** The read-only login role scripts/ci-services.sh creates in both servers (password = name). */
export const RO_ROLE = 'verinode_ro'

const REQUIRE = process.env['VN_TEST_REQUIRE_DB'] === '1'

/** A fresh lower-case identifier, `prefix_` plus 12 hex digits. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${randomBytes(6).toString('hex')}`
}

/**
 * Resolves with undefined when PostgreSQL answers; otherwise with the reason to skip (or throws
 * under VN_TEST_REQUIRE_DB=1).
 */
export async function pgSkipReason(): Promise<string | undefined> {
  const c = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 3000 })
  try {
    await c.connect()
    await c.query('select 1')
    return undefined
  } catch (e) {
    const why = `PostgreSQL at ${PG_URL} does not answer (${(e as Error).message}); start it or set VN_TEST_PG_URL`
    if (REQUIRE) throw new Error(why)
    return why
  } finally {
    await c.end().catch(() => {})
  }
}

/** As `pgSkipReason`, for MySQL/MariaDB at MYSQL_URL. */
export async function mysqlSkipReason(): Promise<string | undefined> {
  let c: mysql.Connection | undefined
  try {
    c = await mysql.createConnection({ uri: MYSQL_URL, connectTimeout: 3000 })
    await c.query('select 1')
    return undefined
  } catch (e) {
    const why = `MySQL/MariaDB at ${MYSQL_URL} does not answer (${(e as Error).message}); start it or set VN_TEST_MYSQL_URL`
    if (REQUIRE) throw new Error(why)
    return why
  } finally {
    await c?.end().catch(() => {})
  }
}
