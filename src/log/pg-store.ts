/**
 * The node's log, evidence, replay memory and quota counts on PostgreSQL, shared by the replicas
 * of one member node (same keys, same member id, one schema).
 *
 * `PgLogStore` implements `LogStore` and `EvidenceStore` (storage.ts) and passes the same
 * conformance suite as the SQLite store (test/log/pg-store-conformance.test.ts).
 *
 * One sequence of leaf indices for all replicas: the index is assigned inside the group-commit
 * transaction. Each commit locks the one row of `log_head` (`SELECT ... FOR UPDATE`), reads the
 * size, rebuilds this replica's right border from the stored subtree hashes if another replica
 * appended since (O(log n) point reads), inserts its batch at size .. size + n - 1 and moves the
 * head, all in one transaction: concurrent replicas queue on the row lock, never interleave, and a
 * rolled-back batch leaves no gap. An append whose records must name their own index before they
 * are written (the provider signs its response naming its request's index) goes through
 * `appendWith`: its records are built inside the transaction, once the index is known.
 *
 * Group commit per replica: appends queue, and everything queued when the previous transaction
 * returns goes in the next one (at most `maxBatch` leaves). A commit is durable when PostgreSQL
 * acknowledges COMMIT (`synchronous_commit` on, the server's default): log before answer.
 *
 * Fail closed: a failed transaction (the server gone, a connection killed, a statement timeout)
 * rejects every append of the batch and every queued append with VN_ERR_LOG_UNAVAILABLE, and the
 * store refuses further writes until `reopen` (a trial write, then the tree read back and checked by
 * the caller) succeeds. Reads of committed data go to the server and fail while it is away.
 *
 * Replay memory (`PgReplayMemory`) and quota counts (`PgQuotaStore`) are rows every replica sees:
 * a claim is one `INSERT ... ON CONFLICT`, a quota one conditional UPSERT. Checkpoints are signed
 * by one replica at a time: `PgLease` is a row (holder, expiry by the server's clock) the holder
 * renews and any replica takes once it has expired.
 */
import pg from 'pg'
import { VnError } from '../errors.js'
import { HASH_SIZE, assembleProof, foldRange, hashEquals, leafHash, planConsistencyProof, planInclusionProof, planRoot, rangeNodes, type NodeId } from './merkle.js'
import { CompactRange } from './compact-range.js'
import { parseCheckpoint, parseNote } from './checkpoint.js'
import type { EvidenceRow } from './evidence.js'
import { checkEvidenceKey, decryptDisclosures, decryptReceived, encryptDisclosures, encryptReceived } from './sealing.js'
import {
  DEFAULT_REPLAY_MAX_ENTRIES, MAX_ENTRIES_PER_READ, SNAPSHOT_CHUNK, checkAppendInput,
  type AppendResult, type EvidenceStore, type LogReader, type LogSnapshot, type LogStore, type NodeStores, type ReplayEntry, type ReplayMemory,
  type StoredCheckpoint, type StoredDisclosures, type StoredJws, type StoredReceived, type StoredTree,
} from './storage.js'
import type { ConsumeResult, QuotaRecord, QuotaStore } from '../policy/quota.js'
import { SCHEMA_NAME, driverCode, pgConnectionFields, refuseUrlPassword, tlsSettings, type ServerSourceOptions } from '../sources/server-common.js'

/** Where the log lives: the server, the login (password from a file or env, never in the config), the schema. */
export interface PgLogConnection extends Pick<ServerSourceOptions, 'url' | 'host' | 'port' | 'database' | 'user' | 'password' | 'connectTimeoutMs' | 'tls'> {
  /** The schema holding the log's tables (created if missing, default `verinode_log`). */
  readonly schema?: string
  /** Connections in the pool (default 8): one commits, the others read. */
  readonly poolSize?: number
  /** A statement running longer is cancelled and fails the store closed (default 10000). */
  readonly statementTimeoutMs?: number
}

export interface PgLogStoreOptions {
  /** the 32-byte evidence key; without it disclosure rows are refused */
  evidenceKey?: Uint8Array
  /** Most leaves in one transaction (default 512). */
  maxBatch?: number
  /** Largest accepted leaf in bytes (default 1 MiB). */
  maxLeafBytes?: number
}

export const DEFAULT_PG_LOG_SCHEMA = 'verinode_log'
const PG_LOG_SCHEMA_VERSION = '1'

/** The tables of the log's schema (run with `search_path` set to it); created at first start when the node's role may. */
const PG_LOG_TABLES = `
CREATE TABLE IF NOT EXISTS log_meta (k text PRIMARY KEY, v text NOT NULL);
CREATE TABLE IF NOT EXISTS log_head (id int PRIMARY KEY CHECK (id = 1), size bigint NOT NULL);
INSERT INTO log_head (id, size) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
CREATE TABLE IF NOT EXISTS log_leaves (idx bigint PRIMARY KEY, data bytea NOT NULL, hash bytea NOT NULL);
CREATE TABLE IF NOT EXISTS log_nodes (level int NOT NULL, idx bigint NOT NULL, hash bytea NOT NULL, PRIMARY KEY (level, idx));
CREATE TABLE IF NOT EXISTS log_checkpoints (size bigint PRIMARY KEY, note text NOT NULL, saved_ms bigint NOT NULL);
CREATE TABLE IF NOT EXISTS evidence_jws (leaf bigint PRIMARY KEY, digest text NOT NULL, jws text NOT NULL);
CREATE TABLE IF NOT EXISTS evidence_disclosures (leaf bigint PRIMARY KEY, xid text NOT NULL, nonce bytea NOT NULL, ciphertext bytea NOT NULL, expires_ms bigint NOT NULL);
CREATE INDEX IF NOT EXISTS evidence_disclosures_expiry ON evidence_disclosures (expires_ms);
CREATE TABLE IF NOT EXISTS evidence_received (leaf bigint PRIMARY KEY, xid text NOT NULL, digest text NOT NULL, nonce bytea NOT NULL, ciphertext bytea NOT NULL, expires_ms bigint NOT NULL);
CREATE INDEX IF NOT EXISTS evidence_received_expiry ON evidence_received (expires_ms);
CREATE TABLE IF NOT EXISTS replay (iss text NOT NULL, xid text NOT NULL, req_digest text NOT NULL, idx bigint, expires_ms bigint NOT NULL, PRIMARY KEY (iss, xid));
CREATE INDEX IF NOT EXISTS replay_expiry ON replay (expires_ms);
CREATE TABLE IF NOT EXISTS quota_counts (agreement text NOT NULL, day text NOT NULL, used bigint NOT NULL, PRIMARY KEY (agreement, day));
CREATE TABLE IF NOT EXISTS leases (name text PRIMARY KEY, holder text NOT NULL, expires_ms bigint NOT NULL);
`

/**
 * What the node's own login role needs on a schema whose tables the owner role created
 * (docs/OPERATIONS.md "The log on PostgreSQL"): it can append leaves and evidence but never change
 * or delete a leaf, a tree node or a kept JWS; it updates only the head, checkpoints (cosignatures
 * are added to a stored note), the replay memory, quota counts and the lease, and deletes only
 * expired sealed evidence, replay entries and its lease.
 */
function pgLogGrants(schema: string, role: string): string {
  if (!SCHEMA_NAME.test(schema) || !SCHEMA_NAME.test(role)) throw new VnError('VN_ERR_CONFIG_INVALID', 'schema and role: plain identifiers (letters, digits, _)')
  return [
    `GRANT USAGE ON SCHEMA ${schema} TO ${role};`,
    `GRANT SELECT ON ${schema}.log_meta TO ${role};`,
    `GRANT SELECT, INSERT ON ${schema}.log_leaves, ${schema}.log_nodes, ${schema}.evidence_jws TO ${role};`,
    `GRANT SELECT, UPDATE ON ${schema}.log_head TO ${role};`,
    `GRANT SELECT, INSERT, UPDATE ON ${schema}.log_checkpoints, ${schema}.quota_counts TO ${role};`,
    `GRANT SELECT, INSERT, DELETE ON ${schema}.evidence_disclosures, ${schema}.evidence_received TO ${role};`,
    `GRANT SELECT, INSERT, UPDATE, DELETE ON ${schema}.replay, ${schema}.leases TO ${role};`,
  ].join('\n')
}

/**
 * The whole set-up of a log's schema for its owner to run: the schema, the tables, the schema
 * version, and `pgLogGrants` for the node's login role (`verinode log pg-sql`).
 */
export function pgLogSetupSql(schema: string, role: string): string {
  const grants = pgLogGrants(schema, role)
  return [
    `CREATE SCHEMA IF NOT EXISTS ${schema};`,
    `SET search_path = ${schema};`,
    PG_LOG_TABLES.trim(),
    `INSERT INTO log_meta (k, v) VALUES ('schema', '${PG_LOG_SCHEMA_VERSION}') ON CONFLICT (k) DO NOTHING;`,
    grants,
  ].join('\n')
}

const OID_INT8 = 20
/** bigint columns read back as numbers (indices, sizes and times stay far below 2^53). */
const TYPES = {
  getTypeParser(oid: number, format?: string): (v: string) => unknown {
    if (oid === OID_INT8 && format !== 'binary') return Number
    return pg.types.getTypeParser(oid, format as 'text') as (v: string) => unknown
  },
} as unknown as pg.CustomTypesConfig

const unavailable = (detail: string, cause?: unknown): VnError =>
  new VnError('VN_ERR_LOG_UNAVAILABLE', detail, cause === undefined ? undefined : { cause })

/** A driver error as a data-free VnError: the SQLSTATE or connection code only (messages may quote values). */
function pgLogError(what: string, e: unknown): VnError {
  if (e instanceof VnError) return e
  return unavailable(`postgres log: ${what} failed (${driverCode(e)})`, e)
}

function checkIndex(name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new VnError('VN_ERR_LOG_PROOF', `${name}: must be a non-negative integer`)
}

function checkRecordIndex(index: number): void {
  if (!Number.isSafeInteger(index) || index < 0) throw new VnError('VN_ERR_EVIDENCE_INVALID', 'index: must be a non-negative integer')
}

const ignore = (): void => undefined

/**
 * Opens a pool on the log's schema, and creates the tables if they are missing (under an advisory
 * lock, so replicas starting together do not race).
 * @throws VN_ERR_LOG_UNAVAILABLE when the server cannot be reached; VN_ERR_CONFIG_INVALID on a bad schema name
 */
export async function openPgLogPool(conn: PgLogConnection): Promise<pg.Pool> {
  const schema = conn.schema ?? DEFAULT_PG_LOG_SCHEMA
  if (!SCHEMA_NAME.test(schema)) throw new VnError('VN_ERR_CONFIG_INVALID', 'log.schema: expected a plain identifier (letters, digits, _)')
  refuseUrlPassword(conn.url, 'log.url')
  const ssl = await tlsSettings('postgres log', conn.tls)
  const config: pg.PoolConfig = {
    max: conn.poolSize ?? 8,
    connectionTimeoutMillis: conn.connectTimeoutMs ?? 5000,
    idleTimeoutMillis: 30_000,
    statement_timeout: conn.statementTimeoutMs ?? 10_000,
    options: `-c search_path=${schema}`,
    application_name: 'verinode-log',
    keepAlive: true,
    types: TYPES,
  }
  Object.assign(config, pgConnectionFields('postgres log', conn))
  if (ssl !== undefined) config.ssl = ssl
  const pool = new pg.Pool(config)
  pool.on('error', ignore)
  try {
    const c = await pool.connect()
    c.on('error', ignore)
    try {
      // Tables already there (created by the owner role, docs/OPERATIONS.md): the node's own role
      // needs no right to create anything. Otherwise create them, one replica at a time.
      const ready = await c.query<{ ok: boolean }>("SELECT to_regclass('leases') IS NOT NULL AND to_regclass('log_meta') IS NOT NULL AS ok")
      if (ready.rows[0]?.ok !== true) {
        await c.query('BEGIN')
        await c.query("SELECT pg_advisory_xact_lock(hashtext('verinode-log-schema'))")
        await c.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`)
        await c.query(PG_LOG_TABLES)
        const v = await c.query<{ v: string }>('SELECT v FROM log_meta WHERE k = $1', ['schema'])
        if (v.rows.length === 0) await c.query('INSERT INTO log_meta (k, v) VALUES ($1, $2)', ['schema', PG_LOG_SCHEMA_VERSION])
        await c.query('COMMIT')
      }
      const v = await c.query<{ v: string }>('SELECT v FROM log_meta WHERE k = $1', ['schema'])
      if (v.rows[0]?.v !== PG_LOG_SCHEMA_VERSION) throw unavailable(`postgres log: schema version ${v.rows[0]?.v ?? '(none)'} is not supported (this build writes ${PG_LOG_SCHEMA_VERSION})`)
      c.release()
    } catch (e) {
      c.release(true)
      throw e
    }
  } catch (e) {
    await pool.end().catch(ignore)
    throw pgLogError('opening the log schema', e)
  }
  return pool
}

/**
 * What `verinode doctor` learns of a PostgreSQL log without writing: whether the server answers
 * for this account, whether the schema's tables exist, and whether this role may append (INSERT on
 * the leaves, UPDATE of the head). @throws VN_ERR_LOG_UNAVAILABLE when it cannot connect
 */
export async function probePgLog(conn: PgLogConnection): Promise<{ tables: boolean; writable: boolean; size?: number }> {
  const schema = conn.schema ?? DEFAULT_PG_LOG_SCHEMA
  if (!SCHEMA_NAME.test(schema)) throw new VnError('VN_ERR_CONFIG_INVALID', 'log.schema: expected a plain identifier (letters, digits, _)')
  refuseUrlPassword(conn.url, 'log.url')
  const ssl = await tlsSettings('postgres log', conn.tls)
  const client = new pg.Client({ connectionTimeoutMillis: conn.connectTimeoutMs ?? 5000, application_name: 'verinode-doctor', ...pgConnectionFields('postgres log', conn), ...(ssl === undefined ? {} : { ssl }) })
  client.on('error', ignore)
  try {
    await client.connect()
    const r = await client.query<{ head: string | null; leaves: string | null }>('SELECT to_regclass($1) AS head, to_regclass($2) AS leaves', [`${schema}.log_head`, `${schema}.log_leaves`])
    if (r.rows[0]?.head == null || r.rows[0]?.leaves == null) return { tables: false, writable: false }
    const w = await client.query<{ w: boolean }>("SELECT has_table_privilege($1, 'UPDATE') AND has_table_privilege($2, 'INSERT') AS w", [`${schema}.log_head`, `${schema}.log_leaves`])
    if (w.rows[0]?.w !== true) return { tables: true, writable: false }
    const size = await client.query<{ size: string }>(`SELECT size FROM ${schema}.log_head WHERE id = 1`)
    return { tables: true, writable: true, size: Number(size.rows[0]?.size ?? 0) }
  } catch (e) {
    throw pgLogError('probing the log schema', e)
  } finally {
    await client.end().catch(ignore)
  }
}

/** What `appendWith` builds once its first index is known. */
export interface BuiltAppend {
  readonly leaves: readonly Uint8Array[]
  readonly evidence?: readonly EvidenceRow[]
  /**
   * Replay entries answered by these leaves (`record`: the offset of the response-out leaf): the
   * replay memory learns the answer's index in the same transaction (`PgReplayMemory.settle` then
   * has nothing left to do), so a retry reaching another replica right after the answer finds it.
   */
  readonly settles?: readonly { iss: string; xid: string; reqDigest: string; record: number }[]
}

interface Op {
  /** leaves given up front, or `build` called inside the transaction with the first index */
  leaves?: readonly Uint8Array[]
  evidence?: readonly EvidenceRow[]
  build?: (first: number) => Promise<BuiltAppend>
  count: number
  resolve: (r: AppendResult[]) => void
  reject: (e: unknown) => void
}

const settleKey = (iss: string, xid: string, reqDigest: string): string => `${iss}\u0000${xid}\u0000${reqDigest}`

const b = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength)

export class PgLogStore implements LogStore, EvidenceStore {
  /** several replicas may append to this log: indices are assigned by the database */
  readonly shared = true
  private readonly evidenceKey: Uint8Array | undefined
  private readonly maxBatch: number
  private readonly maxLeafBytes: number
  private range = CompactRange.empty()
  private readonly queue: Op[] = []
  private inFlight = false
  private scheduled = false
  private failure: VnError | undefined
  private closed = false
  private failNext = false
  private drained: (() => void)[] = []
  /** serializes commits and catch-ups of the in-memory right border */
  private exclusive: Promise<unknown> = Promise.resolve()
  private reopening: Promise<void> | undefined
  private readonly counters = { commits: 0, leaves: 0, largestBatch: 0 }
  /** replay entries the last commits settled (see `BuiltAppend.settles`), until `takeSettled` */
  private readonly settledHere = new Set<string>()

  private constructor(private readonly pool: pg.Pool, private readonly ownsPool: boolean, opts: PgLogStoreOptions) {
    if (opts.evidenceKey !== undefined) checkEvidenceKey(opts.evidenceKey, 'log store: evidenceKey')
    this.evidenceKey = opts.evidenceKey === undefined ? undefined : new Uint8Array(opts.evidenceKey)
    this.maxBatch = opts.maxBatch ?? 512
    this.maxLeafBytes = opts.maxLeafBytes ?? 1024 * 1024
    if (!Number.isSafeInteger(this.maxBatch) || this.maxBatch < 1) throw new VnError('VN_ERR_CONFIG_INVALID', 'log store: maxBatch must be ≥ 1')
  }

  /**
   * The store over a pool from `openPgLogPool` (closed with the store when `ownsPool`), its size
   * and right border read back from the database.
   */
  static async open(pool: pg.Pool, opts: PgLogStoreOptions & { ownsPool?: boolean } = {}): Promise<PgLogStore> {
    const s = new PgLogStore(pool, opts.ownsPool ?? false, opts)
    const state = await s.readTree(true)
    s.range = state
    return s
  }

  get writable(): boolean {
    return this.failure === undefined && !this.closed
  }

  /** Group-commit counters: transactions committed, leaves appended, largest batch. */
  get stats(): { readonly commits: number; readonly leaves: number; readonly largestBatch: number } {
    return { ...this.counters }
  }

  /** Appends queued for a group commit (metrics). */
  get queued(): number {
    return this.queue.length
  }

  /** Test hook: the next transaction throws after writing its rows (it must roll back). */
  failNextCommit(): void {
    this.failNext = true
  }

  private run<T>(work: () => Promise<T>): Promise<T> {
    const p = this.exclusive.then(work, work)
    this.exclusive = p.catch(ignore)
    return p
  }

  /** Size and right border as stored (optionally checking the leaves for gaps). */
  private async readTree(checkGaps: boolean, client?: pg.PoolClient): Promise<CompactRange> {
    const q = client ?? this.pool
    let size: number
    try {
      const r = await q.query<{ size: number }>('SELECT size FROM log_head WHERE id = 1')
      size = r.rows[0]?.size ?? 0
      if (checkGaps) {
        const c = await q.query<{ n: number; max: number | null }>('SELECT count(*)::bigint AS n, max(idx) AS max FROM log_leaves')
        const row = c.rows[0]
        if (row === undefined || row.n !== size || (row.max ?? -1) !== size - 1) throw unavailable('postgres log: the leaves table does not match the head (gaps or rows beyond it)')
      }
      const border = await this.fetchNodesFrom(q, rangeNodes(0, size))
      return CompactRange.fromHashes(0, size, border)
    } catch (e) {
      throw pgLogError('reading the tree', e)
    }
  }

  private async fetchNodesFrom(q: pg.Pool | pg.PoolClient, ids: readonly NodeId[]): Promise<Uint8Array[]> {
    if (ids.length === 0) return []
    const leafIdx = ids.filter((id) => id.level === 0).map((id) => id.index)
    const nodeIds = ids.filter((id) => id.level > 0)
    const got = new Map<string, Uint8Array>()
    if (leafIdx.length > 0) {
      const r = await q.query<{ idx: number; hash: Buffer }>('SELECT idx, hash FROM log_leaves WHERE idx = ANY($1::bigint[])', [leafIdx])
      for (const row of r.rows) got.set(`0/${row.idx}`, row.hash)
    }
    if (nodeIds.length > 0) {
      const r = await q.query<{ level: number; idx: number; hash: Buffer }>(
        'SELECT n.level, n.idx, n.hash FROM log_nodes n JOIN unnest($1::int[], $2::bigint[]) AS w(level, idx) ON n.level = w.level AND n.idx = w.idx',
        [nodeIds.map((id) => id.level), nodeIds.map((id) => id.index)],
      )
      for (const row of r.rows) got.set(`${row.level}/${row.idx}`, row.hash)
    }
    return ids.map((id) => {
      const h = got.get(`${id.level}/${id.index}`)
      if (h === undefined || h.length !== HASH_SIZE) throw unavailable('postgres log: the stored tree is missing a node')
      return new Uint8Array(h)
    })
  }

  private fetchNodes = (ids: readonly NodeId[]): Promise<Uint8Array[]> => this.fetchNodesFrom(this.pool, ids).catch((e: unknown) => { throw pgLogError('reading the tree', e) })

  // -------------------------------------------------------------------------------------------
  // Writes

  append(leaf: Uint8Array): Promise<AppendResult> {
    return this.appendMany([leaf]).then((r) => r[0] as AppendResult)
  }

  async appendMany(leaves: readonly Uint8Array[], evidence: readonly EvidenceRow[] = []): Promise<AppendResult[]> {
    checkAppendInput(leaves, evidence, { maxLeafBytes: this.maxLeafBytes, maxBatch: this.maxBatch, canSeal: this.evidenceKey !== undefined })
    if (leaves.length === 0) return []
    // copies: a caller's buffer changing later does not change what is written
    return this.submit({ leaves: leaves.map((l) => new Uint8Array(l)), evidence, count: leaves.length })
  }

  /**
   * Appends `count` leaves that `build` makes once their first index is known, inside the
   * transaction that writes them (the provider signs its response naming its request's index).
   * A `build` that throws, or returns another number of leaves or bad evidence, rejects this
   * append alone: the leaves of the others of its batch take the indices in its place.
   */
  appendWith(count: number, build: (first: number) => Promise<BuiltAppend>): Promise<AppendResult[]> {
    if (!Number.isSafeInteger(count) || count < 1 || count > this.maxBatch) return Promise.reject(new VnError('VN_ERR_LOG_ENTRY_INVALID', `count: expected 1 to ${this.maxBatch}`))
    return this.submit({ build, count })
  }

  private submit(op: Omit<Op, 'resolve' | 'reject'>): Promise<AppendResult[]> {
    if (this.closed) return Promise.reject(unavailable('store is closed'))
    if (this.failure !== undefined) return Promise.reject(this.failure)
    return new Promise<AppendResult[]>((resolve, reject) => {
      this.queue.push({ ...op, resolve, reject })
      this.schedule()
    })
  }

  private schedule(): void {
    if (this.inFlight || this.scheduled) return
    this.scheduled = true
    setImmediate(() => {
      this.scheduled = false
      void this.flush()
    })
  }

  private async flush(): Promise<void> {
    if (this.inFlight || this.queue.length === 0) return
    const ops: Op[] = []
    let count = 0
    while (this.queue.length > 0) {
      const next = this.queue[0] as Op
      if (ops.length > 0 && count + next.count > this.maxBatch) break
      ops.push(this.queue.shift() as Op)
      count += next.count
    }
    this.inFlight = true
    try {
      await this.run(() => this.commit(ops))
    } catch (e) {
      this.failClosed(ops, e)
    } finally {
      this.inFlight = false
    }
    if (this.queue.length > 0 && this.failure === undefined) void this.flush()
    else if (!this.inFlight) for (const d of this.drained.splice(0)) d()
  }

  /** One transaction: lock the head, catch up, build, insert, move the head. */
  private async commit(ops: Op[]): Promise<void> {
    const simulate = this.failNext
    this.failNext = false
    let client: pg.PoolClient
    try {
      client = await this.pool.connect()
    } catch (e) {
      throw pgLogError('connecting', e)
    }
    client.on('error', ignore)
    let ok = false
    try {
      // three round trips a commit: BEGIN with the head's lock (one simple query), every insert and
      // the head's move as one statement, COMMIT (pg sends a client's queries one after another)
      const opened = (await client.query('BEGIN; SELECT size FROM log_head WHERE id = 1 FOR UPDATE')) as unknown as pg.QueryResult<{ size: number }>[]
      const size = opened[1]?.rows[0]?.size
      if (size === undefined) throw unavailable('postgres log: no head row')
      // another replica appended since this one last looked: its leaves are ours to build on
      const start = size === this.range.end ? this.range.clone() : await this.readTree(false, client)
      // Build what must know its index; one that fails drops out and the later ones are built again.
      let live = ops
      let built: { op: Op; leaves: readonly Uint8Array[]; evidence: readonly EvidenceRow[]; settles: NonNullable<BuiltAppend['settles']> }[] = []
      for (;;) {
        let first = size
        const firsts = live.map((op) => {
          const f = first
          first += op.count
          return f
        })
        const results = await Promise.allSettled(live.map(async (op, k) => {
          if (op.build === undefined) return { op, leaves: op.leaves ?? [], evidence: op.evidence ?? [], settles: [] }
          const r = await op.build(firsts[k] as number)
          const leaves = r.leaves.map((l) => new Uint8Array(l))
          if (leaves.length !== op.count) throw new VnError('VN_ERR_LOG_ENTRY_INVALID', `appendWith: built ${leaves.length} leaves, ${op.count} announced`)
          checkAppendInput(leaves, r.evidence ?? [], { maxLeafBytes: this.maxLeafBytes, maxBatch: this.maxBatch, canSeal: this.evidenceKey !== undefined })
          return { op, leaves, evidence: r.evidence ?? [], settles: r.settles ?? [] }
        }))
        const failed = results.flatMap((r, k) => (r.status === 'rejected' ? [{ op: live[k] as Op, e: r.reason as unknown }] : []))
        if (failed.length === 0) {
          built = results.map((r) => (r as PromiseFulfilledResult<(typeof built)[number]>).value)
          break
        }
        for (const f of failed) f.op.reject(f.e)
        live = live.filter((op) => !failed.some((f) => f.op === op))
        ops.splice(0, ops.length, ...live)
        if (live.length === 0) break
      }
      if (built.length === 0) {
        await client.query('ROLLBACK')
        ok = true
        this.range = start
        return
      }
      const range = start.clone()
      const idx: number[] = []
      const data: Buffer[] = []
      const hashes: Buffer[] = []
      const nodeLevel: number[] = []
      const nodeIdx: number[] = []
      const nodeHash: Buffer[] = []
      const visit = (level: number, index: number, hash: Uint8Array): void => {
        nodeLevel.push(level)
        nodeIdx.push(index)
        nodeHash.push(b(hash))
      }
      const jws: [number[], string[], string[]] = [[], [], []]
      const disc: [number[], string[], Buffer[], Buffer[], number[]] = [[], [], [], [], []]
      const recv: [number[], string[], string[], Buffer[], Buffer[], number[]] = [[], [], [], [], [], []]
      const results: AppendResult[][] = []
      const settle: [string[], string[], string[], number[]] = [[], [], [], []]
      for (const { leaves, evidence, settles } of built) {
        const first = range.end
        for (const x of settles ?? []) {
          settle[0].push(x.iss)
          settle[1].push(x.xid)
          settle[2].push(x.reqDigest)
          settle[3].push(first + x.record)
        }
        const out: AppendResult[] = []
        for (const l of leaves) {
          const h = leafHash(l)
          idx.push(range.end)
          data.push(b(l))
          hashes.push(b(h))
          out.push({ index: range.end, leafHash: h })
          range.append(h, visit)
        }
        for (const e of evidence) {
          const at = first + e.record
          if (e.kind === 'jws') {
            jws[0].push(at)
            jws[1].push(e.digest)
            jws[2].push(e.jws)
          } else if (e.kind === 'received') {
            const s = encryptReceived(this.evidenceKey as Uint8Array, e.xid, e.bytes)
            recv[0].push(at)
            recv[1].push(e.xid)
            recv[2].push(e.digest)
            recv[3].push(b(s.nonce))
            recv[4].push(b(s.ciphertext))
            recv[5].push(e.expiresAt)
          } else {
            const s = encryptDisclosures(this.evidenceKey as Uint8Array, e.xid, e.disclosures)
            disc[0].push(at)
            disc[1].push(e.xid)
            disc[2].push(b(s.nonce))
            disc[3].push(b(s.ciphertext))
            disc[4].push(e.expiresAt)
          }
        }
        results.push(out)
      }
      // a named statement: parsed and planned once per connection
      await client.query({
        name: 'vn_log_commit',
        text: `WITH l AS (INSERT INTO log_leaves (idx, data, hash) SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::bytea[])),
           n AS (INSERT INTO log_nodes (level, idx, hash) SELECT * FROM unnest($4::int[], $5::bigint[], $6::bytea[])),
           j AS (INSERT INTO evidence_jws (leaf, digest, jws) SELECT * FROM unnest($7::bigint[], $8::text[], $9::text[])),
           d AS (INSERT INTO evidence_disclosures (leaf, xid, nonce, ciphertext, expires_ms) SELECT * FROM unnest($10::bigint[], $11::text[], $12::bytea[], $13::bytea[], $14::bigint[])),
           r AS (INSERT INTO evidence_received (leaf, xid, digest, nonce, ciphertext, expires_ms) SELECT * FROM unnest($15::bigint[], $16::text[], $17::text[], $18::bytea[], $19::bytea[], $20::bigint[])),
           s AS (UPDATE replay p SET idx = v.idx FROM unnest($22::text[], $23::text[], $24::text[], $25::bigint[]) AS v(iss, xid, d, idx)
                 WHERE p.iss = v.iss AND p.xid = v.xid AND p.req_digest = v.d AND p.idx IS NULL)
           UPDATE log_head SET size = $21 WHERE id = 1`,
        values: [idx, data, hashes, nodeLevel, nodeIdx, nodeHash, ...jws, ...disc, ...recv, range.end, ...settle],
      })
      if (simulate) throw new Error('simulated write failure')
      await client.query('COMMIT')
      ok = true
      // Only a committed transaction moves the in-memory state.
      this.range = range
      this.counters.commits++
      this.counters.leaves += idx.length
      this.counters.largestBatch = Math.max(this.counters.largestBatch, idx.length)
      if (this.settledHere.size > 100_000) this.settledHere.clear() // (only ever a memo: settle writes again)
      for (let k = 0; k < settle[0].length; k++) this.settledHere.add(settleKey(settle[0][k] as string, settle[1][k] as string, settle[2][k] as string))
      built.forEach(({ op }, k) => op.resolve(results[k] as AppendResult[]))
    } catch (e) {
      await client.query('ROLLBACK').catch(ignore)
      throw pgLogError('commit', e)
    } finally {
      client.removeListener('error', ignore)
      client.release(!ok)
    }
  }

  /** True once: the replay entry was settled by the commit that wrote its answer. */
  takeSettled(iss: string, xid: string, reqDigest: string): boolean {
    return this.settledHere.delete(settleKey(iss, xid, reqDigest))
  }

  /**
   * The shared database failed a replay-memory or quota statement (the server gone, the login
   * refused): the store fails closed as after a failed commit, so readiness turns false and the
   * node's reopener retries the trial write until the server answers again.
   */
  markUnavailable(cause: unknown): void {
    if (this.failure === undefined && !this.closed) this.failClosed([], cause)
  }

  private failClosed(ops: readonly Op[], cause: unknown): void {
    this.failure = unavailable(`a log commit failed${cause instanceof VnError && cause.detail !== undefined ? ` (${cause.detail})` : ''}; the store refuses writes until reopened`, cause)
    for (const op of [...ops, ...this.queue.splice(0)]) op.reject(this.failure)
  }

  /** A single write outside the group commit (checkpoints, purges); a failure fails the store closed. */
  private async write<T>(what: string, work: (q: pg.Pool) => Promise<T>): Promise<T> {
    if (this.closed) throw unavailable('store is closed')
    if (this.failure !== undefined) throw this.failure
    try {
      if (this.failNext) {
        this.failNext = false
        throw new Error('simulated write failure')
      }
      return await work(this.pool)
    } catch (e) {
      this.failClosed([], pgLogError(what, e))
      throw this.failure
    }
  }

  async purgeExpired(nowMs: number): Promise<number> {
    if (!Number.isSafeInteger(nowMs)) throw new VnError('VN_ERR_EVIDENCE_INVALID', 'nowMs: must be an integer')
    return this.write('purge', async (q) => {
      const a = await q.query('DELETE FROM evidence_disclosures WHERE expires_ms <= $1', [nowMs])
      const r = await q.query('DELETE FROM evidence_received WHERE expires_ms <= $1', [nowMs])
      return (a.rowCount ?? 0) + (r.rowCount ?? 0)
    })
  }

  async saveCheckpoint(size: number, note: string): Promise<void> {
    checkIndex('size', size)
    await this.reach(size)
    if (size > this.range.end) throw new VnError('VN_ERR_LOG_PROOF', 'size: beyond the committed log')
    const cp = parseCheckpoint(parseNote(note).text)
    if (cp.size !== size) throw new VnError('VN_ERR_LOG_NOTE_MALFORMED', 'note: checkpoint size differs from size')
    if (!hashEquals(cp.rootHash, await this.rootHash(size))) throw new VnError('VN_ERR_LOG_NOTE_MALFORMED', 'note: checkpoint root differs from the log root at that size')
    await this.write('saving a checkpoint', (q) => q.query(
      'INSERT INTO log_checkpoints (size, note, saved_ms) VALUES ($1, $2, $3) ON CONFLICT (size) DO UPDATE SET note = EXCLUDED.note, saved_ms = EXCLUDED.saved_ms',
      [size, note, Date.now()],
    ))
  }

  /**
   * After a failed write: a trial write (the head row updated to itself), then size and right
   * border read back (the leaves checked for gaps) and handed to `verify`; writable again only
   * when it resolves.
   */
  reopen(verify: (stored: StoredTree) => Promise<void>): Promise<void> {
    if (this.closed) return Promise.reject(unavailable('store is closed'))
    if (this.failure === undefined) return Promise.resolve()
    this.reopening ??= this.tryReopen(verify).finally(() => {
      this.reopening = undefined
    })
    return this.reopening
  }

  private async tryReopen(verify: (stored: StoredTree) => Promise<void>): Promise<void> {
    let range: CompactRange
    try {
      if (this.failNext) {
        this.failNext = false
        throw new Error('simulated write failure')
      }
      await this.pool.query('UPDATE log_head SET size = size WHERE id = 1')
      range = await this.run(() => this.readTree(true))
    } catch (e) {
      throw unavailable('trial write failed; the store still refuses writes', e)
    }
    if (this.closed) throw unavailable('store is closed')
    const size = range.end
    const root = range.root()
    await verify({
      size,
      rootHash: async (at: number) => {
        checkIndex('size', at)
        if (at > size) throw new VnError('VN_ERR_LOG_PROOF', 'size: beyond the stored log')
        return at === size ? new Uint8Array(root) : foldRange(await this.fetchNodes(planRoot(at)))
      },
    })
    if (this.closed) throw unavailable('store is closed')
    await this.run(async () => {
      this.range = range
    })
    this.failure = undefined
  }

  // -------------------------------------------------------------------------------------------
  // Reads

  /**
   * The committed size, as of now: leaves other replicas appended are taken in first (the right
   * border read back), so a checkpoint signed next covers them. A store that refuses writes, or a
   * server that does not answer, gives the size last known.
   */
  async size(): Promise<number> {
    if (this.writable) await this.catchUp().catch(ignore)
    return this.range.end
  }

  /**
   * A read names a size beyond what this replica has taken in (a peer read a checkpoint another
   * replica signed, behind one load balancer): take in what the others appended first.
   */
  private async reach(size: number): Promise<void> {
    if (Number.isSafeInteger(size) && size > this.range.end && this.writable) await this.catchUp().catch(ignore)
  }

  /** Takes in what other replicas appended (right border read back); resolves with the size. */
  async catchUp(): Promise<number> {
    return this.run(async () => {
      const r = await this.pool.query<{ size: number }>('SELECT size FROM log_head WHERE id = 1')
      const size = r.rows[0]?.size ?? 0
      if (size > this.range.end) this.range = await this.readTree(false)
      return this.range.end
    })
  }

  async rootHash(size?: number): Promise<Uint8Array> {
    if (size !== undefined) await this.reach(size)
    const committed = this.range
    if (size === undefined || size === committed.end) return committed.root()
    checkIndex('size', size)
    if (size > committed.end) throw new VnError('VN_ERR_LOG_PROOF', 'size: beyond the committed log')
    return foldRange(await this.fetchNodes(planRoot(size)))
  }

  async leaf(index: number): Promise<Uint8Array> {
    checkIndex('index', index)
    await this.reach(index + 1)
    if (index >= this.range.end) throw new VnError('VN_ERR_LOG_PROOF', 'index: beyond the committed log')
    const r = await this.read((q) => q.query<{ data: Buffer }>('SELECT data FROM log_leaves WHERE idx = $1', [index]))
    const row = r.rows[0]
    if (row === undefined) throw unavailable('postgres log: a committed leaf is missing')
    return new Uint8Array(row.data)
  }

  async entries(start: number, end: number): Promise<Uint8Array[]> {
    checkIndex('start', start)
    checkIndex('end', end)
    await this.reach(end)
    if (start > end || end > this.range.end) throw new VnError('VN_ERR_LOG_PROOF', 'start/end: must satisfy start ≤ end ≤ size')
    if (end - start > MAX_ENTRIES_PER_READ) throw new VnError('VN_ERR_LOG_PROOF', `end: at most ${MAX_ENTRIES_PER_READ} entries per read`)
    if (start === end) return []
    const r = await this.read((q) => q.query<{ data: Buffer }>('SELECT data FROM log_leaves WHERE idx >= $1 AND idx < $2 ORDER BY idx', [start, end]))
    if (r.rows.length !== end - start) throw unavailable('postgres log: committed leaves are missing')
    return r.rows.map((row) => new Uint8Array(row.data))
  }

  async inclusionProof(index: number, treeSize: number): Promise<Uint8Array[]> {
    await this.reach(treeSize)
    if (treeSize > this.range.end) throw new VnError('VN_ERR_LOG_PROOF', 'treeSize: beyond the committed log')
    const plan = planInclusionProof(index, treeSize)
    return assembleProof(plan, await this.fetchNodes(plan.nodes))
  }

  async consistencyProof(first: number, second: number): Promise<Uint8Array[]> {
    await this.reach(second)
    if (second > this.range.end) throw new VnError('VN_ERR_LOG_PROOF', 'second: beyond the committed log')
    const plan = planConsistencyProof(first, second)
    return assembleProof(plan, await this.fetchNodes(plan.nodes))
  }

  async latestCheckpoint(): Promise<StoredCheckpoint | undefined> {
    const r = await this.read((q) => q.query<{ size: number; note: string }>('SELECT size, note FROM log_checkpoints ORDER BY size DESC LIMIT 1'))
    const row = r.rows[0]
    return row === undefined ? undefined : { size: row.size, note: row.note }
  }

  async checkpointAt(size: number): Promise<string | undefined> {
    checkIndex('size', size)
    const r = await this.read((q) => q.query<{ note: string }>('SELECT note FROM log_checkpoints WHERE size = $1', [size]))
    return r.rows[0]?.note
  }

  private async read<T>(work: (q: pg.Pool) => Promise<T>): Promise<T> {
    if (this.closed) throw unavailable('store is closed')
    try {
      return await work(this.pool)
    } catch (e) {
      throw pgLogError('read', e)
    }
  }

  // -------------------------------------------------------------------------------------------
  // Evidence reads

  async getJws(index: number): Promise<StoredJws | undefined> {
    checkRecordIndex(index)
    const r = await this.read((q) => q.query<StoredJws>('SELECT digest, jws FROM evidence_jws WHERE leaf = $1', [index]))
    const row = r.rows[0]
    return row === undefined ? undefined : { digest: row.digest, jws: row.jws }
  }

  async getDisclosures(index: number, nowMs: number = Date.now()): Promise<StoredDisclosures | undefined> {
    checkRecordIndex(index)
    const r = await this.read((q) => q.query<{ xid: string; nonce: Buffer; ciphertext: Buffer; expires_ms: number }>('SELECT xid, nonce, ciphertext, expires_ms FROM evidence_disclosures WHERE leaf = $1', [index]))
    const row = r.rows[0]
    if (row === undefined || row.expires_ms <= nowMs) return undefined
    if (this.evidenceKey === undefined) throw new VnError('VN_ERR_CONFIG_INVALID', 'log store: opened without the evidence key')
    return { xid: row.xid, disclosures: decryptDisclosures(this.evidenceKey, row.xid, row.nonce, row.ciphertext) }
  }

  async getReceived(index: number, nowMs: number = Date.now()): Promise<StoredReceived | undefined> {
    checkRecordIndex(index)
    const r = await this.read((q) => q.query<{ xid: string; digest: string; nonce: Buffer; ciphertext: Buffer; expires_ms: number }>('SELECT xid, digest, nonce, ciphertext, expires_ms FROM evidence_received WHERE leaf = $1', [index]))
    const row = r.rows[0]
    if (row === undefined || row.expires_ms <= nowMs) return undefined
    if (this.evidenceKey === undefined) throw new VnError('VN_ERR_CONFIG_INVALID', 'log store: opened without the evidence key')
    return { xid: row.xid, digest: row.digest, bytes: new Uint8Array(decryptReceived(this.evidenceKey, row.xid, row.nonce, row.ciphertext)) }
  }

  /** Waits for queued writes, then releases the pool (when the store owns it). */
  async close(): Promise<void> {
    if (this.closed) return
    if (this.queue.length > 0 || this.inFlight) await new Promise<void>((r) => this.drained.push(r))
    await this.reopening?.catch(ignore)
    this.closed = true
    await this.exclusive
    if (this.ownsPool) await this.pool.end().catch(ignore)
  }
}

// ---------------------------------------------------------------------------------------------
// The snapshot `log export` reads

/**
 * Read-only access from another process: each snapshot is one `REPEATABLE READ READ ONLY`
 * transaction, so everything it reads is as of one instant while replicas keep appending.
 */
export class PgLogReader implements LogReader {
  private constructor(private readonly pool: pg.Pool) {}

  /** @throws VN_ERR_AUDIT_EXPORT_INVALID when the log cannot be opened */
  static async open(conn: PgLogConnection): Promise<PgLogReader> {
    try {
      return new PgLogReader(await openPgLogPool({ ...conn, poolSize: 1 }))
    } catch (e) {
      throw new VnError('VN_ERR_AUDIT_EXPORT_INVALID', `the postgres log cannot be opened (${e instanceof VnError ? e.detail ?? e.code : driverCode(e)})`, { cause: e })
    }
  }

  async snapshot<T>(read: (s: LogSnapshot) => Promise<T>): Promise<T> {
    const c = await this.pool.connect()
    c.on('error', ignore)
    let ok = false
    try {
      await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
      const size = (await c.query<{ size: number }>('SELECT size FROM log_head WHERE id = 1')).rows[0]?.size ?? 0
      const paged = async function* <R, O>(sql: string, extra: unknown[], map: (r: R) => O): AsyncGenerator<O[]> {
        let after = -1
        for (;;) {
          const r = await c.query<R & { leaf: number }>(sql, [after, size, SNAPSHOT_CHUNK, ...extra])
          if (r.rows.length === 0) return
          after = (r.rows[r.rows.length - 1] as { leaf: number }).leaf
          yield r.rows.map(map)
        }
      }
      const result = await read({
        size,
        leaves: async function* () {
          let expect = 0
          for await (const chunk of paged<{ data: Buffer; leaf: number }, { leaf: number; data: Uint8Array }>('SELECT idx AS leaf, data FROM log_leaves WHERE idx > $1 AND idx < $2 ORDER BY idx LIMIT $3', [], (r) => ({ leaf: r.leaf, data: new Uint8Array(r.data) }))) {
            for (const x of chunk) if (x.leaf !== expect++) throw new VnError('VN_ERR_AUDIT_EXPORT_INVALID', `the postgres log has no leaf ${expect - 1}`)
            yield chunk.map((x) => x.data)
          }
          if (expect !== size) throw new VnError('VN_ERR_AUDIT_EXPORT_INVALID', `the postgres log has no leaf ${expect}`)
        },
        jws: () => paged<{ digest: string; jws: string }, StoredJws>('SELECT leaf, digest, jws FROM evidence_jws WHERE leaf > $1 AND leaf < $2 ORDER BY leaf LIMIT $3', [], (r) => ({ digest: r.digest, jws: r.jws })),
        sealedDisclosures: (nowMs) => paged<{ xid: string; nonce: Buffer; ciphertext: Buffer }, { xid: string; nonce: Uint8Array; ciphertext: Uint8Array }>(
          'SELECT leaf, xid, nonce, ciphertext FROM evidence_disclosures WHERE leaf > $1 AND leaf < $2 AND expires_ms > $4 ORDER BY leaf LIMIT $3', [nowMs],
          (r) => ({ xid: r.xid, nonce: new Uint8Array(r.nonce), ciphertext: new Uint8Array(r.ciphertext) }),
        ),
        countDisclosures: async (nowMs) => (await c.query<{ n: number }>('SELECT count(*)::bigint AS n FROM evidence_disclosures WHERE leaf < $1 AND expires_ms > $2', [size, nowMs])).rows[0]?.n ?? 0,
        sealedReceived: (nowMs) => paged<{ xid: string; digest: string; nonce: Buffer; ciphertext: Buffer }, { xid: string; digest: string; nonce: Uint8Array; ciphertext: Uint8Array }>(
          'SELECT leaf, xid, digest, nonce, ciphertext FROM evidence_received WHERE leaf > $1 AND leaf < $2 AND expires_ms > $4 ORDER BY leaf LIMIT $3', [nowMs],
          (r) => ({ xid: r.xid, digest: r.digest, nonce: new Uint8Array(r.nonce), ciphertext: new Uint8Array(r.ciphertext) }),
        ),
        checkpoints: async () => (await c.query<{ size: number; note: string }>('SELECT size, note FROM log_checkpoints WHERE size <= $1 ORDER BY size', [size])).rows.map((r) => ({ size: r.size, note: r.note })),
      })
      await c.query('COMMIT')
      ok = true
      return result
    } catch (e) {
      if (e instanceof VnError) throw e
      throw new VnError('VN_ERR_AUDIT_EXPORT_INVALID', `the postgres log cannot be read (${driverCode(e)})`, { cause: e })
    } finally {
      c.removeListener('error', ignore)
      c.release(!ok)
    }
  }

  async close(): Promise<void> {
    await this.pool.end().catch(ignore)
  }
}

// ---------------------------------------------------------------------------------------------
// Replay memory and quota counts, shared by the replicas

/**
 * Calls that arrive together go to the database as one statement: what is queued while a batch is
 * out forms the next one (as the log's group commit), so under load batches grow by themselves.
 */
class MicroBatch<I, O> {
  private pending: { item: I; resolve: (o: O) => void; reject: (e: unknown) => void }[] = []
  private running = false
  private scheduled = false

  constructor(private readonly run: (items: I[]) => Promise<O[]>, private readonly max = 512) {}

  push(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.pending.push({ item, resolve, reject })
      if (this.running || this.scheduled) return
      this.scheduled = true
      setImmediate(() => {
        this.scheduled = false
        void this.drain()
      })
    })
  }

  private async drain(): Promise<void> {
    if (this.running || this.pending.length === 0) return
    this.running = true
    const batch = this.pending.splice(0, this.max)
    try {
      const out = await this.run(batch.map((x) => x.item))
      batch.forEach((x, k) => x.resolve(out[k] as O))
    } catch (e) {
      for (const x of batch) x.reject(e)
    } finally {
      this.running = false
    }
    if (this.pending.length > 0) void this.drain()
  }
}

interface Claim { iss: string; xid: string; entry: ReplayEntry; now: number }
type Held = { req_digest: string; idx: number | null; expires_ms: number }
const heldEntry = (h: Held): ReplayEntry => (h.idx === null ? { reqDigest: h.req_digest, expiresAt: h.expires_ms } : { reqDigest: h.req_digest, index: h.idx, expiresAt: h.expires_ms })

/**
 * The replay memory as rows (iss, xid) → request digest, log index of the answer, expiry. Claims
 * arriving together are one `INSERT ... ON CONFLICT DO UPDATE ... WHERE expired RETURNING`: exactly
 * one of concurrent claims of one key, on any replica, holds it; the others read the holder. Settles
 * arriving together are one UPDATE. Bounded: the live rows are counted (and the expired ones
 * deleted) when this replica's estimate reaches `capacity`, at most once a second.
 */
export class PgReplayMemory implements ReplayMemory {
  readonly capacity: number
  private readonly onUnavailable: ((e: VnError) => void) | undefined
  private readonly settledByLog: ((iss: string, xid: string, reqDigest: string) => boolean) | undefined
  private estimate = 0
  private lastSweep = -Infinity
  private readonly claims = new MicroBatch<Claim, ReplayEntry | undefined | 'retry'>((c) => this.claimBatch(c))
  private readonly settles = new MicroBatch<{ iss: string; xid: string; reqDigest: string; index: number }, void>((s) => this.settleBatch(s))

  constructor(private readonly pool: pg.Pool, opts: { maxEntries?: number; onUnavailable?: (e: VnError) => void; settledByLog?: (iss: string, xid: string, reqDigest: string) => boolean } = {}) {
    this.onUnavailable = opts.onUnavailable
    this.settledByLog = opts.settledByLog
    const n = opts.maxEntries ?? DEFAULT_REPLAY_MAX_ENTRIES
    if (!Number.isSafeInteger(n) || n < 1) throw new VnError('VN_ERR_CONFIG_INVALID', 'replay memory: maxEntries must be a positive integer')
    this.capacity = n
  }

  /** Entries held as last counted here, plus the claims made since (metrics, tests). */
  get size(): number {
    return this.estimate
  }

  /** `name`: a statement run on every exchange, prepared once per connection. */
  private async q<R extends pg.QueryResultRow>(sql: string, values: unknown[], name?: string): Promise<pg.QueryResult<R>> {
    try {
      return await this.pool.query<R>(name === undefined ? { text: sql, values } : { name, text: sql, values })
    } catch (e) {
      const err = new VnError('VN_ERR_LOG_UNAVAILABLE', `postgres replay memory: unavailable (${driverCode(e)})`, { cause: e })
      this.onUnavailable?.(err)
      throw err
    }
  }

  private async held(iss: string, xid: string): Promise<Held | undefined> {
    return (await this.q<Held>('SELECT req_digest, idx, expires_ms FROM replay WHERE iss = $1 AND xid = $2', [iss, xid])).rows[0]
  }

  async claim(iss: string, xid: string, entry: ReplayEntry, now: number): Promise<ReplayEntry | undefined> {
    if (this.estimate < this.capacity) {
      const r = await this.claims.push({ iss, xid, entry, now })
      if (r !== 'retry') return r
    }
    // full (or a claim that raced with an expiry): one at a time, counting
    for (let attempt = 0; attempt < 3; attempt++) {
      const prior = await this.held(iss, xid)
      if (prior !== undefined && prior.expires_ms >= now) return heldEntry(prior)
      if (prior === undefined && this.estimate >= this.capacity) {
        if (now - this.lastSweep >= 1000) {
          this.lastSweep = now
          await this.q('DELETE FROM replay WHERE expires_ms < $1', [now])
          this.estimate = (await this.q<{ n: number }>('SELECT count(*)::bigint AS n FROM replay', [])).rows[0]?.n ?? 0
        }
        if (this.estimate >= this.capacity) throw new VnError('VN_ERR_EXCH_REPLAY_FULL', `${this.estimate} exchanges held for the replay window (limits.replayMaxEntries ${this.capacity})`)
      }
      const r = await this.q(
        `INSERT INTO replay (iss, xid, req_digest, idx, expires_ms) VALUES ($1, $2, $3, NULL, $4)
         ON CONFLICT (iss, xid) DO UPDATE SET req_digest = EXCLUDED.req_digest, idx = NULL, expires_ms = EXCLUDED.expires_ms
         WHERE replay.expires_ms < $5 RETURNING 1`,
        [iss, xid, entry.reqDigest, entry.expiresAt, now],
      )
      if (r.rowCount === 1) {
        if (prior === undefined) this.estimate++
        return undefined
      }
    }
    throw new VnError('VN_ERR_EXCH_BUSY', 'the replay memory is contended for this xid; retry')
  }

  /**
   * One statement for the claims of a batch (the first of each key; a repeated key reads the
   * holder after). An entry expired as of the batch's earliest `now` is taken over.
   */
  private async claimBatch(claims: Claim[]): Promise<(ReplayEntry | undefined | 'retry')[]> {
    const key = (c: { iss: string; xid: string }): string => `${c.iss}\u0000${c.xid}`
    const first = new Map<string, Claim>()
    for (const c of claims) if (!first.has(key(c))) first.set(key(c), c)
    const fresh = [...first.values()]
    const now = Math.min(...fresh.map((c) => c.now))
    const won = await this.q<{ iss: string; xid: string }>(
      `INSERT INTO replay (iss, xid, req_digest, idx, expires_ms)
       SELECT v.iss, v.xid, v.d, NULL, v.e FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS v(iss, xid, d, e)
       ON CONFLICT (iss, xid) DO UPDATE SET req_digest = EXCLUDED.req_digest, idx = NULL, expires_ms = EXCLUDED.expires_ms
       WHERE replay.expires_ms < $5 RETURNING iss, xid`,
      [fresh.map((c) => c.iss), fresh.map((c) => c.xid), fresh.map((c) => c.entry.reqDigest), fresh.map((c) => c.entry.expiresAt), now],
      'vn_replay_claim',
    )
    const claimed = new Set(won.rows.map(key))
    this.estimate += claimed.size
    const others = claims.filter((c) => !(claimed.has(key(c)) && first.get(key(c)) === c))
    const seen = new Map<string, Held>()
    if (others.length > 0) {
      const r = await this.q<Held & { iss: string; xid: string }>(
        'SELECT r.iss, r.xid, r.req_digest, r.idx, r.expires_ms FROM replay r JOIN unnest($1::text[], $2::text[]) AS v(iss, xid) ON r.iss = v.iss AND r.xid = v.xid',
        [others.map((c) => c.iss), others.map((c) => c.xid)],
        'vn_replay_read',
      )
      for (const row of r.rows) seen.set(key(row), row)
    }
    return claims.map((c) => {
      if (claimed.has(key(c)) && first.get(key(c)) === c) return undefined
      const h = seen.get(key(c))
      return h !== undefined && h.expires_ms >= c.now ? heldEntry(h) : 'retry'
    })
  }

  settle(iss: string, xid: string, reqDigest: string, index: number): Promise<void> {
    // the commit that wrote the answer settled it already (the usual case on a node)
    if (this.settledByLog?.(iss, xid, reqDigest) === true) return Promise.resolve()
    return this.settles.push({ iss, xid, reqDigest, index })
  }

  private async settleBatch(s: { iss: string; xid: string; reqDigest: string; index: number }[]): Promise<void[]> {
    await this.q(
      `UPDATE replay r SET idx = v.idx FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS v(iss, xid, d, idx)
       WHERE r.iss = v.iss AND r.xid = v.xid AND r.req_digest = v.d AND r.idx IS NULL`,
      [s.map((x) => x.iss), s.map((x) => x.xid), s.map((x) => x.reqDigest), s.map((x) => x.index)],
      'vn_replay_settle',
    )
    return s.map(() => undefined)
  }

  async release(iss: string, xid: string, reqDigest: string): Promise<void> {
    const r = await this.q('DELETE FROM replay WHERE iss = $1 AND xid = $2 AND req_digest = $3 AND idx IS NULL', [iss, xid, reqDigest])
    this.estimate = Math.max(0, this.estimate - (r.rowCount ?? 0))
  }

  async remember(iss: string, xid: string, entry: ReplayEntry & { readonly index: number }): Promise<void> {
    await this.q(
      `INSERT INTO replay (iss, xid, req_digest, idx, expires_ms) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (iss, xid) DO UPDATE SET req_digest = EXCLUDED.req_digest, idx = EXCLUDED.idx, expires_ms = EXCLUDED.expires_ms`,
      [iss, xid, entry.reqDigest, entry.index, entry.expiresAt],
    )
    this.estimate++
  }
}

const DAY_RE = /^[0-9]{4}-[0-9]{2}-[0-9]{2}$/
function checkCount(n: number, field: string): void {
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`${field}: expected a positive integer`)
}

interface Consume { agreementId: string; day: string; n: number; limit: number }

/**
 * Daily quota counts as rows, atomic across replicas. Calls arriving together are one transaction:
 * the rows of their (agreement, day) keys are locked (`FOR UPDATE`), each call is checked in
 * arrival order against the count so far (a batch fits wholly or counts nothing), and the new
 * counts are written back.
 */
export class PgQuotaStore implements QuotaStore {
  private readonly batches = new MicroBatch<Consume, ConsumeResult>((c) => this.consumeBatch(c))
  /** (agreement, day) rows known to exist: no insert-if-missing for them */
  private readonly known = new Set<string>()

  constructor(private readonly pool: pg.Pool, private readonly onUnavailable?: (e: VnError) => void) {}

  private unavailable(e: unknown): VnError {
    const err = e instanceof VnError ? e : new VnError('VN_ERR_LOG_UNAVAILABLE', `postgres quota counts: unavailable (${driverCode(e)})`, { cause: e })
    this.onUnavailable?.(err)
    return err
  }

  private async q<R extends pg.QueryResultRow>(sql: string, values: unknown[]): Promise<pg.QueryResult<R>> {
    try {
      return await this.pool.query<R>(sql, values)
    } catch (e) {
      throw this.unavailable(e)
    }
  }

  async tryConsume(agreementId: string, day: string, n: number, limit: number): Promise<ConsumeResult> {
    checkCount(n, 'n')
    checkCount(limit, 'limit')
    if (!DAY_RE.test(day)) throw new RangeError('day: expected YYYY-MM-DD')
    return this.batches.push({ agreementId, day, n, limit })
  }

  private async consumeBatch(calls: Consume[]): Promise<ConsumeResult[]> {
    const key = (c: { agreementId: string; day: string }): string => `${c.day}\u0000${c.agreementId}`
    // in one order on every replica, so two batches never wait on each other's rows crosswise
    const keys = [...new Map(calls.map((c) => [key(c), c])).values()].sort((x, y) => (key(x) < key(y) ? -1 : key(x) > key(y) ? 1 : 0))
    let client: pg.PoolClient
    try {
      client = await this.pool.connect()
    } catch (e) {
      throw this.unavailable(e)
    }
    client.on('error', ignore)
    let ok = false
    try {
      const fresh = keys.filter((k) => !this.known.has(key(k)))
      if (fresh.length > 0) {
        await client.query('INSERT INTO quota_counts (agreement, day, used) SELECT a, d, 0 FROM unnest($1::text[], $2::text[]) AS v(a, d) ON CONFLICT (agreement, day) DO NOTHING', [fresh.map((k) => k.agreementId), fresh.map((k) => k.day)])
        for (const k of fresh) this.known.add(key(k))
      }
      // BEGIN and the rows' lock in one simple query (values quoted by the driver), the new counts
      // and COMMIT in another: two round trips a batch
      const lit = (v: string): string => client.escapeLiteral(v)
      const where = keys.map((k) => `(${lit(k.agreementId)}, ${lit(k.day)})`).join(', ')
      const locked = (await client.query(`BEGIN; SELECT agreement, day, used FROM quota_counts WHERE (agreement, day) IN (${where}) ORDER BY agreement, day FOR UPDATE`)) as unknown as pg.QueryResult<{ agreement: string; day: string; used: number }>[]
      const used = new Map((locked[1]?.rows ?? []).map((r) => [key({ agreementId: r.agreement, day: r.day }), r.used]))
      const before = new Map(used)
      const out = calls.map((c): ConsumeResult => {
        const u = used.get(key(c)) ?? 0
        if (u + c.n > c.limit) return { ok: false, used: u, remaining: Math.max(0, c.limit - u) }
        used.set(key(c), u + c.n)
        return { ok: true, used: u + c.n, remaining: c.limit - u - c.n }
      })
      const changed = keys.filter((k) => used.get(key(k)) !== before.get(key(k)))
      // an upsert: a row that went missing since it was first seen here is written again
      const updates = changed.map((k) => `INSERT INTO quota_counts (agreement, day, used) VALUES (${lit(k.agreementId)}, ${lit(k.day)}, ${String(used.get(key(k)))}) ON CONFLICT (agreement, day) DO UPDATE SET used = EXCLUDED.used;`).join(' ')
      await client.query(`${updates} COMMIT`)
      ok = true
      return out
    } catch (e) {
      await client.query('ROLLBACK').catch(ignore)
      throw this.unavailable(e)
    } finally {
      client.removeListener('error', ignore)
      client.release(!ok)
    }
  }

  async used(agreementId: string, day: string): Promise<number> {
    return (await this.q<{ used: number }>('SELECT used FROM quota_counts WHERE agreement = $1 AND day = $2', [agreementId, day])).rows[0]?.used ?? 0
  }

  /**
   * Adds replayed permits. The node does not call it on this backend (the counts are kept, and
   * shared); a migration from a SQLite log can.
   */
  async restore(records: Iterable<QuotaRecord>, onlyDay?: string): Promise<void> {
    for (const r of records) {
      checkCount(r.count, 'record.count')
      if (!DAY_RE.test(r.day)) throw new RangeError('record.day: expected YYYY-MM-DD')
      if (onlyDay !== undefined && r.day !== onlyDay) continue
      await this.q('INSERT INTO quota_counts (agreement, day, used) VALUES ($1, $2, $3) ON CONFLICT (agreement, day) DO UPDATE SET used = quota_counts.used + EXCLUDED.used', [r.agreementId, r.day, r.count])
    }
  }
}

/**
 * A lease row: one holder at a time, until `expires_ms` by the database server's clock (replicas'
 * clocks need not agree). `acquire` takes a free or expired lease, or renews one this holder has.
 */
export class PgLease {
  constructor(private readonly pool: pg.Pool, readonly name: string, readonly holder: string, readonly ttlMs: number) {
    if (!Number.isSafeInteger(ttlMs) || ttlMs < 1) throw new VnError('VN_ERR_CONFIG_INVALID', 'lease: ttlMs must be a positive integer')
  }

  /** Resolves true when this holder has the lease for the next `ttlMs`. A server that does not answer: false. */
  async acquire(): Promise<boolean> {
    try {
      const r = await this.pool.query(
        `WITH now AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS ms)
         INSERT INTO leases (name, holder, expires_ms) SELECT $1, $2, ms + $3 FROM now
         ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_ms = EXCLUDED.expires_ms
         WHERE leases.holder = EXCLUDED.holder OR leases.expires_ms < (SELECT ms FROM now) RETURNING holder`,
        [this.name, this.holder, this.ttlMs],
      )
      return r.rowCount === 1
    } catch {
      return false
    }
  }

  /** Gives the lease up (a replica stopping cleanly), so another takes it at once. */
  async release(): Promise<void> {
    await this.pool.query('DELETE FROM leases WHERE name = $1 AND holder = $2', [this.name, this.holder]).catch(ignore)
  }

  /** The current holder, if the lease is live. */
  async current(): Promise<string | undefined> {
    const r = await this.pool.query<{ holder: string }>(
      'SELECT holder FROM leases WHERE name = $1 AND expires_ms >= (extract(epoch FROM clock_timestamp()) * 1000)::bigint', [this.name],
    )
    return r.rows[0]?.holder
  }
}

/** The PostgreSQL backend's four stores over one pool (closed with them). */
export async function openPgNodeStores(conn: PgLogConnection, opts: PgLogStoreOptions & { replayMaxEntries?: number } = {}): Promise<NodeStores & { readonly log: PgLogStore; readonly evidence: PgLogStore; readonly replay: PgReplayMemory; readonly quotas: PgQuotaStore; readonly pool: pg.Pool }> {
  const pool = await openPgLogPool(conn)
  let store: PgLogStore
  try {
    store = await PgLogStore.open(pool, { ...opts, ownsPool: true })
  } catch (e) {
    await pool.end().catch(ignore)
    throw e
  }
  return {
    log: store,
    evidence: store,
    // the log, replay memory and quota counts are one database: when it fails, the store fails closed
    replay: new PgReplayMemory(pool, {
      ...(opts.replayMaxEntries === undefined ? {} : { maxEntries: opts.replayMaxEntries }),
      onUnavailable: (e) => store.markUnavailable(e),
      settledByLog: (iss, xid, reqDigest) => store.takeSettled(iss, xid, reqDigest),
    }),
    quotas: new PgQuotaStore(pool, (e) => store.markUnavailable(e)),
    pool,
    close: () => store.close(),
  }
}
