/**
 * A whole federation of four departments on loopback, built in one folder: the authority, four
 * nodes with their keys, configs, services, agreements and synthetic databases, and a signed
 * manifest. Used by `verinode demo`, by the tests (with small sizes) and by the benchmarks.
 */
import { randomInt } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises'
import { isAbsolute, join } from 'node:path'
import { createAuthority, addMember, addNegative, setSource, signAuthorityManifest, AUTHORITY_FILES } from '../federation/authority.js'
import { initNode } from '../node/init.js'
import type { ProfileName } from '../crypto/profile.js'
import { createDemoDatabases, makeUscc, DEMO_FILES, ENTERPRISE_STATUSES, type DemoDataset, type DemoSizes, type DemoDepartment } from './synthetic.js'
import type { ConfigInput } from '../config/schema.js'
import type { Agreement } from '../policy/agreements.js'
import { addDeclaredIncomes, INCOME_VALUE_SQL, type DemoIncomes } from './income.js'
import { DEMO_NAMESPACE, demoSqlFor, loadDemoIntoServer, type DemoServerSource } from './server-data.js'

export interface DemoMember {
  id: string
  name: string
  department: DemoDepartment
  orgBody: string
}

const DEMO_MEMBERS: readonly DemoMember[] = [
  { id: 'fj-psb', name: '福建省公安厅', department: 'publicSecurity', orgBody: '00300001' },
  { id: 'fj-amr', name: '福建省市场监督管理局', department: 'marketRegulator', orgBody: '00300002' },
  { id: 'fj-tax', name: '国家税务总局福建省税务局', department: 'taxBureau', orgBody: '00300003' },
  { id: 'fj-credit', name: '福建省公共信用信息中心', department: 'creditCentre', orgBody: '00300004' },
]

type ServiceInput = NonNullable<ConfigInput['services']>[number]

/** The four demo services (lookup SQL runs against the department's own SQLite file, read-only). */
const DEMO_SERVICES: Record<DemoDepartment, ServiceInput[]> = {
  publicSecurity: [{
    id: 'identity.match',
    title: { en: 'Resident identity match', zh: '居民身份核验' },
    description: 'Do this resident ID number and this name belong together? Per-field match flags.',
    kind: 'match',
    fields: { id: { kind: 'residentId', key: true }, name: { kind: 'name' } },
    modes: ['plain', 'oprf'],
    sharing: 'conditional',
    updateCycle: 'real-time',
    authority: 'Resident Identity Card Law of the PRC',
    item: 'population.resident-identity',
    personalInfo: 'personal',
    lookup: 'SELECT name FROM residents WHERE id_number = :id',
    enumerate: 'SELECT id_number AS id, name FROM residents',
  }, {
    // listed in the catalogue so that departments know it exists, never answered (不予共享)
    id: 'household.detail',
    title: { en: 'Household register details', zh: '户籍登记详细信息' },
    description: 'Whether a resident has a household register entry here. Not shared: listed, never answered.',
    kind: 'membership',
    fields: { id: { kind: 'residentId', key: true } },
    modes: ['plain'],
    sharing: 'not-shared',
    updateCycle: 'real-time',
    authority: 'Regulations of the PRC on Household Registration',
    item: 'population.household-register',
    personalInfo: 'personal',
    lookup: 'SELECT 1 AS listed FROM residents WHERE id_number = :id',
  }],
  marketRegulator: [{
    id: 'enterprise.status',
    title: { en: 'Enterprise registration status', zh: '企业登记状态' },
    description: 'Registration status of an enterprise by unified social credit code.',
    kind: 'status',
    fields: { uscc: { kind: 'uscc', key: true } },
    modes: ['plain'],
    sharing: 'unconditional',
    updateCycle: 'daily',
    authority: 'Regulation on the Registration of Market Entities (2022)',
    item: 'market.enterprise-status',
    lookup: 'SELECT status FROM enterprises WHERE uscc = :uscc',
    enumerate: 'SELECT uscc, status FROM enterprises',
    statuses: [...ENTERPRISE_STATUSES],
  }],
  taxBureau: [{
    id: 'tax.compliance',
    title: { en: 'Tax compliance for a year', zh: '纳税情况核验' },
    description: 'Did the enterprise pay its tax for the year in full, and (optionally) at least the bound (fen)?',
    kind: 'threshold',
    fields: { uscc: { kind: 'uscc', key: true }, year: { kind: 'year', key: true }, bound: { kind: 'amount', required: false } },
    modes: ['plain', 'he'],
    sharing: 'conditional',
    updateCycle: 'monthly',
    authority: 'Law of the PRC on the Administration of Tax Collection, art. 8',
    item: 'tax.payment-compliance',
    lookup: 'SELECT tax_paid_fen >= tax_due_fen AS paid_in_full, tax_paid_fen >= CAST(:bound AS INTEGER) AS meets_bound ' +
      'FROM tax_payments WHERE uscc = :uscc AND year = CAST(:year AS INTEGER)',
    enumerate: 'SELECT uscc, year FROM tax_payments',
    // he mode: the amount paid, compared under the consumer's encryption with its hidden bound
    he: { valueLookup: 'SELECT tax_paid_fen AS value FROM tax_payments WHERE uscc = :uscc AND year = CAST(:year AS INTEGER)' },
  }, {
    id: 'income.band',
    title: { en: 'Declared annual income band', zh: '个人年度申报收入档次核验' },
    description: 'Band of the individual income declared for a year. plain: the tier from the menu; ' +
      'he: is the income within the asker\'s hidden band [bound, below) (fen, grid points)?',
    kind: 'tier',
    fields: {
      id: { kind: 'residentId', key: true }, year: { kind: 'year', key: true },
      bound: { kind: 'amount', required: false }, below: { kind: 'amount', required: false },
    },
    modes: ['plain', 'he'],
    sharing: 'conditional',
    updateCycle: 'yearly',
    authority: 'Individual Income Tax Law of the PRC, art. 10-13',
    item: 'tax.personal-income',
    // an individual's income: sensitive personal information (敏感个人信息), so at most
    // governance.gradedDailyQuota a day in plain mode; he mode keeps the agreement's quota
    personalInfo: 'sensitive',
    lookup: INCOME_VALUE_SQL,
    tiers: [{ id: 'under-30k', min: 0 }, { id: '30k-120k', min: 3_000_000 }, { id: '120k-500k', min: 12_000_000 }, { id: '500k-plus', min: 50_000_000 }],
    he: { valueLookup: INCOME_VALUE_SQL },
  }],
  creditCentre: [{
    id: 'credit.dishonest',
    title: { en: 'Dishonest judgment debtor list', zh: '失信被执行人名单' },
    description: 'Is this person or organisation on the list of dishonest judgment debtors?',
    kind: 'membership',
    fields: { id: { kind: 'partyId', key: true } },
    modes: ['plain', 'oprf'],
    sharing: 'conditional',
    updateCycle: 'daily',
    authority: 'SPC Provisions on Publishing the List of Dishonest Judgment Debtors',
    item: 'credit.dishonest-debtors',
    personalInfo: 'personal',
    lookup: 'SELECT 1 AS listed FROM dishonest_debtors WHERE subject_id = :id',
    enumerate: 'SELECT subject_id AS id FROM dishonest_debtors',
  }],
}

const YEAR_MS = 365 * 86_400_000
/** Body limit of the demo's he provider: 1,000 subjects (8 ciphertexts) and the key fit. */
const HE_DEMO_BODY_BYTES = 8 * 1024 * 1024

/** Who may ask whom: the agreements each provider keeps in its config. */
function demoAgreements(now: number): Record<string, Agreement[]> {
  const validFrom = new Date(now - 86_400_000).toISOString()
  const validUntil = new Date(now + YEAR_MS).toISOString()
  const a = (id: string, consumer: string, services: string[], purposes: string[], basis: string, dailyQuota: number, modes: Agreement['modes'] = ['plain']): Agreement =>
    ({ id, consumer, services, purposes, basis, validFrom, validUntil, dailyQuota, modes })
  return {
    'fj-psb': [
      a('psb-tax-identity', 'fj-tax', ['identity.match'], ['taxpayer-registration'], 'Tax Collection Administration Law art. 15', 100_000, ['plain', 'oprf']),
      a('psb-credit-identity', 'fj-credit', ['identity.match'], ['credit-record-correction'], 'Social Credit Regulations art. 20', 1_000, ['plain', 'oprf']),
    ],
    'fj-amr': [
      a('amr-credit-status', 'fj-credit', ['enterprise.status'], ['credit-record-maintenance'], 'Social Credit Regulations art. 12', 100_000),
      a('amr-tax-status', 'fj-tax', ['enterprise.status'], ['taxpayer-registration'], 'Tax Collection Administration Law art. 15', 100_000),
    ],
    'fj-tax': [
      a('tax-credit-compliance', 'fj-credit', ['tax.compliance'], ['credit-evaluation'], 'Social Credit Regulations art. 12', 100_000, ['plain', 'he']),
      a('tax-credit-income', 'fj-credit', ['income.band'], ['credit-evaluation'], 'Social Credit Regulations art. 12', 10_000, ['plain', 'he']),
    ],
    'fj-credit': [
      a('credit-amr-dishonest', 'fj-amr', ['credit.dishonest'], ['registration-review'], 'Regulation on the Registration of Market Entities art. 12', 100_000, ['plain', 'oprf']),
      a('credit-tax-dishonest', 'fj-tax', ['credit.dishonest'], ['tax-credit-rating'], 'Tax Collection Administration Law art. 45', 5, ['plain', 'oprf']),
    ],
  }
}

export interface DemoFederation {
  dir: string
  federation: string
  dataset: DemoDataset
  /** declared incomes of the `income.band` service (tax bureau) */
  incomes: DemoIncomes
  /** member id → its config path and the local API token of its default application */
  nodes: Record<string, { configPath: string; appToken: string; auditorToken?: string | undefined; publicPort: number; localPort: number }>
  authorityDir: string
}

/** Where the kernel's ephemeral ports start (Linux: /proc; elsewhere the IANA range's 49152). */
function ephemeralStart(): number {
  try {
    const first = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0])
    return Number.isInteger(first) && first > 0 ? first : 49_152
  } catch {
    return 49_152
  }
}

const canListen = (port: number): Promise<boolean> => new Promise((resolve) => {
  const s = createServer()
  s.once('error', () => resolve(false))
  s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)))
})

/**
 * A free TCP port on loopback for a node to be given in its config, picked below the kernel's
 * ephemeral range. A port from that range (bind to 0) can be taken by any outgoing connection of
 * any process on the machine before the node binds it, or between a node's stop and its restart
 * on the same port (seen in tests running four files at once: EADDRINUSE on a restart). Below it,
 * only a listener can take it. Falls back to bind-to-0 when no such port is found.
 */
export async function freePort(): Promise<number> {
  const low = 20_000
  const high = ephemeralStart() - 1
  for (let i = 0; high > low && i < 64; i++) {
    const port = low + randomInt(high - low + 1)
    if (await canListen(port)) return port
  }
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const a = s.address()
      const port = typeof a === 'object' && a !== null ? a.port : 0
      s.close(() => resolve(port))
    })
  })
}

export interface BuildDemoOptions {
  sizes?: DemoSizes
  seed?: string
  now?: number
  /** override config fields for every node (limits, logLevel, ...) */
  configOverrides?: Partial<ConfigInput>
  federation?: string
  /**
   * Serve the data from a PostgreSQL or MySQL/MariaDB server instead of the SQLite files: the
   * files are built as usual, then copied into the server (./server-data.ts) and every node's
   * `dataSource` points there (as `source.reader` when given, its password in a file).
   */
  source?: DemoServerSource
  /**
   * Mutual TLS between the nodes: each gets a TLS key and self-signed certificate, its pin in the
   * manifest and an https:// endpoint (`verinode demo` does; the test fixtures default to plain HTTP).
   */
  tls?: boolean
  /** the federation's crypto profile (src/crypto/profile.ts): `intl` (default) or `sm` (SM2/SM3/SM4) */
  profile?: ProfileName
}

type DataSourceInput = NonNullable<ConfigInput['dataSource']>

/** The nodes' `dataSource` for a server, and the services' SQL in its dialect. */
async function serverDataSource(dir: string, src: DemoServerSource): Promise<DataSourceInput> {
  const ns = src.namespace ?? DEMO_NAMESPACE
  const u = new URL(src.url)
  let passwordFile: string | undefined
  if (src.reader !== undefined) {
    u.username = src.reader.user
    passwordFile = join(dir, 'db-password')
    await writeFile(passwordFile, `${src.reader.password}\n`, { mode: 0o600 })
  }
  u.password = ''
  const where = src.kind === 'postgres' ? { schema: ns } : { database: ns }
  return { kind: src.kind, url: u.toString(), ...where, ...(passwordFile !== undefined ? { passwordFile } : {}) } as DataSourceInput
}

function servicesFor(kind: DemoServerSource['kind'] | 'sqlite', services: ServiceInput[]): ServiceInput[] {
  return services.map((s) => ({
    ...s,
    lookup: demoSqlFor(kind, s.lookup),
    ...(s.enumerate !== undefined ? { enumerate: demoSqlFor(kind, s.enumerate) } : {}),
    ...(s.he !== undefined ? { he: { ...s.he, valueLookup: demoSqlFor(kind, s.he.valueLookup) } } : {}),
  }))
}

/**
 * Builds the federation and starts its nodes (`ids`, default all) with `start`, into `nodes`.
 * Ports are picked free and then signed into the manifest, so on a busy machine another process
 * (an outgoing connection's ephemeral port) may take one before its node listens: then the nodes
 * started so far are closed and the federation is built again on fresh ports in `dirFor(attempt)`,
 * at most three times. Any other failure closes what was started and is thrown.
 */
export async function startDemoFederation<N extends { close(): Promise<void> }>(
  dirFor: (attempt: number) => string,
  opts: BuildDemoOptions & { ids?: readonly string[]; onBuilt?: (fed: DemoFederation, attempt: number) => void; onRetry?: () => void },
  start: (id: string, configPath: string) => Promise<N>,
  nodes: Record<string, N> = {},
): Promise<{ fed: DemoFederation; nodes: Record<string, N> }> {
  for (let attempt = 1; ; attempt++) {
    const fed = await buildDemoFederation(dirFor(attempt), opts)
    opts.onBuilt?.(fed, attempt)
    try {
      for (const id of opts.ids ?? Object.keys(fed.nodes)) {
        const n = fed.nodes[id]
        if (n === undefined) throw new Error(`no node ${id}`)
        nodes[id] = await start(id, n.configPath)
      }
      return { fed, nodes }
    } catch (e) {
      for (const [id, n] of Object.entries(nodes)) {
        await n.close()
        delete nodes[id]
      }
      if ((e as { code?: string }).code !== 'EADDRINUSE' || attempt >= 3) throw e
      opts.onRetry?.()
    }
  }
}

/** Builds (does not start) the four-department federation in `dir`. */
export async function buildDemoFederation(dir: string, opts: BuildDemoOptions = {}): Promise<DemoFederation> {
  const now = opts.now ?? Date.now()
  const federation = opts.federation ?? 'fujian-demo'
  await mkdir(dir, { recursive: true })
  const dataset = await createDemoDatabases(join(dir, 'data'), opts.sizes ?? {}, opts.seed)
  const incomes = addDeclaredIncomes(dataset)
  let serverSource: DataSourceInput | undefined
  if (opts.source !== undefined) {
    await loadDemoIntoServer(Object.values(dataset.files).map((f) => (isAbsolute(f) ? f : join(dataset.dir, f))), opts.source)
    serverSource = await serverDataSource(dir, opts.source)
  }
  const authorityDir = join(dir, 'authority')
  await createAuthority(authorityDir, federation, opts.profile ?? 'intl')
  const agreements = demoAgreements(now)
  const nodes: DemoFederation['nodes'] = {}
  for (const m of DEMO_MEMBERS) {
    const publicPort = await freePort()
    const localPort = await freePort()
    const nodeDir = join(dir, m.id)
    const r = await initNode({
      dir: nodeDir, member: m.id, port: publicPort, localPort, tls: opts.tls === true, auditor: true, profile: opts.profile ?? 'intl',
      extra: {
        dataSource: serverSource ?? { kind: 'sqlite', path: join(dataset.dir, DEMO_FILES[m.department]) },
        services: servicesFor(opts.source?.kind ?? 'sqlite', DEMO_SERVICES[m.department]),
        agreements: agreements[m.id] ?? [],
        // he-mode requests carry BFV ciphertexts (~380 kB per 128 subjects in the JWS, plus the
        // ~480 kB public key once per epoch): room for a full batch of 1,000 (docs/PROTOCOL.md)
        ...(m.department === 'taxBureau' ? { limits: { bodyBytes: HE_DEMO_BODY_BYTES } } : {}),
        ...opts.configOverrides,
      },
    })
    await addMember(authorityDir, {
      id: m.id, name: m.name, uscc: makeUscc('11', '350000', m.orgBody), role: 'department',
      endpoint: `${r.tlsPin === undefined ? 'http' : 'https'}://127.0.0.1:${publicPort}`,
      ...(r.tlsPin === undefined ? {} : { tlsPins: [r.tlsPin] }),
      messageKeys: [{ key: r.messageKey, nbf: now - 60_000 }],
      logKeys: [{ key: r.logKey, nbf: now - 60_000 }],
    }, now)
    nodes[m.id] = { configPath: r.configPath, appToken: r.appToken, auditorToken: r.auditorToken, publicPort, localPort }
  }
  // The catalogue's rules (docs/GOVERNANCE.md): each item's one authoritative source, and the
  // negative list (an item no one offers, and one shared only under an agreement).
  for (const m of DEMO_MEMBERS) {
    for (const svc of DEMO_SERVICES[m.department]) await setSource(authorityDir, svc.item ?? svc.id, m.id)
  }
  await addNegative(authorityDir, { item: 'population.biometrics', rule: 'not-shared', conditions: 'biometric data is not shared between departments' })
  await addNegative(authorityDir, { item: 'tax.personal-income', rule: 'conditional', conditions: 'only under an agreement naming a statutory purpose' })
  const signed = await signAuthorityManifest(authorityDir, { now: now - 30_000 })
  for (const m of DEMO_MEMBERS) {
    const nodeDir = join(dir, m.id)
    await writeFile(join(nodeDir, 'federation', 'manifest.jws'), `${signed.jws}\n`)
    await copyFile(join(authorityDir, AUTHORITY_FILES.rootPub), join(nodeDir, 'keys', 'federation-root.pub'))
  }
  await writeFile(join(dir, 'demo.json'), `${JSON.stringify({ federation, nodes }, null, 2)}\n`)
  return { dir, federation, dataset, incomes, nodes, authorityDir }
}

export async function readDemoIndex(dir: string): Promise<Pick<DemoFederation, 'federation' | 'nodes'>> {
  return JSON.parse(await readFile(join(dir, 'demo.json'), 'utf8')) as Pick<DemoFederation, 'federation' | 'nodes'>
}
