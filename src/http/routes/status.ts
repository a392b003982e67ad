/**
 * The console's JSON endpoints, part of the local API (the CLI can call them with a token too):
 * status views, audits of an export folder on this machine, and console sign-in / sign-out.
 * Described in the OpenAPI document (../local-api.ts); counts, ids, digests and times only.
 */
import type { FastifyInstance } from 'fastify'
import { z } from 'zod'
import { VnError } from '../../errors.js'
import { formatZodIssues } from '../../config/load.js'
import { AUDIT_PATH, AUDIT_UPLOAD_PATH, SESSION_PATH } from '../plugins/app-auth.js'
import { MAX_UPLOAD_BYTES, TAR_MEDIA_TYPE, withUploadedExport } from '../audit-upload.js'
import { sessionCookie, sessionCookieName } from '../plugins/console-session.js'
import { parseCanonicalInt } from '../params.js'

export const TrafficQuerySchema = z.strictObject({
  step: z.enum(['minute', 'hour', 'day']).default('minute'),
  by: z.enum(['service', 'peer', 'mode', 'decision', 'role']).default('service'),
  points: z.coerce.number().int().min(1).max(400).default(60),
  role: z.enum(['provider', 'consumer']).optional(),
})
export const AuditRequestSchema = z.strictObject({ dir: z.string().min(1).max(4096) })
export const SignInSchema = z.strictObject({ token: z.string().min(1).max(511) })

/** Findings returned at most (the report's counts say how many there were). */
const MAX_FINDINGS = 500

export async function statusRoutes(app: FastifyInstance): Promise<void> {
  app.get('/local/v1/status/overview', async () => app.status.overview())

  app.get('/local/v1/status/traffic', async (req) => {
    const q = TrafficQuerySchema.safeParse(req.query)
    if (!q.success) throw new VnError('VN_ERR_REQ_INVALID', formatZodIssues(q.error))
    return app.status.traffic(q.data.step, q.data.by, q.data.points, q.data.role)
  })

  app.get('/local/v1/status/agreements', async () => ({ agreements: await app.status.agreements() }))

  app.get('/local/v1/status/peers', async () => app.status.peers())

  app.get<{ Params: { index: string } }>('/local/v1/status/entry/:index', async (req) => {
    const index = parseCanonicalInt(req.params.index)
    if (index === undefined) throw new VnError('VN_ERR_REQ_INVALID', 'index: a non-negative integer')
    return { index, record: await app.status.entry(index) }
  })

  const report = (r: Awaited<ReturnType<FastifyInstance['audit']>>) => ({
    ok: r.ok, member: r.member, origin: r.origin, leaves: r.leaves, checkpoint: r.checkpoint, counts: r.counts,
    trustAnchor: r.trustAnchor, manifests: r.manifests,
    findings: r.findings.slice(0, MAX_FINDINGS), truncated: r.findings.length > MAX_FINDINGS,
  })

  // The same checks as `verinode audit verify <dir>`, under the federation root key this node trusts.
  app.post(AUDIT_PATH, async (req) => {
    const p = AuditRequestSchema.safeParse(req.body)
    if (!p.success) throw new VnError('VN_ERR_REQ_INVALID', formatZodIssues(p.error))
    const r = await app.audit(p.data.dir)
    req.log.info({ app: req.appName, role: req.appRole, ok: r.ok, leaves: r.leaves, errors: r.counts.errors }, 'audit verify')
    return report(r)
  })

  // The same checks on an export uploaded from the console as a tar archive (../audit-upload.ts):
  // streamed to a private temporary folder removed afterwards, never held in memory. A declared
  // length over the limit is refused before the body is read.
  app.addContentTypeParser(TAR_MEDIA_TYPE, (_req, _payload, done) => done(null))
  app.post(AUDIT_UPLOAD_PATH, {
    onRequest: async (req) => {
      if (Number(req.headers['content-length'] ?? 0) > MAX_UPLOAD_BYTES) throw new VnError('VN_ERR_AUDIT_UPLOAD_TOO_LARGE', `an archive of more than ${MAX_UPLOAD_BYTES} bytes`)
    },
  }, async (req) => {
    if (req.headers['content-type']?.split(';')[0]?.trim() !== TAR_MEDIA_TYPE) throw new VnError('VN_ERR_REQ_UNSUPPORTED_MEDIA', `send ${TAR_MEDIA_TYPE}`)
    let files = 0
    const r = await withUploadedExport(req.raw, (dir, n) => {
      files = n
      return app.audit(dir)
    })
    req.log.info({ app: req.appName, role: req.appRole, files, ok: r.ok, leaves: r.leaves, errors: r.counts.errors }, 'audit verify (upload)')
    return report(r)
  })

  // Console sign-in: a token for a session cookie (httpOnly, SameSite=Strict) and a CSRF token.
  app.post(SESSION_PATH, async (req, reply) => {
    const p = SignInSchema.safeParse(req.body)
    if (!p.success) throw new VnError('VN_ERR_REQ_INVALID', formatZodIssues(p.error))
    let name: string
    try {
      name = app.authenticateApp(p.data.token)
    } catch (e) {
      req.log.info({ action: 'console sign-in', ok: false }, 'console sign-in refused')
      throw e
    }
    const s = app.consoleSessions.create(name, app.appRole(name))
    req.log.info({ app: s.name, role: s.role, action: 'console sign-in' }, 'console sign-in')
    return reply.header('set-cookie', sessionCookie(sessionCookieName(req.headers.host), s, req.protocol === 'https')).header('cache-control', 'no-store')
      .send({ app: s.name, role: s.role, csrf: s.csrf, expires: s.expires })
  })

  app.get(SESSION_PATH, async (req, reply) => {
    const s = req.sessionId === undefined ? undefined : app.consoleSessions.get(req.sessionId)
    reply.header('cache-control', 'no-store')
    return { app: req.appName, role: req.appRole, csrf: s?.csrf ?? null, expires: s?.expires ?? null }
  })

  app.delete(SESSION_PATH, async (req, reply) => {
    if (req.sessionId !== undefined) app.consoleSessions.end(req.sessionId)
    req.log.info({ app: req.appName, role: req.appRole, action: 'console sign-out' }, 'console sign-out')
    return reply.header('set-cookie', sessionCookie(sessionCookieName(req.headers.host), undefined, req.protocol === 'https')).send({ ok: true })
  })
}
