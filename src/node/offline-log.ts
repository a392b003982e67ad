/**
 * Appending to a node's log from a separate CLI process (`verinode keys rotate`, `verinode log
 * export --with-disclosures`), while the node is STOPPED.
 *
 * Why stopped, not through the running node: the log has one writer that predicts the next index
 * (src/log/node-log.ts) and keeps the tree's right border in memory (src/log/log-writer.ts); a
 * second process appending behind its back would break both, and a local-API endpoint for these
 * rare operator actions would put key material handling into the serving process. A stopped node
 * and a direct append keep the one-writer rule without new network surface. Documented in
 * docs/AUDIT.md.
 *
 * How "stopped" is checked: SQLite itself. Every open connection of a running node (its writer
 * and its reader) holds a lock on the WAL index; a connection in `locking_mode=EXCLUSIVE` that
 * asks for `BEGIN EXCLUSIVE` with no busy timeout fails with SQLITE_BUSY while any other
 * connection, in any process, has the database open. (A node starting in the instant between this
 * check and the append is not excluded; operators stop the node first.)
 *
 * The append is the node's own path: canonical JSON leaves through SqliteLogStore, then a new
 * checkpoint over them signed with the node's log key, so the export that follows covers them.
 */
import Database from 'better-sqlite3'
import { readFile, stat } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { NODE_PID_FILE } from './files.js'
import type { KeyObject } from 'node:crypto'
import { VnError } from '../errors.js'
import { noteSigner, signCheckpoint } from '../log/checkpoint.js'
import type { LogRecord } from '../log/records.js'
import { SqliteLogStore } from '../log/store.js'
import { openPgNodeStores } from '../log/pg-store.js'
import type { NodeLogLocation } from './log-store.js'
import { canonicalJsonBytes } from '../protocol/canonical-json.js'

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as { code?: string }).code === 'EPERM'
  }
}

/** @throws VN_ERR_AUDIT_NODE_RUNNING when another connection holds the database; VN_ERR_AUDIT_EXPORT_INVALID when there is none */
export async function assertNodeStopped(dbPath: string): Promise<void> {
  if (!(await stat(dbPath).then((s) => s.isFile(), () => false))) {
    throw new VnError('VN_ERR_AUDIT_EXPORT_INVALID', `${dbPath}: no log database (has the node ever started?)`)
  }
  // A running node announces itself in var/node.pid (src/node/runtime.ts). SQLite's own locks are
  // not enough: in WAL mode an idle node holds no lock that an exclusive transaction would meet.
  const pid = Number((await readFile(join(dirname(dbPath), NODE_PID_FILE), 'utf8').catch(() => '')).trim())
  if (Number.isSafeInteger(pid) && pid > 0 && processAlive(pid)) {
    throw new VnError('VN_ERR_AUDIT_NODE_RUNNING', `${dbPath}: a node (pid ${pid}) has it open (stop the node first)`)
  }
  let db: Database.Database | undefined
  try {
    db = new Database(dbPath, { fileMustExist: true })
    db.pragma('busy_timeout = 0')
    db.pragma('locking_mode = EXCLUSIVE')
    db.exec('BEGIN EXCLUSIVE')
    db.exec('COMMIT')
  } catch (e) {
    if ((e as { code?: string }).code === 'SQLITE_BUSY' || (e as { code?: string }).code === 'SQLITE_LOCKED') {
      throw new VnError('VN_ERR_AUDIT_NODE_RUNNING', `${dbPath}: in use by another process (stop the node first)`)
    }
    throw new VnError('VN_ERR_LOG_UNAVAILABLE', `${dbPath}: cannot be opened`, { cause: e })
  } finally {
    db?.close()
  }
}

/**
 * Appends `records` to the stopped node's log and signs a checkpoint over the new size with
 * `logKey` under `origin`. Returns the index of the first record and the new size.
 *
 * A log on PostgreSQL is shared by the node's replicas and the database assigns the indices, so
 * the append needs no stopped node: it lands after whatever the replicas appended.
 * @throws VN_ERR_AUDIT_NODE_RUNNING, VN_ERR_LOG_UNAVAILABLE
 */
export async function appendOffline(where: NodeLogLocation, records: readonly LogRecord[], logKey: KeyObject, origin: string): Promise<{ first: number; size: number }> {
  if (where.kind === 'postgres') {
    const stores = await openPgNodeStores(where.conn)
    try {
      const appended = await stores.log.appendMany(records.map((r) => canonicalJsonBytes(r)))
      const size = await stores.log.catchUp()
      await stores.log.saveCheckpoint(size, signCheckpoint({ origin, size, rootHash: await stores.log.rootHash(size) }, noteSigner(origin, logKey)))
      return { first: appended[0]?.index ?? size, size }
    } finally {
      await stores.close()
    }
  }
  const dbPath = where.path
  await assertNodeStopped(dbPath)
  const store = await SqliteLogStore.open(dbPath, { writer: 'inline' })
  try {
    const appended = await store.appendMany(records.map((r) => canonicalJsonBytes(r)))
    const size = await store.size()
    await store.saveCheckpoint(size, signCheckpoint({ origin, size, rootHash: await store.rootHash(size) }, noteSigner(origin, logKey)))
    return { first: appended[0]?.index ?? size, size }
  } finally {
    await store.close()
  }
}
