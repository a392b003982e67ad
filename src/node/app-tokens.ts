/**
 * The local API's per-application tokens: the config keeps only their SHA-256 (`tokenSha256`) or
 * SM3 (`tokenSm3`, under the `sm` profile), compared in constant time. Returns the application's
 * name, or VN_ERR_LOCAL_UNAUTHORIZED.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import { VnError } from '../errors.js'

export function appTokenAuthenticator(apps: readonly { name: string; tokenSha256?: string | undefined; tokenSm3?: string | undefined }[]): (token: string | undefined) => string {
  const tokens = apps.map((a) => ({ name: a.name, alg: a.tokenSm3 === undefined ? 'sha256' : 'sm3', hash: Buffer.from(a.tokenSm3 ?? a.tokenSha256 ?? '', 'hex') }))
  return (token) => {
    if (token !== undefined && token.length > 0 && token.length < 512) {
      const digests = new Map<string, Buffer>()
      for (const a of tokens) {
        let h = digests.get(a.alg)
        if (h === undefined) digests.set(a.alg, (h = createHash(a.alg).update(token).digest()))
        if (h.length === a.hash.length && timingSafeEqual(h, a.hash)) return a.name
      }
    }
    throw new VnError('VN_ERR_LOCAL_UNAUTHORIZED')
  }
}

/** The role of each configured application (`operator` unless the config says `auditor`). */
export function appRoles(apps: readonly { name: string; role?: 'operator' | 'auditor' | undefined }[]): (name: string) => 'operator' | 'auditor' {
  const roles = new Map(apps.map((a) => [a.name, a.role ?? 'operator']))
  return (name) => roles.get(name) ?? 'auditor'
}
