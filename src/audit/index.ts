/**
 * The offline auditor (DESIGN.md "Auditor toolkit"); it only reads. `auditExport` verifies a log
 * export and returns a report of coded findings, `formatReport` renders it; `auditConsistency`,
 * `proveInclusion`/`checkReceipt`, `crossCheck` and `replayExport` are the other `verinode audit`
 * commands. The tools that write to a node's log live in src/node/: `exportLog` (export.ts),
 * `rotateKey` (key-rotation.ts), the offline append (offline-log.ts). docs/AUDIT.md.
 */
export { EXPORT_FILES, EXPORT_FORMAT, type ExportMeta } from '../log/export-layout.js'
export { auditExport, type AuditOptions, type AuditReport, type ExchangeReport, type DecisionReplay, type AnswerReplay } from './verify.js'
export { auditConsistency, parseProofFile, type ConsistencyOptions, type ConsistencyReport } from './consistency.js'
export { proveInclusion, checkReceipt, parseReceipt, writeReceipt, RECEIPT_FORMAT, type InclusionReceipt, type ReceiptReport } from './receipt.js'
export { crossCheck, type CrossCheckOptions, type CrossCheckReport } from './cross-check.js'
export { replayExport, REPLAY_CODES, type ReplayReport } from './replay.js'
export { checkRotation } from './checks/key-events.js'
export { rotationStatement } from '../log/rotation-statement.js'
export { FINDINGS, type AuditCode, type AuditFinding, type Severity } from './findings.js'
export { formatReport, summarizeReport, formatConsistency, formatCrossCheck, formatReceiptCheck, formatReplay } from './format.js'
