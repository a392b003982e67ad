/**
 * Transparency-log endpoints (RFC 9162 proofs over the node's log, C2SP checkpoints).
 * Checkpoints and proofs are public: they reveal hashes only. Leaf contents (PII-free, but they show
 * who asked what and when) go only to authenticated federation members: auditors and counterparts.
 */
import type { FastifyInstance } from 'fastify'
import { assertTlsIssuer } from '../plugins/mtls.js'
import { z } from 'zod'
import { VnError } from '../../errors.js'
import { formatZodIssues } from '../../config/load.js'
import { canonicalInt as int } from '../params.js'

const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64')

function parse<T>(schema: z.ZodType<T, unknown>, q: unknown): T {
  const r = schema.safeParse(q)
  if (!r.success) throw new VnError('VN_ERR_LOG_PROOF', formatZodIssues(r.error))
  return r.data
}

const InclusionQuery = z.strictObject({ index: int, size: int })
const ConsistencyQuery = z.strictObject({ first: int, second: int })
const EntriesQuery = z.strictObject({ start: int, end: int })
const CosignatureBody = z.strictObject({ witness: z.string().min(1).max(64), note: z.string().min(1).max(64 * 1024) })

export async function logRoutes(app: FastifyInstance): Promise<void> {
  const tlog = app.transparencyLog
  // A signed GET's issuer must be the member whose certificate the TLS connection presented.
  const member = (req: { headers: Record<string, unknown>; url: string; tlsMember?: string | undefined }): string => {
    const iss = app.authenticateMember(req.headers.authorization, req.url)
    assertTlsIssuer(req.tlsMember, iss)
    return iss
  }

  app.get('/v1/log/checkpoint', async (_req, reply) => reply.header('content-type', 'text/plain; charset=utf-8').send(await tlog.checkpoint()))

  app.get('/v1/log/proof/inclusion', async (req) => {
    const q = parse(InclusionQuery, req.query)
    if (q.index >= q.size) throw new VnError('VN_ERR_LOG_PROOF', 'index must be below size')
    const proof = await tlog.reader.inclusionProof(q.index, q.size)
    const out: Record<string, unknown> = { index: q.index, size: q.size, proof: proof.map(b64) }
    // With member authentication, the leaf itself comes along: a consumer's receipt.
    if (req.headers.authorization !== undefined) {
      member(req)
      out.leaf = Buffer.from(await tlog.reader.leaf(q.index)).toString('utf8')
    }
    return out
  })

  app.get('/v1/log/proof/consistency', async (req) => {
    const q = parse(ConsistencyQuery, req.query)
    if (q.first > q.second) throw new VnError('VN_ERR_LOG_PROOF', 'first must not exceed second')
    return { first: q.first, second: q.second, proof: (await tlog.reader.consistencyProof(q.first, q.second)).map(b64) }
  })

  // A witness hands back our checkpoint with its cosignature added.
  app.post('/v1/log/cosignature', async (req, reply) => {
    const b = CosignatureBody.safeParse(req.body)
    if (!b.success) throw new VnError('VN_ERR_REQ_INVALID', formatZodIssues(b.error))
    await tlog.acceptCosignature(b.data.witness, b.data.note)
    return reply.code(204).send()
  })

  app.get('/v1/log/entries', async (req) => {
    const who = member(req)
    const q = parse(EntriesQuery, req.query)
    const leaves = await tlog.reader.entries(q.start, q.end)
    req.log.info({ member: who, start: q.start, end: q.end }, 'log entries served')
    return { start: q.start, end: q.end, entries: leaves.map((l) => Buffer.from(l).toString('utf8')) }
  })
}
