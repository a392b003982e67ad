/**
 * plain mode: the subject is disclosed to the provider (as today's national verification interfaces
 * do), but never signed in the clear: each field travels as an SD-JWT-style disclosure beside the
 * JWS, and the signed query holds only their salted digests.
 */
import { createHash } from 'node:crypto'
import { VnError } from '../../errors.js'
import { PlainQuerySchema } from '../../protocol/envelope.js'
import { makeDisclosure, openDisclosure } from '../../protocol/disclosures.js'
import { canonicalizeField } from '../../protocol/canonicalize.js'
import { formatZodIssues } from '../../config/load.js'
import { answerAll } from '../answers.js'
import type { ProviderMode, ConsumerMode, Answer } from './types.js'

const sha256b64u = (s: string): string => createHash('sha256').update(s).digest('base64url')

export const plainProvider: ProviderMode = {
  mode: 'plain',
  async prepare(svc, req, disclosures, ctx) {
    const q = PlainQuerySchema.safeParse(req.q)
    if (!q.success) throw new VnError('VN_ERR_REQ_INVALID', `q: ${formatZodIssues(q.error)}`)
    const list = q.data.subjects
    if (list.length > ctx.limits.batchMax) {
      throw new VnError('VN_ERR_REQ_BATCH_TOO_LARGE', `${list.length} subjects, limit ${ctx.limits.batchMax}`)
    }
    // Disclosures are matched by digest, not position; each must be used exactly once.
    const byDigest = new Map<string, string>()
    for (const d of disclosures) byDigest.set(sha256b64u(d), d)
    if (byDigest.size !== disclosures.length) throw new VnError('VN_ERR_EXCH_DISCLOSURE', 'disclosures: duplicates')
    let used = 0
    const subjects = list.map((digests, i) => {
      const rec: Record<string, string> = {}
      for (const [field, spec] of Object.entries(svc.fields)) {
        const path = `subjects[${i}].${field}`
        const dg = digests[field]
        if (dg === undefined) {
          if (spec.required) throw new VnError('VN_ERR_SUBJECT_INVALID', `${path}: missing`)
          continue
        }
        const disclosure = byDigest.get(dg)
        if (disclosure === undefined) throw new VnError('VN_ERR_EXCH_DISCLOSURE', `${path}: no disclosure for its digest`)
        used++
        const opened = openDisclosure(disclosure, dg, path)
        if (opened.field !== field) throw new VnError('VN_ERR_EXCH_DISCLOSURE', `${path}: disclosure names another field`)
        rec[field] = canonicalizeField(spec.kind, opened.value, path)
      }
      for (const field of Object.keys(digests)) {
        if (!(field in svc.fields)) throw new VnError('VN_ERR_SUBJECT_INVALID', `subjects[${i}].${field}: unknown field`)
      }
      return rec
    })
    if (used !== disclosures.length) throw new VnError('VN_ERR_EXCH_DISCLOSURE', 'disclosures: some are not referenced by any digest')
    return {
      count: subjects.length,
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
    const disclosures: string[] = []
    const digests = subjects.map((s) => {
      const m: Record<string, string> = {}
      for (const [field, value] of Object.entries(s)) {
        const d = makeDisclosure(field, value)
        disclosures.push(d.disclosure)
        m[field] = d.digest
      }
      return m
    })
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
