/**
 * oprf mode: query privacy by RFC 9497 VOPRF, suite ristretto255-SHA512 (docs/PROTOCOL.md
 * "oprf mode", docs/SECURITY.md "oprf mode").
 *
 * The consumer canonicalizes each subject (the shared `canonicalizeField`), maps it to its OPRF
 * input(s) (src/oprf/tagset-service.ts), blinds them (§3.3.1 Blind) and sends
 * `q = { epoch, blinded: [b64u] }`. The provider checks every element (§2.1 DeserializeElement,
 * §3.3 identity rejection) before the decision, and only when permitted evaluates them with the
 * epoch key and one batched DLEQ proof (§3.3.2 BlindEvaluate, §2.2.1 GenerateProof) on its worker
 * pool: `r = { epoch, evaluated: [b64u], proof: b64u }`. The consumer verifies the proof against
 * the epoch public key carried in the provider's signed tag set (§3.3.2 Finalize with VerifyProof),
 * finalizes, and probes the tag set locally: one answer per subject. The provider sees a count of
 * uniformly random group elements; its log records the count, as for every mode.
 */
import { z } from 'zod'
import { VnError } from '../../errors.js'
import { formatZodIssues } from '../../config/load.js'
import {
  blind,
  blindEvaluateBatch,
  deserializeElement,
  DEFAULT_MAX_BATCH,
  ELEMENT_BYTES,
  finalizeBatch,
  finishSingleEvaluation,
  finishSingleProof,
  planSingleEvaluation,
  planSingleProof,
  PROOF_BYTES,
} from '../../crypto/oprf.js'
import { poolBlind, poolBlindEvaluateBatch, poolFinalizeBatch, poolOffloadSingleEvaluation, poolOffloadSingleProof } from '../../oprf/oprf-pool.js'
import type { OprfKeyPair } from '../../crypto/oprf.js'
import type { TagSet } from '../../oprf/tagset.js'
import { answersFromHits, oprfLabels, subjectInputs, subjectShardHash } from '../../oprf/tagset-service.js'
import { shardOfHash } from '../../oprf/tagset.js'
import { ShardCache, verifyShard, type ServedShard, type ShardRoot, type ShardTags } from '../../oprf/tagshards.js'
import type { WorkerPool } from '../../util/worker-pool.js'
import { QuietClock } from '../../util/quiet-clock.js'
import type { ProviderMode, ConsumerMode, Answer } from './types.js'

/** Batches up to this size are blinded / finalized in-thread: a worker round trip costs more. */
const IN_THREAD_MAX = 8

const B64U = /^[A-Za-z0-9_-]*$/

/** Strict base64url (no padding, canonical trailing bits) → bytes. */
function fromB64u(s: string, field: string, code: 'VN_ERR_OPRF_POINT' | 'VN_ERR_PEER_BAD_RESPONSE' | 'VN_ERR_OPRF_SHARD'): Uint8Array {
  if (!B64U.test(s)) throw new VnError(code, `${field}: not base64url`)
  const b = Buffer.from(s, 'base64url')
  if (b.toString('base64url') !== s) throw new VnError(code, `${field}: not canonical base64url`)
  return new Uint8Array(b)
}
const b64u = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url')

/** Shards one request may ask for; a consumer that needs more fetches the full set instead. */
const MAX_SHARDS_PER_REQUEST = 16

/** q of an oprf request. Element strings are capped well above 43 characters so a wrong length gets its own error. */
const OprfQuerySchema = z.strictObject({
  epoch: z.number().int().nonnegative().max(0xffffffff),
  blinded: z.array(z.string().max(128)).min(1),
  /** sharded sets: the shards whose tags the response should carry (checked apart: VN_ERR_OPRF_SHARD) */
  shards: z.array(z.unknown()).optional(),
  /** sharded sets: the tree head of the epoch header the consumer holds (a rebuilt set has another) */
  root: z.string().max(64).optional(),
})

/** r of an oprf response. */
const OprfReplySchema = z.strictObject({
  epoch: z.number().int().nonnegative().max(0xffffffff),
  evaluated: z.array(z.string().max(128)).min(1),
  proof: z.string().max(128),
  shards: z.array(z.strictObject({
    shard: z.number().int().nonnegative(),
    tags: z.string(),
    path: z.array(z.string().max(64)).max(32),
  })).max(MAX_SHARDS_PER_REQUEST).optional(),
})

type ReplyShards = NonNullable<z.infer<typeof OprfReplySchema>['shards']>

/** q.shards: distinct integers in 0 .. 2^bits - 1, at most MAX_SHARDS_PER_REQUEST. @throws VN_ERR_OPRF_SHARD */
function checkShards(shards: readonly unknown[], bits: number): number[] {
  if (shards.length > MAX_SHARDS_PER_REQUEST) throw new VnError('VN_ERR_OPRF_SHARD', `q.shards: ${shards.length} shards, limit ${MAX_SHARDS_PER_REQUEST}`)
  const n = 2 ** bits
  const seen = new Set<number>()
  return shards.map((x, i) => {
    if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x >= n) throw new VnError('VN_ERR_OPRF_SHARD', `q.shards[${i}]: not a shard number in 0..${n - 1}`)
    if (seen.has(x)) throw new VnError('VN_ERR_OPRF_SHARD', `q.shards[${i}]: repeated`)
    seen.add(x)
    return x
  })
}

/** What the provider side needs from the node: epochs and keys (TagSetPublisher) and the pool. */
export interface OprfProviderDeps {
  keys: {
    currentEpoch(service: string): number
    key(service: string, epoch: number): OprfKeyPair
    /**
     * The current sharded set (TagSetPublisher.currentShards): its epoch, bits, tree head and file;
     * absent: no shards served. A request reads its shards from the file it was checked against.
     */
    currentShards?(service: string): { epoch: number; bits: number; root: Uint8Array; file: { read(shard: number): Promise<ServedShard> } }
  }
  pool: () => WorkerPool
  now?: () => number
}

/** A per-(consumer, service) token bucket on evaluations (docs/SECURITY.md "oprf mode"). */
class EvaluationRate {
  private readonly buckets = new Map<string, { tokens: number; at: number }>()

  take(key: string, perSecond: number, burst: number, n: number, now: number): void {
    let b = this.buckets.get(key)
    if (b === undefined) {
      if (this.buckets.size > 10_000) this.buckets.clear()
      b = { tokens: burst, at: now }
      this.buckets.set(key, b)
    }
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * perSecond)
    b.at = now
    if (b.tokens < n) {
      const wait = Math.ceil((n - b.tokens) / perSecond)
      throw new VnError('VN_ERR_REQ_RATE_LIMITED', `${n} evaluations exceed the rate of ${perSecond}/s; retry in ${wait} s`)
    }
    b.tokens -= n
  }
}

export function oprfProvider(d: OprfProviderDeps): ProviderMode {
  const rate = new EvaluationRate()
  const now = d.now ?? Date.now
  const clock = new QuietClock()
  /**
   * Where a request's evaluation runs. A lone small request after a pause is evaluated on the event
   * loop (~1 ms for one element with its proof) instead of paying two hand-offs to the pool (~0.3 ms
   * each here); a single element (a single private check) hands two of its proof's five
   * multiplications to the idle pool meanwhile (`planSingleEvaluation`). A request right after
   * another, a larger one, or one while the pool works goes to the pool.
   */
  const placement = (n: number, pool: WorkerPool): 'split' | 'thread' | 'pool' => {
    const paused = clock.paused()
    if (n > IN_THREAD_MAX || !paused || pool.busy) return 'pool'
    return n === 1 ? 'split' : 'thread'
  }
  return {
    mode: 'oprf',
    takesDisclosures: false,
    async prepare(svc, req, _disclosures, ctx) {
      const q = OprfQuerySchema.safeParse(req.q)
      if (!q.success) throw new VnError('VN_ERR_REQ_INVALID', `q: ${formatZodIssues(q.error)}`)
      const { epoch, blinded } = q.data
      const max = Math.min(ctx.limits.batchMax, DEFAULT_MAX_BATCH)
      if (blinded.length > max) throw new VnError('VN_ERR_REQ_BATCH_TOO_LARGE', `q.blinded: ${blinded.length} elements, limit ${max}`)
      const current = d.keys.currentEpoch(svc.id)
      if (epoch !== current) throw new VnError('VN_ERR_OPRF_EPOCH', `q.epoch ${epoch} is not the current epoch ${current} of ${svc.id}`)
      // RFC 9497 §2.1 DeserializeElement / §3.3: every element is a canonical, non-identity
      // ristretto255 encoding of 32 bytes, checked before any decision or evaluation.
      const elements = blinded.map((s, i) => deserializeElement(fromB64u(s, `q.blinded[${i}]`, 'VN_ERR_OPRF_POINT'), `q.blinded[${i}]`))
      let shards: number[] = []
      const cur = q.data.shards === undefined && q.data.root === undefined ? undefined : d.keys.currentShards?.(svc.id)
      if (q.data.shards !== undefined) {
        if (cur === undefined) throw new VnError('VN_ERR_OPRF_SHARD', 'q.shards: this node serves no sharded sets')
        if (cur.epoch !== epoch) throw new VnError('VN_ERR_OPRF_EPOCH', `q.epoch ${epoch} is not the epoch ${cur.epoch} of the sharded set of ${svc.id}`)
        shards = checkShards(q.data.shards, cur.bits)
      }
      if (q.data.root !== undefined) {
        if (cur === undefined) throw new VnError('VN_ERR_OPRF_SHARD', 'q.root: this node serves no sharded sets')
        const root = fromB64u(q.data.root, 'q.root', 'VN_ERR_OPRF_SHARD')
        if (root.length !== 32) throw new VnError('VN_ERR_OPRF_SHARD', 'q.root: expected 32 bytes')
        // The set was rebuilt within the epoch (`verinode tagset build --force`): the consumer holds
        // the old header; the same refusal as a new epoch makes it fetch the current one.
        if (cur.epoch === epoch && !Buffer.from(root).equals(Buffer.from(cur.root))) {
          throw new VnError('VN_ERR_OPRF_EPOCH', `q.root: the sharded set of ${svc.id} epoch ${epoch} was rebuilt; fetch its current header`)
        }
      }
      const perSecond = svc.oprf?.evaluationsPerSecond
      if (perSecond !== undefined) rate.take(`${req.iss}|${svc.id}`, perSecond, Math.max(perSecond, max), elements.length, now())
      return {
        count: elements.length,
        async answer() {
          // The shards are read from disk while the elements are evaluated.
          const read = shards.length === 0 || cur === undefined ? undefined : Promise.all(shards.map((x) => cur.file.read(x)))
          read?.catch(() => undefined) // awaited below
          const key = d.keys.key(svc.id, epoch)
          const pool = d.pool()
          let ev
          const where = placement(elements.length, pool)
          if (where === 'split') {
            const plan = planSingleEvaluation(key.secretKey, key.publicKey, elements[0])
            try {
              const part = poolOffloadSingleEvaluation(pool, plan) // posts a copy of r
              part.catch(() => undefined) // awaited below; a throw here must not leave it unhandled
              const fin = finishSingleEvaluation(plan)
              ev = fin.complete(await part)
            } finally {
              plan.r.fill(0)
            }
            clock.restart()
          } else if (where === 'thread') {
            ev = blindEvaluateBatch(key.secretKey, key.publicKey, elements, { maxBatch: max })
            clock.restart()
          } else ev = await poolBlindEvaluateBatch(pool, key.secretKey, key.publicKey, elements, max)
          const r: Record<string, unknown> = { epoch, evaluated: ev.evaluatedElements.map(b64u), proof: b64u(ev.proof) }
          if (read !== undefined) r.shards = (await read).map((x) => ({ shard: x.shard, tags: b64u(x.tags), path: x.path.map(b64u) }))
          return { r }
        },
      }
    },
  }
}

/** What the consumer side needs: the providers' verified tag sets (and epoch headers), a shard cache, the pool. */
export interface OprfConsumerDeps {
  tagsets: {
    get(provider: string, service: string): Promise<TagSet>
    /** the verified epoch header of the provider's sharded set; null or absent: full sets only */
    root?(provider: string, service: string): Promise<ShardRoot | null>
    invalidate(provider: string, service: string): void
  }
  /** verified shards kept between checks (bounded, keyed by epoch); default a cache of 64 shards */
  shards?: ShardCache
  pool: () => WorkerPool
}

/** What the last step probes: an epoch, its key, and a lookup per input (a whole set or shards). */
export interface OprfProbe {
  epoch: number
  publicKey: Uint8Array
  hasOutput(oprfOutput: Uint8Array, input: number): boolean
  /** sharded: checks and takes the shards of the reply (VN_ERR_OPRF_SHARD_PROOF) */
  takeShards?(shards: ReplyShards): void
}

/**
 * The sharded path of one request: subject i lies in shard `shardOf[i]`; shards already cached are
 * kept here (eviction cannot take them away mid-request), the others are asked for and checked
 * against the signed epoch header when the reply comes.
 */
function shardedProbe(root: ShardRoot, shardOf: readonly number[], width: number, have: Map<number, ShardTags>, asked: readonly number[], cache: ShardCache, provider: string): OprfProbe {
  return {
    epoch: root.epoch,
    publicKey: root.publicKey,
    hasOutput(o, input) {
      const tags = have.get(shardOf[Math.floor(input / width)] as number)
      if (tags === undefined) throw new VnError('VN_ERR_INTERNAL', 'shard missing after the reply was checked')
      return tags.hasOutput(o)
    },
    takeShards(shards) {
      if (shards.length !== asked.length || shards.some((x, i) => x.shard !== asked[i])) {
        throw new VnError('VN_ERR_PEER_BAD_RESPONSE', `r.shards: not the ${asked.length} shards asked for`)
      }
      for (const x of shards) {
        const tags = verifyShard(root, x.shard, fromB64u(x.tags, `r.shards[${x.shard}].tags`, 'VN_ERR_PEER_BAD_RESPONSE'),
          x.path.map((p, i) => fromB64u(p, `r.shards[${x.shard}].path[${i}]`, 'VN_ERR_PEER_BAD_RESPONSE')))
        have.set(x.shard, tags)
        cache.put(provider, root.service, tags)
      }
    },
  }
}

export function oprfConsumer(d: OprfConsumerDeps): ConsumerMode {
  const cache = d.shards ?? new ShardCache()
  return {
    mode: 'oprf',
    refused(provider, service, code) {
      // The provider moved to a new epoch: fetch its new tag set before the next question.
      if (code === 'VN_ERR_OPRF_EPOCH') d.tagsets.invalidate(provider, service)
    },
    async build(svc, subjects, ctx) {
      // Inputs first: a subject missing a field fails before anything is fetched or signed.
      const perSubject = subjects.map((s, i) => subjectInputs(svc, s, `subjects[${i}]`))
      const width = oprfLabels(svc)?.length ?? 1
      const inputs = perSubject.flat()
      // Sharded when the provider publishes more than one shard and the shards this request lacks
      // are few; otherwise the full set (small registers, big batches, older providers).
      const root = (await d.tagsets.root?.(ctx.provider, svc.id)) ?? null
      let tagset: OprfProbe | undefined
      let shards: number[] = []
      if (root !== null && root.bits > 0) {
        const shardOf = subjects.map((x) => shardOfHash(subjectShardHash(svc, x), root.bits))
        const have = new Map<number, ShardTags>()
        for (const sh of new Set(shardOf)) {
          const hit = cache.get(ctx.provider, svc.id, root.epoch, sh, root.root)
          if (hit !== undefined) have.set(sh, hit)
          else shards.push(sh)
        }
        if (shards.length <= MAX_SHARDS_PER_REQUEST && shards.length < root.shards / 2) tagset = shardedProbe(root, shardOf, width, have, shards, cache, ctx.provider)
        else shards = []
      }
      tagset ??= await d.tagsets.get(ctx.provider, svc.id)
      const maxBatch = Math.max(inputs.length, 1)
      const b = inputs.length <= IN_THREAD_MAX ? blind(inputs, { maxBatch }) : await poolBlind(d.pool(), inputs, { maxBatch })
      const probe = tagset
      return {
        q: {
          epoch: probe.epoch, blinded: b.blindedElements.map(b64u),
          ...(probe.takeShards !== undefined && root !== null ? { root: b64u(root.root) } : {}),
          ...(shards.length > 0 ? { shards } : {}),
        },
        count: inputs.length,
        heavyFinish: true,
        async finish(reply): Promise<Answer[]> {
          return finishOprf(d, probe, inputs, b, reply, svc, width, subjects.length)
        },
      }
    },
  }
}

/**
 * The consumer's last step (exported for tests that tamper with replies): the reply's shape and
 * epoch, then RFC 9497 §3.3.2 Finalize (VerifyProof over the whole batch, then unblind and hash),
 * then a probe of each output in the tag set. VN_ERR_OPRF_PROOF when the proof does not verify.
 */
export async function finishOprf(
  d: Pick<OprfConsumerDeps, 'pool'>,
  tagset: OprfProbe,
  inputs: Uint8Array[],
  b: { blinds: Uint8Array[]; blindedElements: Uint8Array[] },
  reply: { results?: Answer[]; r?: Record<string, unknown> },
  svc: Parameters<typeof answersFromHits>[0],
  width: number,
  subjects: number,
): Promise<Answer[]> {
  const r = OprfReplySchema.safeParse(reply.r)
  if (!r.success) throw new VnError('VN_ERR_PEER_BAD_RESPONSE', `r: ${formatZodIssues(r.error)}`)
  if (r.data.epoch !== tagset.epoch) throw new VnError('VN_ERR_PEER_BAD_RESPONSE', `r.epoch ${r.data.epoch} is not the epoch asked (${tagset.epoch})`)
  if (r.data.evaluated.length !== inputs.length) throw new VnError('VN_ERR_PEER_BAD_RESPONSE', `r.evaluated: ${r.data.evaluated.length} elements for ${inputs.length} sent`)
  if (tagset.takeShards !== undefined) tagset.takeShards(r.data.shards ?? [])
  else if (r.data.shards !== undefined) throw new VnError('VN_ERR_PEER_BAD_RESPONSE', 'r.shards: none were asked for')
  const evaluatedElements = r.data.evaluated.map((s, i) => {
    const e = fromB64u(s, `r.evaluated[${i}]`, 'VN_ERR_PEER_BAD_RESPONSE')
    if (e.length !== ELEMENT_BYTES) throw new VnError('VN_ERR_PEER_BAD_RESPONSE', `r.evaluated[${i}]: expected ${ELEMENT_BYTES} bytes`)
    return e
  })
  const proof = fromB64u(r.data.proof, 'r.proof', 'VN_ERR_PEER_BAD_RESPONSE')
  if (proof.length !== PROOF_BYTES) throw new VnError('VN_ERR_OPRF_PROOF', `r.proof: expected ${PROOF_BYTES} bytes`)
  const args = { inputs, blinds: b.blinds, evaluatedElements, blindedElements: b.blindedElements, publicKey: tagset.publicKey, proof, maxBatch: Math.max(inputs.length, 1) }
  let outputs: Uint8Array[]
  if (inputs.length === 1 && !d.pool().busy) {
    // One element (a single private check): the composites, t2 and the unblinding on an idle
    // worker, t3 here; this thread also makes the response-in durable meanwhile (planSingleProof).
    const plan = planSingleProof(tagset.publicKey, b.blindedElements[0] as Uint8Array, evaluatedElements[0] as Uint8Array, proof)
    const part = poolOffloadSingleProof(d.pool(), plan, inputs[0] as Uint8Array, b.blinds[0] as Uint8Array)
    part.catch(() => undefined) // awaited below; a throw here must not leave it unhandled
    const fin = finishSingleProof(plan)
    outputs = [fin.check(await part)]
  } else if (inputs.length <= IN_THREAD_MAX) {
    outputs = finalizeBatch(args.inputs, args.blinds, args.evaluatedElements, args.blindedElements, args.publicKey, args.proof, { maxBatch: args.maxBatch })
  } else {
    outputs = await poolFinalizeBatch(d.pool(), args)
  }
  const hits: boolean[][] = []
  for (let i = 0; i < subjects; i++) hits.push(outputs.slice(i * width, (i + 1) * width).map((o, j) => tagset.hasOutput(o, i * width + j)))
  return answersFromHits(svc, hits)
}
