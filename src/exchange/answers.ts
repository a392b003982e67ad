/**
 * Turning one canonical subject into an answer, per question kind (docs/DESIGN.md "Question kinds").
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
 * - `threshold`: the comparison happens in SQL, so the node never reads the amount: every column is
 *   a boolean (0/1, NULL when not applicable, e.g. no bound given) and is reported under its
 *   camelCase name (`paid_in_full` → `paidInFull`). A column holding anything else is refused, so a
 *   mistaken `SELECT amount` cannot leak a value.
 * - `tier`: a column `value`, mapped onto the declared tiers.
 */
import type { ServiceConfig } from '../config/schema.js'
import type { DataSource, Row } from '../sources/types.js'
import { canonicalizeField } from '../protocol/canonicalize.js'
import { VnError } from '../errors.js'

export type Answer = Record<string, unknown>

function sameCanonical(svc: ServiceConfig, field: string, stored: unknown, asked: string): boolean {
  const kind = svc.fields[field]?.kind
  if (kind === undefined || stored === null || stored === undefined) return false
  try {
    return canonicalizeField(kind, stored, field) === asked
  } catch {
    return false
  }
}

function answerFromRows(svc: ServiceConfig, subject: Readonly<Record<string, string>>, rows: readonly Row[]): Answer {
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
      return { listed: row !== undefined }
    case 'status': {
      if (row === undefined) return { found: false }
      const s = typeof row.status === 'string' ? row.status : ''
      return { found: true, status: svc.statuses?.includes(s) ? s : 'unknown' }
    }
    case 'threshold': {
      if (row === undefined) return { found: false }
      const out: Answer = { found: true }
      for (const [col, v] of Object.entries(row)) {
        if (v === null) continue
        if (v !== 0 && v !== 1 && v !== 0n && v !== 1n) {
          throw new VnError('VN_ERR_INTERNAL', `service ${svc.id}: lookup column ${col} is not a boolean; threshold lookups must compare in SQL`)
        }
        out[col.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase())] = v === 1 || v === 1n
      }
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
  // Once per answer, not per subject: the source still reads the configured file (one stat).
  await source.assertCurrent?.()
  const out: Answer[] = []
  for (const s of subjects) {
    // Every declared field is bound (absent optional ones as NULL), never spliced into the SQL.
    const params: Record<string, string | null> = {}
    for (const k of Object.keys(svc.fields)) params[k] = s[k] ?? null
    out.push(answerFromRows(svc, s, await source.query(svc.lookup, params)))
  }
  return out
}
