/**
 * The digest by which log records and signed messages name a compact JWS (RFC 7515 §7.1): SHA-256
 * of its ASCII bytes, base64url without padding (RFC 4648 §5). This is the protocol's
 * `reqDigest`/`respDigest`; the exchange computes it and the log's evidence rows are keyed by it.
 */
import { hash } from 'node:crypto'

/** SHA-256 of a compact JWS, base64url without padding. A compact JWS is ASCII, so its UTF-8 bytes are its ASCII bytes. */
export function jwsDigest(jws: string): string {
  return hash('sha256', jws, 'base64url')
}
