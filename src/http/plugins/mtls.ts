/**
 * Mutual TLS on the public listener (issue 14 §1): every request on a TLS connection must come with
 * a client certificate whose key the manifest pins for a member; the request then carries that
 * member as `req.tlsMember`, and the routes serve only what that member signed (the exchange's
 * issuer, a signed GET's issuer). Liveness and readiness probes are exempt, so that a container's
 * health check needs no certificate. A refusal is logged with its code and the member ids
 * involved, never with anything from the request body.
 */
import fp from 'fastify-plugin'
import type { TLSSocket } from 'node:tls'
import { isVnError, VnError } from '../../errors.js'

export interface MtlsOptions {
  /** the member whose pinned certificate the connection presented; throws VN_ERR_TLS_CLIENT_* */
  clientMember(socket: TLSSocket): string
}

declare module 'fastify' {
  interface FastifyRequest {
    /** the member the TLS client certificate belongs to (undefined on a plain-HTTP listener) */
    tlsMember: string | undefined
  }
}

const EXEMPT = new Set(['/healthz', '/readyz'])

export const mtls = fp<MtlsOptions>(async (app, o) => {
  app.decorateRequest('tlsMember', undefined)
  app.addHook('onRequest', async (req) => {
    const socket = req.raw.socket as TLSSocket
    if (socket.encrypted !== true) return
    const path = req.url.split('?', 1)[0] ?? ''
    try {
      req.tlsMember = o.clientMember(socket)
    } catch (e) {
      if (EXEMPT.has(path)) return
      if (isVnError(e)) req.log.warn({ code: e.code, path }, 'refused: TLS client not accepted')
      throw e
    }
  })
}, { name: 'verinode-mtls', fastify: '5.x' })

/**
 * Refuses a request signed by another member than the TLS client (`iss` from the verified JWS).
 * @throws VN_ERR_TLS_CLIENT_NOT_ISSUER
 */
export function assertTlsIssuer(tlsMember: string | undefined, iss: string): void {
  if (tlsMember !== undefined && tlsMember !== iss) {
    throw new VnError('VN_ERR_TLS_CLIENT_NOT_ISSUER', `signed by ${iss}, TLS client certificate of ${tlsMember}`)
  }
}
