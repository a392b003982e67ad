/**
 * Sharded tag sets (src/oprf/tagshards.ts): shard bits and boundaries, the file and its tree, a
 * shard checked against the signed epoch header (a tampered, swapped or foreign shard is caught
 * with VN_ERR_OPRF_SHARD_PROOF), the consumer's bounded shard cache, and the anonymity floor.
 */
import t from 'tap'
import { generateKeyPairSync } from 'node:crypto'
import { open as openFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pino } from 'pino'
import { generateKeyPair } from '../../src/crypto/oprf.js'
import { VnError } from '../../src/errors.js'
import { buildTagSet, oprfInput, shardBitsFor, shardOfHash, TagSet } from '../../src/oprf/tagset.js'
import { evaluatePrefixes } from '../../src/oprf/prefixes.js'
import {
  encodeShardFile,
  encodeShardRoot,
  ShardCache,
  ShardFile,
  shardLeafHash,
  ShardRoot,
  ShardTags,
  signShardRoot,
  verifyShard,
  verifyShardRoot,
} from '../../src/oprf/tagshards.js'
import { checkShardConfig, TagSetPublisher, type OprfProviderService } from '../../src/oprf/tagset-service.js'

type Test = Parameters<Parameters<typeof t.test>[0]>[0]

function throwsCode(t: Test, fn: () => unknown, code: string): void {
  try {
    fn()
    t.fail(`expected ${code}`)
  } catch (e) {
    t.ok(e instanceof VnError, `a VnError (${(e as Error).message})`)
    t.equal((e as VnError).code, code)
  }
}

t.test('shard bits: shards hold at least the target on average; boundaries of the hash space', async (t) => {
  t.equal(shardBitsFor(0, 10_000), 0)
  t.equal(shardBitsFor(19_999, 10_000), 0, 'below twice the target: one shard (the full set)')
  t.equal(shardBitsFor(20_000, 10_000), 1)
  t.equal(shardBitsFor(39_999, 10_000), 1)
  t.equal(shardBitsFor(40_000, 10_000), 2)
  t.equal(shardBitsFor(1e7, 10_000), 9, '10^7 records: 512 shards of ~19,500')
  t.equal(shardBitsFor(1.4e9, 10_000), 17, 'a national register: 2^17 shards')
  t.equal(shardBitsFor(1e12, 1), 24, 'capped at 2^24 shards')
  t.equal(shardOfHash(0xffffffff, 0), 0)
  t.equal(shardOfHash(0, 3), 0)
  t.equal(shardOfHash(0x1fffffff, 3), 0, 'last hash of shard 0')
  t.equal(shardOfHash(0x20000000, 3), 1, 'first hash of shard 1')
  t.equal(shardOfHash(0xdfffffff, 3), 6)
  t.equal(shardOfHash(0xe0000000, 3), 7)
  t.equal(shardOfHash(0xffffffff, 3), 7, 'last hash: last shard')
  t.equal(shardOfHash(0xffffffff, 24), 2 ** 24 - 1)
})

/** A sharded build over `n` records with chosen shard hashes. */
async function sharded(n: number, hashOf: (i: number) => number, shardRecords: number) {
  const key = generateKeyPair()
  const inputs = Array.from({ length: n }, (_, i) => oprfInput('credit.dishonest', 1, [`r${i}`]))
  const shardHashes = Uint32Array.from(inputs, (_, i) => hashOf(i))
  const r = await buildTagSet({ service: 'credit.dishonest', epoch: 9, key, inputs: [{ inputs, shardHashes }], shardRecords, tagLength: 8 })
  if (r.sharded === undefined) throw new Error('no shards')
  return { key, inputs, shardHashes, r, sharded: r.sharded }
}

t.test('build: each record lands in the shard of its hash, at the boundaries too; shards make up the full set', async (t) => {
  // 8 shards (bits 3): records at both edges of every shard's hash range.
  const edges = Array.from({ length: 8 }, (_, s) => [s * 0x20000000, s * 0x20000000 + 0x1fffffff]).flat()
  const n = 80
  const { key, inputs, r, sharded: s } = await sharded(n, (i) => (edges[i % edges.length] as number), 10)
  t.equal(s.bits, 3, '80 records, 10 per shard: 8 shards')
  t.equal(s.offsets.length, 9)
  t.equal(s.offsets[8], r.count, 'every tag in one shard')
  const full = TagSet.parse(r.bytes)
  const prefixes = evaluatePrefixes(key.secretKey, inputs)
  for (let i = 0; i < n; i++) {
    const want = Math.floor((i % edges.length) / 2)
    const tag = prefixes.subarray(i * 8, i * 8 + 8)
    const tags = new ShardTags(9, want, 8, s.packed.subarray((s.offsets[want] as number) * 8, (s.offsets[want + 1] as number) * 8))
    const out = new Uint8Array(64)
    out.set(tag)
    t.ok(tags.hasOutput(out), `record ${i} is in shard ${want}`)
    t.ok(full.hasOutput(out))
  }
  for (let sh = 0; sh < 8; sh++) t.equal((s.offsets[sh + 1] as number) - (s.offsets[sh] as number), 10, `shard ${sh}: 10 tags`)
  // Below twice the target: one shard holding the full set.
  const one = await sharded(30, (i) => i * 0x0fffffff, 20)
  t.equal(one.sharded.bits, 0)
  t.same(one.sharded.packed, TagSet.parse(one.r.bytes).count === 30 ? one.r.bytes.subarray(one.r.bytes.length - 30 * 8) : null, 'the one shard is the full set')
  t.equal(one.sharded.offsets[1], 30)
  await t.rejects(buildTagSet({ service: 'credit.dishonest', epoch: 1, key, inputs: [inputs], shardRecords: 10 }), { code: 'VN_ERR_OPRF_INPUT' }, 'shard hashes required')
})

t.test('file, tree and signed header: shards verify; tampered, swapped and foreign shards are caught', async (t) => {
  const dir = t.testdir({})
  const { key, sharded: s, r } = await sharded(400, (i) => Math.floor(Math.random() * 2 ** 32) >>> 0 || i, 50)
  t.equal(s.bits, 3)
  const { file, header } = encodeShardFile({ service: 'credit.dishonest', epoch: 9, tagLength: r.tagLength, publicKey: key.publicKey }, s)
  const path = join(dir, 'credit.dishonest@9.vnsh')
  await writeFile(path, file)
  t.equal(await ShardFile.open(path, { service: 'credit.dishonest', epoch: 10, publicKey: key.publicKey }), null, 'another epoch: not opened')
  t.equal(await ShardFile.open(path, { service: 'credit.dishonest', epoch: 9, publicKey: generateKeyPair().publicKey }), null, 'another key: not opened')
  const f = await ShardFile.open(path, { service: 'credit.dishonest', epoch: 9, publicKey: key.publicKey })
  if (f === null) throw new Error('not opened')
  t.teardown(() => f.close())
  t.same(f.root.bytes, header)

  const signer = generateKeyPairSync('ed25519')
  const sig = signShardRoot(header, signer.privateKey)
  const root = verifyShardRoot(header, sig, signer.publicKey)
  t.equal(root.bits, 3)
  t.equal(root.shards, 8)
  t.equal(root.count, r.count)
  throwsCode(t, () => verifyShardRoot(header, sig, generateKeyPairSync('ed25519').publicKey), 'VN_ERR_OPRF_TAGSET')
  const tampered = header.slice()
  tampered[60] = (tampered[60] as number) ^ 1
  throwsCode(t, () => verifyShardRoot(tampered, sig, signer.publicKey), 'VN_ERR_OPRF_TAGSET')
  throwsCode(t, () => ShardRoot.parse(header.subarray(0, 80)), 'VN_ERR_OPRF_TAGSET')

  let total = 0
  for (let sh = 0; sh < 8; sh++) {
    const x = await f.read(sh)
    t.equal(x.path.length, 3, 'a path of b hashes')
    total += verifyShard(root, sh, x.tags, x.path).count
  }
  t.equal(total, r.count, 'the shards hold every tag once')

  const a = await f.read(2)
  const b = await f.read(5)
  const flipped = a.tags.slice()
  flipped[3] = (flipped[3] as number) ^ 0x40
  throwsCode(t, () => verifyShard(root, 2, flipped, a.path), 'VN_ERR_OPRF_SHARD_PROOF')
  throwsCode(t, () => verifyShard(root, 2, a.tags.subarray(0, a.tags.length - r.tagLength), a.path), 'VN_ERR_OPRF_SHARD_PROOF')
  throwsCode(t, () => verifyShard(root, 5, a.tags, b.path), 'VN_ERR_OPRF_SHARD_PROOF')
  throwsCode(t, () => verifyShard(root, 2, a.tags, b.path), 'VN_ERR_OPRF_SHARD_PROOF')
  throwsCode(t, () => verifyShard(root, 8, a.tags, a.path), 'VN_ERR_OPRF_SHARD_PROOF')
  // A second header for the same epoch with other tags: its shards do not verify against the first.
  const other = encodeShardRoot({ service: 'credit.dishonest', epoch: 9, tagLength: r.tagLength, publicKey: key.publicKey, count: 1, bits: 3, root: shardLeafHash(0, new Uint8Array(0)) })
  throwsCode(t, () => verifyShard(ShardRoot.parse(other), 2, a.tags, a.path), 'VN_ERR_OPRF_SHARD_PROOF')

  // A damaged file is refused when opened (its tree no longer matches its header).
  const fh = await openFile(path, 'r+')
  await fh.write(Uint8Array.of(0xff, 0xff), 0, 2, file.length - 5)
  await fh.close()
  t.equal(await ShardFile.open(path, { service: 'credit.dishonest', epoch: 9, publicKey: key.publicKey }), null, 'damaged: not opened')
})

t.test('consumer cache: bounded (least recently used out), keyed by epoch, a new epoch drops the old', async (t) => {
  const c = new ShardCache(3)
  const tags = (epoch: number, shard: number): ShardTags => new ShardTags(epoch, shard, 4, new Uint8Array(4))
  c.put('p', 's', tags(1, 0))
  c.put('p', 's', tags(1, 1))
  c.put('p', 's', tags(1, 2))
  t.ok(c.get('p', 's', 1, 0), 'hit; now most recently used')
  c.put('p', 's', tags(1, 3))
  t.equal(c.size, 3, 'bounded')
  t.equal(c.get('p', 's', 1, 1), undefined, 'the least recently used shard was evicted')
  t.ok(c.get('p', 's', 1, 0))
  t.equal(c.get('p', 's', 2, 0), undefined, 'another epoch: a miss')
  c.put('p', 'other', tags(1, 0))
  c.put('p', 's', tags(2, 5))
  t.equal(c.get('p', 's', 1, 0), undefined, 'the new epoch dropped the old one')
  t.ok(c.get('p', 'other', 1, 0), 'other services keep theirs')
  c.put('p', 's', tags(1, 7))
  t.equal(c.get('p', 's', 1, 7), undefined, 'an older epoch is not cached again')
})

t.test('anonymity floor: shards below it are refused with a coded config error', async (t) => {
  const svc = (oprf: OprfProviderService['oprf']): OprfProviderService => ({
    id: 'credit.dishonest', kind: 'membership', modes: ['oprf'], fields: { id: { kind: 'partyId', key: true, required: true } }, enumerate: 'SELECT 1', oprf,
  })
  checkShardConfig(svc(undefined))
  checkShardConfig(svc({ epochHours: 24, shardRecords: 1000 }))
  throwsCode(t, () => checkShardConfig(svc({ epochHours: 24, shardRecords: 999 })), 'VN_ERR_CONFIG_OPRF_ANONYMITY')
  throwsCode(t, () => checkShardConfig(svc({ epochHours: 24, shardRecords: 500, minAnonymitySet: 501 })), 'VN_ERR_CONFIG_OPRF_ANONYMITY')
  checkShardConfig(svc({ epochHours: 24, shardRecords: 50, minAnonymitySet: 50 }))
  const signer = { kid: 'x#k', privateKey: generateKeyPairSync('ed25519').privateKey }
  throwsCode(t, () => new TagSetPublisher({
    services: [svc({ epochHours: 24, shardRecords: 100 })], source: undefined, seed: new Uint8Array(32), signer: () => signer, pool: () => undefined,
    dir: t.testdir({}), logger: pino({ level: 'silent' }),
  }), 'VN_ERR_CONFIG_OPRF_ANONYMITY')
})
