/**
 * An in-memory RFC 9162 Merkle tree over an export's leaves, for the offline auditor: every
 * perfect-subtree hash (the same "node table" the log store keeps, src/log/log-writer.ts), so
 * historical roots and inclusion and consistency proofs come from the same planning code as the
 * node's (src/log/merkle.ts), never from a second implementation.
 *
 * Memory: about two hashes per leaf (64 MiB for a million leaves).
 */
import { VnError } from '../errors.js'
import { CompactRange, foldRange, leafHash, rangeNodes, type NodeId } from '../log/compact-range.js'
import { assembleProof, planConsistencyProof, planInclusionProof } from '../log/merkle.js'

export class LeafTree {
  /** levels[l][i]: hash of the perfect subtree of 2^l leaves starting at leaf i·2^l */
  private readonly levels: Uint8Array[][]

  constructor(leaves: readonly Uint8Array[]) {
    const base = leaves.map((l) => leafHash(l))
    const levels: Uint8Array[][] = [base]
    // The compact range reports each perfect subtree as it completes, in index order per level.
    const range = CompactRange.empty()
    for (const h of base) range.append(h, (level, index, hash) => ((levels[level] ??= [])[index] = hash))
    this.levels = levels
  }

  get size(): number {
    return (this.levels[0] as Uint8Array[]).length
  }

  leafHash(index: number): Uint8Array {
    return this.node({ level: 0, index })
  }

  private node(id: NodeId): Uint8Array {
    const h = this.levels[id.level]?.[id.index]
    if (h === undefined) throw new VnError('VN_ERR_LOG_PROOF', `node (${id.level}, ${id.index}) is beyond the ${this.size} leaves`)
    return h
  }

  /** MTH of the first `size` leaves (RFC 9162 §2.1.1). */
  root(size: number): Uint8Array {
    if (!Number.isSafeInteger(size) || size < 0 || size > this.size) throw new VnError('VN_ERR_LOG_PROOF', `size ${size}: the tree has ${this.size} leaves`)
    return foldRange(rangeNodes(0, size).map((id) => this.node(id)))
  }

  /** RFC 9162 §2.1.3.1 inclusion proof of leaf `index` in the tree of `size` leaves. */
  inclusionProof(index: number, size: number): Uint8Array[] {
    const plan = planInclusionProof(index, size)
    return assembleProof(plan, plan.nodes.map((id) => this.node(id)))
  }

  /** RFC 9162 §2.1.4.1 consistency proof from `first` to `second` leaves (0 < first ≤ second). */
  consistencyProof(first: number, second: number): Uint8Array[] {
    const plan = planConsistencyProof(first, second)
    return assembleProof(plan, plan.nodes.map((id) => this.node(id)))
  }
}
