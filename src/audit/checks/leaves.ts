/**
 * Leaves (verify.ts step 3): each is UTF-8, RFC 8785 canonical JSON of exactly one known record
 * type with no unknown field (record-schemas.ts), and the PII scan (pii.ts) finds nothing.
 *
 * The scan allows the free texts the operator vetted (agreement purposes and bases) wherever they
 * appear in the log, also before the agreements record that vets them: a leaf whose free text is
 * not (yet) vetted keeps its place in the report (Findings.reserve) and is judged at the end. The
 * same holds for evidence payloads (evidence.ts), which may also repeat any purpose or basis a
 * request leaf carries.
 */
import { formatZodIssues } from '../../config/load.js'
import type { LogRecord } from '../../log/records.js'
import { AgreementSetSchema } from '../../policy/agreements.js'
import { canonicalJson } from '../../protocol/canonical-json.js'
import type { AuditCode, Findings, Where } from '../findings.js'
import { scanInto, scanValue, type PiiHit } from '../pii.js'
import type { PiiPre } from '../precheck-types.js'
import { FREE_TEXT_FIELDS, LogRecordSchema, RECORD_TYPES } from '../record-schemas.js'
import { leafWhere } from './context.js'
import { safeParseFast } from '../fast-parse.js'
import { decodeUtf8Strict } from '../../util/strict-json.js'


function reportPii(findings: Findings, hits: readonly PiiHit[], label: string, where: Where, place?: number): void {
  for (const h of hits) {
    const code: AuditCode = h.kind === 'identifier' ? 'AUDIT_PII_IDENTIFIER' : h.kind === 'name' ? 'AUDIT_PII_NAME' : 'AUDIT_PII_SUSPECT_TEXT'
    if (place === undefined) findings.add(code, `${label}: ${h.path}`, where)
    else findings.addAt(place, code, `${label}: ${h.path}`, where)
  }
}

/**
 * A PII scan against a vetted set that is still growing: scanned now when every free text it meets
 * is already vetted, else its findings' place is kept and it is scanned again at the end. The
 * label and place of a finding are only worked out when there is one (most values are clean).
 */
export class VettedScanner {
  /** texts vetted so far; complete after the last leaf */
  readonly vetted = new Set<string>()
  private readonly later: { place: number; value: unknown; freeText: readonly string[] | 'all'; label: string; where: Where }[] = []
  private unvetted = false
  private readonly hits: PiiHit[] = []
  /** the vetted set as the scan sees it: a miss marks the scan as to be judged again at the end */
  private readonly probe = { has: (s: string): boolean => this.vetted.has(s) || ((this.unvetted = true), false) } as ReadonlySet<string>

  constructor(private readonly findings: Findings) {}

  scan(value: unknown, freeText: readonly string[] | 'all', label: () => string, where: () => Where): void {
    this.unvetted = false
    this.hits.length = 0
    scanInto(value, freeText, this.probe, this.hits)
    if (!this.unvetted) {
      if (this.hits.length > 0) reportPii(this.findings, this.hits, label(), where())
    } else this.later.push({ place: this.findings.reserve(), value, freeText, label: label(), where: where() })
  }

  /**
   * A scan a worker thread already made with every free text taken as vetted (precheck.ts): its
   * hits stand when every free text it met is vetted by now; else the value is scanned here, as
   * `scan` would have.
   */
  scanKnown(pre: PiiPre, valueOf: () => unknown, freeText: readonly string[] | 'all', label: () => string, where: () => Where): void {
    for (const p of pre.probes) {
      if (!this.vetted.has(p)) return this.scan(valueOf(), freeText, label, where)
    }
    if (pre.hits.length > 0) reportPii(this.findings, pre.hits, label(), where())
  }

  /** After the last leaf: the deferred scans, in their places. */
  finish(): void {
    for (const l of this.later) reportPii(this.findings, scanValue(l.value, { freeText: l.freeText, vetted: this.vetted }), l.label, l.where, l.place)
    this.later.length = 0
  }
}

export class LeafCheck {
  /** agreement purposes and bases (for leaves), plus request purposes and bases (for evidence) */
  readonly leafScan: VettedScanner
  readonly evidenceScan: VettedScanner
  /** the last disclosure-export record (disclosures.ts) */
  lastDisclosureExport: { i: number; r: Extract<LogRecord, { t: 'disclosure-export' }> } | undefined

  constructor(private readonly findings: Findings) {
    this.leafScan = new VettedScanner(findings)
    this.evidenceScan = new VettedScanner(findings)
  }

  /** Leaf `i`: its record when it is a valid one, else undefined (reported). */
  check(i: number, leaf: Uint8Array): LogRecord | undefined {
    const { findings } = this
    const text = decodeUtf8Strict(leaf)
    let value: unknown
    try {
      if (text === undefined) throw new Error('not UTF-8')
      value = JSON.parse(text)
    } catch {
      findings.add('AUDIT_LEAF_INVALID', `leaf ${i}: not UTF-8 JSON`, { index: i })
      return undefined
    }
    let canonical: string | undefined
    try {
      canonical = canonicalJson(value)
    } catch {
      canonical = undefined
    }
    let where: Where | undefined
    if (canonical !== text) findings.add('AUDIT_LEAF_NOT_CANONICAL', `leaf ${i}: not RFC 8785 canonical JSON`, (where ??= leafWhere(value, i)))
    const r = safeParseFast(LogRecordSchema, value)
    let rec: LogRecord | undefined
    if (!r.success) {
      const t = (value as { t?: unknown } | null)?.t
      const known = typeof t === 'string' && (RECORD_TYPES as readonly string[]).includes(t)
      findings.add('AUDIT_LEAF_INVALID', `leaf ${i}: ${known ? `${t}: ${formatZodIssues(r.error)}` : 'unknown record type'}`, (where ??= leafWhere(value, i)))
    } else {
      rec = r.data as LogRecord
      this.inOrder(i, rec)
    }
    const t = (value as { t?: unknown } | null)?.t
    const freeText = t === 'agreements' ? 'all' : typeof t === 'string' ? (FREE_TEXT_FIELDS[t] ?? []) : []
    this.leafScan.scan(value, freeText, () => `leaf ${i}`, () => where ?? leafWhere(value, i))
    return rec
  }

  /**
   * Leaf `i` when a worker found it clean (precheck.ts: UTF-8, canonical, a valid record other than
   * `agreements`, no PII hit counting the free texts `probes` as vetted): only parsed here, with
   * what `check` does in order (the texts it vets, the last disclosure export, the free texts
   * judged against the set vetted so far).
   */
  checkFast(i: number, leaf: Buffer, ascii: boolean, probes: readonly string[] | undefined): LogRecord {
    const rec = JSON.parse(ascii ? leaf.toString('latin1') : leaf.toString('utf8')) as LogRecord
    this.inOrder(i, rec)
    if (probes !== undefined) this.leafScan.scanKnown({ hits: [], probes: [...probes] }, () => rec, FREE_TEXT_FIELDS[rec.t] ?? [], () => `leaf ${i}`, () => leafWhere(rec, i))
    return rec
  }

  /** What a valid record changes for the leaves after it, in log order: the texts it vets, the last disclosure export. */
  private inOrder(i: number, rec: LogRecord): void {
    const vet = (texts: readonly string[]): void => {
      for (const s of texts) {
        this.leafScan.vetted.add(s)
        this.evidenceScan.vetted.add(s)
      }
    }
    if (rec.t === 'agreements') {
      const a = AgreementSetSchema.safeParse(rec.agreements)
      if (a.success) for (const ag of a.data) vet([...ag.purposes, ag.basis])
    } else if (rec.t === 'governance' && rec.agreement !== undefined) {
      // an approved agreement's texts were vetted by the provider's operator who approved it
      const a = AgreementSetSchema.safeParse([rec.agreement])
      if (a.success && a.data[0] !== undefined) vet([...a.data[0].purposes, a.data[0].basis])
    } else if (rec.t === 'request-in' || rec.t === 'request-out') {
      this.evidenceScan.vetted.add(rec.purpose).add(rec.basis)
    } else if (rec.t === 'disclosure-export') {
      this.lastDisclosureExport = { i, r: rec }
    }
  }

  finish(): void {
    this.leafScan.finish()
    this.evidenceScan.finish()
  }
}
