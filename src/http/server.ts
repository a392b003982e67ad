/**
 * Starts a node's two listeners: the public one (peers) and the internal one (the department's own
 * applications, usually bound to loopback or an internal interface). Only this file listens.
 */
import type { FastifyInstance } from 'fastify'
import { openNode, type OpenNodeOptions } from '../node/runtime.js'
import type { NodeRuntime } from '../node/types.js'
import { buildPublicApp, buildLocalApp, buildMetricsApp } from './app.js'

export interface RunningNode {
  node: NodeRuntime
  publicApp: FastifyInstance
  localApp: FastifyInstance
  publicUrl: string
  localUrl: string
  /** where GET /metrics is served: `${localUrl}/metrics`, or the metrics listener's (config `metrics.port`) */
  metricsUrl: string
  close(): Promise<void>
}

const urlOf = (app: FastifyInstance, scheme = 'http'): string => {
  const a = app.server.address()
  if (a === null || typeof a === 'string') return String(a)
  const host = a.family === 'IPv6' ? `[${a.address}]` : a.address
  return `${scheme}://${host}:${a.port}`
}

export async function startNode(configPath: string, opts: OpenNodeOptions = {}): Promise<RunningNode> {
  const node = await openNode(configPath, opts)
  let publicApp: FastifyInstance | undefined
  let localApp: FastifyInstance | undefined
  let metricsApp: FastifyInstance | undefined
  try {
    publicApp = await buildPublicApp(node)
    localApp = await buildLocalApp(node)
    // Timeouts: a slow or stuck client must not hold a socket forever.
    publicApp.server.requestTimeout = 30_000
    publicApp.server.headersTimeout = 10_000
    publicApp.server.keepAliveTimeout = 65_000
    await publicApp.listen({ host: node.config.listen.host, port: node.config.listen.port })
    await localApp.listen({ host: node.config.local.host, port: node.config.local.port })
    metricsApp = await buildMetricsApp(node)
    await metricsApp?.listen({ host: node.config.metrics.host ?? node.config.local.host, port: node.config.metrics.port ?? 0 })
  } catch (e) {
    await metricsApp?.close()
    await localApp?.close()
    await publicApp?.close()
    await node.close()
    throw e
  }
  const p = publicApp
  const l = localApp
  const m = metricsApp
  let closing: Promise<void> | undefined
  return {
    node,
    publicApp: p,
    localApp: l,
    publicUrl: urlOf(p, node.tls === undefined ? 'http' : 'https'),
    localUrl: urlOf(l),
    metricsUrl: `${urlOf(m ?? l)}/metrics`,
    close() {
      closing ??= (async () => {
        await m?.close()
        await l.close()
        await p.close()
        await node.close()
      })()
      return closing
    },
  }
}
