/**
 * Opening the node's storage: the four stores of one backend (storage.ts: log and evidence,
 * replay memory, quota counts) and the NodeLog the provider and consumer append through.
 * One place chooses the backend, for the node (`openNodeLogStore`) and for the tools that read its
 * log from another process (`openNodeLogReader`):
 * - `sqlite` (default): one file in the data folder, one process; its writer thread seals
 *   disclosures with the evidence key off the event loop; replay memory and quota counts in the
 *   process, rebuilt from the log at start-up.
 * - `postgres`: a schema shared by the replicas of the node (log/pg-store.ts); replay memory and
 *   quota counts are rows every replica sees, kept across restarts; indices are assigned by the
 *   database (`SharedNodeLog`); checkpoints are signed by the holder of a lease.
 */
import { readFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { randomBytes } from 'node:crypto'
import { VnError } from '../errors.js'
import type { LoadedConfig } from '../config/load.js'
import type { Config } from '../config/schema.js'
import { openSqliteNodeStores } from '../log/store.js'
import { SqliteLogReader } from '../log/sqlite-reader.js'
import { SharedNodeLog, StoreNodeLog, type NodeLog } from '../log/node-log.js'
import { PgLease, PgLogReader, openPgNodeStores, type PgLogConnection } from '../log/pg-store.js'
import type { LogReader, NodeStores } from '../log/storage.js'
import { nodeDataFiles } from './files.js'

/** Where a node's log lives, resolved from its config (paths, the password's place). */
export type NodeLogLocation =
  | { readonly kind: 'sqlite'; readonly path: string }
  | { readonly kind: 'postgres'; readonly conn: PgLogConnection; readonly maxBatch?: number; readonly checkpointLeaseMs?: number }

export interface OpenedLog extends NodeStores {
  /** the node's write path over `log` (index reservation or database-assigned indices, canonical JSON leaves, commit metrics) */
  nodeLog: NodeLog & Pick<StoreNodeLog, 'failure' | 'resume'>
  /** appends waiting for a group commit (metrics) */
  logQueued(): number
  /**
   * Replay memory and quota counts are kept by the store, shared by replicas (postgres): the node
   * does not rebuild them from its log at start-up.
   */
  readonly keepsMemory: boolean
  /** Who signs checkpoints among the replicas (postgres); undefined: this process alone. */
  readonly checkpointLease?: PgLease
  /** Where it is, in words safe to log (no password). */
  readonly where: string
}

/** The default checkpoint lease of a replica, ms. */
const DEFAULT_CHECKPOINT_LEASE_MS = 30_000

/**
 * The password's place of a database setting: an environment variable (read now) or a file
 * (relative to the config file, read on each new connection, so a rotated file is picked up).
 * @throws VnError VN_ERR_CONFIG_INVALID when `passwordEnv` names an unset variable
 */
function serverPassword(field: string, s: { passwordFile?: string | undefined; passwordEnv?: string | undefined }, loaded: LoadedConfig): string | (() => Promise<string>) | undefined {
  if (s.passwordEnv !== undefined) {
    const value = loaded.env(s.passwordEnv)
    if (value === undefined || value === '') throw new VnError('VN_ERR_CONFIG_INVALID', `${field}.passwordEnv: the environment variable ${s.passwordEnv} is not set`)
    return value
  }
  if (s.passwordFile !== undefined) {
    const file = loaded.path(s.passwordFile)
    return async (): Promise<string> => (await readFile(file, 'utf8')).replace(/\r?\n$/, '')
  }
  return undefined
}

/** The node's log location from its config. @throws VN_ERR_CONFIG_INVALID (an unset passwordEnv) */
export function nodeLogLocation(cfg: Config, loaded: LoadedConfig): NodeLogLocation {
  const l = cfg.log
  if (l.kind === 'sqlite') return { kind: 'sqlite', path: nodeDataFiles(loaded.path(cfg.dataDir)).log }
  const { kind: _kind, passwordFile, passwordEnv, password: _never, tls, maxBatch, checkpointLeaseMs, ...rest } = l
  const password = serverPassword('log', { passwordFile, passwordEnv }, loaded)
  const conn: PgLogConnection = {
    ...(rest as Omit<PgLogConnection, 'password' | 'tls'>),
    ...(password === undefined ? {} : { password }),
    ...(tls === undefined ? {} : { tls: { ...(tls.ca === undefined ? {} : { ca: loaded.path(tls.ca) }), ...(tls.rejectUnauthorized === undefined ? {} : { rejectUnauthorized: tls.rejectUnauthorized }) } }),
  }
  return { kind: 'postgres', conn, ...(maxBatch === undefined ? {} : { maxBatch }), ...(checkpointLeaseMs === undefined ? {} : { checkpointLeaseMs }) }
}

function describe(where: NodeLogLocation): string {
  if (where.kind === 'sqlite') return where.path
  const c = where.conn
  let server = c.host ?? ''
  if (c.url !== undefined) {
    try {
      const u = new URL(c.url)
      server = `${u.host}${u.pathname}`
    } catch {
      server = 'postgres'
    }
  }
  return `postgres ${server} schema ${c.schema ?? 'verinode_log'}`
}

/**
 * `where`: the log's location; `onCommit`: seconds each group commit took (metrics);
 * `replayMaxEntries`: the replay memory's bound (config `limits.replayMaxEntries`).
 */
export async function openNodeLogStore(where: NodeLogLocation, evidenceKey: Uint8Array, onCommit: (seconds: number) => void, replayMaxEntries?: number): Promise<OpenedLog> {
  const replay = replayMaxEntries === undefined ? {} : { replayMaxEntries }
  if (where.kind === 'postgres') {
    const stores = await openPgNodeStores(where.conn, { evidenceKey, ...replay, ...(where.maxBatch === undefined ? {} : { maxBatch: where.maxBatch }) })
    // one holder name per process: host, pid and a random part (two replicas never share one)
    const holder = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`
    const lease = new PgLease(stores.pool, 'checkpoint', holder, where.checkpointLeaseMs ?? DEFAULT_CHECKPOINT_LEASE_MS)
    return {
      ...stores,
      close: async () => {
        await lease.release()
        await stores.close()
      },
      nodeLog: new SharedNodeLog(stores.log, onCommit),
      logQueued: () => stores.log.queued,
      keepsMemory: true,
      checkpointLease: lease,
      where: describe(where),
    }
  }
  const stores = await openSqliteNodeStores(where.path, { evidenceKey, ...replay })
  try {
    return { ...stores, close: () => stores.close(), nodeLog: await StoreNodeLog.open(stores.log, onCommit), logQueued: () => stores.log.queued, keepsMemory: false, where: describe(where) }
  } catch (e) {
    await stores.close()
    throw e
  }
}

/**
 * Read-only access to the node's log from another process (`log export`), which may run while the
 * node appends.
 * @throws VN_ERR_AUDIT_EXPORT_INVALID when it cannot be opened
 */
export function openNodeLogReader(where: NodeLogLocation): Promise<LogReader> {
  return where.kind === 'postgres' ? PgLogReader.open(where.conn) : SqliteLogReader.open(where.path)
}
