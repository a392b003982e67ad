/**
 * Shared plumbing of the auditor's tools (consistency, prove, check-receipt, cross-check): reading
 * a log export (export.ts) and building the key history an auditor trusts from a root key and
 * manifests, the same way `audit verify` (verify.ts step 1) does.
 *
 * Nothing here decides whether a log is honest; it only loads what the checks need and reports
 * manifests that do not verify as findings, so one bad file never hides the others.
 */
import type { KeyObject } from 'node:crypto'
import { readFile, readdir } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { z } from 'zod'
import { formatZodIssues } from '../config/load.js'
import { loadPublicKey, publicKeyFromB64u } from '../crypto/keys.js'
import { VnError, isVnError } from '../errors.js'
import { Federation } from '../federation/federation.js'
import { KeyHistory } from '../federation/key-history.js'
import { ed25519NoteVerifier, type NoteVerifier } from '../log/checkpoint.js'
import type { LogRecord } from '../log/records.js'
import { ED25519_PUBLIC_KEY_RE, MEMBER_ID_PATTERN, memberIdSchema as memberId } from '../protocol/vocabulary.js'
import { fromB64u } from '../util/base64url.js'
import { EXPORT_FILES, EXPORT_FORMAT } from './export.js'
import { FINDINGS, type AuditCode, type AuditFinding, type Severity } from './findings.js'
import { LogRecordSchema } from './record-schemas.js'

/** Where a finding belongs (see AuditFinding). */
export interface Where {
  xid?: string
  role?: 'provider' | 'consumer'
  index?: number
}

/** A findings list with the one `add` every tool uses. */
export class Findings {
  readonly list: AuditFinding[] = []
  add(code: AuditCode, message: string, where: Where = {}, severity: Severity = FINDINGS[code].severity): void {
    const f: AuditFinding = { code, severity, message }
    if (where.xid !== undefined) f.xid = where.xid
    if (where.role !== undefined) f.role = where.role
    if (where.index !== undefined) f.index = where.index
    this.list.push(f)
  }
  count(s: Severity): number {
    return this.list.filter((f) => f.severity === s).length
  }
  get ok(): boolean {
    return this.count('error') === 0
  }
  counts(): { errors: number; warnings: number; infos: number } {
    return { errors: this.count('error'), warnings: this.count('warning'), infos: this.count('info') }
  }
}

export const invalidExport = (detail: string, cause?: unknown): VnError =>
  new VnError('VN_ERR_AUDIT_EXPORT_INVALID', detail, cause === undefined ? undefined : { cause })

/** Splits a JSON-lines buffer into lines (without their newline). */
export function splitLines(buf: Buffer): Buffer[] {
  const out: Buffer[] = []
  let start = 0
  for (let i = 0; i < buf.length; i++) {
    if (buf[i] === 0x0a) {
      out.push(buf.subarray(start, i))
      start = i + 1
    }
  }
  if (start < buf.length) out.push(buf.subarray(start))
  return out
}

export async function readOptional(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path)
  } catch {
    return undefined
  }
}

export async function listFiles(dir: string, ext: string): Promise<string[]> {
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
})

export interface LoadedExport {
  dir: string
  member: string
  federation: string | undefined
  /** exact leaf bytes, in index order */
  leaves: Buffer[]
  /** each leaf parsed strictly, or undefined when it is not a known record (audit verify reports why) */
  records: (LogRecord | undefined)[]
  /** evidence JWS by digest, as the file holds them (not checked against their digest) */
  evidence: Map<string, string>
  /** manifest JWS texts, by file name */
  manifests: { name: string; jws: string }[]
  checkpoints: { file: string; note: string }[]
  rootPath: string
}

/** Reads an export folder. @throws VN_ERR_AUDIT_EXPORT_INVALID when it is not one */
export async function readExport(dir: string): Promise<LoadedExport> {
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
  const entries = await readOptional(join(root, EXPORT_FILES.entries))
  if (entries === undefined) throw invalidExport(`${root}: no ${EXPORT_FILES.entries}`)
  const leaves = splitLines(entries)
  const records = leaves.map((l) => {
    try {
      const r = LogRecordSchema.safeParse(JSON.parse(l.toString('utf8')))
      return r.success ? (r.data as LogRecord) : undefined
    } catch {
      return undefined
    }
  })
  const evidence = new Map<string, string>()
  const ev = await readOptional(join(root, EXPORT_FILES.evidence))
  for (const line of ev === undefined ? [] : splitLines(ev)) {
    try {
      const e = JSON.parse(line.toString('utf8')) as { digest?: unknown; jws?: unknown }
      if (typeof e.digest === 'string' && typeof e.jws === 'string' && !evidence.has(e.digest)) evidence.set(e.digest, e.jws)
    } catch {
      // malformed lines are audit verify's AUDIT_EVIDENCE_MALFORMED
    }
  }
  const manifests: LoadedExport['manifests'] = []
  for (const n of await listFiles(join(root, EXPORT_FILES.manifests), '.jws')) {
    manifests.push({ name: `${EXPORT_FILES.manifests}/${n}`, jws: (await readFile(join(root, EXPORT_FILES.manifests, n), 'utf8')).trim() })
  }
  const checkpoints: LoadedExport['checkpoints'] = []
  for (const n of await listFiles(join(root, EXPORT_FILES.checkpoints), '.note')) {
    checkpoints.push({ file: `${EXPORT_FILES.checkpoints}/${n}`, note: await readFile(join(root, EXPORT_FILES.checkpoints, n), 'utf8') })
  }
  return { dir: root, member: meta.data.member, federation: meta.data.federation, leaves, records, evidence, manifests, checkpoints, rootPath: join(root, EXPORT_FILES.root) }
}

/** A trust anchor: a KeyObject, a base64url raw Ed25519 key, or the path of a .pub file. @throws VN_ERR_KEY_FILE */
export async function resolveRootKey(rootKey: KeyObject | string): Promise<KeyObject> {
  if (typeof rootKey !== 'string') return rootKey
  if (ED25519_PUBLIC_KEY_RE.test(rootKey)) {
    try {
      return publicKeyFromB64u(rootKey, 'rootKey')
    } catch (e) {
      throw new VnError('VN_ERR_KEY_FILE', 'rootKey: not a base64url Ed25519 public key', { cause: e })
    }
  }
  return loadPublicKey(rootKey)
}

/**
 * The key history from manifest texts that verify against `anchor` (verify.ts step 1): manifests
 * that do not verify are AUDIT_MANIFEST_INVALID, ones that break the sequence AUDIT_MANIFEST_HISTORY,
 * and none at all AUDIT_NO_MANIFEST.
 */
export function keyHistoryOf(texts: readonly { name: string; jws: string }[], anchor: KeyObject, findings: Findings): KeyHistory {
  const verified: Federation[] = []
  const seen = new Set<string>()
  for (const m of texts) {
    if (seen.has(m.jws)) continue
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
    for (const k of f.member(member).logKeys.values()) if (!out.has(k.x)) out.set(k.x, ed25519NoteVerifier(origin, fromB64u(k.x) as Buffer))
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
