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
  app.addHook('onRequest', async (req) => {
    if (OPEN_PATHS.has(req.url)) return
    const h = req.headers.authorization
    const token = typeof h === 'string' && h.startsWith('Bearer ') ? h.slice(7) : undefined
    req.appName = app.authenticateApp(token)
  })
}, { name: 'verinode-app-auth', fastify: '5.x', dependencies: ['verinode-local-services'] })
