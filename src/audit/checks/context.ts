/**
 * The shared, read-only context of `audit verify`'s checks (verify.ts builds it once, before the
 * leaves stream), and the small helpers every check uses. Like sigstore-js's verifier, each check
 * is a module with its own state that receives the context and reports into the one `Findings`.
 */
import { timingSafeEqual } from 'node:crypto'
import type { Federation } from '../../federation/federation.js'
import type { KeyHistory } from '../../federation/key-history.js'
import { KID_RE } from '../../protocol/vocabulary.js'
import type { Findings, Where } from '../findings.js'

/** Stages of log-wide findings, in report order (see Findings.sorted). */
export const STAGE = { files: 0, manifests: 1, meta: 2, checkpoints: 3, tree: 4, evidence: 5, disclosures: 6 } as const

export interface AuditContext {
  readonly dir: string
  /** the exporting member, and the log origin its checkpoints name */
  readonly member: string
  readonly federation: string | null
  readonly origin: string
  /** the key history the trust anchor's manifests give (verify.ts step 1) */
  readonly history: KeyHistory
  readonly manifests: readonly Federation[]
  /** how far a signed iat may be from the logged instant */
  readonly maxSkewMs: number
  readonly findings: Findings
}

/** An xid read from unvalidated input is only echoed in findings when it looks like one. */
export const SAFE_XID = /^[A-Za-z0-9_-]{1,64}$/
/** A kid echoed in findings only in its protocol shape. */
export const SAFE_KID = KID_RE

/** SHA-256 (base64url) of an ASCII string (a JWS). */


/**
 * Constant-time comparison of two base64url digests (sigstore-js habit; public data here). ASCII
 * strings are compared in place (no Buffer per call: this runs several times per leaf); any other
 * text as its UTF-8 bytes, as before.
 */
export function digestEquals(a: string, b: string): boolean {
  if (a.length !== b.length) return utf8Equals(a, b)
  let d = 0
  let high = 0
  for (let i = 0; i < a.length; i++) {
    const x = a.charCodeAt(i)
    const y = b.charCodeAt(i)
    d |= x ^ y
    high |= x | y
  }
  return high > 0x7f ? utf8Equals(a, b) : d === 0
}

function utf8Equals(a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

/**
 * The names of the fields whose two values differ, given flat as name, value, value, … (no array
 * per field: the binding checks run several times per exchange on logs of millions of leaves).
 */
export function mismatch(...fields: unknown[]): string[] {
  const out: string[] = []
  for (let k = 0; k + 2 < fields.length; k += 3) if (fields[k + 1] !== fields[k + 2]) out.push(fields[k] as string)
  return out
}

/** Where a leaf belongs, read from its raw JSON (before, or despite, schema validation). */
export function leafWhere(value: unknown, i: number): Where {
  const v = value !== null && typeof value === 'object' ? (value as { t?: unknown; xid?: unknown }) : {}
  const w: Where = { index: i }
  if (typeof v.xid === 'string' && SAFE_XID.test(v.xid)) w.xid = v.xid
  if (v.t === 'request-in' || v.t === 'decision' || v.t === 'response-out') w.role = 'provider'
  if (v.t === 'request-out' || v.t === 'response-in' || v.t === 'response-refused') w.role = 'consumer'
  return w
}
