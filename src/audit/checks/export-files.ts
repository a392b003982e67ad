/**
 * The export's own files against export.json (unsigned: it catches accidental damage; tampering is
 * caught by the checks themselves): every listed file exists with the digest and length listed. The
 * digest is the one the list names: `sha256`, or `sm3` (an `sm` federation's export).
 * The large files are hashed while they stream past (export-reader.ts LineReader), the others read.
 */
import { createHash } from 'node:crypto'
import { join, resolve } from 'node:path'
import { EXPORT_FILES, type ExportFileHash } from '../../log/export-layout.js'
import type { ExportMetaRead, FileDigest } from '../export-reader.js'
import { readOptional } from '../export-reader.js'
import type { Findings } from '../findings.js'

export type StreamedDigest = () => FileDigest | undefined

/** The hash a file-list entry names (`sm3` when it lists one, else `sha256`). */
export const listedHash = (info: { sm3?: string | undefined }): ExportFileHash => (info.sm3 === undefined ? 'sha256' : 'sm3')

export async function checkExportFiles(dir: string, meta: ExportMetaRead, streamed: ReadonlyMap<string, StreamedDigest>, findings: Findings): Promise<void> {
  for (const [file, info] of Object.entries(meta.files ?? {})) {
    // Names come from an unsigned file: only plain relative paths, and never echoed beyond 200 chars.
    if (file.includes('..') || !/^[A-Za-z0-9._/-]{1,200}$/.test(file)) continue
    const path = resolve(join(dir, file))
    const alg = listedHash(info)
    let got = streamed.get(path)?.()
    if (got === undefined || got.alg !== alg) {
      const b = await readOptional(path)
      got = b === undefined ? undefined : { alg, hex: createHash(alg).update(b).digest('hex'), bytes: b.length }
    }
    if (got === undefined) findings.add('AUDIT_EXPORT_FILE_HASH', `${file}: listed in ${EXPORT_FILES.meta} but missing`)
    else if (got.hex !== info[alg] || got.bytes !== info.bytes) findings.add('AUDIT_EXPORT_FILE_HASH', `${file}: differs from the ${alg === 'sm3' ? 'SM3' : 'SHA-256'} ${EXPORT_FILES.meta} lists`)
  }
}
