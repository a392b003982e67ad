/**
 * Deterministic synthetic data for the four demo departments, each in its own SQLite file, plus
 * the read-only SQL each demo service declares against it.
 *
 * | department        | file                    | table                                         |
 * |-------------------|-------------------------|-----------------------------------------------|
 * | public security   | public-security.sqlite  | residents(id_number PK, name, birth_date, ...) |
 * | market regulator  | market-regulator.sqlite | enterprises(uscc PK, name, status, ...)        |
 * | tax bureau        | tax-bureau.sqlite       | tax_payments(uscc, year, due, paid; PK both)   |
 * | credit centre     | credit-centre.sqlite    | dishonest_debtors(subject_id PK, ...)          |
 *
 * Every resident ID number satisfies GB 11643-1999 (real GB/T 2260 division codes, real calendar
 * birth dates, MOD 11-2 check character) and every unified social credit code satisfies
 * GB 32100-2015 (GB 11714 organisation code check and MOD 31 check). The people and enterprises
 * are fictitious: names are drawn from common surname and given-name lists.
 *
 * The same seed and sizes give byte-for-byte the same rows (a small-state PRNG, sfc32, seeded from
 * SHA-256 of the seed string; no `Math.random`, no clock). Rows are written in batched
 * transactions, so 10^6 residents build in seconds.
 */
import Database from 'better-sqlite3'
import { createHash } from 'node:crypto'
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { setImmediate as yieldToEventLoop } from 'node:timers/promises'
import type { FieldKind } from '../protocol/canonicalize.js'
import { orgCodeCheckChar, residentIdCheckChar, usccCheckChar, USCC_CHARSET } from '../protocol/identifiers.js'
import {
  COOP_PRODUCTS, DOTTED_NAMES, FUJIAN_REGIONS, GIVEN_NAME_CHARS, INDUSTRIES, OTHER_REGIONS, SHOP_KINDS, SURNAMES, TRADE_NAMES,
  type Region,
} from './names.js'

// ---------------------------------------------------------------------------------------------
// Declared SQL of the demo services
// ---------------------------------------------------------------------------------------------

export type DemoDepartment = 'publicSecurity' | 'marketRegulator' | 'taxBureau' | 'creditCentre'

export interface DemoServiceSql {
  /** Which demo database the statements run against. */
  readonly department: DemoDepartment
  /** Subject fields: the field name is also the SQL parameter name (`id` → `:id`). */
  readonly fields: Readonly<Record<string, FieldKind>>
  /** Question parameters that are not about the subject (a threshold bound), same naming rule. */
  readonly questionParams: Readonly<Record<string, FieldKind>>
  /** Plain-mode lookup: all named parameters bound from canonical fields and question params. */
  readonly lookup: string
  /** Every record the service can answer about, for OPRF tag-set builds (no parameters). */
  readonly enumerate: string
  /** How the node turns the lookup rows into an answer. */
  readonly answer: string
}

/**
 * SQL of the four demo services, for the demo node configs.
 *
 * Decision for `identity.match`: the lookup returns the stored name and the node compares
 * `canonicalizeField('name', stored)` with the canonical query name. SQL `=` cannot apply NFKC,
 * whitespace and dot rules, and the tag-set build must hash exactly what a lookup compares, so the
 * comparison belongs to the one canonicalization function, not to each database's collation. The
 * stored name never leaves the node: the answer is only per-field match flags.
 *
 * For `tax.compliance` the plain lookup computes the two booleans in SQL, so the node never even
 * reads the amounts; `valueLookup` (the amount paid) exists for the `he` mode, where the provider
 * encrypts the comparison against a hidden bound.
 */
export const DEMO_SERVICE_SQL = {
  'identity.match': {
    department: 'publicSecurity',
    fields: { id: 'residentId', name: 'name' },
    questionParams: {},
    lookup: 'SELECT name FROM residents WHERE id_number = :id',
    enumerate: 'SELECT id_number AS id, name FROM residents',
    answer: 'no row → { id: false, name: false }; else { id: true, name: canonicalizeField("name", row.name) === name }',
  },
  'enterprise.status': {
    department: 'marketRegulator',
    fields: { uscc: 'uscc' },
    questionParams: {},
    lookup: 'SELECT status FROM enterprises WHERE uscc = :uscc',
    enumerate: 'SELECT uscc, status FROM enterprises',
    answer: 'no row → unknown; else row.status, one of ENTERPRISE_STATUSES',
  },
  'tax.compliance': {
    department: 'taxBureau',
    fields: { uscc: 'uscc', year: 'year' },
    questionParams: { bound_fen: 'amount' },
    lookup:
      'SELECT tax_paid_fen >= tax_due_fen AS paid_in_full, tax_paid_fen >= CAST(:bound_fen AS INTEGER) AS meets_bound ' +
      'FROM tax_payments WHERE uscc = :uscc AND year = CAST(:year AS INTEGER)',
    enumerate: 'SELECT uscc, year, tax_due_fen, tax_paid_fen FROM tax_payments',
    answer: 'no row → no record for that year; else { paidInFull: row.paid_in_full === 1, meetsBound: row.meets_bound === 1 }',
  },
  'credit.dishonest': {
    department: 'creditCentre',
    fields: { id: 'partyId' },
    questionParams: {},
    lookup: 'SELECT 1 AS listed FROM dishonest_debtors WHERE subject_id = :id',
    enumerate: 'SELECT subject_id AS id FROM dishonest_debtors',
    answer: 'listed = a row exists',
  },
} as const satisfies Record<string, DemoServiceSql>

/** `he` mode value of `tax.compliance`: the amount paid, never sent in the clear. */
export const TAX_VALUE_LOOKUP_SQL =
  'SELECT tax_paid_fen FROM tax_payments WHERE uscc = :uscc AND year = CAST(:year AS INTEGER)'

export type DemoServiceId = keyof typeof DEMO_SERVICE_SQL

/**
 * Registration statuses as published by the National Enterprise Credit Information Publicity
 * System, with English codes: 存续(在营、开业、在册) active; 吊销(营业执照) revoked; 注销 cancelled
 * (deregistered); 撤销(登记) annulled; 迁出 moved_out; 歇业 suspended (Regulation on the
 * Registration of Market Entities, 2022, art. 30).
 */
export const ENTERPRISE_STATUSES = ['active', 'revoked', 'cancelled', 'annulled', 'moved_out', 'suspended'] as const
export type EnterpriseStatus = (typeof ENTERPRISE_STATUSES)[number]
const STATUS_WEIGHTS: Readonly<Record<EnterpriseStatus, number>> = {
  active: 80, cancelled: 8, revoked: 6, suspended: 3, moved_out: 2, annulled: 1,
}

export const DEMO_FILES: Readonly<Record<DemoDepartment, string>> = {
  publicSecurity: 'public-security.sqlite',
  marketRegulator: 'market-regulator.sqlite',
  taxBureau: 'tax-bureau.sqlite',
  creditCentre: 'credit-centre.sqlite',
}

// ---------------------------------------------------------------------------------------------
// Seeded PRNG
// ---------------------------------------------------------------------------------------------

/** sfc32 (Chris Doty-Humphrey's Small Fast Counting generator), seeded from SHA-256 of `seed`. */
export class DemoRandom {
  #a: number
  #b: number
  #c: number
  #d: number
  #spare: number | undefined

  constructor(seed: string) {
    const h = createHash('sha256').update(`verinode-demo\0${seed}`).digest()
    this.#a = h.readUInt32LE(0)
    this.#b = h.readUInt32LE(4)
    this.#c = h.readUInt32LE(8)
    this.#d = h.readUInt32LE(12)
    for (let i = 0; i < 15; i++) this.u32()
  }

  /** Uniform 32-bit unsigned integer. */
  u32(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0
    this.#d = (this.#d + 1) | 0
    this.#a = this.#b ^ (this.#b >>> 9)
    this.#b = (this.#c + (this.#c << 3)) | 0
    this.#c = (this.#c << 21) | (this.#c >>> 11)
    this.#c = (this.#c + t) | 0
    return t >>> 0
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.u32() / 4294967296
  }

  /** Uniform integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.float() * (hi - lo + 1))
  }

  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.float() * xs.length)]!
  }

  chance(p: number): boolean {
    return this.float() < p
  }

  /** Standard normal (Marsaglia polar method). */
  normal(): number {
    if (this.#spare !== undefined) {
      const s = this.#spare
      this.#spare = undefined
      return s
    }
    for (;;) {
      const u = this.float() * 2 - 1
      const v = this.float() * 2 - 1
      const s = u * u + v * v
      if (s > 0 && s < 1) {
        const m = Math.sqrt((-2 * Math.log(s)) / s)
        this.#spare = v * m
        return u * m
      }
    }
  }
}

/** Sampler over weights, by binary search in the cumulative sums. */
function weighted<T>(items: readonly T[], weights: readonly number[]): (r: DemoRandom) => T {
  const cum: number[] = []
  let total = 0
  for (const w of weights) cum.push((total += w))
  return (r) => {
    const x = r.float() * total
    let lo = 0
    let hi = cum.length - 1
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (cum[mid]! > x) hi = mid
      else lo = mid + 1
    }
    return items[lo]!
  }
}

// ---------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------

const ALL_REGIONS: readonly Region[] = [...FUJIAN_REGIONS, ...OTHER_REGIONS]
/** 75 % of people and enterprises are Fujian ones. */
const pickRegion = weighted(ALL_REGIONS, ALL_REGIONS.map((r) => (r.code.startsWith('35') ? 75 / FUJIAN_REGIONS.length : 25 / OTHER_REGIONS.length)))
/** Zipf-like surname frequencies. */
const pickSurname = weighted(SURNAMES, SURNAMES.map((_, i) => 1 / (i + 3)))
const pickStatus = weighted(ENTERPRISE_STATUSES, ENTERPRISE_STATUSES.map((s) => STATUS_WEIGHTS[s]))

const pad = (n: number, width: number): string => String(n).padStart(width, '0')

function daysIn(y: number, m: number): number {
  return new Date(Date.UTC(y, m, 0)).getUTCDate()
}

/** Random calendar date between two years inclusive, as `YYYY-MM-DD`. */
function randomDate(r: DemoRandom, fromYear: number, toYear: number, toMonth = 12): string {
  const y = r.int(fromYear, toYear)
  const m = r.int(1, y === toYear ? toMonth : 12)
  const d = r.int(1, daysIn(y, m))
  return `${y}-${pad(m, 2)}-${pad(d, 2)}`
}

/** A GB 11643 resident ID number for a region, birth date (YYYY-MM-DD) and sequence 1..999. */
export function makeResidentId(region: string, birthDate: string, sequence: number): string {
  const first17 = `${region}${birthDate.replaceAll('-', '')}${pad(sequence, 3)}`
  return first17 + residentIdCheckChar(first17)
}

/** A GB 32100 USCC from authority + type code, division code and 8-character organisation body. */
export function makeUscc(authorityAndType: string, region: string, orgBody8: string): string {
  const first17 = `${authorityAndType}${region}${orgBody8}${orgCodeCheckChar(orgBody8)}`
  return first17 + usccCheckChar(first17)
}

function personName(r: DemoRandom): string {
  if (r.chance(0.005)) return r.pick(DOTTED_NAMES)
  const given = r.chance(0.25) ? r.pick(GIVEN_NAME_CHARS) : r.pick(GIVEN_NAME_CHARS) + r.pick(GIVEN_NAME_CHARS)
  return pickSurname(r) + given
}

/** A name that is certainly not `name`: another surname before the same given name. */
function otherName(r: DemoRandom, name: string): string {
  for (;;) {
    const candidate = pickSurname(r) + name.slice(1)
    if (candidate !== name) return candidate
  }
}

function orgBody(r: DemoRandom, registeredOn: string): string {
  // Codes assigned since the 2015 reform by market regulators start with "MA"; older
  // organisation codes were 8 digits.
  if (registeredOn >= '2016-01-01') {
    let body = 'MA'
    for (let i = 0; i < 6; i++) body += USCC_CHARSET[r.int(0, USCC_CHARSET.length - 1)]
    return body
  }
  return pad(r.int(10_000_000, 99_999_999), 8)
}

function courtFor(region: Region, r: DemoRandom): string {
  if (r.chance(0.2)) return `${region.city}中级人民法院`
  // County-level cities have their own basic court named after them alone.
  return region.county.endsWith('市') ? `${region.county}人民法院` : `${region.city}${region.county}人民法院`
}

// ---------------------------------------------------------------------------------------------
// Building the four databases
// ---------------------------------------------------------------------------------------------

export interface DemoSizes {
  /** Rows in `residents` (default 5,000). */
  readonly residents?: number
  /** Rows in `enterprises` (default 2,000). */
  readonly enterprises?: number
  /** Tax years covered by `tax_payments` (default 2021..2025). */
  readonly taxYears?: readonly number[]
}

export interface IdentitySample {
  readonly id: string
  readonly name: string
}

export interface TaxSample {
  readonly uscc: string
  readonly year: number
  readonly dueFen: number
  readonly paidFen: number
}

export interface DemoSamples {
  readonly identity: {
    /** ID + the stored name: every field matches. */
    readonly matches: readonly IdentitySample[]
    /** The same matches written as a person might type them (full-width digits, lower-case x, spaces). */
    readonly variantMatches: readonly IdentitySample[]
    /** A known ID with another person's name: id matches, name does not. */
    readonly nameMismatches: readonly IdentitySample[]
    /** Valid ID numbers (checksums pass) that are not in the register. */
    readonly unknownIds: readonly string[]
  }
  readonly enterprise: {
    /** Up to three USCCs per registration status. */
    readonly byStatus: Readonly<Record<EnterpriseStatus, readonly string[]>>
    /** Valid USCCs that are not registered. */
    readonly unknown: readonly string[]
  }
  readonly tax: {
    /** The year the samples are for (the last tax year). */
    readonly year: number
    readonly paidInFull: readonly TaxSample[]
    readonly notPaidInFull: readonly TaxSample[]
    /** Registered enterprises without a tax record for `year`. */
    readonly noRecord: readonly string[]
  }
  readonly credit: {
    readonly listedPersons: readonly string[]
    readonly listedEnterprises: readonly string[]
    readonly unlistedPersons: readonly string[]
    readonly unlistedEnterprises: readonly string[]
  }
}

export interface DemoDataset {
  readonly seed: string
  readonly dir: string
  /** Absolute or `dir`-relative paths of the four database files. */
  readonly files: Readonly<Record<DemoDepartment, string>>
  readonly counts: {
    readonly residents: number
    readonly enterprises: number
    readonly taxPayments: number
    readonly dishonestDebtors: number
  }
  readonly samples: DemoSamples
}

const DEFAULT_DEMO_SEED = 'verinode-demo'
const DEFAULT_TAX_YEARS: readonly number[] = [2021, 2022, 2023, 2024, 2025]
const BATCH_ROWS = 20_000
const SAMPLE_COUNT = 5

function checkSize(name: string, n: number | undefined, dflt: number): number {
  const v = n ?? dflt
  if (!Number.isSafeInteger(v) || v < 0 || v > 50_000_000) throw new RangeError(`sizes.${name}: expected an integer from 0 to 50,000,000`)
  return v
}

/** A fresh database file for bulk loading: no journal, no fsync; the file is rebuilt on failure. */
async function createDb(path: string, schema: string): Promise<Database.Database> {
  await rm(path, { force: true })
  await rm(`${path}-journal`, { force: true })
  const db = new Database(path)
  db.pragma('journal_mode = OFF')
  db.pragma('synchronous = OFF')
  db.pragma('locking_mode = EXCLUSIVE')
  // Primary keys arrive in random order: keep the whole B-tree in cache while loading.
  db.pragma('cache_size = -262144')
  db.exec(schema)
  return db
}

function finish(db: Database.Database): void {
  db.pragma('journal_mode = DELETE')
  db.exec('ANALYZE')
  db.close()
}

/**
 * Insert `count` rows produced lazily by `next` into `table`, `BATCH_ROWS` per transaction.
 * Values are bound positionally in `columns` order.
 */
async function bulkInsert<T>(db: Database.Database, table: string, columns: readonly (keyof T & string)[], count: number, next: (i: number) => T): Promise<void> {
  const stmt = db.prepare<unknown[]>(`INSERT INTO ${table} (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`)
  const batch = db.transaction((from: number, to: number) => {
    for (let i = from; i < to; i++) {
      const row = next(i)
      stmt.run(columns.map((c) => row[c]))
    }
  })
  for (let from = 0; from < count; from += BATCH_ROWS) {
    batch(from, Math.min(count, from + BATCH_ROWS))
    await yieldToEventLoop()
  }
}

interface Resident { id_number: string; name: string; birth_date: string; sex: 'M' | 'F'; region_code: string }
interface Enterprise { uscc: string; name: string; status: EnterpriseStatus; registered_on: string; region_code: string }

function fullWidth(s: string): string {
  return s.replace(/[0-9A-Za-z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 0xfee0))
}

/**
 * Build the four demo databases in `dir` (created if missing; existing demo files are replaced).
 * Deterministic for a given `seed` and `sizes`.
 */
export async function createDemoDatabases(dir: string, sizes: DemoSizes = {}, seed: string = DEFAULT_DEMO_SEED): Promise<DemoDataset> {
  const nResidents = checkSize('residents', sizes.residents, 5000)
  const nEnterprises = checkSize('enterprises', sizes.enterprises, 2000)
  const taxYears = [...(sizes.taxYears ?? DEFAULT_TAX_YEARS)].sort((a, b) => a - b)
  if (taxYears.length === 0 || taxYears.some((y) => !Number.isInteger(y) || y < 1990 || y > 2100) || new Set(taxYears).size !== taxYears.length) {
    throw new RangeError('sizes.taxYears: expected distinct years from 1990 to 2100')
  }
  const lastTaxYear = taxYears[taxYears.length - 1]!
  await mkdir(dir, { recursive: true })
  const files = Object.fromEntries(Object.entries(DEMO_FILES).map(([k, f]) => [k, join(dir, f)])) as Record<DemoDepartment, string>

  // Separate streams per table, so changing one size does not reshuffle the other tables.
  const rPeople = new DemoRandom(`${seed}/residents`)
  const rFirms = new DemoRandom(`${seed}/enterprises`)
  const rTax = new DemoRandom(`${seed}/tax`)
  const rCredit = new DemoRandom(`${seed}/credit`)
  const rSample = new DemoRandom(`${seed}/samples`)

  // --- public security: residents ---------------------------------------------------------
  const residentIds = new Set<string>()
  const newResidentId = (r: DemoRandom): { id: string; region: Region; birth: string; seq: number } => {
    for (;;) {
      const region = pickRegion(r)
      const birth = randomDate(r, 1940, 2008)
      const seq = r.int(1, 999)
      const id = makeResidentId(region.code, birth, seq)
      if (!residentIds.has(id)) return { id, region, birth, seq }
    }
  }
  const residentSample: Resident[] = []
  const personIds: string[] = []
  const psDb = await createDb(files.publicSecurity, `
    CREATE TABLE residents (
      id_number   TEXT PRIMARY KEY,   -- GB 11643-1999, 18 characters, upper-case X
      name        TEXT NOT NULL,
      birth_date  TEXT NOT NULL,      -- YYYY-MM-DD
      sex         TEXT NOT NULL CHECK (sex IN ('M', 'F')),
      region_code TEXT NOT NULL       -- GB/T 2260 division code of first registration
    );`)
  try {
    await bulkInsert<Resident>(psDb, 'residents', ['id_number', 'name', 'birth_date', 'sex', 'region_code'], nResidents, (i) => {
      const { id, region, birth, seq } = newResidentId(rPeople)
      residentIds.add(id)
      const row: Resident = { id_number: id, name: personName(rPeople), birth_date: birth, sex: seq % 2 === 1 ? 'M' : 'F', region_code: region.code }
      if (i < 4 * SAMPLE_COUNT) residentSample.push(row)
      // Keep a thinned list of IDs for the credit centre's person listings.
      if (i % 50 === 7) personIds.push(id)
      return row
    })
  } finally {
    finish(psDb)
  }

  // --- market regulator: enterprises --------------------------------------------------------
  const usccs = new Set<string>()
  const enterprises: Enterprise[] = []
  const mrDb = await createDb(files.marketRegulator, `
    CREATE TABLE enterprises (
      uscc          TEXT PRIMARY KEY, -- GB 32100-2015, 18 characters
      name          TEXT NOT NULL,
      status        TEXT NOT NULL CHECK (status IN (${ENTERPRISE_STATUSES.map((s) => `'${s}'`).join(', ')})),
      registered_on TEXT NOT NULL,    -- YYYY-MM-DD
      region_code   TEXT NOT NULL     -- GB/T 2260 division code of the registering authority
    );`)
  try {
    await bulkInsert<Enterprise>(mrDb, 'enterprises', ['uscc', 'name', 'status', 'registered_on', 'region_code'], nEnterprises, () => {
      const kind = rFirms.float()
      // 91 enterprise, 92 individual business, 93 farmers' cooperative (GB 32100 Annex A, authority 9).
      const typeCode = kind < 0.85 ? '91' : kind < 0.97 ? '92' : '93'
      const region = pickRegion(rFirms)
      const registeredOn = randomDate(rFirms, 1998, lastTaxYear)
      let uscc: string
      do uscc = makeUscc(typeCode, region.code, orgBody(rFirms, registeredOn))
      while (usccs.has(uscc))
      usccs.add(uscc)
      const trade = rFirms.pick(TRADE_NAMES)
      const name =
        typeCode === '91' ? `${region.city}${trade}${rFirms.pick(INDUSTRIES)}有限公司`
        : typeCode === '92' ? `${region.city}${region.county}${trade}${rFirms.pick(SHOP_KINDS)}`
        : `${region.county}${trade}${rFirms.pick(COOP_PRODUCTS)}专业合作社`
      const row: Enterprise = { uscc, name, status: pickStatus(rFirms), registered_on: registeredOn, region_code: region.code }
      enterprises.push(row)
      return row
    })
  } finally {
    finish(mrDb)
  }

  // --- tax bureau: tax_payments ---------------------------------------------------------------
  interface TaxRow { uscc: string; year: number; tax_due_fen: number; tax_paid_fen: number }
  const taxRows: TaxRow[] = []
  for (const e of enterprises) {
    const firstYear = Math.max(taxYears[0]!, Number(e.registered_on.slice(0, 4)))
    // Enterprises no longer active stopped filing at some point.
    const lastYear = e.status === 'active' ? lastTaxYear : rTax.int(firstYear - 1, lastTaxYear)
    const reliable = rTax.chance(0.85)
    // Log-normal size: median 30,000 CNY of tax a year, a long tail of large payers.
    const scale = Math.log(3_000_000) + 1.6 * rTax.normal()
    for (const year of taxYears) {
      if (year < firstYear || year > lastYear) continue
      const exempt = rTax.chance(0.05)
      const due = exempt ? 0 : Math.min(1e13, Math.round(Math.exp(scale + 0.3 * rTax.normal())))
      const u = rTax.float()
      const paid = reliable || u < 0.6 ? due : u < 0.85 ? Math.floor(due * (0.1 + 0.85 * rTax.float())) : 0
      taxRows.push({ uscc: e.uscc, year, tax_due_fen: due, tax_paid_fen: paid })
    }
  }
  const tbDb = await createDb(files.taxBureau, `
    CREATE TABLE tax_payments (
      uscc         TEXT NOT NULL,
      year         INTEGER NOT NULL,
      tax_due_fen  INTEGER NOT NULL CHECK (tax_due_fen >= 0),  -- fen = 0.01 CNY
      tax_paid_fen INTEGER NOT NULL CHECK (tax_paid_fen >= 0),
      PRIMARY KEY (uscc, year)
    );`)
  try {
    await bulkInsert<TaxRow>(tbDb, 'tax_payments', ['uscc', 'year', 'tax_due_fen', 'tax_paid_fen'], taxRows.length, (i) => taxRows[i]!)
  } finally {
    finish(tbDb)
  }

  // --- credit centre: dishonest_debtors -------------------------------------------------------
  interface DebtorRow { subject_id: string; subject_type: 'person' | 'enterprise'; listed_on: string; court: string }
  const debtors: DebtorRow[] = []
  const regionByCode = new Map(ALL_REGIONS.map((r) => [r.code, r]))
  for (const id of personIds) {
    // personIds is every 50th resident; 60 % of those gives 1.2 % of residents listed.
    if (!rCredit.chance(0.6)) continue
    // Listed from age 18 (births run to 2008) and not before the list went online in 2014.
    const adult = Math.max(2014, Number(id.slice(6, 10)) + 18)
    debtors.push({ subject_id: id, subject_type: 'person', listed_on: randomDate(rCredit, adult, 2026, 10), court: courtFor(regionByCode.get(id.slice(0, 6))!, rCredit) })
  }
  for (const e of enterprises) {
    const p = e.status === 'revoked' ? 0.2 : e.status === 'active' ? 0.03 : 0.08
    if (!rCredit.chance(p)) continue
    const from = Math.max(2014, Number(e.registered_on.slice(0, 4)))
    debtors.push({ subject_id: e.uscc, subject_type: 'enterprise', listed_on: randomDate(rCredit, from, 2026, 10), court: courtFor(regionByCode.get(e.region_code)!, rCredit) })
  }
  const ccDb = await createDb(files.creditCentre, `
    CREATE TABLE dishonest_debtors (
      subject_id   TEXT PRIMARY KEY,  -- resident ID number or unified social credit code
      subject_type TEXT NOT NULL CHECK (subject_type IN ('person', 'enterprise')),
      listed_on    TEXT NOT NULL,     -- YYYY-MM-DD
      court        TEXT NOT NULL      -- the enforcing court
    );`)
  try {
    await bulkInsert<DebtorRow>(ccDb, 'dishonest_debtors', ['subject_id', 'subject_type', 'listed_on', 'court'], debtors.length, (i) => debtors[i]!)
  } finally {
    finish(ccDb)
  }

  // --- samples ----------------------------------------------------------------------------------
  const matches = residentSample.slice(0, SAMPLE_COUNT).map((r) => ({ id: r.id_number, name: r.name }))
  const variantMatches = residentSample.slice(SAMPLE_COUNT, 2 * SAMPLE_COUNT).map((r, i) => ({
    id: i % 2 === 0 ? fullWidth(r.id_number).toLowerCase() : `${r.id_number.slice(0, 6)} ${r.id_number.slice(6, 14)} ${r.id_number.slice(14).toLowerCase()}`,
    name: [...r.name].join(i % 2 === 0 ? ' ' : '\u3000'),
  }))
  const nameMismatches = residentSample.slice(2 * SAMPLE_COUNT, 3 * SAMPLE_COUNT).map((r) => ({ id: r.id_number, name: otherName(rSample, r.name) }))
  const unknownIds: string[] = []
  while (unknownIds.length < SAMPLE_COUNT) {
    const { id } = newResidentId(rSample)
    if (!unknownIds.includes(id)) unknownIds.push(id)
  }

  const byStatus = Object.fromEntries(ENTERPRISE_STATUSES.map((s) => [s, enterprises.filter((e) => e.status === s).slice(0, 3).map((e) => e.uscc)])) as Record<EnterpriseStatus, string[]>
  const unknownUscc: string[] = []
  while (unknownUscc.length < SAMPLE_COUNT) {
    const code = makeUscc('91', pickRegion(rSample).code, orgBody(rSample, '2020-01-01'))
    if (!usccs.has(code) && !unknownUscc.includes(code)) unknownUscc.push(code)
  }

  const taxOfYear = taxRows.filter((t) => t.year === lastTaxYear)
  const asSample = (t: TaxRow): TaxSample => ({ uscc: t.uscc, year: t.year, dueFen: t.tax_due_fen, paidFen: t.tax_paid_fen })
  const filedThatYear = new Set(taxOfYear.map((t) => t.uscc))

  const listed = new Set(debtors.map((d) => d.subject_id))
  const listedPersons = debtors.filter((d) => d.subject_type === 'person').slice(0, SAMPLE_COUNT).map((d) => d.subject_id)
  const listedEnterprises = debtors.filter((d) => d.subject_type === 'enterprise').slice(0, SAMPLE_COUNT).map((d) => d.subject_id)

  return {
    seed,
    dir,
    files,
    counts: { residents: nResidents, enterprises: nEnterprises, taxPayments: taxRows.length, dishonestDebtors: debtors.length },
    samples: {
      identity: { matches, variantMatches, nameMismatches, unknownIds },
      enterprise: { byStatus, unknown: unknownUscc },
      tax: {
        year: lastTaxYear,
        paidInFull: taxOfYear.filter((t) => t.tax_paid_fen >= t.tax_due_fen && t.tax_due_fen > 0).slice(0, SAMPLE_COUNT).map(asSample),
        notPaidInFull: taxOfYear.filter((t) => t.tax_paid_fen < t.tax_due_fen).slice(0, SAMPLE_COUNT).map(asSample),
        noRecord: enterprises.filter((e) => !filedThatYear.has(e.uscc)).slice(0, SAMPLE_COUNT).map((e) => e.uscc),
      },
      credit: {
        listedPersons,
        listedEnterprises,
        unlistedPersons: residentSample.map((r) => r.id_number).filter((id) => !listed.has(id)).slice(0, SAMPLE_COUNT),
        unlistedEnterprises: enterprises.map((e) => e.uscc).filter((u) => !listed.has(u)).slice(0, SAMPLE_COUNT),
      },
    },
  }
}
