/**
 * `verinode audit consistency`: proves that a log only grew between two of its checkpoints
 * (docs/DESIGN.md "Auditor toolkit"; issue 5 §4), offline and trusting only the federation root key.
 *
 * The steps, in order:
 *  1. both notes parse as C2SP tlog-checkpoints of one log (one origin, `<member>.<federation>.verinode/log`);
 *  2. each is signed by a log key the manifests list for that member (signed-note "Signatures");
 *  3. the smaller is a prefix of the larger, by RFC 9162 §2.1.4.2 consistency-proof verification:
 *     - with an export of that log: the proof is made from the export's leaves (after checking
 *       that they recompute the larger checkpoint's root), then verified like any other proof;
 *       if it fails, the two signed checkpoints cannot both be honest: AUDIT_INCONSISTENT;
 *     - with a given proof (as `GET /v1/log/proof/consistency` returns it): the proof is verified;
 *       a proof that fails shows nothing either way: AUDIT_CONSISTENCY_PROOF_INVALID.
 *     Equal sizes need equal roots; two different signed roots at one size are a fork whatever
 *     any proof says.
 *
 * Consistency is symmetric: the two checkpoints may be given in either order.
 */
import type { KeyObject } from 'node:crypto'
import { rootKeyId } from '../federation/manifest.js'
import { isVnError } from '../errors.js'
import { openNote, parseCheckpoint, parseNote, type Checkpoint } from '../log/checkpoint.js'
import { emptyRoot, hashEquals, verifyConsistency } from '../log/merkle.js'
import { logOrigin } from '../log/peer-logs.js'
import { Findings, keyHistoryOf, logKeyVerifiers, parseOrigin, readExport, resolveRootKey, type LoadedExport } from './export-reader.js'
import type { AuditFinding } from './findings.js'
import { LeafTree } from './tree.js'
import { HASH_BASE64_RE } from '../protocol/vocabulary.js'
import { VnError } from '../errors.js'

export interface CheckpointInput {
  /** where it came from, for messages (a file name) */
  file: string
  note: string
}

export interface ConsistencyOptions {
  /** trust anchor (KeyObject, base64url key or .pub path); default: the export's own copy */
  rootKey?: KeyObject | string
  /** more manifest texts (the authority's archive) */
  manifests?: readonly { name: string; jws: string }[]
  /** an export of the log: its leaves make the proof */
  exportDir?: string
  /** a consistency proof from the smaller to the larger size */
  proof?: readonly Uint8Array[]
}

export interface CheckpointSummary {
  file: string
  size: number
  /** base64, as in the note */
  rootHash: string
  /** signed by a log key of the member listed in the manifests */
  signed: boolean
}

export interface ConsistencyReport {
  v: 1
  command: 'audit consistency'
  ok: boolean
  origin: string | null
  member: string | null
  trustAnchor: { kid: string; source: 'given' | 'export' }
  /** the smaller and the larger checkpoint (whatever order they were given in) */
  older: CheckpointSummary | null
  newer: CheckpointSummary | null
  method: 'export' | 'proof' | 'equal-size' | 'none'
  /** true when the consistency proof verified (or equal sizes had equal roots) */
  consistent: boolean
  /** the proof used, base64: re-checkable by anyone holding the two checkpoints */
  proof: string[]
  findings: AuditFinding[]
  counts: { errors: number; warnings: number; infos: number }
}

const b64 = (u: Uint8Array): string => Buffer.from(u).toString('base64')

/** @throws VN_ERR_AUDIT_INPUT_INVALID (no trust anchor), VN_ERR_AUDIT_EXPORT_INVALID, VN_ERR_KEY_FILE */
export async function auditConsistency(a: CheckpointInput, b: CheckpointInput, opts: ConsistencyOptions = {}): Promise<ConsistencyReport> {
  const findings = new Findings()
  const exp: LoadedExport | undefined = opts.exportDir === undefined ? undefined : await readExport(opts.exportDir)
  if (opts.rootKey === undefined && exp === undefined) throw new VnError('VN_ERR_AUDIT_INPUT_INVALID', 'rootKey: a trust anchor is needed when no export is given')
  const anchor = await resolveRootKey(opts.rootKey ?? (exp as LoadedExport).rootPath)
  const source = opts.rootKey === undefined ? 'export' : 'given'

  // Step 1: both parse, one log.
  const parse = (c: CheckpointInput): Checkpoint | undefined => {
    try {
      return parseCheckpoint(parseNote(c.note).text)
    } catch (e) {
      findings.add('AUDIT_CHECKPOINT_INVALID', `${c.file}: ${isVnError(e) ? (e.detail ?? e.code) : 'malformed'}`)
      return undefined
    }
  }
  const ca = parse(a)
  const cb = parse(b)
  let origin: string | null = ca?.origin ?? cb?.origin ?? null
  if (ca !== undefined && cb !== undefined && ca.origin !== cb.origin) {
    findings.add('AUDIT_CHECKPOINT_INVALID', `${a.file} and ${b.file} are checkpoints of two different logs`)
    origin = null
  }
  const who = origin === null ? undefined : parseOrigin(origin)
  if (origin !== null && who === undefined) findings.add('AUDIT_CHECKPOINT_INVALID', 'origin is not <member>.<federation>.verinode/log')

  // Step 2: signatures under the member's log keys from the manifests.
  const history = keyHistoryOf([...(exp?.manifests ?? []), ...(opts.manifests ?? [])], anchor, findings)
  const fedName = history.manifests.at(-1)?.name
  if (who !== undefined && fedName !== undefined && who.federation !== fedName) {
    findings.add('AUDIT_CHECKPOINT_INVALID', `origin names federation ${who.federation}, the manifests are of ${fedName}`)
  }
  if (exp !== undefined && who !== undefined && exp.member !== who.member) {
    findings.add('AUDIT_CHECKPOINT_INVALID', `the export is of ${exp.member}, the checkpoints of ${who.member}`)
  }
  const verifiers = who === undefined ? [] : logKeyVerifiers(history, who.member, logOrigin(who.federation, who.member))
  const signed = (c: CheckpointInput, cp: Checkpoint | undefined): boolean => {
    if (cp === undefined || who === undefined) return false
    try {
      openNote(c.note, verifiers)
      return true
    } catch (e) {
      findings.add('AUDIT_CHECKPOINT_SIGNATURE', `${c.file}: ${isVnError(e) ? (e.detail ?? e.code) : 'does not verify'} (log keys of ${who.member} in the manifests: ${verifiers.length})`)
      return false
    }
  }
  const sa = signed(a, ca)
  const sb = signed(b, cb)

  // Step 3: the smaller is a prefix of the larger.
  const summary = (c: CheckpointInput, cp: Checkpoint | undefined, s: boolean): CheckpointSummary | null =>
    cp === undefined ? null : { file: c.file, size: cp.size, rootHash: b64(cp.rootHash), signed: s }
  let older = { c: a, cp: ca, s: sa }
  let newer = { c: b, cp: cb, s: sb }
  if (ca !== undefined && cb !== undefined && ca.size > cb.size) [older, newer] = [newer, older]
  let method: ConsistencyReport['method'] = 'none'
  let consistent = false
  let proof: Uint8Array[] = []
  const o = older.cp
  const n = newer.cp
  if (o !== undefined && n !== undefined && origin !== null) {
    if (o.size === n.size) {
      method = 'equal-size'
      consistent = hashEquals(o.rootHash, n.rootHash)
      if (!consistent) findings.add('AUDIT_INCONSISTENT', `${older.c.file} and ${newer.c.file} sign two different roots for the same ${o.size} leaves`)
    } else if (o.size === 0) {
      // Every tree extends the empty one; only its root must be the empty root.
      method = 'equal-size'
      consistent = hashEquals(o.rootHash, emptyRoot())
      if (!consistent) findings.add('AUDIT_INCONSISTENT', `${older.c.file}: size 0 with a root other than the empty tree's`)
    } else {
      if (exp !== undefined) {
        method = 'export'
        const tree = new LeafTree(exp.leaves)
        if (tree.size < n.size) {
          findings.add('AUDIT_CHECKPOINT_BEYOND_LOG', `${newer.c.file}: signed for ${n.size} leaves, the export holds ${tree.size}; use an export at least that large`)
        } else if (!hashEquals(tree.root(n.size), n.rootHash)) {
          findings.add('AUDIT_ROOT_MISMATCH', `the export's first ${n.size} leaves do not recompute the root ${newer.c.file} signs: it is not an export of that history`)
        } else {
          proof = tree.consistencyProof(o.size, n.size)
          try {
            verifyConsistency(o.size, n.size, proof, o.rootHash, n.rootHash)
            consistent = true
          } catch {
            findings.add(
              'AUDIT_INCONSISTENT',
              `the first ${o.size} leaves of the history ${newer.c.file} signs do not have the root ${older.c.file} signs: two histories of one log`,
            )
          }
        }
      }
      if (opts.proof !== undefined) {
        if (method === 'none') method = 'proof'
        try {
          verifyConsistency(o.size, n.size, opts.proof, o.rootHash, n.rootHash)
          consistent = method === 'proof' ? true : consistent
          if (method === 'proof') proof = [...opts.proof]
        } catch (e) {
          findings.add('AUDIT_CONSISTENCY_PROOF_INVALID', `proof ${o.size} → ${n.size}: ${isVnError(e) ? (e.detail ?? e.code) : 'does not verify'}`)
          if (method === 'proof') consistent = false
        }
      }
      if (method === 'none') throw new VnError('VN_ERR_AUDIT_INPUT_INVALID', 'proof: give an export of the log or a consistency proof')
    }
  }

  return {
    v: 1,
    command: 'audit consistency',
    ok: findings.ok && consistent && older.s && newer.s,
    origin,
    member: who?.member ?? null,
    trustAnchor: { kid: rootKeyId(anchor), source },
    older: summary(older.c, older.cp, older.s),
    newer: summary(newer.c, newer.cp, newer.s),
    method,
    consistent,
    proof: proof.map(b64),
    findings: findings.list,
    counts: findings.counts(),
  }
}

/**
 * A consistency proof file: the JSON `GET /v1/log/proof/consistency` answers (`{ first, second,
 * proof: [base64] }`) or a bare array of base64 hashes. @throws VN_ERR_AUDIT_INPUT_INVALID
 */
export function parseProofFile(text: string, sizes?: { first: number; second: number }): Uint8Array[] {
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch {
    throw new VnError('VN_ERR_AUDIT_INPUT_INVALID', 'proof: not JSON')
  }
  const obj = Array.isArray(v) ? { proof: v } : (v as { first?: unknown; second?: unknown; proof?: unknown } | null)
  if (obj === null || typeof obj !== 'object' || !Array.isArray(obj.proof)) throw new VnError('VN_ERR_AUDIT_INPUT_INVALID', 'proof: expected { first, second, proof: [base64] } or an array')
  if (sizes !== undefined && 'first' in obj && (obj.first !== sizes.first || obj.second !== sizes.second)) {
    throw new VnError('VN_ERR_AUDIT_INPUT_INVALID', `proof: is for sizes ${String(obj.first)} → ${String(obj.second)}, not ${sizes.first} → ${sizes.second}`)
  }
  return obj.proof.map((p, i) => {
    if (typeof p !== 'string' || !HASH_BASE64_RE.test(p)) throw new VnError('VN_ERR_AUDIT_INPUT_INVALID', `proof[${i}]: not base64 of a 32-byte hash`)
    return new Uint8Array(Buffer.from(p, 'base64'))
  })
}
