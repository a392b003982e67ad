/** Strict base64url (RFC 4648 §5, no padding) as used by JWS (RFC 7515 §2). */
const B64URL = /^[A-Za-z0-9_-]*$/

/** The 6-bit value of each base64url character, by char code. */
const SEXTET = new Uint8Array(128)
for (const [i, c] of [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'].entries()) SEXTET[c.charCodeAt(0)] = i

export const b64u = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url')

/** Decodes strict unpadded base64url; returns undefined on any other character or an impossible length. */
export function fromB64u(s: string): Buffer | undefined {
  if (!B64URL.test(s) || s.length % 4 === 1) return undefined
  // Reject non-canonical trailing bits so one byte string has exactly one encoding: the last
  // character of a 2- or 3-character group carries 4 or 2 bits that no byte uses, and they must
  // be zero (the same test as re-encoding and comparing, without a second string).
  const r = s.length % 4
  if (r !== 0 && (SEXTET[s.charCodeAt(s.length - 1)] as number) & (r === 2 ? 0x0f : 0x03)) return undefined
  return Buffer.from(s, 'base64url')
}
