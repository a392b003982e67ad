/**
 * Strict parsing of signed JSON: UTF-8 that decodes without replacement, and no object with two
 * members of the same name.
 *
 * RFC 7515 §5.2 steps 3 and 8 want the protected header and a JSON payload to be valid UTF-8 JSON;
 * RFC 8259 §4 leaves duplicate names to the parser ("many implementations report the last name/value
 * pair only"), and RFC 7515 §5.2 step 4 says a JWS whose header has duplicates MUST be rejected (or
 * parsed with a parser that returns only the lexically last one). We refuse both everywhere, so an
 * auditor with any conforming parser reads exactly what the node read.
 *
 * Duplicates are found without a second parser: `JSON.parse` decodes the text; a scan counts the
 * member names in the text (strings followed by `:`), a walk counts the members of the parsed
 * objects, and the two differ exactly when some object had a name twice. Both passes are linear
 * and the scan jumps from quote to quote with `indexOf`.
 */

import { isAscii, isUtf8 } from 'node:buffer'

/**
 * The text of UTF-8 bytes, or undefined when they are not UTF-8 (what a fatal TextDecoder refuses:
 * bad sequences, overlong forms, surrogates; a BOM is kept as a character, as `ignoreBOM` does).
 * node:buffer's validators and decoders are native: several times faster than TextDecoder on the
 * short, mostly ASCII texts of log leaves and JWS parts.
 */
export function decodeUtf8Strict(bytes: Uint8Array): string | undefined {
  const b = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (isAscii(b)) return b.toString('latin1')
  return isUtf8(b) ? b.toString('utf8') : undefined
}

export type StrictJsonProblem = 'not UTF-8' | 'not JSON' | 'duplicate member names'

export class StrictJsonError extends Error {
  readonly problem: StrictJsonProblem
  constructor(problem: StrictJsonProblem) {
    super(problem)
    this.name = 'StrictJsonError'
    this.problem = problem
  }
}

/** Member names in a text that JSON.parse accepted: every string token followed by a colon. */
function countMemberNames(text: string): number {
  let n = 0
  let i = text.indexOf('"')
  while (i !== -1) {
    let j = text.indexOf('"', i + 1)
    // A quote preceded by an odd number of backslashes is inside the string.
    while (j !== -1) {
      let b = 0
      while (text.charCodeAt(j - 1 - b) === 0x5c) b++
      if ((b & 1) === 0) break
      j = text.indexOf('"', j + 1)
    }
    if (j === -1) return n
    let k = j + 1
    let c = text.charCodeAt(k)
    while (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) c = text.charCodeAt(++k)
    if (c === 0x3a) n++
    i = text.indexOf('"', k)
  }
  return n
}

/** Members of every object in a parsed value (iterative: hostile input may nest deeply). */
function countMembers(value: unknown): number {
  if (value === null || typeof value !== 'object') return 0
  let n = 0
  const stack: unknown[] = [value]
  while (stack.length > 0) {
    const v = stack.pop()
    if (v === null || typeof v !== 'object') continue
    if (Array.isArray(v)) {
      for (const x of v) if (x !== null && typeof x === 'object') stack.push(x)
      continue
    }
    // Object.keys, not for-in: own names only, whatever a polluted Object.prototype carries.
    for (const k of Object.keys(v)) {
      n++
      const x = (v as Record<string, unknown>)[k]
      if (x !== null && typeof x === 'object') stack.push(x)
    }
  }
  return n
}

/**
 * Parses UTF-8 JSON bytes strictly.
 * @throws StrictJsonError naming the problem (never the content).
 */
export function parseStrictJson(bytes: Uint8Array): unknown {
  const text = decodeUtf8Strict(bytes)
  if (text === undefined) throw new StrictJsonError('not UTF-8')
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new StrictJsonError('not JSON')
  }
  if (value !== null && typeof value === 'object' && countMemberNames(text) !== countMembers(value)) {
    throw new StrictJsonError('duplicate member names')
  }
  return value
}
