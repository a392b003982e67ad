/**
 * Disclosures in the export (`log export --with-disclosures`) must be accounted for by the log's
 * last `disclosure-export` record: same count, and the reason export.json gives hashes to its
 * digest.
 */
import { createHash } from 'node:crypto'
import { EXPORT_FILES } from '../../log/export-layout.js'
import type { DisclosureExportRecord } from '../../log/records.js'
import { LineReader, type ExportMetaRead } from '../export-reader.js'
import { digestEquals, type AuditContext } from './context.js'

export function checkDisclosures(ctx: AuditContext, meta: ExportMetaRead, path: string, last: { i: number; r: DisclosureExportRecord } | undefined): void {
  const { findings } = ctx
  const file = new LineReader(path)
  if (!file.exists && meta.disclosures !== true) return
  let lines = 0
  for (let l = file.next(); l !== undefined; l = file.next()) if (l.length > 0) lines++
  if (last === undefined) findings.add('AUDIT_DISCLOSURES_UNLOGGED', `${EXPORT_FILES.disclosures}: ${lines} exchanges' disclosures, and no disclosure-export record in the log`)
  else if (last.r.count !== lines) findings.add('AUDIT_DISCLOSURES_UNLOGGED', `${EXPORT_FILES.disclosures}: ${lines} exchanges' disclosures, the disclosure-export record at leaf ${last.i} logged ${last.r.count}`, { index: last.i })
  else if (meta.disclosureReason === undefined || !digestEquals(createHash('sha256').update(meta.disclosureReason, 'utf8').digest('base64url'), last.r.reasonDigest)) {
    findings.add('AUDIT_DISCLOSURES_UNLOGGED', `${EXPORT_FILES.meta}: the disclosure reason does not hash to the reasonDigest logged at leaf ${last.i}`, { index: last.i })
  }
}
