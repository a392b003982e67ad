/**
 * Opening the node's storage: the four stores of one backend (storage.ts: log and evidence,
 * replay memory, quota counts; today the SQLite backend, whose writer thread seals disclosures with
 * the evidence key off the event loop) and the NodeLog the provider and consumer append through.
 * One place chooses the backend, for the node (`openNodeLogStore`) and for the tools that read its
 * log from another process (`openNodeLogReader`).
 */
import { openSqliteNodeStores } from '../log/store.js'
import { SqliteLogReader } from '../log/sqlite-reader.js'
import { StoreNodeLog } from '../log/node-log.js'
import type { LogReader, NodeStores } from '../log/storage.js'

export interface OpenedLog extends NodeStores {
  /** the node's write path over `log` (index reservation, canonical JSON leaves, commit metrics) */
  nodeLog: StoreNodeLog
  /** appends waiting for a group commit (metrics) */
  logQueued(): number
}

/**
 * `path`: the log database file; `onCommit`: seconds each group commit took (metrics);
 * `replayMaxEntries`: the replay memory's bound (config `limits.replayMaxEntries`).
 */
export async function openNodeLogStore(path: string, evidenceKey: Uint8Array, onCommit: (seconds: number) => void, replayMaxEntries?: number): Promise<OpenedLog> {
  const stores = await openSqliteNodeStores(path, replayMaxEntries === undefined ? { evidenceKey } : { evidenceKey, replayMaxEntries })
  try {
    return { ...stores, close: () => stores.close(), nodeLog: await StoreNodeLog.open(stores.log, onCommit), logQueued: () => stores.log.queued }
  } catch (e) {
    await stores.close()
    throw e
  }
}

/**
 * Read-only access to the node's log from another process (`log export`), which may run while the
 * node appends. `path`: the log database file.
 * @throws VN_ERR_AUDIT_EXPORT_INVALID when it cannot be opened
 */
export function openNodeLogReader(path: string): Promise<LogReader> {
  return SqliteLogReader.open(path)
}
