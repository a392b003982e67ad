/**
 * The digest by which log records and signed messages name a compact JWS (RFC 7515 §7.1): SHA-256
 * (SM3 under the `sm` profile, crypto/profile.ts)
 * of its ASCII bytes, base64url without padding (RFC 4648 §5). This is the protocol's
 * `reqDigest`/`respDigest`; the exchange computes it and the log's evidence rows are keyed by it.
 */
import { digestB64u } from '../crypto/profile.js'

/** SHA-256 of a compact JWS, base64url without padding. A compact JWS is ASCII, so its UTF-8 bytes are its ASCII bytes. */
export function jwsDigest(jws: string): string {
  return digestB64u(jws)
}
