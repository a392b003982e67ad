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

/**
 * One file's digest and length. The digest is the federation profile's hash, named by its key:
 * `sha256` under `intl`, `sm3` under `sm` (an `sm` export uses no SHA-256).
 */
export type ExportFileInfo = { bytes: number } & ({ sha256: string; sm3?: undefined } | { sm3: string; sha256?: undefined })

/** The hash an export's file list names (node:crypto's name, also the key in export.json). */
export type ExportFileHash = 'sha256' | 'sm3'

/** `{ [alg]: hex, bytes }`: the file-list entry for a digest made with `alg`. */
export const exportFileInfo = (alg: ExportFileHash, hex: string, bytes: number): ExportFileInfo => (alg === 'sm3' ? { sm3: hex, bytes } : { sha256: hex, bytes })

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
  /** digest (hex; SHA-256, or SM3 under `sm`) and length of every file, by path relative to the export folder */
  files: Record<string, ExportFileInfo>
}
