/**
 * The node configuration file (JSON) and its environment overrides, validated with zod.
 * This folder is the only reader of process.env (see load.ts).
 */
import { z } from 'zod'
import { fieldMapSchema, memberIdSchema, modeSchema, serviceIdSchema, sha256HexSchema, sm3HexSchema } from '../protocol/vocabulary.js'
import { FIELD_KINDS, type FieldKind } from '../protocol/canonicalize.js'
import { AgreementSchema } from '../policy/agreements.js'
import { DEFAULT_WORKING_DAYS, WorkingDaysSchema } from '../policy/working-days.js'
import { classificationSchema, dataItemSchema, personalInfoSchema, sharingSchema } from '../protocol/governance.js'

export const FieldKindSchema = z.enum(FIELD_KINDS as unknown as [FieldKind, ...FieldKind[]])

const titled = z.strictObject({ en: z.string().min(1), zh: z.string().min(1).optional() })

export const ServiceSchema = z.strictObject({
  id: serviceIdSchema,
  title: titled,
  description: z.string().default(''),
  /** question kind (docs/DESIGN.md "Question kinds and modes") */
  kind: z.enum(['match', 'membership', 'status', 'threshold', 'tier']),
  /**
   * Subject fields with their canonicalization kind. `key: true` fields are the lookup key bound
   * into the SQL; the other fields of a `match` service are compared against the row's columns.
   */
  fields: fieldMapSchema(
    z.strictObject({
      kind: FieldKindSchema,
      key: z.boolean().default(false),
      required: z.boolean().default(true),
      // SharingRules per field (docs/GOVERNANCE.md): each defaults to the service's; the service is
      // governed by the strictest of its own and its fields' values.
      sharing: sharingSchema.optional(),
      updateCycle: z.string().min(1).optional(),
      authority: z.string().min(1).optional(),
      classification: classificationSchema.optional(),
      personalInfo: personalInfoSchema.optional(),
    }),
  ),
  modes: z.array(modeSchema).min(1).default(['plain']),
  /**
   * Governance (docs/GOVERNANCE.md). Defaults keep older configs working: conditional (only under
   * an agreement, as before), general data, no personal information, the data item named like the
   * service.
   */
  /** 无条件共享 unconditional / 有条件共享 conditional / 不予共享 not-shared */
  sharing: sharingSchema.default('conditional'),
  updateCycle: z.string().default('daily'),
  /** the legal authority under which the department holds and shares the data */
  authority: z.string().default(''),
  /** the catalogue's data item this service answers about (default: the service id) */
  item: dataItemSchema.optional(),
  /** GB/T 43697-2024 grading: 一般 general / 重要 important / 核心 core (core is never offered) */
  classification: classificationSchema.default('general'),
  /** 个人信息 personal / 敏感个人信息 sensitive, or none */
  personalInfo: personalInfoSchema.default('none'),
  /** read-only SQL with named parameters (`:id`) for one subject */
  lookup: z.string().min(1),
  /** read-only SQL listing every record (OPRF tag-set builds) */
  enumerate: z.string().optional(),
  /** `status` services: the fixed set of answers */
  statuses: z.array(z.string()).optional(),
  /** `tier` services: bands, lowest first */
  tiers: z.array(z.strictObject({ id: z.string(), min: z.number() })).optional(),
  /** `oprf` mode (docs/PROTOCOL.md "oprf mode"): epoch length, tag length, per-consumer rate */
  oprf: z.strictObject({
    /** lifetime of one epoch key and its tag set; epochs are aligned to the Unix epoch */
    epochHours: z.number().min(1 / 3600).max(24 * 366).default(24),
    /** fixed tag length in bytes (4..8); default from the set size and false-positive budget */
    tagBytes: z.number().int().min(4).max(8).optional(),
    /** per-consumer OPRF evaluations per second on this service (token bucket); unlimited if absent */
    evaluationsPerSecond: z.number().positive().optional(),
    /** records per shard aimed at (the provider learns a single check's shard: one of about this many) */
    shardRecords: z.number().int().min(1).optional(),
    /** the node refuses shardRecords below this anonymity floor (default 1,000) */
    minAnonymitySet: z.number().int().min(1).optional(),
  }).optional(),
  /**
   * `he` mode (docs/PROTOCOL.md "he mode"): `valueLookup` is read-only SQL with the key fields as
   * named parameters, returning at most one row with an integer column `value` in fen (no row: no
   * record). The value never leaves the node in the clear; it only selects a step function under
   * the consumer's encryption. `threshold` services answer [value >= bound], `tier` services
   * answer [bound <= value < below].
   */
  he: z.strictObject({ valueLookup: z.string().min(1) }).optional(),
})
export type ServiceConfig = z.infer<typeof ServiceSchema>

const listen = z.strictObject({
  host: z.string().default('127.0.0.1'),
  port: z.number().int().min(0).max(65535).default(7100),
})

const NO_PASSWORD = 'must not be in verinode.json: give passwordFile or passwordEnv'

/**
 * A database server the node reads (PostgreSQL, MySQL/MariaDB): where (a URL or host, port,
 * database, user), and the password's place (a file, relative to the config file, or an
 * environment variable), never the password itself: one in `password` or in the URL is refused.
 */
function serverSourceSchema<K extends 'postgres' | 'mysql'>(kind: K, schemes: readonly string[]) {
  return z.strictObject({
    kind: z.literal(kind),
    url: z.string().min(1).optional(),
    host: z.string().min(1).optional(),
    port: z.number().int().min(1).max(65535).optional(),
    database: z.string().min(1).optional(),
    user: z.string().min(1).optional(),
    ...(kind === 'postgres' ? { schema: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, 'a plain identifier (letters, digits, _)').optional() } : {}),
    password: z.never({ error: NO_PASSWORD }).optional(),
    /** a file holding the password (one line; a final newline is dropped): PostgreSQL reads it for each new connection, MySQL when its pool opens */
    passwordFile: z.string().min(1).optional(),
    /** an environment variable holding the password */
    passwordEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name').optional(),
    /** connections in the pool (default 4); a tag-set build holds one while it runs */
    poolSize: z.number().int().min(1).max(100).optional(),
    /** a lookup running longer is cancelled: 503 VN_ERR_SOURCE_UNAVAILABLE (default 5000) */
    statementTimeoutMs: z.number().int().min(1).max(600_000).optional(),
    /** how long to wait for a connection (default 5000) */
    connectTimeoutMs: z.number().int().min(1).max(600_000).optional(),
    /** TLS to the database: `ca` a PEM file (relative to the config file), `rejectUnauthorized` default true */
    tls: z.strictObject({ ca: z.string().min(1).optional(), rejectUnauthorized: z.boolean().optional() }).optional(),
  }).superRefine((v, ctx) => {
    if (v.url === undefined && v.host === undefined) ctx.addIssue({ code: 'custom', path: ['url'], message: 'url or host is required' })
    if (v.passwordFile !== undefined && v.passwordEnv !== undefined) ctx.addIssue({ code: 'custom', path: ['passwordEnv'], message: 'give passwordFile or passwordEnv, not both' })
    if (v.url === undefined) return
    let u: URL
    try {
      u = new URL(v.url)
    } catch {
      ctx.addIssue({ code: 'custom', path: ['url'], message: 'not a URL' })
      return
    }
    if (!schemes.includes(u.protocol)) ctx.addIssue({ code: 'custom', path: ['url'], message: `expected a ${schemes.map((s) => `${s}//`).join(' or ')} URL` })
    if (u.password !== '' || u.searchParams.has('password')) ctx.addIssue({ code: 'custom', path: ['url'], message: `the password ${NO_PASSWORD}` })
  })
}

export const ConfigSchema = z.strictObject({
  member: memberIdSchema,
  /** paths are relative to the config file's folder */
  keysDir: z.string().default('keys'),
  dataDir: z.string().default('var'),
  federation: z.strictObject({
    rootKey: z.string().default('keys/federation-root.pub'),
    manifest: z.string().default('federation/manifest.jws'),
  }).default({ rootKey: 'keys/federation-root.pub', manifest: 'federation/manifest.jws' }),
  listen: listen.default({ host: '127.0.0.1', port: 7100 }),
  local: z.strictObject({
    host: z.string().default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(7180),
    /**
     * per-application tokens, stored as the SHA-256 (`tokenSha256`) or SM3 (`tokenSm3`, the `sm`
     * profile's) hex of the token, never the token itself; `role`:
     * `operator` (default) may call everything, `auditor` only reads (GET) and runs audits
     * (docs/CONSOLE.md)
     */
    apps: z.array(
      z
        .strictObject({ name: z.string().min(1), tokenSha256: sha256HexSchema.optional(), tokenSm3: sm3HexSchema.optional(), role: z.enum(['operator', 'auditor']).default('operator') })
        .refine((a) => (a.tokenSha256 === undefined) !== (a.tokenSm3 === undefined), { message: 'exactly one of tokenSha256 and tokenSm3 (the token hashed with SM3, as `verinode init --profile sm` writes)' }),
    ).default([]),
  }).default({ host: '127.0.0.1', port: 7180, apps: [] }),
  /**
   * Where GET /metrics (Prometheus) is served: without `port`, on the local listener (no token
   * needed for that path); with `port`, on a listener of its own at `host` (default: local.host)
   * and not on the local one. Never on the public listener.
   */
  metrics: z.strictObject({
    host: z.string().min(1).optional(),
    port: z.number().int().min(0).max(65535).optional(),
  }).default({}),
  dataSource: z.discriminatedUnion('kind', [
    z.strictObject({ kind: z.literal('sqlite'), path: z.string().min(1) }),
    serverSourceSchema('postgres', ['postgres:', 'postgresql:']),
    serverSourceSchema('mysql', ['mysql:', 'mariadb:']),
  ]).optional(),
  /**
   * Where the log, its evidence, the replay memory and the quota counts live: `sqlite` (default,
   * `dataDir/log.db`, one process) or `postgres` (a schema, default `verinode_log`, shared by the
   * replicas of this node; docs/OPERATIONS.md "The log on PostgreSQL"). The connection settings are
   * those of a `postgres` data source; the password comes from `passwordFile` / `passwordEnv`.
   */
  log: z.discriminatedUnion('kind', [
    z.strictObject({ kind: z.literal('sqlite') }),
    serverSourceSchema('postgres', ['postgres:', 'postgresql:']).safeExtend({
      /** how long a replica holds the checkpoint-signing lease without renewing it (default 30000) */
      checkpointLeaseMs: z.number().int().min(100).max(3_600_000).optional(),
      /** most leaves in one group-commit transaction (default 512) */
      maxBatch: z.number().int().min(1).max(4096).optional(),
    }),
  ]).default({ kind: 'sqlite' }),
  services: z.array(ServiceSchema).default([]),
  agreements: z.array(AgreementSchema).default([]),
  /**
   * Governance (docs/GOVERNANCE.md). Quotas of the sharing rules: `unconditionalDailyQuota` per
   * consumer, service and UTC day for unconditional services asked without an agreement (default
   * 1000); `gradedDailyQuota` caps every quota for important data or sensitive personal information
   * asked in plain mode (default 100). Applications and disputes: deadlines in working days (first
   * review and answer of an application, answer of a dispute) and the working-day calendar.
   */
  governance: z.strictObject({
    unconditionalDailyQuota: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).default(1000),
    gradedDailyQuota: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).default(100),
    reviewDays: z.number().int().min(0).max(365).default(2),
    answerDays: z.number().int().min(0).max(365).default(5),
    disputeDays: z.number().int().min(0).max(365).default(5),
    calendar: WorkingDaysSchema.default(DEFAULT_WORKING_DAYS),
  }).default({ unconditionalDailyQuota: 1000, gradedDailyQuota: 100, reviewDays: 2, answerDays: 5, disputeDays: 5, calendar: DEFAULT_WORKING_DAYS }),
  limits: z.strictObject({
    bodyBytes: z.number().int().positive().default(1024 * 1024),
    batchMax: z.number().int().positive().default(1000),
    skewMs: z.number().int().positive().default(60_000),
    retentionDays: z.number().positive().default(30),
    /** most exchanges a provider remembers for its replay window (2 × skewMs); beyond it new requests get 503 (log/storage.ts DEFAULT_REPLAY_MAX_ENTRIES; a test checks they agree) */
    replayMaxEntries: z.number().int().positive().default(300_000),
    /** most exchanges in progress at once, as provider and (separately) as consumer; beyond it 503 */
    inFlight: z.number().int().positive().default(1024),
  }).default({ bodyBytes: 1024 * 1024, batchMax: 1000, skewMs: 60_000, retentionDays: 30, replayMaxEntries: 300_000, inFlight: 1024 }),
  peers: z.strictObject({
    timeoutMs: z.number().int().positive().default(10_000),
    retries: z.number().int().min(0).max(10).default(2),
    connections: z.number().int().positive().default(16),
  }).default({ timeoutMs: 10_000, retries: 2, connections: 16 }),
  /** cosign peers' checkpoints every `everyMs` (0: never) */
  witness: z.strictObject({ everyMs: z.number().int().min(0).default(60_000) }).default({ everyMs: 60_000 }),
  /** `he` mode: worker threads evaluating BFV queries (default: cores - 1, at least 1); started on first use */
  he: z.strictObject({ workers: z.number().int().min(1).max(64).optional() }).optional(),
  /**
   * TLS on the public listener and towards https:// peers (mutual TLS, the peer's key pinned by the
   * manifest): PEM files, relative to the config file; by default `tls.crt` and `tls.key` in the
   * keys folder (so `VERINODE_KEYS_DIR` moves them with the other keys). Without it the public
   * listener is plain HTTP, for loopback tests only.
   */
  tls: z.strictObject({ cert: z.string().min(1).optional(), key: z.string().min(1).optional() }).optional(),
  /** allow plain HTTP to non-loopback peers (closed test networks only); warned about at start-up */
  insecure: z.boolean().default(false),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
})
export type Config = z.infer<typeof ConfigSchema>
export type ConfigInput = z.input<typeof ConfigSchema>
