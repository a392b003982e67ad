/**
 * `verinode audit verify`: the offline auditor, first version (issue 2 §8; docs/DESIGN.md "Auditor
 * toolkit"). It reads a log export (export.ts) and trusts only the federation root key it is given.
 *
 * The checks, in the order they run (each step is named in the code):
 *  1. manifests: each verifies against the root key; together, ordered by seq, they are the key
 *     history (KeyHistory) that says which key was valid at which instant;
 *  2. checkpoints: each is a C2SP signed note for this member's log origin, signed by a log key the
 *     manifests list for the member; the leaves recompute its RFC 9162 root at its size. Leaves
 *     after the latest checkpoint are reported as not yet checkpointed (info);
 *  3. leaves: each is RFC 8785 canonical JSON of exactly one known record type with no unknown
 *     field, and the PII scan (pii.ts) finds nothing;
 *  4. in log order, per exchange: every request/response digest has its JWS in the evidence and
 *     SHA-256(jws) = digest; every JWS verifies against the key its signer had at its `iat`
 *     according to the manifest history (request: `iss`; response: the provider), or else under
 *     the manifest the node had loaded then (its key events: a revocation's window, a warning);
 *     the leaves agree
 *     with the signed messages; the response is bound to the request (reqDigest, xid, aud, iss);
 *  5. provider: every released answer (`response-out` ok) follows a `decision` permitting that very
 *     request, whose `policy` is the agreement set in force (the latest `agreements` record before
 *     it); the decision is re-run with `decide` (src/policy/decide.ts) on the signed request against
 *     that set, with a QuotaCounter replayed from the earlier permits, and any disagreement is
 *     reported;
 *  6. consumer: every `request-out` has a `response-in` (else "no answer recorded");
 *  7. key events: a `rotated` event verifies under both the old and the new key (key-rotation.ts)
 *     and its new key is listed by some manifest; disclosures in the export are accounted for by
 *     the log's last `disclosure-export` record (count, reason digest).
 *  8. governance (checks/governance.ts, applications.ts, disputes.ts, agreements-in-force.ts): every
 *     application, agreement change and dispute follows from the ones before it under the node's
 *     own state machine, its signed message verifies and matches the record; applications and
 *     disputes answered late or never are flagged; every permit names an agreement in force.
 * With `collectReplay`, step 5's replays are also listed per decision and per answer (replay.ts).
 *
 * Findings (findings.ts) carry a stable code, a severity and, where they concern one exchange, its
 * xid and this node's role in it. The report is `ok` only when there is no `error` finding.
 *
 * How it runs: this file only orchestrates. Each check is a module of checks/ (export files,
 * tree and checkpoints, leaves, evidence digests, signatures against the key in force, exchanges,
 * decisions replayed, key events, witnessing, disclosures) that receives one read-only
 * AuditContext and reports into one Findings. The export is read through export-reader.ts and
 * streamed, in chunks of leaves.
 *
 * Threads. The work that does not depend on log order runs on worker threads (precheck.ts, one
 * worker per core, precheck-pool.ts): each chunk's leaf bytes go to a worker as soon as they are
 * read, which hashes them (leaf hashes and the chunk's compact range) and checks each leaf alone
 * (UTF-8, canonical, schema, PII scan); the JWS the chunk's leaves name are then split over all the
 * workers, which hash each against its digest, decode and validate its payload, resolve its key in
 * the same key history, verify its Ed25519 signature and scan its payload. They answer with compact
 * summaries. This thread keeps what is sequential: merging the compact ranges, parsing each clean
 * leaf once, reading the evidence in order, linking the leaves of each exchange, replaying the
 * decisions and quotas in log order, and reporting every finding in its place. Whatever a worker
 * does not find plainly clean (a leaf that is not canonical, a free text not vetted yet, an
 * agreements record) is checked again here by the same code as without workers, so the findings
 * and their order do not depend on the threads. Memory stays about constant in the evidence (the
 * JWS of a few chunks, not of the log) and grows only with the exchanges' records.
 *
 * `npm run bench:audit` measures the rate against what the signatures alone allow on all cores.
 */
import type { KeyObject } from 'node:crypto'
import { stat } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import { resolve } from 'node:path'
import { loadPublicKey } from '../crypto/keys.js'
import { rootKeyId } from '../federation/manifest.js'
import { EXPORT_FILES } from '../log/export-layout.js'
import { logOrigin } from '../log/peer-logs.js'
import type { LogRecord } from '../log/records.js'
import { LineReader, invalidExport, keyHistoryOf, openExport, readOptional, resolveRootKey } from './export-reader.js'
import { Findings, type AuditFinding, type Severity } from './findings.js'
import { TreeCheck, type CheckpointSummary } from './checks/checkpoints.js'
import { STAGE, type AuditContext } from './checks/context.js'
import { DecisionCheck, type AnswerReplay, type DecisionReplay } from './checks/decisions.js'
import { checkDisclosures, checkReceived } from './checks/disclosures.js'
import { EvidenceCheck, EvidenceFile } from './checks/evidence.js'
import { ExchangeCheck } from './checks/exchanges.js'
import { checkExportFiles, listedHash, type StreamedDigest } from './checks/export-files.js'
import { LeafCheck } from './checks/leaves.js'
import { SignatureCheck } from './checks/signatures.js'
import { GovernanceCheck } from './checks/governance.js'
import { checkApplications, type ApplicationReport } from './checks/applications.js'
import { checkDisputes, type DisputeReport } from './checks/disputes.js'
import { AgreementsInForceCheck } from './checks/agreements-in-force.js'
import { PrecheckPool } from './precheck-pool.js'
import { safeParseFast } from './fast-parse.js'
import { LogRecordSchema } from './record-schemas.js'
import { decodeUtf8Strict } from '../util/strict-json.js'
import type { LeafChunkPre } from './precheck-types.js'

export type { AnswerReplay, DecisionReplay } from './checks/decisions.js'

export interface AuditOptions {
  /**
   * The trust anchor: a public KeyObject, a base64url raw Ed25519 or SM2 key, or the path of a .pub file.
   * Default: the export's own federation-root.pub (then the report says so: an auditor should
   * bring the anchor from the authority, not from the node being audited).
   */
  rootKey?: KeyObject | string
  /** more manifest JWS texts to add to the history (e.g. the authority's archive) */
  manifests?: readonly string[]
  /** how far a signed iat may be from the logged instant before AUDIT_IAT_SKEW (default 5 min) */
  maxIatSkewMs?: number
  /** also list every decision's replay and every answer's permit in `report.replay` (audit replay) */
  collectReplay?: boolean
  /**
   * Worker threads for the work that does not depend on log order (hashing, parsing and checking
   * each leaf and JWS, the Ed25519 signatures). Default: one per core for an export whose
   * entries.jsonl exceeds 4 MiB (about 15,000 leaves), else none (everything runs on this thread:
   * starting workers costs more than a small export's checks).
   */
  workers?: number
}

export interface ExchangeReport {
  xid: string
  role: 'provider' | 'consumer'
  /** the other member: the consumer (provider role) or the provider (consumer role) */
  peer: string
  /** this log's leaves of the exchange */
  indices: number[]
  findings: AuditFinding[]
}

export interface AuditReport {
  v: 1
  /** true when there is no finding of severity error */
  ok: boolean
  dir: string
  member: string
  federation: string | null
  origin: string
  /** `federation-root#<thumbprint>` of the trust anchor used, and where it came from */
  trustAnchor: { kid: string; source: 'given' | 'export' }
  leaves: number
  /** the largest checkpoint whose signature verified, with whether the leaves recompute its root */
  checkpoint: CheckpointSummary | null
  manifests: { seq: number; hash: string; iat: number; exp: number }[]
  counts: { provider: number; consumer: number; evidence: number; errors: number; warnings: number; infos: number }
  /** every finding, log-wide ones first, then in leaf order */
  findings: AuditFinding[]
  /** the exchanges that have findings, in log order, with their findings */
  exchanges: ExchangeReport[]
  /** with `collectReplay`: every decision's replay and every answer's permit, in log order */
  replay?: { decisions: DecisionReplay[]; answers: AnswerReplay[] }
  /** every application and dispute the log holds, with its lifecycle (docs/GOVERNANCE.md) */
  governance: { applications: ApplicationReport[]; disputes: DisputeReport[] }
}

const DEFAULT_IAT_SKEW_MS = 5 * 60_000
/** Leaves per chunk: one signature batch per chunk, and what the evidence keeps in memory. */
const CHUNK_LEAVES = 2048
const WORKERS_ABOVE_BYTES = 4 * 1024 * 1024

/** Audits the export in `dir`. @throws VN_ERR_AUDIT_EXPORT_INVALID when it is not an export; VN_ERR_KEY_FILE for a bad root key */
export async function auditExport(dir: string, opts: AuditOptions = {}): Promise<AuditReport> {
  // 0. The export's files, through the one reader.
  const x = await openExport(resolve(dir))
  const { meta, member } = x
  const findings = new Findings()

  // Trust anchor.
  let anchor: KeyObject
  let anchorSource: 'given' | 'export'
  if (opts.rootKey !== undefined) {
    anchor = await resolveRootKey(opts.rootKey)
    anchorSource = 'given'
  } else {
    if ((await readOptional(x.rootPath)) === undefined) throw invalidExport(`${x.dir}: no ${EXPORT_FILES.root} and no root key given`)
    anchor = await loadPublicKey(x.rootPath)
    anchorSource = 'export'
  }

  // 1. Manifests → key history (every copy kept: a manifest given twice is a history fault).
  findings.stage = STAGE.manifests
  const texts = [...x.manifests, ...(opts.manifests ?? []).map((jws, i) => ({ name: `manifests option [${i}]`, jws: jws.trim() }))]
  const history = keyHistoryOf(texts, anchor, findings, { dedupe: false })
  const manifests = history.manifests
  const latest = manifests[manifests.length - 1]
  const federation = latest?.name ?? meta.federation ?? null
  const origin = logOrigin(federation ?? '?', member)
  if (latest !== undefined && !manifests.some((f) => f.has(member))) findings.add('AUDIT_MEMBER_UNKNOWN', `member ${member} is in none of the manifests`)
  findings.stage = STAGE.meta
  if (meta.origin !== undefined && meta.origin !== origin) findings.add('AUDIT_EXPORT_META_MISMATCH', `${EXPORT_FILES.meta}: origin is not ${origin}`)

  const ctx: AuditContext = { dir: x.dir, member, federation, origin, history, manifests, maxSkewMs: opts.maxIatSkewMs ?? DEFAULT_IAT_SKEW_MS, findings }

  // 2. Checkpoint signatures now; their roots once the leaves have streamed past.
  findings.stage = STAGE.checkpoints
  const tree = new TreeCheck(ctx, x.checkpoints)

  // 3-7. The leaves in order, with the evidence they name, in chunks.
  findings.stage = STAGE.evidence
  const listed = new Map(Object.entries(meta.files ?? {}).map(([f, info]) => [resolve(x.dir, f), listedHash(info)]))
  const entries = new LineReader(x.entriesPath, { hash: listed.get(x.entriesPath) })
  const evidenceReader = new LineReader(x.evidencePath, { hash: listed.get(x.evidencePath) })
  const leaves = new LeafCheck(findings)
  const evidence = new EvidenceCheck(findings, new EvidenceFile(evidenceReader, findings), leaves.evidenceScan)
  const workers = opts.workers ?? (await entriesBytes(x.entriesPath) > WORKERS_ABOVE_BYTES ? availableParallelism() : 0)
  // With workers, the order-free work of each leaf and JWS runs on them (precheck.ts); without,
  // everything runs here (a small export: starting workers costs more than its checks).
  const pool = workers > 0 ? new PrecheckPool(workers, texts, anchor) : undefined
  const signatures = new SignatureCheck(ctx, evidence, pool)
  const decisions = new DecisionCheck(ctx, opts.collectReplay === true)
  // an ended exchange's records are read back from entries.jsonl when a late leaf needs them
  entries.keepOpen = true
  const readBack = (off: number): LogRecord | undefined => {
    const leaf = entries.lineAt(off)
    const text = leaf === undefined ? undefined : decodeUtf8Strict(leaf)
    if (text === undefined) return undefined
    try {
      const r = safeParseFast(LogRecordSchema, JSON.parse(text))
      return r.success ? (r.data as LogRecord) : undefined
    } catch {
      return undefined
    }
  }
  const exchanges = new ExchangeCheck(ctx, signatures, evidence, decisions, readBack)
  const governance = new GovernanceCheck(ctx, evidence)
  const inForce = new AgreementsInForceCheck(ctx, governance.book)
  /** 8. governance: applications, agreement changes and disputes replayed; permits under agreements in force */
  const onGovernance = (i: number, r: LogRecord): void => {
    governance.onAny(r.at)
    if (r.t === 'governance') governance.onGovernance(i, r, exchanges.chunk)
    else if (r.t === 'agreements') {
      governance.onAgreements(r)
      inForce.onAgreements(Array.isArray(r.agreements) ? r.agreements.map((a) => String((a as { id?: unknown } | null)?.id)) : [])
    } else if (r.t === 'key-event' && r.event === 'node-started') inForce.onNodeStarted()
    else if (r.t === 'decision') inForce.onDecision(i, r, { index: i, xid: r.xid, role: 'provider' })
  }

  interface Chunk { no: number; first: number; offsets: Float64Array; records: (LogRecord | undefined)[]; settled: Promise<void> }
  interface Raw { first: number; lines: Buffer[]; offsets: Float64Array; pre: Promise<LeafChunkPre | undefined> | undefined }
  let nextFirst = 0
  /** The next chunk's leaf bytes, handed to a worker at once (hashes, checks that need no order). */
  const readRaw = (): Raw | undefined => {
    const lines: Buffer[] = []
    const offsets = new Float64Array(CHUNK_LEAVES)
    for (let k = 0; k < CHUNK_LEAVES; k++) {
      const leaf = entries.next()
      if (leaf === undefined) break
      offsets[k] = entries.offset
      lines.push(leaf)
    }
    if (lines.length === 0) return undefined
    const first = nextFirst
    nextFirst += lines.length
    return { first, lines, offsets, pre: pool?.leaves(first, lines).catch(() => undefined) }
  }
  /**
   * A chunk in log order: each leaf into the tree and checked alone (a leaf a worker found clean is
   * only parsed here); the JWS its leaves name prepared and sent to the workers.
   */
  const read = async (no: number, raw: Raw): Promise<Chunk> => {
    const { first, lines } = raw
    const pre = await raw.pre
    if (pre !== undefined) tree.chunk(first, lines.length, pre.nodes, pre.hashes)
    const probes = new Map(pre?.probes)
    const records: (LogRecord | undefined)[] = []
    lines.forEach((leaf, k) => {
      const i = first + k
      let r: LogRecord | undefined
      const fast = pre?.fast[k] ?? 0
      if (fast !== 0) r = leaves.checkFast(i, leaf, fast === 1, probes.get(k))
      else {
        if (pre === undefined) tree.leaf(leaf)
        r = leaves.check(i, leaf)
      }
      records.push(r)
      if (r !== undefined) exchanges.prepare(r, no)
    })
    return { no, first, offsets: raw.offsets, records, settled: signatures.settle() }
  }
  /** Checks a chunk's leaves in log order, once its signatures are back. */
  const check = async (c: Chunk): Promise<void> => {
    await c.settled
    exchanges.chunk = c.no
    c.records.forEach((r, k) => {
      if (r !== undefined) {
        exchanges.onRecord(c.first + k, r, c.offsets[k] as number)
        onGovernance(c.first + k, r)
      }
    })
    evidence.evict(c.no)
  }
  try {
    // chunks of leaves handed to the workers ahead of the one read here
    const ahead: Raw[] = []
    const fillAhead = (): void => {
      while (ahead.length < Math.max(1, 2 * workers)) {
        const raw = readRaw()
        if (raw === undefined) return
        ahead.push(raw)
      }
    }
    // Chunks read whose JWS are with the workers: with workers, two, so that they always have the
    // next chunk's JWS in hand while this thread checks one. (Only the reading reports log-wide
    // findings, and checking reports only about leaves up to the chunk checked: the order of the
    // report does not depend on how far reading runs ahead.)
    const inFlight: Chunk[] = []
    const lag = workers > 0 ? 2 : 1
    for (let no = 0; ; no++) {
      fillAhead()
      const raw = ahead.shift()
      if (raw !== undefined) inFlight.push(await read(no, raw))
      if (inFlight.length > lag || (raw === undefined && inFlight.length > 0)) await check(inFlight.shift() as Chunk)
      if (raw === undefined && inFlight.length === 0) break
    }
  } finally {
    entries.release()
    await pool?.close()
  }
  const leafCount = entries.lines

  exchanges.finish()
  const governanceReport = { applications: checkApplications(ctx, governance.book, governance.lastAt), disputes: checkDisputes(ctx, governance.book, governance.lastAt) }
  evidence.finish()
  leaves.finish()
  findings.stage = STAGE.disclosures
  checkDisclosures(ctx, meta, x.disclosuresPath, leaves.lastDisclosureExport)
  checkReceived(ctx, x.receivedPath, exchanges.refusedAnswers, leaves.lastDisclosureExport)
  const best = tree.finish(meta.size)
  findings.stage = STAGE.files
  const streamed = new Map<string, StreamedDigest>()
  if (entries.exists) streamed.set(x.entriesPath, () => entries.digest())
  if (evidenceReader.exists) streamed.set(x.evidencePath, () => evidenceReader.digest())
  await checkExportFiles(x.dir, meta, streamed, findings)

  // ---------------------------------------------------------------------------------------------
  // The report

  const sorted = findings.sorted()
  // Group per exchange: a finding belongs to the exchange of its role and xid that holds its leaf
  // (two exchanges share an xid only when one was logged twice).
  const byKey = new Map<string, AuditFinding[]>()
  for (const f of sorted) {
    if (f.role === undefined || f.xid === undefined) continue
    const k = `${f.role}|${f.xid}`
    const list = byKey.get(k)
    if (list === undefined) byKey.set(k, [f])
    else list.push(f)
  }
  const exchangeReports: ExchangeReport[] = []
  for (const e of exchanges.order) {
    const candidates = byKey.get(`${e.role}|${e.xid}`)
    if (candidates === undefined) continue
    const mine = new Set(e.indices)
    const own = candidates.filter((f) => f.index === undefined || mine.has(f.index))
    if (own.length > 0) exchangeReports.push({ xid: e.xid, role: e.role, peer: e.peer, indices: [...e.indices], findings: own })
  }
  const count = (s: Severity): number => findings.count(s)
  let provider = 0
  for (const e of exchanges.order) if (e.role === 'provider') provider++
  return {
    v: 1,
    ok: count('error') === 0,
    dir: x.dir,
    member,
    federation,
    origin,
    trustAnchor: { kid: rootKeyId(anchor), source: anchorSource },
    leaves: leafCount,
    checkpoint: best,
    manifests: manifests.map((f) => ({ seq: f.seq, hash: f.hash, iat: f.iat, exp: f.exp })),
    counts: {
      provider,
      consumer: exchanges.order.length - provider,
      evidence: evidence.count,
      errors: count('error'),
      warnings: count('warning'),
      infos: count('info'),
    },
    findings: sorted,
    exchanges: exchangeReports,
    ...(decisions.replay === undefined ? {} : { replay: decisions.replay }),
    governance: governanceReport,
  }
}

async function entriesBytes(path: string): Promise<number> {
  return stat(path).then((s) => s.size, () => 0)
}
