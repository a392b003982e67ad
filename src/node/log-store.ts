/**
 * Opening the node's log: the store (group-committed on a writer thread, which seals disclosures
 * with the evidence key off the event loop), the evidence store over it, and the NodeLog the
 * provider and consumer append through. One function, so a second backend is chosen in one place.
 */
import { SqliteLogStore } from '../log/store.js'
import { SqliteEvidenceStore } from '../log/evidence.js'
import { StoreNodeLog } from '../log/node-log.js'

export interface OpenedLog {
  store: SqliteLogStore
  evidence: SqliteEvidenceStore
  log: StoreNodeLog
}

/** `path`: the log database file; `onCommit`: seconds each group commit took (metrics). */
export async function openNodeLogStore(path: string, evidenceKey: Uint8Array, onCommit: (seconds: number) => void): Promise<OpenedLog> {
  const store = await SqliteLogStore.open(path, { sealKey: evidenceKey })
  try {
    const evidence = new SqliteEvidenceStore(store, evidenceKey)
    const log = await StoreNodeLog.open(store, evidence, onCommit)
    return { store, evidence, log }
  } catch (e) {
    await store.close()
    throw e
  }
}
