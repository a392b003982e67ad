/**
 * Evidence: what an auditor needs beyond the PII-free log (docs/DESIGN.md "The log").
 *
 * - The signed JWS of every exchange message, kept with the log record that names its SHA-256
 *   digest (base64url, as the response's `reqDigest`). Kept forever: signatures stay verifiable
 *   and hold no readable PII.
 * - The SD-JWT-style disclosures of a `plain` exchange, which DO hold personal data: kept with the
 *   exchange's request record, sealed at rest with the evidence key (sealing.ts), and purged when
 *   their retention period ends.
 * - The bytes a peer answered with when the consumer refused them (a malformed JWS, a forged
 *   signature, an answer to another request): kept with the refused `response-in`, whose
 *   `respDigest` is their SHA-256. They may hold anything, personal data included, so they are
 *   sealed and purged like disclosures, never kept or exported in the clear with the JWS.
 *
 * `EvidenceRow` is the one shape evidence has from the exchange to the store: the exchange builds
 * rows, passes them with the records they belong to (`NodeLog.append`, then
 * `LogStore.appendMany`), and the store checks them once with `checkEvidenceRows` before anything
 * is queued, so a bad row is a 400 for its caller and never a failed commit that would fail the
 * store closed. Evidence never exists without the record that names it: there is no stand-alone
 * write, and a row rides in the same transaction as its record.
 */
import { VnError } from '../errors.js'
import { jwsDigest } from '../protocol/jws-digest.js'
import { COMPACT_JWS_RE, DIGEST_RE } from '../protocol/vocabulary.js'
import { digestB64u } from '../crypto/profile.js'

/**
 * Most bytes of a refused peer answer kept as evidence: the consumer reads no more of an exchange
 * answer than its reply limit, and that limit is below this.
 */
const MAX_RECEIVED_BYTES = 64 * 1024 * 1024

/** SHA-256 (base64url) of received bytes: the `respDigest` of a refused response-in. */
export const receivedDigest = (bytes: Uint8Array): string => digestB64u(bytes)

/**
 * One evidence row. `record` is the offset, among the records (leaves) of the same append, of the
 * record it belongs to: the store keeps it under that record's log index.
 */
export type EvidenceRow =
  /** the signed message whose digest the record names */
  | { readonly kind: 'jws'; readonly record: number; readonly digest: string; readonly jws: string }
  /** the disclosures of the exchange whose request the record is, kept until `expiresAt` (ms) */
  | { readonly kind: 'disclosures'; readonly record: number; readonly xid: string; readonly disclosures: readonly string[]; readonly expiresAt: number }
  /** the bytes of a peer answer the consumer refused (SHA-256 = `digest`), kept until `expiresAt` (ms) */
  | { readonly kind: 'received'; readonly record: number; readonly xid: string; readonly digest: string; readonly bytes: Uint8Array; readonly expiresAt: number }

/** A storage bound, not the protocol's xid grammar (vocabulary.ts XID_RE, checked by the exchange). */
const STORED_XID_RE = /^[\x21-\x7e]{1,128}$/

const invalid = (i: number, detail: string): never => {
  throw new VnError('VN_ERR_EVIDENCE_INVALID', `evidence[${i}]: ${detail}`)
}

/**
 * The one check of evidence rows, run by every store when rows reach it with `leafCount` leaves:
 * each row names a distinct leaf of this append (one row of each kind per leaf: a second would
 * violate the store's key inside the commit), a JWS row's digest is the SHA-256 of a compact JWS,
 * and disclosures are strings of an xid with an expiry, for a store that holds the evidence key.
 * @throws VN_ERR_EVIDENCE_INVALID naming the row (never its content)
 */
export function checkEvidenceRows(rows: readonly EvidenceRow[], leafCount: number, canSeal: boolean): void {
  if (!Array.isArray(rows)) throw new VnError('VN_ERR_EVIDENCE_INVALID', 'evidence: must be an array')
  if (rows.length === 0) return
  const taken = new Set<string>()
  rows.forEach((e: EvidenceRow | undefined, i) => {
    if (e === null || typeof e !== 'object') return invalid(i, 'not an evidence row')
    const slot = `${e.kind}:${e.record}`
    if (!Number.isSafeInteger(e.record) || e.record < 0 || e.record >= leafCount || taken.has(slot)) invalid(i, 'record must name a distinct record of this append')
    taken.add(slot)
    if (e.kind === 'jws') {
      if (typeof e.digest !== 'string' || !DIGEST_RE.test(e.digest)) invalid(i, 'digest must be a base64url SHA-256 digest')
      if (typeof e.jws !== 'string' || !COMPACT_JWS_RE.test(e.jws)) invalid(i, 'jws must be a compact JWS')
      if (jwsDigest(e.jws) !== e.digest) invalid(i, 'digest is not the SHA-256 of jws')
    } else if (e.kind === 'disclosures') {
      if (typeof e.xid !== 'string' || !STORED_XID_RE.test(e.xid)) invalid(i, 'xid must be 1-128 printable ASCII characters')
      if (!Array.isArray(e.disclosures) || e.disclosures.some((d: unknown) => typeof d !== 'string')) invalid(i, 'disclosures must be an array of strings')
      if (!Number.isSafeInteger(e.expiresAt) || e.expiresAt < 0) invalid(i, 'expiresAt must be a non-negative integer')
      if (!canSeal) invalid(i, 'disclosures need a store opened with the evidence key')
    } else if (e.kind === 'received') {
      if (typeof e.xid !== 'string' || !STORED_XID_RE.test(e.xid)) invalid(i, 'xid must be 1-128 printable ASCII characters')
      if (!(e.bytes instanceof Uint8Array) || e.bytes.length > MAX_RECEIVED_BYTES) invalid(i, `bytes must be a Uint8Array of at most ${MAX_RECEIVED_BYTES} bytes`)
      if (typeof e.digest !== 'string' || !DIGEST_RE.test(e.digest) || receivedDigest(e.bytes) !== e.digest) invalid(i, 'digest is not the digest of bytes')
      if (!Number.isSafeInteger(e.expiresAt) || e.expiresAt < 0) invalid(i, 'expiresAt must be a non-negative integer')
      if (!canSeal) invalid(i, 'received bytes need a store opened with the evidence key')
    } else {
      invalid(i, 'not an evidence row')
    }
  })
}
