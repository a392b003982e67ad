/**
 * Human-readable rendering of the auditor's reports (every `verinode audit ...` without `--json`):
 * a summary, the log-wide findings, then the findings of each exchange under its xid, and a last
 * line `PASS|FAIL: n errors, n warnings, n info`.
 */
import type { AuditFinding } from './findings.js'
import type { AuditReport } from './verify.js'
import type { ConsistencyReport } from './consistency.js'
import type { CrossCheckReport } from './cross-check.js'
import type { ReceiptReport } from './receipt.js'
import type { ReplayReport } from './replay.js'

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
  const iso = (ms: number | null): string => (ms === null ? '-' : new Date(ms).toISOString())
  const flag = (x: { late: boolean; unanswered: boolean }): string => (x.late ? '  LATE' : x.unanswered ? '  NOT ANSWERED IN TIME' : '')
  for (const a of r.governance.applications) {
    out.push(`  application:   ${a.id} ${a.consumer} → ${a.provider} (${a.services.join(', ')}): ${a.state}${a.agreement === null ? '' : ` as ${a.agreement}`}; filed ${iso(a.filedAt)}, reviewed ${iso(a.reviewedAt)}, decided ${iso(a.decidedAt)}, due ${iso(a.due)}; leaves ${a.indices.join(', ')}${flag(a)}`)
  }
  for (const d of r.governance.disputes) {
    out.push(`  dispute:       ${d.id} ${d.consumer} → ${d.provider} on ${d.xid} (${d.reason}): ${d.state}; filed ${iso(d.filedAt)}, resolved ${iso(d.resolvedAt)}, due ${iso(d.due)}; leaves ${d.indices.join(', ')}${flag(d)}`)
  }
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
  const apps = r.governance.applications.length
  const disputes = r.governance.disputes.length
  const gov = `${apps > 0 ? `, ${apps} application${apps === 1 ? '' : 's'}` : ''}${disputes > 0 ? `, ${disputes} dispute${disputes === 1 ? '' : 's'}` : ''}`
  return `${r.ok ? 'PASS' : 'FAIL'}: ${r.leaves} leaves, ${r.counts.provider + r.counts.consumer} exchanges${gov}, ${cp}; ${r.counts.errors} errors, ${r.counts.warnings} warnings`
}

// ---------------------------------------------------------------------------------------------
// The other auditor commands

const verdict = (ok: boolean, c: { errors: number; warnings: number; infos: number }): string =>
  `${ok ? 'PASS' : 'FAIL'}: ${c.errors} error${c.errors === 1 ? '' : 's'}, ${c.warnings} warning${c.warnings === 1 ? '' : 's'}, ${c.infos} info`

function findingLines(fs: readonly AuditFinding[]): string[] {
  return fs.map((f) => `${line(f)}${f.xid === undefined ? '' : `  [xid ${f.xid}]`}`)
}

export function formatConsistency(r: ConsistencyReport): string[] {
  const cp = (c: ConsistencyReport['older']): string => (c === null ? 'unreadable' : `size ${c.size}, root ${c.rootHash}${c.signed ? '' : ' (NOT signed by the log key)'}  [${c.file}]`)
  const out = [
    `consistency of ${r.origin ?? '(no common log)'}`,
    `  trust anchor:  ${r.trustAnchor.kid}${r.trustAnchor.source === 'export' ? ' (taken from the export: pass --root)' : ''}`,
    `  older:         ${cp(r.older)}`,
    `  newer:         ${cp(r.newer)}`,
    `  method:        ${r.method === 'export' ? 'proof made from the export\'s leaves' : r.method === 'proof' ? 'given proof' : r.method === 'equal-size' ? 'same size: roots compared' : 'none'}`,
    `  result:        ${r.consistent ? 'the newer checkpoint extends the older one (append-only)' : 'NOT shown to be append-only'}`,
  ]
  if (r.findings.length > 0) out.push('', ...findingLines(r.findings))
  out.push('', verdict(r.ok, r.counts))
  return out
}

export function formatReceiptCheck(r: ReceiptReport): string[] {
  const out = [
    `receipt of ${r.xid === null ? '(unreadable xid)' : `xid ${r.xid}`} in ${r.origin}`,
    `  trust anchor:  ${r.trustAnchor.kid}`,
    `  checkpoint:    ${r.checkpoint === null ? 'unreadable' : `size ${r.checkpoint.size}, root ${r.checkpoint.rootHash}${r.checkpoint.signed ? ', signed by the member\'s log key' : ' (NOT signed by a listed log key)'}`}`,
    ...r.entries.map((e) => `  leaf ${String(e.index).padEnd(8)} ${(e.t ?? 'unknown').padEnd(14)} ${e.included ? 'included' : 'NOT included'}`),
  ]
  if (r.findings.length > 0) out.push('', ...findingLines(r.findings))
  out.push('', verdict(r.ok, r.counts))
  return out
}

export function formatCrossCheck(r: CrossCheckReport): string[] {
  const v = (x: boolean | null): string => (x === null ? 'not verified' : x ? 'audit verify passes' : 'audit verify FAILS')
  const out = [
    `cross-check of consumer ${r.consumer.member} against provider ${r.provider.member}`,
    `  consumer:      ${r.consumer.dir} (${r.consumer.leaves} leaves, ${v(r.consumer.verified)})`,
    `  provider:      ${r.provider.dir} (${r.provider.leaves} leaves, ${v(r.provider.verified)})`,
    `  exchanges:     ${r.counts.joined} on both sides, ${r.counts.consumerOnly} only at the consumer, ${r.counts.providerOnly} only at the provider`,
  ]
  const general = r.findings.filter((f) => f.xid === undefined && f.role === undefined)
  if (general.length > 0) out.push('', 'exports:', ...findingLines(general))
  for (const e of r.exchanges) {
    out.push('', `exchange ${e.xid} (consumer leaves ${e.consumerIndices.join(', ') || 'none'}; provider leaves ${e.providerIndices.join(', ') || 'none'}):`)
    for (const f of e.findings) out.push(`${line(f)}  [${f.role ?? ''} log]`)
  }
  out.push('', verdict(r.ok, r.counts))
  return out
}

export function formatReplay(r: ReplayReport): string[] {
  const res = (x: { permit: boolean; agreement?: string; code?: string }): string => (x.permit ? `permit (${x.agreement ?? '?'})` : `deny (${x.code ?? '?'})`)
  const out = [
    `decision replay of ${r.member} (${r.origin})`,
    `  trust anchor:  ${r.trustAnchor.kid}${r.trustAnchor.source === 'export' ? ' (taken from the export: pass --root)' : ''}`,
    `  decisions:     ${r.counts.decisions}, replayed ${r.counts.replayed}, ${r.counts.disagreements} disagree; under ${r.policies} agreement set(s)`,
    `  answers:       ${r.counts.answers}, ${r.counts.unpermitted} ok answer(s) without a preceding permit`,
    '',
    'decisions (leaf, xid, consumer, service: logged → replayed):',
  ]
  for (const d of r.decisions) {
    const tag = d.agrees === null ? 'NOT REPLAYED' : d.agrees ? 'same' : 'DIFFERS'
    out.push(`  ${String(d.index).padEnd(8)} ${d.xid}  ${d.consumer}  ${d.service ?? '?'}: ${res(d.logged)} → ${d.replayed === null ? '—' : res(d.replayed)}  [${tag}${d.source === 'request-in record' ? ', from the leaf only' : ''}]`)
  }
  const bad = r.answers.filter((a) => a.status === 'ok' && !a.permitted)
  if (bad.length > 0) {
    out.push('', 'answers released without a preceding permit:')
    for (const a of bad) out.push(`  leaf ${a.index}  xid ${a.xid}${a.decisionIndex === null ? ' (no decision for this request)' : ` (decision at leaf ${a.decisionIndex} denied)`}`)
  }
  if (r.findings.length > 0) out.push('', ...findingLines(r.findings))
  out.push('', verdict(r.ok, r.counts))
  return out
}
