/** Strict base64url (RFC 4648 §5, no padding) as used by JWS (RFC 7515 §2). */
const B64URL = /^[A-Za-z0-9_-]*$/

export const b64u = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url')

/** Decodes strict unpadded base64url; returns undefined on any other character or an impossible length. */
export function fromB64u(s: string): Buffer | undefined {
  if (!B64URL.test(s) || s.length % 4 === 1) return undefined
  const out = Buffer.from(s, 'base64url')
  // Reject non-canonical trailing bits so one byte string has exactly one encoding.
  if (out.toString('base64url') !== s) return undefined
  return out
}
