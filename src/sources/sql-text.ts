/**
 * Reading a declared SQL statement's text for the server backends (PostgreSQL, MySQL/MariaDB):
 * finding its named parameters (`:id`, as the SQLite source accepts them) and translating them to
 * the server's positional markers (`$1..` for PostgreSQL, `?` for MySQL), and telling the words of
 * the statement apart from what sits inside string literals, quoted identifiers and comments.
 *
 * A small lexer, not a parser: it knows each dialect's literal, identifier and comment syntax so a
 * `:name` or a `;` inside `'...'`, `"..."`, `$tag$...$tag$`, `` `...` ``, `-- ...`, `# ...` or
 * `/* ... *\/` is left alone. Values are never spliced into the text: the translation only renames
 * markers, and the values are bound by the driver. Whether a statement is read-only is then
 * decided by the server (see ./postgres.ts and ./mysql.ts); the words found here are a first,
 * cheap refusal of the obvious writes.
 */
import { VnError } from '../errors.js'

export type Dialect = 'postgres' | 'mysql'

export interface TranslatedSql {
  /** The statement with `:name` replaced by positional markers, a final `;` dropped. */
  readonly text: string
  /** The parameter name of each positional marker, in order (MySQL repeats a name used twice). */
  readonly order: readonly string[]
  /** Distinct parameter names, in order of first use. */
  readonly names: readonly string[]
  /** Upper-cased words (keywords and unquoted identifiers) outside literals and comments. */
  readonly words: readonly string[]
  /** Why the text cannot be used as it is (a second statement, a positional marker), if so. */
  readonly problem?: string
}

const IDENT_START = /[A-Za-z_]/
const IDENT_PART = /[A-Za-z0-9_]/
const WORD_PART = /[A-Za-z0-9_$]/

/**
 * Finds the named parameters and words of `sql` and translates `:name` markers.
 * @throws VnError VN_ERR_SOURCE_NOT_READONLY for an unterminated literal or comment, or a MySQL
 *   executable comment (`/*! ... *\/`: the server runs what is inside).
 */
export function translateSql(sql: string, dialect: Dialect, label: string): TranslatedSql {
  const out: string[] = []
  const order: string[] = []
  const names: string[] = []
  const words: string[] = []
  let problem: string | undefined
  let end = sql.length
  // A final `;` (and the blanks after it) is dropped; any other `;` is a second statement.
  const trimmed = sql.trimEnd()
  let last = 0
  const n = sql.length
  let i = 0
  const fail = (why: string): never => {
    throw new VnError('VN_ERR_SOURCE_NOT_READONLY', `${label}: ${why}`)
  }
  /** Index just after a literal quoted by `q` starting at `i` (the opening quote). */
  const skipQuoted = (q: string, backslash: boolean): number => {
    let j = i + 1
    for (;;) {
      if (j >= n) fail('unterminated quoted literal or identifier')
      const c = sql[j]!
      if (backslash && c === '\\') {
        j += 2
        continue
      }
      if (c === q) {
        if (sql[j + 1] === q) {
          j += 2
          continue
        }
        return j + 1
      }
      j++
    }
  }
  while (i < n) {
    const c = sql[i]!
    const next = sql[i + 1]
    if (c === '-' && next === '-' && (dialect === 'postgres' || /[\s]/.test(sql[i + 2] ?? ' '))) {
      const nl = sql.indexOf('\n', i)
      i = nl === -1 ? n : nl
      continue
    }
    if (c === '#' && dialect === 'mysql') {
      const nl = sql.indexOf('\n', i)
      i = nl === -1 ? n : nl
      continue
    }
    if (c === '/' && next === '*') {
      if (dialect === 'mysql' && (sql[i + 2] === '!' || (sql[i + 2] === 'M' && sql[i + 3] === '!'))) fail('executable comments (/*! ... */) are not accepted')
      let depth = 1
      let j = i + 2
      while (depth > 0) {
        if (j >= n) fail('unterminated comment')
        if (sql[j] === '*' && sql[j + 1] === '/') {
          depth--
          j += 2
        } else if (dialect === 'postgres' && sql[j] === '/' && sql[j + 1] === '*') {
          depth++
          j += 2
        } else {
          j++
        }
      }
      i = j
      continue
    }
    if (c === "'") {
      // PostgreSQL: E'...' takes backslash escapes; MySQL: backslash escapes by default.
      const e = dialect === 'mysql' || (/[eE]/.test(sql[i - 1] ?? '') && !WORD_PART.test(sql[i - 2] ?? ''))
      i = skipQuoted("'", e)
      continue
    }
    if (c === '"') {
      i = skipQuoted('"', dialect === 'mysql')
      continue
    }
    if (c === '`' && dialect === 'mysql') {
      i = skipQuoted('`', false)
      continue
    }
    if (c === '$' && dialect === 'postgres') {
      if (/[0-9]/.test(next ?? '')) {
        problem ??= 'positional parameters ($1) are not accepted: name them (:id)'
        i++
        continue
      }
      const m = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i))
      if (m !== null && !WORD_PART.test(sql[i - 1] ?? '')) {
        const tag = m[0]
        const close = sql.indexOf(tag, i + tag.length)
        if (close === -1) fail('unterminated dollar-quoted literal')
        i = close + tag.length
        continue
      }
      i++
      continue
    }
    if (c === '?' && dialect === 'mysql') {
      problem ??= 'positional parameters (?) are not accepted: name them (:id)'
      i++
      continue
    }
    if (c === ':') {
      if (next === ':') {
        i += 2 // PostgreSQL cast `x::text`
        continue
      }
      if (IDENT_START.test(next ?? '') && sql[i - 1] !== ':') {
        let j = i + 1
        while (j < n && IDENT_PART.test(sql[j]!)) j++
        const name = sql.slice(i + 1, j)
        out.push(sql.slice(last, i))
        last = j
        if (dialect === 'postgres') {
          let k = names.indexOf(name)
          if (k === -1) {
            names.push(name)
            order.push(name)
            k = names.length - 1
          }
          out.push(`$${k + 1}`)
        } else {
          if (!names.includes(name)) names.push(name)
          order.push(name)
          out.push('?')
        }
        i = j
        continue
      }
      i++
      continue
    }
    if (c === ';') {
      if (i + 1 >= trimmed.length && end === n) {
        end = i
        i++
        continue
      }
      problem ??= 'more than one statement (a ";" before the end)'
      i++
      continue
    }
    if (IDENT_START.test(c) && !WORD_PART.test(sql[i - 1] ?? '')) {
      let j = i + 1
      while (j < n && WORD_PART.test(sql[j]!)) j++
      words.push(sql.slice(i, j).toUpperCase())
      i = j
      continue
    }
    i++
  }
  out.push(sql.slice(last, end))
  if (end < n) out.push(sql.slice(end + 1))
  const r: TranslatedSql = { text: out.join(''), order, names, words }
  return problem === undefined ? r : { ...r, problem }
}

/**
 * Words that make a statement write or lock rows wherever they stand, outside literals and
 * comments: a data-modifying CTE, `SELECT ... INTO`, `FOR UPDATE`, `FOR SHARE`, `LOCK IN SHARE MODE`.
 * Statements that begin with another word (COPY, CALL, DO, SET, ...) are refused by the first word.
 */
const WRITE_WORDS = new Set(['INSERT', 'UPDATE', 'DELETE', 'MERGE', 'INTO', 'LOCK', 'SHARE'])
/** How a read-only query may begin. */
const FIRST_WORDS = new Set(['SELECT', 'WITH', 'VALUES', 'TABLE'])

/**
 * The cheap first refusal: `sql` must be one statement beginning with SELECT, WITH, VALUES or
 * TABLE (or a parenthesised one) with none of the writing words. The server then checks it too.
 * @throws VnError VN_ERR_SOURCE_NOT_READONLY.
 */
export function assertReadOnlyText(sql: string, t: TranslatedSql, label: string): void {
  if (typeof sql !== 'string' || sql.trim() === '') throw new VnError('VN_ERR_SOURCE_NOT_READONLY', `${label}: empty SQL`)
  if (t.problem?.startsWith('more than one statement') === true) throw new VnError('VN_ERR_SOURCE_NOT_READONLY', `${label}: ${t.problem}`)
  const first = t.words[0]
  if (first === undefined || !FIRST_WORDS.has(first)) {
    throw new VnError('VN_ERR_SOURCE_NOT_READONLY', `${label}: statement is not a read-only query (it must be one SELECT, WITH, VALUES or TABLE query)`)
  }
  const writing = t.words.find((w) => WRITE_WORDS.has(w))
  if (writing !== undefined) {
    throw new VnError('VN_ERR_SOURCE_NOT_READONLY', `${label}: statement is not a read-only query (it contains ${writing})`)
  }
}

/**
 * The values of `order`'s parameters from `params`, in order.
 * @throws VnError VN_ERR_SOURCE_QUERY when one is missing (named, never its value).
 */
export function bindValues(kind: string, t: TranslatedSql, params: Readonly<Record<string, string | number | null>>): (string | number | null)[] {
  if (t.problem !== undefined) throw new VnError('VN_ERR_SOURCE_QUERY', `${kind}: ${t.problem}`)
  const values: (string | number | null)[] = []
  const seen = t.order
  for (const name of seen) {
    if (!Object.hasOwn(params, name)) throw new VnError('VN_ERR_SOURCE_QUERY', `${kind}: missing named parameter "${name}"`)
    values.push(params[name] as string | number | null)
  }
  return values
}

/** VN_ERR_CONFIG_INVALID when the statement names a parameter outside `allowed` (describe). */
export function assertParamsAllowed(t: TranslatedSql, label: string, allowed: readonly string[]): void {
  if (t.problem !== undefined) throw new VnError('VN_ERR_CONFIG_INVALID', `${label}: ${t.problem}`)
  const missing = t.names.find((p) => !allowed.includes(p))
  if (missing !== undefined) {
    throw new VnError('VN_ERR_CONFIG_INVALID', `${label}: Missing named parameter "${missing}" (bound parameters: ${allowed.join(', ') || 'none'})`)
  }
}

const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

/** The same checks on a `params` object as the SQLite source (TypeError on misuse). */
export function checkParams(params: Readonly<Record<string, unknown>>): void {
  if (typeof params !== 'object' || params === null || Array.isArray(params)) {
    throw new TypeError('params: expected an object of named parameters')
  }
  for (const [k, v] of Object.entries(params)) {
    if (!PARAM_NAME.test(k)) throw new TypeError(`params: parameter name ${JSON.stringify(k)} is not an identifier`)
    if (!(v === null || typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v)))) {
      throw new TypeError(`params.${k}: expected a string, a finite number or null`)
    }
  }
}
