/**
 * The local API's request schema and its OpenAPI 3.1 description, generated from the same zod
 * schema that validates requests, so the two cannot drift.
 */
import { z } from 'zod'
import { AuditRequestSchema, SignInSchema, TrafficQuerySchema } from './routes/status.js'
import { memberIdSchema as memberId, modeSchema, serviceIdSchema as serviceId } from '../protocol/vocabulary.js'
import { LocalApplicationSchema, LocalDecisionSchema, LocalDisputeSchema, LocalReasonSchema } from '../exchange/governance.js'
import { MAX_UPLOAD_BYTES, MAX_UPLOAD_FILES, TAR_MEDIA_TYPE } from './audit-upload.js'

export const LocalVerifySchema = z.strictObject({
  provider: memberId,
  service: serviceId,
  purpose: z.string().min(1).max(200),
  basis: z.string().min(1).max(300),
  mode: modeSchema.default('plain'),
  /**
   * One object per subject, fields as the provider's catalog declares them. In `he` mode a subject
   * carries its hidden bound as `bound` (and `below` for a range), in fen, a point of the he grid:
   * they are encrypted, never disclosed (docs/PROTOCOL.md "he mode").
   */
  subjects: z.array(z.record(z.string(), z.union([z.string(), z.number()]))).min(1)
    .describe('Subjects, fields as in the provider catalog. he mode: each subject also carries its hidden bound (fen, a grid point) as "bound", and "below" for ranges; they are encrypted, never disclosed.'),
})

const problem = {
  description: 'RFC 9457 problem with a stable VN_ERR_* code (docs/ERRORS.md)',
  content: { 'application/problem+json': { schema: { type: 'object', properties: { code: { type: 'string' }, title: { type: 'string' }, status: { type: 'integer' }, detail: { type: 'string' } } } } },
}

export function localOpenApi(): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info: {
      title: 'verinode local API',
      version: '1',
      description: "The department's own information systems call their node here (never a peer's). The node validates, canonicalizes, signs, exchanges, logs and answers.",
    },
    components: { securitySchemes: { appToken: { type: 'http', scheme: 'bearer' }, consoleSession: { type: 'apiKey', in: 'cookie', name: 'vn_session_<port>', description: 'vn_session_ followed by the port of this listener' } } },
    security: [{ appToken: [] }, { consoleSession: [] }],
    paths: {
      '/local/v1/verify': {
        post: {
          summary: 'Ask a provider one verification question about one or more subjects',
          requestBody: { required: true, content: { 'application/json': { schema: z.toJSONSchema(LocalVerifySchema, { io: 'input' }) } } },
          responses: {
            200: { description: 'The verified answer (status ok or denied) with log references' },
            400: problem, 401: problem, 403: problem, 413: problem, 429: problem, 502: problem, 503: problem,
          },
        },
      },
      '/local/v1/manifest/reload': {
        post: {
          summary: 'Re-read the federation manifest file now (as SIGHUP does); a refused file keeps the manifest loaded before',
          responses: { 200: { description: 'seq loaded, whether it changed, and the state of this node\'s own message key' }, 409: problem },
        },
      },
      '/local/v1/applications': {
        get: { summary: 'Applications this node filed or received (role provider: incoming; consumer: filed here), with deadlines, the working days left before each open one (reviewDaysLeft, dueDaysLeft) and whether they are overdue (docs/GOVERNANCE.md); ids, digests, parties and services only, as the console lists them', responses: { 200: { description: '{ applications }' } } },
        post: {
          summary: 'File a signed sharing application with a provider; the contact is sealed, never logged in the clear',
          requestBody: { required: true, content: { 'application/json': { schema: z.toJSONSchema(LocalApplicationSchema, { io: 'input' }) } } },
          responses: { 201: { description: 'id, state, log indices here and at the provider, deadlines' }, 400: problem, 403: problem, 502: problem },
        },
      },
      '/local/v1/applications/{id}': { get: { summary: 'One application with every signed message about it (a pending one is first brought up to date from its provider)', responses: { 200: { description: 'the application' }, 404: problem } } },
      '/local/v1/applications/{id}/{action}': {
        post: {
          summary: 'Provider: review, approve, amend or refuse an application (action); a signed decision, logged and sent to the consumer',
          requestBody: { content: { 'application/json': { schema: z.toJSONSchema(LocalDecisionSchema, { io: 'input' }) } } },
          responses: { 200: { description: 'state, log index, the agreement put in force, whether the consumer got it' }, 400: problem, 403: problem, 404: problem, 409: problem },
        },
      },
      '/local/v1/agreements': { get: { summary: 'The agreements in force on this node and their hash', responses: { 200: { description: '{ policy, agreements }' } } } },
      '/local/v1/agreements/{id}/{action}': {
        post: {
          summary: 'Provider: suspend, resume or revoke an agreement (action), in force at once',
          requestBody: { required: true, content: { 'application/json': { schema: z.toJSONSchema(LocalReasonSchema, { io: 'input' }) } } },
          responses: { 200: { description: 'state, log index, policy' }, 400: problem, 403: problem, 404: problem, 409: problem },
        },
      },
      '/local/v1/disputes': {
        get: { summary: 'Disputes this node filed or received, with the deadline, the working days left before it (dueDaysLeft) and whether it is overdue; never the sealed note', responses: { 200: { description: '{ disputes }' } } },
        post: {
          summary: 'File a signed dispute about one exchange; the note is sealed, never logged in the clear',
          requestBody: { required: true, content: { 'application/json': { schema: z.toJSONSchema(LocalDisputeSchema, { io: 'input' }) } } },
          responses: { 201: { description: 'id, state, log indices, deadline' }, 400: problem, 403: problem, 502: problem },
        },
      },
      '/local/v1/disputes/{id}': { get: { summary: 'One dispute with its signed resolution (a pending one is first brought up to date from its provider)', responses: { 200: { description: 'the dispute' }, 404: problem } } },
      '/local/v1/disputes/{id}/{action}': {
        post: {
          summary: 'Provider: correct or reject a dispute (action), with a reason; signed, logged and sent to the consumer',
          requestBody: { required: true, content: { 'application/json': { schema: z.toJSONSchema(LocalReasonSchema, { io: 'input' }) } } },
          responses: { 200: { description: 'state, log index (and the correction\'s)' }, 400: problem, 403: problem, 404: problem, 409: problem },
        },
      },
      '/local/v1/status/overview': {
        get: {
          summary: 'Readiness and each check, manifest seq and expiry, key and certificate windows, log size, the last checkpoint with its cosigners, traffic totals, latency percentiles and alerts (counts, ids and digests only)',
          responses: { 200: { description: 'overview' }, 401: problem },
        },
      },
      '/local/v1/status/traffic': {
        get: {
          summary: 'Exchanges per minute, hour or day, split by service, peer, mode, decision or role (aggregated incrementally from the log)',
          parameters: Object.entries((z.toJSONSchema(TrafficQuerySchema, { io: 'input' }) as { properties: Record<string, unknown> }).properties)
            .map(([name, schema]) => ({ name, in: 'query', required: false, schema })),
          responses: { 200: { description: 'times, one count series per value, total, the summary, and providerLatency: the latency percentiles (ms) per service and mode as provider since the node started, from the exchange-duration histogram' }, 400: problem, 401: problem },
        },
      },
      '/local/v1/status/agreements': { get: { summary: "Each agreement with today's quota use, validity, services, purposes and modes", responses: { 200: { description: 'agreements' }, 401: problem } } },
      '/local/v1/status/peers': { get: { summary: 'Each member of the federation: endpoint, TLS pins, key ids, reachability, the last checkpoint of its log this node cosigned', responses: { 200: { description: 'members' }, 401: problem } } },
      '/local/v1/status/entry/{index}': {
        get: {
          summary: "One record of this node's log (ids, digests, counts: never personal data), as the audit page links findings to it",
          parameters: [{ name: 'index', in: 'path', required: true, schema: { type: 'integer', minimum: 0 } }],
          responses: { 200: { description: 'index and record' }, 400: problem, 401: problem, 404: problem },
        },
      },
      '/local/v1/audit/verify': {
        post: {
          summary: 'Run the checks of `verinode audit verify` on an export folder on this machine, under the root key this node trusts (operator and auditor)',
          requestBody: { required: true, content: { 'application/json': { schema: z.toJSONSchema(AuditRequestSchema, { io: 'input' }) } } },
          responses: { 200: { description: 'the report: ok, counts, checkpoint, findings (at most 500)' }, 400: problem, 401: problem, 403: problem },
        },
      },
      '/local/v1/audit/upload': {
        post: {
          summary: `The same checks on a log export uploaded from the console: the export folder as a tar archive (ustar; regular files and folders only, paths at most three segments deep; the folder itself or its files at the top), at most ${MAX_UPLOAD_BYTES} bytes and ${MAX_UPLOAD_FILES} files; streamed to a private temporary folder that is removed afterwards (operator and auditor)`,
          requestBody: { required: true, content: { [TAR_MEDIA_TYPE]: { schema: { type: 'string', format: 'binary' } } } },
          responses: { 200: { description: 'the report, as for /local/v1/audit/verify' }, 400: problem, 401: problem, 403: problem, 413: problem, 415: problem },
        },
      },
      '/local/v1/session': {
        post: {
          summary: 'Console sign-in: a token for an httpOnly, SameSite=Strict session cookie; the answer carries the CSRF token to send as x-csrf-token on every state-changing request',
          security: [],
          requestBody: { required: true, content: { 'application/json': { schema: z.toJSONSchema(SignInSchema, { io: 'input' }) } } },
          responses: { 200: { description: 'app, role, csrf, expires' }, 401: problem, 403: problem },
        },
        get: { summary: 'The current session (app, role, CSRF token)', responses: { 200: { description: 'session' }, 401: problem } },
        delete: { summary: 'Console sign-out', responses: { 200: { description: 'ok' }, 401: problem, 403: problem } },
      },
      '/local/v1/peers': { get: { summary: 'Departments in the federation', responses: { 200: { description: 'list of peers' } } } },
      '/local/v1/peers/{peer}/catalog': {
        get: {
          summary: "A peer's verified service catalog",
          parameters: [{ name: 'peer', in: 'path', required: true, schema: { type: 'string' } }],
          responses: { 200: { description: 'catalog' }, 502: problem },
        },
      },
      '/local/v1/catalog': {
        get: {
          summary: "The federation catalogue: every department's verified catalog (or the error that kept it), the authoritative source of each data item and the negative list",
          responses: { 200: { description: '{ federation, seq, governance: { sources, negativeList }, members: [{ member, name, ok, catalog | error }] }' } },
        },
      },
    },
  }
}
