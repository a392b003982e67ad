/**
 * Offline auditor benchmark: `audit verify` (auditExport) on a provider's log export of about 10^6
 * leaves, against the rate its Ed25519 signature checks alone allow on all cores.
 *
 * 1. The export: a demo federation (src/demo/federation.ts) gives real keys, a real signed
 *    manifest and the provider's real agreements. The provider's log (fj-psb answering fj-tax's
 *    identity.match requests, plain mode) is written the way the node writes it, without HTTP: per
 *    exchange a request signed with the consumer's message key, the decision `decide` gives
 *    against the agreements with a running quota, a response signed with the provider's message
 *    key, and the request-in, decision and response-out records with their evidence, appended
 *    through SqliteLogStore in large batches; then a checkpoint signed with the provider's log key,
 *    and `exportLog`, the real export. (Signing runs on the Ed25519 workers; this is not measured.)
 * 2. The signature rate: every core verifies real JWS from the export with node:crypto on a worker
 *    thread; with the export's signatures per leaf (its evidence JWS, each checked once) this is
 *    the leaves per second the signatures allow. Measured before and after the audit; the mean
 *    is used.
 * 3. The audit: auditExport on the export, which must report no error.
 *
 * Last line: `ratio: <audit leaves/s ÷ leaves/s the signatures allow>` (target ≥ 0.7, issue 12).
 * Run with `npm run bench:audit`; VN_BENCH_AUDIT_LEAVES sets the size (default 1,000,000);
 * VN_BENCH_AUDIT_EXPORT=<folder> keeps the export there, or audits the one already there.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { readFile, readdir } from 'node:fs/promises'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { randomBytes } from 'node:crypto'
import { Worker } from 'node:worker_threads'

// Run compiled (npm run bench:audit builds with tsconfig.bench.json): the Ed25519 workers are
// worker threads, and Node 20 does not give workers a TypeScript loader.
import { LineReader } from '../src/audit/export-reader.js'
import { auditExport } from '../src/audit/verify.js'
import { loadConfig } from '../src/config/load.js'
import { Ed25519Batcher } from '../src/crypto/ed25519-batch.js'
import { signJwsJsonAsync } from '../src/crypto/jws.js'
import { loadPrivateKey, loadPublicKey, publicKeyToB64u } from '../src/crypto/keys.js'
import { VnError } from '../src/errors.js'
import { buildDemoFederation } from '../src/demo/federation.js'
import { Federation } from '../src/federation/federation.js'
import { noteSigner, signCheckpoint } from '../src/log/checkpoint.js'
import type { EvidenceRow } from '../src/log/evidence.js'
import { jwsDigest } from '../src/protocol/jws-digest.js'
import { logOrigin } from '../src/log/peer-logs.js'
import type { DecisionRecord, LogRecord } from '../src/log/records.js'
import { SqliteLogStore } from '../src/log/store.js'
import { exportLog } from '../src/node/export.js'
import { nodeDataFiles, nodeKeyFiles } from '../src/node/files.js'
import { agreementSetHash } from '../src/policy/agreements.js'
import { decide } from '../src/policy/decide.js'
import { QuotaCounter, utcDay } from '../src/policy/quota.js'
import { canonicalJsonBytes } from '../src/protocol/canonical-json.js'
import { REQUEST_TYP, RESPONSE_TYP, type RequestPayload, type ResponsePayload } from '../src/protocol/envelope.js'

const LEAVES = Number(process.env.VN_BENCH_AUDIT_LEAVES ?? 1_000_000)
const PROVIDER = 'fj-psb'
const CONSUMER = 'fj-tax'
const EXCHANGES_PER_BATCH = 1000
const f1 = (x: number): string => x.toFixed(1)
const KEEP = process.env.VN_BENCH_AUDIT_EXPORT

const dir = mkdtempSync(join(tmpdir(), 'vn-bench-audit-'))
process.on('exit', () => rmSync(dir, { recursive: true, force: true }))

async function messageKeyOf(configPath: string, fed: Federation, member: string): Promise<{ key: Awaited<ReturnType<typeof loadPrivateKey>>; kid: string; dataDir: string; logKey: Awaited<ReturnType<typeof loadPrivateKey>> }> {
  const loaded = await loadConfig(configPath, {})
  const files = nodeKeyFiles(loaded.path(loaded.config.keysDir))
  const key = await loadPrivateKey(files.messageKey)
  const x = publicKeyToB64u(key)
  const k = [...fed.member(member).messageKeys.values()].find((v) => v.x === x)
  if (k === undefined) throw new Error(`${member}: message key not in the manifest`)
  return { key, kid: `${member}#${k.kid}`, dataDir: loaded.path(loaded.config.dataDir), logKey: await loadPrivateKey(files.logKey) }
}

/** Writes the provider's log; returns the export folder. */
async function buildExport(): Promise<{ out: string; exchanges: number }> {
  const now = Date.now()
  const fed = await buildDemoFederation(join(dir, 'fed'), { sizes: { residents: 50, enterprises: 20, taxYears: [2025] }, now })
  const psbConfig = fed.nodes[PROVIDER]?.configPath as string
  const loaded = await loadConfig(psbConfig, {})
  const cfg = loaded.config
  const root = await loadPublicKey(loaded.path(cfg.federation.rootKey))
  const manifest = Federation.fromJws((await readFile(loaded.path(cfg.federation.manifest), 'utf8')).trim(), root, { now, allowExpired: true })
  const psb = await messageKeyOf(psbConfig, manifest, PROVIDER)
  const tax = await messageKeyOf(fed.nodes[CONSUMER]?.configPath as string, manifest, CONSUMER)
  const agreements = cfg.agreements
  const policy = agreementSetHash(agreements)
  const agreement = agreements.find((a) => a.consumer === CONSUMER && a.services.includes('identity.match'))
  if (agreement === undefined) throw new Error('no identity.match agreement for fj-tax')

  const store = await SqliteLogStore.open(nodeDataFiles(psb.dataDir).log, { writer: 'inline', maxBatch: 4 * EXCHANGES_PER_BATCH })
  const ed = new Ed25519Batcher(availableParallelism())
  const quotas = new QuotaCounter()
  let size = 0
  const start: LogRecord[] = [
    {
      v: 1, at: now, t: 'key-event', event: 'node-started', member: PROVIDER, messageKid: psb.kid,
      messageKey: publicKeyToB64u(psb.key), logKey: publicKeyToB64u(psb.logKey), manifestSeq: manifest.seq, manifestHash: manifest.hash,
    },
    { v: 1, at: now, t: 'agreements', policy, agreements },
  ]
  await store.appendMany(start.map((r) => canonicalJsonBytes(r)))
  size += start.length
  const exchanges = Math.max(1, Math.floor((LEAVES - size) / 3))
  const digest = (): string => randomBytes(32).toString('base64url')

  /** One batch of exchanges: requests and responses signed on the workers, then one append. */
  const batch = async (first: number, n: number, index: number): Promise<{ leaves: Uint8Array[]; evidence: EvidenceRow[] }> => {
    const leaves: Uint8Array[] = []
    const evidence: EvidenceRow[] = []
    const reqs = await Promise.all(Array.from({ length: n }, async (_, k) => {
      const at = now + first + k
      const subjects = Array.from({ length: 1 + ((first + k) % 3) }, () => ({ id: digest(), name: digest() }))
      const payload: RequestPayload = {
        v: 1, xid: randomBytes(16).toString('base64url'), iat: at, iss: CONSUMER, aud: PROVIDER, svc: 'identity.match',
        purpose: agreement.purposes[0] as string, basis: agreement.basis, mode: 'plain', q: { subjects },
      }
      return { at, payload, jws: await signJwsJsonAsync(payload, tax.key, tax.kid, REQUEST_TYP, ed) }
    }))
    const resps = await Promise.all(reqs.map(async ({ at, payload: req, jws }, k) => {
      const count = (req.q.subjects as unknown[]).length
      const decision = decide({ consumer: req.iss, service: req.svc, purpose: req.purpose, basis: req.basis, mode: req.mode, count, at }, agreements, quotas)
      const reqDigest = jwsDigest(jws)
      const requestIndex = index + 3 * k
      const resp: ResponsePayload = {
        v: 1, xid: req.xid, reqDigest, iat: at, iss: PROVIDER, aud: CONSUMER, status: decision.permit ? 'ok' : 'denied', policy, log: { index: requestIndex },
      }
      if (decision.permit) {
        resp.results = Array.from({ length: count }, () => ({ found: true, match: true, fields: { id: true, name: true } }))
        resp.agreement = decision.agreementId
      } else {
        const p = new VnError(decision.code, decision.reason)
        resp.error = { code: p.code, title: p.title, status: p.statusCode, detail: decision.reason }
      }
      return { at, req, reqJws: jws, reqDigest, count, decision, resp, respJws: await signJwsJsonAsync(resp, psb.key, psb.kid, RESPONSE_TYP, ed) }
    }))
    resps.forEach(({ at, req, reqJws, reqDigest, count, decision, resp, respJws }, k) => {
      const respDigest = jwsDigest(respJws)
      const decided: DecisionRecord = { v: 1, at, t: 'decision', xid: req.xid, iss: req.iss, reqDigest, permit: decision.permit, policy, count, day: utcDay(at) }
      if (decision.permit) decided.agreement = decision.agreementId
      else decided.code = decision.code
      const records: LogRecord[] = [
        { v: 1, at, t: 'request-in', xid: req.xid, iss: req.iss, svc: req.svc, mode: req.mode, purpose: req.purpose, basis: req.basis, count, reqDigest },
        decided,
        { v: 1, at, t: 'response-out', xid: req.xid, aud: req.iss, reqDigest, respDigest, status: resp.status, requestIndex: index + 3 * k },
      ]
      for (const r of records) leaves.push(canonicalJsonBytes(r))
      evidence.push({ kind: 'jws', record: 3 * k, digest: reqDigest, jws: reqJws }, { kind: 'jws', record: 3 * k + 2, digest: respDigest, jws: respJws })
    })
    return { leaves, evidence }
  }

  const t0 = performance.now()
  // Two batches in flight keep both the workers and the writer busy.
  let pending: Promise<{ leaves: Uint8Array[]; evidence: EvidenceRow[] }> | undefined
  let nextFirst = 0
  const startBatch = (): typeof pending => {
    if (nextFirst >= exchanges) return undefined
    const n = Math.min(EXCHANGES_PER_BATCH, exchanges - nextFirst)
    const p = batch(nextFirst, n, size + 3 * nextFirst)
    nextFirst += n
    return p
  }
  pending = startBatch()
  while (pending !== undefined) {
    const cur = pending
    // decisions must be taken in log order (the quota): the next batch starts once this one decided
    const b = await cur
    pending = startBatch()
    await store.appendMany(b.leaves, b.evidence)
  }
  size = await store.size()
  const origin = logOrigin(manifest.name, PROVIDER)
  await store.saveCheckpoint(size, signCheckpoint({ origin, size, rootHash: await store.rootHash(size) }, noteSigner(origin, psb.logKey)))
  await store.close()
  await ed.close()
  console.log(`wrote ${size} leaves (${exchanges} exchanges) in ${f1((performance.now() - t0) / 1000)} s`)
  const out = KEEP ?? join(dir, 'export')
  const t1 = performance.now()
  await exportLog(psbConfig, out, { env: {} })
  console.log(`exported in ${f1((performance.now() - t1) / 1000)} s`)
  return { out, exchanges }
}

const VERIFY_WORKER = `
const { parentPort, workerData } = require('node:worker_threads')
const { createPublicKey, verify } = require('node:crypto')
const keys = workerData.keys.map((der) => createPublicKey({ key: Buffer.from(der), format: 'der', type: 'spki' }))
const items = workerData.items
const t0 = performance.now()
let n = 0
while (performance.now() - t0 < workerData.ms) {
  for (const it of items) {
    if (!verify(null, it.data, keys[it.key], it.sig)) throw new Error('a signature did not verify')
    n++
  }
}
parentPort.postMessage({ n, ms: performance.now() - t0 })
`

/** Signatures per second with node:crypto on one worker thread per core, over real JWS of the export. */
async function signatureRate(out: string): Promise<number> {
  // the first 2,000 JWS (the file is about a gigabyte: too large for one string)
  const reader = new LineReader(join(out, 'evidence.jsonl'))
  const lines: string[] = []
  for (let l = reader.next(); l !== undefined && lines.length < 2000; l = reader.next()) if (l.length > 0) lines.push(l.toString('utf8'))
  reader.close()
  const manifest = (await readFile(join(out, 'manifests', (await readdir(join(out, 'manifests'))).sort().pop() as string), 'utf8')).trim()
  const fed = Federation.fromJws(manifest, await loadPublicKey(join(out, 'federation-root.pub')), { now: 0, allowExpired: true })
  const keyIds: string[] = []
  const keys: Uint8Array[] = []
  const items = lines.map((l) => {
    const { jws } = JSON.parse(l) as { jws: string }
    const [h, p, s] = jws.split('.') as [string, string, string]
    const kid = (JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as { kid: string }).kid
    let k = keyIds.indexOf(kid)
    if (k < 0) {
      const [member, id] = kid.split('#') as [string, string]
      keys.push(new Uint8Array(fed.member(member).messageKeys.get(id)?.key.export({ format: 'der', type: 'spki' }) as Buffer))
      keyIds.push(kid)
      k = keys.length - 1
    }
    return { key: k, data: Buffer.from(`${h}.${p}`, 'ascii'), sig: Buffer.from(s, 'base64url') }
  })
  const cores = availableParallelism()
  const t0 = performance.now()
  const runs = await Promise.all(Array.from({ length: cores }, () => new Promise<{ n: number; ms: number }>((resolve, reject) => {
    const w = new Worker(VERIFY_WORKER, { eval: true, workerData: { keys, items, ms: 4000 } })
    w.once('message', resolve)
    w.once('error', reject)
  })))
  const wall = (performance.now() - t0) / 1000
  return runs.reduce((a, r) => a + r.n, 0) / wall
}

/** CPU seconds of this process's main thread so far (Linux /proc), or undefined elsewhere. */
function mainThreadCpu(): number | undefined {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(f[11]) + Number(f[12])) / 100 // utime + stime, in USER_HZ (100 on Linux)
  } catch {
    return undefined
  }
}

async function main(): Promise<void> {
  console.log(`# audit verify on a provider export of ~${LEAVES} leaves, ${availableParallelism()} cores`)
  const reuse = KEEP !== undefined && existsSync(join(KEEP, 'export.json'))
  const out = reuse ? KEEP : (await buildExport()).out
  const meta = JSON.parse(await readFile(join(out, 'export.json'), 'utf8')) as { size: number; evidence: number }
  const sigsPerLeaf = meta.evidence / meta.size
  console.log(`export: ${meta.size} leaves, ${meta.evidence} evidence JWS (${sigsPerLeaf.toFixed(3)} signatures per leaf)`)

  const before = await signatureRate(out)
  console.log(`Ed25519 verify on all cores (before): ${before.toFixed(0)}/s`)
  const t0 = performance.now()
  const main0 = mainThreadCpu()
  const cpu0 = process.cpuUsage()
  const report = await auditExport(out)
  const secs = (performance.now() - t0) / 1000
  const cpu = process.cpuUsage(cpu0)
  const main = mainThreadCpu()
  const total = (cpu.user + cpu.system) / 1e6
  const after = await signatureRate(out)
  console.log(`Ed25519 verify on all cores (after): ${after.toFixed(0)}/s`)
  if (!report.ok) throw new Error(`the audit found errors: ${JSON.stringify(report.findings.slice(0, 5))}`)
  console.log(`audit: ${report.leaves} leaves in ${f1(secs)} s, ok, ${report.counts.errors} errors, ${report.counts.warnings} warnings, ${report.counts.infos} infos`)
  // CPU is steadier than wall time on a shared machine: the main thread's, and the process's (with the workers)
  console.log(`audit CPU: main thread ${main === undefined || main0 === undefined ? '?' : f1(main - main0)} s, all threads ${f1(total)} s`)
  // memory: the audit keeps a little of every exchange to the end (duplicates, the report)
  console.log(`process peak RSS: ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB${reuse ? '' : ' (the export was built in this process too)'}`)
  const sigLeaves = ((before + after) / 2) / sigsPerLeaf
  const auditLeaves = report.leaves / secs
  console.log(`leaves/s the signatures allow: ${sigLeaves.toFixed(0)}`)
  console.log(`audit leaves/s: ${auditLeaves.toFixed(0)}`)
  console.log(`ratio: ${(auditLeaves / sigLeaves).toFixed(2)}`)
}

await main()
