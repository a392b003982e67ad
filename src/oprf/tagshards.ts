/**
 * Sharded tag sets (docs/PROTOCOL.md "oprf mode", "Sharded tag sets"): the epoch's tags split into
 * 2^b shards by a public hash of the subject's key fields, every shard committed to by one Merkle
 * root (RFC 9162 hashing, src/log/merkle.ts) in a small signed epoch header, so that one private
 * check needs one round trip and one shard (~10^4 tags) instead of the whole set.
 *
 * ## Shard hash (`shardHash`)
 * The first 4 bytes (big-endian) of SHA-256 (SM3 under the `sm` profile) of (u16 17 ‖ "verinode-shard-v1" ‖ oprfInput(service, 1,
 * key field values)), the key field values canonicalized and in the order of the OPRF input (field
 * names sorted by code unit). A subject's shard is the top b bits: `shardOfHash`. Labels (status,
 * tier) are not hashed, so every menu entry of one subject lies in the same shard; for `match` the
 * non-key fields (the name) are not hashed either.
 *
 * ## Epoch header ("shard root"), format v1, big-endian
 * ```
 * off  len  field
 *   0    4  magic "VNSR"
 *   4    1  format version = 1
 *   5    1  OPRF mode (1 = VOPRF)
 *   6    1  tag length L (4..8)
 *   7    1  service id length S (1..128)
 *   8    4  epoch
 *  12    4  tag count (all shards)
 *  16    1  shard bits b (0..24)
 *  17    3  zero
 *  20   32  epoch public key pkS
 *  52   32  Merkle tree head over the 2^b shard leaves
 *  84    S  service id
 * ```
 * Signed like the full set: Ed25519 (SM2 under `sm`) over "verinode/tagshards/v1\0" ‖ SHA-256(header) (SM3 under `sm`).
 *
 * ## Shard leaf
 * Leaf i = u32 i ‖ the shard's tags, strictly ascending; its hash is RFC 9162's leaf hash
 * SHA-256(0x00 ‖ leaf) (SM3 under `sm`), the tree the RFC 9162 tree over leaves 0 .. 2^b - 1. A shard with its
 * inclusion proof is checked against the signed head: a provider that shows two consumers
 * different shards must sign two heads for one epoch.
 *
 * ## File `<service>@<epoch>.vnsh`
 * header ‖ u32 offsets[2^b + 1] (shard s holds tags offsets[s] .. offsets[s+1]) ‖ packed tags.
 * The provider keeps the offsets and the tree's node hashes in memory (64 bytes per shard) and
 * reads a shard's tags from the file when asked.
 */
import { hash, type KeyObject } from 'node:crypto'
import { open, type FileHandle } from 'node:fs/promises'
import { VnError } from '../errors.js'
import { activeProfile, digest, signBytes, verifyBytes } from '../crypto/profile.js'
import { deserializeElement, MODE_VOPRF } from '../crypto/oprf.js'
import { HASH_SIZE, hashEquals, inclusionProof, leafHash, nodeHash, verifyInclusion, type NodeId } from '../log/merkle.js'
import { checkService, firstUnordered, oprfInput, sortedHas, tagOf, type ShardedTags, type TagSetHeader } from './tagset.js'

const ROOT_MAGIC = 'VNSR'
const ROOT_VERSION = 1
const ROOT_FIXED_BYTES = 84
const MAX_BITS = 24
const SHARD_DOMAIN = 'verinode-shard-v1'
const ROOT_SIGNATURE_CONTEXT = 'verinode/tagshards/v1\0'
const enc = new TextEncoder()

/** What precedes the key fields' OPRF input in a shard hash (module comment). */
const SHARD_PREFIX = ((d: Uint8Array) => Uint8Array.of(0, d.length, ...d))(enc.encode(SHARD_DOMAIN))

/**
 * The 32-bit shard hash of a record or subject from its canonical key field values (module comment),
 * with the profile's digest (a worker thread is told it: `hashAlg`).
 */
export function shardHash(service: string, keyValues: readonly string[], hashAlg: 'sha256' | 'sm3' = activeProfile().hashAlg): number {
  return shardHashOfKeyInput(oprfInput(service, 1, keyValues), hashAlg)
}

/** `shardHash` from the key fields' OPRF input, `oprfInput(service, 1, keyValues)`, already encoded. */
export function shardHashOfKeyInput(keyInput: Uint8Array, hashAlg: 'sha256' | 'sm3' = activeProfile().hashAlg): number {
  const pre = new Uint8Array(SHARD_PREFIX.length + keyInput.length)
  pre.set(SHARD_PREFIX)
  pre.set(keyInput, SHARD_PREFIX.length)
  return hash(hashAlg, pre, 'buffer').readUInt32BE(0)
}

function u32(n: number): Uint8Array {
  return Uint8Array.of((n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff)
}

/** Leaf hash of shard `index` holding `tags` (module comment). */
export function shardLeafHash(index: number, tags: Uint8Array): Uint8Array {
  const leaf = new Uint8Array(4 + tags.length)
  leaf.set(u32(index), 0)
  leaf.set(tags, 4)
  return leafHash(leaf)
}

export interface ShardRootFields extends TagSetHeader {
  count: number
  bits: number
  root: Uint8Array
}

export function encodeShardRoot(h: ShardRootFields): Uint8Array {
  const svc = enc.encode(checkService(h.service))
  const pk = deserializeElement(h.publicKey, 'publicKey')
  if (!Number.isInteger(h.bits) || h.bits < 0 || h.bits > MAX_BITS) throw new VnError('VN_ERR_OPRF_INPUT', 'bits: out of range')
  if (h.root.length !== HASH_SIZE) throw new VnError('VN_ERR_OPRF_INPUT', 'root: expected 32 bytes')
  const out = new Uint8Array(ROOT_FIXED_BYTES + svc.length)
  out.set(enc.encode(ROOT_MAGIC), 0)
  out[4] = ROOT_VERSION
  out[5] = MODE_VOPRF
  out[6] = h.tagLength
  out[7] = svc.length
  const dv = new DataView(out.buffer)
  dv.setUint32(8, h.epoch)
  dv.setUint32(12, h.count)
  out[16] = h.bits
  out.set(pk, 20)
  out.set(h.root, 52)
  out.set(svc, ROOT_FIXED_BYTES)
  return out
}

/** A parsed epoch header. `parse` is strict: any deviation is VN_ERR_OPRF_TAGSET. */
export class ShardRoot implements ShardRootFields {
  private constructor(
    readonly service: string,
    readonly epoch: number,
    readonly tagLength: number,
    readonly count: number,
    readonly bits: number,
    readonly publicKey: Uint8Array,
    readonly root: Uint8Array,
    /** the encoded header (what is signed) */
    readonly bytes: Uint8Array,
  ) {}

  /** the number of shards, 2^bits */
  get shards(): number {
    return 2 ** this.bits
  }

  static parse(bytes: Uint8Array): ShardRoot {
    const bad = (what: string): VnError => new VnError('VN_ERR_OPRF_TAGSET', `shard root: ${what}`)
    if (!(bytes instanceof Uint8Array) || bytes.length < ROOT_FIXED_BYTES) throw bad('shorter than its header')
    if (Buffer.from(bytes.buffer, bytes.byteOffset, 4).toString('latin1') !== ROOT_MAGIC) throw bad('bad magic')
    if (bytes[4] !== ROOT_VERSION) throw bad(`unsupported format version ${bytes[4]}`)
    if (bytes[5] !== MODE_VOPRF) throw bad(`unsupported OPRF mode ${bytes[5]}`)
    const tagLength = bytes[6] as number
    if (tagLength < 4 || tagLength > 8) throw bad(`tag length ${tagLength} out of range`)
    const svcLen = bytes[7] as number
    if (svcLen < 1 || svcLen > 128 || bytes.length !== ROOT_FIXED_BYTES + svcLen) throw bad('length does not match the service id length')
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    const bits = bytes[16] as number
    if (bits > MAX_BITS || bytes[17] !== 0 || bytes[18] !== 0 || bytes[19] !== 0) throw bad('shard bits out of range')
    let publicKey: Uint8Array
    try {
      publicKey = deserializeElement(bytes.slice(20, 52), 'publicKey')
    } catch {
      throw bad('public key is not a valid element')
    }
    const service = checkService(Buffer.from(bytes.subarray(ROOT_FIXED_BYTES)).toString('latin1'), 'VN_ERR_OPRF_TAGSET')
    return new ShardRoot(service, dv.getUint32(8), tagLength, dv.getUint32(12), bits, publicKey, bytes.slice(52, 84), bytes.slice())
  }
}

function signedMessage(bytes: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(ROOT_SIGNATURE_CONTEXT, 'latin1'), digest(bytes)])
}

/** Ed25519 (SM2/SM3 with an SM2 key) detached signature (64 bytes) over the epoch header. */
export function signShardRoot(bytes: Uint8Array, privateKey: KeyObject): Uint8Array {
  return new Uint8Array(signBytes(signedMessage(bytes), privateKey))
}

/** Verify the signature, then parse strictly. Throws VN_ERR_OPRF_TAGSET on any failure. */
export function verifyShardRoot(bytes: Uint8Array, signature: Uint8Array, publicKey: KeyObject): ShardRoot {
  if (!(signature instanceof Uint8Array) || signature.length !== 64) throw new VnError('VN_ERR_OPRF_TAGSET', 'signature: expected 64 bytes')
  if (!verifyBytes(signedMessage(bytes), publicKey, signature)) throw new VnError('VN_ERR_OPRF_TAGSET', 'shard root signature: does not verify')
  return ShardRoot.parse(bytes)
}

/** One shard's verified tags, probed like a whole set. */
export class ShardTags {
  constructor(
    readonly epoch: number,
    readonly shard: number,
    readonly tagLength: number,
    private readonly tags: Uint8Array,
    /** the tree head it was verified against (a set rebuilt within its epoch has another) */
    readonly root?: Uint8Array,
  ) {}

  get count(): number {
    return this.tags.length / this.tagLength
  }

  hasOutput(oprfOutput: Uint8Array): boolean {
    return sortedHas(this.tags, this.tagLength, tagOf(oprfOutput, this.tagLength))
  }
}

/**
 * Checks a shard sent by the provider against its signed epoch header: the tags are whole and
 * strictly ascending, and leaf (shard, tags) is in the tree with the signed head.
 * @throws VN_ERR_OPRF_SHARD_PROOF when it is not the shard the header commits to
 */
export function verifyShard(root: ShardRoot, shard: number, tags: Uint8Array, path: readonly Uint8Array[]): ShardTags {
  const bad = (what: string): VnError => new VnError('VN_ERR_OPRF_SHARD_PROOF', `shard ${shard}: ${what}`)
  if (!Number.isInteger(shard) || shard < 0 || shard >= root.shards) throw bad('not a shard of this epoch')
  if (tags.length % root.tagLength !== 0) throw bad('tags are not a multiple of the tag length')
  if (firstUnordered(tags, root.tagLength) >= 0) throw bad('tags are not strictly ascending')
  try {
    verifyInclusion(shard, root.shards, shardLeafHash(shard, tags), path, root.root)
  } catch {
    throw bad('not the shard the signed epoch header commits to')
  }
  return new ShardTags(root.epoch, shard, root.tagLength, tags, root.root)
}

/** The whole file for a build's sharded tags: header (with the tree head), offsets, tags (in memory; src/oprf/tagset-build.ts writes the same bytes bounded). */
export function encodeShardFile(h: TagSetHeader, s: ShardedTags): { file: Uint8Array; header: Uint8Array } {
  const shards = 2 ** s.bits
  const leaves: Uint8Array[] = []
  for (let i = 0; i < shards; i++) leaves.push(shardLeafHash(i, s.packed.subarray((s.offsets[i] as number) * h.tagLength, (s.offsets[i + 1] as number) * h.tagLength)))
  const header = encodeShardRoot({ ...h, count: s.packed.length / h.tagLength, bits: s.bits, root: shardTreeHead(leaves) })
  const offsets = new Uint8Array(4 * (shards + 1))
  const dv = new DataView(offsets.buffer)
  for (let i = 0; i <= shards; i++) dv.setUint32(4 * i, s.offsets[i] as number)
  const file = new Uint8Array(header.length + offsets.length + s.packed.length)
  file.set(header, 0)
  file.set(offsets, header.length)
  file.set(s.packed, header.length + offsets.length)
  return { file, header }
}

/** The head of the tree over the shard leaf hashes (`shardLeafHash`, in shard order). */
export const shardTreeHead = (leaves: Uint8Array[]): Uint8Array => treeLevels(leaves).at(-1)?.[0] as Uint8Array

/** Every level of a perfect tree, leaves first, the head last. */
function treeLevels(leaves: Uint8Array[]): Uint8Array[][] {
  const levels = [leaves]
  for (let cur = leaves; cur.length > 1;) {
    const next: Uint8Array[] = []
    for (let i = 0; i < cur.length; i += 2) next.push(nodeHash(cur[i] as Uint8Array, cur[i + 1] as Uint8Array))
    levels.push(next)
    cur = next
  }
  return levels
}

/** A shard read from the provider's file, with its inclusion proof. */
export interface ServedShard {
  shard: number
  tags: Uint8Array
  path: Uint8Array[]
}

/**
 * The provider's view of a `.vnsh` file: the header, offsets and tree in memory, the tags on disk
 * (one positional read per shard asked for).
 */
export class ShardFile {
  private constructor(
    readonly root: ShardRoot,
    private readonly fh: FileHandle,
    private readonly offsets: Uint32Array,
    private readonly dataStart: number,
    private readonly levels: Uint8Array[][],
  ) {}

  /**
   * Opens a file and checks it is whole and its tree matches its header, and that it is for this
   * service, epoch and key; null when it is not (absent, damaged, another key).
   */
  static async open(path: string, expect: { service: string; epoch: number; publicKey: Uint8Array }): Promise<ShardFile | null> {
    const fh = await open(path, 'r').catch(() => null)
    if (fh === null) return null
    try {
      const fixed = Buffer.alloc(ROOT_FIXED_BYTES)
      await fh.read(fixed, 0, ROOT_FIXED_BYTES, 0)
      const head = Buffer.alloc(ROOT_FIXED_BYTES + (fixed[7] as number))
      await fh.read(head, 0, head.length, 0)
      const root = ShardRoot.parse(new Uint8Array(head))
      if (root.service !== expect.service || root.epoch !== expect.epoch || !hashEquals(root.publicKey, expect.publicKey)) throw new Error('another set')
      const shards = root.shards
      const ob = Buffer.alloc(4 * (shards + 1))
      await fh.read(ob, 0, ob.length, head.length)
      const offsets = new Uint32Array(shards + 1)
      for (let i = 0; i <= shards; i++) offsets[i] = ob.readUInt32BE(4 * i)
      const dataStart = head.length + ob.length
      const { size } = await fh.stat()
      if (offsets[0] !== 0 || offsets[shards] !== root.count || size !== dataStart + root.count * root.tagLength) throw new Error('length')
      const leaves: Uint8Array[] = []
      for (let i = 0; i < shards; i++) {
        if ((offsets[i + 1] as number) < (offsets[i] as number)) throw new Error('offsets')
        leaves.push(shardLeafHash(i, await readTags(fh, dataStart, offsets, i, root.tagLength)))
      }
      const levels = treeLevels(leaves)
      if (!hashEquals(levels.at(-1)?.[0] as Uint8Array, root.root)) throw new Error('tree head')
      return new ShardFile(root, fh, offsets, dataStart, levels)
    } catch {
      await fh.close()
      return null
    }
  }

  /** Shard `shard`'s tags from disk, with its inclusion proof from the tree in memory. */
  async read(shard: number): Promise<ServedShard> {
    const tags = await readTags(this.fh, this.dataStart, this.offsets, shard, this.root.tagLength)
    const fetch = (ids: readonly NodeId[]): Uint8Array[] => ids.map((id) => this.levels[id.level]?.[id.index] as Uint8Array)
    return { shard, tags, path: await inclusionProof(shard, this.root.shards, fetch) }
  }

  async close(): Promise<void> {
    await this.fh.close()
  }
}

async function readTags(fh: FileHandle, dataStart: number, offsets: Uint32Array, shard: number, tagLength: number): Promise<Uint8Array> {
  const from = (offsets[shard] as number) * tagLength
  const len = (offsets[shard + 1] as number) * tagLength - from
  const b = new Uint8Array(len)
  if (len > 0) {
    const { bytesRead } = await fh.read(b, 0, len, dataStart + from)
    if (bytesRead !== len) throw new VnError('VN_ERR_OPRF_TAGSET', 'shard file: short read')
  }
  return b
}

/**
 * The consumer's bounded cache of verified shards, keyed by (provider, service, epoch, shard):
 * least recently used first out, and a newer epoch of a service drops the older one's shards.
 */
export class ShardCache {
  private readonly entries = new Map<string, ShardTags>()
  private readonly epochs = new Map<string, number>()
  constructor(readonly maxShards = 64) {}

  get size(): number {
    return this.entries.size
  }

  /** Forget every shard (tests; a consumer that no longer trusts what it holds). */
  clear(): void {
    this.entries.clear()
    this.epochs.clear()
  }

  /** A look without touching the order (tests, metrics). */
  peek(provider: string, service: string, epoch: number, shard: number): ShardTags | undefined {
    return this.entries.get(`${provider}|${service}|${epoch}|${shard}`)
  }

  /** A shard verified for this epoch (and, when given, under this tree head: a rebuilt set's are stale). */
  get(provider: string, service: string, epoch: number, shard: number, root?: Uint8Array): ShardTags | undefined {
    const k = `${provider}|${service}|${epoch}|${shard}`
    const hit = this.entries.get(k)
    if (hit !== undefined && root !== undefined && (hit.root === undefined || !hashEquals(hit.root, root))) {
      this.entries.delete(k)
      return undefined
    }
    if (hit !== undefined) {
      this.entries.delete(k)
      this.entries.set(k, hit) // most recently used last
    }
    return hit
  }

  put(provider: string, service: string, tags: ShardTags): void {
    const ps = `${provider}|${service}`
    const known = this.epochs.get(ps)
    if (known !== undefined && known > tags.epoch) return
    if (known !== undefined && known < tags.epoch) {
      for (const k of [...this.entries.keys()]) if (k.startsWith(`${ps}|${known}|`)) this.entries.delete(k)
    }
    this.epochs.set(ps, tags.epoch)
    this.entries.set(`${ps}|${tags.epoch}|${tags.shard}`, tags)
    while (this.entries.size > this.maxShards) {
      const oldest = this.entries.keys().next().value as string
      this.entries.delete(oldest)
    }
  }
}
