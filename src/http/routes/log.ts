/**
 * Transparency-log endpoints (RFC 9162 proofs over the node's log, C2SP checkpoints).
 * Checkpoints and proofs are public: they reveal hashes only. Leaf contents (PII-free, but they show
 * who asked what and when) go only to authenticated federation members: auditors and counterparts.
 */
import type { FastifyInstance } from 'fastify'
import { z } from 'zod'
import { VnError } from '../../errors.js'
import type { NodeRuntime } from '../../node/types.js'
import { authenticateMember } from '../../peers/member-auth.js'
import { formatZodIssues } from '../../config/load.js'

const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64')
const int = z.coerce.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER)

function parse<T>(schema: z.ZodType<T>, q: unknown): T {
  const r = schema.safeParse(q)
  if (!r.success) throw new VnError('VN_ERR_LOG_PROOF', formatZodIssues(r.error))
  return r.data
}

export async function logRoutes(app: FastifyInstance, node: NodeRuntime): Promise<void> {
  const member = (req: { headers: Record<string, unknown>; url: string }): string => {
    const now = Date.now()
    return authenticateMember(req.headers.authorization, node.self, req.url, node.federation.get(now).messageKeyResolver(now), now, node.config.limits.skewMs)
  }

  app.get('/v1/log/checkpoint', async (_req, reply) => reply.header('content-type', 'text/plain; charset=utf-8').send(await node.checkpoint()))

  app.get('/v1/log/proof/inclusion', async (req) => {
    const q = parse(z.strictObject({ index: int, size: int }), req.query)
    if (q.index >= q.size) throw new VnError('VN_ERR_LOG_PROOF', 'index must be below size')
    const proof = await node.log.inclusionProof(q.index, q.size)
    const out: Record<string, unknown> = { index: q.index, size: q.size, proof: proof.map(b64) }
    // With member authentication, the leaf itself comes along: a consumer's receipt.
    if (req.headers.authorization !== undefined) {
      member(req)
      out.leaf = Buffer.from(await node.log.leaf(q.index)).toString('utf8')
    }
    return out
  })

  app.get('/v1/log/proof/consistency', async (req) => {
    const q = parse(z.strictObject({ first: int, second: int }), req.query)
    if (q.first > q.second) throw new VnError('VN_ERR_LOG_PROOF', 'first must not exceed second')
    return { first: q.first, second: q.second, proof: (await node.log.consistencyProof(q.first, q.second)).map(b64) }
  })

  // A witness hands back our checkpoint with its cosignature added.
  app.post('/v1/log/cosignature', async (req, reply) => {
    const b = z.strictObject({ witness: z.string().min(1).max(64), note: z.string().min(1).max(64 * 1024) }).safeParse(req.body)
    if (!b.success) throw new VnError('VN_ERR_REQ_INVALID', formatZodIssues(b.error))
    await node.acceptCosignature(b.data.witness, b.data.note)
    return reply.code(204).send()
  })

  app.get('/v1/log/entries', async (req) => {
    const who = member(req)
    const q = parse(z.strictObject({ start: int, end: int }), req.query)
    const leaves = await node.log.entries(q.start, q.end)
    req.log.info({ member: who, start: q.start, end: q.end }, 'log entries served')
    return { start: q.start, end: q.end, entries: leaves.map((l) => Buffer.from(l).toString('utf8')) }
  })
}
