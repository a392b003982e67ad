/**
 * A compact range (RFC 9162 Merkle tree, like transparency-dev/merkle's `compact.Range`): the
 * hashes of the perfect subtrees that exactly cover the leaves [begin, end), left to right, so a
 * log's right border ("frontier") is the compact range [0, size). Appending a leaf hash costs one
 * node hash per perfect subtree it completes; the root is a fold of at most log2(n) hashes.
 *
 * This file is the project's one home of RFC 9162 hashing (leaf and node hash) and of the one fold:
 * the log writer can keep its frontier in a `CompactRange` (`fromHashes` from its stored border,
 * `append` with a visitor that stores each completed subtree, `clone` to roll back), the auditor
 * recomputes checkpoint roots with one while it streams an export, its proof tree (audit/tree.ts)
 * is built from the subtrees one reports, and `rootFromLeafHashes` is one over a whole list.
 * merkle.ts plans and verifies proofs on top of it. No dependency but node:crypto, errors and the
 * crypto profile: the hash is the profile's (SHA-256, or SM3 in place of it under `sm`; both 32 bytes).
 */
import { createHash, hash } from 'node:crypto'
import { activeProfile } from '../crypto/profile.js'
import { VnError } from '../errors.js'

/** Length of a SHA-256 or SM3 hash, the hashes RFC 9162 logs here use. */
export const HASH_SIZE = 32

const emptyRoots = new Map<string, Uint8Array>()

/** The profile's hash of the empty string: the root of the empty tree (RFC 9162 §2.1.1, MTH({})). */
export function emptyRoot(): Uint8Array {
  const alg = activeProfile().hashAlg
  let r = emptyRoots.get(alg)
  if (r === undefined) {
    r = new Uint8Array(createHash(alg).digest())
    emptyRoots.set(alg, r)
  }
  return r
}

const LEAF_PREFIX = new Uint8Array([0x00])
// One-shot crypto.hash over one buffer costs a fraction of a createHash object per hash (about a
// microsecond against several here), which matters at one leaf hash and one node hash per leaf.
const nodeInput = Buffer.alloc(1 + 2 * HASH_SIZE, 0x01)

/** 0x00 ‖ leaf is laid out here for leaves up to this size (no Buffer per leaf). */
const LEAF_SCRATCH = 64 * 1024
const leafInput = Buffer.alloc(1 + LEAF_SCRATCH)

/** RFC 9162 §2.1.1: MTH({d(0)}) = SHA-256(0x00 ‖ d(0)) (SM3 under `sm`). */
export function leafHash(leaf: Uint8Array): Uint8Array {
  const alg = activeProfile().hashAlg
  if (leaf.length > LEAF_SCRATCH) return plain(hash(alg, Buffer.concat([LEAF_PREFIX, leaf]), 'buffer'))
  leafInput.set(leaf, 1)
  return plain(hash(alg, leafInput.subarray(0, 1 + leaf.length), 'buffer'))
}

/** RFC 9162 §2.1.1: SHA-256(0x01 ‖ MTH(D[0:k]) ‖ MTH(D[k:n])) (SM3 under `sm`). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  const alg = activeProfile().hashAlg
  if (left.length !== HASH_SIZE || right.length !== HASH_SIZE) {
    return plain(createHash(alg).update(new Uint8Array([0x01])).update(left).update(right).digest())
  }
  nodeInput.set(left, 1)
  nodeInput.set(right, 1 + HASH_SIZE)
  return plain(hash(alg, nodeInput, 'buffer'))
}

/** A plain Uint8Array copy (not a Buffer, nor a view into a shared pool), as callers compare and keep them. */
const plain = (b: Buffer): Uint8Array => new Uint8Array(b)

/** A perfect subtree: 2^level leaves starting at leaf `index · 2^level`. Level 0 is a leaf hash. */
export interface NodeId {
  readonly level: number
  readonly index: number
}

/**
 * The perfect subtrees of the range [start, end), left to right: its compact range. For [0, n)
 * these are the set bits of n (largest first), the log's right border.
 */
export function rangeNodes(start: number, end: number): NodeId[] {
  const out: NodeId[] = []
  let s = start
  while (s < end) {
    // Largest 2^level with s a multiple of it and s + 2^level ≤ end.
    let size = 1
    let level = 0
    while (s % (size * 2) === 0 && s + size * 2 <= end) {
      size *= 2
      level++
    }
    out.push({ level, index: s / size })
    s += size
  }
  return out
}

/** Folds perfect-subtree hashes, left to right, into their MTH (right to left, §2.1.1). */
export function foldRange(hashes: readonly Uint8Array[]): Uint8Array {
  if (hashes.length === 0) return emptyRoot()
  let h = hashes[hashes.length - 1] as Uint8Array
  for (let i = hashes.length - 2; i >= 0; i--) h = nodeHash(hashes[i] as Uint8Array, h)
  return h
}

/** Called for every perfect subtree of level ≥ 1 an append completes: 2^level leaves from index·2^level. */
export type NodeVisitor = (level: number, index: number, hash: Uint8Array) => void

/** MTH of a whole list of leaf hashes (RFC 9162 §2.1.1). */
export function rootFromLeafHashes(hashes: readonly Uint8Array[]): Uint8Array {
  const r = CompactRange.empty()
  for (const h of hashes) r.append(h)
  return r.root()
}

export class CompactRange {
  private constructor(
    private readonly first: number,
    private last: number,
    /** hashes[k] is the k-th perfect subtree of rangeNodes(begin, end), with its level in levels[k] */
    private readonly hashes: Uint8Array[],
    private readonly levels: number[],
  ) {}

  /** The empty range at `begin` (0: a new log). */
  static empty(begin = 0): CompactRange {
    assertIndex('begin', begin)
    return new CompactRange(begin, begin, [], [])
  }

  /**
   * The range [begin, end) from the hashes of its perfect subtrees, in `rangeNodes(begin, end)`
   * order (e.g. a log store's stored right border). @throws VN_ERR_LOG_PROOF on a count mismatch
   */
  static fromHashes(begin: number, end: number, hashes: readonly Uint8Array[]): CompactRange {
    assertIndex('begin', begin)
    assertIndex('end', end)
    if (end < begin) throw new VnError('VN_ERR_LOG_PROOF', 'end: must not be less than begin')
    const ids = rangeNodes(begin, end)
    if (ids.length !== hashes.length) throw new VnError('VN_ERR_LOG_PROOF', `compact range [${begin}, ${end}) has ${ids.length} hashes, got ${hashes.length}`)
    return new CompactRange(begin, end, [...hashes], ids.map((id) => id.level))
  }

  get begin(): number {
    return this.first
  }

  get end(): number {
    return this.last
  }

  /** The perfect-subtree hashes, left to right (in `rangeNodes(begin, end)` order). */
  get nodes(): readonly Uint8Array[] {
    return this.hashes
  }

  /** Appends the leaf at index `end` by its RFC 9162 leaf hash; `visit` sees each subtree completed. */
  append(leafHash: Uint8Array, visit?: NodeVisitor): void {
    this.push(0, leafHash, visit)
  }

  /**
   * Appends `other`, which must start where this range ends ([a, b) + [b, c) = [a, c)).
   * @throws VN_ERR_LOG_PROOF when the ranges do not touch
   */
  merge(other: CompactRange, visit?: NodeVisitor): void {
    if (other.first !== this.last) throw new VnError('VN_ERR_LOG_PROOF', `cannot merge [${other.first}, ${other.last}) after [${this.first}, ${this.last})`)
    const hashes = [...other.hashes]
    const levels = [...other.levels]
    hashes.forEach((h, k) => this.push(levels[k] as number, h, visit))
  }

  /**
   * RFC 9162 §2.1.1 MTH of the range's leaves: the fold of its subtrees right to left. For [0, n)
   * this is the log's root at size n (emptyRoot() for n = 0); for another range it is the hash the
   * range would have as the (aligned) subtree it covers.
   */
  root(): Uint8Array {
    return foldRange(this.hashes)
  }

  /** An independent copy (e.g. to roll back to if a transaction fails). */
  clone(): CompactRange {
    return new CompactRange(this.first, this.last, [...this.hashes], [...this.levels])
  }

  /**
   * Adds the perfect subtree of 2^level leaves starting at `end`. While it is a right child whose
   * left sibling lies inside the range, that sibling is the last subtree held: hash them together.
   */
  private push(level: number, hash: Uint8Array, visit: NodeVisitor | undefined): void {
    const size = 2 ** level
    if (this.last % size !== 0) throw new VnError('VN_ERR_LOG_PROOF', `a subtree of level ${level} cannot start at ${this.last}`)
    let index = this.last / size
    let h = hash
    let l = level
    this.last += size
    while (index % 2 === 1 && (index - 1) * 2 ** l >= this.first) {
      const left = this.hashes.pop() as Uint8Array
      this.levels.pop()
      h = nodeHash(left, h)
      index = (index - 1) / 2
      l++
      visit?.(l, index, h)
    }
    this.hashes.push(h)
    this.levels.push(l)
  }
}

function assertIndex(name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new VnError('VN_ERR_LOG_PROOF', `${name}: must be a non-negative safe integer`)
}
