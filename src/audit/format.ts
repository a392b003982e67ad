/**
 * Human-readable rendering of an audit report (`verinode audit verify` without `--json`):
 * a summary, the log-wide findings, then the findings of each exchange under its xid.
 */
import type { AuditFinding } from './findings.js'
import type { AuditReport } from './verify.js'

const TAG = { error: 'ERROR', warning: 'WARN ', info: 'info ' } as const

const line = (f: AuditFinding): string => `  ${TAG[f.severity]} ${f.code}  ${f.message}`

export function formatReport(r: AuditReport): string[] {
  const out: string[] = []
  out.push(`audit of ${r.member} (${r.origin})`)
  out.push(`  export:        ${r.dir}`)
  out.push(`  trust anchor:  ${r.trustAnchor.kid}${r.trustAnchor.source === 'export' ? ' (taken from the export itself: pass --root to use your own copy)' : ''}`)
  out.push(`  manifests:     ${r.manifests.length === 0 ? 'none verified' : r.manifests.map((m) => `seq ${m.seq}`).join(', ')}`)
  out.push(`  leaves:        ${r.leaves}`)
  out.push(
    `  checkpoint:    ${r.checkpoint === null ? 'none verified' : `size ${r.checkpoint.size}, root ${r.checkpoint.rootHash} ${r.checkpoint.rootMatches ? '(recomputed: matches)' : '(recomputed: DOES NOT MATCH)'}`}`,
  )
  out.push(`  exchanges:     ${r.counts.provider} as provider, ${r.counts.consumer} as consumer; ${r.counts.evidence} evidence JWS`)
  const general = r.findings.filter((f) => f.role === undefined)
  if (general.length > 0) {
    out.push('')
    out.push('log:')
    for (const f of general) out.push(line(f))
  }
  for (const e of r.exchanges) {
    out.push('')
    out.push(`exchange ${e.xid} (${e.role}, ${e.role === 'provider' ? 'consumer' : 'provider'} ${e.peer}, leaves ${e.indices.join(', ')}):`)
    for (const f of e.findings) out.push(line(f))
  }
  // Findings about an exchange that the exchange list could not place (e.g. an orphan response-in).
  const placed = new Set(r.exchanges.flatMap((e) => e.findings))
  const loose = r.findings.filter((f) => f.role !== undefined && !placed.has(f))
  if (loose.length > 0) {
    out.push('')
    out.push('other entries:')
    for (const f of loose) out.push(`${line(f)}${f.xid === undefined ? '' : `  [xid ${f.xid}]`}`)
  }
  out.push('')
  out.push(
    `${r.ok ? 'PASS' : 'FAIL'}: ${r.counts.errors} error${r.counts.errors === 1 ? '' : 's'}, ${r.counts.warnings} warning${r.counts.warnings === 1 ? '' : 's'}, ${r.counts.infos} info`,
  )
  return out
}

/** One line for summaries (the demo's audit step): verdict, counts, checkpoint coverage. */
export function summarizeReport(r: AuditReport): string {
  const cp = r.checkpoint === null ? 'no checkpoint' : `checkpoint ${r.checkpoint.size}/${r.leaves}`
  return `${r.ok ? 'PASS' : 'FAIL'}: ${r.leaves} leaves, ${r.counts.provider + r.counts.consumer} exchanges, ${cp}; ${r.counts.errors} errors, ${r.counts.warnings} warnings`
}
