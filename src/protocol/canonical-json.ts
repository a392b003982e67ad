/**
 * JSON Canonicalization Scheme (JCS), RFC 8785.
 *
 * Log leaves, agreement-set hashes and every other value that is hashed or signed as JSON go
 * through this one serializer, so two nodes (and an auditor years later) produce the same bytes
 * for the same value.
 *
 * - RFC 8785 §3.2.2.3: numbers are written with ECMAScript's Number-to-String algorithm
 *   (ECMA-262 §7.1.12.1), which is what `JSON.stringify` does for finite numbers; NaN and the
 *   infinities have no JSON form and are rejected.
 * - RFC 8785 §3.2.2.2: strings are written as `JSON.stringify` writes them (only `"`, `\` and
 *   U+0000..U+001F escaped, the latter as `\b \t \n \f \r` or lower-case `\u00xx`). Lone
 *   surrogates are rejected (§3.2.2.2 requires I-JSON, RFC 7493 §2.1).
 * - RFC 8785 §3.2.3: object members are sorted by the UTF-16 code units of their names, which is
 *   exactly JavaScript's default string comparison (not locale order, not code points).
 *
 * Only values that map onto JSON unambiguously are accepted: null, booleans, finite numbers,
 * strings, arrays and plain objects. `undefined`, bigint, functions, symbols, class instances
 * (Date, Map, Uint8Array, ...), sparse arrays and cycles throw a `TypeError` naming the path of the
 * offending value (`$.entries[3].amount`), never the value itself.
 */

const MAX_DEPTH = 1000
const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/
// A high surrogate not followed by a low one, or a low one not preceded by a high one.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/** RFC 8785 canonical JSON text of `value`. */
export function canonicalJson(value: unknown): string {
  // Fast path first (no path strings, no cycle set: it is on every log append); anything it does
  // not accept is walked again by the careful writer, which throws the error naming the path.
  const fast = fastWrite(value)
  if (fast !== undefined) return fast
  const out: string[] = []
  write(value, '$', out, new Set<object>(), 0)
  return out.join('')
}

/**
 * The same text as `write` for the values it accepts, or undefined for anything it does not (the
 * caller then takes the careful path, which produces the error). It copies the value with members
 * in RFC 8785 order and lets JSON.stringify write it: JSON.stringify keeps string-keyed members in
 * insertion order, writes strings and numbers exactly as RFC 8785 says, and is native. Objects with
 * array-index-like names ("7") go the careful way, because JavaScript orders those numerically.
 */
function fastWrite(value: unknown): string | undefined {
  // A value whose members already stand in RFC 8785 order (a parsed canonical text, e.g. every leaf
  // the auditor reads back) is its own sorted copy: JSON.stringify writes it as it is.
  if (inOrder(value, 0)) return JSON.stringify(value)
  const copy = sortedCopy(value, 0)
  return copy === INVALID ? undefined : JSON.stringify(copy)
}

/**
 * True when `sortedCopy(value)` would accept `value` and copy it member for member in the same
 * order: every object's names are already strictly ascending (so the sort leaves them as they are).
 * False means "not sure": the copy decides.
 */
function inOrder(value: unknown, depth: number): boolean {
  switch (typeof value) {
    case 'string':
      return value.isWellFormed()
    case 'number':
      return Number.isFinite(value)
    case 'boolean':
      return true
    case 'object':
      break
    default:
      return false
  }
  if (value === null) return true
  if (depth >= MAX_DEPTH) return false
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (!Object.hasOwn(value, i) || !inOrder(value[i] as unknown, depth + 1)) return false
    return true
  }
  const proto = Object.getPrototypeOf(value) as unknown
  if (proto !== Object.prototype && proto !== null) return false
  let prev: string | undefined
  for (const key of Object.keys(value)) {
    if ((prev !== undefined && !(prev < key)) || !key.isWellFormed() || INDEX_LIKE.test(key) || key === '__proto__') return false
    if (!inOrder((value as Record<string, unknown>)[key], depth + 1)) return false
    prev = key
  }
  return true
}

const INVALID: unique symbol = Symbol('invalid')
const INDEX_LIKE = /^(?:0|[1-9][0-9]*)$/

function sortedCopy(value: unknown, depth: number): unknown {
  switch (typeof value) {
    case 'string':
      return value.isWellFormed() ? value : INVALID
    case 'number':
      return Number.isFinite(value) ? value : INVALID
    case 'boolean':
      return value
    case 'object':
      break
    default:
      return INVALID
  }
  if (value === null) return null
  if (depth >= MAX_DEPTH) return INVALID // also where a cycle ends
  if (Array.isArray(value)) {
    const out: unknown[] = new Array(value.length)
    for (let i = 0; i < value.length; i++) {
      if (!Object.hasOwn(value, i)) return INVALID
      const v = sortedCopy(value[i] as unknown, depth + 1)
      if (v === INVALID) return INVALID
      out[i] = v
    }
    return out
  }
  const proto = Object.getPrototypeOf(value) as unknown
  if (proto !== Object.prototype && proto !== null) return INVALID
  const keys = Object.keys(value).sort()
  const out: Record<string, unknown> = {}
  for (const key of keys) {
    if (!key.isWellFormed() || INDEX_LIKE.test(key) || key === '__proto__') return INVALID
    const v = sortedCopy((value as Record<string, unknown>)[key], depth + 1)
    if (v === INVALID) return INVALID
    out[key] = v
  }
  return out
}

/** UTF-8 bytes of the RFC 8785 canonical JSON of `value` (what gets hashed or signed). */
export function canonicalJsonBytes(value: unknown): Uint8Array {
  // Buffer.from is several times faster than TextEncoder here. A small result may be a view into
  // Node's shared pool: a caller that transfers or clones its ArrayBuffer must copy it first (the
  // log store concatenates leaves into a buffer of its own).
  const b = Buffer.from(canonicalJson(value), 'utf8')
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength)
}

function memberPath(parent: string, key: string): string {
  return IDENTIFIER.test(key) ? `${parent}.${key}` : `${parent}[${JSON.stringify(key)}]`
}

function writeString(s: string, path: string, out: string[]): void {
  // RFC 8785 §3.2.2.2 / RFC 7493 §2.1: strings must be valid Unicode; a lone surrogate would
  // otherwise be escaped by JSON.stringify and two implementations could disagree.
  if (LONE_SURROGATE.test(s)) {
    throw new TypeError(`${path}: string contains a lone surrogate (not valid I-JSON)`)
  }
  out.push(JSON.stringify(s))
}

function write(value: unknown, path: string, out: string[], ancestors: Set<object>, depth: number): void {
  switch (typeof value) {
    case 'string':
      writeString(value, path, out)
      return
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`${path}: ${String(value)} has no JSON representation (RFC 8785 §3.2.2.3)`)
      // ECMA-262 Number::toString; -0 becomes "0" as RFC 8785 §3.2.2.3 requires.
      out.push(JSON.stringify(value))
      return
    case 'boolean':
      out.push(value ? 'true' : 'false')
      return
    case 'undefined':
      throw new TypeError(`${path}: undefined has no JSON representation`)
    case 'bigint':
      throw new TypeError(`${path}: bigint has no JSON representation (convert to a string or a safe integer)`)
    case 'function':
    case 'symbol':
      throw new TypeError(`${path}: ${typeof value} has no JSON representation`)
    case 'object':
      break
  }
  if (value === null) {
    out.push('null')
    return
  }
  const obj = value as object
  if (depth >= MAX_DEPTH) throw new TypeError(`${path}: nesting deeper than ${MAX_DEPTH} levels`)
  if (ancestors.has(obj)) throw new TypeError(`${path}: cyclic structure`)
  ancestors.add(obj)
  if (Array.isArray(obj)) {
    out.push('[')
    for (let i = 0; i < obj.length; i++) {
      if (i > 0) out.push(',')
      const p = `${path}[${i}]`
      if (!Object.hasOwn(obj, i)) throw new TypeError(`${p}: hole in sparse array`)
      write(obj[i] as unknown, p, out, ancestors, depth + 1)
    }
    out.push(']')
  } else {
    const proto = Object.getPrototypeOf(obj) as unknown
    if (proto !== Object.prototype && proto !== null) {
      const name = (obj.constructor as { name?: unknown } | undefined)?.name
      throw new TypeError(`${path}: ${typeof name === 'string' && name !== '' ? name : 'non-plain object'} is not a plain object`)
    }
    // RFC 8785 §3.2.3: sort by UTF-16 code units; Array.prototype.sort's default comparison
    // does exactly that.
    const keys = Object.keys(obj).sort()
    out.push('{')
    let first = true
    for (const key of keys) {
      const p = memberPath(path, key)
      if (!first) out.push(',')
      first = false
      writeString(key, p, out)
      out.push(':')
      write((obj as Record<string, unknown>)[key], p, out, ancestors, depth + 1)
    }
    out.push('}')
  }
  ancestors.delete(obj)
}
