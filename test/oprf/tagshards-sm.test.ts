/**
 * Sharded tag sets under the `sm` crypto profile (src/oprf/tagshards.ts with src/crypto/profile.ts):
 * the shard hash and the shard tree use SM3, and the epoch header is signed with SM2, like the full
 * set and every other digest and signature of an `sm` federation.
 */
import t from 'tap'
import { createHash, generateKeyPairSync } from 'node:crypto'
import { useProfile } from '../../src/crypto/profile.js'
import { generateKeyPair } from '../../src/crypto/oprf.js'
import { generateSm2 } from '../../src/crypto/sm2.js'
import { buildTagSet, oprfInput } from '../../src/oprf/tagset.js'
import { encodeShardFile, ShardRoot, shardHash, shardLeafHash, signShardRoot, verifyShard, verifyShardRoot } from '../../src/oprf/tagshards.js'

t.teardown(() => useProfile('intl'))

t.test('sm: SM3 shard hash and tree, SM2-signed header; shards verify and a tampered one does not', async (t) => {
  const intlHash = shardHash('credit.dishonest', ['r1'])
  useProfile('sm')
  const smHash = shardHash('credit.dishonest', ['r1'])
  const d = new TextEncoder().encode('verinode-shard-v1')
  const input = Buffer.concat([Uint8Array.of(0, d.length), d, oprfInput('credit.dishonest', 1, ['r1'])])
  t.equal(smHash, createHash('sm3').update(input).digest().readUInt32BE(0), 'the shard hash is SM3 under sm')
  t.equal(intlHash, createHash('sha256').update(input).digest().readUInt32BE(0), 'and SHA-256 under intl')
  t.equal(Buffer.from(shardLeafHash(3, Uint8Array.of(1, 2))).toString('hex'), createHash('sm3').update(Uint8Array.of(0, 0, 0, 0, 3, 1, 2)).digest('hex'), 'shard leaves are RFC 9162 leaves hashed with SM3')

  const key = generateKeyPair()
  const n = 200
  const inputs = Array.from({ length: n }, (_, i) => oprfInput('credit.dishonest', 1, [`r${i}`]))
  const shardHashes = Uint32Array.from(inputs, (_, i) => shardHash('credit.dishonest', [`r${i}`]))
  const r = await buildTagSet({ service: 'credit.dishonest', epoch: 4, key, inputs: [{ inputs, shardHashes }], shardRecords: 25, tagLength: 8 })
  if (r.sharded === undefined) throw new Error('no shards')
  const s = r.sharded
  const { header } = encodeShardFile({ service: 'credit.dishonest', epoch: 4, tagLength: r.tagLength, publicKey: key.publicKey }, s)

  const signer = generateSm2()
  const sig = signShardRoot(header, signer.privateKey)
  t.equal(sig.length, 64, 'an SM2 signature, r ‖ s')
  const root = verifyShardRoot(header, sig, signer.publicKey)
  t.equal(root.shards, 2 ** s.bits)
  t.throws(() => verifyShardRoot(header, sig, generateSm2().publicKey), { code: 'VN_ERR_OPRF_TAGSET' }, 'another SM2 key: refused')
  t.throws(() => verifyShardRoot(header, sig, generateKeyPairSync('ed25519').publicKey), { code: 'VN_ERR_OPRF_TAGSET' }, 'an Ed25519 key: refused')

  // Each shard against the SM3 tree head, with its path computed here from SM3 leaf hashes.
  const leaves = Array.from({ length: root.shards }, (_, sh) => shardLeafHash(sh, s.packed.subarray((s.offsets[sh] as number) * 8, (s.offsets[sh + 1] as number) * 8)))
  const sm3Node = (a: Uint8Array, b: Uint8Array): Uint8Array => createHash('sm3').update(Uint8Array.of(1)).update(a).update(b).digest()
  const levels: Uint8Array[][] = [leaves]
  while ((levels[levels.length - 1] as Uint8Array[]).length > 1) {
    const cur = levels[levels.length - 1] as Uint8Array[]
    levels.push(Array.from({ length: cur.length / 2 }, (_, i) => sm3Node(cur[2 * i] as Uint8Array, cur[2 * i + 1] as Uint8Array)))
  }
  t.same(Buffer.from(ShardRoot.parse(header).bytes.subarray(52, 84)), Buffer.from((levels[levels.length - 1] as Uint8Array[])[0] as Uint8Array), 'the header commits to the SM3 tree')
  let total = 0
  for (let sh = 0; sh < root.shards; sh++) {
    const path = levels.slice(0, -1).map((level, k) => level[(sh >> k) ^ 1] as Uint8Array)
    const tags = s.packed.subarray((s.offsets[sh] as number) * 8, (s.offsets[sh + 1] as number) * 8)
    total += verifyShard(root, sh, tags, path).count
    if (sh === 1) {
      const bad = tags.slice()
      bad[0] = (bad[0] as number) ^ 1
      t.throws(() => verifyShard(root, sh, bad, path), { code: 'VN_ERR_OPRF_SHARD_PROOF' }, 'a tampered shard is caught')
    }
  }
  t.equal(total, r.count, 'every tag once')
})
