/**
 * `verinode verify-batch <peer> <service> --in subjects.csv --out results.csv --purpose P --basis B`:
 * many subjects, CSV in and CSV out (issue 2 §9), through this department's own node.
 *
 * - Input: RFC 4180 CSV (./csv.ts), a header row naming the service's fields, streamed.
 * - Every row is checked locally first, with the node's own canonicalization
 *   (`Consumer.canonicalSubjects` → `canonicalizeField`) against the catalog's field kinds. A row
 *   that fails gets its own output line with the error code and is not sent, so it cannot sink
 *   the signed request it would have travelled in.
 * - Valid rows go in chunks of `--chunk` (default: the provider's `limits.batchMax`, at most 1,000),
 *   one signed request per chunk through the local API, `--concurrency` chunks in flight (default 4);
 *   reading waits while all slots are busy, so memory stays bounded by the chunks in flight.
 * - Output: one line per input row, in input order: the row number, the outcome, the error code and
 *   detail, the chunk's `xid` and provider log index, and the answer flattened into columns
 *   (`found`, `match`, `fields.name`, `listed`, `status`, `paidInFull`, ...). The subject's values
 *   are never copied: the file holds no personal data, only row numbers.
 * - Progress on stderr (a bar on a terminal, a line every few seconds elsewhere) and a summary.
 *
 * Exit 0 only if every row was answered; 1 otherwise (denied, invalid or failed rows, or the node
 * refused); 2 for usage errors (bad options, a header that does not fit the service).
 */
import { UsageError, asUsageError, attachDashValues, intOption } from '../args.js'
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs'
import { rename, stat, writeFile } from 'node:fs/promises'
import { once } from 'node:events'
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { VnError, isVnError } from '../../errors.js'
import { Consumer } from '../../exchange/consumer.js'
import type { CatalogService } from '../../exchange/catalog.js'
import { isFieldName, type Mode } from '../../protocol/vocabulary.js'
import { parseCsv, csvLine, type CsvRecord } from '../csv.js'
import { LOCAL_API_OPTIONS, clientFromFlags, questionArgs, reportError, type LocalClient } from '../local-client.js'
import { Progress, formatCount, formatDuration } from '../progress.js'
import { flattenAnswer } from './verify.js'
import { EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, type CliIo, type Command } from '../types.js'
import { errorDoc, okDoc, usageText } from '../output.js'

const USAGE = 'verinode verify-batch <peer> <service> --in subjects.csv --out results.csv --purpose P --basis B [--key-column C] [--force | --resume] [--chunk N] [--concurrency 4] [--mode plain] [--node URL] [--token T] [--json]'

const OPTIONS = {
  ...LOCAL_API_OPTIONS,
  in: { type: 'string' },
  out: { type: 'string' },
  purpose: { type: 'string' },
  basis: { type: 'string' },
  mode: { type: 'string' },
  chunk: { type: 'string' },
  concurrency: { type: 'string' },
  /** a column of the input that is not a field of the service (your own reference), copied to the output */
  'key-column': { type: 'string' },
  /** overwrite an existing --out */
  force: { type: 'boolean' },
  /** continue an existing --out: rows it already answered (answered, denied, invalid) are not asked again */
  resume: { type: 'boolean' },
} as const

/** default chunk size when the provider allows more */
const DEFAULT_CHUNK_CAP = 1000
const DEFAULT_CONCURRENCY = 4
/** rows looked at before the output's answer columns are fixed (see `ResultWriter`) */
const HEADER_SAMPLE_ROWS = 10_000
/** write to the output file in pieces of about this many characters */
const WRITE_CHUNK_CHARS = 64 * 1024

const FIXED_COLUMNS = ['row', 'line', 'outcome', 'code', 'detail', 'xid', 'providerLogIndex'] as const
/** outcomes that are final: a resumed run does not ask those rows again */
const FINAL_OUTCOMES = new Set(['answered', 'denied', 'invalid'])
/** the node itself could not be reached: the run stops and can be resumed */
const STOP_CODES = new Set(['VN_ERR_LOCAL_UNREACHABLE'])
/** answer entries that did not fit the header (see `ResultWriter`), as JSON */
const EXTRA_COLUMN = 'extra'

export type RowOutcome = 'answered' | 'denied' | 'invalid' | 'error'

interface RowResult {
  /** 1-based physical line of the input on which the row starts */
  line?: number
  /** the value of --key-column */
  key?: string
  outcome: RowOutcome
  code?: string
  detail?: string
  xid?: string
  providerLogIndex?: number
  answer?: [string, unknown][]
}

export interface BatchSummary {
  rows: number
  answered: number
  denied: number
  invalid: number
  errors: number
  /** signed requests sent (chunks) */
  requests: number
  ms: number
  rowsPerSecond: number
  /** how many rows ended with each error code */
  codes: Record<string, number>
  /** rows skipped because the --resume file already had their final outcome */
  skipped: number
  /**
   * Set when the node went away mid-run: the run stopped, the rows not answered are not in the
   * output, and `--resume` continues from it without asking the answered rows again.
   */
  stopped?: { code: string; message: string; firstUnanswered: number }
}

export interface BatchOptions {
  client: LocalClient
  provider: string
  service: CatalogService
  purpose: string
  basis: string
  mode: Mode
  /** the CSV bytes (or text) */
  input: AsyncIterable<Uint8Array | string>
  /** size of the input in bytes, for the progress estimate while it is being read */
  inputBytes?: number
  /** called once the header checks out; returns where the results go */
  openOutput(): Promise<WriteStream>
  chunk: number
  concurrency?: number
  /** `total` is undefined while it cannot be estimated yet */
  progress?: (done: number, total: number | undefined, estimated: boolean) => void
  now?: () => number
  /** results looked at before the answer columns are fixed (default 10,000) */
  headerSampleRows?: number
  /** a column of the input copied to the output to join on; not a field of the service, never sent */
  keyColumn?: string
  /** resuming: rows already final in the output (not asked again), and its header (kept) */
  resume?: { done: ReadonlySet<number>; header: string[] }
}

/** The answer columns a question kind is known to produce, so they exist even if no row is answered. */
function seedColumns(svc: CatalogService): string[] {
  switch (svc.kind) {
    case 'match':
      return ['found', 'match', ...Object.entries(svc.fields).filter(([, f]) => !f.key).map(([name]) => `fields.${name}`)]
    case 'membership':
      return ['listed']
    case 'status':
      return ['found', 'status']
    case 'tier':
      return ['found', 'tier']
    case 'threshold':
      return ['found']
  }
}

const cell = (v: unknown): string => (v === undefined || v === null ? '' : typeof v === 'string' ? v : typeof v === 'boolean' || typeof v === 'number' ? String(v) : JSON.stringify(v))

/**
 * Writes result lines in input order. Chunks finish out of order, so results wait in a map until
 * every earlier row is in. The answer columns are whatever the answers carry (threshold services
 * name theirs after their SQL columns, which the catalog does not list): the header is fixed after
 * the first `HEADER_SAMPLE_ROWS` results (or at the end, for smaller files); an answer entry seen
 * only later goes, as JSON, into the last column `extra`.
 */
class ResultWriter {
  private next = 1
  private readonly pending = new Map<number, RowResult | 'skip'>()
  private readonly answerColumns: string[]
  private readonly known: Set<string>
  private header: string[] | undefined
  private buf = ''
  private readonly fixedColumns: string[]

  /** `resumeHeader`: continue a file with this header (not written again) */
  constructor(private readonly out: WriteStream, svc: CatalogService, private readonly sampleRows = HEADER_SAMPLE_ROWS, private readonly keyColumn?: string, resumeHeader?: string[]) {
    this.fixedColumns = keyColumn === undefined ? [...FIXED_COLUMNS] : [FIXED_COLUMNS[0], FIXED_COLUMNS[1], keyColumn, ...FIXED_COLUMNS.slice(2)]
    if (resumeHeader !== undefined) {
      this.header = resumeHeader
      this.answerColumns = resumeHeader.slice(this.fixedColumns.length, -1).map((c) => c.replace(/^answer\./, ''))
    } else {
      this.answerColumns = seedColumns(svc)
    }
    this.known = new Set(this.answerColumns)
  }

  /** A row the resumed file already holds: nothing to write for it. */
  skip(row: number): void {
    this.pending.set(row, 'skip')
  }

  put(row: number, r: RowResult): void {
    this.pending.set(row, r)
    if (this.header === undefined) {
      for (const [k] of r.answer ?? []) {
        if (!this.known.has(k)) {
          this.known.add(k)
          this.answerColumns.push(k)
        }
      }
    }
  }

  /**
   * Writes every result whose predecessors are all written. `end`: no more results will come;
   * `gaps`: the run stopped, so rows that never got a result are left out and the rest written.
   */
  async flush(end = false, gaps = false): Promise<void> {
    if (this.header === undefined) {
      if (!end && this.pending.size < this.sampleRows) return
      // An answer key equal to a fixed column is written as `answer.<key>`.
      const fixed = new Set<string>([...this.fixedColumns, EXTRA_COLUMN])
      this.header = [...this.fixedColumns, ...this.answerColumns.map((c) => (fixed.has(c) ? `answer.${c}` : c)), EXTRA_COLUMN]
      this.buf += csvLine(this.header)
    }
    if (gaps) {
      for (const row of [...this.pending.keys()].sort((a, b) => a - b)) {
        const r = this.pending.get(row)!
        this.pending.delete(row)
        if (r !== 'skip') this.buf += csvLine(this.line(row, r))
        if (this.buf.length >= WRITE_CHUNK_CHARS) await this.write()
      }
    }
    for (let r = this.pending.get(this.next); r !== undefined; r = this.pending.get(this.next)) {
      this.pending.delete(this.next)
      if (r !== 'skip') this.buf += csvLine(this.line(this.next, r))
      this.next++
      if (this.buf.length >= WRITE_CHUNK_CHARS) await this.write()
    }
    await this.write()
  }

  async close(gaps = false): Promise<void> {
    await this.flush(true, gaps)
    this.out.end()
    await once(this.out, 'finish')
  }

  private line(row: number, r: RowResult): string[] {
    const answer = new Map(r.answer ?? [])
    const extra: Record<string, unknown> = {}
    for (const [k, v] of answer) if (!this.known.has(k)) extra[k] = v
    return [
      String(row), r.line === undefined ? '' : String(r.line), ...(this.keyColumn === undefined ? [] : [r.key ?? '']),
      r.outcome, r.code ?? '', r.detail ?? '', r.xid ?? '', r.providerLogIndex === undefined ? '' : String(r.providerLogIndex),
      ...this.answerColumns.map((c) => cell(answer.get(c))),
      Object.keys(extra).length === 0 ? '' : JSON.stringify(extra),
    ]
  }

  private async write(): Promise<void> {
    if (this.buf === '') return
    const ok = this.out.write(this.buf)
    this.buf = ''
    if (!ok) await once(this.out, 'drain')
  }
}

/** Checks the header row against the service's fields; returns the field name of each column. */
function headerColumns(rec: CsvRecord | undefined, svc: CatalogService, keyColumn?: string): string[] {
  if (rec === undefined) throw new UsageError('the input is empty (a header row naming the fields is needed)')
  if (rec.error !== undefined) throw new UsageError(`header row: ${rec.error}`)
  // Names are shown only when they look like field names: a file without a header row would
  // otherwise have its first subject printed.
  const show = (name: string, i: number): string => (isFieldName(name) ? name : `column ${i + 1}`)
  const cols = rec.fields.map((f) => f.trim())
  const seen = new Set<string>()
  if (keyColumn !== undefined && !cols.includes(keyColumn)) throw new UsageError(`--key-column: the header row has no column ${keyColumn}`)
  cols.forEach((c, i) => {
    if (c === keyColumn) return
    if (!Object.hasOwn(svc.fields, c)) throw new UsageError(`header row: ${show(c, i)} is not a field of ${svc.id} (fields: ${Object.keys(svc.fields).join(', ')})`)
    if (seen.has(c)) throw new UsageError(`header row: ${show(c, i)} appears twice`)
    seen.add(c)
  })
  for (const [name, f] of Object.entries(svc.fields)) {
    if (f.required && !seen.has(name)) throw new UsageError(`header row: the required field ${name} has no column`)
  }
  return cols
}

/**
 * Passes the input through and reports each piece's size once the parser has asked for the next one,
 * that is once every record complete in it has been read: bytes and rows then match up for the
 * progress estimate.
 */
async function* counted(source: AsyncIterable<Uint8Array | string>, consumed: (bytes: number) => void): AsyncGenerator<Uint8Array | string> {
  for await (const chunk of source) {
    yield chunk
    consumed(typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.byteLength)
  }
}

/**
 * Runs a batch: reads, checks, sends and writes. Throws a `UsageError` for a header that does not
 * fit (before the output is opened) and `VN_ERR_CLI_CSV_MALFORMED` for input that is not UTF-8
 * (the rows of the pieces read before the undecodable one are still sent and written first).
 */
export async function runBatch(o: BatchOptions): Promise<BatchSummary> {
  const now = o.now ?? Date.now
  const started = now()
  const concurrency = o.concurrency ?? DEFAULT_CONCURRENCY
  const svc = o.service
  const s: BatchSummary = { rows: 0, answered: 0, denied: 0, invalid: 0, errors: 0, requests: 0, ms: 0, rowsPerSecond: 0, codes: {}, skipped: 0 }
  // Rows per input byte so far, to estimate the total while the input is still being read.
  let bytesRead = 0
  let rowsPerByte: number | undefined
  const records = parseCsv(counted(o.input, (n) => {
    bytesRead += n
    if (s.rows > 0) rowsPerByte = s.rows / bytesRead
  }))[Symbol.asyncIterator]()

  const first = await records.next()
  const columns = headerColumns(first.done === true ? undefined : first.value, svc, o.keyColumn)
  const keyAt = o.keyColumn === undefined ? -1 : columns.indexOf(o.keyColumn)
  const writer = new ResultWriter(await o.openOutput(), svc, o.headerSampleRows, o.keyColumn, o.resume?.header)
  // The node went away: no new chunk is sent, the rows of failed chunks stay unanswered.
  let stopped: { code: string; message: string; rows: number[] } | undefined

  let done = 0
  let inputDone = false
  const report = (): void => {
    if (o.progress === undefined) return
    if (inputDone) return o.progress(done, s.rows, false)
    const estimate = rowsPerByte === undefined || o.inputBytes === undefined ? undefined : Math.max(Math.round(rowsPerByte * o.inputBytes), s.rows)
    o.progress(done, estimate, true)
  }
  const settle = (row: number, r: RowResult): void => {
    writer.put(row, r)
    done++
    if (r.outcome === 'answered') s.answered++
    else if (r.outcome === 'denied') s.denied++
    else if (r.outcome === 'invalid') s.invalid++
    else s.errors++
    if (r.code !== undefined) s.codes[r.code] = (s.codes[r.code] ?? 0) + 1
  }

  type Pending = { row: number; line: number; key?: string; subject: Record<string, string> }
  const sendChunk = async (rows: Pending[]): Promise<void> => {
    if (stopped !== undefined) {
      stopped.rows.push(...rows.map((x) => x.row))
      return
    }
    s.requests++
    const tag = (x: Pending) => ({ line: x.line, ...(x.key === undefined ? {} : { key: x.key }) })
    try {
      const r = await o.client.verify({ provider: o.provider, service: svc.id, purpose: o.purpose, basis: o.basis, mode: o.mode, subjects: rows.map((x) => x.subject) })
      const base = { xid: r.xid, providerLogIndex: r.providerLogIndex }
      if (r.status === 'ok') {
        const results = r.results ?? []
        if (results.length !== rows.length) throw new VnError('VN_ERR_LOCAL_BAD_RESPONSE', `${results.length} answers for ${rows.length} subjects`)
        rows.forEach((x, i) => settle(x.row, { ...base, ...tag(x), outcome: 'answered', answer: flattenAnswer(results[i] ?? {}) }))
      } else {
        const e = r.error
        for (const x of rows) settle(x.row, { ...base, ...tag(x), outcome: 'denied', code: e?.code ?? 'VN_ERR_INTERNAL', ...(e?.detail === undefined ? {} : { detail: e.detail }) })
      }
    } catch (e) {
      const v = isVnError(e) ? e : new VnError('VN_ERR_INTERNAL', (e as Error)?.name)
      if (STOP_CODES.has(v.code)) {
        // Whether the node logged (and counted) this chunk is unknown; the rows are left out of
        // the output so that --resume asks them again.
        stopped ??= { code: v.code, message: v.detail ?? v.title, rows: [] }
        stopped.rows.push(...rows.map((x) => x.row))
        return
      }
      for (const x of rows) settle(x.row, { ...tag(x), outcome: 'error', code: v.code, ...(v.detail === undefined ? {} : { detail: v.detail }) })
    }
    await writer.flush()
    report()
  }

  const inflight = new Set<Promise<void>>()
  const dispatch = async (rows: Pending[]): Promise<void> => {
    while (inflight.size >= concurrency) await Promise.race(inflight)
    const p: Promise<void> = sendChunk(rows).finally(() => inflight.delete(p))
    inflight.add(p)
  }

  let chunk: Pending[] = []
  let fatal: unknown
  try {
    for (let it = await records.next(); it.done !== true; it = await records.next()) {
      if (stopped !== undefined) break
      const rec = it.value
      const row = rec.index
      s.rows++
      const key = keyAt >= 0 && rec.error === undefined ? rec.fields[keyAt] : undefined
      const tag = { line: rec.line, ...(key === undefined ? {} : { key }) }
      if (o.resume?.done.has(row) === true) {
        writer.skip(row)
        s.skipped++
        done++
      } else if (rec.error !== undefined) {
        settle(row, { ...tag, outcome: 'invalid', code: 'VN_ERR_CLI_CSV_MALFORMED', detail: `line ${rec.line}: ${rec.error}` })
      } else if (rec.fields.length !== columns.length) {
        settle(row, { ...tag, outcome: 'invalid', code: 'VN_ERR_CLI_CSV_MALFORMED', detail: `line ${rec.line}: ${rec.fields.length} fields, the header has ${columns.length}` })
      } else {
        const subject: Record<string, string> = {}
        columns.forEach((c, i) => {
          const v = rec.fields[i]
          // An empty cell is an absent optional field (and a missing required one).
          if (c !== o.keyColumn && v !== undefined && v !== '') subject[c] = v
        })
        try {
          Consumer.canonicalSubjects(svc, [subject])
          chunk.push({ row, line: rec.line, ...(key === undefined ? {} : { key }), subject })
        } catch (e) {
          if (!isVnError(e)) throw e
          settle(row, { ...tag, outcome: 'invalid', code: e.code, ...(e.detail === undefined ? {} : { detail: e.detail.replace(/^subjects\[0\]\.?/, '') }) })
        }
      }
      if (chunk.length >= o.chunk) {
        await dispatch(chunk)
        chunk = []
      }
      if (s.rows % 256 === 0) {
        await writer.flush()
        report()
      }
    }
  } catch (e) {
    // Bytes that are not UTF-8: the rows before them are still sent and written.
    fatal = e
  }
  inputDone = true
  if (chunk.length > 0) await dispatch(chunk)
  await Promise.all(inflight)
  await writer.close(stopped !== undefined)
  report()
  s.ms = Math.max(now() - started, 0)
  s.rowsPerSecond = s.ms > 0 ? Math.round((s.rows * 1000) / s.ms) : s.rows
  if (fatal !== undefined) throw fatal
  if (stopped !== undefined) {
    const firstUnanswered = stopped.rows.reduce((a, b) => Math.min(a, b), Number.POSITIVE_INFINITY)
    s.stopped = { code: stopped.code, message: `the node stopped answering (${stopped.message}) at row ${firstUnanswered}; rows from there on that are not in the output were not answered`, firstUnanswered }
  }
  return s
}

/**
 * What a `--resume` run needs from the existing output: its header (which must be the one this
 * run would write, in its fixed columns) and the rows with a final outcome. Lines of rows that
 * ended in an error are dropped from the file (`rewrite`), so that their new result is the only one.
 */
async function readResume(path: string, keyColumn: string | undefined): Promise<{ done: Set<number>; header: string[]; kept: string[] }> {
  const done = new Set<number>()
  const kept: string[] = []
  let header: string[] | undefined
  for await (const rec of parseCsv(createReadStream(path))) {
    if (rec.error !== undefined) throw new VnError('VN_ERR_CLI_RESUME_MISMATCH', `--resume: ${path} line ${rec.line} is not CSV (${rec.error})`)
    if (header === undefined) {
      header = rec.fields
      const fixed = keyColumn === undefined ? [...FIXED_COLUMNS] : [FIXED_COLUMNS[0], FIXED_COLUMNS[1], keyColumn, ...FIXED_COLUMNS.slice(2)]
      if (fixed.some((c, i) => header![i] !== c) || header.at(-1) !== EXTRA_COLUMN) {
        throw new VnError('VN_ERR_CLI_RESUME_MISMATCH', `--resume: ${path} is not the output of verify-batch with these options (its header starts ${header.slice(0, fixed.length).join(',')}; expected ${fixed.join(',')})`)
      }
      kept.push(csvLine(header))
      continue
    }
    const row = Number(rec.fields[0])
    const outcome = rec.fields[keyColumn === undefined ? 2 : 3] ?? ''
    if (!Number.isSafeInteger(row) || row < 1) throw new VnError('VN_ERR_CLI_RESUME_MISMATCH', `--resume: ${path} line ${rec.line} has no row number`)
    if (FINAL_OUTCOMES.has(outcome)) {
      done.add(row)
      kept.push(csvLine(rec.fields))
    }
  }
  if (header === undefined) throw new VnError('VN_ERR_CLI_RESUME_MISMATCH', `--resume: ${path} is empty`)
  return { done, header, kept }
}

const positiveInt = (v: string | undefined, flag: string, max: number): number | undefined => intOption(v, flag, 1, max)

function summaryLines(peer: string, service: string, out: string, s: BatchSummary): string[] {
  const lines = [
    `verify-batch ${peer} ${service}: ${formatCount(s.rows)} rows in ${formatDuration(s.ms)} (${formatCount(s.rowsPerSecond)} rows/s, ${formatCount(s.requests)} signed requests)`,
    `  answered ${formatCount(s.answered)}, denied ${formatCount(s.denied)}, invalid ${formatCount(s.invalid)}, errors ${formatCount(s.errors)}${s.skipped > 0 ? `, already in the results ${formatCount(s.skipped)}` : ''}`,
  ]
  for (const [code, n] of Object.entries(s.codes).sort((a, b) => b[1] - a[1])) lines.push(`  ${code}: ${formatCount(n)} rows`)
  lines.push(`  results: ${out}`)
  return lines
}

export const verifyBatchCommand: Command = {
  name: 'verify-batch',
  summary: 'verify the subjects of a CSV file in signed batches; results to CSV',
  usage: USAGE,
  async run(argv: string[], io0: CliIo): Promise<number> {
    let io = io0
    let client: LocalClient | undefined
    try {
      let parsed
      try {
        parsed = parseArgs({ args: attachDashValues(argv, OPTIONS), options: OPTIONS, allowPositionals: true, strict: true })
      } catch (e) {
        throw asUsageError(e)
      }
      const { values, positionals } = parsed
      if (values.json === true) io = { ...io0, json: true }
      if (values.help === true) {
        io.out(usageText(USAGE))
        return EXIT_OK
      }
      const { peer, service, purpose, basis, mode } = questionArgs(positionals, values)
      if (values.in === undefined || values.in === '') throw new UsageError('--in <subjects.csv> is required')
      if (values.out === undefined || values.out === '') throw new UsageError('--out <results.csv> is required')
      const chunkArg = positiveInt(values.chunk, 'chunk', 1_000_000)
      const concurrency = positiveInt(values.concurrency, 'concurrency', 32) ?? DEFAULT_CONCURRENCY
      const inPath = resolve(io.cwd, values.in)
      const outPath = resolve(io.cwd, values.out)
      if (inPath === outPath) throw new UsageError('--out must not be the input file')
      const inputBytes = await stat(inPath).then((st) => st.isFile() ? st.size : -1, () => -1)
      if (inputBytes < 0) throw new UsageError('--in: not a readable file')
      const keyColumn = values['key-column']
      if (keyColumn !== undefined && !/^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/.test(keyColumn)) throw new UsageError('--key-column: expected a column name (letters, digits, _ . -)')
      if (keyColumn !== undefined && (FIXED_COLUMNS as readonly string[]).includes(keyColumn)) throw new UsageError(`--key-column: ${keyColumn} is a column of the output; rename it in the input`)
      if (values.force === true && values.resume === true) throw new UsageError('give --force (start again) or --resume (continue), not both')
      const outExists = await stat(outPath).then(() => true, () => false)
      if (outExists && values.force !== true && values.resume !== true) {
        throw new VnError('VN_ERR_CLI_OUT_EXISTS', `${values.out} exists: --resume continues it (rows already answered are not asked again), --force overwrites it`)
      }
      if (!outExists && values.resume === true) throw new UsageError(`--resume: ${values.out} does not exist (nothing to continue)`)
      const resumed = values.resume === true ? await readResume(outPath, keyColumn) : undefined

      client = clientFromFlags(values, io.env, concurrency)
      const catalog = await client.catalog(peer)
      const svc = catalog.services.find((x) => x.id === service)
      if (svc === undefined) throw new VnError('VN_ERR_POLICY_UNKNOWN_SERVICE', `${peer} offers no ${service}`)
      if (!svc.modes.includes(mode)) throw new VnError('VN_ERR_EXCH_MODE', `${service} does not offer ${mode}`)
      // The key column joins results back to the input; a subject field would copy personal data into them.
      if (keyColumn !== undefined && Object.hasOwn(svc.fields, keyColumn)) throw new UsageError(`--key-column: ${keyColumn} is a field of ${service} (personal data is never copied to the results); add a column of your own reference ids`)
      const max = catalog.limits.batchMax
      if (chunkArg !== undefined && chunkArg > max) throw new UsageError(`--chunk: ${peer} takes at most ${max} subjects per request`)
      const chunk = chunkArg ?? Math.min(max, DEFAULT_CHUNK_CAP)

      const progress = new Progress({ unit: 'rows', tty: io.tty, write: (l) => io.err(l) })
      const summary = await runBatch({
        client, provider: peer, service: svc, purpose, basis, mode,
        input: createReadStream(inPath, { highWaterMark: 64 * 1024 }),
        inputBytes,
        openOutput: async () => {
          // Results are not personal data on their own, but row numbers join them to the input.
          if (resumed !== undefined) {
            // Rewritten with the final rows only, then appended to.
            const tmp = `${outPath}.resume-${process.pid}`
            await writeFile(tmp, resumed.kept.join(''), { mode: 0o600 })
            await rename(tmp, outPath)
          }
          const ws = createWriteStream(outPath, { mode: 0o600, flags: resumed === undefined ? 'w' : 'a' })
          await once(ws, 'open')
          return ws
        },
        ...(keyColumn === undefined ? {} : { keyColumn }),
        ...(resumed === undefined ? {} : { resume: { done: resumed.done, header: resumed.header } }),
        chunk, concurrency,
        progress: (d, t, est) => progress.update(d, t, est),
      })
      progress.finish(summary.rows, summary.rows)
      const allAnswered = summary.stopped === undefined && summary.answered + summary.skipped === summary.rows
      const doc = { provider: peer, service, out: outPath, chunk, ...summary }
      if (summary.stopped !== undefined) {
        const message = `${summary.stopped.message}. Start the node again and run the same command with --resume: answered rows are not asked again.`
        if (io.json) io.out(errorDoc('verify-batch', { code: summary.stopped.code, message }, doc))
        else {
          for (const l of summaryLines(peer, service, outPath, summary)) io.out(l)
          io.err(`verinode verify-batch: ${summary.stopped.code}: ${message}`)
        }
        return EXIT_FINDINGS
      }
      if (io.json) io.out(allAnswered ? okDoc('verify-batch', doc) : errorDoc('verify-batch', { code: 'VN_ERR_CLI_CHECKS_FAILED', message: `${summary.rows - summary.answered - summary.skipped} of ${summary.rows} rows not answered (see the outcome column)` }, doc))
      else for (const l of summaryLines(peer, service, outPath, summary)) io.out(l)
      return allAnswered ? EXIT_OK : EXIT_FINDINGS
    } catch (e) {
      const code = reportError(e, io, 'verify-batch', USAGE)
      // an output file in the way is the command line's to fix, as a usage error is
      const usageLike = isVnError(e) && (e.code === 'VN_ERR_CLI_OUT_EXISTS' || e.code === 'VN_ERR_CLI_RESUME_MISMATCH')
      return code === EXIT_USAGE || usageLike ? EXIT_USAGE : EXIT_FINDINGS
    } finally {
      await client?.close()
    }
  },
}
