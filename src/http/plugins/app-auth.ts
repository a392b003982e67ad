/**
 * The local app's token check: every request but the OpenAPI description and /metrics (unknown
 * paths included) needs `Authorization: Bearer <token>` of a configured application, whose name the
 * request then carries as `request.appName`. Not encapsulated, so it guards the whole app.
 */
import fp from 'fastify-plugin'

export const OPENAPI_PATH = '/local/v1/openapi.json'
/** Prometheus scrapes without a token: the metrics carry ids and counts, never personal data. */
const OPEN_PATHS = new Set([OPENAPI_PATH, '/metrics'])

export const appAuth = fp(async (app) => {
  app.addHook('onRequest', async (req, reply) => {
    if (OPEN_PATHS.has(req.url)) return
    const h = req.headers.authorization
    const token = typeof h === 'string' && h.startsWith('Bearer ') ? h.slice(7) : undefined
    try {
      req.appName = app.authenticateApp(token)
    } catch (e) {
      // RFC 9110 §11.6.1: a 401 names the scheme that would work (RFC 6750 for bearer tokens).
      reply.header('www-authenticate', token === undefined ? 'Bearer realm="verinode-local"' : 'Bearer realm="verinode-local", error="invalid_token"')
      throw e
    }
  })
}, { name: 'verinode-app-auth', fastify: '5.x', dependencies: ['verinode-local-services'] })
