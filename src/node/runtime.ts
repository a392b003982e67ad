/**
 * Assembles a running node from its config file: keys, federation manifest, data source, log and
 * evidence store, policy, provider and consumer. HTTP-free: src/http builds the listeners on top.
 *
 * Start-up writes two log entries (a key event naming the keys and manifest in use, and the agreement
 * set put in force), restores today's quota counts and the replay window from the log, and refuses to
 * start on any inconsistency (bad config, key files, manifest, read-write SQL).
 */
import { acquireEd25519 } from '../crypto/ed25519-batch.js'
import { createHash, timingSafeEqual, type KeyObject } from 'node:crypto'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { pino, type Logger } from 'pino'
import { loadConfig, type LoadedConfig } from '../config/load.js'
import type { ServiceConfig } from '../config/schema.js'
import { VnError, ERRORS, type ErrorCode } from '../errors.js'
import { loadPrivateKey, loadPublicKey, loadSecretFile, publicKeyToB64u } from '../crypto/keys.js'
import { FederationHolder, type Federation } from '../federation/federation.js'
import { openDataSource } from '../sources/index.js'
import type { DataSource } from '../sources/types.js'
import { openSqliteNodeStores } from '../log/store.js'
import { MAX_ENTRIES_PER_READ, type EvidenceStore, type LogStore, type NodeStores } from '../log/storage.js'
import { StoreNodeLog, parseLeaf } from '../log/node-log.js'
import type { LogRecord } from '../log/records.js'
import { ed25519NoteSigner, ed25519NoteVerifier, ed25519RawPublicKey, cosignatureVerifier, openNote, parseNote, parseCheckpoint, signCheckpoint, type NoteSigner } from '../log/checkpoint.js'
import { PeerLogs, logOrigin } from '../log/peer-logs.js'
import { agreementSetHash, type Agreement } from '../policy/agreements.js'
import { decideAsync } from '../policy/decide.js'
import { utcDay, type QuotaStore } from '../policy/quota.js'
import { Provider, type ExchangeReply } from '../exchange/provider.js'
import { Consumer } from '../exchange/consumer.js'
import { plainProvider, plainConsumer } from '../exchange/modes/plain.js'
import { oprfProvider, oprfConsumer } from '../exchange/modes/oprf.js'
import { TagSetCache, TagSetPublisher, loadOprfSeed, oprfSeedFile } from '../oprf/tagset-service.js'
import { createOprfPool } from '../oprf/oprf-pool.js'
import { heProvider, heConsumer, HeKeyCache } from '../exchange/modes/he.js'
import { HeEvaluatorPool } from '../he/he-pool.js'
import type { WorkerPool } from '../util/worker-pool.js'
import { join } from 'node:path'
import { catalogOf, signCatalog } from '../exchange/catalog.js'
import type { Signer } from '../exchange/signer.js'
import { PeerClient } from '../peers/client.js'
import { Metrics } from '../http/metrics.js'
import { REDACT } from './redact.js'
import { nodeKeyFiles, nodeDataFiles, NODE_PID_FILE } from './files.js'
import type { NodeRuntime, ReadyCheck } from './types.js'
import { ResponsePayloadSchema } from '../protocol/envelope.js'

export interface OpenNodeOptions {
  env?: Record<string, string | undefined>
  logger?: Logger
  now?: () => number
  /** checkpoint interval in ms (default 10 s); 0 disables the timer */
  checkpointEveryMs?: number
  /** a shared OPRF worker pool (tests, benches); by default the node starts its own when first needed */
  oprfPool?: WorkerPool
  /** how often tag-set rotation is checked, ms (default 30 s); 0: only at start */
  tagSetTickMs?: number
  /** witnessing interval in ms (default: config witness.everyMs); 0 disables it */
  witnessEveryMs?: number
  /** manifest reload and disclosure purge interval in ms (default 30 s); 0 disables it */
  housekeepingEveryMs?: number
}

export { logOrigin }

function findSigner(fed: Federation, member: string, publicKey: string, now: number): Signer['kid'] {
  const m = fed.member(member)
  for (const k of m.messageKeys.values()) {
    if (k.x === publicKey && now >= k.nbf && (k.exp === undefined || now < k.exp)) return `${member}#${k.kid}`
  }
  throw new VnError('VN_ERR_KEY_FILE', `keys/message.key is not a message key of ${member} valid now in manifest seq ${fed.seq}`)
}

export async function openNode(configPath: string, opts: OpenNodeOptions = {}): Promise<NodeRuntime> {
  const loaded: LoadedConfig = await loadConfig(configPath, opts.env ?? process.env)
  const cfg = loaded.config
  const now = opts.now ?? Date.now
  const logger = opts.logger ?? pino({ level: cfg.logLevel, redact: REDACT, base: { member: cfg.member } })
  const keyFiles = nodeKeyFiles(loaded.path(cfg.keysDir))
  const messageKey = await loadPrivateKey(keyFiles.messageKey)
  const logKey: KeyObject = await loadPrivateKey(keyFiles.logKey)
  const evidenceKey = await loadSecretFile(keyFiles.evidenceKey)
  const root = await loadPublicKey(loaded.path(cfg.federation.rootKey))
  const manifestPath = loaded.path(cfg.federation.manifest)
  const federation = await FederationHolder.open(manifestPath, root, now())
  const fed0 = federation.get(now())
  const self = cfg.member
  fed0.member(self)
  let signer: Signer = { kid: findSigner(fed0, self, publicKeyToB64u(messageKey), now()), privateKey: messageKey }

  if (cfg.insecure) logger.warn('insecure: plain HTTP to non-loopback peers is allowed; do not run like this outside a test network')

  const services = new Map<string, ServiceConfig>(cfg.services.map((s) => [s.id, s]))
  let source: DataSource | undefined
  if (cfg.dataSource !== undefined) {
    const statements: Record<string, string> = {}
    for (const s of cfg.services) {
      statements[`services.${s.id}.lookup`] = s.lookup
      if (s.enumerate !== undefined) statements[`services.${s.id}.enumerate`] = s.enumerate
      if (s.he !== undefined) statements[`services.${s.id}.he.valueLookup`] = s.he.valueLookup
    }
    source = await openDataSource({ ...cfg.dataSource, path: loaded.path(cfg.dataSource.path) }, { statements })
  }

  const metrics = new Metrics(self)
  const dataDir = loaded.path(cfg.dataDir)
  await mkdir(dataDir, { recursive: true, mode: 0o700 })
  let stores: NodeStores<ExchangeReply>
  try {
    // the writer thread seals disclosures with the evidence key (off the event loop)
    stores = await openSqliteNodeStores<ExchangeReply>(nodeDataFiles(dataDir).log, { evidenceKey })
  } catch (e) {
    await source?.close()
    throw e
  }
  // Offline commands that append to the log (keys rotate, disclosure export) refuse while this exists.
  const pidFile = join(dataDir, NODE_PID_FILE)
  await writeFile(pidFile, `${process.pid}\n`)
  const { log: store, evidence, quotas } = stores
  const log = await StoreNodeLog.open(store, (s) => metrics.logCommitSeconds.observe(s))

  const agreements: Agreement[] = cfg.agreements
  const policy = agreementSetHash(agreements)
  const limits = cfg.limits

  // oprf mode: the OPRF worker pool (started when first needed), the master seed and the tag-set
  // publisher of the services offering oprf; builds run off the request path (docs/PROTOCOL.md).
  let ownPool: WorkerPool | undefined
  const oprfPool = (): WorkerPool => opts.oprfPool ?? (ownPool ??= createOprfPool())
  const oprfServices = cfg.services.filter((s) => s.modes.includes('oprf'))
  const tagsets = oprfServices.length === 0 ? undefined : new TagSetPublisher({
    services: oprfServices,
    source,
    seed: await loadOprfSeed(oprfSeedFile(loaded.path(cfg.keysDir)), { create: true }),
    signer: () => signer,
    pool: oprfPool,
    dir: join(dataDir, 'tagsets'),
    logger,
    now,
    ...(opts.tagSetTickMs !== undefined ? { tickMs: opts.tagSetTickMs } : {}),
  })
  const tagSetCache = new TagSetCache({
    endpointOf: (m) => federation.get(now()).endpoint(m),
    messageKey: (kid, at, member) => federation.get(at).messageKey(kid, at, member).key,
    insecure: cfg.insecure,
    timeoutMs: cfg.peers.timeoutMs,
    now,
  })

  // he mode: the BFV evaluator pool (started when first needed), consumers' public keys kept
  // under the data folder, and this node's own key pair as a consumer (created when first needed).
  let hePool: HeEvaluatorPool | undefined
  const heOffered = cfg.services.some((s) => s.modes.includes('he'))
  const heAsConsumer = heConsumer({ now })

  // Ed25519 for the provider's hot path, batched on worker threads shared by the process
  const ed25519 = acquireEd25519()
  const provider = new Provider({
    self,
    signer: () => signer,
    resolver: (at) => federation.get(at).messageKeyResolver(at),
    services,
    authorize: (r) => decideAsync(r, agreements, quotas),
    policyHash: () => policy,
    source,
    modes: new Map([['plain', plainProvider], ...(heOffered ? [['he', heProvider({ pool: () => (hePool ??= new HeEvaluatorPool(cfg.he?.workers)), keys: new HeKeyCache({ dir: join(dataDir, 'he-keys'), now }) })] as const] : []), ...(tagsets === undefined ? [] : [['oprf', oprfProvider({ keys: tagsets, pool: oprfPool, now })] as const])]),
    log,
    replay: stores.replay,
    limits,
    now,
    ed25519: ed25519.batcher,
    observe: (o) => {
      metrics.exchanges.inc({ role: 'provider', service: o.service, mode: o.mode, decision: o.decision })
      metrics.exchangeSeconds.observe({ role: 'provider', service: o.service, mode: o.mode }, o.seconds)
    },
  })
  const client = new PeerClient({ ...cfg.peers, insecure: cfg.insecure })
  const consumer = new Consumer({
    self,
    signer: () => signer,
    resolver: (at) => federation.get(at).messageKeyResolver(at),
    endpointOf: (m) => federation.get(now()).endpoint(m),
    client,
    modes: new Map([['plain', plainConsumer], ['oprf', oprfConsumer({ tagsets: tagSetCache, pool: oprfPool })], ['he', heAsConsumer]]),
    log,
    limits,
    now,
  })

  // Recover today's quota usage and the replay window from the log, newest first.
  await recoverFromLog(store, evidence, provider, quotas, now(), limits.skewMs)

  // Start-up entries: which keys and manifest are in use, and which agreements are in force.
  await log.append([
    {
      v: 1, at: now(), t: 'key-event', event: 'node-started', member: self, messageKid: signer.kid,
      messageKey: publicKeyToB64u(messageKey), logKey: publicKeyToB64u(logKey), manifestSeq: fed0.seq, manifestHash: fed0.hash,
    },
    { v: 1, at: now(), t: 'agreements', policy, agreements },
  ])

  const peerLogs = new PeerLogs({
    self, federation: () => federation.get(now()), client, log, logKey, signer: () => signer, logger, now,
    onFork: () => metrics.forkAlerts.inc(),
  })
  await rememberWitnessed(store, peerLogs, fed0.departments().map((m) => m.id).filter((id) => id !== self), logger)
  const origin = logOrigin(fed0.name, self)
  const noteSigner: NoteSigner = ed25519NoteSigner(origin, logKey)
  let catalog = signCatalog(catalogOf(self, cfg.services, limits.batchMax, now()), signer)
  /** A newer manifest may move our key id: re-derive it and re-sign the catalog when it does. */
  const refreshSigner = (f: Federation): void => {
    const kid = findSigner(f, self, publicKeyToB64u(messageKey), now())
    if (kid === signer.kid) return
    signer = { kid, privateKey: messageKey }
    catalog = signCatalog(catalogOf(self, cfg.services, limits.batchMax, now()), signer)
  }

  let checkpointing: Promise<string> | undefined
  const checkpoint = async (): Promise<string> => {
    // One signing at a time; concurrent callers share it.
    checkpointing ??= (async () => {
      try {
        const size = await store.size()
        const latest = await store.latestCheckpoint()
        if (latest !== undefined && latest.size === size) return latest.note
        const note = signCheckpoint({ origin, size, rootHash: await store.rootHash(size) }, noteSigner)
        await store.saveCheckpoint(size, note)
        return note
      } finally {
        checkpointing = undefined
      }
    })()
    return checkpointing
  }
  await checkpoint()
  const every = opts.checkpointEveryMs ?? 10_000
  const timer = every > 0 ? setInterval(() => { checkpoint().catch((err) => logger.error({ err }, 'checkpoint failed')) }, every) : undefined
  timer?.unref()
  // Witnessing: cosign every peer's checkpoint after checking it is consistent with the last one seen.
  const witnessEvery = opts.witnessEveryMs ?? cfg.witness.everyMs
  const witnessAll = async (): Promise<void> => {
    for (const m of federation.get(now()).departments()) {
      if (m.id === self) continue
      await peerLogs.witness(m.id).catch((err: unknown) => logger.warn({ peer: m.id, code: (err as { code?: string }).code }, 'witnessing failed'))
    }
  }
  const witnessTimer = witnessEvery > 0 ? setInterval(() => void witnessAll(), witnessEvery) : undefined
  witnessTimer?.unref()
  // Housekeeping: pick up a newer manifest (revocations take effect without a restart; a bad file
  // keeps the current one) and purge sealed disclosures whose retention ended.
  const housekeeping = async (): Promise<void> => {
    const r = await federation.load(manifestPath, now())
    if (!r.ok) logger.error({ code: r.error.code }, 'new manifest refused; keeping the current one')
    else if (r.changed) {
      refreshSigner(r.federation)
      logger.info({ seq: r.federation.seq }, 'manifest reloaded')
      await log.append([{
        v: 1, at: now(), t: 'key-event', event: 'manifest-loaded', member: self, messageKid: signer.kid,
        messageKey: publicKeyToB64u(messageKey), logKey: publicKeyToB64u(logKey), manifestSeq: r.federation.seq, manifestHash: r.federation.hash,
      }])
    }
    const purged = await evidence.purgeExpired(now())
    if (purged > 0) logger.info({ purged }, 'expired disclosures purged')
  }
  const housekeepingEvery = opts.housekeepingEveryMs ?? 30_000
  const housekeepingTimer = housekeepingEvery > 0
    ? setInterval(() => { housekeeping().catch((err: unknown) => logger.error({ err }, 'housekeeping failed')) }, housekeepingEvery)
    : undefined
  housekeepingTimer?.unref()

  const appTokens = cfg.local.apps.map((a) => ({ name: a.name, hash: Buffer.from(a.tokenSha256, 'hex') }))

  tagsets?.start()

  let closed = false
  const node: NodeRuntime = {
    self,
    config: cfg,
    logger,
    metrics,
    federation,
    provider,
    consumer,
    catalogJws: () => catalog,
    tagsets,
    log: store,
    peerLogs,
    witnessAll,
    housekeeping,
    async acceptCosignature(witness: string, note: string): Promise<void> {
      const f = federation.get(now())
      const verifiers = f.logKeys(witness).map((k) => cosignatureVerifier(logOrigin(f.name, witness), ed25519RawPublicKey(k.key)))
      const own = f.logKeys(self).map((k) => ed25519NoteVerifier(origin, ed25519RawPublicKey(k.key)))
      const opened = openNote(note, [...own, ...verifiers])
      if (!opened.verified.some((v) => v.name === logOrigin(f.name, witness))) throw new VnError('VN_ERR_LOG_NOTE_SIGNATURE', 'no valid cosignature by that witness')
      const cp = parseCheckpoint(opened.text)
      const stored = await store.checkpointAt(cp.size)
      if (stored === undefined) throw new VnError('VN_ERR_LOG_PROOF', 'no checkpoint of that size here')
      // Keep every signature already on our note, add the witness's line.
      const mine = parseNote(stored)
      if (mine.text !== opened.text) throw new VnError('VN_ERR_LOG_NOTE_MALFORMED', 'cosigned text differs from our checkpoint')
      const extra = opened.signatures.filter((sig) => !mine.signatures.some((m) => m.base64 === sig.base64))
      // signed-note format: text, a blank line, then one "— <name> <base64>" line per signature.
      const lines = [...mine.signatures, ...extra].map((x) => `\u2014 ${x.name} ${x.base64}\n`).join('')
      await store.saveCheckpoint(cp.size, `${mine.text}\n${lines}`)
    },
    checkpoint,
    async ready(): Promise<ReadyCheck> {
      const checks: ReadyCheck['checks'] = {}
      try {
        const f = federation.get(now())
        refreshSigner(f)
        checks.manifest = { ok: true, detail: `seq ${f.seq}, expires ${new Date(f.exp).toISOString()}` }
        checks.keys = { ok: true }
      } catch (e) {
        checks.manifest = { ok: false, detail: (e as Error).message }
      }
      checks.log = store.writable ? { ok: true } : { ok: false, detail: 'log is not writable (fail closed)' }
      // Informational: a tag set still building makes its oprf service answer 503, not the node unready.
      if (tagsets !== undefined) {
        checks.tagsets = { ok: true, detail: Object.entries(tagsets.status()).map(([svc, x]) => `${svc} epoch ${x.epoch}: ${x.ready ? `${x.count} tags` : `building (${x.records ?? 0} records)`}`).join('; ') }
      }
      if (source !== undefined) {
        try {
          await source.ping()
          checks.dataSource = { ok: true }
        } catch (e) {
          checks.dataSource = { ok: false, detail: (e as Error).message }
        }
      }
      return { ok: Object.values(checks).every((c) => c.ok), checks }
    },
    authenticateApp(token: string | undefined): string {
      if (token !== undefined && token.length > 0 && token.length < 512) {
        const h = createHash('sha256').update(token).digest()
        for (const a of appTokens) if (timingSafeEqual(h, a.hash)) return a.name
      }
      throw new VnError('VN_ERR_LOCAL_UNAUTHORIZED')
    },
    async close(): Promise<void> {
      if (closed) return
      closed = true
      if (timer !== undefined) clearInterval(timer)
      await tagsets?.close()
      await tagSetCache.close()
      await ownPool?.close()
      await hePool?.close()
      heAsConsumer.close()
      if (witnessTimer !== undefined) clearInterval(witnessTimer)
      if (housekeepingTimer !== undefined) clearInterval(housekeepingTimer)
      await checkpoint().catch(() => undefined)
      await client.close()
      await stores.close()
      await ed25519.release()
      await rm(pidFile, { force: true })
      await source?.close()
    },
  }
  return node
}

async function recoverFromLog(
  store: LogStore,
  evidence: EvidenceStore,
  provider: Provider,
  quotas: QuotaStore,
  now: number,
  skewMs: number,
): Promise<void> {
  const today = utcDay(now)
  const windowStart = now - 2 * skewMs
  const dayStart = Date.parse(`${today}T00:00:00Z`)
  const permits: { agreementId: string; day: string; count: number }[] = []
  await walkBack(store, 0, async (r, index) => {
    if (r.at < dayStart && r.at < windowStart) return false
    if (r.t === 'decision' && r.permit && r.agreement !== undefined && r.day === today) {
      permits.push({ agreementId: r.agreement, day: r.day, count: r.count })
    } else if (r.t === 'response-out' && r.at >= windowStart) {
      const e = await evidence.getJws(index)
      if (e !== undefined && e.digest === r.respDigest) await provider.remember(r.aud, r.xid, r.reqDigest, replyFromJws(e.jws), r.at)
    }
    return true
  })
  await quotas.restore(permits, today)
}

/** How far back (in leaves) a restarted node looks for the last checkpoint it witnessed of each peer. */
export const WITNESS_MEMORY_LEAVES = 200_000

/**
 * A witness that forgot what it saw could be shown a forked history across its own restart: the
 * last `peer-checkpoint` record of each peer (newest first, at most WITNESS_MEMORY_LEAVES back)
 * tells it where it left off. Records written before they carried the note are skipped.
 */
async function rememberWitnessed(store: LogStore, peerLogs: PeerLogs, peers: readonly string[], logger: Logger): Promise<void> {
  const missing = new Set(peers)
  if (missing.size === 0) return
  await walkBack(store, Math.max(0, (await store.size()) - WITNESS_MEMORY_LEAVES), (r, index) => {
    if (r.t === 'peer-checkpoint' && missing.has(r.peer) && r.note !== undefined) {
      missing.delete(r.peer)
      if (!peerLogs.remember(r.peer, r.note)) logger.warn({ peer: r.peer, index }, 'the last witnessed checkpoint in the log is not one of this peer; witnessing starts afresh')
    }
    return missing.size > 0
  })
}

/**
 * Reads the log newest first, down to leaf `stop`, MAX_ENTRIES_PER_READ leaves per read, until
 * `visit` returns false (start-up recovery).
 */
async function walkBack(store: LogStore, stop: number, visit: (r: LogRecord, index: number) => boolean | Promise<boolean>): Promise<void> {
  for (let end = await store.size(); end > stop;) {
    const start = Math.max(stop, end - MAX_ENTRIES_PER_READ)
    const leaves = await store.entries(start, end)
    for (let i = leaves.length - 1; i >= 0; i--) {
      if (!(await visit(parseLeaf(leaves[i] as Uint8Array), start + i))) return
    }
    end = start
  }
}

/** Rebuilds the reply a response JWS was released with (restart recovery of idempotent retries). */
function replyFromJws(jws: string): ExchangeReply {
  const payload = ResponsePayloadSchema.parse(JSON.parse(Buffer.from(jws.split('.')[1] ?? '', 'base64url').toString('utf8')))
  if (payload.status === 'ok' || payload.error === undefined) return { status: 200, body: { jws }, problem: false, xid: payload.xid }
  const code = (payload.error.code in ERRORS ? payload.error.code : 'VN_ERR_POLICY_NO_AGREEMENT') as ErrorCode
  const e = new VnError(code, payload.error.detail)
  return { status: e.statusCode, body: { ...e.toProblem(), jws }, problem: true, xid: payload.xid }
}
