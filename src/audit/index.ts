/**
 * The offline auditor (DESIGN.md "Auditor toolkit"): `exportLog` writes a node's log export,
 * `auditExport` verifies one and returns a report of coded findings, `formatReport` renders it;
 * `auditConsistency`, `proveInclusion`/`checkReceipt`, `crossCheck` and `replayExport` are the
 * other `verinode audit` commands; `rotateKey` is `verinode keys rotate`. docs/AUDIT.md.
 */
export { exportLog, EXPORT_FILES, EXPORT_FORMAT, type ExportMeta, type ExportOptions, type ExportResult } from './export.js'
export { auditExport, type AuditOptions, type AuditReport, type ExchangeReport, type DecisionReplay, type AnswerReplay } from './verify.js'
export { auditConsistency, parseProofFile, type ConsistencyOptions, type ConsistencyReport } from './consistency.js'
export { proveInclusion, checkReceipt, parseReceipt, writeReceipt, RECEIPT_FORMAT, type InclusionReceipt, type ReceiptReport } from './receipt.js'
export { crossCheck, type CrossCheckOptions, type CrossCheckReport } from './cross-check.js'
export { replayExport, REPLAY_CODES, type ReplayReport } from './replay.js'
export { rotateKey, checkRotation, rotationStatement, type RotationResult } from './key-rotation.js'
export { FINDINGS, type AuditCode, type AuditFinding, type Severity } from './findings.js'
export { formatReport, summarizeReport, formatConsistency, formatCrossCheck, formatReceiptCheck, formatReplay } from './format.js'
