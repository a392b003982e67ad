/**
 * plain mode: the subject is disclosed to the provider (as today's national verification interfaces
 * do), but never signed in the clear: each field travels as an SD-JWT-style disclosure beside the
 * JWS, and the signed query holds only their salted digests.
 */
import { VnError } from '../../errors.js'
import { PlainQuerySchema } from '../../protocol/envelope.js'
import { formatZodIssues } from '../../config/load.js'
import { answerAll } from '../answers.js'
import { openDisclosedSubjects, discloseSubjects } from './disclosed-subjects.js'
import type { ProviderMode, ConsumerMode, Answer } from './types.js'

export const plainProvider: ProviderMode = {
  mode: 'plain',
  takesDisclosures: true,
  async prepare(svc, req, disclosures, ctx) {
    const q = PlainQuerySchema.safeParse(req.q)
    if (!q.success) throw new VnError('VN_ERR_REQ_INVALID', `q: ${formatZodIssues(q.error)}`)
    const list = q.data.subjects
    if (list.length > ctx.limits.batchMax) {
      throw new VnError('VN_ERR_REQ_BATCH_TOO_LARGE', `${list.length} subjects, limit ${ctx.limits.batchMax}`)
    }
    // Throws unless every disclosure matched a digest of q.subjects exactly once.
    const subjects = openDisclosedSubjects(svc, list, disclosures)
    return {
      count: subjects.length,
      disclosures,
      async answer() {
        if (ctx.source === undefined) throw new VnError('VN_ERR_INTERNAL', 'no data source configured')
        return { results: await answerAll(svc, ctx.source, subjects) }
      },
    }
  },
}

export const plainConsumer: ConsumerMode = {
  mode: 'plain',
  async build(_svc, subjects) {
    const { digests, disclosures } = discloseSubjects(subjects)
    return {
      q: { subjects: digests },
      disclosures,
      count: subjects.length,
      async finish(reply): Promise<Answer[]> {
        if (reply.results === undefined || reply.results.length !== subjects.length) {
          throw new VnError('VN_ERR_PEER_BAD_RESPONSE', 'results do not match the subjects asked')
        }
        return reply.results
      },
    }
  },
}
