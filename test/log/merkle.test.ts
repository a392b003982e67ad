import t from 'tap'
import { readFileSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  emptyRoot, leafHash, nodeHash, rootFromLeafHashes, inclusionProof, consistencyProof, verifyInclusion,
  verifyConsistency, rootFromInclusionProof, planRoot, foldRange, type NodeId,
} from '../../src/log/merkle.js'
import { VnError } from '../../src/errors.js'

const VECTORS = fileURLToPath(new URL('../vectors/rfc9162-merkle/', import.meta.url))
const b64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'))
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const fromHex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'))

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f)
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.json') ? [p] : []
  })
}

const flip = (b: Uint8Array, i: number, mask: number): void => {
  b[i] = (b[i] as number) ^ mask
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn()
    return undefined
  } catch (e) {
    return e instanceof VnError ? e.code : 'not a VnError'
  }
}

// Leaves and roots of transparency-dev/merkle proof/verify_test.go (the RFC 6962 reference tree).
const LEAVES = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'].map(fromHex)
const ROOTS = [
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
]

t.test('known-answer hashes: empty tree, leaves, roots of the reference tree', async (t) => {
  t.equal(hex(emptyRoot()), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')
  t.equal(hex(rootFromLeafHashes([])), hex(emptyRoot()))
  t.equal(hex(leafHash(new Uint8Array())), ROOTS[0])
  const lh = LEAVES.map(leafHash)
  t.equal(hex(nodeHash(lh[0] as Uint8Array, lh[1] as Uint8Array)), ROOTS[1])
  for (let n = 1; n <= 8; n++) t.equal(hex(rootFromLeafHashes(lh.slice(0, n))), ROOTS[n - 1], `root of size ${n}`)
})

t.test('inclusion vectors (transparency-dev/merkle testdata), including wantErr ones', async (t) => {
  const list = files(join(VECTORS, 'inclusion'))
  t.ok(list.length > 80, 'vectors present')
  let good = 0
  for (const f of list) {
    const v = JSON.parse(readFileSync(f, 'utf8')) as { leafIdx: number; treeSize: number; root: string; leafHash: string; proof: string[] | null; wantErr: boolean }
    const code = codeOf(() => verifyInclusion(v.leafIdx, v.treeSize, b64(v.leafHash), (v.proof ?? []).map(b64), b64(v.root)))
    if (v.wantErr) t.equal(code, 'VN_ERR_LOG_PROOF_INVALID', f.slice(VECTORS.length))
    else {
      t.equal(code, undefined, f.slice(VECTORS.length))
      good++
    }
  }
  t.ok(good >= 5, 'some happy paths')
})

t.test('consistency vectors (transparency-dev/merkle testdata), including wantErr ones', async (t) => {
  const list = files(join(VECTORS, 'consistency'))
  t.ok(list.length > 80, 'vectors present')
  for (const f of list) {
    const v = JSON.parse(readFileSync(f, 'utf8')) as { size1: number; size2: number; root1: string; root2: string; proof: string[] | null; wantErr: boolean }
    const code = codeOf(() => verifyConsistency(v.size1, v.size2, (v.proof ?? []).map(b64), b64(v.root1), b64(v.root2)))
    t.equal(code, v.wantErr ? 'VN_ERR_LOG_PROOF_INVALID' : undefined, f.slice(VECTORS.length))
  }
})

/** In-memory perfect-subtree table, as the store keeps it. */
function memoryTree(n: number): { leaves: Uint8Array[]; fetch: (ids: readonly NodeId[]) => Uint8Array[] } {
  const leaves = Array.from({ length: n }, (_, i) => leafHash(new TextEncoder().encode(`leaf ${i}`)))
  const nodes = new Map<string, Uint8Array>()
  leaves.forEach((h, i) => nodes.set(`0:${i}`, h))
  for (let level = 1; 2 ** level <= n; level++) {
    for (let i = 0; (i + 1) * 2 ** level <= n; i++) {
      nodes.set(`${level}:${i}`, nodeHash(nodes.get(`${level - 1}:${2 * i}`) as Uint8Array, nodes.get(`${level - 1}:${2 * i + 1}`) as Uint8Array))
    }
  }
  const fetch = (ids: readonly NodeId[]): Uint8Array[] =>
    ids.map((id) => {
      const h = nodes.get(`${id.level}:${id.index}`)
      if (h === undefined) throw new Error(`node ${id.level}:${id.index} not stored for size ${n}`)
      return h
    })
  return { leaves, fetch }
}

// Straight transcription of RFC 9162 §2.1.3.1 and §2.1.4.1 over the leaf hashes, as a reference.
function refPath(m: number, d: Uint8Array[]): Uint8Array[] {
  if (d.length <= 1) return []
  let k = 1
  while (k * 2 < d.length) k *= 2
  return m < k ? [...refPath(m, d.slice(0, k)), rootFromLeafHashes(d.slice(k))] : [...refPath(m - k, d.slice(k)), rootFromLeafHashes(d.slice(0, k))]
}
function refSubproof(m: number, d: Uint8Array[], b: boolean): Uint8Array[] {
  if (m === d.length) return b ? [] : [rootFromLeafHashes(d)]
  let k = 1
  while (k * 2 < d.length) k *= 2
  return m <= k ? [...refSubproof(m, d.slice(0, k), b), rootFromLeafHashes(d.slice(k))] : [...refSubproof(m - k, d.slice(k), false), rootFromLeafHashes(d.slice(0, k))]
}

t.test('generated proofs match the RFC recursion and verify, all sizes 1..64, all index pairs', async (t) => {
  const { leaves, fetch } = memoryTree(64)
  const roots = [emptyRoot(), ...Array.from({ length: 64 }, (_, i) => rootFromLeafHashes(leaves.slice(0, i + 1)))]
  const problems: string[] = []
  let inclusionCount = 0
  let consistencyCount = 0
  for (let n = 1; n <= 64; n++) {
    const root = roots[n] as Uint8Array
    if (hex(foldRange(fetch(planRoot(n)))) !== hex(root)) problems.push(`planRoot ${n}`)
    for (let i = 0; i < n; i++) {
      const proof = await inclusionProof(i, n, fetch)
      const ref = refPath(i, leaves.slice(0, n))
      if (proof.map(hex).join() !== ref.map(hex).join()) problems.push(`inclusion ${i}/${n} differs from RFC recursion`)
      if (codeOf(() => verifyInclusion(i, n, leaves[i] as Uint8Array, proof, root)) !== undefined) problems.push(`inclusion ${i}/${n} rejected`)
      // Tamper: flip one bit of each proof element in turn; and claim a neighbour's leaf.
      for (let j = 0; j < proof.length; j++) {
        const bad = proof.map((p) => new Uint8Array(p))
        flip(bad[j] as Uint8Array, 0, 1)
        if (codeOf(() => verifyInclusion(i, n, leaves[i] as Uint8Array, bad, root)) !== 'VN_ERR_LOG_PROOF_INVALID') problems.push(`tampered inclusion ${i}/${n}[${j}] accepted`)
      }
      if (n > 1 && codeOf(() => verifyInclusion(i, n, leaves[(i + 1) % n] as Uint8Array, proof, root)) === undefined) problems.push(`wrong leaf ${i}/${n} accepted`)
      inclusionCount++
    }
    for (let m = 1; m <= n; m++) {
      const proof = await consistencyProof(m, n, fetch)
      const ref = m === n ? [] : refSubproof(m, leaves.slice(0, n), true)
      if (proof.map(hex).join() !== ref.map(hex).join()) problems.push(`consistency ${m}->${n} differs from RFC recursion`)
      if (codeOf(() => verifyConsistency(m, n, proof, roots[m] as Uint8Array, root)) !== undefined) problems.push(`consistency ${m}->${n} rejected`)
      for (let j = 0; j < proof.length; j++) {
        const bad = proof.map((p) => new Uint8Array(p))
        flip(bad[j] as Uint8Array, 31, 0x80)
        if (codeOf(() => verifyConsistency(m, n, bad, roots[m] as Uint8Array, root)) !== 'VN_ERR_LOG_PROOF_INVALID') problems.push(`tampered consistency ${m}->${n}[${j}] accepted`)
      }
      if (m < n && codeOf(() => verifyConsistency(m, n, proof, roots[m - 1] as Uint8Array, root)) === undefined) problems.push(`wrong old root ${m}->${n} accepted`)
      consistencyCount++
    }
  }
  t.same(problems, [])
  t.equal(inclusionCount, 2080)
  t.equal(consistencyCount, 2080)
})

t.test('rootFromInclusionProof returns the recomputed root', async (t) => {
  const { leaves, fetch } = memoryTree(13)
  const proof = await inclusionProof(5, 13, fetch)
  t.equal(hex(rootFromInclusionProof(5, 13, leaves[5] as Uint8Array, proof)), hex(rootFromLeafHashes(leaves)))
})

t.test('proof generation rejects out-of-range requests with VN_ERR_LOG_PROOF', async (t) => {
  const { fetch } = memoryTree(8)
  for (const [i, n] of [[8, 8], [0, 0], [-1, 8], [1.5, 8], [0, Number.MAX_SAFE_INTEGER + 1]] as const) {
    await t.rejects(inclusionProof(i, n, fetch), { code: 'VN_ERR_LOG_PROOF' }, `inclusion ${i}/${n}`)
  }
  for (const [m, n] of [[0, 8], [9, 8], [-1, 3]] as const) {
    await t.rejects(consistencyProof(m, n, fetch), { code: 'VN_ERR_LOG_PROOF' }, `consistency ${m}->${n}`)
  }
  t.same(await consistencyProof(8, 8, fetch), [], 'equal sizes give the empty proof')
})

t.test('verification rejects malformed arguments with VN_ERR_LOG_PROOF_INVALID', async (t) => {
  const h = leafHash(new Uint8Array([1]))
  t.equal(codeOf(() => verifyInclusion(0, 1, h, [], h)), undefined)
  t.equal(codeOf(() => verifyInclusion(-1, 1, h, [], h)), 'VN_ERR_LOG_PROOF_INVALID')
  t.equal(codeOf(() => verifyInclusion(0, 1.5, h, [], h)), 'VN_ERR_LOG_PROOF_INVALID')
  t.equal(codeOf(() => verifyInclusion(0, 2, h, [new Uint8Array(31)], h)), 'VN_ERR_LOG_PROOF_INVALID')
  t.equal(codeOf(() => verifyConsistency(1, 2, [new Uint8Array(33)], h, h)), 'VN_ERR_LOG_PROOF_INVALID')
  t.equal(codeOf(() => verifyConsistency(-1, 2, [h], h, h)), 'VN_ERR_LOG_PROOF_INVALID')
  t.equal(codeOf(() => verifyConsistency(3, 2.5, [h], h, h)), 'VN_ERR_LOG_PROOF_INVALID')
})
