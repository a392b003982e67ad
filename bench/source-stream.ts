/**
 * Data-source enumeration benchmark: a 10^6-row table read through `DataSource.iterate` (what an
 * oprf tag-set build does), from PostgreSQL (pg-cursor), MySQL/MariaDB (mysql2 row stream) and,
 * as the reference, SQLite (better-sqlite3).
 *
 * The rows (`id` text, `name` text, `n` integer) are loaded into a scratch schema / database /
 * file first, then each source is iterated in a child process of its own, so each figure's peak
 * RSS (`process.resourceUsage().maxRSS`) is that source's alone: bounded memory means it stays far
 * below what 10^6 rows held at once would take. Prints rows/s and peak RSS per source; the last
 * line is `ratio: <postgres rows per s / sqlite rows per s>`.
 *
 * Run with `npm run bench:source-stream` (N = 10^6, batch 1000), or
 * `node .bench-build/bench/source-stream.js [N] [batch]` after a build. Servers: VN_TEST_PG_URL and
 * VN_TEST_MYSQL_URL as the database tests (default the local servers); a server that does not
 * answer is reported and skipped.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import pg from 'pg'
import mysql from 'mysql2/promise'
import { openDataSource, type DataSourceConfig } from '../src/sources/index.js'

const N = Number(process.argv[2] ?? 1_000_000)
const BATCH = Number(process.argv[3] ?? 1000)
const PG_URL = process.env.VN_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/verinode_test'
const MYSQL_URL = process.env.VN_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/verinode_test'
const ENUMERATE = 'SELECT id, name, n FROM people'

interface Result { kind: string; rows: number; ms: number; maxRssMiB: number }

/** Child mode: iterate one source and print one JSON line. */
async function child(cfg: DataSourceConfig): Promise<void> {
  const src = await openDataSource(cfg, { statements: { 'bench.enumerate': ENUMERATE } })
  let rows = 0
  let check = 0
  const t0 = performance.now()
  for await (const batch of src.iterate(ENUMERATE, {}, BATCH)) {
    rows += batch.length
    check += Number(batch[batch.length - 1]?.n ?? 0) // touch the rows
  }
  const ms = performance.now() - t0
  await src.close()
  const r: Result & { check: number } = { kind: cfg.kind, rows, ms, maxRssMiB: process.resourceUsage().maxRSS / 1024, check }
  process.stdout.write(`${JSON.stringify(r)}\n`)
}

function runChild(cfg: DataSourceConfig): Result {
  const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), String(N), String(BATCH), '--child', JSON.stringify(cfg)], { encoding: 'utf8', maxBuffer: 1 << 20 })
  return JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as Result
}

async function loadPostgres(ns: string): Promise<DataSourceConfig> {
  const c = new pg.Client({ connectionString: PG_URL })
  await c.connect()
  try {
    await c.query(`CREATE SCHEMA ${ns}`)
    await c.query(`CREATE TABLE ${ns}.people AS SELECT 'id' || lpad(i::text, 8, '0') AS id, 'name' || i AS name, i AS n FROM generate_series(1, ${N}) AS i`)
    await c.query(`ANALYZE ${ns}.people`)
  } finally {
    await c.end()
  }
  return { kind: 'postgres', url: PG_URL, schema: ns }
}

async function loadMysql(ns: string): Promise<DataSourceConfig> {
  const c = await mysql.createConnection({ uri: MYSQL_URL })
  try {
    await c.query(`CREATE DATABASE ${ns}`)
    await c.query(`CREATE TABLE ${ns}.people (id VARCHAR(20) NOT NULL, name VARCHAR(20) NOT NULL, n INT NOT NULL) ENGINE=InnoDB`)
    await c.query(`CREATE TABLE ${ns}.d (x INT)`)
    await c.query(`INSERT INTO ${ns}.d VALUES (0),(1),(2),(3),(4),(5),(6),(7),(8),(9)`)
    const digits = Math.ceil(Math.log10(N))
    const from = Array.from({ length: digits }, (_, k) => `${ns}.d d${k}`).join(', ')
    const sum = Array.from({ length: digits }, (_, k) => `d${k}.x * ${10 ** k}`).join(' + ')
    await c.query(`INSERT INTO ${ns}.people SELECT CONCAT('id', LPAD(i, 8, '0')), CONCAT('name', i), i FROM (SELECT ${sum} + 1 AS i FROM ${from}) s WHERE i <= ${N}`)
  } finally {
    await c.end()
  }
  const u = new URL(MYSQL_URL)
  return { kind: 'mysql', url: u.toString(), database: ns }
}

function loadSqlite(dir: string): DataSourceConfig {
  const path = join(dir, 'people.sqlite')
  const db = new Database(path)
  db.pragma('journal_mode = WAL')
  db.exec('CREATE TABLE people (id TEXT NOT NULL, name TEXT NOT NULL, n INTEGER NOT NULL)')
  db.prepare(`INSERT INTO people WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ${N})
    SELECT 'id' || substr('00000000' || i, -8), 'name' || i, i FROM s`).run()
  db.close()
  return { kind: 'sqlite', path }
}

async function drop(kind: 'postgres' | 'mysql', ns: string): Promise<void> {
  if (kind === 'postgres') {
    const c = new pg.Client({ connectionString: PG_URL })
    await c.connect()
    await c.query(`DROP SCHEMA IF EXISTS ${ns} CASCADE`).finally(() => c.end())
  } else {
    const c = await mysql.createConnection({ uri: MYSQL_URL })
    await c.query(`DROP DATABASE IF EXISTS ${ns}`).finally(() => c.end())
  }
}

function line(r: Result): string {
  return `${r.kind.padEnd(9)} ${r.rows} rows in ${(r.ms / 1000).toFixed(2)} s: ${Math.round(r.rows / (r.ms / 1000)).toLocaleString('en')} rows/s, peak RSS ${r.maxRssMiB.toFixed(0)} MiB`
}

async function main(): Promise<void> {
  const ns = `vn_bench_${randomBytes(4).toString('hex')}`
  const dir = mkdtempSync(join(tmpdir(), 'vn-bench-src-'))
  const results: Record<string, Result> = {}
  console.log(`iterate ${N} rows (id, name, n) in batches of ${BATCH}; each source in a child process of its own`)
  try {
    const t0 = performance.now()
    const sqlite = loadSqlite(dir)
    console.log(`loaded sqlite in ${((performance.now() - t0) / 1000).toFixed(1)} s`)
    results.sqlite = runChild(sqlite)
    console.log(line(results.sqlite))
    for (const kind of ['postgres', 'mysql'] as const) {
      let cfg: DataSourceConfig
      try {
        const t1 = performance.now()
        cfg = kind === 'postgres' ? await loadPostgres(ns) : await loadMysql(ns)
        console.log(`loaded ${kind} in ${((performance.now() - t1) / 1000).toFixed(1)} s`)
      } catch (e) {
        console.log(`${kind}: skipped, the server does not answer or refuses (${(e as Error).message})`)
        await drop(kind, ns).catch(() => undefined)
        continue
      }
      try {
        results[kind] = runChild(cfg)
        console.log(line(results[kind]))
      } finally {
        await drop(kind, ns).catch(() => undefined)
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  const rate = (r: Result | undefined): number => (r === undefined ? Number.NaN : r.rows / (r.ms / 1000))
  if (results.mysql !== undefined) console.log(`mysql / sqlite: ${(rate(results.mysql) / rate(results.sqlite)).toFixed(3)}`)
  console.log(`ratio: ${(rate(results.postgres) / rate(results.sqlite)).toFixed(3)}`)
}

const childAt = process.argv.indexOf('--child')
if (childAt !== -1) await child(JSON.parse(process.argv[childAt + 1] ?? '{}') as DataSourceConfig)
else await main()
