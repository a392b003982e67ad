/**
 * Evidence digests (verify.ts step 4, first half): every request or response digest a leaf names
 * has its JWS in evidence.jsonl, and SHA-256(jws) is that digest; every evidence line is a
 * `{ digest, jws }` record, one JWS per digest; every evidence payload passes the PII scan.
 *
 * evidence.jsonl is streamed, not loaded: the node exports it in leaf order (src/node/export.ts),
 * so the JWS a leaf needs is normally the next line. `EvidenceFile` reads ahead only as far as a
 * digest asks, keeps each line's offset (a digest asked for again is read back from disk), and
 * caches what it read ahead of need (bounded), so an export in another order is still audited.
 */
import { EXPORT_FILES } from '../../log/export-layout.js'
import type { LineReader } from '../export-reader.js'
import type { Findings, Where } from '../findings.js'
import { SAFE_XID, digestEquals } from './context.js'
import { digestB64u } from '../../crypto/profile.js'
import type { VettedScanner } from './leaves.js'
import type { PiiPre } from '../precheck-types.js'
import { PAYLOAD_FREE_TEXT } from '../record-schemas.js'
import { z } from 'zod'
import { fromB64u } from '../../util/base64url.js'
import { parseJwsJson } from '../../crypto/jws.js'
import { COMPACT_JWS_RE, digestSchema } from '../../protocol/vocabulary.js'

const EvidenceLineSchema = z.strictObject({
  digest: digestSchema,
  jws: z.string().regex(COMPACT_JWS_RE),
})

/** Lines read ahead of need and kept in memory, at most (beyond: read back by offset). */
const CACHE_LIMIT = 100_000

/** The decoded, unverified JSON payload of a compact JWS (read as strictly as the node does), or undefined. */
export function unverifiedPayload(jws: string): unknown {
  return decodePayload(jws.split('.')[1])?.value
}

/** A JWS payload part decoded: its bytes, and its JSON value (undefined when it is not JSON). */
export function decodePayload(p: string | undefined): { bytes: Buffer; value: unknown } | undefined {
  const b = p === undefined ? undefined : fromB64u(p)
  if (b === undefined) return undefined
  try {
    return { bytes: b, value: parseJwsJson(b, 'payload') }
  } catch {
    return { bytes: b, value: undefined }
  }
}

/** base64url characters, by byte */
const B64U = new Uint8Array(256)
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_') B64U[c.charCodeAt(0)] = 1
const HEAD = Buffer.from('{"digest":"', 'latin1')
const GAP = Buffer.from('","jws":"', 'latin1')
/** Where the JWS starts in an exported line: after `{"digest":"`, 43 characters and `","jws":"`. */
const JWS_AT = HEAD.length + 43 + GAP.length

/**
 * The line exactly as the exporter writes it (`{"digest":"<43 base64url>","jws":"<compact JWS>"}`,
 * the JWS as COMPACT_JWS_RE has it), read from its bytes: the same acceptance as JSON.parse and the
 * schema, without making a string of the whole line (a line per JWS, ~1 KB each, millions of them).
 */
function exportedLine(line: Buffer): { digest: string; jws: string } | undefined {
  const n = line.length
  if (n < JWS_AT + 2 + 3 || line[n - 2] !== 0x22 || line[n - 1] !== 0x7d) return undefined
  if (line.compare(HEAD, 0, HEAD.length, 0, HEAD.length) !== 0 || line.compare(GAP, 0, GAP.length, HEAD.length + 43, JWS_AT) !== 0) return undefined
  for (let k = HEAD.length; k < HEAD.length + 43; k++) if (B64U[line[k] as number] === 0) return undefined
  // header (non-empty) . payload . signature (non-empty)
  let dots = 0
  let last = JWS_AT - 1
  for (let k = JWS_AT; k < n - 2; k++) {
    const c = line[k] as number
    if (B64U[c] === 1) continue
    if (c !== 0x2e || dots === 2 || k === last + 1 && dots === 0) return undefined
    dots++
    last = k
  }
  if (dots !== 2 || last === n - 3) return undefined
  // Fresh strings cut from the bytes: a digest is kept as a map key (EvidenceFile.index) for the whole audit.
  return { digest: line.toString('latin1', HEAD.length, HEAD.length + 43), jws: line.toString('latin1', JWS_AT, n - 2) }
}

/** An evidence.jsonl line: its digest and JWS, or undefined when it is not a `{ digest, jws }` record. */
export function parseEvidenceLine(line: Buffer): { digest: string; jws: string } | undefined {
  const fast = exportedLine(line)
  if (fast !== undefined) return fast
  try {
    const p = EvidenceLineSchema.safeParse(JSON.parse(line.toString('utf8')))
    return p.success ? p.data : undefined
  } catch {
    return undefined
  }
}

/**
 * What the audit has settled about a digest, kept beside its evidence line's offset for the whole
 * audit (one map entry and one digest string per digest: the audit holds every digest of the log to
 * the end, and three maps of them were a third of its heap).
 */
export const DIGEST = {
  /** its payload was scanned for PII */
  scanned: 1,
  /** evidenceFor judged it (reported what was missing or wrong once) */
  judged: 2,
  /** ... and the JWS is there and hashes to it */
  judgedOk: 4,
  /** verifiedRequest checked it as a request */
  request: 8,
  /** ... and the request verified */
  requestOk: 16,
} as const
/** index values are offset · FLAGS + flags */
const FLAGS = 32

/** evidence.jsonl, read forward on demand. */
export class EvidenceFile {
  /** first line of each digest: its byte offset · FLAGS + its DIGEST flags */
  private readonly index = new Map<string, number>()
  /** the DIGEST flags of digests the file does not hold (named by a leaf all the same) */
  private readonly absent = new Map<string, number>()
  private readonly cache = new Map<string, string>()
  private done = false

  constructor(private readonly reader: LineReader, private readonly findings: Findings) {
    reader.keepOpen = true
  }

  /** Whether the file holds a JWS for `digest` (reads ahead until it knows). */
  has(digest: string): boolean {
    return this.index.has(digest) || this.readUntil(digest)
  }

  /** The first JWS the file holds for `digest`, or undefined. */
  take(digest: string): string | undefined {
    const c = this.cache.get(digest)
    if (c !== undefined) {
      this.cache.delete(digest)
      return c
    }
    const v = this.index.get(digest)
    if (v !== undefined) return this.readBack(v)
    return this.readUntil(digest) ? this.take(digest) : undefined
  }

  /** The DIGEST flags of `digest` (0 for one never flagged). */
  flags(digest: string): number {
    const v = this.index.get(digest)
    return v === undefined ? (this.absent.get(digest) ?? 0) : v % FLAGS
  }

  /**
   * Sets DIGEST flags of `digest`. For a digest the file does not hold, call this only once the
   * file was searched for it (after `take` or `has` said no): they go to `absent`.
   */
  setFlags(digest: string, f: number): void {
    const v = this.index.get(digest)
    // Map.set on a key it holds keeps the key string it has: no second copy of the digest
    if (v !== undefined) this.index.set(digest, v - (v % FLAGS) + ((v % FLAGS) | f))
    else this.absent.set(digest, (this.absent.get(digest) ?? 0) | f)
  }

  /** Marks the payload of `digest` scanned; false when it already was, or the file lacks it. */
  markScanned(digest: string): boolean {
    const v = this.index.get(digest)
    if (v === undefined || ((v % FLAGS) & DIGEST.scanned) !== 0) return false
    this.index.set(digest, v + DIGEST.scanned)
    return true
  }

  /** Reads the rest of the file (reporting bad lines), then yields each digest never scanned, in file order. */
  *unscanned(): Generator<{ digest: string; jws: string }> {
    this.readUntil(undefined)
    for (const [digest, v] of this.index) {
      if (((v % FLAGS) & DIGEST.scanned) !== 0) continue
      const jws = this.cache.get(digest) ?? this.readBack(v)
      if (jws !== undefined) yield { digest, jws }
    }
  }

  get size(): number {
    return this.index.size
  }

  close(): void {
    this.reader.release()
  }

  /** The JWS of the line of index value `v`. */
  private readBack(v: number): string | undefined {
    const line = this.reader.lineAt(Math.floor(v / FLAGS))
    return line === undefined ? undefined : parseEvidenceLine(line)?.jws
  }

  /** Reads lines until one for `digest` is indexed (true) or the file ends (false). */
  private readUntil(digest: string | undefined): boolean {
    if (this.done) return false
    for (let line = this.reader.next(); line !== undefined; line = this.reader.next()) {
      if (line.length === 0) continue
      const n = this.reader.lines
      const e = parseEvidenceLine(line)
      if (e === undefined) {
        this.findings.add('AUDIT_EVIDENCE_MALFORMED', `${EXPORT_FILES.evidence} line ${n}: not a { digest, jws } record`)
        continue
      }
      const prev = this.index.get(e.digest)
      if (prev !== undefined) {
        const first = this.cache.get(e.digest) ?? this.readBack(prev)
        if (first !== e.jws) this.findings.add('AUDIT_EVIDENCE_MALFORMED', `${EXPORT_FILES.evidence} line ${n}: a second, different JWS for digest ${e.digest}`)
        continue
      }
      this.index.set(e.digest, this.reader.offset * FLAGS)
      if (this.cache.size < CACHE_LIMIT) this.cache.set(e.digest, e.jws)
      if (e.digest === digest) return true
    }
    this.done = true
    return false
  }
}

/** What is known of one digest's evidence while the leaves that name it are being checked. */
export interface EvidenceEntry {
  digest: string
  /** the JWS the evidence holds for it */
  jws: string | undefined
  /** SHA-256(jws) is the digest */
  digestOk: boolean
  /** the last chunk of leaves that names it (entries are dropped after it, see `evict`) */
  last: number
  /** its payload's JSON value, once decoded (signatures.ts decodes it once for every use) */
  payload?: { value: unknown }
  /** `digestOk` is not known yet: a worker is hashing the JWS (precheck.ts) */
  pending?: boolean
  /** its payload's PII scan made by a worker (null: the payload is not JSON) */
  pii?: PiiPre | null
  /** a worker was asked for `pii` */
  piiAsked?: boolean
}

export class EvidenceCheck {
  private readonly entries = new Map<string, EvidenceEntry>()

  constructor(private readonly findings: Findings, private readonly file: EvidenceFile, private readonly scan: VettedScanner) {}

  has(digest: string): boolean {
    return this.file.has(digest)
  }

  /**
   * The entry for `digest`, read from the evidence now if no leaf of a live chunk named it yet.
   * `defer`: a worker will hash the JWS (signatures.ts), the entry stays `pending` until it answers;
   * any other caller gets the hash checked here if the answer is not in yet.
   */
  entry(digest: string, chunk: number, defer = false): EvidenceEntry {
    let e = this.entries.get(digest)
    if (e === undefined) {
      const jws = this.file.take(digest)
      if (defer && jws !== undefined) e = { digest, jws, digestOk: false, pending: true, last: chunk }
      else e = { digest, jws, digestOk: jws !== undefined && digestEquals(digestB64u(jws), digest), last: chunk }
      this.entries.set(digest, e)
    } else if (e.last < chunk) e.last = chunk
    if (e.pending === true && !defer) {
      e.pending = false
      e.digestOk = digestEquals(digestB64u(e.jws as string), digest)
    }
    return e
  }

  /** Entries named by no chunk after `chunk` are dropped (what is judged stays judged). */
  evict(chunk: number): void {
    for (const [d, e] of this.entries) if (e.last <= chunk) this.entries.delete(d)
  }

  /** The JWS for `digest` if the evidence holds it and it hashes to it; reports once per digest. */
  evidenceFor(digest: string, what: string, where: Where, chunk: number): string | undefined {
    const seen = this.file.flags(digest)
    if ((seen & DIGEST.judged) !== 0) return (seen & DIGEST.judgedOk) !== 0 ? this.entry(digest, chunk).jws : undefined
    const e = this.entry(digest, chunk)
    if (e.jws === undefined) this.findings.add('AUDIT_EVIDENCE_MISSING', `${what} ${digest}: no JWS in the evidence`, where)
    else if (!e.digestOk) this.findings.add('AUDIT_EVIDENCE_DIGEST_MISMATCH', `${what} ${digest}: the evidence JWS hashes to another digest`, where)
    this.file.setFlags(digest, e.jws !== undefined && e.digestOk ? DIGEST.judged | DIGEST.judgedOk : DIGEST.judged)
    if (e.jws !== undefined) this.scanPayload(digest, e.jws, where, e)
    return e.digestOk ? e.jws : undefined
  }

  /**
   * Evidence payloads are scanned too. The purpose and basis a leaf already carries (and was
   * scanned for) are not reported a second time as suspect text; identifiers always are.
   */
  private scanPayload(digest: string, jws: string, where: Where, e?: EvidenceEntry): void {
    if (!this.file.markScanned(digest)) return
    const pre = e?.pii
    if (pre === null) return
    if (pre !== undefined) {
      this.scan.scanKnown(pre, () => (e?.payload !== undefined ? e.payload.value : unverifiedPayload(jws)), PAYLOAD_FREE_TEXT, () => `evidence ${digest} payload`, () => where)
      return
    }
    const payload = e?.payload !== undefined ? e.payload.value : unverifiedPayload(jws)
    if (payload !== undefined) this.scan.scan(payload, PAYLOAD_FREE_TEXT, () => `evidence ${digest} payload`, () => where)
  }

  /** After the last leaf: the evidence no leaf named is scanned too. */
  finish(): void {
    for (const { digest, jws } of this.file.unscanned()) {
      const xid = (unverifiedPayload(jws) as { xid?: unknown } | undefined)?.xid
      this.scanPayload(digest, jws, typeof xid === 'string' && SAFE_XID.test(xid) ? { xid } : {})
    }
    this.file.close()
  }

  get count(): number {
    return this.file.size
  }

  /** What the audit settled about `digest` (DIGEST flags), kept after its entry is dropped. */
  flags(digest: string): number {
    return this.file.flags(digest)
  }

  /** Settles DIGEST flags of a digest `evidenceFor` judged. */
  setFlags(digest: string, f: number): void {
    this.file.setFlags(digest, f)
  }
}
