/**
 * Assembles a running node from its config file: keys, federation manifest, data source, log and
 * evidence store, policy, modes, provider and consumer, witnessing, timers. HTTP-free: src/http
 * builds the listeners on top. This file only wires; each part is its own module in src/node/.
 *
 * Start-up writes two log entries (a key event naming the keys and manifest in use, and the agreement
 * set put in force), restores today's quota counts and the replay window from the log, and refuses to
 * start on any inconsistency (bad config, key files, manifest, read-write SQL).
 */
import { acquireEd25519 } from '../crypto/ed25519-batch.js'
import type { KeyObject } from 'node:crypto'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pino, type Logger } from 'pino'
import { VnError } from '../errors.js'
import { loadConfig, type LoadedConfig } from '../config/load.js'
import type { ServiceConfig } from '../config/schema.js'
import { loadPrivateKey, loadPublicKey, loadSecretFile, publicKeyToB64u } from '../crypto/keys.js'
import { assertKeyProfile } from '../crypto/profile.js'
import { FederationHolder } from '../federation/federation.js'
import { logOrigin } from '../log/peer-logs.js'
import { noteVerifier, notePublicKey, type NoteVerifier } from '../log/checkpoint.js'
import { decideAsync } from '../policy/decide.js'
import { utcDay } from '../policy/quota.js'
import { Provider } from '../exchange/provider.js'
import { Consumer } from '../exchange/consumer.js'
import { Governance } from '../exchange/governance.js'
import type { WorkerPool } from '../util/worker-pool.js'
import { PeerClient } from '../peers/client.js'
import type { Signer } from '../exchange/signer.js'
import { Metrics } from './metrics.js'
import { REDACT } from './redact.js'
import { nodeKeyFiles, NODE_MANIFEST_ARCHIVE, NODE_PID_FILE } from './files.js'
import { nodeLogLocation, openNodeLogStore, type OpenedLog } from './log-store.js'
import { memoryBudget } from './memory-budget.js'
import { NodeIdentity } from './identity.js'
import { neverAnswered } from '../policy/sharing.js'
import { SharingRulesHolder } from './sharing-rules.js'
import { assembleModes } from './modes.js'
import { checkTreeAtStart, recoverFromLog, rememberWitnessed } from './recovery.js'
import { archiveManifest, keyEventRecord, housekeeping, manifestReloader } from './housekeeping.js'
import { LogReopener } from './log-reopen.js'
import { Checkpointer } from './checkpointer.js'
import { TrafficStats } from './traffic.js'
import { nodeStatus } from './status.js'
import { PeerLogs, witnessAll } from './witness.js'
import { startTimers } from './timers.js'
import { readiness } from './readiness.js'
import { openWatchedSource } from './source-watch.js'
import { appRoles, appTokenAuthenticator } from './app-tokens.js'
import type { NodeRuntime } from './types.js'
import { assertPlainListenerAllowed, openNodeTls, tlsFilesOf } from './tls.js'

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
  /** how often the data source is checked (file replaced, broken; re-open once valid), ms (default 1 s); 0 disables the timer */
  sourceCheckEveryMs?: number
  /** reload the manifest on SIGHUP (default true; the handler is removed on close) */
  reloadOnSighup?: boolean
  /**
   * Also export prom-client's default process metrics (process_resident_memory_bytes,
   * nodejs_heap_size_used_bytes, event-loop lag, GC) on /metrics. `verinode serve` turns them on;
   * off by default because they are process-wide (several nodes in one process would repeat them).
   */
  processMetrics?: boolean
  /** a closed log (fail closed) is noticed within, and first retried after, this many ms (default 1 s) */
  logRetryMs?: number
  /**
   * A log shared by replicas: how often this replica reads the governance steps (approvals,
   * suspensions) other replicas logged, ms (default 2 s); 0: only with housekeeping
   */
  governanceRefreshMs?: number
}

export { logOrigin }

export async function openNode(configPath: string, opts: OpenNodeOptions = {}): Promise<NodeRuntime> {
  // Config, keys and the manifest: any fault here stops start-up before anything is opened.
  const loaded: LoadedConfig = await loadConfig(configPath, opts.env ?? process.env)
  const cfg = loaded.config
  const now = opts.now ?? Date.now
  const logger = opts.logger ?? pino({ level: cfg.logLevel, redact: REDACT, base: { member: cfg.member } })
  const self = cfg.member
  const keysDir = loaded.path(cfg.keysDir)
  const keyFiles = nodeKeyFiles(keysDir)
  const messageKey = await loadPrivateKey(keyFiles.messageKey)
  const logKey: KeyObject = await loadPrivateKey(keyFiles.logKey)
  const logPublicKey = publicKeyToB64u(logKey)
  const evidenceKey = await loadSecretFile(keyFiles.evidenceKey)
  const root = await loadPublicKey(loaded.path(cfg.federation.rootKey))
  const manifestPath = loaded.path(cfg.federation.manifest)
  const federation = await FederationHolder.open(manifestPath, root, now())
  const fed0 = federation.get(now())
  if (!fed0.has(self)) {
    throw new VnError('VN_ERR_FED_UNKNOWN_MEMBER', `member: the config says ${self}, which manifest seq ${fed0.seq} does not list (members: ${fed0.members().map((m) => m.id).join(', ')})`)
  }
  // The manifest chose the crypto profile (src/crypto/profile.ts): a node whose own keys are of the
  // other one refuses to start rather than sign what no member would accept.
  assertKeyProfile(messageKey, fed0.profile, 'keys: the message key')
  assertKeyProfile(logKey, fed0.profile, 'keys: the log key')
  // The sharing rules (docs/GOVERNANCE.md): refuse to start on a service the rules forbid.
  const sharing = new SharingRulesHolder(cfg, fed0, logger)
  const identity = new NodeIdentity({ self, messageKey, services: cfg.services, batchMax: cfg.limits.batchMax, now }, fed0)
  const signer = (): Signer => identity.signer()
  if (cfg.insecure) logger.warn('insecure: plain HTTP to non-loopback peers is allowed; do not run like this outside a test network')
  // TLS on the public listener and to https peers, pinned by the manifest (./tls.ts)
  const tlsFiles = tlsFilesOf(cfg, (p) => loaded.path(p))
  const tls = tlsFiles === undefined ? undefined : await openNodeTls({ self, files: tlsFiles, federation, now })
  if (tls === undefined) assertPlainListenerAllowed(cfg.listen.host, cfg.insecure)

  // Data source (watched: a file replaced or broken under the node is noticed and re-opened), then the log.
  const watched = await openWatchedSource(cfg, loaded, logger, opts.sourceCheckEveryMs)
  const source = watched?.source
  const metrics = new Metrics(self, opts.processMetrics ?? false)
  tls?.registerMetrics(metrics.registry)
  const dataDir = loaded.path(cfg.dataDir)
  await mkdir(dataDir, { recursive: true, mode: 0o700 })
  // The keys the node's own checkpoints verify under: its own log key, and the older ones the
  // manifest still lists (a checkpoint signed before a rotation).
  const origin = logOrigin(fed0.name, self)
  const noteVerifiers = (): NoteVerifier[] => {
    const keys = new Map<string, Uint8Array>()
    const add = (k: KeyObject): void => { keys.set(Buffer.from(notePublicKey(k)).toString('base64'), notePublicKey(k)) }
    add(logKey)
    try {
      for (const k of federation.get(now()).logKeys(self)) add(k.key)
    } catch {
      // a manifest no longer in force lists nothing; the node's own key still verifies its notes
    }
    return [...keys.values()].map((raw) => noteVerifier(origin, raw))
  }
  let opened: OpenedLog | undefined
  try {
    opened = await openNodeLogStore(nodeLogLocation(cfg, loaded), evidenceKey, (s) => metrics.logCommitSeconds.observe(s), cfg.limits.replayMaxEntries)
    if (cfg.log?.kind !== 'postgres') {
      // the replay memory is in this process's heap (a PostgreSQL log keeps it in a table)
      const budget = memoryBudget(cfg.limits.replayMaxEntries)
      if (!budget.fits) logger.warn({ heapLimitMb: Math.round(budget.heapLimit / 2 ** 20), neededMb: Math.ceil(budget.needed / 2 ** 20), replayMaxEntries: cfg.limits.replayMaxEntries }, 'memory: the V8 heap limit is below what a full replay memory needs; raise --max-old-space-size or lower limits.replayMaxEntries')
    }
    // Before anything is appended or answered: the stored tree still holds what was last signed.
    await checkTreeAtStart(opened.log, noteVerifiers(), logger)
  } catch (e) {
    await opened?.close()
    watched?.stop()
    await source?.close()
    throw e
  }
  const { log: store, evidence, quotas, replay, nodeLog: log } = opened
  // Offline commands that append to the log (keys rotate, disclosure export) refuse while this exists.
  const pidFile = join(dataDir, NODE_PID_FILE)
  await writeFile(pidFile, `${process.pid}\n`)

  // Policy, modes, provider and consumer.
  const limits = cfg.limits
  const client = new PeerClient({ ...cfg.peers, insecure: cfg.insecure, ...(tls === undefined ? {} : { tls: tls.clientOptions() }) })
  // Applications and disputes; the agreements in force are the config's plus the approved ones,
  // rebuilt from the log's governance records (docs/GOVERNANCE.md).
  const governance = await Governance.open({
    self, signer, federation: () => federation.get(now()), client, log, reader: store, evidence,
    services: cfg.services.map((s) => s.id), config: cfg.agreements, deadlines: cfg.governance,
    neverAnswered: (service) => neverAnswered(sharing.rules, service),
    retentionMs: limits.retentionDays * 86_400_000, skewMs: limits.skewMs, now, logger,
  })
  const modes = await assembleModes({
    services: cfg.services, source, keysDir, dataDir, heWorkers: cfg.he?.workers, signer,
    federation: (at) => federation.get(at ?? now()), client, logger, now, oprfPool: opts.oprfPool, tagSetTickMs: opts.tagSetTickMs,
  })
  // Ed25519 for the provider's hot path, batched on worker threads shared by the process
  const ed25519 = acquireEd25519()
  const provider = new Provider({
    self,
    signer,
    resolver: (at) => federation.get(at).messageKeyResolver(at),
    services: new Map<string, ServiceConfig>(cfg.services.map((s) => [s.id, s])),
    authorize: (r) => decideAsync(r, governance.agreements(), quotas, sharing.rules),
    policyHash: () => governance.policy(),
    sharingRulesHash: () => sharing.hash,
    source,
    modes: modes.provider,
    log,
    replay,
    evidence,
    limits,
    now,
    ed25519: ed25519.batcher,
    observe: (o) => {
      metrics.exchanges.inc({ role: 'provider', service: o.service, mode: o.mode, decision: o.decision })
      metrics.exchangeSeconds.observe({ role: 'provider', service: o.service, mode: o.mode }, o.seconds)
    },
  })
  const consumer = new Consumer({
    self,
    signer,
    resolver: (at) => federation.get(at).messageKeyResolver(at),
    endpointOf: (m) => federation.get(now()).endpoint(m),
    client,
    modes: modes.consumer,
    log,
    limits,
    now,
    observe: (o) => {
      metrics.exchanges.inc({ role: 'consumer', service: o.service, mode: o.mode, decision: o.decision })
      metrics.exchangeSeconds.observe({ role: 'consumer', service: o.service, mode: o.mode }, o.seconds)
    },
    peerReached: (peer, ok) => metrics.peerUp.set({ peer }, ok ? 1 : 0),
  })

  // Start-up recovery: today's quota usage and the replay window, newest first (a store shared by
  // replicas keeps both itself: replaying the log into it would count them twice).
  if (!opened.keepsMemory) await recoverFromLog(store, provider, quotas, now(), limits.skewMs)

  // Start-up entries: which keys and manifest are in use, and which agreements are in force.
  const archiveDir = join(dataDir, NODE_MANIFEST_ARCHIVE)
  await archiveManifest(archiveDir, fed0, logger)
  await log.append([
    keyEventRecord('node-started', identity, logPublicKey, fed0, now()),
    { v: 1, at: now(), t: 'agreements', policy: governance.policy(), agreements: [...governance.agreements()] },
    sharing.record(now()),
  ])

  // Witnessing (and what this node last saw of each peer), checkpoints, housekeeping, timers.
  const peerLogs = new PeerLogs({
    self, federation: () => federation.get(now()), client, log, logKey, signer, logger, now,
    onFork: () => metrics.forkAlerts.inc(),
  })
  await rememberWitnessed(store, peerLogs, fed0.departments().map((m) => m.id).filter((id) => id !== self), logger)
  // Replicas sharing one log: only the holder of the lease signs checkpoints.
  const checkpointer = new Checkpointer(store, origin, logKey, opened.checkpointLease)
  const checkpoint = (): Promise<string> => checkpointer.checkpoint()
  await checkpoint()
  // A closed log (a failed write) reopens by itself once a trial write succeeds and the stored
  // tree still matches the last signed checkpoint.
  const reopener = new LogReopener({
    store, nodeLog: log, checkpointer, metrics, logger, now, verifiers: noteVerifiers,
    ...(opts.logRetryMs === undefined ? {} : { firstRetryMs: opts.logRetryMs }),
  })
  reopener.start()
  const witnessPeers = (): Promise<void> => witnessAll(peerLogs, () => federation.get(now()), self, logger, (peer, ok) => metrics.peerUp.set({ peer }, ok ? 1 : 0))
  const reloadManifest = manifestReloader({
    federation, manifestPath, archiveDir, identity, logKey: logPublicKey, log, logger, now,
    onLoaded: (fed, at) => sharing.afterManifest(fed, at),
  })
  const keepHouse0 = housekeeping({ federation, manifestPath, archiveDir, identity, logKey: logPublicKey, log, evidence, logger, now, reload: reloadManifest })
  // Replicas sharing a log learn of each other's governance steps (approvals, suspensions) here.
  const keepHouse = async (): Promise<void> => {
    await keepHouse0()
    if (store.shared === true) await governance.refresh()
  }
  // SIGHUP: re-read the manifest now (an operator who just installed one need not wait for the timer).
  const onSighup = (): void => {
    logger.info('SIGHUP: reloading the manifest')
    reloadManifest().catch((err: unknown) => logger.error({ err }, 'manifest reload failed'))
  }
  if (opts.reloadOnSighup !== false) process.on('SIGHUP', onSighup)
  const timers = startTimers({ checkpoint, witnessAll: witnessPeers, housekeeping: keepHouse }, {
    checkpointEveryMs: opts.checkpointEveryMs ?? 10_000,
    witnessEveryMs: opts.witnessEveryMs ?? cfg.witness.everyMs,
    housekeepingEveryMs: opts.housekeepingEveryMs ?? 30_000,
  }, logger)
  modes.tagsets?.start()
  const refreshEvery = store.shared === true ? (opts.governanceRefreshMs ?? 2000) : 0
  const governanceTimer = refreshEvery > 0
    ? setInterval(() => { governance.refresh().catch((err: unknown) => logger.warn({ err }, 'governance refresh failed')) }, refreshEvery).unref()
    : undefined
  const ready = readiness({ federation, identity, log: reopener, tagsets: modes.tagsets, source, now, tls })
  metrics.watch({
    replayEntries: () => replay.size,
    inFlight: (role) => (role === 'provider' ? provider.inFlight : consumer.inFlight),
    logQueued: opened.logQueued,
    manifestExp: () => federation.peek()?.exp,
    ready: async () => (await ready()).ok,
    governanceOverdue: () => governance.overdueCounts(),
    quotas: async () => {
      const day = utcDay(now())
      return Promise.all(governance.agreements().map(async (a) => ({ agreement: a.id, consumer: a.consumer, used: await quotas.used(a.id, day), limit: a.dailyQuota })))
    },
  })

  // Traffic counts for the console, read from the log's tail: one catch-up read starts now.
  const traffic = new TrafficStats(store)
  traffic.refresh().catch((err: unknown) => logger.warn({ err }, 'traffic counts: reading the log failed; retried at the next status request'))
  const status = nodeStatus({
    self, federation, store, traffic, agreements: () => governance.agreements(), quotas, ready, peerLogs, origin, now,
    tls: tls === undefined ? undefined : { notAfter: tls.notAfter, pin: tls.pin },
    peerUp: async (peer) => (await metrics.peerUp.get()).values.find((v) => v.labels.peer === peer)?.value ?? null,
    providerLatency: () => metrics.exchangeLatency('provider'),
  })

  let closed = false
  return {
    self,
    config: cfg,
    logger,
    metrics,
    federation,
    provider,
    consumer,
    governance,
    catalogJws: () => identity.catalogJws(),
    tagsets: modes.tagsets,
    shardCache: modes.shardCache,
    log: store,
    peerLogs,
    witnessAll: witnessPeers,
    housekeeping: keepHouse,
    reloadManifest,
    acceptCosignature: (witness, note) => checkpointer.acceptCosignature(federation.get(now()), self, witness, note),
    checkpoint,
    ready,
    tls,
    authenticateApp: appTokenAuthenticator(cfg.local.apps),
    appRole: appRoles(cfg.local.apps),
    status,
    async close(): Promise<void> {
      if (closed) return
      closed = true
      process.off('SIGHUP', onSighup)
      timers.stop()
      if (governanceTimer !== undefined) clearInterval(governanceTimer)
      await reopener.stop()
      await modes.close()
      await checkpoint().catch(() => undefined)
      await client.close()
      await opened.close()
      await ed25519.release()
      await rm(pidFile, { force: true })
      watched?.stop()
      await source?.close()
    },
  }
}
