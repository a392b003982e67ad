/**
 * Declared individual income for the demo's `income.band` service (tax bureau): a table
 * `declared_income(id_number, year, income_fen)` added to the tax bureau's SQLite file, for a
 * deterministic subset of the public-security register's residents (so ID numbers are valid
 * GB 11643 numbers of people who exist in the demo).
 *
 * Incomes are drawn from SHA-256(seed | id | year), log-normal-like around 80,000 yuan a year, so
 * the same seed gives the same rows. The service answers a band: plain mode maps the amount onto
 * the declared tiers; he mode answers [bound <= income < below] for the asker's hidden band.
 */
import Database from 'better-sqlite3'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { DEMO_FILES, type DemoDataset } from './synthetic.js'

export interface IncomeSample {
  readonly id: string
  readonly year: number
  readonly incomeFen: number
}

export interface DemoIncomes {
  readonly year: number
  readonly rows: number
  /** the first residents with a declared income (up to 10) */
  readonly samples: readonly IncomeSample[]
  /** residents in the register without a declared income for `year` (up to 3) */
  readonly noRecord: readonly string[]
}

/** SQL of `income.band`: the declared income in fen (plain `tier` lookup and he value alike). */
export const INCOME_VALUE_SQL = 'SELECT income_fen AS value FROM declared_income WHERE id_number = :id AND year = CAST(:year AS INTEGER)'

/** A uniform number in [0, 1) from the seed and the row's key. */
function unit(seed: string, key: string): number {
  return createHash('sha256').update(`${seed}|income|${key}`).digest().readUInt32BE(0) / 2 ** 32
}

/** Adds `declared_income` for every second resident (at most `max`) for the dataset's last tax year. */
export function addDeclaredIncomes(dataset: DemoDataset, max = 5000): DemoIncomes {
  const year = dataset.samples.tax.year
  const ps = new Database(join(dataset.dir, DEMO_FILES.publicSecurity), { readonly: true })
  let ids: string[]
  try {
    ids = ps.prepare('SELECT id_number FROM residents ORDER BY rowid LIMIT ?').pluck().all(2 * max) as string[]
  } finally {
    ps.close()
  }
  const declared = ids.filter((_, i) => i % 2 === 0)
  const rows = declared.map((id) => {
    // exp of a sum of uniforms: a skewed, long-tailed amount, median about 80,000 yuan.
    const z = (unit(dataset.seed, `${id}|${year}|a`) + unit(dataset.seed, `${id}|${year}|b`) + unit(dataset.seed, `${id}|${year}|c`) - 1.5) * 2
    return { id, year, incomeFen: Math.round(8_000_000 * Math.exp(z)) }
  })
  const db = new Database(join(dataset.dir, DEMO_FILES.taxBureau))
  try {
    db.exec(`
      CREATE TABLE IF NOT EXISTS declared_income (
        id_number  TEXT NOT NULL,                              -- GB 11643-1999
        year       INTEGER NOT NULL,
        income_fen INTEGER NOT NULL CHECK (income_fen >= 0),   -- fen = 0.01 CNY
        PRIMARY KEY (id_number, year)
      );`)
    const ins = db.prepare('INSERT OR REPLACE INTO declared_income (id_number, year, income_fen) VALUES (?, ?, ?)')
    db.transaction(() => { for (const r of rows) ins.run(r.id, r.year, r.incomeFen) })()
  } finally {
    db.close()
  }
  return { year, rows: rows.length, samples: rows.slice(0, 10), noRecord: ids.filter((_, i) => i % 2 === 1).slice(0, 3) }
}
