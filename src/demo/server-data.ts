/**
 * The demo's synthetic data in a real database server: `verinode demo --source postgres|mysql`
 * copies the four departments' SQLite tables into one PostgreSQL schema or one MySQL/MariaDB
 * database (`verinode_demo` unless told otherwise), dropped and recreated, with their primary keys
 * and indexes, and the nodes read it from there. Optionally a read-only login (`reader`) is granted
 * SELECT on it and the nodes log in as that account, as a department's node should.
 *
 * The data is synthetic: this loader writes with the admin URL it is given and never touches
 * anything outside the namespace it recreates.
 */
import Database from 'better-sqlite3'
import pg from 'pg'
import mysql from 'mysql2/promise'
import { VnError } from '../errors.js'

export type DemoServerKind = 'postgres' | 'mysql'

export interface DemoServerSource {
  readonly kind: DemoServerKind
  /** An admin URL (may create and drop the namespace), e.g. `postgres://postgres@127.0.0.1:5432/verinode_test`. */
  readonly url: string
  /** The schema (PostgreSQL) or database (MySQL) recreated for the demo (default `verinode_demo`). */
  readonly namespace?: string
  /** A read-only login the nodes use instead of the admin: granted SELECT on the namespace. */
  readonly reader?: { readonly user: string; readonly password: string }
}

export const DEMO_NAMESPACE = 'verinode_demo'
const IDENT = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/
const CHUNK = 500

interface Column { name: string; type: string; pk: number; notnull: number }
interface TableCopy { name: string; columns: Column[]; indexes: { name: string; unique: boolean; columns: string[] }[]; rows: unknown[][] }

function ident(name: string, what: string): string {
  if (!IDENT.test(name)) throw new VnError('VN_ERR_CONFIG_INVALID', `${what}: ${JSON.stringify(name)} is not a plain identifier`)
  return name
}

/** Every table of a SQLite file: columns, keys, indexes and rows. */
function readTables(file: string): TableCopy[] {
  const db = new Database(file, { readonly: true, fileMustExist: true })
  try {
    const names = db.prepare<[], { name: string }>("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").all()
    return names.map(({ name }) => {
      ident(name, 'table')
      const columns = db.prepare<[], Column>(`PRAGMA table_info(${name})`).all()
      for (const c of columns) ident(c.name, `${name} column`)
      const indexes = db.prepare<[], { name: string; unique: number; origin: string }>(`PRAGMA index_list(${name})`).all()
        .filter((i) => i.origin === 'c')
        .map((i) => ({
          name: ident(i.name, 'index'),
          unique: i.unique === 1,
          columns: db.prepare<[], { name: string }>(`PRAGMA index_info(${i.name})`).all().map((c) => c.name),
        }))
      const rows = db.prepare(`SELECT ${columns.map((c) => c.name).join(', ')} FROM ${name}`).raw().all() as unknown[][]
      return { name, columns, indexes, rows }
    })
  } finally {
    db.close()
  }
}

function columnType(kind: DemoServerKind, declared: string): string {
  const t = declared.toUpperCase()
  if (t.includes('INT')) return 'BIGINT'
  if (t.includes('REAL') || t.includes('FLOA') || t.includes('DOUB')) return kind === 'postgres' ? 'DOUBLE PRECISION' : 'DOUBLE'
  if (t.includes('BLOB')) return kind === 'postgres' ? 'BYTEA' : 'LONGBLOB'
  // MySQL indexes need a bounded length; the demo's texts are short.
  return kind === 'postgres' ? 'TEXT' : 'VARCHAR(255)'
}

function createTable(kind: DemoServerKind, ns: string, t: TableCopy): string[] {
  const cols = t.columns.map((c) => `${c.name} ${columnType(kind, c.type)}${c.notnull === 1 ? ' NOT NULL' : ''}`)
  const pk = t.columns.filter((c) => c.pk > 0).sort((a, b) => a.pk - b.pk).map((c) => c.name)
  if (pk.length > 0) cols.push(`PRIMARY KEY (${pk.join(', ')})`)
  const out = [`CREATE TABLE ${ns}.${t.name} (${cols.join(', ')})${kind === 'mysql' ? ' CHARACTER SET utf8mb4' : ''}`]
  for (const i of t.indexes) {
    out.push(kind === 'postgres'
      ? `CREATE ${i.unique ? 'UNIQUE ' : ''}INDEX ${i.name} ON ${ns}.${t.name} (${i.columns.join(', ')})`
      : `CREATE ${i.unique ? 'UNIQUE ' : ''}INDEX ${i.name} ON ${ns}.${t.name} (${i.columns.join(', ')})`)
  }
  return out
}

async function loadPostgres(src: DemoServerSource, ns: string, tables: TableCopy[]): Promise<void> {
  const c = new pg.Client({ connectionString: src.url, connectionTimeoutMillis: 5000 })
  await c.connect()
  try {
    await c.query('BEGIN')
    await c.query(`DROP SCHEMA IF EXISTS ${ns} CASCADE`)
    await c.query(`CREATE SCHEMA ${ns}`)
    for (const t of tables) {
      for (const sql of createTable('postgres', ns, t)) await c.query(sql)
      const cols = t.columns.map((x) => x.name).join(', ')
      for (let i = 0; i < t.rows.length; i += CHUNK) {
        const chunk = t.rows.slice(i, i + CHUNK)
        const width = t.columns.length
        const values = chunk.map((_, r) => `(${t.columns.map((__, k) => `$${r * width + k + 1}`).join(', ')})`).join(', ')
        await c.query(`INSERT INTO ${ns}.${t.name} (${cols}) VALUES ${values}`, chunk.flat())
      }
    }
    if (src.reader !== undefined) {
      const user = ident(src.reader.user, 'reader')
      await c.query(`GRANT USAGE ON SCHEMA ${ns} TO ${user}`)
      await c.query(`GRANT SELECT ON ALL TABLES IN SCHEMA ${ns} TO ${user}`)
    }
    await c.query('COMMIT')
    await c.query(`ANALYZE`)
  } catch (e) {
    await c.query('ROLLBACK').catch(() => undefined)
    throw e
  } finally {
    await c.end()
  }
}

async function loadMysql(src: DemoServerSource, ns: string, tables: TableCopy[]): Promise<void> {
  const c = await mysql.createConnection({ uri: src.url, connectTimeout: 5000 })
  try {
    await c.query(`DROP DATABASE IF EXISTS ${ns}`)
    await c.query(`CREATE DATABASE ${ns} CHARACTER SET utf8mb4`)
    for (const t of tables) {
      for (const sql of createTable('mysql', ns, t)) await c.query(sql)
      const cols = t.columns.map((x) => x.name).join(', ')
      for (let i = 0; i < t.rows.length; i += CHUNK) {
        // The demo's own synthetic rows, formatted by mysql2 for a bulk insert.
        await c.query(`INSERT INTO ${ns}.${t.name} (${cols}) VALUES ?`, [t.rows.slice(i, i + CHUNK)])
      }
    }
    if (src.reader !== undefined) {
      const user = ident(src.reader.user, 'reader')
      await c.query(`GRANT SELECT ON ${ns}.* TO '${user}'@'%'`)
      await c.query(`GRANT SELECT ON ${ns}.* TO '${user}'@'localhost'`).catch(() => undefined)
    }
  } finally {
    await c.end()
  }
}

/**
 * Recreates the namespace and copies every table of `files` (SQLite) into it; resolves with the
 * row count of each table.
 * @throws VnError VN_ERR_SOURCE_UNAVAILABLE when the server cannot be reached or refuses.
 */
export async function loadDemoIntoServer(files: readonly string[], src: DemoServerSource): Promise<Record<string, number>> {
  const ns = ident(src.namespace ?? DEMO_NAMESPACE, 'namespace')
  const tables = files.flatMap(readTables)
  try {
    if (src.kind === 'postgres') await loadPostgres(src, ns, tables)
    else await loadMysql(src, ns, tables)
  } catch (e) {
    if (e instanceof VnError) throw e
    const code = (e as { code?: unknown }).code
    throw new VnError('VN_ERR_SOURCE_UNAVAILABLE', `demo: cannot load the data into ${src.kind} (${typeof code === 'string' ? code : (e as Error).message})`, { cause: e })
  }
  return Object.fromEntries(tables.map((t) => [t.name, t.rows.length]))
}

/**
 * The demo services' SQL for a server dialect: SQLite's `CAST(x AS INTEGER)` is 64-bit, which is
 * BIGINT in PostgreSQL and SIGNED in MySQL.
 */
export function demoSqlFor(kind: DemoServerKind | 'sqlite', sql: string): string {
  if (kind === 'sqlite') return sql
  return sql.replaceAll(' AS INTEGER)', kind === 'postgres' ? ' AS BIGINT)' : ' AS SIGNED)')
}
