/**
 * The storage conformance suite (store-conformance.ts) against the PostgreSQL backend, on the real
 * server (test/helper-db.ts): every store the suite opens gets a schema of its own, dropped after.
 */
import t from 'tap'
import pg from 'pg'
import { openPgNodeStores, PgLogReader, type PgLogConnection } from '../../src/log/pg-store.js'
import { runStoreConformance, type StoresUnderTest } from './store-conformance.js'
import { PG_URL, pgSkipReason, uniqueName } from '../helper-db.js'

const skip = await pgSkipReason()
if (skip !== undefined) {
  t.plan(0, skip)
} else {
  const schemas: string[] = []
  t.teardown(async () => {
    const c = new pg.Client({ connectionString: PG_URL })
    await c.connect()
    for (const s of schemas) await c.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`)
    await c.end()
  })
  const openAt = async (conn: PgLogConnection, opts: { evidenceKey?: Uint8Array; replayMaxEntries?: number }): Promise<StoresUnderTest> => {
    const stores = await openPgNodeStores(conn, opts)
    return {
      stores,
      failNextCommit: () => stores.log.failNextCommit(),
      reader: () => PgLogReader.open(conn),
      reopen: async () => {
        await stores.close()
        return openAt(conn, opts)
      },
    }
  }
  runStoreConformance(t, {
    open: async (opts) => {
      const schema = uniqueName('vn_conf')
      schemas.push(schema)
      return openAt({ url: PG_URL, schema, poolSize: 4 }, opts)
    },
    // shared by the replicas and kept: the node does not rebuild them from the log
    reopenKeeps: { replay: true, quotas: true },
  })
}
