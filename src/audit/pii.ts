/**
 * PII scan of log leaves and evidence payloads (docs/DESIGN.md "The log": leaves are PII-free records).
 *
 * What counts as personal data here:
 * - an 18-character resident ID number (GB 11643 shape: 17 digits and a digit or X) or unified
 *   social credit code (GB 32100 shape) standing as its own token. Tokens are delimited by
 *   anything outside the base64url alphabet, so a digest that happens to contain 18 digits in a
 *   row (a 43-character base64url token) is never mistaken for one;
 * - CJK text (Han ideographs, the middle dot of transliterated names) in any field that is not
 *   free text. Log records hold member ids, service ids, digests, codes and counts, all ASCII, so
 *   any CJK character there is out of place;
 * - in the free-text fields a consumer fills in (`purpose`, `basis`), a CJK text is allowed when it
 *   is exactly a purpose or basis of an agreement the node logged (text the operator vetted).
 *   Otherwise a run of 2-4 Han characters starting with a common surname, standing alone, is
 *   reported as a probable name (error); any other unvetted CJK text is reported as suspect
 *   (warning) so an auditor looks at it.
 *
 * Findings name the leaf and the JSON path, never the matched text: the report must not itself
 * become the leak it describes.
 */

/** Resident ID shape (GB 11643): 17 digits then a digit or X. */
const RESIDENT_ID = /(?<![A-Za-z0-9_-])[0-9]{17}[0-9Xx](?![A-Za-z0-9_-])/
/** USCC shape (GB 32100): 2 code chars, 6-digit division code, 10 code chars (no I, O, S, V, Z). */
const USCC = /(?<![A-Za-z0-9_-])[0-9A-HJ-NP-RTUWXY]{2}[0-9]{6}[0-9A-HJ-NP-RTUWXY]{10}(?![A-Za-z0-9_-])/
/** Han ideographs (incl. extensions and compatibility blocks) and the name middle dot. */
const CJK = /[\p{Script=Han}\u00B7\u30FB\u2027]/u
const HAN_RUN = /\p{Script=Han}+/gu

/** The most frequent Chinese surnames (single and compound), enough to flag a bare name. */
const SURNAMES = new Set([
  ...'王李张刘陈杨黄赵吴周徐孙马朱胡郭何林高罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤',
  '欧阳', '司马', '上官', '诸葛', '东方', '皇甫', '令狐', '慕容', '尉迟', '长孙',
])

export type PiiKind = 'identifier' | 'name' | 'suspect-text'

export interface PiiHit {
  kind: PiiKind
  /** JSON path inside the scanned value, e.g. `$.purpose` */
  path: string
}

/** Does this string contain an ID-number or credit-code shaped token? */
/** Both identifier patterns hold a run of 6 digits: a cheap test first spares most strings both. */
const SIX_DIGITS = /[0-9]{6}/

export function hasIdentifierToken(s: string): boolean {
  return s.length >= 18 && SIX_DIGITS.test(s) && (RESIDENT_ID.test(s) || USCC.test(s))
}

function hasCjk(s: string): boolean {
  return CJK.test(s)
}

/** A run of 2-4 Han characters, delimited by non-Han text, that starts with a common surname. */
export function looksLikeName(s: string): boolean {
  for (const m of s.matchAll(HAN_RUN)) {
    const run = m[0]
    const chars = [...run]
    if (chars.length < 2 || chars.length > 4) continue
    if (SURNAMES.has(chars[0] as string) || SURNAMES.has(chars.slice(0, 2).join(''))) return true
  }
  return /\p{Script=Han}[\u00B7\u30FB\u2027]\p{Script=Han}/u.test(s)
}

export interface ScanOptions {
  /** top-level fields whose text the consumer chose freely (purpose, basis), with everything nested in them; `'all'`: every string */
  freeText?: readonly string[] | 'all'
  /** texts the operator vetted (agreement purposes and bases): allowed as they are */
  vetted?: ReadonlySet<string>
}

/**
 * Walks a parsed JSON value and reports every string that looks like personal data.
 * Object keys are scanned too (a name used as a key is still a name).
 */
export function scanValue(value: unknown, opts: ScanOptions = {}): PiiHit[] {
  const hits: PiiHit[] = []
  scanInto(value, opts.freeText ?? [], opts.vetted, hits)
  return hits
}

const PATH_NAME = /^[A-Za-z_$][A-Za-z0-9_$]*$/

/**
 * scanValue's walk, appending to `hits`. Built for the auditor's millions of clean values: the
 * JSON path of a string is only spelled out when it is reported (`segs` holds the way down: a
 * number is an array index, a string a member name).
 */
export function scanInto(value: unknown, freeText: readonly string[] | 'all', vetted: ReadonlySet<string> | undefined, hits: PiiHit[]): void {
  const all = freeText === 'all'
  const free = all ? [] : freeText
  const segs: (string | number)[] = []
  const pathOf = (extra = ''): string => {
    let p = '$'
    for (const s of segs) p += typeof s === 'number' ? `[${s}]` : PATH_NAME.test(s) ? `.${s}` : '[?]'
    return p + extra
  }
  const visit = (v: unknown, isFree: boolean): void => {
    if (typeof v === 'string') {
      if (hasIdentifierToken(v)) hits.push({ kind: 'identifier', path: pathOf() })
      if (!hasCjk(v)) return
      if (!isFree) hits.push({ kind: 'name', path: pathOf() })
      else if (vetted?.has(v) === true) return
      else hits.push({ kind: looksLikeName(v) ? 'name' : 'suspect-text', path: pathOf() })
      return
    }
    if (v === null || typeof v !== 'object') return
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        segs.push(i)
        visit(v[i], isFree)
        segs.pop()
      }
      return
    }
    const top = segs.length === 0
    const o = v as Record<string, unknown>
    for (const k of Object.keys(o)) {
      if (hasIdentifierToken(k) || hasCjk(k)) hits.push({ kind: hasIdentifierToken(k) ? 'identifier' : 'name', path: pathOf('.<key>') })
      segs.push(k)
      visit(o[k], all || isFree || (top && free.includes(k)))
      segs.pop()
    }
  }
  visit(value, all)
}
