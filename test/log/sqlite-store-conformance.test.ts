/** The storage conformance suite (store-conformance.ts) against the SQLite backend. */
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openSqliteNodeStores, type SqliteLogStoreOptions } from '../../src/log/store.js'
import { SqliteLogReader } from '../../src/log/sqlite-reader.js'
import { runStoreConformance, type StoresUnderTest } from './store-conformance.js'

async function openAt(path: string, opts: SqliteLogStoreOptions & { replayMaxEntries?: number }): Promise<StoresUnderTest> {
  const stores = await openSqliteNodeStores(path, opts)
  return {
    stores,
    failNextCommit: () => stores.log.failNextCommit(),
    reader: () => SqliteLogReader.open(path),
    reopen: async () => {
      await stores.close()
      return openAt(path, opts)
    },
  }
}

// The inline writer: where a commit runs (`auto`, `worker`) changes no behaviour the interface
// promises, and store.test.ts checks each writer against the same tree and rows. Under tap's
// TypeScript loader each writer thread costs ~3 s to start, and this suite opens ~15 stores: with
// `auto` it took 180 s on the shared 2-core machine, against 4 s inline.
runStoreConformance(t, {
  open: async ({ evidenceKey, replayMaxEntries }) => {
    const dir = mkdtempSync(join(tmpdir(), 'vn-conf-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    return openAt(join(dir, 'log.db'), { writer: 'inline', ...(evidenceKey === undefined ? {} : { evidenceKey }), ...(replayMaxEntries === undefined ? {} : { replayMaxEntries }) })
  },
  // one node process owns the file; it rebuilds both from its log at start-up (node/runtime.ts)
  reopenKeeps: { replay: false, quotas: false },
})
