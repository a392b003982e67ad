/**
 * The one reader of a log export (layout: src/log/export-layout.ts) for every auditor tool, and the
 * shared plumbing of building the key history an auditor trusts from a root key and manifests.
 *
 * `openExport` reads and checks export.json and the small files (manifests, checkpoints) and
 * leaves the two large ones, entries.jsonl and evidence.jsonl, to `LineReader`: `audit verify`
 * streams them (a 10^6-leaf export holds about a gigabyte of evidence); `readExport` (consistency,
 * prove, check-receipt, cross-check) reads them whole on top of the same functions.
 *
 * Nothing here decides whether a log is honest; it only loads what the checks need and reports
 * manifests that do not verify as findings, so one bad file never hides the others.
 */
import { createHash, type Hash, type KeyObject } from 'node:crypto'
import { closeSync, openSync, readSync } from 'node:fs'
import { readFile, readdir, stat } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { z } from 'zod'
import { formatZodIssues } from '../config/load.js'
import { loadPublicKey, publicKeyFromB64u } from '../crypto/keys.js'
import { VnError, isVnError } from '../errors.js'
import { Federation } from '../federation/federation.js'
import { KeyHistory } from '../federation/key-history.js'
import { noteVerifier, type NoteVerifier } from '../log/checkpoint.js'
import type { LogRecord } from '../log/records.js'
import { PUBLIC_KEY_RE, MEMBER_ID_PATTERN, memberIdSchema as memberId } from '../protocol/vocabulary.js'
import { fromB64u } from '../util/base64url.js'
import { EXPORT_FILES, EXPORT_FORMAT, type ExportFileHash } from '../log/export-layout.js'
import type { Findings } from './findings.js'
import { LogRecordSchema } from './record-schemas.js'

// The findings collector lives in findings.ts; re-exported for the tools that import it from here.
export { Findings, type Where } from './findings.js'

export const invalidExport = (detail: string, cause?: unknown): VnError =>
  new VnError('VN_ERR_AUDIT_EXPORT_INVALID', detail, cause === undefined ? undefined : { cause })

export async function readOptional(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path)
  } catch {
    return undefined
  }
}

async function listFiles(dir: string, ext: string): Promise<string[]> {
  try {
    return (await readdir(dir)).filter((n) => n.endsWith(ext)).sort()
  } catch {
    return []
  }
}

const MetaSchema = z.object({
  v: z.literal(1),
  format: z.literal(EXPORT_FORMAT),
  member: memberId,
  federation: z.string().optional(),
  origin: z.string().optional(),
  size: z.number().int().nonnegative().optional(),
  disclosures: z.boolean().optional(),
  disclosureReason: z.string().optional(),
  files: z.record(z.string(), z.object({ sha256: z.string().optional(), sm3: z.string().optional(), bytes: z.number() })).optional(),
})

/** What export.json says (unsigned: every claim in it is checked against the files). */
export type ExportMetaRead = z.infer<typeof MetaSchema>

/** An export opened: export.json and the small files read, the large ones left to `LineReader`. */
export interface OpenedExport {
  dir: string
  meta: ExportMetaRead
  member: string
  federation: string | undefined
  /** manifest JWS texts, by file name */
  manifests: { name: string; jws: string }[]
  checkpoints: { file: string; note: string }[]
  rootPath: string
  entriesPath: string
  evidencePath: string
  disclosuresPath: string
  receivedPath: string
}

export interface LoadedExport extends Omit<OpenedExport, 'meta' | 'entriesPath' | 'evidencePath' | 'disclosuresPath' | 'receivedPath'> {
  /** exact leaf bytes, in index order */
  leaves: Buffer[]
  /** each leaf parsed strictly, or undefined when it is not a known record (audit verify reports why) */
  records: (LogRecord | undefined)[]
  /** evidence JWS by digest, as the file holds them (not checked against their digest) */
  evidence: Map<string, string>
}

/** Opens an export folder. @throws VN_ERR_AUDIT_EXPORT_INVALID when it is not one */
export async function openExport(dir: string): Promise<OpenedExport> {
  const root = resolve(dir)
  const metaBuf = await readOptional(join(root, EXPORT_FILES.meta))
  if (metaBuf === undefined) throw invalidExport(`${root}: no ${EXPORT_FILES.meta} (not a log export?)`)
  let raw: unknown
  try {
    raw = JSON.parse(metaBuf.toString('utf8'))
  } catch (e) {
    throw invalidExport(`${EXPORT_FILES.meta}: not JSON`, e)
  }
  const meta = MetaSchema.safeParse(raw)
  if (!meta.success) throw invalidExport(`${EXPORT_FILES.meta}: ${formatZodIssues(meta.error)}`)
  const entriesPath = join(root, EXPORT_FILES.entries)
  if (!(await stat(entriesPath).then((s) => s.isFile(), () => false))) throw invalidExport(`${root}: no ${EXPORT_FILES.entries}`)
  const manifests: OpenedExport['manifests'] = []
  for (const n of await listFiles(join(root, EXPORT_FILES.manifests), '.jws')) {
    manifests.push({ name: `${EXPORT_FILES.manifests}/${n}`, jws: (await readFile(join(root, EXPORT_FILES.manifests, n), 'utf8')).trim() })
  }
  const checkpoints: OpenedExport['checkpoints'] = []
  for (const n of await listFiles(join(root, EXPORT_FILES.checkpoints), '.note')) {
    checkpoints.push({ file: `${EXPORT_FILES.checkpoints}/${n}`, note: await readFile(join(root, EXPORT_FILES.checkpoints, n), 'utf8') })
  }
  return {
    dir: root, meta: meta.data, member: meta.data.member, federation: meta.data.federation, manifests, checkpoints,
    rootPath: join(root, EXPORT_FILES.root), entriesPath, evidencePath: join(root, EXPORT_FILES.evidence), disclosuresPath: join(root, EXPORT_FILES.disclosures),
    receivedPath: join(root, EXPORT_FILES.received),
  }
}

const CHUNK = 4 * 1024 * 1024

/** A file's digest as the auditor computed it: the hash used, the hex digest, the length. */
export interface FileDigest {
  alg: ExportFileHash
  hex: string
  bytes: number
}

/**
 * Reads a JSON-lines file forward, one line (without its newline) at a time, in 4 MiB reads, and
 * hashes what it reads (SHA-256, hex) for the export.json check. A returned line stays valid (each
 * read fills a new buffer). A missing file reads as empty (`exists` false). `lineAt` re-reads the
 * line at a byte offset (`offset` gives each line's).
 */
export class LineReader {
  private fd: number | undefined
  private buf: Buffer = Buffer.alloc(0)
  private pos = 0
  private fileOffset = 0
  private eof = false
  private readonly hash: Hash | undefined
  private readonly hashAlg: ExportFileHash | undefined
  private total = 0
  /** the byte offset of the line `next` returned last */
  offset = 0
  /** lines returned so far */
  lines = 0
  readonly exists: boolean

  /** `hash`: digest the file as it streams past with this hash (`digest()`) */
  constructor(readonly path: string, opts: { hash?: ExportFileHash | undefined } = {}) {
    try {
      this.fd = openSync(path, 'r')
      this.exists = true
    } catch {
      this.fd = undefined
      this.exists = false
      this.eof = true
    }
    this.hash = opts.hash === undefined ? undefined : createHash(opts.hash)
    this.hashAlg = opts.hash
  }

  /** The next line, or undefined at the end of the file (then the file is closed). */
  next(): Buffer | undefined {
    for (;;) {
      const nl = this.buf.indexOf(0x0a, this.pos)
      if (nl >= 0) {
        const line = this.buf.subarray(this.pos, nl)
        this.offset = this.fileOffset - (this.buf.length - this.pos)
        this.pos = nl + 1
        this.lines++
        return line
      }
      if (this.eof) {
        if (this.pos < this.buf.length) {
          const line = this.buf.subarray(this.pos)
          this.offset = this.fileOffset - (this.buf.length - this.pos)
          this.pos = this.buf.length
          this.lines++
          return line
        }
        this.close()
        return undefined
      }
      this.fill()
    }
  }

  private fill(): void {
    const rest = this.buf.subarray(this.pos)
    const next = Buffer.allocUnsafe(rest.length + CHUNK)
    rest.copy(next, 0)
    const n = readSync(this.fd as number, next, rest.length, CHUNK, this.fileOffset)
    if (n > 0) this.hash?.update(next.subarray(rest.length, rest.length + n))
    this.fileOffset += n
    this.total += n
    if (n === 0) this.eof = true
    this.buf = next.subarray(0, rest.length + n)
    this.pos = 0
  }

  /** The line starting at byte `offset` (a positional read; for the rare look back). */
  lineAt(offset: number): Buffer | undefined {
    if (this.fd === undefined) return undefined
    const parts: Buffer[] = []
    let at = offset
    for (;;) {
      const b = Buffer.allocUnsafe(64 * 1024)
      const n = readSync(this.fd, b, 0, b.length, at)
      if (n === 0) break
      const nl = b.subarray(0, n).indexOf(0x0a)
      if (nl >= 0) {
        parts.push(b.subarray(0, nl))
        break
      }
      parts.push(b.subarray(0, n))
      at += n
    }
    return parts.length === 0 ? undefined : Buffer.concat(parts)
  }

  /** The digest (hex, with the hash it was made with) and length of the whole file, once read to the end; undefined before. */
  digest(): FileDigest | undefined {
    if (!this.eof || this.pos < this.buf.length || this.hash === undefined || this.hashAlg === undefined) return undefined
    return { alg: this.hashAlg, hex: this.hash.digest('hex'), bytes: this.total }
  }

  close(): void {
    if (this.fd !== undefined && !this.keepOpen) closeSync(this.fd)
    if (!this.keepOpen) this.fd = undefined
  }

  /** keep the file open at its end, for `lineAt` (the caller then calls `release`) */
  keepOpen = false

  release(): void {
    this.keepOpen = false
    this.close()
  }
}

/** Reads an export folder whole (the tools other than `audit verify`). @throws VN_ERR_AUDIT_EXPORT_INVALID when it is not one */
export async function readExport(dir: string): Promise<LoadedExport> {
  const x = await openExport(dir)
  const leaves: Buffer[] = []
  const entries = new LineReader(x.entriesPath)
  for (let l = entries.next(); l !== undefined; l = entries.next()) leaves.push(l)
  const records = leaves.map((l) => {
    try {
      const r = LogRecordSchema.safeParse(JSON.parse(l.toString('utf8')))
      return r.success ? (r.data as LogRecord) : undefined
    } catch {
      return undefined
    }
  })
  const evidence = new Map<string, string>()
  const ev = new LineReader(x.evidencePath)
  for (let line = ev.next(); line !== undefined; line = ev.next()) {
    try {
      const e = JSON.parse(line.toString('utf8')) as { digest?: unknown; jws?: unknown }
      if (typeof e.digest === 'string' && typeof e.jws === 'string' && !evidence.has(e.digest)) evidence.set(e.digest, e.jws)
    } catch {
      // malformed lines are audit verify's AUDIT_EVIDENCE_MALFORMED
    }
  }
  return { dir: x.dir, member: x.member, federation: x.federation, leaves, records, evidence, manifests: x.manifests, checkpoints: x.checkpoints, rootPath: x.rootPath }
}

/** A trust anchor: a KeyObject, a base64url raw Ed25519 or SM2 key, or the path of a .pub file. @throws VN_ERR_KEY_FILE */
export async function resolveRootKey(rootKey: KeyObject | string): Promise<KeyObject> {
  if (typeof rootKey !== 'string') return rootKey
  if (PUBLIC_KEY_RE.test(rootKey)) {
    try {
      return publicKeyFromB64u(rootKey, 'rootKey')
    } catch (e) {
      throw new VnError('VN_ERR_KEY_FILE', 'rootKey: not a base64url Ed25519 or SM2 public key', { cause: e })
    }
  }
  return loadPublicKey(rootKey)
}

/**
 * The key history from manifest texts that verify against `anchor` (verify.ts step 1): manifests
 * that do not verify are AUDIT_MANIFEST_INVALID, ones that break the sequence AUDIT_MANIFEST_HISTORY,
 * and none at all AUDIT_NO_MANIFEST.
 */
export function keyHistoryOf(texts: readonly { name: string; jws: string }[], anchor: KeyObject, findings: Findings, opts: { dedupe?: boolean } = {}): KeyHistory {
  const verified: Federation[] = []
  const seen = new Set<string>()
  for (const m of texts) {
    // audit verify keeps every copy (a manifest given twice is a history fault it reports)
    if (opts.dedupe !== false && seen.has(m.jws)) continue
    seen.add(m.jws)
    try {
      verified.push(Federation.fromJws(m.jws, anchor, { now: 0, allowExpired: true }))
    } catch (e) {
      findings.add('AUDIT_MANIFEST_INVALID', `${m.name}: ${isVnError(e) ? (e.detail ?? e.code) : 'does not verify'}`)
    }
  }
  let history = new KeyHistory([])
  for (const f of verified.sort((a, b) => a.seq - b.seq)) {
    try {
      history = new KeyHistory([...history.manifests, f])
    } catch (e) {
      findings.add('AUDIT_MANIFEST_HISTORY', `manifest seq ${f.seq}: ${isVnError(e) ? (e.detail ?? e.code) : 'refused'}`)
    }
  }
  if (history.manifests.length === 0) findings.add('AUDIT_NO_MANIFEST', 'no manifest verifies against the trust anchor; no signature can be checked')
  return history
}

/** Note verifiers for every log key any manifest lists for `member` (checkpoints name the log's origin). */
export function logKeyVerifiers(history: KeyHistory, member: string, origin: string): NoteVerifier[] {
  const out = new Map<string, NoteVerifier>()
  for (const f of history.manifests) {
    if (!f.has(member)) continue
    for (const k of f.member(member).logKeys.values()) if (!out.has(k.x)) out.set(k.x, noteVerifier(origin, fromB64u(k.x) as Buffer))
  }
  return [...out.values()]
}

const ORIGIN_RE = new RegExp(`^(${MEMBER_ID_PATTERN})\\.(.+)\\.verinode/log$`)

/** `<member>.<federation>.verinode/log` (peer-logs.ts logOrigin) split back, or undefined. */
export function parseOrigin(origin: string): { member: string; federation: string } | undefined {
  const m = ORIGIN_RE.exec(origin)
  return m === null ? undefined : { member: m[1] as string, federation: m[2] as string }
}

/** Manifest texts from files and folders of *.jws (CLI `--manifests`). */
export async function readManifestTexts(paths: readonly string[]): Promise<{ name: string; jws: string }[]> {
  const { stat } = await import('node:fs/promises')
  const out: { name: string; jws: string }[] = []
  for (const p of paths) {
    const s = await stat(p).catch(() => undefined)
    if (s === undefined) throw new VnError('VN_ERR_AUDIT_INPUT_INVALID', `manifests: ${p} does not exist`)
    const files = s.isDirectory() ? (await readdir(p)).filter((n) => n.endsWith('.jws')).sort().map((n) => join(p, n)) : [p]
    for (const f of files) out.push({ name: f, jws: (await readFile(f, 'utf8')).trim() })
  }
  return out
}
