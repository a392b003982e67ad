/**
 * Authenticating a federation member on a GET (log entries, receipts): the caller signs
 * `{ v, iss, aud, iat, method, path }` (typ `vn-get+jws`) with its message key and sends it as
 * `Authorization: VN-JWS <compact JWS>`. Valid for one path, one audience and the skew window.
 */
import { z } from 'zod'
import { VnError } from '../errors.js'
import { signJwsJson, verifyJwsJson, type KeyResolver } from '../crypto/jws.js'
import { memberIdSchema as memberId } from '../protocol/vocabulary.js'
import type { KeyObject } from 'node:crypto'
import { formatZodIssues } from '../config/load.js'

const GET_TYP = 'vn-get+jws'
const GetClaimsSchema = z.strictObject({
  v: z.literal(1),
  iss: memberId,
  aud: memberId,
  iat: z.number().int(),
  method: z.literal('GET'),
  path: z.string().min(1).max(2048),
})

/** The node's message key and its kid (the exchange's Signer, by shape: peers/ sits below exchange/). */
export interface GetRequestSigner {
  kid: string
  privateKey: KeyObject
}

export function signGetRequest(signer: GetRequestSigner, iss: string, aud: string, path: string, now: number): string {
  return `VN-JWS ${signJwsJson({ v: 1, iss, aud, iat: now, method: 'GET', path }, signer.privateKey, signer.kid, GET_TYP)}`
}

/** Returns the authenticated member id, or throws a VN_ERR_JWS_* / VN_ERR_LOCAL_UNAUTHORIZED error. */
export function authenticateMember(header: unknown, self: string, path: string, resolver: KeyResolver, now: number, skewMs: number): string {
  if (typeof header !== 'string' || !header.startsWith('VN-JWS ')) throw new VnError('VN_ERR_LOCAL_UNAUTHORIZED', 'send Authorization: VN-JWS <signed request>')
  const v = verifyJwsJson(header.slice(7), resolver, GET_TYP)
  const c = GetClaimsSchema.safeParse(v.claims)
  if (!c.success) throw new VnError('VN_ERR_REQ_INVALID', formatZodIssues(c.error))
  if (!v.kid.startsWith(`${c.data.iss}#`)) throw new VnError('VN_ERR_EXCH_ISSUER_MISMATCH', 'iss does not match the signing key')
  if (c.data.aud !== self) throw new VnError('VN_ERR_EXCH_WRONG_AUDIENCE', `aud is not ${self}`)
  if (c.data.path !== path) throw new VnError('VN_ERR_REQ_INVALID', 'signed path does not match the request')
  if (Math.abs(now - c.data.iat) > skewMs) throw new VnError('VN_ERR_EXCH_STALE', 'iat outside the allowed skew')
  return c.data.iss
}
