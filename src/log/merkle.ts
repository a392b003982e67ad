/**
 * Merkle tree hashing and proofs for the transparency log, per RFC 9162 §2.1.
 *
 * - Leaf hash `SHA-256(0x00 ‖ leaf)`, interior node hash `SHA-256(0x01 ‖ left ‖ right)` (§2.1.1).
 * - Inclusion proofs: generation (§2.1.3.1) and verification (§2.1.3.2).
 * - Consistency proofs: generation (§2.1.4.1) and verification (§2.1.4.2).
 *
 * Verification functions are pure (node:crypto only, no storage) so the offline auditor can import
 * this file alone. They throw `VN_ERR_LOG_PROOF_INVALID` naming the failed check.
 *
 * Generation never needs the whole tree. Every hash a proof carries is the root of a range of
 * leaves, and every range the RFC recursion produces is "aligned" (it starts at a multiple of the
 * power of two that covers it), so it splits into at most log2(n) *perfect* subtrees: complete
 * binary trees of 2^level leaves starting at leaf `index · 2^level` (a `NodeId`). A store that
 * keeps the hash of every perfect subtree (about 2n hashes for n leaves, each written once and never
 * changed) can therefore serve any proof with O(log n) point reads: `planInclusionProof` /
 * `planConsistencyProof` list the `NodeId`s to fetch, `assembleProof` folds the fetched hashes.
 *
 * Sizes and indexes are JavaScript numbers up to 2^53 - 1; bit arithmetic is done with division,
 * not the 32-bit bitwise operators.
 */
import { timingSafeEqual } from 'node:crypto'
import { VnError } from '../errors.js'
import { HASH_SIZE, foldRange, nodeHash, rangeNodes, type NodeId } from './compact-range.js'

// The RFC 9162 hashing and the compact range live in compact-range.ts; re-exported for the
// planning and proof code's callers.
export { emptyRoot, HASH_SIZE, foldRange, leafHash, nodeHash, rangeNodes, rootFromLeafHashes, type NodeId } from './compact-range.js'

/** The hashes a proof needs, in proof order, each the root of an aligned range of leaves. */
export interface ProofPlan {
  /** One entry per proof hash: the perfect subtrees whose fold is that hash (left to right). */
  readonly parts: readonly (readonly NodeId[])[]
  /** Every NodeId of `parts`, flattened, in the order `assembleProof` expects the hashes. */
  readonly nodes: readonly NodeId[]
}

/** Fetches perfect-subtree hashes; a store answers from its node table with point reads. */
export type NodeFetcher = (ids: readonly NodeId[]) => Uint8Array[] | Promise<Uint8Array[]>

function assertSize(name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new VnError('VN_ERR_LOG_PROOF', `${name}: must be a non-negative safe integer`)
}

/** Largest power of two strictly less than n (n ≥ 2): the split point k of RFC 9162 §2.1.1. */
export function splitPoint(n: number): number {
  let k = 1
  while (k * 2 < n) k *= 2
  return k
}

const isPowerOfTwo = (n: number): boolean => n > 0 && splitPoint(n + 1) === n

function planFromRanges(ranges: readonly [number, number][]): ProofPlan {
  const parts = ranges.map(([s, e]) => rangeNodes(s, e))
  return { parts, nodes: parts.flat() }
}

/**
 * RFC 9162 §2.1.3.1 PATH(m, D[n]) as a list of leaf ranges, bottom-up. Walks the recursion top
 * down (each level contributes the sibling of the half holding m) and reverses.
 */
function inclusionRanges(index: number, size: number): [number, number][] {
  assertSize('index', index)
  assertSize('treeSize', size)
  if (index >= size) throw new VnError('VN_ERR_LOG_PROOF', 'index: must be less than treeSize')
  const out: [number, number][] = []
  let lo = 0
  let hi = size
  while (hi - lo > 1) {
    const k = splitPoint(hi - lo)
    if (index < lo + k) {
      out.push([lo + k, hi])
      hi = lo + k
    } else {
      out.push([lo, lo + k])
      lo += k
    }
  }
  return out.reverse()
}

/**
 * RFC 9162 §2.1.4.1 PROOF(m, D[n]) = SUBPROOF(m, D[n], true) as leaf ranges, for 0 < m < n.
 * (m = n gives the empty proof; m = 0 has no meaningful proof.)
 */
function consistencyRanges(first: number, second: number): [number, number][] {
  assertSize('first', first)
  assertSize('second', second)
  if (first === 0 || first > second) throw new VnError('VN_ERR_LOG_PROOF', 'first: must satisfy 0 < first ≤ second')
  const out: [number, number][] = []
  if (first === second) return out
  let lo = 0
  let hi = second
  let b = true
  for (;;) {
    if (first === hi) {
      // SUBPROOF(m, D[m], b): nothing if the old root is the known one, else MTH(D[lo:m]).
      if (!b) out.push([lo, hi])
      break
    }
    const k = splitPoint(hi - lo)
    if (first <= lo + k) {
      out.push([lo + k, hi])
      hi = lo + k
    } else {
      out.push([lo, lo + k])
      lo += k
      b = false
    }
  }
  return out.reverse()
}

/** Which perfect subtrees an inclusion proof for `index` in a tree of `size` needs. */
export function planInclusionProof(index: number, size: number): ProofPlan {
  return planFromRanges(inclusionRanges(index, size))
}

/** Which perfect subtrees a consistency proof from `first` to `second` needs. */
export function planConsistencyProof(first: number, second: number): ProofPlan {
  return planFromRanges(consistencyRanges(first, second))
}

/** Which perfect subtrees the root of the first `size` leaves needs (its compact range). */
export function planRoot(size: number): NodeId[] {
  assertSize('size', size)
  return rangeNodes(0, size)
}

/** Turn fetched hashes (in `plan.nodes` order) into the proof. */
export function assembleProof(plan: ProofPlan, hashes: readonly Uint8Array[]): Uint8Array[] {
  if (hashes.length !== plan.nodes.length) throw new VnError('VN_ERR_INTERNAL', 'assembleProof: hash count does not match plan')
  const out: Uint8Array[] = []
  let i = 0
  for (const part of plan.parts) {
    out.push(foldRange(hashes.slice(i, i + part.length)))
    i += part.length
  }
  return out
}

/** Inclusion proof from any hash source (a store, or an in-memory tree in tests). */
export async function inclusionProof(index: number, size: number, fetch: NodeFetcher): Promise<Uint8Array[]> {
  const plan = planInclusionProof(index, size)
  return assembleProof(plan, await fetch(plan.nodes))
}

/** Consistency proof from any hash source. */
export async function consistencyProof(first: number, second: number, fetch: NodeFetcher): Promise<Uint8Array[]> {
  const plan = planConsistencyProof(first, second)
  return assembleProof(plan, await fetch(plan.nodes))
}

// ---------------------------------------------------------------------------------------------
// Verification (pure)

/** Constant-time equality that tolerates different lengths (public data, but cheap and uniform). */
export function hashEquals(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b)
}

function fail(detail: string): never {
  throw new VnError('VN_ERR_LOG_PROOF_INVALID', detail)
}

function checkProofHashes(proof: readonly Uint8Array[]): void {
  proof.forEach((p, i) => {
    if (!(p instanceof Uint8Array) || p.length !== HASH_SIZE) fail(`proof[${i}]: must be ${HASH_SIZE} bytes`)
  })
}

const half = (x: number): number => Math.floor(x / 2)
const odd = (x: number): boolean => x % 2 === 1

/**
 * RFC 9162 §2.1.3.2: recompute the root from a leaf hash and its inclusion proof.
 * Throws `VN_ERR_LOG_PROOF_INVALID` if the proof is malformed for (index, size).
 */
export function rootFromInclusionProof(index: number, size: number, leafHashValue: Uint8Array, proof: readonly Uint8Array[]): Uint8Array {
  if (!Number.isSafeInteger(index) || index < 0) fail('leafIndex: must be a non-negative safe integer')
  if (!Number.isSafeInteger(size) || size < 0) fail('treeSize: must be a non-negative safe integer')
  // Step 1: leaf_index must be below tree_size.
  if (index >= size) fail('leafIndex: must be less than treeSize')
  if (!(leafHashValue instanceof Uint8Array) || leafHashValue.length !== HASH_SIZE) fail(`leafHash: must be ${HASH_SIZE} bytes`)
  checkProofHashes(proof)
  // Step 2-3.
  let fn = index
  let sn = size - 1
  let r = leafHashValue
  // Step 4.
  for (const p of proof) {
    if (sn === 0) fail('proof: longer than the path to the root') // 4.a
    if (odd(fn) || fn === sn) {
      // 4.b: p is a left sibling.
      r = nodeHash(p, r)
      // 4.b.ii: skip levels where this node is the rightmost and has no sibling.
      if (!odd(fn)) {
        while (!odd(fn) && fn !== 0) {
          fn = half(fn)
          sn = half(sn)
        }
      }
    } else {
      r = nodeHash(r, p) // p is a right sibling
    }
    // 4.c
    fn = half(fn)
    sn = half(sn)
  }
  // Step 5 (first half): the path must reach the root exactly.
  if (sn !== 0) fail('proof: shorter than the path to the root')
  return r
}

/** RFC 9162 §2.1.3.2: throws `VN_ERR_LOG_PROOF_INVALID` unless the leaf is in the tree with `root`. */
export function verifyInclusion(index: number, size: number, leafHashValue: Uint8Array, proof: readonly Uint8Array[], root: Uint8Array): void {
  const r = rootFromInclusionProof(index, size, leafHashValue, proof)
  if (!hashEquals(r, root)) fail('root: does not match the root computed from the proof')
}

/**
 * RFC 9162 §2.1.4.2: throws `VN_ERR_LOG_PROOF_INVALID` unless the tree of size `second` with
 * `secondRoot` extends the tree of size `first` with `firstRoot`.
 *
 * Edge cases follow transparency-dev/merkle (and its test vectors): equal sizes need an empty
 * proof and equal roots; a proof from the empty tree is meaningless and rejected.
 */
export function verifyConsistency(first: number, second: number, proof: readonly Uint8Array[], firstRoot: Uint8Array, secondRoot: Uint8Array): void {
  if (!Number.isSafeInteger(first) || first < 0) fail('size1: must be a non-negative safe integer')
  if (!Number.isSafeInteger(second) || second < 0) fail('size2: must be a non-negative safe integer')
  if (second < first) fail('size2: must not be less than size1')
  if (first === 0) fail('size1: a consistency proof from the empty tree is meaningless')
  if (first === second) {
    if (proof.length !== 0) fail('proof: must be empty when size1 equals size2')
    if (!hashEquals(firstRoot, secondRoot)) fail('root2: differs from root1 at equal sizes')
    return
  }
  // Step 1: an empty path fails.
  if (proof.length === 0) fail('proof: empty')
  checkProofHashes(proof)
  if (firstRoot.length !== HASH_SIZE) fail(`root1: must be ${HASH_SIZE} bytes`)
  // Step 2: if first is an exact power of 2, the old root is the first path element.
  const path = isPowerOfTwo(first) ? [firstRoot, ...proof] : [...proof]
  // Step 3.
  let fn = first - 1
  let sn = second - 1
  // Step 4.
  while (odd(fn)) {
    fn = half(fn)
    sn = half(sn)
  }
  // Step 5.
  let fr = path[0] as Uint8Array
  let sr = path[0] as Uint8Array
  // Step 6.
  for (let i = 1; i < path.length; i++) {
    const c = path[i] as Uint8Array
    if (sn === 0) fail('proof: longer than expected') // 6.a
    if (odd(fn) || fn === sn) {
      // 6.b
      fr = nodeHash(c, fr)
      sr = nodeHash(c, sr)
      if (!odd(fn)) {
        while (!odd(fn) && fn !== 0) {
          fn = half(fn)
          sn = half(sn)
        }
      }
    } else {
      sr = nodeHash(sr, c)
    }
    // 6.c
    fn = half(fn)
    sn = half(sn)
  }
  // Step 7.
  if (sn !== 0) fail('proof: shorter than expected')
  if (!hashEquals(fr, firstRoot)) fail('root1: does not match the root computed from the proof')
  if (!hashEquals(sr, secondRoot)) fail('root2: does not match the root computed from the proof')
}
