/**
 * GET /metrics (Prometheus text, prom-client). Registered on the local app, or on a metrics-only
 * app when the config gives `metrics.port`; never on the public (peer) listener.
 */
import type { FastifyInstance } from 'fastify'
import type { Metrics } from '../../node/metrics.js'

const METRICS_PATH = '/metrics'

export function metricsRoute(metrics: Metrics) {
  return async (app: FastifyInstance): Promise<void> => {
    app.get(METRICS_PATH, async (_req, reply) =>
      reply.header('content-type', metrics.registry.contentType).send(await metrics.registry.metrics()))
  }
}
