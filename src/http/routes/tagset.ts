/**
 * oprf mode: the signed tag set of a service's current epoch (docs/PROTOCOL.md "oprf mode"):
 * binary body (streamed from the set's file), signature and signer in headers, ETag / If-None-Match (RFC 9110 §13.1.2); 503
 * with Retry-After while the first build runs. `/tagset/root`: the signed epoch header of the
 * sharded set (src/oprf/tagshards.ts), the same headers.
 */
import type { FastifyInstance, FastifyReply } from 'fastify'
import { VnError } from '../../errors.js'
import { etagMatches } from '../../oprf/tagset-service.js'

export async function tagSetRoutes(app: FastifyInstance): Promise<void> {
  /** What `read` gives for this node's oprf services; a set still being built says when to retry. */
  type TagSets = NonNullable<FastifyInstance['tagsets']>
  const current = <T>(reply: FastifyReply, read: (tagsets: TagSets) => T): { tagsets: TagSets; p: T } => {
    const tagsets = app.tagsets
    if (tagsets === undefined) throw new VnError('VN_ERR_POLICY_UNKNOWN_SERVICE', 'this node offers no oprf service')
    try {
      return { tagsets, p: read(tagsets) }
    } catch (e) {
      if (e instanceof VnError && e.code === 'VN_ERR_OPRF_TAGSET_PENDING') reply.header('retry-after', '5')
      throw e
    }
  }

  app.get<{ Params: { svc: string } }>('/v1/services/:svc/tagset', async (req, reply) => {
    const { tagsets, p } = current(reply, (t) => t.current(req.params.svc))
    reply.headers(tagsets.responseHeaders(p))
    if (etagMatches(req.headers['if-none-match'], p.etag)) return reply.code(304).send()
    // Streamed from the set's file: the node never holds a whole set in memory (issue 19).
    return reply.header('content-type', 'application/octet-stream').header('content-length', String(p.size)).send(p.body())
  })

  // The signed epoch header of the sharded set: shard bits, epoch key and the shards' Merkle root.
  app.get<{ Params: { svc: string } }>('/v1/services/:svc/tagset/root', async (req, reply) => {
    const { tagsets, p } = current(reply, (t) => t.currentShards(req.params.svc))
    reply.headers(tagsets.responseHeaders(p))
    if (etagMatches(req.headers['if-none-match'], p.etag)) return reply.code(304).send()
    return reply.header('content-type', 'application/octet-stream').send(p.header)
  })
}
