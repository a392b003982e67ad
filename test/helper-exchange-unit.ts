/**
 * Fixture of the exchange unit tier: a provider and a consumer built directly (no sockets, no
 * database file) over the in-memory stores (src/log/memory-store.ts), with fixed keys, one
 * membership service, an in-memory data source and one agreement. The consumer reaches the
 * provider through a `PeerClient` stand-in that calls `Provider.handle` (or whatever a test puts
 * in its place).
 */
import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto'
import { VnError } from '../src/errors.js'
import { signJwsJson, type KeyResolver } from '../src/crypto/jws.js'
import { ServiceSchema, type ServiceConfig } from '../src/config/schema.js'
import type { DataSource, Row, SqlParams } from '../src/sources/types.js'
import { AgreementSchema, agreementSetHash, type Agreement } from '../src/policy/agreements.js'
import { decideAsync } from '../src/policy/decide.js'
import { memoryNodeStores } from '../src/log/memory-store.js'
import { StoreNodeLog, parseLeaf } from '../src/log/node-log.js'
import type { LogRecord } from '../src/log/records.js'
import { Provider, type ProviderDeps } from '../src/exchange/provider.js'
import { Consumer, newXid } from '../src/exchange/consumer.js'
import { catalogOf, signCatalog } from '../src/exchange/catalog.js'
import { plainConsumer, plainProvider } from '../src/exchange/modes/plain.js'
import { discloseSubjects } from '../src/exchange/modes/disclosed-subjects.js'
import type { Signer } from '../src/exchange/signer.js'
import type { PeerClient, PeerReply } from '../src/peers/client.js'
import { REQUEST_TYP, type RequestPayload } from '../src/protocol/envelope.js'

export const PROVIDER = 'tax-dept'
export const CONSUMER = 'bank-dept'
export const SERVICE = 'tax.registered'
export const PURPOSE = 'account opening'
export const BASIS = 'Art. 5, test regulation'
/** 2 December 2026, 09:00 UTC */
export const NOW = Date.UTC(2026, 11, 2, 9)
export const LISTED = new Set(['A-1', 'A-2', 'A-3'])

const keyPair = (member: string): Signer & { publicKey: KeyObject } => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  return { kid: `${member}#k1`, privateKey, publicKey }
}
export const KEYS = { [PROVIDER]: keyPair(PROVIDER), [CONSUMER]: keyPair(CONSUMER) }

/** The manifest's message keys, as the federation would resolve them. */
export const resolver = (): KeyResolver => (kid) => {
  const k = Object.values(KEYS).find((x) => x.kid === kid)
  if (k === undefined) throw new VnError('VN_ERR_JWS_KEY_NOT_VALID', 'unknown kid')
  return k.publicKey
}

export const service: ServiceConfig = ServiceSchema.parse({
  id: SERVICE,
  title: { en: 'Registered taxpayer' },
  kind: 'membership',
  fields: { ref: { kind: 'text', key: true } },
  lookup: 'SELECT 1 FROM registered WHERE ref = :ref',
})

export function agreement(over: Partial<Agreement> = {}): Agreement {
  return AgreementSchema.parse({
    id: 'ag-bank-tax', consumer: CONSUMER, services: [SERVICE], purposes: [PURPOSE], basis: BASIS,
    validFrom: '2026-01-01T00:00:00Z', validUntil: '2028-01-01T00:00:00Z', dailyQuota: 3, modes: ['plain'], ...over,
  })
}

/** A data source over `LISTED` that counts its lookups. */
export function source(): DataSource & { lookups: number } {
  return {
    kind: 'memory',
    lookups: 0,
    async assertReadOnly() {},
    async describe() { return { columns: ['one'] } },
    async query(_sql: string, params: SqlParams): Promise<Row[]> {
      this.lookups++
      return LISTED.has(String(params.ref)) ? [{ one: 1 }] : []
    },
    // eslint-disable-next-line require-yield
    async *iterate() {
      throw new Error('not used')
    },
    async ping() {},
    async close() {},
  }
}

export interface ProviderUnderTest {
  provider: Provider
  stores: ReturnType<typeof memoryNodeStores>
  data: ReturnType<typeof source>
  /** the provider's log, parsed */
  records(): Promise<LogRecord[]>
}

export async function makeProvider(opts: { agreements?: Agreement[]; now?: () => number; deps?: Partial<ProviderDeps> } = {}): Promise<ProviderUnderTest> {
  const stores = memoryNodeStores({ evidenceKey: new Uint8Array(randomBytes(32)) })
  const agreements = opts.agreements ?? [agreement()]
  const data = source()
  const provider = new Provider({
    self: PROVIDER,
    signer: () => KEYS[PROVIDER],
    resolver: () => resolver(),
    services: new Map([[SERVICE, service]]),
    authorize: (r) => decideAsync(r, agreements, stores.quotas),
    policyHash: () => agreementSetHash(agreements),
    source: data,
    modes: new Map([['plain', plainProvider]]),
    log: await StoreNodeLog.open(stores.log),
    replay: stores.replay,
    evidence: stores.evidence,
    limits: { batchMax: 10, skewMs: 300_000, retentionDays: 30 },
    now: opts.now ?? (() => NOW),
    ...opts.deps,
  })
  return { provider, stores, data, records: () => recordsOf(stores.log) }
}

export async function recordsOf(log: { size(): Promise<number>; entries(s: number, e: number): Promise<Uint8Array[]> }): Promise<LogRecord[]> {
  return (await log.entries(0, await log.size())).map(parseLeaf)
}

/** A signed plain request for `refs`, as a consumer would send it (the consumer's own key by default). */
export function plainRequest(refs: readonly string[], over: Partial<RequestPayload> = {}, signer: Signer = KEYS[CONSUMER]): { body: { jws: string; disclosures: string[] }; payload: RequestPayload } {
  const { digests, disclosures } = discloseSubjects(refs.map((ref) => ({ ref })))
  const payload: RequestPayload = {
    v: 1, xid: newXid(), iat: NOW, iss: CONSUMER, aud: PROVIDER, svc: SERVICE, purpose: PURPOSE, basis: BASIS, mode: 'plain',
    q: { subjects: digests }, ...over,
  }
  return { body: { jws: signJwsJson(payload, signer.privateKey, signer.kid, REQUEST_TYP), disclosures }, payload }
}

/** The payload of a compact JWS, unverified (tests read what was signed). */
export const claimsOf = (jws: string): Record<string, unknown> => JSON.parse(Buffer.from(jws.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>

/** What the consumer's `PeerClient.post('/v1/exchange')` returns for a request body. */
export type ExchangeRoute = (body: { jws: string; disclosures?: string[] }) => Promise<PeerReply>

/** A consumer whose peer client serves the provider's signed catalog and sends exchanges to `route`. */
export interface ConsumerUnderTest {
  consumer: Consumer
  stores: ReturnType<typeof memoryNodeStores>
  /** the consumer's log, parsed */
  records(): Promise<LogRecord[]>
  /** exchanges posted to the provider */
  posts: number
}

export async function makeConsumer(route: ExchangeRoute, opts: { now?: () => number; inFlight?: number; catalog?: (signed: string) => string } = {}): Promise<ConsumerUnderTest> {
  const stores = memoryNodeStores({ evidenceKey: new Uint8Array(randomBytes(32)) })
  const signed = signCatalog(catalogOf(PROVIDER, [service], 10, NOW), KEYS[PROVIDER])
  const catalog = opts.catalog?.(signed) ?? signed
  let posts = 0
  const client = {
    async get(_endpoint: string, path: string): Promise<PeerReply> {
      if (path !== '/v1/catalog') throw new Error(`unexpected GET ${path}`)
      return { statusCode: 200, contentType: 'application/json', json: { jws: catalog } }
    },
    async post(_endpoint: string, path: string, body: string): Promise<PeerReply> {
      if (path !== '/v1/exchange') throw new Error(`unexpected POST ${path}`)
      posts++
      return route(JSON.parse(body) as { jws: string; disclosures?: string[] })
    },
  } as unknown as PeerClient
  const consumer = new Consumer({
    self: CONSUMER,
    signer: () => KEYS[CONSUMER],
    resolver: () => resolver(),
    endpointOf: (m) => `http://${m}.invalid`,
    client,
    modes: new Map([['plain', plainConsumer]]),
    log: await StoreNodeLog.open(stores.log),
    limits: { batchMax: 10, retentionDays: 30, ...(opts.inFlight === undefined ? {} : { inFlight: opts.inFlight }) },
    now: opts.now ?? (() => NOW),
  })
  return {
    consumer,
    stores,
    records: () => recordsOf(stores.log),
    get posts() {
      return posts
    },
  }
}

/** A route to a real provider: the reply the provider's HTTP layer would send. */
export const toProvider = (p: Provider): ExchangeRoute => async (body) => {
  try {
    const r = await p.handle(body)
    return { statusCode: r.status, contentType: r.problem ? 'application/problem+json' : 'application/json', json: r.body }
  } catch (e) {
    const err = e instanceof VnError ? e : new VnError('VN_ERR_INTERNAL')
    return { statusCode: err.statusCode, contentType: 'application/problem+json', json: err.toProblem() }
  }
}
