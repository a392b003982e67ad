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
import { answersFromHits, oprfLabels, subjectInputs } from '../../oprf/tagset-service.js'
import type { WorkerPool } from '../../util/worker-pool.js'
import { QuietClock } from '../../util/quiet-clock.js'
import type { ProviderMode, ConsumerMode, Answer } from './types.js'

/** Batches up to this size are blinded / finalized in-thread: a worker round trip costs more. */
const IN_THREAD_MAX = 8

const B64U = /^[A-Za-z0-9_-]*$/

/** Strict base64url (no padding, canonical trailing bits) → bytes. */
function fromB64u(s: string, field: string, code: 'VN_ERR_OPRF_POINT' | 'VN_ERR_PEER_BAD_RESPONSE'): Uint8Array {
  if (!B64U.test(s)) throw new VnError(code, `${field}: not base64url`)
  const b = Buffer.from(s, 'base64url')
  if (b.toString('base64url') !== s) throw new VnError(code, `${field}: not canonical base64url`)
  return new Uint8Array(b)
}
const b64u = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url')

/** q of an oprf request. Element strings are capped well above 43 characters so a wrong length gets its own error. */
const OprfQuerySchema = z.strictObject({
  epoch: z.number().int().nonnegative().max(0xffffffff),
  blinded: z.array(z.string().max(128)).min(1),
})

/** r of an oprf response. */
const OprfReplySchema = z.strictObject({
  epoch: z.number().int().nonnegative().max(0xffffffff),
  evaluated: z.array(z.string().max(128)).min(1),
  proof: z.string().max(128),
})

/** What the provider side needs from the node: epochs and keys (TagSetPublisher) and the pool. */
export interface OprfProviderDeps {
  keys: {
    currentEpoch(service: string): number
    key(service: string, epoch: number): OprfKeyPair
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
      const perSecond = svc.oprf?.evaluationsPerSecond
      if (perSecond !== undefined) rate.take(`${req.iss}|${svc.id}`, perSecond, Math.max(perSecond, max), elements.length, now())
      return {
        count: elements.length,
        async answer() {
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
          return { r: { epoch, evaluated: ev.evaluatedElements.map(b64u), proof: b64u(ev.proof) } }
        },
      }
    },
  }
}

/** What the consumer side needs: the providers' verified tag sets and the pool. */
export interface OprfConsumerDeps {
  tagsets: { get(provider: string, service: string): Promise<TagSet>; invalidate(provider: string, service: string): void }
  pool: () => WorkerPool
}

export function oprfConsumer(d: OprfConsumerDeps): ConsumerMode {
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
      const tagset = await d.tagsets.get(ctx.provider, svc.id)
      const maxBatch = Math.max(inputs.length, 1)
      const b = inputs.length <= IN_THREAD_MAX ? blind(inputs, { maxBatch }) : await poolBlind(d.pool(), inputs, { maxBatch })
      return {
        q: { epoch: tagset.epoch, blinded: b.blindedElements.map(b64u) },
        count: inputs.length,
        heavyFinish: true,
        async finish(reply): Promise<Answer[]> {
          return finishOprf(d, tagset, inputs, b, reply, svc, width, subjects.length)
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
  tagset: TagSet,
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
  for (let i = 0; i < subjects; i++) hits.push(outputs.slice(i * width, (i + 1) * width).map((o) => tagset.hasOutput(o)))
  return answersFromHits(svc, hits)
}
