/**
 * CSV in and out for `verinode verify-batch`, per RFC 4180 with the usual relaxations.
 *
 * Reading (RFC 4180 §2):
 * - records end with CRLF (§2.1), and also with a bare LF or a bare CR, as spreadsheets write them;
 * - fields may be enclosed in double quotes (§2.5); enclosed fields may hold commas, line breaks
 *   and quotes, a quote being written twice (§2.6, §2.7);
 * - the input is UTF-8 (RFC 4180 §3 leaves the charset open; Excel's "CSV UTF-8" adds a BOM,
 *   which is dropped); bytes that are not UTF-8 stop the parse, since guessing a legacy encoding
 *   (GB 18030) would silently change names;
 * - lines that are completely empty (including the usual trailing line break) are skipped, not
 *   numbered.
 *
 * The parser is incremental: `CsvParser.push` takes text as it arrives and returns the records
 * completed so far, so a file of any size is read with memory bounded by one record. A record that
 * breaks the grammar (a quote inside an unquoted field, text after a closing quote, a field left
 * open at the end of the file) or exceeds the size limits is still returned, in its place, with
 * `error` set and no fields: one bad line must not hide the records around it, and its content
 * (perhaps an ID number) is never repeated in a message.
 *
 * Writing: `csvLine` quotes a field only when it has to (§2.6) and ends lines with CRLF (§2.1).
 */
import { VnError } from '../errors.js'

export interface CsvRecord {
  /** 0-based ordinal among non-blank records (0 is the header row when there is one) */
  index: number
  /** 1-based physical line on which the record starts */
  line: number
  /** the record's fields; empty when `error` is set */
  fields: string[]
  /** why the record does not follow the grammar (never contains the record's text) */
  error?: string
}

export interface CsvLimits {
  /** longest record, in UTF-16 code units (default 65,536) */
  maxRecordChars?: number
  /** most fields per record (default 1,024) */
  maxFields?: number
}

const QUOTE = 0x22
const COMMA = 0x2c
const LF = 0x0a
const CR = 0x0d

const enum State {
  /** at the first character of a field */
  FieldStart,
  Unquoted,
  Quoted,
  /** just read a quote inside a quoted field: an escaped quote or the closing one */
  QuoteInQuoted,
}

export class CsvParser {
  private state = State.FieldStart
  private field = ''
  private fields: string[] = []
  /** the current record had a quoted field (so `""` alone is not a blank line) */
  private quoted = false
  private size = 0
  private error: string | undefined
  private skipLf = false
  private line = 1
  private recordLine = 1
  private index = 0
  private readonly maxRecordChars: number
  private readonly maxFields: number

  constructor(limits: CsvLimits = {}) {
    this.maxRecordChars = limits.maxRecordChars ?? 65_536
    this.maxFields = limits.maxFields ?? 1024
  }

  /** Feeds decoded text; returns the records completed by it. */
  push(text: string): CsvRecord[] {
    const out: CsvRecord[] = []
    const n = text.length
    let i = 0
    while (i < n) {
      if (this.skipLf) {
        // The CR before this character already ended a record: CRLF is one line break.
        this.skipLf = false
        if (text.charCodeAt(i) === LF) {
          i++
          continue
        }
      }
      switch (this.state) {
        case State.FieldStart:
          if (text.charCodeAt(i) === QUOTE) {
            this.state = State.Quoted
            this.quoted = true
            i++
          } else {
            this.state = State.Unquoted
          }
          break
        case State.Unquoted: {
          let j = i
          while (j < n) {
            const c = text.charCodeAt(j)
            if (c === COMMA || c === LF || c === CR || c === QUOTE) break
            j++
          }
          this.append(text, i, j)
          if (j === n) {
            i = n
            break
          }
          const c = text.charCodeAt(j)
          i = j + 1
          if (c === QUOTE) this.fail('a double quote inside an unquoted field (RFC 4180 §2.5)')
          else if (c === COMMA) this.endField()
          else this.endRecord(out, c)
          break
        }
        case State.Quoted: {
          let j = i
          while (j < n) {
            const c = text.charCodeAt(j)
            if (c === QUOTE) break
            if (c === LF) this.line++
            j++
          }
          this.append(text, i, j)
          if (j < n) this.state = State.QuoteInQuoted
          i = j === n ? n : j + 1
          break
        }
        case State.QuoteInQuoted: {
          const c = text.charCodeAt(i)
          if (c === QUOTE) {
            // RFC 4180 §2.7: a doubled quote is one quote character.
            this.append('"', 0, 1)
            this.state = State.Quoted
            i++
          } else if (c === COMMA) {
            this.endField()
            i++
          } else if (c === LF || c === CR) {
            this.endRecord(out, c)
            i++
          } else {
            // `"abc"def`: text after the closing quote. Read on to the end of the record.
            this.fail('text after a closing double quote (RFC 4180 §2.7)')
            this.state = State.Unquoted
          }
          break
        }
      }
    }
    return out
  }

  /** Ends the input; returns the last record if the file does not end with a line break. */
  end(): CsvRecord[] {
    const out: CsvRecord[] = []
    if (this.state === State.Quoted) this.fail('a quoted field is not closed before the end of the file')
    const pending = this.error !== undefined || this.fields.length > 0 || this.field !== '' || this.quoted
    if (pending) this.endRecord(out, -1)
    this.state = State.FieldStart
    return out
  }

  private append(text: string, from: number, to: number): void {
    if (to <= from) return
    this.size += to - from
    if (this.size > this.maxRecordChars) this.fail(`record longer than ${this.maxRecordChars} characters`)
    // After an error the record's text is dropped; only its boundaries are still tracked.
    if (this.error === undefined) this.field += from === 0 && to === text.length ? text : text.slice(from, to)
  }

  private fail(why: string): void {
    if (this.error !== undefined) return
    this.error = why
    this.field = ''
    this.fields = []
  }

  private endField(): void {
    if (this.error === undefined) {
      if (this.fields.length >= this.maxFields) this.fail(`more than ${this.maxFields} fields`)
      else this.fields.push(this.field)
    }
    this.field = ''
    this.state = State.FieldStart
  }

  /** `brk` is the line-break character that ended the record (-1 at the end of the input). */
  private endRecord(out: CsvRecord[], brk: number): void {
    const blank = this.fields.length === 0 && this.field === '' && !this.quoted && this.error === undefined
    this.endField()
    if (!blank) {
      const r: CsvRecord = { index: this.index++, line: this.recordLine, fields: this.error === undefined ? this.fields : [] }
      if (this.error !== undefined) r.error = this.error
      out.push(r)
    }
    this.fields = []
    this.quoted = false
    this.size = 0
    this.error = undefined
    if (brk === CR) this.skipLf = true
    if (brk !== -1) this.line++
    this.recordLine = this.line
  }
}

/** Parses a whole CSV text (tests, small files). A leading BOM is dropped. */
export function parseCsvText(text: string, limits?: CsvLimits): CsvRecord[] {
  const p = new CsvParser(limits)
  return [...p.push(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text), ...p.end()]
}

/**
 * Streams records from UTF-8 bytes (a file stream) or already decoded strings, dropping a leading
 * BOM. Throws `VN_ERR_CLI_CSV_MALFORMED` on bytes that are not UTF-8.
 */
export async function* parseCsv(source: AsyncIterable<Uint8Array | string>, limits?: CsvLimits): AsyncGenerator<CsvRecord> {
  const parser = new CsvParser(limits)
  // `fatal`: reject invalid UTF-8 instead of inserting U+FFFD; the BOM is dropped (ignoreBOM false).
  const decoder = new TextDecoder('utf-8', { fatal: true })
  let first = true
  const decode = (chunk: Uint8Array | undefined): string => {
    try {
      return chunk === undefined ? decoder.decode() : decoder.decode(chunk, { stream: true })
    } catch (e) {
      throw new VnError('VN_ERR_CLI_CSV_MALFORMED', 'input is not valid UTF-8', { cause: e })
    }
  }
  let sawBytes = false
  for await (const chunk of source) {
    let text: string
    if (typeof chunk === 'string') {
      text = first && chunk.charCodeAt(0) === 0xfeff ? chunk.slice(1) : chunk
    } else {
      sawBytes = true
      text = decode(chunk)
    }
    if (text.length > 0 || typeof chunk === 'string') first = false
    yield* parser.push(text)
  }
  if (sawBytes) yield* parser.push(decode(undefined))
  yield* parser.end()
}

const NEEDS_QUOTES = /[",\r\n]|^\s|\s$/

/** One field, quoted when it holds a comma, quote or line break (RFC 4180 §2.6) or edge spaces. */
export function csvField(value: string): string {
  return NEEDS_QUOTES.test(value) ? `"${value.replace(/"/g, '""')}"` : value
}

/** One record with its CRLF line break (RFC 4180 §2.1). */
export function csvLine(fields: readonly string[]): string {
  return `${fields.map(csvField).join(',')}\r\n`
}
