/**
 * Chinese identifiers that carry check characters.
 *
 * - Resident ID number, GB 11643-1999 《公民身份号码》: 6-digit administrative division code
 *   (GB/T 2260), 8-digit birth date YYYYMMDD, 3-digit sequence code (odd = male, even = female),
 *   and a check character computed with ISO 7064:1983 MOD 11-2.
 * - Unified social credit code (USCC), GB 32100-2015 《法人和其他组织统一社会信用代码编码规则》:
 *   registration authority code (1 char), organisation type code (1 char), 6-digit division code
 *   of the registering authority, 9-character subject identifier (the GB 11714 organisation code,
 *   whose 9th character is its own MOD 11 check character), and a MOD 31 check character.
 *
 * These functions accept only the canonical form: exact length, ASCII, upper-case check
 * characters. Turning user input (full-width digits, spaces, a lower-case `x`) into that form is
 * the job of `canonicalizeField` in ./canonicalize.ts, the one canonicalization function.
 *
 * Errors name the field and what is wrong ("subjects[3].id: check character does not match"),
 * never the value: an ID number must not end up in a log line or a problem document.
 *
 * Known limitation: a few early USCCs issued in pilot regions before GB 32100-2015 (some Fujian
 * codes with an `M` organisation code) do not satisfy the MOD 31 check and are rejected here;
 * they are rare and must be reissued to be verified through this node.
 */
import { VnError } from '../errors.js'

// ---------------------------------------------------------------------------------------------
// GB 11643-1999 resident ID number
// ---------------------------------------------------------------------------------------------

/** GB 11643-1999 §8.2 weights W_i = 2^(17-i) mod 11 for positions 1..17. */
const RESIDENT_ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2] as const
/** ISO 7064 MOD 11-2: check value a1 satisfies (Σ a_i·W_i + a1) ≡ 1 (mod 11); 10 is written 'X'. */
const RESIDENT_ID_CHECK = '10X98765432'

/**
 * First two digits of GB/T 2260 codes in use: provinces, autonomous regions, municipalities, and
 * 71/81/82/83 (Taiwan, Hong Kong, Macao, and the residence-permit codes 810000/820000/830000).
 * Only the province part is checked: county codes change over time and old IDs keep theirs.
 */
const PROVINCE_CODES = new Set([
  '11', '12', '13', '14', '15', '21', '22', '23', '31', '32', '33', '34', '35', '36', '37',
  '41', '42', '43', '44', '45', '46', '50', '51', '52', '53', '54', '61', '62', '63', '64', '65',
  '71', '81', '82', '83',
])

export type Sex = 'male' | 'female'

export interface ResidentIdInfo {
  /** GB/T 2260 administrative division code of the place of first registration. */
  readonly region: string
  /** ISO 8601 calendar date `YYYY-MM-DD`. */
  readonly birthDate: string
  /** From the parity of the sequence code (GB 11643-1999 §7.3). */
  readonly sex: Sex
}

type Problem = { readonly ok: false; readonly why: string }
type Parsed<T> = { readonly ok: true; readonly value: T } | Problem

/** Check character for the first 17 characters of a resident ID number. */
export function residentIdCheckChar(first17: string): string {
  if (!/^[0-9]{17}$/.test(first17)) throw new TypeError('first17: expected 17 ASCII digits')
  let sum = 0
  for (let i = 0; i < 17; i++) sum += (first17.charCodeAt(i) - 48) * RESIDENT_ID_WEIGHTS[i]!
  return RESIDENT_ID_CHECK[sum % 11]!
}

function isLeapYear(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0
}

function daysInMonth(y: number, m: number): number {
  return m === 2 ? (isLeapYear(y) ? 29 : 28) : [4, 6, 9, 11].includes(m) ? 30 : 31
}

/** Today's date in China Standard Time (UTC+8, no daylight saving), where the IDs are issued. */
function todayInChina(now: Date): string {
  const t = now.getTime() + 8 * 3600_000
  const n = Math.floor(t / 86_400_000) // a whole day in ms (no leap seconds): the day number names the date
  if (n !== chinaDay.n) {
    chinaDay.s = new Date(t).toISOString().slice(0, 10)
    chinaDay.n = n
  }
  return chinaDay.s
}
const chinaDay = { n: Number.NaN, s: '' }

function examineResidentId(s: unknown, now: Date): Parsed<ResidentIdInfo> {
  if (typeof s !== 'string') return { ok: false, why: 'expected a string' }
  if (s.length !== 18) return { ok: false, why: 'must be 18 characters' }
  if (!/^[0-9]{17}[0-9Xx]$/.test(s)) return { ok: false, why: 'must be 17 digits followed by a digit or X' }
  if (s[17] === 'x') return { ok: false, why: 'check character must be upper-case X' }
  const region = s.slice(0, 6)
  if (!PROVINCE_CODES.has(region.slice(0, 2))) return { ok: false, why: 'administrative division code is not a known province' }
  const y = Number(s.slice(6, 10))
  const m = Number(s.slice(10, 12))
  const d = Number(s.slice(12, 14))
  if (m < 1 || m > 12 || d < 1 || d > daysInMonth(y, m)) return { ok: false, why: 'birth date is not a calendar date' }
  if (y < 1900) return { ok: false, why: 'birth date is before 1900' }
  const birthDate = `${s.slice(6, 10)}-${s.slice(10, 12)}-${s.slice(12, 14)}`
  if (birthDate > todayInChina(now)) return { ok: false, why: 'birth date is in the future' }
  if (residentIdCheckChar(s.slice(0, 17)) !== s[17]) return { ok: false, why: 'check character does not match' }
  const sex: Sex = (s.charCodeAt(16) - 48) % 2 === 1 ? 'male' : 'female'
  return { ok: true, value: { region, birthDate, sex } }
}

/** True when `s` is a canonical (upper-case X) GB 11643-1999 resident ID number. */
export function isValidResidentId(s: unknown, now: Date = new Date()): s is string {
  return examineResidentId(s, now).ok
}

/** A check character that does not match is a checksum error; anything else is the wrong form. */
const isChecksumWhy = (why: string): boolean => why.endsWith('check character does not match')

/**
 * Region, birth date and sex of a valid resident ID number.
 * @throws VnError VN_ERR_SUBJECT_ID_FORMAT (length, characters, region, birth date) or
 *   VN_ERR_SUBJECT_ID_CHECKSUM (check character) naming `fieldPath` (never the number).
 */
export function parseResidentId(s: unknown, fieldPath = 'id', now: Date = new Date()): ResidentIdInfo {
  const r = examineResidentId(s, now)
  if (!r.ok) throw new VnError(isChecksumWhy(r.why) ? 'VN_ERR_SUBJECT_ID_CHECKSUM' : 'VN_ERR_SUBJECT_ID_FORMAT', `${fieldPath}: ${r.why}`)
  return r.value
}

/** @throws VnError VN_ERR_SUBJECT_ID_CHECKSUM, e.g. `subjects[3].id: check character does not match`. */
export function assertResidentId(s: unknown, fieldPath: string, now: Date = new Date()): asserts s is string {
  parseResidentId(s, fieldPath, now)
}

// ---------------------------------------------------------------------------------------------
// GB 32100-2015 unified social credit code
// ---------------------------------------------------------------------------------------------

/** GB 32100-2015 §4.2: the 31 code characters (no I, O, S, V, Z); index = character value. */
export const USCC_CHARSET = '0123456789ABCDEFGHJKLMNPQRTUWXY'
/** GB 32100-2015 Annex B: W_i = 3^(i-1) mod 31. */
const USCC_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28] as const
/** GB 11714-1997 §5: weights of the 8 body characters of the organisation code. */
const ORG_CODE_WEIGHTS = [3, 7, 9, 10, 5, 8, 4, 2] as const

/**
 * GB 32100-2015 Annex A (as amended): registration authority code → allowed organisation type
 * codes. 1 机构编制, 2 外交, 3 司法行政, 4 文化, 5 民政, 6 旅游, 7 宗教, 8 工会, 9 市场监管(工商),
 * A 中央军委改革和编制办公室, N 农业农村, Y 其他.
 */
const USCC_AUTHORITY_TYPES: Readonly<Record<string, string>> = {
  '1': '1239',
  '2': '19',
  '3': '123459',
  '4': '19',
  '5': '1239',
  '6': '129',
  '7': '129',
  '8': '19',
  '9': '123',
  A: '19',
  N: '1239',
  Y: '1',
}

/** MOD 31 check character (position 18) for the first 17 characters of a USCC. */
export function usccCheckChar(first17: string): string {
  if (first17.length !== 17) throw new TypeError('first17: expected 17 characters')
  let sum = 0
  for (let i = 0; i < 17; i++) {
    const v = USCC_CHARSET.indexOf(first17[i]!)
    if (v < 0) throw new TypeError(`first17[${i}]: not a GB 32100 code character`)
    sum += v * USCC_WEIGHTS[i]!
  }
  // GB 32100-2015 Annex B: C18 = 31 - (Σ mod 31); the value 31 is written as '0'.
  return USCC_CHARSET[(31 - (sum % 31)) % 31]!
}

/** GB 11714-1997 MOD 11 check character for an 8-character organisation code body. */
export function orgCodeCheckChar(body8: string): string {
  if (!/^[0-9A-Z]{8}$/.test(body8)) throw new TypeError('body8: expected 8 characters 0-9 or A-Z')
  let sum = 0
  for (let i = 0; i < 8; i++) {
    const c = body8.charCodeAt(i)
    // Digits are their value, letters A..Z are 10..35 (GB 11714-1997 §5).
    const v = c <= 57 ? c - 48 : c - 55
    sum += v * ORG_CODE_WEIGHTS[i]!
  }
  const c9 = 11 - (sum % 11)
  return c9 === 10 ? 'X' : c9 === 11 ? '0' : String(c9)
}

function examineUscc(s: unknown): Problem | { ok: true } {
  if (typeof s !== 'string') return { ok: false, why: 'expected a string' }
  if (s.length !== 18) return { ok: false, why: 'must be 18 characters' }
  for (let i = 0; i < 18; i++) {
    if (!USCC_CHARSET.includes(s[i]!)) {
      return { ok: false, why: /[a-z]/.test(s[i]!) ? `character ${i + 1} must be upper-case` : `character ${i + 1} is not a GB 32100 code character` }
    }
  }
  const types = USCC_AUTHORITY_TYPES[s[0]!]
  if (types === undefined) return { ok: false, why: 'registration authority code is not assigned' }
  if (!types.includes(s[1]!)) return { ok: false, why: 'organisation type code is not valid for the registration authority' }
  if (!/^[0-9]{6}$/.test(s.slice(2, 8))) return { ok: false, why: 'administrative division code must be 6 digits' }
  // Central-level registrations use 100000; everything else a province prefix of GB/T 2260.
  const province = s.slice(2, 4)
  if (province !== '10' && !PROVINCE_CODES.has(province)) return { ok: false, why: 'administrative division code is not a known province' }
  if (orgCodeCheckChar(s.slice(8, 16)) !== s[16]) return { ok: false, why: 'organisation code check character does not match' }
  if (usccCheckChar(s.slice(0, 17)) !== s[17]) return { ok: false, why: 'check character does not match' }
  return { ok: true }
}

/** True when `s` is a canonical (upper-case) GB 32100-2015 unified social credit code. */
export function isValidUscc(s: unknown): s is string {
  return examineUscc(s).ok
}

/** @throws VnError VN_ERR_SUBJECT_USCC_CHECKSUM, e.g. `subjects[0].uscc: check character does not match`. */
export function assertUscc(s: unknown, fieldPath: string): asserts s is string {
  const r = examineUscc(s)
  if (!r.ok) throw new VnError(isChecksumWhy(r.why) ? 'VN_ERR_SUBJECT_USCC_CHECKSUM' : 'VN_ERR_SUBJECT_USCC_FORMAT', `${fieldPath}: ${r.why}`)
}
