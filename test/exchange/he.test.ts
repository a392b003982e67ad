/**
 * he mode end to end between real nodes over HTTP: a bank-like consumer (fj-credit) asks the tax
 * bureau (fj-tax) "did this enterprise pay at least T in tax?" with T hidden under BFV, through its
 * local API. Bits are checked against the synthetic data's known amounts, with amounts set exactly
 * on, one fen below and above grid points; the key is sent once; the quota counts subjects; and
 * neither node writes the bound or the amount anywhere.
 */
import t from 'tap'
import { join } from 'node:path'
import { readdir, readFile } from 'node:fs/promises'
import { Writable } from 'node:stream'
import Database from 'better-sqlite3'
import { pino } from 'pino'
import { federationFixture } from '../helper.js'
import { REDACT } from '../../src/http/app.js'
import { gridValues, bucketIndex } from '../../src/he/grid.js'

const g = gridValues()
const ASK = { provider: 'fj-tax', service: 'tax.compliance', purpose: 'credit-evaluation', basis: 'Social Credit Regulations art. 12', mode: 'he' }

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = []
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) out.push(...await filesUnder(p))
    else out.push(p)
  }
  return out
}

/** Request payloads (decoded JWS) the consumer stored as evidence, in log order. */
function storedHeRequests(db: string): Array<{ q: Record<string, unknown> }> {
  const d = new Database(db, { readonly: true })
  try {
    const rows = d.prepare('SELECT jws FROM evidence_jws').pluck().all() as string[]
    return rows
      .map((j) => JSON.parse(Buffer.from(j.split('.')[1] ?? '', 'base64url').toString()) as { mode?: string; iat: number; q: Record<string, unknown> })
      .filter((p) => p.mode === 'he')
      .sort((a, b) => a.iat - b.iat)
  } finally {
    d.close()
  }
}

// One federation for the whole file: starting nodes and an HE worker costs seconds.
const lines: string[] = []
const sink = new Writable({ write(chunk, _enc, cb) { lines.push(String(chunk)); cb() } })
const f = await federationFixture(t, { start: ['fj-tax', 'fj-credit'], configOverrides: { he: { workers: 1 } }, logger: pino({ level: 'trace', redact: REDACT }, sink) })

t.test('hidden threshold: right bits, key sent once, quota counts subjects, no bound or amount written', async (t) => {
  const tax = f.fed.dataset.samples.tax
  const samples = [...tax.paidInFull, ...tax.notPaidInFull]
  t.ok(samples.length >= 6, 'enough samples')

  // Put three amounts exactly on the grid and one fen either side of it (the provider's own DB).
  const at = samples[0]!
  const below = samples[1]!
  const above = samples[2]!
  const level = 25
  const dbPath = join(f.fed.dataset.dir, 'tax-bureau.sqlite')
  const w = new Database(dbPath)
  const set = w.prepare('UPDATE tax_payments SET tax_paid_fen = ? WHERE uscc = ? AND year = ?')
  set.run(g[level], at.uscc, at.year)
  set.run((g[level] as number) - 1, below.uscc, below.year)
  set.run((g[level] as number) + 1, above.uscc, above.year)
  w.close()
  const paid = new Map(samples.map((s) => [s.uscc, s.paidFen]))
  paid.set(at.uscc, g[level] as number)
  paid.set(below.uscc, (g[level] as number) - 1)
  paid.set(above.uscc, (g[level] as number) + 1)

  const secrets = new Set<string>()
  // Amounts of at least 10,000 yuan: shorter numbers occur in configs (quotas) and timestamps.
  const distinctive = (v: number): boolean => v >= 1_000_000
  for (const v of paid.values()) if (distinctive(v)) secrets.add(String(v))

  // 1. everything at g[level]: on the grid point → yes, one fen below → no, one fen above → yes;
  //    the rest against their own bucket (yes), and a subject without a record (no).
  const first = [at, below, above].map((s) => ({ uscc: s.uscc, year: s.year, bound: g[level] }))
  const rest = samples.slice(3).map((s) => ({ uscc: s.uscc, year: s.year, bound: g[Math.max(0, bucketIndex(s.paidFen))] }))
  const none = { uscc: tax.noRecord[0]!, year: tax.year, bound: 0 }
  const r1 = await f.verify('fj-credit', { ...ASK, subjects: [...first, ...rest, none] })
  t.equal(r1.status, 200, JSON.stringify(r1.json).slice(0, 300))
  t.same(r1.json.results.slice(0, 3), [{ atLeast: true }, { atLeast: false }, { atLeast: true }], 'on the grid point, one fen below, one fen above')
  t.same(r1.json.results.slice(3, -1), rest.map(() => ({ atLeast: true })), 'each at its own bucket')
  t.same(r1.json.results.at(-1), { atLeast: false }, 'no record reads as below (bound 0 asks "is there a record")')

  // 2. one grid point higher than each amount's bucket: every answer is no; bound 0 on a record: yes.
  const higher = samples.slice(3).map((s) => ({ uscc: s.uscc, year: s.year, bound: g[bucketIndex(s.paidFen) + 1] }))
  const r2 = await f.verify('fj-credit', { ...ASK, subjects: [...higher, { uscc: at.uscc, year: at.year, bound: 0 }] })
  t.equal(r2.status, 200)
  t.same(r2.json.results, [...higher.map(() => ({ atLeast: false })), { atLeast: true }])
  for (const s of [...first, ...rest, ...higher]) if (distinctive(s.bound as number)) secrets.add(String(s.bound))
  t.ok(secrets.size >= 6, `${secrets.size} bounds and amounts to look for`)

  // The key rode inline in the first signed request only; the provider keeps it under var/he-keys.
  const reqs = storedHeRequests(join(f.fed.dir, 'fj-credit', 'var', 'log.db'))
  t.equal(reqs.length, 2)
  t.type(reqs[0]?.q.pkBytes, 'string', 'first request carries the public key')
  t.equal(reqs[1]?.q.pkBytes, undefined, 'second request names it by digest only')
  t.equal(reqs[0]?.q.pk, reqs[1]?.q.pk)
  t.equal(reqs[0]?.q.params, 'bfv-n8192-t1032193-q218-g64')
  const keyFiles = await readdir(join(f.fed.dir, 'fj-tax', 'var', 'he-keys'))
  t.same(keyFiles, [`fj-credit.${String(reqs[0]?.q.pk)}.pk`])

  // The provider's decisions counted subjects (he evaluations) against the agreement's quota.
  const pdb = new Database(join(f.fed.dir, 'fj-tax', 'var', 'log.db'), { readonly: true })
  const leaves = (pdb.prepare('SELECT data FROM leaves ORDER BY idx').pluck().all() as Buffer[]).map((b) => JSON.parse(b.toString()) as { t: string; mode?: string; count?: number })
  pdb.close()
  t.same(leaves.filter((l) => l.t === 'decision').map((l) => l.count), [first.length + rest.length + 1, higher.length + 1])
  t.same(leaves.filter((l) => l.t === 'request-in').map((l) => l.mode), ['he', 'he'])

  // Neither node wrote a bound or an amount: log databases, evidence, key files, log lines. An
  // amount counts as found when it stands as its own number (not inside a longer one, such as a
  // timestamp or a float that happens to contain its digits).
  for (const n of Object.values(f.nodes)) await n.node.checkpoint()
  const standalone = (text: string, v: string): boolean => new RegExp(`(?<![0-9.])${v}(?![0-9.])`).test(text)
  const logText = lines.join('')
  for (const id of ['fj-tax', 'fj-credit']) {
    for (const file of await filesUnder(join(f.fed.dir, id, 'var'))) {
      const text = (await readFile(file)).toString('latin1')
      for (const v of secrets) t.notOk(standalone(text, v), `${id}: ${file.slice(f.fed.dir.length)} holds no bound or amount`)
    }
  }
  for (const v of secrets) t.notOk(standalone(logText, v), 'log lines hold no bound or amount')
})

t.test('hidden range on income.band: [bound <= income < below], edges included; plain tiers agree', async (t) => {
  const inc = f.fed.incomes
  t.ok(inc.samples.length >= 6, 'enough declared incomes')
  const [a, b, c, ...rest] = inc.samples as [typeof inc.samples[0], typeof inc.samples[0], typeof inc.samples[0], ...typeof inc.samples]
  // a: exactly on g[30]; b: one fen below g[30]; c: exactly on g[34] (the band's exclusive top).
  const w = new Database(join(f.fed.dataset.dir, 'tax-bureau.sqlite'))
  const set = w.prepare('UPDATE declared_income SET income_fen = ? WHERE id_number = ? AND year = ?')
  set.run(g[30], a.id, a.year)
  set.run((g[30] as number) - 1, b.id, b.year)
  set.run(g[34], c.id, c.year)
  w.close()
  const band = { bound: g[30] as number, below: g[34] as number }
  const own = rest.map((s) => {
    const k = bucketIndex(s.incomeFen)
    return { id: s.id, year: s.year, inside: { bound: g[k] as number, below: g[k + 1] as number }, outside: { bound: g[k + 1] as number } }
  })
  const ask = { provider: 'fj-tax', service: 'income.band', purpose: 'credit-evaluation', basis: 'Social Credit Regulations art. 12', mode: 'he' }
  const r = await f.verify('fj-credit', {
    ...ask,
    subjects: [
      { id: a.id, year: a.year, ...band }, { id: b.id, year: b.year, ...band }, { id: c.id, year: c.year, ...band },
      ...own.map((s) => ({ id: s.id, year: s.year, ...s.inside })),
      { id: inc.noRecord[0], year: inc.year, bound: 0 },
    ],
  })
  t.equal(r.status, 200, JSON.stringify(r.json).slice(0, 300))
  t.same(r.json.results.slice(0, 3), [{ inRange: true }, { inRange: false }, { inRange: false }], 'lower edge in, one fen below out, upper edge out')
  t.same(r.json.results.slice(3, -1), own.map(() => ({ inRange: true })), 'each in its own bucket')
  t.same(r.json.results.at(-1), { inRange: false }, 'no record is in no band, not even [0, top)')
  // Open-ended band (no `below`): from one level above each amount, never in range.
  const r2 = await f.verify('fj-credit', { ...ask, subjects: own.map((s) => ({ id: s.id, year: s.year, ...s.outside })) })
  t.same(r2.json.results, own.map(() => ({ inRange: false })))
  // The same service in plain mode answers the tier from the menu.
  const p = await f.verify('fj-credit', { ...ask, mode: 'plain', subjects: [{ id: a.id, year: a.year }] })
  t.equal(p.status, 200)
  t.equal(p.json.results[0].found, true)
  // A band whose top is not above its bottom is refused by the consumer.
  const bad = await f.verify('fj-credit', { ...ask, subjects: [{ id: a.id, year: a.year, bound: g[30], below: g[30] }] })
  t.equal(bad.json.code, 'VN_ERR_HE_BOUND')
})

t.test('consumer-side refusals: nothing is signed, sent or written', async (t) => {
  const s = f.fed.dataset.samples.tax.paidInFull[0]!
  const db = join(f.fed.dir, 'fj-credit', 'var', 'log.db')
  const leafCount = (): number => {
    const d = new Database(db, { readonly: true })
    try {
      return d.prepare('SELECT count(*) FROM leaves').pluck().get() as number
    } finally {
      d.close()
    }
  }
  const before = leafCount()
  const cases: Array<[string, unknown[], number, string]> = [
    ['bound off the grid', [{ uscc: s.uscc, year: s.year, bound: 3_000_000 }], 400, 'VN_ERR_HE_BOUND'],
    ['bound above the grid', [{ uscc: s.uscc, year: s.year, bound: 1_000_000_000_000 }], 400, 'VN_ERR_HE_BOUND'],
    ['no bound', [{ uscc: s.uscc, year: s.year }], 400, 'VN_ERR_HE_BOUND'],
    ['same subject twice', [{ uscc: s.uscc, year: s.year, bound: g[10] }, { uscc: s.uscc, year: s.year, bound: g[20] }], 400, 'VN_ERR_SUBJECT_INVALID'],
  ]
  for (const [name, subjects, status, code] of cases) {
    const r = await f.verify('fj-credit', { ...ASK, subjects })
    t.equal(r.status, status, `${name}: status`)
    t.equal(r.json.code, code, `${name}: code`)
    t.notMatch(JSON.stringify(r.json), /3000000|1000000000000/, `${name}: no amount in the error`)
  }
  t.equal(leafCount(), before, 'nothing was logged')
  const r = await f.verify('fj-credit', { provider: 'fj-tax', service: 'tax.compliance', purpose: 'credit-evaluation', basis: 'Social Credit Regulations art. 12', mode: 'he', subjects: [{ uscc: s.uscc, year: s.year, bound: g[12] }] })
  t.equal(r.status, 200, 'and a good one still works afterwards')
  t.same(r.json.results, [{ atLeast: s.paidFen >= (g[12] as number) }])
})
