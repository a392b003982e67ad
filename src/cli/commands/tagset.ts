/**
 * `verinode tagset build`: build a node's oprf tag sets on demand (docs/PROTOCOL.md "oprf mode").
 *
 * Opens the node's config, reads each oprf service's records in place through its `enumerate`
 * query, evaluates them with the epoch key (derived from keys/oprf.seed) on worker threads, and
 * writes `<dataDir>/tagsets/<service>@<epoch>.vnts`. A build is resumable: an interrupted run
 * leaves run files in `<service>@<epoch>.build/` that the next run reuses. A running node loads a
 * set from that folder when it starts an epoch, and replaces the set it serves when a newer file
 * for the current epoch appears (its next check, at most 30 s later), so this command also
 * rebuilds on demand. `--next` builds the next epoch's set ahead of the boundary.
 */
import { parseArgs } from 'node:util'
import { join } from 'node:path'
import { loadConfig } from '../../config/load.js'
import { openDataSource } from '../../sources/index.js'
import { dataSourceConfig } from '../../node/source-watch.js'
import { deriveEpochKey } from '../../oprf/tagset.js'
import { createOprfPool } from '../../oprf/oprf-pool.js'
import { ShardFile } from '../../oprf/tagshards.js'
import {
  buildServiceTagSet,
  checkShardConfig,
  epochAt,
  epochLengthMs,
  loadOprfSeed,
  oprfSeedFile,
  pruneStoredTagSets,
  openStoredTagSet,
  shardFilePath,
} from '../../oprf/tagset-service.js'
import type { Command, CliIo } from '../types.js'
import { EXIT_OK } from '../types.js'
import { okDoc } from '../output.js'
import { UsageError, asUsageError, intOption, reportUsage } from '../args.js'
import { VnError } from '../../errors.js'
import { checkServiceStatements } from '../../exchange/service-checks.js'

export interface TagSetBuildReport {
  service: string
  epoch: number
  path: string
  /** false when a valid set for that epoch already existed and --force was not given */
  built: boolean
  records?: number
  skipped?: number
  tags: number
  bytes: number
  tagBits: number
  /** shards of the sharded file (1: the full set only) */
  shards: number
  seconds?: number
  resumedChunks?: number
}

export interface TagSetBuildOptions {
  config: string
  env?: Record<string, string | undefined>
  service?: string
  next?: boolean
  force?: boolean
  /** worker threads (default: cores - 1); 0 evaluates in this thread (small sets) */
  workers?: number
  onProgress?: (service: string, records: number) => void
  now?: number
}

export async function buildTagSets(o: TagSetBuildOptions): Promise<TagSetBuildReport[]> {
  const loaded = await loadConfig(o.config, o.env ?? process.env)
  const cfg = loaded.config
  const services = cfg.services.filter((s) => s.modes.includes('oprf') && (o.service === undefined || s.id === o.service))
  if (services.length === 0) throw new UsageError(o.service === undefined ? `${o.config}: no service offers oprf mode` : `--service: service ${o.service} does not offer oprf mode`)
  if (cfg.dataSource === undefined) throw new VnError('VN_ERR_CONFIG_INVALID', 'dataSource: required to build tag sets')
  for (const s of services) checkShardConfig(s) // the node would refuse these shards: build none
  const statements: Record<string, string> = {}
  for (const s of services) if (s.enumerate !== undefined) statements[`services.${s.id}.enumerate`] = s.enumerate
  const seed = await loadOprfSeed(oprfSeedFile(loaded.path(cfg.keysDir)), { create: true })
  const dir = join(loaded.path(cfg.dataDir), 'tagsets')
  const source = await openDataSource(dataSourceConfig(cfg.dataSource, loaded), { statements })
  // An enumeration missing a column would build an empty set: refuse it as the node would.
  await checkServiceStatements(services, source).catch(async (e: unknown) => {
    await source.close()
    throw e
  })
  let pool: ReturnType<typeof createOprfPool> | undefined
  const out: TagSetBuildReport[] = []
  try {
    for (const svc of services) {
      const now = o.now ?? Date.now()
      const epoch = epochAt(now, epochLengthMs(svc)) + (o.next === true ? 1 : 0)
      const key = deriveEpochKey(seed, svc.id, epoch)
      const existing = o.force === true ? null : await openStoredTagSet(dir, svc.id, epoch, key)
      await existing?.close()
      // A set is up to date only with its shards beside it (a set from an older version has none).
      const shards = existing === null ? null : await ShardFile.open(shardFilePath(dir, svc.id, epoch), { service: svc.id, epoch, publicKey: key.publicKey })
      await shards?.close()
      if (existing !== null && shards !== null) {
        out.push({
          service: svc.id, epoch, path: join(dir, `${svc.id}@${epoch}.vnts`), built: false, tags: existing.header.count, bytes: existing.size,
          tagBits: existing.header.tagLength * 8, shards: shards.root.shards,
        })
        continue
      }
      const getPool = (): ReturnType<typeof createOprfPool> | undefined => {
        if (o.workers !== 0) pool ??= o.workers === undefined ? createOprfPool() : createOprfPool(o.workers)
        return pool
      }
      const r = await buildServiceTagSet({
        svc, source, key, epoch, dir, pool: getPool,
        onProgress: (p) => o.onProgress?.(svc.id, p.records),
      })
      await pruneStoredTagSets(dir, svc.id, epochAt(now, epochLengthMs(svc)))
      out.push({
        service: svc.id, epoch, path: r.path, built: true, records: r.records, skipped: r.skipped, tags: r.count, bytes: r.size,
        tagBits: r.tagLength * 8, shards: 2 ** r.shardBits, seconds: r.elapsedMs / 1000, resumedChunks: r.resumedChunks,
      })
    }
  } finally {
    await pool?.close()
    await source.close()
  }
  return out
}

export const tagsetCommand: Command = {
  name: 'tagset',
  summary: 'build oprf tag sets on demand (tagset build)',
  usage: 'verinode tagset build [--config verinode.json] [--service <id>] [--next] [--force] [--workers N]',
  async run(argv: string[], io: CliIo): Promise<number> {
    try {
      return await runBuild(argv, io)
    } catch (e0) {
      const e = asUsageError(e0)
      if (e instanceof UsageError) return reportUsage(io, 'tagset build', `usage: ${this.usage}`, e.detail)
      throw e
    }
  },
}

/** `tagset build`: parse, build, report; usage mistakes throw UsageError. */
async function runBuild(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', default: 'verinode.json' },
      service: { type: 'string' },
      next: { type: 'boolean', default: false },
      force: { type: 'boolean', default: false },
      workers: { type: 'string' },
    },
  })
  if (positionals[0] !== 'build') throw new UsageError(positionals[0] === undefined ? 'missing subcommand build' : `unknown subcommand ${JSON.stringify(positionals[0].slice(0, 40))}`)
  if (positionals.length > 1) throw new UsageError('unexpected argument after build')
  const o: TagSetBuildOptions = { config: values.config ?? 'verinode.json', env: io.env, next: values.next === true, force: values.force === true }
  if (values.service !== undefined) o.service = values.service
  // 0: evaluate in this thread
  const workers = intOption(values.workers, 'workers', 0, 256)
  if (workers !== undefined) o.workers = workers
  let last = 0
  if (io.tty && !io.json) {
    o.onProgress = (svc, records) => {
      const t = performance.now()
      if (t - last < 250) return
      last = t
      io.err(`  ${svc}: ${records} records evaluated`)
    }
  }
  const reports = await buildTagSets(o)
  if (io.json) {
    io.out(okDoc('tagset build', { tagsets: reports }))
    return EXIT_OK
  }
  for (const r of reports) {
    if (!r.built) io.out(`${r.service} epoch ${r.epoch}: up to date (${r.tags} tags, ${r.bytes} bytes) ${r.path}`)
    else {
      io.out(`${r.service} epoch ${r.epoch}: ${r.records} records (${r.skipped} skipped) → ${r.tags} tags of ${r.tagBits} bits in ${r.shards} shard(s), ` +
        `${r.bytes} bytes, ${r.seconds?.toFixed(1)} s${r.resumedChunks ? `, ${r.resumedChunks} chunks resumed` : ''}`)
      io.out(`  ${r.path}`)
    }
  }
  return EXIT_OK
}
