/**
 * A tar archive (POSIX ustar) of a picked folder's files, as a Blob: the headers are built here, the
 * files' bytes are the File objects themselves, so nothing is read into memory before the upload
 * streams it (the node's side: src/http/audit-upload.ts).
 */
const BLOCK = 512
const enc = new TextEncoder()

function put(h: Uint8Array, at: number, len: number, s: string): void {
  h.set(enc.encode(s).subarray(0, len), at)
}

const oct = (n: number, len: number): string => `${n.toString(8).padStart(len - 1, '0')}\0`

function header(path: string, size: number, mtime: number): Uint8Array<ArrayBuffer> {
  const h = new Uint8Array(BLOCK)
  // a path longer than the name field goes in the prefix field, split at a '/'
  let name = path
  let prefix = ''
  if (enc.encode(path).length > 100) {
    const cut = path.lastIndexOf('/', 155)
    prefix = path.slice(0, cut)
    name = path.slice(cut + 1)
  }
  put(h, 0, 100, name)
  put(h, 100, 8, oct(0o644, 8))
  put(h, 108, 8, oct(0, 8))
  put(h, 116, 8, oct(0, 8))
  put(h, 124, 12, oct(size, 12))
  put(h, 136, 12, oct(Math.floor(mtime / 1000), 12))
  put(h, 148, 8, '        ')
  put(h, 156, 1, '0')
  put(h, 257, 6, 'ustar\0')
  put(h, 263, 2, '00')
  put(h, 345, 155, prefix)
  let sum = 0
  for (const b of h) sum += b
  put(h, 148, 8, `${sum.toString(8).padStart(6, '0')}\0 `)
  return h
}

/** The archive of `files`, each under its path inside the picked folder (the folder's own name dropped). */
export function tarOf(files: FileList): Blob {
  const parts: BlobPart[] = []
  for (const f of Array.from(files)) {
    const path = f.webkitRelativePath === '' ? f.name : f.webkitRelativePath.split('/').slice(1).join('/')
    parts.push(header(path, f.size, f.lastModified), f)
    const pad = (BLOCK - (f.size % BLOCK)) % BLOCK
    if (pad > 0) parts.push(new Uint8Array(pad))
  }
  parts.push(new Uint8Array(2 * BLOCK))
  return new Blob(parts, { type: 'application/x-tar' })
}
