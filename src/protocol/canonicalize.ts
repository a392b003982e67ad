/**
 * The one input canonicalization function (docs/DESIGN.md "Input canonicalization").
 *
 * Plain-mode lookups, OPRF tag-set builds and the consumer's blinding all call `canonicalizeField`,
 * so a subject typed as `１１０１０５１９４９１２３１００２ｘ` on one side and read as
 * `11010519491231002X` from a database on the other produce the same bytes. Any change here
 * changes every tag set: treat the output as a wire format.
 *
 * Steps, in order:
 * 1. type check (strings; integers are also accepted for `year` and `amount`) and a length cap;
 * 2. Unicode NFKC (UAX #15), which also maps full-width digits and letters (U+FF10.., U+FF21..)
 *    and the ideographic space U+3000 to ASCII;
 * 3. removal of format characters (General_Category Cf: zero-width spaces and joiners, BOM),
 *    which copy-and-paste brings in and which are invisible to the person checking the input;
 * 4. trimming and whitespace handling per kind;
 * 5. case folding per kind (check characters and USCC letters upper-case; Latin names upper-case,
 *    as Chinese identity documents print foreign names in capitals);
 * 6. validation (GB 11643 / GB 32100 checksums, ranges).
 *
 * Errors are `VnError`s naming `path` and what is wrong, never the value.
 */
import { VnError } from '../errors.js'
import { assertResidentId, assertUscc, isValidResidentId, isValidUscc } from './identifiers.js'
import { INHERITED_NAMES, isFieldName } from './vocabulary.js'

/**
 * Kinds of subject field.
 * - `residentId`: GB 11643 resident ID number;
 * - `uscc`: GB 32100 unified social credit code;
 * - `partyId`: either of the two (a list keyed by persons and organisations alike, such as the
 *   dishonest-debtor list); both canonicalize to the same string, so no subject type is needed;
 * - `name`: a person's or organisation's name;
 * - `year`: a calendar year 1900..2100;
 * - `amount`: a non-negative integer number of fen (0.01 CNY);
 * - `text`: any other short free text.
 */
export type FieldKind = 'residentId' | 'uscc' | 'partyId' | 'name' | 'year' | 'amount' | 'text'

export const FIELD_KINDS: readonly FieldKind[] = ['residentId', 'uscc', 'partyId', 'name', 'year', 'amount', 'text']

/** Longest raw input looked at (UTF-16 code units), so NFKC never runs on megabytes. */
const MAX_RAW_LENGTH = 1024
/** Longest canonical name / text (code points). */
const MAX_NAME_LENGTH = 128
const MAX_TEXT_LENGTH = 512
/** 18 digits keeps every amount below 2^63 fen, so SQL engines can compare it as an integer. */
const MAX_AMOUNT_DIGITS = 18

const FORMAT_CHARS = /\p{Cf}/gu
/** C0/C1 controls other than the whitespace ones (tab, line feed, ...), which are collapsed. */
const CONTROL_CHARS = /(?![\t\n\v\f\r])\p{Cc}/u
const WHITESPACE_RUN = /\s+/gu
/** Scripts written without spaces between words: Han, kana, Hangul, Bopomofo. */
const CJK = '\\p{Script=Han}\\p{Script=Hiragana}\\p{Script=Katakana}\\p{Script=Hangul}\\p{Script=Bopomofo}\\u3007'
const SPACE_BETWEEN_CJK = new RegExp(`(?<=[${CJK}]) (?=[${CJK}])`, 'gu')
/**
 * Separators used in transliterated minority and foreign names (阿依古丽·买买提). NFKC keeps them
 * apart; they all become U+00B7 MIDDLE DOT, the form the public security registry uses.
 */
const NAME_DOTS = /[\u00B7\u2022\u2027\u2219\u22C5\u30FB\u318D\uFF65\u16EB\u2E31]/gu
/** Typographic apostrophes and hyphens that NFKC leaves alone (O’Brien, Jean‐Paul). */
const NAME_APOSTROPHES = /[\u2018\u2019\u02BC]/gu
const NAME_HYPHENS = /[\u2010\u2012\u2013\u2212]/gu
/** Letters, combining marks, the middle dot, hyphen, apostrophe, full stop and space. */
const NAME_CHARS = /^[\p{L}\p{M}\u00B7\-'. ]+$/u

function invalid(path: string, why: string): VnError {
  return new VnError('VN_ERR_SUBJECT_INVALID', `${path}: ${why}`)
}

/** Steps 1-3 for string input: type, length cap, NFKC, format characters. */
function normalizeString(raw: unknown, path: string, allowInteger: boolean): string {
  if (allowInteger && typeof raw === 'number') {
    if (!Number.isSafeInteger(raw)) throw invalid(path, 'number must be a safe integer')
    return String(raw)
  }
  if (typeof raw !== 'string') throw invalid(path, allowInteger ? 'expected a string or an integer' : 'expected a string')
  if (raw.length > MAX_RAW_LENGTH) throw invalid(path, `longer than ${MAX_RAW_LENGTH} characters`)
  const s = raw.normalize('NFKC').replace(FORMAT_CHARS, '')
  if (CONTROL_CHARS.test(s)) throw invalid(path, 'contains control characters')
  return s
}

function canonicalIdentifier(s: string): string {
  // Identifiers are often written in groups ("350102 19800101 1234"): drop all whitespace.
  return s.replace(WHITESPACE_RUN, '').toUpperCase()
}

function canonicalName(s: string, path: string): string {
  let n = s.replace(NAME_DOTS, '\u00B7').replace(NAME_APOSTROPHES, "'").replace(NAME_HYPHENS, '-')
  n = n.replace(WHITESPACE_RUN, ' ').trim()
  n = n.replace(/ ?\u00B7 ?/gu, '\u00B7').replace(SPACE_BETWEEN_CJK, '')
  n = n.toUpperCase()
  if (n === '') throw invalid(path, 'is empty')
  if ([...n].length > MAX_NAME_LENGTH) throw invalid(path, `longer than ${MAX_NAME_LENGTH} characters`)
  if (!NAME_CHARS.test(n)) throw invalid(path, 'contains characters that do not occur in names')
  return n
}

function canonicalYear(s: string, path: string): string {
  const y = s.trim()
  if (!/^[0-9]{4}$/.test(y)) throw invalid(path, 'year must be 4 digits')
  const n = Number(y)
  if (n < 1900 || n > 2100) throw invalid(path, 'year must be between 1900 and 2100')
  return y
}

function canonicalAmount(s: string, path: string): string {
  const a = s.trim()
  if (!/^[0-9]+$/.test(a)) throw invalid(path, 'amount must be a non-negative integer number of fen')
  const stripped = a.replace(/^0+(?=[0-9])/, '')
  if (stripped.length > MAX_AMOUNT_DIGITS) throw invalid(path, `amount has more than ${MAX_AMOUNT_DIGITS} digits`)
  return stripped
}

function canonicalText(s: string, path: string): string {
  const t = s.replace(WHITESPACE_RUN, ' ').trim()
  if (t === '') throw invalid(path, 'is empty')
  if ([...t].length > MAX_TEXT_LENGTH) throw invalid(path, `longer than ${MAX_TEXT_LENGTH} characters`)
  return t
}

/**
 * Canonical string form of one subject field.
 * @param path where the field sits in the request, used in error details (`subjects[3].id`).
 * @throws VnError VN_ERR_SUBJECT_INVALID, VN_ERR_SUBJECT_ID_FORMAT / _CHECKSUM or VN_ERR_SUBJECT_USCC_FORMAT / _CHECKSUM.
 */
export function canonicalizeField(kind: FieldKind, raw: unknown, path: string): string {
  switch (kind) {
    case 'residentId': {
      const id = canonicalIdentifier(normalizeString(raw, path, false))
      assertResidentId(id, path)
      return id
    }
    case 'uscc': {
      const code = canonicalIdentifier(normalizeString(raw, path, false))
      assertUscc(code, path)
      return code
    }
    case 'partyId': {
      const id = canonicalIdentifier(normalizeString(raw, path, false))
      if (isValidResidentId(id) || isValidUscc(id)) return id
      throw invalid(path, 'neither a valid resident ID number nor a valid unified social credit code')
    }
    case 'name':
      return canonicalName(normalizeString(raw, path, false), path)
    case 'year':
      return canonicalYear(normalizeString(raw, path, true), path)
    case 'amount': {
      if (typeof raw === 'number' && raw < 0) throw invalid(path, 'amount must not be negative')
      return canonicalAmount(normalizeString(raw, path, true), path)
    }
    case 'text':
      return canonicalText(normalizeString(raw, path, false), path)
    default:
      throw new TypeError(`kind: unknown field kind ${JSON.stringify(kind as unknown)}`)
  }
}

/** How a service declares one subject field (config `services[].fields`, the catalog). */
export interface SubjectFieldSpec {
  readonly kind: FieldKind
  /** default true */
  readonly required?: boolean
}

export interface CanonicalizeSubjectOptions {
  /**
   * Treat `null` and `''` as not given, as a form leaves an optional field empty (the consumer's
   * local API and CLI). Default: only a missing member is not given, so a value a provider opened
   * from a signed disclosure is always canonicalized or refused.
   */
  readonly emptyIsAbsent?: boolean
}

/**
 * Canonical record of one subject: the one subject canonicalization, used by the consumer before it
 * signs and by the provider after it opens the disclosures.
 *
 * The result has the given fields in declaration order, each canonicalized; a required field that
 * is not given is refused. Every member of `subject` must be a declared field, looked up as an own
 * property: a consumer must not send data the provider did not ask for, and `constructor` or
 * `__proto__` must not pass because every object inherits them. A name that is not a field name
 * (vocabulary.ts) or an inherited name is not repeated in the error, as it might itself be personal data.
 * @throws VnError VN_ERR_SUBJECT_INVALID or a checksum code naming `path.field`.
 */
export function canonicalizeSubject(
  fields: Readonly<Record<string, FieldKind | SubjectFieldSpec>>,
  subject: unknown,
  path: string,
  opts: CanonicalizeSubjectOptions = {},
): Record<string, string> {
  if (typeof subject !== 'object' || subject === null || Array.isArray(subject)) throw invalid(path, 'expected an object')
  const record = subject as Record<string, unknown>
  for (const key of Object.keys(record)) {
    if (!Object.hasOwn(fields, key) || !isFieldName(key)) throw invalid(path, isFieldName(key) || INHERITED_NAMES.has(key) ? `unknown field ${key}` : 'unknown field')
  }
  const out: [string, string][] = []
  for (const [field, decl] of Object.entries(fields)) {
    const spec = typeof decl === 'string' ? { kind: decl } : decl
    const p = `${path}.${field}`
    const v = Object.hasOwn(record, field) ? record[field] : undefined
    if (v === undefined || (opts.emptyIsAbsent === true && (v === null || v === ''))) {
      if (spec.required !== false) throw invalid(p, 'missing')
      continue
    }
    out.push([field, canonicalizeField(spec.kind, v, p)])
  }
  return Object.fromEntries(out)
}
