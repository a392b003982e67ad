/**
 * Inclusion receipts (`verinode audit prove`, `verinode audit check-receipt`; issue 5 §4): the
 * leaves one log holds about one exchange, each with its RFC 9162 §2.1.3 inclusion proof in a
 * checkpoint signed by the log's key. Anyone holding the federation root key and the manifests can
 * check a receipt offline, without the export it came from and without trusting whoever hands it
 * over. Receipts hold no personal data (leaves never do).
 *
 * Format `verinode-inclusion-receipt`, v 1:
 * ```
 * { v: 1, format, origin, xid,
 *   checkpoint: "<C2SP signed note>",
 *   entries: [ { index, leaf: "<the exact leaf: RFC 8785 canonical JSON>", proof: ["<base64 hash>", ...] } ] }
 * ```
 * `check-receipt` also accepts the receipt a consumer node fetches from a provider
 * (src/log/peer-logs.ts `Receipt`: `{ peer, index, leaf: {...}, checkpoint, proof }`).
 */
import type { KeyObject } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { z } from 'zod'
import { formatZodIssues } from '../config/load.js'
import { VnError, isVnError } from '../errors.js'
import { rootKeyId } from '../federation/manifest.js'
import { openNote, parseCheckpoint, parseNote, type Checkpoint } from '../log/checkpoint.js'
import { hashEquals, leafHash, verifyInclusion } from '../log/merkle.js'
import { logOrigin } from '../log/peer-logs.js'
import type { LogRecord } from '../log/records.js'
import { canonicalJson } from '../protocol/canonical-json.js'
import { hashBase64Schema } from '../protocol/vocabulary.js'
import { Findings, keyHistoryOf, logKeyVerifiers, parseOrigin, readExport, resolveRootKey } from './export-reader.js'
import type { AuditFinding } from './findings.js'
import { LogRecordSchema } from './record-schemas.js'
import { LeafTree } from './tree.js'

const RECEIPT_FORMAT = 'verinode-inclusion-receipt'

const b64Hash = hashBase64Schema
const index = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER)

const ReceiptSchema = z.strictObject({
  v: z.literal(1),
  format: z.literal(RECEIPT_FORMAT),
  origin: z.string().min(1).max(300),
  xid: z.string().min(1).max(128),
  checkpoint: z.string().min(1).max(64 * 1024),
  entries: z.array(z.strictObject({ index, leaf: z.string().min(2).max(1024 * 1024), proof: z.array(b64Hash).max(64) })).min(1).max(64),
})
export type InclusionReceipt = z.infer<typeof ReceiptSchema>

/** The receipt a consumer node fetches (PeerLogs.receipt). */
const PeerReceiptSchema = z.strictObject({
  peer: z.string(),
  index,
  leaf: z.record(z.string(), z.unknown()),
  checkpoint: z.string().min(1).max(64 * 1024),
  proof: z.array(b64Hash).max(64),
})

export interface TrustOptions {
  /** trust anchor (KeyObject, base64url key or .pub path) */
  rootKey: KeyObject | string
  /** manifest texts holding the log keys */
  manifests: readonly { name: string; jws: string }[]
}

const hashOf = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'))
const b64 = (u: Uint8Array): string => Buffer.from(u).toString('base64')

/**
 * Builds the receipt of exchange `xid` from an export: every leaf naming that xid, proved in the
 * largest checkpoint that is signed by the member's log key and whose root the export's leaves
 * recompute. Trusts the export's own root key and manifests unless `opts` gives others.
 * @throws VN_ERR_AUDIT_NOT_FOUND (no leaf names the xid), VN_ERR_LOG_PROOF (no usable checkpoint
 *   covers the leaves), VN_ERR_AUDIT_EXPORT_INVALID
 */
export async function proveInclusion(exportDir: string, xid: string, opts: Partial<TrustOptions> = {}): Promise<InclusionReceipt> {
  const exp = await readExport(exportDir)
  const indices = exp.records.flatMap((r, i) => (r !== undefined && 'xid' in r && r.xid === xid ? [i] : []))
  if (indices.length === 0) throw new VnError('VN_ERR_AUDIT_NOT_FOUND', `xid ${JSON.stringify(xid.slice(0, 64))}: no leaf of this export names it`)
  const findings = new Findings()
  const history = keyHistoryOf([...exp.manifests, ...(opts.manifests ?? [])], await resolveRootKey(opts.rootKey ?? exp.rootPath), findings)
  const federation = history.manifests.at(-1)?.name ?? exp.federation ?? '?'
  const origin = logOrigin(federation, exp.member)
  const verifiers = logKeyVerifiers(history, exp.member, origin)
  const tree = new LeafTree(exp.leaves)
  const last = Math.max(...indices)
  let best: { note: string; cp: Checkpoint } | undefined
  for (const c of exp.checkpoints) {
    let cp: Checkpoint
    try {
      cp = parseCheckpoint(openNote(c.note, verifiers).text)
    } catch {
      continue
    }
    if (cp.origin !== origin || cp.size <= last || cp.size > tree.size) continue
    if (!hashEquals(tree.root(cp.size), cp.rootHash)) continue
    if (best === undefined || cp.size > best.cp.size) best = { note: c.note, cp }
  }
  if (best === undefined) {
    throw new VnError('VN_ERR_LOG_PROOF', `leaf ${last}: no checkpoint signed by ${exp.member}'s log key covers it and matches the export's leaves (run audit verify)`)
  }
  const size = best.cp.size
  return {
    v: 1,
    format: RECEIPT_FORMAT,
    origin,
    xid,
    checkpoint: best.note,
    entries: indices.map((i) => ({ index: i, leaf: (exp.leaves[i] as Buffer).toString('utf8'), proof: tree.inclusionProof(i, size).map(b64) })),
  }
}

/** Writes a receipt file; never overwrites. @throws VN_ERR_AUDIT_EXPORT_TARGET */
export async function writeReceipt(path: string, r: InclusionReceipt): Promise<void> {
  try {
    await writeFile(path, `${JSON.stringify(r, null, 2)}\n`, { flag: 'wx' })
  } catch (e) {
    throw new VnError('VN_ERR_AUDIT_EXPORT_TARGET', `${path}: exists or cannot be written`, { cause: e })
  }
}

export interface ReceiptReport {
  v: 1
  command: 'audit check-receipt'
  ok: boolean
  origin: string
  member: string | null
  xid: string | null
  trustAnchor: { kid: string; source: 'given' }
  checkpoint: { size: number; rootHash: string; signed: boolean } | null
  /** each entry: its index, record type, and whether its proof led to the signed root */
  entries: { index: number; t: string | null; included: boolean }[]
  findings: AuditFinding[]
  counts: { errors: number; warnings: number; infos: number }
}

/** Parses a receipt file (either format). @throws VN_ERR_AUDIT_INPUT_INVALID */
export function parseReceipt(text: string): InclusionReceipt {
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch {
    throw new VnError('VN_ERR_AUDIT_INPUT_INVALID', 'receipt: not JSON')
  }
  const r = ReceiptSchema.safeParse(v)
  if (r.success) return r.data
  const peer = PeerReceiptSchema.safeParse(v)
  if (!peer.success) throw new VnError('VN_ERR_AUDIT_INPUT_INVALID', `receipt: ${formatZodIssues(r.error)}`)
  let origin = ''
  try {
    origin = parseCheckpoint(parseNote(peer.data.checkpoint).text).origin
  } catch {
    // reported by checkReceipt as AUDIT_CHECKPOINT_INVALID
  }
  const xid = peer.data.leaf.xid
  return {
    v: 1,
    format: RECEIPT_FORMAT,
    origin,
    xid: typeof xid === 'string' ? xid : '',
    checkpoint: peer.data.checkpoint,
    // Leaves are RFC 8785 canonical JSON, so the parsed leaf re-serializes to the same bytes.
    entries: [{ index: peer.data.index, leaf: canonicalJson(peer.data.leaf), proof: peer.data.proof }],
  }
}

const SAFE_XID = /^[A-Za-z0-9_-]{1,64}$/

/**
 * Checks a receipt offline: the checkpoint is signed by a log key the manifests list for the
 * member the origin names; each leaf is a known, canonical record about the receipt's xid; each
 * proof leads from the leaf hash to the signed root (RFC 9162 §2.1.3.2).
 */
export async function checkReceipt(receipt: InclusionReceipt, opts: TrustOptions): Promise<ReceiptReport> {
  const findings = new Findings()
  const anchor = await resolveRootKey(opts.rootKey)
  const history = keyHistoryOf(opts.manifests, anchor, findings)
  const xid = SAFE_XID.test(receipt.xid) ? receipt.xid : null
  const where = xid === null ? {} : { xid }
  let cp: Checkpoint | undefined
  try {
    cp = parseCheckpoint(parseNote(receipt.checkpoint).text)
  } catch (e) {
    findings.add('AUDIT_CHECKPOINT_INVALID', `checkpoint: ${isVnError(e) ? (e.detail ?? e.code) : 'malformed'}`, where)
  }
  const who = cp === undefined ? undefined : parseOrigin(cp.origin)
  if (cp !== undefined && cp.origin !== receipt.origin) findings.add('AUDIT_RECEIPT_MISMATCH', 'the checkpoint is of another log than the receipt names', where)
  if (cp !== undefined && who === undefined) findings.add('AUDIT_CHECKPOINT_INVALID', 'checkpoint: origin is not <member>.<federation>.verinode/log', where)
  let signed = false
  if (cp !== undefined && who !== undefined) {
    const fed = history.manifests.at(-1)?.name
    if (fed !== undefined && fed !== who.federation) findings.add('AUDIT_CHECKPOINT_INVALID', `checkpoint: origin names federation ${who.federation}, the manifests are of ${fed}`, where)
    const verifiers = logKeyVerifiers(history, who.member, cp.origin)
    try {
      openNote(receipt.checkpoint, verifiers)
      signed = true
    } catch (e) {
      findings.add('AUDIT_CHECKPOINT_SIGNATURE', `checkpoint: ${isVnError(e) ? (e.detail ?? e.code) : 'does not verify'} (log keys of ${who.member} in the manifests: ${verifiers.length})`, where)
    }
  }
  const entries: ReceiptReport['entries'] = []
  for (const e of receipt.entries) {
    const w = { ...where, index: e.index }
    let rec: LogRecord | undefined
    try {
      const value: unknown = JSON.parse(e.leaf)
      if (canonicalJson(value) !== e.leaf) findings.add('AUDIT_LEAF_NOT_CANONICAL', `leaf ${e.index}: not RFC 8785 canonical JSON`, w)
      const r = LogRecordSchema.safeParse(value)
      if (r.success) rec = r.data as LogRecord
      else findings.add('AUDIT_LEAF_INVALID', `leaf ${e.index}: ${formatZodIssues(r.error)}`, w)
    } catch {
      findings.add('AUDIT_LEAF_INVALID', `leaf ${e.index}: not JSON`, w)
    }
    if (rec !== undefined && (!('xid' in rec) || rec.xid !== receipt.xid)) findings.add('AUDIT_RECEIPT_MISMATCH', `leaf ${e.index}: is not about the receipt's xid`, w)
    let included = false
    if (cp !== undefined) {
      try {
        verifyInclusion(e.index, cp.size, leafHash(Buffer.from(e.leaf, 'utf8')), e.proof.map(hashOf), cp.rootHash)
        included = true
      } catch (err) {
        findings.add('AUDIT_INCLUSION_INVALID', `leaf ${e.index}: ${isVnError(err) ? (err.detail ?? err.code) : 'does not verify'} (tree size ${cp.size})`, w)
      }
    }
    entries.push({ index: e.index, t: rec?.t ?? null, included })
  }
  return {
    v: 1,
    command: 'audit check-receipt',
    ok: findings.ok && signed && entries.every((x) => x.included),
    origin: receipt.origin,
    member: who?.member ?? null,
    xid,
    trustAnchor: { kid: rootKeyId(anchor), source: 'given' },
    checkpoint: cp === undefined ? null : { size: cp.size, rootHash: b64(cp.rootHash), signed },
    entries,
    findings: findings.list,
    counts: findings.counts(),
  }
}
