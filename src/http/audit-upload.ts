/**
 * A log export uploaded from the console (`POST /local/v1/audit/upload`): the files of a
 * `verinode log export` folder, each `{ path, data }` with `path` relative to the folder
 * (`export.json`, `entries.jsonl`, `checkpoints/000000000012.note`, ...) and `data` its bytes in
 * base64. Bounded (MAX_UPLOAD_BYTES decoded, MAX_UPLOAD_FILES files) and checked before anything is
 * written; the files go to a fresh private temporary folder that is removed when the audit ends,
 * whatever its outcome, so nothing is left behind, half-written or not.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { z } from 'zod'
import { VnError } from '../errors.js'

/** Bytes of file data an upload may carry, decoded (an export of about 10^5 exchanges). */
export const MAX_UPLOAD_BYTES = 64 * 1024 * 1024
/** Files an upload may carry (one per checkpoint and manifest, and four more). */
export const MAX_UPLOAD_FILES = 20_000
/** The request body limit of the upload route: base64 grows the data by 4/3, and JSON adds the paths. */
export const UPLOAD_BODY_LIMIT = Math.ceil((MAX_UPLOAD_BYTES * 4) / 3) + MAX_UPLOAD_FILES * 200

/** a path inside the export: at most one folder deep, no empty, hidden or dot-dot segment */
const SEGMENT = '[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}'
const PATH_RE = new RegExp(`^${SEGMENT}(/${SEGMENT})?$`)
const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/

export const AuditUploadSchema = z.strictObject({
  files: z.array(z.strictObject({
    path: z.string().min(1).max(300),
    data: z.string().max(UPLOAD_BODY_LIMIT),
  })).min(1),
})

const invalid = (detail: string): VnError => new VnError('VN_ERR_AUDIT_UPLOAD_INVALID', detail)

/** The uploaded files, checked and decoded. @throws VnError VN_ERR_AUDIT_UPLOAD_INVALID, VN_ERR_AUDIT_UPLOAD_TOO_LARGE */
export function decodeUpload(body: unknown): Map<string, Buffer> {
  const p = AuditUploadSchema.safeParse(body)
  if (!p.success) throw invalid('expected {"files": [{"path", "data" (base64)}]}')
  if (p.data.files.length > MAX_UPLOAD_FILES) throw new VnError('VN_ERR_AUDIT_UPLOAD_TOO_LARGE', `more than ${MAX_UPLOAD_FILES} files`)
  const files = new Map<string, Buffer>()
  let total = 0
  for (const [i, f] of p.data.files.entries()) {
    if (!PATH_RE.test(f.path)) throw invalid(`files[${i}].path: a relative path, at most one folder deep, of letters, digits, '.', '_' and '-'`)
    if (files.has(f.path)) throw invalid(`files[${i}].path: given twice`)
    if (f.data.length % 4 !== 0 || !BASE64_RE.test(f.data)) throw invalid(`files[${i}].data: not base64`)
    const bytes = Buffer.from(f.data, 'base64')
    total += bytes.length
    if (total > MAX_UPLOAD_BYTES) throw new VnError('VN_ERR_AUDIT_UPLOAD_TOO_LARGE', `more than ${MAX_UPLOAD_BYTES} bytes of files`)
    files.set(f.path, bytes)
  }
  if (!files.has('export.json')) throw invalid('no export.json: upload the folder `verinode log export` wrote')
  return files
}

/** Writes `files` to a fresh private temporary folder, runs `audit` on it, and removes the folder. */
export async function withUploadedExport<T>(files: Map<string, Buffer>, audit: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'vn-audit-upload-'))
  try {
    try {
      for (const [path, bytes] of files) {
        if (path.includes('/')) await mkdir(join(dir, dirname(path)), { recursive: true, mode: 0o700 })
        await writeFile(join(dir, path), bytes, { mode: 0o600, flag: 'wx' })
      }
    } catch {
      // a path that is a file and a folder at once (`a` and `a/b`)
      throw invalid('files: a path names both a file and a folder')
    }
    return await audit(dir)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
