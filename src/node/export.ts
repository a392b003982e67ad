/**
 * `verinode log export`: a self-contained folder an auditor can carry away (docs/DESIGN.md "Auditor
 * toolkit"; issue 5 "Export").
 *
 * Layout (format `verinode-log-export`, v 1):
 * ```
 * export.json            what this is: member, federation, origin, size, latest checkpoint, and the
 *                        digest (SHA-256; SM3 under the `sm` profile, listed as `sm3`) and length
 *                        of every other file (unsigned: it catches accidental
 *                        damage; tampering is caught by the checks themselves)
 * entries.jsonl          one leaf per line in index order: the exact leaf bytes (RFC 8785 canonical
 *                        JSON, UTF-8), which never contain a newline
 * checkpoints/<size>.note every signed checkpoint (C2SP signed note) the node stored, by tree size
 * evidence.jsonl         one `{"digest","jws"}` per line, sorted by digest: the signed JWS of every
 *                        exchange message. Never the disclosures (they hold personal data)...
 * disclosures.jsonl      ...except with `withDisclosures` (`--with-disclosures --reason`): one
 *                        `{"xid","disclosures":[...]}` per line, decrypted, mode 0600; and
 * received.jsonl         `{"xid","digest","bytes"}` per refused peer answer still kept (bytes
 *                        base64url, decrypted: a forged answer may hold anything). The node
 *                        must be stopped: a `disclosure-export` record (the reason's SHA-256 and the
 *                        count) is appended to its log and checkpointed first (offline-log.ts), so
 *                        the export itself shows that, when and why disclosures left the node
 * manifests/<seq>.jws    the federation manifests the node has: the one in force and every one it
 *                        loaded (kept in the data folder's manifests/ as it loads them)
 * federation-root.pub    the node's trust anchor (an auditor should pass its own with --root)
 * ```
 *
 * The log is read through the storage interface's `LogReader` (log/storage.ts; opened by
 * node/log-store.ts, which chooses the backend): one consistent snapshot, even while the node keeps
 * appending, and leaves and their evidence are committed together, so the snapshot never holds a
 * leaf without its evidence.
 * The folder is written under a temporary name and renamed into place, so a failed export leaves
 * nothing that looks complete.
 */
import { createHash } from 'node:crypto'
import { activeProfile, digestB64u } from '../crypto/profile.js'
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs'
import { mkdir, readFile, readdir, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import { loadConfig } from '../config/load.js'
import { loadPrivateKey, loadPublicKey, loadSecretFile } from '../crypto/keys.js'
import { VnError } from '../errors.js'
import { Federation } from '../federation/federation.js'
import { logOrigin } from '../log/peer-logs.js'
import { EXPORT_FILES, EXPORT_FORMAT, exportFileInfo, type ExportFileInfo, type ExportMeta } from '../log/export-layout.js'
import { NODE_MANIFEST_ARCHIVE, nodeKeyFiles } from './files.js'
import { decryptDisclosures, decryptReceived } from '../log/sealing.js'
import type { LogReader, LogSnapshot } from '../log/storage.js'
import { nodeLogLocation, openNodeLogReader, type NodeLogLocation } from './log-store.js'
import { appendOffline, assertNodeStopped } from './offline-log.js'

export interface ExportOptions {
  env?: Record<string, string | undefined>
  now?: () => number
  /** export the sealed disclosures decrypted; the node must be stopped and the reason is logged */
  withDisclosures?: { reason: string }
}

/** Longest accepted disclosure-export reason (it is hashed into the log and kept in export.json). */
const MAX_REASON_LENGTH = 1000


export interface ExportResult extends ExportMeta {
  dir: string
  /** manifest files found but not exported (they do not verify against the node's trust anchor) */
  skipped: string[]
}

/** The file-list entry of a small file: the profile's digest (SHA-256, SM3 under `sm`) and its length. */
const fileInfo = (b: string): ExportFileInfo => exportFileInfo(activeProfile().hashAlg, createHash(activeProfile().hashAlg).update(b).digest('hex'), Buffer.byteLength(b))
const NEWLINE = 0x0a
const NEWLINE_BYTES = Buffer.from([NEWLINE])

async function isEmptyOrMissing(dir: string): Promise<boolean> {
  try {
    const s = await stat(dir)
    if (!s.isDirectory()) return false
    return (await readdir(dir)).length === 0
  } catch {
    return true
  }
}

/**
 * Manifest JWS files the node has: its manifest file, any other *.jws beside it or in manifests/,
 * and the copy of every manifest it loaded that the running node keeps in its data folder.
 */
async function manifestCandidates(manifestPath: string, archiveDir: string): Promise<string[]> {
  const dir = dirname(manifestPath)
  const out = [manifestPath]
  for (const d of [dir, join(dir, 'manifests'), archiveDir]) {
    let names: string[] = []
    try {
      names = await readdir(d)
    } catch {
      continue
    }
    for (const n of names.sort()) if (n.endsWith('.jws') && join(d, n) !== manifestPath) out.push(join(d, n))
  }
  return out
}

/**
 * Writes the export of the node configured in `configPath` into `outDir` (which must not exist or
 * be empty). Reads the log read-only; works while the node is running.
 * @throws VN_ERR_CONFIG_INVALID, VN_ERR_KEY_FILE, VN_ERR_FED_MANIFEST_INVALID, VN_ERR_AUDIT_EXPORT_TARGET,
 *   VN_ERR_AUDIT_EXPORT_INVALID (the log database is missing or inconsistent)
 */
export async function exportLog(configPath: string, outDir: string, opts: ExportOptions = {}): Promise<ExportResult> {
  const now = opts.now ?? Date.now
  const loaded = await loadConfig(configPath, opts.env ?? process.env)
  const cfg = loaded.config
  const target = resolve(outDir)
  if (!(await isEmptyOrMissing(target))) throw new VnError('VN_ERR_AUDIT_EXPORT_TARGET', `${target}: exists and is not an empty folder`)

  // Trust anchor and manifests: export only what verifies against the node's own anchor.
  const rootPath = loaded.path(cfg.federation.rootKey)
  const rootText = (await readFile(rootPath, 'utf8')).trim()
  const root = await loadPublicKey(rootPath)
  const manifestPath = loaded.path(cfg.federation.manifest)
  let current: Federation
  try {
    current = Federation.fromJws((await readFile(manifestPath, 'utf8')).trim(), root, { now: now(), allowExpired: true })
  } catch (e) {
    if (e instanceof VnError) throw e
    throw new VnError('VN_ERR_FED_MANIFEST_INVALID', `${manifestPath}: cannot be read`, { cause: e })
  }
  const manifests = new Map<number, Federation>([[current.seq, current]])
  const skipped: string[] = []
  for (const p of (await manifestCandidates(manifestPath, join(loaded.path(cfg.dataDir), NODE_MANIFEST_ARCHIVE))).slice(1)) {
    try {
      const f = Federation.fromJws((await readFile(p, 'utf8')).trim(), root, { now: now(), allowExpired: true })
      const prev = manifests.get(f.seq)
      if (prev === undefined && f.name === current.name) manifests.set(f.seq, f)
      else if (prev !== undefined && prev.hash !== f.hash) skipped.push(p)
    } catch {
      skipped.push(p)
    }
  }

  const where = nodeLogLocation(cfg, loaded)
  if (where.kind === 'sqlite' && !(await stat(where.path).then((s) => s.isFile(), () => false))) {
    throw new VnError('VN_ERR_AUDIT_EXPORT_INVALID', `${where.path}: no log database (has the node ever started?)`)
  }

  // With disclosures: check the reason, count what will leave, and log it before anything is read.
  let disclosures: { key: Uint8Array; nowMs: number; count: number; received: number; reason: string } | undefined
  if (opts.withDisclosures !== undefined) {
    const reason = opts.withDisclosures.reason.trim()
    if (reason.length === 0 || reason.length > MAX_REASON_LENGTH) throw new VnError('VN_ERR_CONFIG_INVALID', `reason: give the reason for exporting disclosures (1-${MAX_REASON_LENGTH} characters)`)
    const keyFiles = nodeKeyFiles(loaded.path(cfg.keysDir))
    const key = await loadSecretFile(keyFiles.evidenceKey)
    const logKey = await loadPrivateKey(keyFiles.logKey)
    if (where.kind === 'sqlite') await assertNodeStopped(where.path)
    const nowMs = now()
    const { count, received } = await withReader(where, (r) => r.snapshot(async (s) => {
      let rows = 0
      for await (const chunk of s.sealedReceived(nowMs)) rows += chunk.length
      return { count: await s.countDisclosures(nowMs), received: rows }
    }))
    await appendOffline(where, [{ v: 1, at: nowMs, t: 'disclosure-export', reasonDigest: digestB64u(Buffer.from(reason, 'utf8')), count, received }], logKey, logOrigin(current.name, cfg.member))
    disclosures = { key, nowMs, count, received, reason }
  }

  const tmp = join(dirname(target), `.${basename(target)}.tmp-${process.pid}-${now()}`)
  await mkdir(join(tmp, EXPORT_FILES.checkpoints), { recursive: true, mode: 0o700 })
  await mkdir(join(tmp, EXPORT_FILES.manifests), { recursive: true })
  try {
    const files: Record<string, ExportFileInfo> = {}
    const snapshot = await withReader(where, (r) => r.snapshot((s) => writeSnapshot(s, tmp, files, disclosures)))

    const cpFiles: { size: number; file: string }[] = []
    for (const c of snapshot.checkpoints) {
      const file = `${EXPORT_FILES.checkpoints}/${String(c.size).padStart(12, '0')}.note`
      await writeFile(join(tmp, file), c.note)
      files[file] = fileInfo(c.note)
      cpFiles.push({ size: c.size, file })
    }
    const manifestList: ExportMeta['manifests'] = []
    for (const f of [...manifests.values()].sort((a, b) => a.seq - b.seq)) {
      const file = `${EXPORT_FILES.manifests}/${String(f.seq).padStart(6, '0')}.jws`
      const text = `${f.jws}\n`
      await writeFile(join(tmp, file), text)
      files[file] = fileInfo(text)
      manifestList.push({ file, seq: f.seq, hash: f.hash })
    }
    const rootOut = `${rootText}\n`
    await writeFile(join(tmp, EXPORT_FILES.root), rootOut)
    files[EXPORT_FILES.root] = fileInfo(rootOut)

    const latest = cpFiles[cpFiles.length - 1]
    const meta: ExportMeta = {
      v: 1,
      format: EXPORT_FORMAT,
      member: cfg.member,
      federation: current.name,
      origin: logOrigin(current.name, cfg.member),
      size: snapshot.size,
      checkpoint: latest === undefined ? null : latest,
      exportedAt: new Date(now()).toISOString(),
      manifests: manifestList,
      evidence: snapshot.evidence,
      disclosures: disclosures !== undefined,
      ...(disclosures === undefined ? {} : { disclosureReason: disclosures.reason, disclosureCount: disclosures.count, receivedCount: snapshot.received }),
      files,
    }
    await writeFile(join(tmp, EXPORT_FILES.meta), `${JSON.stringify(meta, null, 2)}\n`)
    // An empty target folder is replaced; rename is atomic within one file system.
    await rmdir(target).catch(() => undefined)
    await rename(tmp, target)
    return { ...meta, dir: target, skipped }
  } catch (e) {
    await rm(tmp, { recursive: true, force: true })
    throw e
  }
}

interface Snapshot {
  size: number
  evidence: number
  /** refused peer answers' bytes written to received.jsonl (with disclosures only) */
  received: number
  checkpoints: { size: number; note: string }[]
}

async function withReader<T>(where: NodeLogLocation, use: (r: LogReader) => Promise<T>): Promise<T> {
  const reader = await openNodeLogReader(where)
  try {
    return await use(reader)
  } finally {
    await reader.close()
  }
}

/** Writes `lines` to a new file `name` in `dir` (fsynced), and returns its digest and length. */
async function writeLines<R>(dir: string, name: string, chunks: AsyncIterable<readonly R[]>, line: (row: R) => Buffer): Promise<{ info: ExportFileInfo; lines: number }> {
  const fd = openSync(join(dir, name), 'wx', 0o600)
  const alg = activeProfile().hashAlg
  const h = createHash(alg)
  let bytes = 0
  let lines = 0
  try {
    for await (const chunk of chunks) {
      const buf = Buffer.concat(chunk.map(line))
      writeSync(fd, buf)
      h.update(buf)
      bytes += buf.length
      lines += chunk.length
    }
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  return { info: exportFileInfo(alg, h.digest('hex'), bytes), lines }
}

const jsonLine = (v: unknown): Buffer => Buffer.from(`${JSON.stringify(v)}\n`, 'utf8')

/** Streams leaves and evidence from one snapshot into the export's files. */
async function writeSnapshot(s: LogSnapshot, dir: string, files: Record<string, ExportFileInfo>, disclosures?: { key: Uint8Array; nowMs: number; count: number; received: number }): Promise<Snapshot> {
  // entries.jsonl: the exact leaf bytes, one per line, in index order with no gaps.
  let index = 0
  const entries = await writeLines(dir, EXPORT_FILES.entries, s.leaves(), (leaf) => {
    if (leaf.includes(NEWLINE)) throw new VnError('VN_ERR_AUDIT_EXPORT_INVALID', `leaves[${index}]: contains a newline (not canonical JSON)`)
    index++
    return Buffer.concat([leaf, NEWLINE_BYTES])
  })
  files[EXPORT_FILES.entries] = entries.info

  // evidence.jsonl: JWS only. The disclosures are never read here.
  const evidence = await writeLines(dir, EXPORT_FILES.evidence, s.jws(), (row) => jsonLine({ digest: row.digest, jws: row.jws }))
  files[EXPORT_FILES.evidence] = evidence.info

  // disclosures.jsonl: only when asked for, and only what the disclosure-export record counted.
  if (disclosures !== undefined) {
    const opened = await writeLines(dir, EXPORT_FILES.disclosures, s.sealedDisclosures(disclosures.nowMs), (row) =>
      jsonLine({ xid: row.xid, disclosures: decryptDisclosures(disclosures.key, row.xid, row.nonce, row.ciphertext) }),
    )
    if (opened.lines !== disclosures.count) throw new VnError('VN_ERR_AUDIT_EXPORT_INVALID', `disclosures: ${opened.lines} rows, ${disclosures.count} logged (did the node start meanwhile?)`)
    files[EXPORT_FILES.disclosures] = opened.info
  }

  // received.jsonl: the bytes of refused peer answers, under the same logged reason.
  let received = 0
  if (disclosures !== undefined) {
    const opened = await writeLines(dir, EXPORT_FILES.received, s.sealedReceived(disclosures.nowMs), (row) =>
      jsonLine({ xid: row.xid, digest: row.digest, bytes: Buffer.from(decryptReceived(disclosures.key, row.xid, row.nonce, row.ciphertext)).toString('base64url') }),
    )
    if (opened.lines !== disclosures.received) throw new VnError('VN_ERR_AUDIT_EXPORT_INVALID', `received: ${opened.lines} rows, ${disclosures.received} logged (did the node start meanwhile?)`)
    received = opened.lines
    files[EXPORT_FILES.received] = opened.info
  }

  // Every stored checkpoint, as stored: judging them is the auditor's job.
  return { size: s.size, evidence: evidence.lines, received, checkpoints: await s.checkpoints() }
}
