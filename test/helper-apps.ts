/**
 * The node's two Fastify apps without sockets, for `inject()` tests: a stub NodeRuntime whose
 * members a test replaces, and the one place that builds the apps from it (`buildApps`); and, one
 * level down, the public app built straight from its services (`publicAppOf`), for what the
 * NodeRuntime adapter would hide (a member already authenticated). Nothing here starts a node,
 * opens a store or listens.
 */
import type { Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { pino } from 'pino'
import type { FastifyBaseLogger } from 'fastify'
import { buildLocalApp, buildPublicApp, createPublicApp } from '../src/http/app.js'
import type { PublicServices } from '../src/http/plugins/public-services.js'
import type { ExchangeReply } from '../src/exchange/provider.js'
import { Metrics } from '../src/node/metrics.js'
import { VnError } from '../src/errors.js'
import type { NodeRuntime } from '../src/node/types.js'

export const APP_TOKEN = 'app-token-for-tests'
export const SELF = 'fj-psb'

/** Records the calls a stub received, by member name. */
export type Calls = Record<string, unknown[][]>

/**
 * A NodeRuntime whose every member is a stub: by default each call is recorded and answers
 * something plausible; `over` replaces members. Members a test does not expect to be reached throw.
 */
export function stubNode(over: Record<string, unknown> = {}): { node: NodeRuntime; calls: Calls } {
  const calls: Calls = {}
  const rec = <A extends unknown[], R>(name: string, f: (...a: A) => R) => (...a: A): R => {
    ;(calls[name] ??= []).push(a)
    return f(...a)
  }
  const unexpected = (name: string) => () => { throw new Error(`stub: ${name} was not expected to be called`) }
  const base = {
    self: SELF,
    config: { limits: { bodyBytes: 64 * 1024, skewMs: 60_000 } },
    logger: pino({ level: 'silent' }),
    metrics: new Metrics(SELF),
    federation: { get: unexpected('federation.get') },
    provider: { handle: rec('provider.handle', async () => ({ status: 200, body: { jws: 'resp' }, problem: false, xid: 'x' })) },
    consumer: {
      verify: rec('consumer.verify', async (r: { provider: string; service: string }) => ({ xid: 'x', provider: r.provider, service: r.service, status: 'ok', results: [] })),
      catalog: rec('consumer.catalog', async (peer: string) => ({ provider: peer, services: [] })),
    },
    catalogJws: rec('catalogJws', () => 'catalog.jws.sig'),
    tagsets: undefined,
    log: {
      size: async () => 0,
      leaf: unexpected('log.leaf'),
      entries: unexpected('log.entries'),
      inclusionProof: rec('log.inclusionProof', async () => [new Uint8Array([1, 2, 3])]),
      consistencyProof: rec('log.consistencyProof', async () => [new Uint8Array([4, 5])]),
    },
    peerLogs: { receipt: rec('peerLogs.receipt', async (peer: string, index: number) => ({ peer, index })) },
    housekeeping: unexpected('housekeeping'),
    witnessAll: unexpected('witnessAll'),
    acceptCosignature: rec('acceptCosignature', async () => undefined),
    checkpoint: rec('checkpoint', async () => 'origin\n0\nroot\n\n— sig\n'),
    ready: rec('ready', async () => ({ ok: true, checks: { log: { ok: true } } })),
    authenticateApp: rec('authenticateApp', (token: string | undefined) => {
      if (token !== APP_TOKEN) throw new VnError('VN_ERR_LOCAL_UNAUTHORIZED')
      return 'clerk-desk'
    }),
    appRole: () => 'operator',
    close: async () => undefined,
  }
  return { node: { ...base, ...over } as unknown as NodeRuntime, calls }
}

/** Both apps of `node`, ready for inject(), closed when the test ends. */
export async function buildApps(t: Test, node: NodeRuntime): Promise<{ publicApp: FastifyInstance; localApp: FastifyInstance }> {
  const publicApp = await buildPublicApp(node)
  const localApp = await buildLocalApp(node)
  t.teardown(async () => {
    await publicApp.close()
    await localApp.close()
  })
  await Promise.all([publicApp.ready(), localApp.ready()])
  return { publicApp, localApp }
}

/** A pino logger whose lines land in `lines` (parsed). */
export function capture(): { logger: FastifyBaseLogger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = []
  const logger = pino({ level: 'info' }, { write: (s: string) => { lines.push(JSON.parse(s) as Record<string, unknown>) } })
  return { logger: logger as FastifyBaseLogger, lines }
}

/**
 * The public app from stub services (every member signed in as `fj-tax`); `calls.proofs` records
 * the log reads, by kind and arguments.
 */
export async function publicAppOf(t: Test, over: Partial<PublicServices> = {}): Promise<{ app: FastifyInstance; calls: { proofs: [string, number, number][] } }> {
  const calls: { proofs: [string, number, number][] } = { proofs: [] }
  const services: PublicServices = {
    exchange: { handle: async (): Promise<ExchangeReply> => ({ status: 200, body: { jws: 'x' }, problem: false, xid: 'x' }) },
    catalogJws: () => 'catalog.jws',
    transparencyLog: {
      reader: {
        size: async () => 10,
        leaf: async () => new Uint8Array([0x7b, 0x7d]),
        entries: async (start, end) => { calls.proofs.push(['entries', start, end]); return [] },
        inclusionProof: async (index, size) => { calls.proofs.push(['inclusion', index, size]); return [] },
        consistencyProof: async (first, second) => { calls.proofs.push(['consistency', first, second]); return [] },
      },
      checkpoint: async () => 'note\n',
      acceptCosignature: async () => undefined,
    },
    authenticateMember: () => 'fj-tax',
    tagsets: undefined,
    readiness: async () => ({ ok: true, checks: {} }),
    metrics: new Metrics(SELF),
    ...over,
  }
  const app = await createPublicApp(services, { logger: pino({ level: 'silent' }) as FastifyBaseLogger, bodyLimit: 1 << 20 })
  t.teardown(() => app.close())
  return { app, calls }
}
