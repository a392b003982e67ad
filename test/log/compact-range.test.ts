/**
 * The compact range (src/log/compact-range.ts) against the RFC 9162 vectors of transparency-dev/merkle
 * (test/vectors/rfc9162-merkle: the reference tree's roots), against merkle.ts's reference
 * recursion for random sizes and splits, and against tampering.
 */
import t from 'tap'
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { CompactRange, emptyRoot, leafHash, nodeHash, rangeNodes, rootFromLeafHashes } from '../../src/log/compact-range.js'
import { inclusionProof, splitPoint, verifyInclusion } from '../../src/log/merkle.js'
import { VnError } from '../../src/errors.js'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64')
const fromHex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'))

// The reference tree of transparency-dev/merkle's testdata (RFC 6962 / 9162 leaves).
const LEAVES = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'].map(fromHex)

/** RFC 9162 §2.1.1 MTH by its recursive definition: the reference the range must agree with. */
function mth(hashes: readonly Uint8Array[]): Uint8Array {
  if (hashes.length === 0) return emptyRoot()
  if (hashes.length === 1) return hashes[0] as Uint8Array
  const k = splitPoint(hashes.length)
  return nodeHash(mth(hashes.slice(0, k)), mth(hashes.slice(k)))
}

function rangeOf(hashes: readonly Uint8Array[], begin = 0): CompactRange {
  const r = CompactRange.empty(begin)
  for (const h of hashes) r.append(h)
  return r
}

const VECTOR_DIRS = [fileURLToPath(new URL('../vectors/rfc9162-merkle/', import.meta.url))]
function vectorFiles(sub: string): string[] {
  const dir = VECTOR_DIRS.map((d) => join(d, sub)).find((d) => existsSync(d))
  if (dir === undefined) return []
  const walk = (d: string): string[] => readdirSync(d).flatMap((f) => {
    const p = join(d, f)
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.json') ? [p] : []
  })
  return walk(dir)
}

t.test('RFC 9162 vectors: every valid root of the reference tree is a compact range root', async (t) => {
  const lh = LEAVES.map(leafHash)
  const roots = new Map<number, string>()
  for (let n = 0; n <= lh.length; n++) roots.set(n, b64(rangeOf(lh.slice(0, n)).root()))
  let checked = 0
  for (const f of [...vectorFiles('inclusion'), ...vectorFiles('consistency')]) {
    if (!/\/(inclusion|consistency)\/[0-4]\//.test(f)) continue // the numbered folders use the reference tree
    const v = JSON.parse(readFileSync(f, 'utf8')) as { treeSize?: number; root?: string; size1?: number; size2?: number; root1?: string; root2?: string; wantErr: boolean }
    if (v.wantErr) continue
    const pairs: [number | undefined, string | undefined][] = [[v.treeSize, v.root], [v.size1, v.root1], [v.size2, v.root2]]
    for (const [size, root] of pairs) {
      if (size === undefined || root === undefined || size > lh.length) continue
      t.equal(roots.get(size), root, `${f.slice(f.indexOf('rfc9162'))}: root of ${size}`)
      checked++
    }
  }
  t.ok(checked >= 12, `vectors checked (${checked})`)
})

t.test('random sizes: same root as the RFC recursion and merkle.ts; nodes are the compact range', async (t) => {
  let seed = 7
  const rand = (m: number): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648
    return seed % m
  }
  const hashes = Array.from({ length: 1100 }, (_, i) => leafHash(Buffer.from(`leaf ${i}`)))
  const problems: string[] = []
  const sizes = [0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 1023, 1024, 1025, ...Array.from({ length: 40 }, () => rand(1100))]
  for (const n of sizes) {
    const r = rangeOf(hashes.slice(0, n))
    const want = hex(mth(hashes.slice(0, n)))
    if (hex(r.root()) !== want) problems.push(`root ${n}`)
    if (hex(rootFromLeafHashes(hashes.slice(0, n))) !== want) problems.push(`rootFromLeafHashes ${n}`)
    const ids = rangeNodes(0, n)
    if (r.nodes.length !== ids.length || ids.some((id, k) => hex(r.nodes[k] as Uint8Array) !== hex(mth(hashes.slice(id.index * 2 ** id.level, (id.index + 1) * 2 ** id.level))))) problems.push(`nodes ${n}`)
    if (n > 0) {
      // a proof from merkle.ts over the same leaves verifies against the range's root
      const i = rand(n)
      const proof = await inclusionProof(i, n, (need) => need.map((id) => mth(hashes.slice(id.index * 2 ** id.level, (id.index + 1) * 2 ** id.level))))
      try {
        verifyInclusion(i, n, hashes[i] as Uint8Array, proof, r.root())
      } catch {
        problems.push(`inclusion ${i} of ${n}`)
      }
    }
  }
  t.same(problems, [])
})

t.test('merge, fromHashes, clone and the subtree visitor', async (t) => {
  const hashes = Array.from({ length: 300 }, (_, i) => leafHash(Buffer.from(`m ${i}`)))
  const problems: string[] = []
  for (const [a, b] of [[0, 0], [0, 1], [1, 2], [3, 4], [5, 13], [8, 16], [100, 300], [0, 300], [37, 200], [64, 300], [299, 300]] as const) {
    const left = rangeOf(hashes.slice(0, a))
    left.merge(rangeOf(hashes.slice(a, b), a))
    if (left.end !== b || hex(left.root()) !== hex(mth(hashes.slice(0, b)))) problems.push(`merge [0,${a}) + [${a},${b})`)
    const mid = rangeOf(hashes.slice(a, b), a)
    const again = CompactRange.fromHashes(a, b, mid.nodes)
    again.append(hashes[b] ?? leafHash(Buffer.from('x')))
    const direct = rangeOf([...hashes.slice(a, b), hashes[b] ?? leafHash(Buffer.from('x'))], a)
    if (hex(again.root()) !== hex(direct.root())) problems.push(`fromHashes [${a},${b})`)
  }
  t.same(problems, [])

  // The visitor reports every perfect subtree of level ≥ 1 once, as log-writer stores them.
  const seen = new Map<string, string>()
  const r = CompactRange.empty()
  for (const h of hashes.slice(0, 37)) r.append(h, (level, index, hash) => seen.set(`${level}/${index}`, hex(hash)))
  const want = new Map<string, string>()
  for (let level = 1; 2 ** level <= 37; level++) {
    for (let index = 0; (index + 1) * 2 ** level <= 37; index++) want.set(`${level}/${index}`, hex(mth(hashes.slice(index * 2 ** level, (index + 1) * 2 ** level))))
  }
  t.same(Object.fromEntries(seen), Object.fromEntries(want))

  const c = r.clone()
  c.append(hashes[37] as Uint8Array)
  t.equal(r.end, 37, 'a clone does not move the original')
  t.equal(hex(c.root()), hex(mth(hashes.slice(0, 38))))

  const code = (fn: () => unknown): string | undefined => {
    try {
      fn()
      return undefined
    } catch (e) {
      return e instanceof VnError ? e.code : 'other'
    }
  }
  t.equal(code(() => rangeOf(hashes.slice(0, 3)).merge(rangeOf(hashes.slice(4, 6), 4))), 'VN_ERR_LOG_PROOF', 'ranges must touch')
  t.equal(code(() => CompactRange.fromHashes(0, 5, [hashes[0] as Uint8Array])), 'VN_ERR_LOG_PROOF', 'hash count checked')
  t.equal(code(() => CompactRange.empty(-1)), 'VN_ERR_LOG_PROOF')
})

t.test('tampering: any changed, dropped, added or swapped leaf changes the root', async (t) => {
  const hashes = Array.from({ length: 77 }, (_, i) => leafHash(Buffer.from(`t ${i}`)))
  const good = hex(rangeOf(hashes).root())
  const flipped = hashes.map((h) => new Uint8Array(h))
  ;(flipped[40] as Uint8Array)[0] = ((flipped[40] as Uint8Array)[0] as number) ^ 1
  const swapped = [...hashes]
  ;[swapped[3], swapped[4]] = [swapped[4] as Uint8Array, swapped[3] as Uint8Array]
  const variants: [string, Uint8Array[]][] = [
    ['flipped bit', flipped],
    ['dropped leaf', [...hashes.slice(0, 10), ...hashes.slice(11)]],
    ['added leaf', [...hashes, leafHash(Buffer.from('extra'))]],
    ['swapped leaves', swapped],
    ['truncated', hashes.slice(0, 76)],
  ]
  for (const [name, hs] of variants) t.not(hex(rangeOf(hs).root()), good, name)
  // A leaf is hashed with its 0x00 prefix: a node hash cannot pass for a leaf (second preimage).
  const two = rangeOf([leafHash(Buffer.from('a')), leafHash(Buffer.from('b'))]).root()
  t.not(hex(rangeOf([leafHash(Buffer.concat([Buffer.from('a'), Buffer.from('b')]))]).root()), hex(two))
  t.not(hex(leafHash(Buffer.concat([leafHash(Buffer.from('a')), leafHash(Buffer.from('b'))]))), hex(two))
})
