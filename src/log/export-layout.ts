/**
 * The file layout of a log export (format `verinode-log-export`, v 1): what `verinode log export`
 * writes (src/node/export.ts) and the offline auditor reads (src/audit/export-reader.ts). Kept
 * below both, so the tool that writes a node's log and the auditor that only reads it share the
 * names without the auditor depending on the node. The layout itself is described in
 * src/node/export.ts and docs/AUDIT.md.
 */
export const EXPORT_FORMAT = 'verinode-log-export'

export const EXPORT_FILES = {
  meta: 'export.json',
  entries: 'entries.jsonl',
  evidence: 'evidence.jsonl',
  disclosures: 'disclosures.jsonl',
  received: 'received.jsonl',
  checkpoints: 'checkpoints',
  manifests: 'manifests',
  root: 'federation-root.pub',
} as const

export interface ExportFileInfo {
  sha256: string
  bytes: number
}

/** The content of export.json. */
export interface ExportMeta {
  v: 1
  format: typeof EXPORT_FORMAT
  member: string
  federation: string
  origin: string
  /** leaves in entries.jsonl */
  size: number
  /** the largest checkpoint exported, or null when the node has none yet */
  checkpoint: { size: number; file: string } | null
  exportedAt: string
  manifests: { file: string; seq: number; hash: string }[]
  evidence: number
  /** with `withDisclosures`: how many refused peer answers' bytes received.jsonl holds */
  receivedCount?: number
  /** true only with `withDisclosures`; then also the reason given and how many exchanges */
  disclosures: boolean
  disclosureReason?: string
  disclosureCount?: number
  /** SHA-256 (hex) and length of every file, by path relative to the export folder */
  files: Record<string, ExportFileInfo>
}
