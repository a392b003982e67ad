/**
 * The offline auditor (DESIGN.md "Auditor toolkit"): `exportLog` writes a node's log export,
 * `auditExport` verifies one and returns a report of coded findings, `formatReport` renders it.
 */
export { exportLog, EXPORT_FILES, EXPORT_FORMAT, type ExportMeta, type ExportOptions, type ExportResult } from './export.js'
export { auditExport, type AuditOptions, type AuditReport, type ExchangeReport } from './verify.js'
export { FINDINGS, type AuditCode, type AuditFinding, type Severity } from './findings.js'
export { formatReport, summarizeReport } from './format.js'
