/**
 * The one error handler: every error leaves as an RFC 9457 problem with a stable VN_ERR_* code.
 * Fastify's own parser errors are mapped onto our codes; anything unexpected is a 500. A 5xx body
 * carries the code, title and status only: its detail and cause (a SQLite message, a peer's host)
 * are internals, logged under `err` with the request id and never sent (error details carry no
 * personal data, src/errors.ts).
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { PUBLIC_DETAIL_CODES, VnError, isVnError } from '../errors.js'

function toVnError(err: unknown): VnError {
  if (isVnError(err)) return err
  const e = err as FastifyError
  switch (e?.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new VnError('VN_ERR_REQ_TOO_LARGE')
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new VnError('VN_ERR_REQ_UNSUPPORTED_MEDIA', 'send application/json')
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new VnError('VN_ERR_REQ_MALFORMED_JSON')
    default:
      break
  }
  if (err instanceof SyntaxError || (e?.statusCode === 400 && /JSON/i.test(String(e?.message)))) {
    return new VnError('VN_ERR_REQ_MALFORMED_JSON')
  }
  if (e?.statusCode === 404) return new VnError('VN_ERR_REQ_NOT_FOUND')
  return new VnError('VN_ERR_INTERNAL', undefined, { cause: err })
}

/** Refusals that clear by themselves: the client is told when to try again (seconds). */
const RETRY_AFTER: Partial<Record<string, string>> = { VN_ERR_EXCH_REPLAY_FULL: '5', VN_ERR_EXCH_BUSY: '1' }

export function sendProblem(reply: FastifyReply, err: VnError, extra?: Record<string, unknown>): FastifyReply {
  const retry = RETRY_AFTER[err.code]
  if (retry !== undefined) reply.header('retry-after', retry)
  return reply
    .code(err.statusCode)
    .header('content-type', 'application/problem+json; charset=utf-8')
    .send({ ...problemBody(err), ...extra })
}

/**
 * The problem body for `err`: without `detail` when it is a server error, except for the codes
 * whose detail is public by construction (a refused or failed peer answer, src/errors.ts).
 */
function problemBody(err: VnError): Record<string, unknown> {
  const p: Record<string, unknown> = { ...err.toProblem() }
  if (err.statusCode >= 500 && !PUBLIC_DETAIL_CODES.has(err.code)) delete p.detail
  return p
}

export function errorHandler(onReject?: (code: string) => void) {
  return function handler(this: unknown, error: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
    const vn = toVnError(error)
    if (vn.statusCode >= 500) request.log.error({ err: vn.cause ?? vn, code: vn.code, detail: vn.detail }, 'request failed')
    else request.log.info({ code: vn.code }, 'request refused')
    onReject?.(vn.code)
    return sendProblem(reply, vn)
  }
}

export function notFoundHandler(_req: FastifyRequest, reply: FastifyReply): FastifyReply {
  return sendProblem(reply, new VnError('VN_ERR_REQ_NOT_FOUND'))
}
