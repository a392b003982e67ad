/**
 * A log export uploaded from the console (`POST /local/v1/audit/upload`): the `verinode log export`
 * folder as a tar archive (ustar; the console builds one from the picked folder, `tar cf` makes
 * one too), streamed straight to a fresh private temporary folder, never held in memory (the
 * container's heap is small: docs/OPERATIONS.md). Bounded (MAX_UPLOAD_BYTES of archive,
 * MAX_UPLOAD_FILES files); only regular files with plain relative paths are taken. The folder is
 * removed when the audit ends, whatever its outcome (a refused or cut-off upload included), so
 * nothing is left behind, half-written or not.
 */
import { mkdir, mkdtemp, open, readdir, rm, stat, type FileHandle } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { VnError } from '../errors.js'

/** Bytes of archive an upload may carry (an export of about 5 * 10^5 exchanges). */
export const MAX_UPLOAD_BYTES = 256 * 1024 * 1024
/** Files an upload may carry (one per checkpoint and manifest, and four more). */
export const MAX_UPLOAD_FILES = 20_000
export const TAR_MEDIA_TYPE = 'application/x-tar'

const BLOCK = 512
/** a path inside the archive: at most three segments (the export folder's own name, a subfolder, the file), no empty, hidden or dot-dot segment */
const SEGMENT = '[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}'
const PATH_RE = new RegExp(`^${SEGMENT}(/${SEGMENT}){0,2}$`)

const invalid = (detail: string): VnError => new VnError('VN_ERR_AUDIT_UPLOAD_INVALID', detail)
const tooLarge = (detail: string): VnError => new VnError('VN_ERR_AUDIT_UPLOAD_TOO_LARGE', detail)

const field = (h: Buffer, start: number, len: number): string => {
  const b = h.subarray(start, start + len)
  const nul = b.indexOf(0)
  return b.subarray(0, nul < 0 ? len : nul).toString('utf8')
}

function octal(h: Buffer, start: number, len: number, what: string): number {
  const s = field(h, start, len).trim()
  if (!/^[0-7]{1,12}$/.test(s)) throw invalid(`tar: ${what} is not an octal number`)
  return parseInt(s, 8)
}

interface Entry { kind: 'file' | 'skip'; path: string; size: number }

/** One 512-byte ustar header (POSIX.1-1988; pax extended headers are skipped). */
function parseHeader(h: Buffer): Entry {
  const sum = octal(h, 148, 8, 'checksum')
  let mine = 0
  for (let i = 0; i < BLOCK; i++) mine += i >= 148 && i < 156 ? 0x20 : (h[i] as number)
  if (sum !== mine) throw invalid('tar: a header checksum does not match (not a tar archive?)')
  const size = octal(h, 124, 12, 'size')
  const type = String.fromCharCode(h[156] as number)
  const prefix = field(h, 257, 263 - 257) === 'ustar' ? field(h, 345, 155) : ''
  const name = field(h, 0, 100)
  const path = (prefix === '' ? name : `${prefix}/${name}`).replace(/^(\.\/)+/, '').replace(/\/$/, '')
  if (type === '0' || type === '\0') return { kind: 'file', path, size }
  // folders, and pax extended headers (their records, e.g. an mtime, are not needed)
  if (type === '5' || type === 'x' || type === 'g') return { kind: 'skip', path, size }
  throw invalid(`tar: ${path}: only regular files and folders (no links or devices)`)
}

/**
 * Writes the archive read from `body` into `dir`: its regular files, under their paths. @returns
 * the number of files. @throws VnError VN_ERR_AUDIT_UPLOAD_INVALID, VN_ERR_AUDIT_UPLOAD_TOO_LARGE
 */
export async function extractTar(body: AsyncIterable<Buffer>, dir: string, limits = { bytes: MAX_UPLOAD_BYTES, files: MAX_UPLOAD_FILES }): Promise<number> {
  let header = Buffer.alloc(0)
  let file: { fh: FileHandle; left: number; pad: number } | undefined
  let skip = 0
  let total = 0
  let files = 0
  let ended = false
  const seen = new Set<string>()
  try {
    for await (const chunk of body) {
      total += chunk.length
      if (total > limits.bytes) throw tooLarge(`an archive of more than ${limits.bytes} bytes`)
      let off = 0
      while (off < chunk.length && !ended) {
        if (skip > 0) {
          // padding after a file's data, or the data of an entry not kept
          const n = Math.min(skip, chunk.length - off)
          skip -= n
          off += n
        } else if (file !== undefined) {
          const n = Math.min(file.left, chunk.length - off)
          await file.fh.write(chunk.subarray(off, off + n))
          file.left -= n
          off += n
          if (file.left === 0) {
            await file.fh.close()
            skip = file.pad
            file = undefined
          }
        } else {
          const n = Math.min(BLOCK - header.length, chunk.length - off)
          header = Buffer.concat([header, chunk.subarray(off, off + n)])
          off += n
          if (header.length < BLOCK) continue
          const h = header
          header = Buffer.alloc(0)
          if (h.every((b) => b === 0)) {
            ended = true
            break
          }
          const e = parseHeader(h)
          const padded = Math.ceil(e.size / BLOCK) * BLOCK
          if (e.kind === 'skip') {
            skip = padded
            continue
          }
          if (!PATH_RE.test(e.path)) throw invalid(`tar: ${JSON.stringify(e.path.slice(0, 120))}: a relative path, at most three segments, of letters, digits, '.', '_' and '-'`)
          if (seen.has(e.path)) throw invalid(`tar: ${e.path} given twice`)
          seen.add(e.path)
          if (++files > limits.files) throw tooLarge(`more than ${limits.files} files`)
          let fh: FileHandle
          try {
            if (e.path.includes('/')) await mkdir(join(dir, dirname(e.path)), { recursive: true, mode: 0o700 })
            fh = await open(join(dir, e.path), 'wx', 0o600)
          } catch {
            throw invalid(`tar: ${e.path} names both a file and a folder`)
          }
          if (e.size === 0) await fh.close()
          else file = { fh, left: e.size, pad: padded - e.size }
        }
      }
    }
  } finally {
    await file?.fh.close().catch(() => undefined)
  }
  if (!ended || file !== undefined || header.length > 0) throw invalid('tar: the archive is cut off (no end-of-archive blocks)')
  if (files === 0) throw invalid('tar: no file in the archive')
  return files
}

/**
 * The export's folder inside `dir`: `dir` itself when it holds export.json, else its one subfolder
 * that does (an archive of the folder, `tar cf export.tar export/`).
 */
async function exportRoot(dir: string): Promise<string> {
  const has = (d: string): Promise<boolean> => stat(join(d, 'export.json')).then((s) => s.isFile(), () => false)
  if (await has(dir)) return dir
  const top = await readdir(dir)
  if (top.length === 1 && (await has(join(dir, top[0] as string)))) return join(dir, top[0] as string)
  throw invalid('no export.json: upload the folder `verinode log export` wrote')
}

/** Streams the archive into a fresh private temporary folder, runs `audit` on the export in it, and removes the folder. */
export async function withUploadedExport<T>(body: AsyncIterable<Buffer>, audit: (dir: string, files: number) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'vn-audit-upload-'))
  try {
    const files = await extractTar(body, dir)
    return await audit(await exportRoot(dir), files)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
