/**
 * Evidence store: what an auditor needs beyond the PII-free log (DESIGN.md "The log").
 *
 * - The signed JWS of every exchange message, stored under the log index of the record that names
 *   its SHA-256 digest (base64url, as the response's `reqDigest`). Kept forever: signatures stay
 *   verifiable and hold no readable PII.
 * - The SD-JWT-style disclosures of a `plain` exchange, which DO hold personal data: sealed with
 *   AES-256-GCM under the node's 32-byte evidence key (random 96-bit nonce per row, the xid as
 *   additional authenticated data so a row cannot be moved to another exchange), and purged when
 *   their retention period ends. Stored under the log index of the exchange's request record.
 *
 * Storage shares the log's SQLite file and its single writer (see log-writer.ts), so evidence
 * writes go through the same group commit: `sealDisclosures`/`jwsRecord` build rows that the
 * exchange node passes to `SqliteLogStore.appendWithEvidence` together with its log leaves, making
 * leaves and evidence durable in one transaction before the answer leaves the node. Evidence never
 * exists without the record that names it, so there is no stand-alone write.
 *
 * JavaScript cannot zeroize the key or plaintext buffers; keep the evidence key in a KeyObject
 * source you control and do not log this module's inputs.
 */
import { createCipheriv, createDecipheriv, hash, randomBytes } from 'node:crypto'
import type { Statement } from 'better-sqlite3'
import { VnError } from '../errors.js'
import { COMPACT_JWS_RE, DIGEST_RE } from '../protocol/vocabulary.js'
import type { EvidenceWrite, SqliteLogStore } from './store.js'

const NONCE_BYTES = 12
const TAG_BYTES = 16
const XID_RE = /^[\x21-\x7e]{1,128}$/

const invalid = (detail: string): never => {
  throw new VnError('VN_ERR_EVIDENCE_INVALID', detail)
}

/**
 * SHA-256 of a compact JWS, base64url without padding: the `reqDigest`/`respDigest` of the protocol.
 * A compact JWS is ASCII, so its UTF-8 bytes are its ASCII bytes.
 */
export function jwsDigest(jws: string): string {
  return hash('sha256', jws, 'base64url')
}

/**
 * Random nonces drawn 256 at a time: one `randomBytes` call costs as much as the AES-GCM seal
 * itself. Each nonce is still 96 fresh random bits used once (the pool is never reused), so the
 * random-nonce bound of NIST SP 800-38D §8.3 applies unchanged.
 */
const noncePool = { bytes: new Uint8Array(0), used: 0 }
function freshNonce(): Uint8Array {
  if (noncePool.used + NONCE_BYTES > noncePool.bytes.length) {
    noncePool.bytes = new Uint8Array(randomBytes(NONCE_BYTES * 256))
    noncePool.used = 0
  }
  // a copy, not a view: the row is cloned to the writer thread, which would copy the whole pool
  const nonce = noncePool.bytes.slice(noncePool.used, noncePool.used + NONCE_BYTES)
  noncePool.bytes.fill(0, noncePool.used, noncePool.used + NONCE_BYTES)
  noncePool.used += NONCE_BYTES
  return nonce
}

function checkXid(xid: string): void {
  if (typeof xid !== 'string' || !XID_RE.test(xid)) invalid('xid: must be 1-128 printable ASCII characters')
}

function checkDisclosures(xid: string, disclosures: readonly string[]): void {
  checkXid(xid)
  if (!Array.isArray(disclosures) || disclosures.some((d) => typeof d !== 'string')) invalid('disclosures: must be an array of strings')
}

function checkExpiry(expiresAtMs: number): void {
  if (!Number.isSafeInteger(expiresAtMs) || expiresAtMs < 0) invalid('expiresAtMs: must be a non-negative integer')
}

/** Seal disclosures: AES-256-GCM, random nonce, AAD = xid. Returns the ciphertext ‖ tag. */
export function encryptDisclosures(key: Uint8Array, xid: string, disclosures: readonly string[]): { nonce: Uint8Array; ciphertext: Uint8Array } {
  checkDisclosures(xid, disclosures)
  const nonce = freshNonce()
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES })
  cipher.setAAD(Buffer.from(xid, 'utf8'))
  const ct = Buffer.concat([cipher.update(JSON.stringify(disclosures), 'utf8'), cipher.final(), cipher.getAuthTag()])
  return { nonce, ciphertext: new Uint8Array(ct) }
}

/** Open sealed disclosures; any change to nonce, ciphertext, tag or xid fails with VN_ERR_EVIDENCE_CORRUPT. */
export function decryptDisclosures(key: Uint8Array, xid: string, nonce: Uint8Array, ciphertext: Uint8Array): string[] {
  if (nonce.length !== NONCE_BYTES || ciphertext.length < TAG_BYTES) throw new VnError('VN_ERR_EVIDENCE_CORRUPT', 'disclosures: stored row has the wrong shape')
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES })
    decipher.setAAD(Buffer.from(xid, 'utf8'))
    decipher.setAuthTag(ciphertext.subarray(ciphertext.length - TAG_BYTES))
    const pt = Buffer.concat([decipher.update(ciphertext.subarray(0, ciphertext.length - TAG_BYTES)), decipher.final()])
    const v: unknown = JSON.parse(pt.toString('utf8'))
    if (!Array.isArray(v) || v.some((d) => typeof d !== 'string')) throw new Error('not a string array')
    return v as string[]
  } catch (e) {
    throw new VnError('VN_ERR_EVIDENCE_CORRUPT', 'disclosures: authentication failed', { cause: e })
  }
}

export interface StoredJws {
  digest: string
  jws: string
}

export interface StoredDisclosures {
  xid: string
  disclosures: string[]
}

export interface EvidenceStore {
  /** The JWS stored with the log record at `leaf`. */
  getJws(leaf: number): Promise<StoredJws | undefined>
  /** The disclosures stored with the request record at `leaf`, unless expired as of `nowMs`. */
  getDisclosures(leaf: number, nowMs?: number): Promise<StoredDisclosures | undefined>
  purgeExpired(nowMs: number): Promise<number>
}

function checkLeaf(leaf: number): void {
  if (!Number.isSafeInteger(leaf) || leaf < 0) invalid('leaf: must be a non-negative integer')
}

export class SqliteEvidenceStore implements EvidenceStore {
  private readonly key: Uint8Array
  private readonly getJwsStmt: Statement
  private readonly getDiscStmt: Statement

  /** true when the log's writer seals disclosures with this store's key (see `disclosuresRecord`) */
  private readonly writerSeals: boolean

  /** `evidenceKey`: the node's 32-byte AES-256-GCM key for disclosures. */
  constructor(private readonly log: SqliteLogStore, evidenceKey: Uint8Array) {
    if (!(evidenceKey instanceof Uint8Array) || evidenceKey.length !== 32) throw new VnError('VN_ERR_CONFIG_INVALID', 'evidenceKey: must be 32 bytes')
    this.key = new Uint8Array(evidenceKey)
    this.writerSeals = log.sealsWith(this.key)
    this.getJwsStmt = log.database.prepare('SELECT digest, jws FROM evidence_jws WHERE leaf = ?')
    this.getDiscStmt = log.database.prepare('SELECT xid, nonce, ciphertext, expires_ms FROM evidence_disclosures WHERE leaf = ?')
  }

  /**
   * A JWS evidence row for `appendWithEvidence`, stored with the appended record at offset `leaf`
   * of that call; checks that `digest` is the JWS's SHA-256.
   */
  jwsRecord(leaf: number, digestB64url: string, jws: string): EvidenceWrite {
    if (typeof digestB64url !== 'string' || !DIGEST_RE.test(digestB64url)) invalid('digest: must be a base64url SHA-256 digest')
    if (typeof jws !== 'string' || !COMPACT_JWS_RE.test(jws)) invalid('jws: must be a compact JWS')
    if (jwsDigest(jws) !== digestB64url) invalid('digest: is not the SHA-256 of jws')
    return { kind: 'jws', leaf, digest: digestB64url, jws }
  }

  /** A sealed-disclosures evidence row for `appendWithEvidence` (with the record at offset `leaf`). */
  sealDisclosures(leaf: number, xid: string, disclosures: readonly string[], expiresAtMs: number): EvidenceWrite {
    checkExpiry(expiresAtMs)
    const { nonce, ciphertext } = encryptDisclosures(this.key, xid, disclosures) // checks xid and disclosures
    return { kind: 'disclosures', leaf, xid, nonce, ciphertext, expiresAtMs }
  }

  /**
   * The same row as `sealDisclosures`, with the same checks, but sealed on the log writer's thread
   * when the log store was opened with this store's key (`sealKey`); sealed here otherwise.
   */
  disclosuresRecord(leaf: number, xid: string, disclosures: readonly string[], expiresAtMs: number): EvidenceWrite {
    if (!this.writerSeals) return this.sealDisclosures(leaf, xid, disclosures, expiresAtMs)
    // The same checks as sealing here, before the row is queued for the writer to seal.
    checkExpiry(expiresAtMs)
    checkDisclosures(xid, disclosures)
    return { kind: 'disclosures', leaf, xid, disclosures, expiresAtMs }
  }

  async getJws(leaf: number): Promise<StoredJws | undefined> {
    checkLeaf(leaf)
    return this.getJwsStmt.get(leaf) as StoredJws | undefined
  }

  /** The disclosures kept with the record at `leaf`, or undefined if none are kept or they expired (as of `nowMs`). */
  async getDisclosures(leaf: number, nowMs: number = Date.now()): Promise<StoredDisclosures | undefined> {
    checkLeaf(leaf)
    const row = this.getDiscStmt.get(leaf) as { xid: string; nonce: Buffer; ciphertext: Buffer; expires_ms: number } | undefined
    if (row === undefined || row.expires_ms <= nowMs) return undefined
    return { xid: row.xid, disclosures: decryptDisclosures(this.key, row.xid, row.nonce, row.ciphertext) }
  }

  /** Delete disclosures whose retention ended at or before `nowMs`; returns how many. */
  purgeExpired(nowMs: number): Promise<number> {
    return this.log.purgeDisclosures(nowMs)
  }
}
