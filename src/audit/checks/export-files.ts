/**
 * The export's own files against export.json (unsigned: it catches accidental damage; tampering is
 * caught by the checks themselves): every listed file exists with the SHA-256 and length listed.
 * The large files are hashed while they stream past (export-reader.ts LineReader), the others read.
 */
import { createHash } from 'node:crypto'
import { join, resolve } from 'node:path'
import { EXPORT_FILES } from '../../log/export-layout.js'
import type { ExportMetaRead } from '../export-reader.js'
import { readOptional } from '../export-reader.js'
import type { Findings } from '../findings.js'

export type StreamedDigest = () => { sha256: string; bytes: number } | undefined

export async function checkExportFiles(dir: string, meta: ExportMetaRead, streamed: ReadonlyMap<string, StreamedDigest>, findings: Findings): Promise<void> {
  for (const [file, info] of Object.entries(meta.files ?? {})) {
    // Names come from an unsigned file: only plain relative paths, and never echoed beyond 200 chars.
    if (file.includes('..') || !/^[A-Za-z0-9._/-]{1,200}$/.test(file)) continue
    const path = resolve(join(dir, file))
    let got = streamed.get(path)?.()
    if (got === undefined) {
      const b = await readOptional(path)
      got = b === undefined ? undefined : { sha256: createHash('sha256').update(b).digest('hex'), bytes: b.length }
    }
    if (got === undefined) findings.add('AUDIT_EXPORT_FILE_HASH', `${file}: listed in ${EXPORT_FILES.meta} but missing`)
    else if (got.sha256 !== info.sha256 || got.bytes !== info.bytes) findings.add('AUDIT_EXPORT_FILE_HASH', `${file}: differs from the SHA-256 ${EXPORT_FILES.meta} lists`)
  }
}
