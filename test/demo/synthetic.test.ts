import t from 'tap'
import Database from 'better-sqlite3'
import { createHash } from 'node:crypto'
import { canonicalizeField, canonicalizeSubject } from '../../src/protocol/canonicalize.js'
import { isValidResidentId, isValidUscc, parseResidentId } from '../../src/protocol/identifiers.js'
import { openDataSource } from '../../src/sources/index.js'
import {
  createDemoDatabases, DEMO_SERVICE_SQL, DemoRandom, ENTERPRISE_STATUSES, makeResidentId, makeUscc, TAX_VALUE_LOOKUP_SQL,
  type DemoDataset, type DemoServiceId,
} from '../../src/demo/synthetic.js'

const SIZES = { residents: 3000, enterprises: 1200 }

function all<T>(path: string, sql: string): T[] {
  const db = new Database(path, { readonly: true, fileMustExist: true })
  try {
    return db.prepare(sql).all() as T[]
  } finally {
    db.close()
  }
}

/** SHA-256 over every row of every table, in primary-key order. */
function digestOf(ds: DemoDataset): string {
  const h = createHash('sha256')
  h.update(JSON.stringify(all(ds.files.publicSecurity, 'SELECT * FROM residents ORDER BY id_number')))
  h.update(JSON.stringify(all(ds.files.marketRegulator, 'SELECT * FROM enterprises ORDER BY uscc')))
  h.update(JSON.stringify(all(ds.files.taxBureau, 'SELECT * FROM tax_payments ORDER BY uscc, year')))
  h.update(JSON.stringify(all(ds.files.creditCentre, 'SELECT * FROM dishonest_debtors ORDER BY subject_id')))
  return h.digest('hex')
}

t.test('sizes are honoured and every identifier validates', async (t) => {
  const ds = await createDemoDatabases(t.testdir(), SIZES, 'test-seed')
  t.equal(ds.counts.residents, SIZES.residents)
  t.equal(ds.counts.enterprises, SIZES.enterprises)

  const residents = all<{ id_number: string; name: string; birth_date: string; sex: string; region_code: string }>(ds.files.publicSecurity, 'SELECT * FROM residents')
  t.equal(residents.length, SIZES.residents)
  let bad = 0
  for (const r of residents) {
    if (!isValidResidentId(r.id_number)) bad++
    const info = parseResidentId(r.id_number)
    if (info.birthDate !== r.birth_date || info.region !== r.region_code || (info.sex === 'male') !== (r.sex === 'M')) bad++
    // Stored names are already canonical, so lookups compare like with like.
    if (canonicalizeField('name', r.name, 'name') !== r.name) bad++
  }
  t.equal(bad, 0, 'resident IDs valid and consistent with their columns')

  const enterprises = all<{ uscc: string; status: string; registered_on: string }>(ds.files.marketRegulator, 'SELECT * FROM enterprises')
  t.equal(enterprises.length, SIZES.enterprises)
  t.equal(enterprises.filter((e) => !isValidUscc(e.uscc)).length, 0, 'USCCs valid')
  t.same([...new Set(enterprises.map((e) => e.status))].sort(), [...ENTERPRISE_STATUSES].sort(), 'every status occurs')
  const usccs = new Set(enterprises.map((e) => e.uscc))

  const tax = all<{ uscc: string; year: number; tax_due_fen: number; tax_paid_fen: number }>(ds.files.taxBureau, 'SELECT * FROM tax_payments')
  t.equal(tax.length, ds.counts.taxPayments)
  t.equal(tax.filter((r) => !usccs.has(r.uscc)).length, 0, 'tax rows belong to registered enterprises')
  t.same([...new Set(tax.map((r) => r.year))].sort(), [2021, 2022, 2023, 2024, 2025])
  const full = tax.filter((r) => r.tax_paid_fen >= r.tax_due_fen).length / tax.length
  t.ok(full > 0.8 && full < 0.99, `most paid in full (${full.toFixed(3)})`)
  t.ok(tax.some((r) => r.tax_paid_fen === 0 && r.tax_due_fen > 0), 'some paid nothing')
  t.ok(tax.some((r) => r.tax_paid_fen > 0 && r.tax_paid_fen < r.tax_due_fen), 'some paid part')
  const dues = tax.map((r) => r.tax_due_fen).filter((d) => d > 0).sort((a, b) => a - b)
  const median = dues[dues.length >> 1]!
  t.ok(median > 300_000 && median < 30_000_000, `median due ${median} fen`)
  t.ok(dues[dues.length - 1]! > 50 * median, 'long right tail (log-normal)')

  const debtors = all<{ subject_id: string; subject_type: string; court: string }>(ds.files.creditCentre, 'SELECT * FROM dishonest_debtors')
  t.equal(debtors.length, ds.counts.dishonestDebtors)
  const residentIds = new Set(residents.map((r) => r.id_number))
  t.equal(debtors.filter((d) => (d.subject_type === 'person' ? !residentIds.has(d.subject_id) : !usccs.has(d.subject_id))).length, 0, 'listed subjects exist')
  t.ok(debtors.some((d) => d.subject_type === 'person') && debtors.some((d) => d.subject_type === 'enterprise'))
  t.ok(debtors.every((d) => d.court.endsWith('人民法院')))
})

t.test('deterministic for a seed, different for another', async (t) => {
  const small = { residents: 400, enterprises: 150, taxYears: [2024, 2025] }
  const dir = t.testdir()
  const a = await createDemoDatabases(`${dir}/a`, small, 'seed-1')
  const b = await createDemoDatabases(`${dir}/b`, small, 'seed-1')
  const c = await createDemoDatabases(`${dir}/c`, small, 'seed-2')
  t.equal(digestOf(a), digestOf(b))
  t.same(a.samples, b.samples)
  t.same(a.counts, b.counts)
  t.not(digestOf(a), digestOf(c))
  // Rebuilding in the same directory replaces the files.
  const again = await createDemoDatabases(a.dir, small, 'seed-1')
  t.equal(digestOf(again), digestOf(a))
})

t.test('defaults: thousands of rows, the default seed', async (t) => {
  const ds = await createDemoDatabases(t.testdir())
  t.equal(ds.counts.residents, 5000)
  t.equal(ds.counts.enterprises, 2000)
  t.equal(ds.seed, 'verinode-demo')
})

t.test('the declared SQL is read-only and answers the samples as documented', async (t) => {
  const ds = await createDemoDatabases(t.testdir(), SIZES, 'test-seed')
  const src = Object.fromEntries(
    await Promise.all(
      (Object.keys(DEMO_SERVICE_SQL) as DemoServiceId[]).map(async (id) => {
        const svc = DEMO_SERVICE_SQL[id]
        const statements: Record<string, string> = { [`${id}.lookup`]: svc.lookup, [`${id}.enumerate`]: svc.enumerate }
        if (id === 'tax.compliance') statements[`${id}.value`] = TAX_VALUE_LOOKUP_SQL
        return [id, await openDataSource({ kind: 'sqlite', path: ds.files[svc.department] }, { statements })] as const
      }),
    ),
  )
  t.teardown(async () => {
    for (const s of Object.values(src)) await s.close()
  })
  const s = ds.samples

  // identity.match: per-field flags, names compared canonically by the node.
  const identity = async (subject: unknown): Promise<{ id: boolean; name: boolean }> => {
    const q = canonicalizeSubject(DEMO_SERVICE_SQL['identity.match'].fields, subject, 'subject')
    const rows = await src['identity.match']!.query(DEMO_SERVICE_SQL['identity.match'].lookup, q)
    if (rows.length === 0) return { id: false, name: false }
    return { id: true, name: canonicalizeField('name', rows[0]!.name, 'stored') === q.name }
  }
  t.equal(s.identity.matches.length, 5)
  for (const m of s.identity.matches) t.same(await identity(m), { id: true, name: true })
  for (const m of s.identity.variantMatches) t.same(await identity(m), { id: true, name: true }, `variant ${m.name}`)
  for (const m of s.identity.nameMismatches) t.same(await identity(m), { id: true, name: false })
  for (const id of s.identity.unknownIds) {
    t.ok(isValidResidentId(id))
    t.same(await identity({ id, name: '张三' }), { id: false, name: false })
  }

  // enterprise.status
  for (const status of ENTERPRISE_STATUSES) {
    t.ok(s.enterprise.byStatus[status].length > 0, status)
    for (const uscc of s.enterprise.byStatus[status]) {
      t.same(await src['enterprise.status']!.query(DEMO_SERVICE_SQL['enterprise.status'].lookup, { uscc }), [{ status }])
    }
  }
  for (const uscc of s.enterprise.unknown) {
    t.ok(isValidUscc(uscc))
    t.same(await src['enterprise.status']!.query(DEMO_SERVICE_SQL['enterprise.status'].lookup, { uscc }), [])
  }

  // tax.compliance: booleans from SQL, parameters as canonical strings.
  const tax = DEMO_SERVICE_SQL['tax.compliance']
  t.equal(s.tax.year, 2025)
  t.ok(s.tax.paidInFull.length > 0 && s.tax.notPaidInFull.length > 0 && s.tax.noRecord.length > 0)
  for (const p of [...s.tax.paidInFull, ...s.tax.notPaidInFull]) {
    const q = canonicalizeSubject(tax.fields, { uscc: p.uscc, year: p.year }, 'subject')
    const at = (bound: number) => src['tax.compliance']!.query(tax.lookup, { ...q, bound_fen: canonicalizeField('amount', bound, 'bound') })
    t.same(await at(p.paidFen), [{ paid_in_full: p.paidFen >= p.dueFen ? 1 : 0, meets_bound: 1 }])
    t.same(await at(p.paidFen + 1), [{ paid_in_full: p.paidFen >= p.dueFen ? 1 : 0, meets_bound: 0 }])
    t.same(await src['tax.compliance']!.query(TAX_VALUE_LOOKUP_SQL, q), [{ tax_paid_fen: p.paidFen }])
  }
  for (const p of s.tax.notPaidInFull) t.ok(p.paidFen < p.dueFen)
  for (const uscc of s.tax.noRecord) {
    t.same(await src['tax.compliance']!.query(tax.lookup, { uscc, year: '2025', bound_fen: '0' }), [])
  }

  // credit.dishonest: membership, either kind of identifier in one field.
  const credit = DEMO_SERVICE_SQL['credit.dishonest']
  const listed = async (id: string) => (await src['credit.dishonest']!.query(credit.lookup, canonicalizeSubject(credit.fields, { id }, 's'))).length === 1
  t.ok(s.credit.listedPersons.length > 0 && s.credit.listedEnterprises.length > 0)
  for (const id of [...s.credit.listedPersons, ...s.credit.listedEnterprises]) t.ok(await listed(id), id)
  for (const id of [...s.credit.unlistedPersons, ...s.credit.unlistedEnterprises]) t.notOk(await listed(id), id)

  // Enumeration queries cover the whole tables.
  let enumerated = 0
  for await (const batch of src['identity.match']!.iterate(DEMO_SERVICE_SQL['identity.match'].enumerate, {}, 1000)) enumerated += batch.length
  t.equal(enumerated, SIZES.residents)
})

t.test('bad sizes are rejected', async (t) => {
  const dir = t.testdir()
  await t.rejects(createDemoDatabases(dir, { residents: -1 }), RangeError)
  await t.rejects(createDemoDatabases(dir, { enterprises: 1.5 }), RangeError)
  await t.rejects(createDemoDatabases(dir, { taxYears: [] }), RangeError)
  await t.rejects(createDemoDatabases(dir, { taxYears: [2024, 2024] }), RangeError)
  await t.rejects(createDemoDatabases(dir, { taxYears: [1800] }), RangeError)
})

t.test('building blocks', async (t) => {
  t.equal(makeResidentId('110105', '1949-12-31', 2), '11010519491231002X')
  t.equal(makeUscc('91', '440300', '19220382'), '914403001922038216')
  const r1 = new DemoRandom('x')
  const r2 = new DemoRandom('x')
  const seq = Array.from({ length: 5 }, () => r1.u32())
  t.same(Array.from({ length: 5 }, () => r2.u32()), seq)
  t.not(new DemoRandom('y').u32(), seq[0])
  const r = new DemoRandom('stats')
  let sum = 0
  let sq = 0
  const n = 20000
  for (let i = 0; i < n; i++) {
    const z = r.normal()
    sum += z
    sq += z * z
  }
  t.ok(Math.abs(sum / n) < 0.05 && Math.abs(sq / n - 1) < 0.05, 'normal() has mean 0, variance 1')
  for (let i = 0; i < 1000; i++) {
    const v = r.int(3, 5)
    if (v < 3 || v > 5) t.fail('int out of range')
  }
})
