/**
 * Turning one canonical subject into an answer, per question kind (DESIGN.md "Question kinds").
 *
 * The service's lookup SQL receives the subject's fields as named parameters and returns at most a
 * few rows from the department's own database. Answers are booleans, per-field match flags or bands,
 * never the stored values.
 *
 * Column conventions for the lookup SQL:
 * - `match`: one row per key; every non-key field of the service is compared with the column of the
 *   same name after both sides go through `canonicalizeField`.
 * - `membership`: any row means "on the list".
 * - `status`: a column `status`, reported only if it is one of the service's declared statuses.
 * - `threshold`: a column `value`, and optionally `target`; with a `bound` field in the subject the
 *   answer says whether value ≥ bound, with `target` whether value ≥ target (paid in full).
 * - `tier`: a column `value`, mapped onto the declared tiers.
 */
import type { ServiceConfig } from '../config/schema.js'
import type { DataSource, Row } from '../sources/types.js'
import { canonicalizeField } from '../protocol/canonicalize.js'

export type Answer = Record<string, unknown>

function toBig(v: unknown): bigint | undefined {
  if (typeof v === 'bigint') return v
  if (typeof v === 'number' && Number.isFinite(v)) return BigInt(Math.trunc(v))
  if (typeof v === 'string' && /^-?\d+$/.test(v)) return BigInt(v)
  return undefined
}

function sameCanonical(svc: ServiceConfig, field: string, stored: unknown, asked: string): boolean {
  const kind = svc.fields[field]?.kind
  if (kind === undefined || stored === null || stored === undefined) return false
  try {
    return canonicalizeField(kind, stored, field) === asked
  } catch {
    return false
  }
}

export function answerFromRows(svc: ServiceConfig, subject: Readonly<Record<string, string>>, rows: readonly Row[]): Answer {
  const row = rows[0]
  switch (svc.kind) {
    case 'match': {
      const fields: Record<string, boolean> = {}
      let all = row !== undefined
      for (const [name, f] of Object.entries(svc.fields)) {
        if (f.key) continue
        const asked = subject[name]
        if (asked === undefined) continue
        const ok = row !== undefined && sameCanonical(svc, name, row[name], asked)
        fields[name] = ok
        all &&= ok
      }
      return { found: row !== undefined, match: all, fields }
    }
    case 'membership':
      return { member: row !== undefined }
    case 'status': {
      if (row === undefined) return { found: false }
      const s = typeof row.status === 'string' ? row.status : ''
      return { found: true, status: svc.statuses?.includes(s) ? s : 'unknown' }
    }
    case 'threshold': {
      if (row === undefined) return { found: false }
      const value = toBig(row.value)
      const out: Answer = { found: true }
      const target = toBig(row.target)
      if (value !== undefined && target !== undefined) out.full = value >= target
      const bound = subject.bound
      if (bound !== undefined && value !== undefined) out.atLeast = value >= BigInt(bound)
      return out
    }
    case 'tier': {
      if (row === undefined) return { found: false }
      const v = Number(row.value)
      let tier: string | null = null
      for (const t of svc.tiers ?? []) if (v >= t.min) tier = t.id
      return { found: true, tier }
    }
  }
}

/** Looks every subject up in place, one bound-parameter query each. */
export async function answerAll(svc: ServiceConfig, source: DataSource, subjects: readonly Record<string, string>[]): Promise<Answer[]> {
  const out: Answer[] = []
  for (const s of subjects) {
    const params: Record<string, string> = {}
    for (const [k, v] of Object.entries(s)) params[k] = v
    out.push(answerFromRows(svc, s, await source.query(svc.lookup, params)))
  }
  return out
}
