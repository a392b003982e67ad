/**
 * he mode: a hidden threshold under BFV (docs/HE.md for the cryptography, docs/PROTOCOL.md
 * "he mode" for the wire form, docs/SECURITY.md "he mode" for what each side learns).
 *
 * The subject is disclosed as in plain mode (salted-digest disclosures beside the JWS, opened by
 * the shared ./disclosed-subjects.ts), but only its key fields: the consumer's bound is not a
 * subject field here, it travels encrypted under the consumer's own BFV key, one segment of 64
 * batching slots per subject, 128 subjects per ciphertext (src/he/threshold.ts).
 *
 *   q = { subjects: [{ field: digest }], kind: 'threshold' | 'range', params: HE_PARAMS.id,
 *         pk: hex SHA-256 of the consumer's public key, pkBytes?: b64u(public key),
 *         ct: [b64u(query ciphertext)] }
 *   r = { ct: [b64u(answer ciphertext)] }
 *
 * Keys. The public key (~268 kB) rides inline in a signed request (`pkBytes`) the first time a
 * consumer asks a provider under that key; the provider checks it fully, caches it per
 * (consumer, digest) in memory and under its data folder, and afterwards the consumer sends the
 * digest only (and inline again every 10 minutes). A provider that does not know the digest
 * answers VN_ERR_HE_KEY_UNKNOWN (409); its cache survives restarts, so that happens only if it lost
 * its data folder. The consumer's key pair is created lazily and replaced after an epoch (24 h).
 *
 * Provider steps (prepare, before the decision; nothing is written on error): q's shape; the
 * service has an `he` value lookup and a question kind with an he evaluation (threshold →
 * 'threshold', tier → 'range'); the parameter set; the batch size; every disclosure (key fields
 * only); no subject twice; the key (digest, then SEAL's own checks) and every ciphertext
 * (serialization.ts's checks, then SEAL's loadArray), so an evaluation after a permit cannot fail
 * on the consumer's input. Answer (only when permitted): look each value up in place, evaluate on
 * the HeEvaluatorPool (worker threads, never the event loop), return the answer ciphertexts.
 *
 * Consumer answer per subject: threshold `{ atLeast: boolean }` = [v >= bound]; range
 * `{ inRange: boolean }` = [bound <= v < below]. A subject the provider has no record of reads
 * false, like one below the bound: he mode does not reveal "found" (bound 0 asks exactly that).
 */
import { mkdir, readFile, rename, writeFile, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'
import { VnError } from '../../errors.js'
import { formatZodIssues } from '../../config/load.js'
import type { ServiceConfig } from '../../config/schema.js'
import { sha256HexSchema } from '../../protocol/vocabulary.js'
import type { DataSource } from '../../sources/types.js'
import { createHeContext, HE_PARAMS, type HeContext } from '../../he/context.js'
import { GRID_SIZE, gridIndexForBound } from '../../he/grid.js'
import { HeClient, ciphertextCount, type HeEvalKind, type HeValue } from '../../he/threshold.js'
import { loadCiphertext, loadPublicKey, maxWireBytes, publicKeyDigest, type HeObjectKind } from '../../he/serialization.js'
import type { HeEvaluatorPool } from '../../he/he-pool.js'
import type { CatalogService } from '../catalog.js'
import { DisclosedSubjectsSchema, discloseSubjects, openDisclosedSubjects } from './disclosed-subjects.js'
import type { Answer, ConsumerMode, ProviderMode } from './types.js'

/** Subject fields that carry the consumer's hidden bounds (never disclosed, encrypted instead). */
const HE_BOUND_FIELDS = { threshold: ['bound'], range: ['bound', 'below'] } as const

const B64U = /^[A-Za-z0-9_-]*$/
/** Sanity cap on any base64url string in q or r; the exact per-kind maximum is checked after. */
const B64_CAP = 1 << 20

const HeQuerySchema = z.strictObject({
  subjects: DisclosedSubjectsSchema,
  kind: z.enum(['threshold', 'range']),
  params: z.string().min(1).max(64),
  pk: sha256HexSchema, // SHA-256 of the public key
  pkBytes: z.string().min(1).max(B64_CAP).optional(),
  ct: z.array(z.string().min(1).max(B64_CAP)).min(1),
})

const HeReplySchema = z.strictObject({ ct: z.array(z.string().min(1).max(B64_CAP)).min(1) })

/** The he evaluation a question kind uses; other kinds have none. */
function heEvalKindOf(kind: ServiceConfig['kind'] | CatalogService['kind']): HeEvalKind | undefined {
  return kind === 'threshold' ? 'threshold' : kind === 'tier' ? 'range' : undefined
}

const b64u = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url')

/** Strict base64url of an HE object → bytes, refusing anything longer than the kind allows. */
function decodeHe(he: HeContext, s: string, kind: HeObjectKind, field: string): Uint8Array {
  const code = kind === 'publicKey' ? 'VN_ERR_HE_KEY' : 'VN_ERR_HE_CIPHERTEXT'
  if (s.length > Math.ceil(maxWireBytes(he, kind) / 3) * 4) throw new VnError(code, `${field}: larger than the maximum for its kind`)
  if (!B64U.test(s) || s.length % 4 === 1) throw new VnError(code, `${field}: not base64url`)
  const b = Buffer.from(s, 'base64url')
  if (b.toString('base64url') !== s) throw new VnError(code, `${field}: not canonical base64url`)
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength)
}

// ---------------------------------------------------------------------------------------------
// provider: the consumers' public keys

export interface HeKeyCacheOptions {
  /** folder where accepted keys are kept across restarts (mode 0700, files 0600); none: memory only */
  dir?: string
  /** keys kept in memory (LRU; ~270 kB each) */
  memory?: number
  /** a key on disk older than this is not used (default 7 days; consumers rotate daily) */
  maxAgeMs?: number
  now?: () => number
}

/**
 * Consumers' BFV public keys by (consumer, digest). A key enters only after the provider checked
 * it in a permitted, signed exchange; the digest is recomputed whenever a key is read back.
 */
export class HeKeyCache {
  private readonly mem = new Map<string, { bytes: Uint8Array; at: number }>()
  private readonly size: number
  private readonly maxAgeMs: number
  private readonly now: () => number

  constructor(private readonly opts: HeKeyCacheOptions = {}) {
    this.size = Math.max(1, opts.memory ?? 64)
    this.maxAgeMs = opts.maxAgeMs ?? 7 * 86_400_000
    this.now = opts.now ?? Date.now
  }

  private file(consumer: string, digest: string): string | undefined {
    return this.opts.dir === undefined ? undefined : join(this.opts.dir, `${consumer}.${digest}.pk`)
  }

  async get(consumer: string, digest: string): Promise<Uint8Array | undefined> {
    const k = `${consumer}|${digest}`
    const hit = this.mem.get(k)
    if (hit !== undefined && this.now() - hit.at < this.maxAgeMs) {
      this.mem.delete(k) // LRU: move to the back
      this.mem.set(k, hit)
      return hit.bytes
    }
    const file = this.file(consumer, digest)
    if (file === undefined) return undefined
    let raw: Buffer
    try {
      raw = await readFile(file)
    } catch {
      return undefined
    }
    // [at: u64 ms][key bytes]; a file that does not hash to its name is not used.
    const at = raw.length > 8 ? Number(raw.readBigUInt64BE(0)) : 0
    const bytes = new Uint8Array(raw.buffer, raw.byteOffset + 8, Math.max(0, raw.length - 8))
    if (this.now() - at >= this.maxAgeMs || publicKeyDigest(bytes) !== digest) {
      await unlink(file).catch(() => undefined)
      return undefined
    }
    this.remember(k, bytes, at)
    return bytes
  }

  async put(consumer: string, digest: string, bytes: Uint8Array): Promise<void> {
    const at = this.now()
    this.remember(`${consumer}|${digest}`, bytes, at)
    const file = this.file(consumer, digest)
    if (file === undefined || this.opts.dir === undefined) return
    await mkdir(this.opts.dir, { recursive: true, mode: 0o700 })
    const head = Buffer.alloc(8)
    head.writeBigUInt64BE(BigInt(at))
    const tmp = `${file}.${process.pid}.tmp`
    await writeFile(tmp, Buffer.concat([head, bytes]), { mode: 0o600 })
    await rename(tmp, file)
  }

  private remember(k: string, bytes: Uint8Array, at: number): void {
    this.mem.delete(k)
    this.mem.set(k, { bytes, at })
    while (this.mem.size > this.size) this.mem.delete(this.mem.keys().next().value as string)
  }
}

// ---------------------------------------------------------------------------------------------
// provider

export interface HeProviderDeps {
  /** the node's evaluator pool, started on first use */
  pool: () => HeEvaluatorPool
  keys: HeKeyCache
}

/** Reads the provider's value of one subject in place: fen, or null when there is no record. */
async function lookupValue(svc: ServiceConfig, sql: string, source: DataSource, subject: Readonly<Record<string, string>>, i: number): Promise<HeValue> {
  // Every declared field is bound (non-key ones as NULL), never spliced into the SQL.
  const params: Record<string, string | null> = {}
  for (const k of Object.keys(svc.fields)) params[k] = subject[k] ?? null
  const rows = await source.query(sql, params)
  const row = rows[0]
  if (row === undefined) return null
  if (rows.length > 1) throw new VnError('VN_ERR_INTERNAL', `service ${svc.id}: he.valueLookup returned several rows for subjects[${i}]`)
  const v = row.value
  if (v === null || v === undefined) {
    if (!('value' in row)) throw new VnError('VN_ERR_INTERNAL', `service ${svc.id}: he.valueLookup has no column value`)
    return null
  }
  const n = typeof v === 'bigint' && v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v
  if (typeof n !== 'number' || !Number.isSafeInteger(n)) {
    throw new VnError('VN_ERR_INTERNAL', `service ${svc.id}: he.valueLookup column value is not an integer amount in fen`)
  }
  return n
}

export function heProvider(d: HeProviderDeps): ProviderMode {
  return {
    mode: 'he',
    takesDisclosures: true,
    async prepare(svc, req, disclosures, ctx) {
      const parsed = HeQuerySchema.safeParse(req.q)
      if (!parsed.success) throw new VnError('VN_ERR_REQ_INVALID', `q: ${formatZodIssues(parsed.error)}`)
      const q = parsed.data
      const valueSql = svc.he?.valueLookup
      const kind = heEvalKindOf(svc.kind)
      if (valueSql === undefined || kind === undefined) throw new VnError('VN_ERR_EXCH_MODE', `${svc.id} has no he evaluation configured`)
      if (q.kind !== kind) throw new VnError('VN_ERR_REQ_INVALID', `q.kind: ${svc.id} is answered by ${kind} evaluation`)
      if (q.params !== HE_PARAMS.id) throw new VnError('VN_ERR_HE_PARAMS', `q.params: this node runs ${HE_PARAMS.id}`)
      const n = q.subjects.length
      if (n > ctx.limits.batchMax) throw new VnError('VN_ERR_REQ_BATCH_TOO_LARGE', `${n} subjects, limit ${ctx.limits.batchMax}`)

      // Subjects: disclosed key fields only; the bound is encrypted, never a disclosed field.
      const subjects = openDisclosedSubjects(svc, q.subjects, disclosures, {
        disclosable: (f) => svc.fields[f]?.key === true,
        notDisclosableReason: 'only key fields are disclosed in he mode',
      })
      // One bound per subject and request: a subject asked twice would give two bits at once.
      const seen = new Map<string, number>()
      subjects.forEach((s, i) => {
        const k = JSON.stringify(Object.keys(s).sort().map((f) => [f, s[f]]))
        const first = seen.get(k)
        if (first !== undefined) throw new VnError('VN_ERR_SUBJECT_INVALID', `subjects[${i}]: same subject as subjects[${first}] (one bound per subject and request)`)
        seen.set(k, i)
      })

      const he = await createHeContext()
      const want = ciphertextCount(he, n)
      if (q.ct.length !== want) throw new VnError('VN_ERR_HE_CIPHERTEXT', `q.ct: expected ${want} ciphertexts for ${n} subjects, got ${q.ct.length}`)

      // The key: inline (checked against its digest and by SEAL), or cached for this consumer.
      let pk: Uint8Array
      let newKey = false
      if (q.pkBytes !== undefined) {
        pk = decodeHe(he, q.pkBytes, 'publicKey', 'q.pkBytes')
        if (publicKeyDigest(pk) !== q.pk) throw new VnError('VN_ERR_HE_KEY', 'q.pkBytes: does not hash to q.pk')
        const cached = await d.keys.get(req.iss, q.pk)
        if (cached !== undefined) {
          pk = cached // same bytes (same digest), already checked; keeps the pool's digest memo warm
        } else {
          loadPublicKey(he, pk, 'q.pkBytes').delete()
          newKey = true
        }
      } else {
        const cached = await d.keys.get(req.iss, q.pk)
        if (cached === undefined) throw new VnError('VN_ERR_HE_KEY_UNKNOWN', 'q.pk: no key with this digest from this consumer; send q.pkBytes')
        pk = cached
      }
      // Every ciphertext: the pre-SEAL checks, then SEAL's own (coefficients reduced), so the
      // evaluation after a permit cannot fail on the consumer's input.
      const cts = q.ct.map((s, i) => {
        const b = decodeHe(he, s, 'query', `q.ct[${i}]`)
        loadCiphertext(he, b, 'query', `q.ct[${i}]`).delete()
        return b
      })

      return {
        count: n,
        disclosures, // every one matched a digest of q.subjects (openDisclosedSubjects)
        async answer() {
          if (ctx.source === undefined) throw new VnError('VN_ERR_INTERNAL', 'no data source configured')
          await ctx.source.assertCurrent?.() // the configured file, still (one stat per answer)
          const values: HeValue[] = []
          for (let i = 0; i < subjects.length; i++) values.push(await lookupValue(svc, valueSql, ctx.source, subjects[i] as Record<string, string>, i))
          if (newKey) await d.keys.put(req.iss, q.pk, pk)
          const out = await d.pool().evaluate(pk, cts, values, kind)
          return { r: { ct: out.map(b64u) } }
        },
      }
    },
  }
}

// ---------------------------------------------------------------------------------------------
// consumer

export interface HeConsumerOptions {
  /** lifetime of one consumer key pair (default 24 h) */
  epochMs?: number
  /**
   * after a provider acknowledged the key, send it inline again once this much time has passed
   * (default 10 min): heals a provider that lost it (VN_ERR_HE_KEY_UNKNOWN) within that time
   */
  keyResendMs?: number
  now?: () => number
}

export interface HeConsumerMode extends ConsumerMode {
  /** send the key inline on the next request to `provider` (after VN_ERR_HE_KEY_UNKNOWN) */
  forget(provider: string): void
  /** frees the key pairs (WASM memory) */
  close(): void
}

/** Per subject: the grid index of its bound (threshold) or its grid range (range). */
function hiddenBounds(svc: CatalogService, kind: HeEvalKind, subjects: readonly Readonly<Record<string, string>>[]): {
  disclosed: Record<string, string>[]
  bounds: number[]
  ranges: { lo: number; hi: number }[]
} {
  const hidden = new Set<string>(HE_BOUND_FIELDS[kind])
  const disclosed: Record<string, string>[] = []
  const bounds: number[] = []
  const ranges: { lo: number; hi: number }[] = []
  const seen = new Map<string, number>()
  subjects.forEach((s, i) => {
    const d: Record<string, string> = {}
    for (const [f, v] of Object.entries(s)) {
      if (hidden.has(f)) continue
      if (svc.fields[f]?.key !== true) throw new VnError('VN_ERR_SUBJECT_INVALID', `subjects[${i}].${f}: only key fields and the bound are asked in he mode`)
      d[f] = v
    }
    const k = JSON.stringify(Object.keys(d).sort().map((f) => [f, d[f]]))
    const first = seen.get(k)
    if (first !== undefined) throw new VnError('VN_ERR_SUBJECT_INVALID', `subjects[${i}]: same subject as subjects[${first}] (one bound per subject and request)`)
    seen.set(k, i)
    disclosed.push(d)
    // Canonical amounts are digit strings in fen; `exact`: a bound must be a grid point
    // (docs/PROTOCOL.md "he mode": no silent rounding of a confidential policy bound).
    const b = s.bound
    if (b === undefined) throw new VnError('VN_ERR_HE_BOUND', `subjects[${i}].bound: missing (he mode needs a bound per subject)`)
    const lo = gridIndexForBound(Number(b), 'exact', `subjects[${i}].bound`)
    if (kind === 'threshold') {
      bounds.push(lo)
    } else {
      const below = s.below
      const hi = below === undefined ? GRID_SIZE : gridIndexForBound(Number(below), 'exact', `subjects[${i}].below`)
      if (hi <= lo) throw new VnError('VN_ERR_HE_BOUND', `subjects[${i}].below: must be above bound`)
      ranges.push({ lo, hi })
    }
  })
  return { disclosed, bounds, ranges }
}

export function heConsumer(opts: HeConsumerOptions = {}): HeConsumerMode {
  const epochMs = opts.epochMs ?? 86_400_000
  const keyResendMs = opts.keyResendMs ?? 600_000
  const now = opts.now ?? Date.now
  let current: { client: HeClient; created: number } | undefined
  let previous: HeClient | undefined
  let creating: Promise<HeClient> | undefined
  /** provider → the key digest it acknowledged (a signed ok answer under it) and when */
  const acked = new Map<string, { digest: string; at: number }>()
  let closed = false

  const client = async (): Promise<HeClient> => {
    if (closed) throw new VnError('VN_ERR_INTERNAL', 'he consumer is closed')
    if (current !== undefined && now() - current.created < epochMs) return current.client
    creating ??= (async () => {
      try {
        const c = await HeClient.create(await createHeContext())
        // Keep the last key alive for one more epoch: requests in flight still decrypt with it.
        previous?.delete()
        previous = current?.client
        current = { client: c, created: now() }
        return c
      } finally {
        creating = undefined
      }
    })()
    return creating
  }

  return {
    mode: 'he',
    forget(provider) {
      acked.delete(provider)
    },
    refused(provider, _service, code) {
      // The provider lost our key (e.g. a new data folder): send it inline on the next request.
      if (code === 'VN_ERR_HE_KEY_UNKNOWN') acked.delete(provider)
    },
    close() {
      closed = true
      current?.client.delete()
      previous?.delete()
      current = undefined
      previous = undefined
    },
    async build(svc, subjects, ctx) {
      const kind = heEvalKindOf(svc.kind)
      if (kind === undefined) throw new VnError('VN_ERR_EXCH_MODE', `${svc.id} is a ${svc.kind} question; he mode answers threshold and tier questions`)
      const { disclosed, bounds, ranges } = hiddenBounds(svc, kind, subjects)
      const c = await client()
      const digest = c.publicKeyDigest()
      const a = acked.get(ctx.provider)
      const sendKey = a === undefined || a.digest !== digest || now() - a.at >= keyResendMs
      const cts = kind === 'threshold' ? c.encryptBounds(bounds) : c.encryptRanges(ranges)
      const { digests, disclosures } = discloseSubjects(disclosed)
      const q: Record<string, unknown> = { subjects: digests, kind, params: HE_PARAMS.id, pk: digest, ct: cts.map(b64u) }
      if (sendKey) q.pkBytes = b64u(c.publicKeyBytes())
      const n = subjects.length
      return {
        q,
        disclosures,
        count: n,
        heavyFinish: true,
        async finish(reply): Promise<Answer[]> {
          const r = HeReplySchema.safeParse(reply.r)
          if (!r.success) throw new VnError('VN_ERR_PEER_BAD_RESPONSE', `r: ${formatZodIssues(r.error)}`)
          const he = c.he
          const answers = r.data.ct.map((s, i) => {
            try {
              return decodeHe(he, s, 'result', `r.ct[${i}]`)
            } catch (e) {
              throw new VnError('VN_ERR_PEER_BAD_RESPONSE', (e as VnError).detail)
            }
          })
          const bits = c.decryptBits(answers, n)
          // A signed ok answer under the key proves the provider has it now.
          if (sendKey) acked.set(ctx.provider, { digest, at: now() })
          return bits.map((b) => (kind === 'threshold' ? { atLeast: b } : { inRange: b }))
        },
      }
    },
  }
}
