/**
 * Tree and checkpoints (verify.ts step 2): each checkpoint is a C2SP signed note for this member's
 * log origin, signed by a log key the manifests list for the member; the leaves, hashed into one
 * compact range as they stream past (src/log/compact-range.ts), recompute its RFC 9162 root at its
 * size. Leaves after the latest checkpoint are reported as not yet checkpointed (info).
 */
import { isVnError } from '../../errors.js'
import { openNote, parseCheckpoint, parseNote } from '../../log/checkpoint.js'
import { CompactRange, emptyRoot, leafHash } from '../../log/compact-range.js'
import { EXPORT_FILES } from '../../log/export-layout.js'
import { hashEquals } from '../../log/merkle.js'
import { logKeyVerifiers } from '../export-reader.js'
import type { AuditContext } from './context.js'
import { STAGE } from './context.js'

export interface CheckpointSummary {
  size: number
  rootHash: string
  rootMatches: boolean
}

export class TreeCheck {
  private readonly signed: { file: string; size: number; rootHash: Uint8Array }[] = []
  private readonly wanted = new Set<number>()
  private readonly roots = new Map<number, Uint8Array>()
  private readonly range = CompactRange.empty()

  /** Verifies the notes' signatures now (before the leaves); their roots are checked in `finish`. */
  constructor(private readonly ctx: AuditContext, notes: readonly { file: string; note: string }[]) {
    const { findings, origin, member } = ctx
    const verifiers = logKeyVerifiers(ctx.history, member, origin)
    for (const { file, note } of notes) {
      let cp
      try {
        cp = parseCheckpoint(parseNote(note).text)
      } catch (e) {
        findings.add('AUDIT_CHECKPOINT_INVALID', `${file}: ${isVnError(e) ? (e.detail ?? e.code) : 'malformed'}`)
        continue
      }
      if (cp.origin !== origin) {
        findings.add('AUDIT_CHECKPOINT_INVALID', `${file}: origin is not ${origin}`)
        continue
      }
      try {
        openNote(note, verifiers)
      } catch (e) {
        findings.add('AUDIT_CHECKPOINT_SIGNATURE', `${file}: ${isVnError(e) ? (e.detail ?? e.title) : 'does not verify'} (log keys of ${member} in the manifests: ${verifiers.length})`)
        continue
      }
      this.signed.push({ file, size: cp.size, rootHash: cp.rootHash })
    }
    this.signed.sort((a, b) => a.size - b.size)
    for (const c of this.signed) this.wanted.add(c.size)
    if (this.wanted.has(0)) this.roots.set(0, emptyRoot())
  }

  /** The next leaf, in index order. */
  leaf(bytes: Uint8Array): void {
    this.range.append(leafHash(bytes))
    if (this.wanted.has(this.range.end)) this.roots.set(this.range.end, this.range.root())
  }

  /**
   * The leaves [first, first + n) at once, hashed by a worker (precheck.ts): its compact range is
   * merged whole, or leaf by leaf when a checkpoint's size falls inside it.
   */
  chunk(first: number, n: number, nodes: readonly Uint8Array[], hashes: Uint8Array): void {
    let inside = false
    for (const w of this.wanted) if (w > first && w < first + n) inside = true
    if (inside) {
      for (let k = 0; k < n; k++) {
        this.range.append(hashes.subarray(32 * k, 32 * k + 32))
        if (this.wanted.has(this.range.end)) this.roots.set(this.range.end, this.range.root())
      }
      return
    }
    this.range.merge(CompactRange.fromHashes(first, first + n, nodes))
    if (this.wanted.has(this.range.end)) this.roots.set(this.range.end, this.range.root())
  }

  /** After the last leaf: each signed root against the recomputed one; the largest checkpoint. */
  finish(metaSize: number | undefined): CheckpointSummary | null {
    const { findings, member } = this.ctx
    const leaves = this.range.end
    if (metaSize !== undefined && metaSize !== leaves) {
      findings.during(STAGE.meta, () => findings.add('AUDIT_EXPORT_META_MISMATCH', `${EXPORT_FILES.meta}: size ${metaSize}, but ${EXPORT_FILES.entries} holds ${leaves} leaves`))
    }
    return findings.during(STAGE.tree, () => {
      let best: CheckpointSummary | null = null
      for (const c of this.signed) {
        const b64 = Buffer.from(c.rootHash).toString('base64')
        if (c.size > leaves) {
          findings.add('AUDIT_CHECKPOINT_BEYOND_LOG', `${c.file}: signed for ${c.size} leaves, the export holds ${leaves}`)
          best = { size: c.size, rootHash: b64, rootMatches: false }
          continue
        }
        const ok = hashEquals(this.roots.get(c.size) as Uint8Array, c.rootHash)
        if (!ok) findings.add('AUDIT_ROOT_MISMATCH', `${c.file}: the first ${c.size} leaves do not recompute the signed root`)
        best = { size: c.size, rootHash: b64, rootMatches: ok }
      }
      if (best === null) findings.add('AUDIT_NO_CHECKPOINT', `no checkpoint signed by a log key of ${member} (${leaves} leaves uncovered)`)
      else if (best.size < leaves) {
        findings.add('AUDIT_NOT_CHECKPOINTED', `leaves ${best.size}..${leaves - 1} (${leaves - best.size}) are after the latest checkpoint`)
      }
      return best
    })
  }
}
