/**
 * Mode assembly: which exchange modes this node answers in (plain always; oprf and he when a
 * service offers them) and which it can ask in (all three), with what each mode needs. The OPRF and
 * BFV worker pools start when first needed; the tag-set publisher is built here and started by the
 * runtime once the node is up (docs/PROTOCOL.md "oprf mode", "he mode").
 */
import { join } from 'node:path'
import type { Logger } from 'pino'
import type { ServiceConfig } from '../config/schema.js'
import type { Federation } from '../federation/federation.js'
import type { Mode } from '../protocol/vocabulary.js'
import type { DataSource } from '../sources/types.js'
import type { WorkerPool } from '../util/worker-pool.js'
import { createOprfPool } from '../oprf/oprf-pool.js'
import { TagSetPublisher, loadOprfSeed, oprfSeedFile } from '../oprf/tagset-service.js'
import { HeEvaluatorPool } from '../he/he-pool.js'
import type { PeerClient } from '../peers/client.js'
import { TagSetCache } from '../peers/tagset-cache.js'
import { ShardCache } from '../oprf/tagshards.js'
import type { Signer } from '../exchange/signer.js'
import type { ConsumerMode, ProviderMode } from '../exchange/modes/types.js'
import { plainProvider, plainConsumer } from '../exchange/modes/plain.js'
import { oprfProvider, oprfConsumer } from '../exchange/modes/oprf.js'
import { heProvider, heConsumer, HeKeyCache } from '../exchange/modes/he.js'

export interface ModeAssemblyOptions {
  services: readonly ServiceConfig[]
  source: DataSource | undefined
  keysDir: string
  dataDir: string
  /** BFV evaluator threads (config he.workers) */
  heWorkers: number | undefined
  signer: () => Signer
  federation: (at?: number) => Federation
  client: PeerClient
  logger: Logger
  now: () => number
  /** a shared OPRF worker pool (tests, benches); by default one is started when first needed */
  oprfPool?: WorkerPool | undefined
  /** how often tag-set rotation is checked, ms */
  tagSetTickMs?: number | undefined
}

export interface NodeModes {
  provider: ReadonlyMap<Mode, ProviderMode>
  consumer: ReadonlyMap<Mode, ConsumerMode>
  /** oprf mode: the signed tag sets this node publishes (undefined when no service offers oprf) */
  tagsets: TagSetPublisher | undefined
  /** oprf mode, as a consumer: the verified shards of providers' sharded sets (bounded, per epoch) */
  shardCache: ShardCache
  /** stops builds and the pools this assembly started */
  close(): Promise<void>
}

export async function assembleModes(o: ModeAssemblyOptions): Promise<NodeModes> {
  const { now } = o
  // oprf: the pool (started when first needed), the master seed and the publisher of the services
  // offering oprf; builds run off the request path.
  let ownPool: WorkerPool | undefined
  const oprfPool = (): WorkerPool => o.oprfPool ?? (ownPool ??= createOprfPool())
  const oprfServices = o.services.filter((s) => s.modes.includes('oprf'))
  const tagsets = oprfServices.length === 0 ? undefined : new TagSetPublisher({
    services: oprfServices,
    source: o.source,
    seed: await loadOprfSeed(oprfSeedFile(o.keysDir), { create: true }),
    signer: o.signer,
    pool: oprfPool,
    dir: join(o.dataDir, 'tagsets'),
    logger: o.logger,
    now,
    ...(o.tagSetTickMs !== undefined ? { tickMs: o.tagSetTickMs } : {}),
  })
  const shardCache = new ShardCache()
  const tagSetCache = new TagSetCache({
    endpointOf: (m) => o.federation(now()).endpoint(m),
    messageKey: (kid, at, member) => o.federation(at).messageKey(kid, at, member).key,
    client: o.client,
    now,
  })

  // he: the BFV evaluator pool (started when first needed), consumers' public keys kept under the
  // data folder, and this node's own key pair as a consumer (created when first needed).
  let hePool: HeEvaluatorPool | undefined
  const heOffered = o.services.some((s) => s.modes.includes('he'))
  const heAsConsumer = heConsumer({ now })

  const provider = new Map<Mode, ProviderMode>([['plain', plainProvider]])
  if (heOffered) {
    provider.set('he', heProvider({ pool: () => (hePool ??= new HeEvaluatorPool(o.heWorkers)), keys: new HeKeyCache({ dir: join(o.dataDir, 'he-keys'), now }) }))
  }
  if (tagsets !== undefined) provider.set('oprf', oprfProvider({ keys: tagsets, pool: oprfPool, now }))
  const consumer = new Map<Mode, ConsumerMode>([
    ['plain', plainConsumer],
    ['oprf', oprfConsumer({ tagsets: tagSetCache, shards: shardCache, pool: oprfPool })],
    ['he', heAsConsumer],
  ])

  return {
    provider,
    consumer,
    tagsets,
    shardCache,
    async close() {
      await tagsets?.close()
      await tagSetCache.close()
      await ownPool?.close()
      await hePool?.close()
      heAsConsumer.close()
    },
  }
}
