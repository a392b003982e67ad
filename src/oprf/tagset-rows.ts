/**
 * Enumerated rows → tag-set records (the OPRF input and the shard hash of each row), computed where
 * the row is evaluated (issue 19 §4): on an OPRF worker for a pool build, so the event loop only
 * reads rows, packs them and writes run files, and the workers canonicalize, hash to the curve,
 * evaluate and compute the shard hashes.
 *
 * A chunk travels as one string (`packRows`): the JSON array of the raw values of its rows, for
 * each row the OPRF fields in input order, then the label column (labelled kinds). One string is one
 * copy on `postMessage` (an array of per-row objects or inputs is cloned value by value), and one
 * digest call gives the chunk's checkpoint identity (`rowsDigest`) before it is evaluated. The
 * JSON round trip keeps every outcome of `canonicalizeField`: the values are strings, booleans and
 * numbers (a bigint is converted first, as before), anything else travels as null and is skipped
 * as before; a non-finite number becomes null, and both were skipped (not a safe integer).
 *
 * The input format (`oprfFields`, `oprfLabels`): src/oprf/tagset-service.ts, module comment.
 */
import { createHash } from 'node:crypto'
import { VnError } from '../errors.js'
import { canonicalizeField, type FieldKind } from '../protocol/canonicalize.js'
import type { Row } from '../sources/types.js'
import { activeProfile } from '../crypto/profile.js'
import { oprfInput } from './tagset.js'
import { evaluatePrefixes } from './prefixes.js'
import { shardHashOfKeyInput } from './tagshards.js'
import type { WorkerPool } from '../util/worker-pool.js'

/** The version number bound into every OPRF input (oprfInput's `version`). */
export const OPRF_INPUT_VERSION = 1
/**
 * Bound into every rows digest: raise it when what a row canonicalizes to changes, so that run
 * files of an interrupted build made by the older code are not reused.
 */
const ROWS_FORMAT = 'verinode-tagset-rows-v1'

/** What both a provider's ServiceConfig and a consumer's CatalogService give us. */
export interface OprfServiceShape {
  id: string
  kind: 'match' | 'membership' | 'status' | 'threshold' | 'tier'
  fields: Record<string, { kind: FieldKind; key: boolean; required: boolean }>
  statuses?: string[] | undefined
  tiers?: { id: string; min: number }[] | undefined
}

const byCodeUnit = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)

/** The fields that enter the OPRF input, in input order (module comment). */
export function oprfFields(svc: OprfServiceShape): string[] {
  const names = Object.keys(svc.fields).sort(byCodeUnit)
  return svc.kind === 'match' ? names : names.filter((n) => svc.fields[n]?.key === true)
}

/** The fixed label menu of a service, or undefined for `match` / `membership`. */
export function oprfLabels(svc: OprfServiceShape): string[] | undefined {
  switch (svc.kind) {
    case 'match':
    case 'membership':
      return undefined
    case 'status':
      if (svc.statuses === undefined || svc.statuses.length === 0) throw new VnError('VN_ERR_CONFIG_INVALID', `service ${svc.id}: oprf mode needs statuses`)
      return svc.statuses
    case 'tier':
    case 'threshold':
      if (svc.tiers === undefined || svc.tiers.length === 0) throw new VnError('VN_ERR_CONFIG_INVALID', `service ${svc.id}: oprf mode needs tiers`)
      return svc.tiers.map((t) => t.id)
  }
}

/** The enumeration column holding the label for labelled kinds. */
export const labelColumn = (svc: OprfServiceShape): string => (svc.kind === 'status' ? 'status' : 'tier')

/** Everything a thread needs to turn a packed row into a record (plain data: it is posted to workers). */
export interface RowSpec {
  service: string
  /** the OPRF fields in input order: column name, canonical kind, and whether it is a key field */
  fields: { name: string; kind: FieldKind; key: boolean }[]
  /** the label menu and its column (labelled kinds) */
  labels?: string[]
  labelColumn?: string
  /** the profile's digest, for the shard hash */
  hashAlg: 'sha256' | 'sm3'
}

export function rowSpec(svc: OprfServiceShape): RowSpec {
  const fields = oprfFields(svc).map((name) => {
    const f = svc.fields[name] as { kind: FieldKind; key: boolean }
    return { name, kind: f.kind, key: f.key === true }
  })
  const labels = oprfLabels(svc)
  const spec: RowSpec = { service: svc.id, fields, hashAlg: activeProfile().hashAlg }
  if (labels !== undefined) {
    spec.labels = labels
    spec.labelColumn = labelColumn(svc)
  }
  return spec
}

/** Values per packed row. */
const width = (spec: RowSpec): number => spec.fields.length + (spec.labels === undefined ? 0 : 1)

/** A raw value as it travels: strings, numbers and booleans as they are, a bigint as a number, anything else null. */
function travelling(v: unknown): unknown {
  switch (typeof v) {
    case 'string':
    case 'number':
    case 'boolean':
      return v
    case 'bigint':
      return Number(v)
    default:
      return null
  }
}

/** The rows of one chunk, packed (module comment). */
export function packRows(spec: RowSpec, rows: readonly Row[]): string {
  const w = width(spec)
  const values: unknown[] = new Array(rows.length * w)
  const names = spec.fields.map((f) => f.name)
  if (spec.labelColumn !== undefined) names.push(spec.labelColumn)
  let k = 0
  for (const row of rows) {
    for (const n of names) {
      const v = row[n]
      values[k++] = typeof v === 'string' ? v : travelling(v)
    }
  }
  return JSON.stringify(values)
}

/** A packed chunk's identity in the run files: its values under this spec and format. */
export function rowsDigest(spec: RowSpec, packed: string): Buffer {
  return createHash(spec.hashAlg).update(ROWS_FORMAT).update('\0').update(JSON.stringify(spec)).update('\0').update(packed).digest()
}

/** Any UTF-16 surrogate: such a value takes `oprfInput`'s own path (which refuses a lone one). */
const SURROGATE = /[\uD800-\uDFFF]/

/**
 * Writes `oprfInput(service, 1, values)` without a buffer per part (the build writes one a record,
 * and the shard hash's key input too): the same bytes as `oprfInput` (test/oprf/tagset-rows.test.ts).
 * Anything unusual (a surrogate, an oversized value, no values) is left to `oprfInput`, which gives
 * the bytes or the error.
 */
class InputWriter {
  /** oprfInput's bytes before the field count */
  private readonly head: Buffer
  private block = Buffer.allocUnsafe(0)
  private at = 0

  constructor(private readonly service: string) {
    const probe = oprfInput(service, OPRF_INPUT_VERSION, [''])
    this.head = Buffer.from(probe.subarray(0, probe.length - 4))
  }

  /** The input as a view into a shared block (blocks are never reused: views stay valid). */
  input(values: readonly string[]): Uint8Array {
    let need = this.head.length + 2
    for (const v of values) need += 2 + 3 * v.length
    if (need > this.block.length - this.at) {
      this.block = Buffer.allocUnsafe(Math.max(need, 1 << 16))
      this.at = 0
    }
    const end = this.write(values, this.block, this.at)
    if (end < 0) return oprfInput(this.service, OPRF_INPUT_VERSION, values)
    const out = this.block.subarray(this.at, end)
    this.at = end
    return out
  }

  /** Writes the input at `o` in `buf` (room for 3 bytes a code unit); -1 when `oprfInput` must decide. */
  private write(values: readonly string[], buf: Buffer, o: number): number {
    if (values.length === 0 || values.length > 0xffff) return -1
    const start = o
    this.head.copy(buf, o)
    o += this.head.length
    buf.writeUInt16BE(values.length, o)
    o += 2
    for (const v of values) {
      if (SURROGATE.test(v)) return -1
      const n = buf.write(v, o + 2, 'utf8')
      if (n > 0xffff) return -1
      buf.writeUInt16BE(n, o)
      o += 2 + n
    }
    return o - start > 0xffff ? -1 : o
  }
}

/** One row's OPRF input and shard hash, or null when the row cannot be a record (rowInput). */
function recordAt(spec: RowSpec, w: InputWriter, values: readonly unknown[], at: number): { input: Uint8Array; shardHash: number } | null {
  const canonical: string[] = []
  const keys: string[] = []
  for (let i = 0; i < spec.fields.length; i++) {
    const f = spec.fields[i] as RowSpec['fields'][number]
    const v = values[at + i]
    if (v === null || v === undefined) return null
    let c: string
    try {
      c = canonicalizeField(f.kind, v, f.name)
    } catch {
      return null
    }
    canonical.push(c)
    if (f.key) keys.push(c)
  }
  if (spec.labels !== undefined) {
    const l = values[at + spec.fields.length]
    if (typeof l !== 'string' || !spec.labels.includes(l)) return null
    canonical.push(l)
  }
  const input = w.input(canonical)
  return { input, shardHash: shardHashOfKeyInput(w.input(keys), spec.hashAlg) }
}

/** The records of a list of flat values (rows that cannot be records left out). */
function recordsOf(spec: RowSpec, values: readonly unknown[]): { inputs: Uint8Array[]; shardHashes: Uint32Array } {
  const per = width(spec)
  const w = new InputWriter(spec.service)
  const inputs: Uint8Array[] = []
  const hashes = new Uint32Array(values.length / per)
  for (let at = 0; at < values.length; at += per) {
    const r = recordAt(spec, w, values, at)
    if (r === null) continue
    hashes[inputs.length] = r.shardHash
    inputs.push(r.input)
  }
  return { inputs, shardHashes: hashes.slice(0, inputs.length) }
}

/** The records of enumerated rows, in this thread (small sets). */
export function rowRecords(spec: RowSpec, rows: readonly Row[]): { inputs: Uint8Array[]; shardHashes: Uint32Array } {
  return recordsOf(spec, JSON.parse(packRows(spec, rows)) as unknown[])
}

/**
 * A packed chunk evaluated (on a worker, or in-thread without a pool): the 8-byte Evaluate prefixes
 * of its records (src/oprf/prefixes.ts) and their shard hashes, rows that cannot be records left out.
 */
export function evaluateRows(secretKey: Uint8Array, spec: RowSpec, packed: string): { prefixes: Uint8Array; hashes: Uint32Array } {
  const values = JSON.parse(packed) as unknown
  if (!Array.isArray(values) || values.length % width(spec) !== 0) throw new VnError('VN_ERR_OPRF_INPUT', 'evaluateRows: not a packed chunk of this spec')
  const r = recordsOf(spec, values)
  return { prefixes: evaluatePrefixes(secretKey, r.inputs), hashes: r.shardHashes }
}

/** `evaluateRows` on a worker of the OPRF pool (src/oprf/oprf-worker.ts). */
export function poolEvaluateRows(pool: WorkerPool, secretKey: Uint8Array, spec: RowSpec, packed: string): Promise<{ prefixes: Uint8Array; hashes: Uint32Array }> {
  return pool.run('evaluateRows', { secretKey, spec, packed })
}
