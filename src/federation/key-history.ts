/**
 * Key history: which member keys were valid at which instant, according to the sequence of
 * federation manifests the authority published (docs/DESIGN.md "Auditor toolkit": every signature is
 * checked "against the manifest's key history").
 *
 * The manifest in force at instant T is the one with the highest `seq` whose `iat <= T`, provided
 * `T < exp` of that manifest. A manifest takes effect at its `iat` for the auditor even if a node
 * loaded it later: a node that accepted a key after its revocation was published is exactly what
 * an audit must report. (The auditor then asks which manifest that node had loaded, from its own
 * key events, to tell the propagation window, a warning, from a key no loaded manifest allowed.) Between two manifests nothing else is in force; after the newest one
 * expires, nothing is (a node must refuse to answer then, docs/DESIGN.md `/readyz`).
 */
import type { KeyObject } from 'node:crypto'
import type { JwsHeader, KeyResolver } from '../crypto/jws.js'
import { VnError, type ErrorCode } from '../errors.js'
import { Federation, assertKeyValidAt, splitKid, type KeyView } from './federation.js'

export type KeyCheck =
  | { valid: true; key: KeyObject; seq: number; manifestHash: string }
  | {
      valid: false
      code: Extract<ErrorCode, 'VN_ERR_JWS_UNKNOWN_KID' | 'VN_ERR_JWS_KEY_NOT_VALID' | 'VN_ERR_FED_MANIFEST_EXPIRED'>
      reason: string
      /** the manifest in force, when there was one */
      seq?: number
    }

export class KeyHistory {
  /** sorted by seq (and so by iat) */
  readonly manifests: readonly Federation[]

  /**
   * Verifies every manifest against the trust anchor (expired ones are fine: this is history) and
   * orders them by seq. @throws VN_ERR_FED_MANIFEST_INVALID
   */
  static fromJws(jwsList: readonly string[], rootPublicKey: KeyObject): KeyHistory {
    return new KeyHistory(jwsList.map((j) => Federation.fromJws(j, rootPublicKey, { now: 0, allowExpired: true })))
  }

  /**
   * `manifests` in any order; duplicates of the same document are dropped. Two different manifests
   * with one seq, or a higher seq issued before a lower one, are refused.
   * @throws VN_ERR_FED_MANIFEST_INVALID
   */
  constructor(manifests: readonly Federation[]) {
    const bySeq = new Map<number, Federation>()
    for (const f of manifests) {
      const prev = bySeq.get(f.seq)
      if (prev !== undefined && prev.hash !== f.hash) {
        throw new VnError('VN_ERR_FED_MANIFEST_INVALID', `two different manifests with seq ${f.seq}`)
      }
      bySeq.set(f.seq, f)
    }
    const sorted = [...bySeq.values()].sort((a, b) => a.seq - b.seq)
    for (let i = 1; i < sorted.length; i++) {
      const a = sorted[i - 1]!
      const b = sorted[i]!
      if (b.iat < a.iat) throw new VnError('VN_ERR_FED_MANIFEST_INVALID', `seq ${b.seq} was issued before seq ${a.seq}`)
      if (b.name !== a.name) throw new VnError('VN_ERR_FED_MANIFEST_INVALID', `seq ${b.seq} names another federation`)
    }
    this.manifests = sorted
  }

  /** The manifest in force at `at`, or undefined when none is (before the first, or expired). */
  inForce(at: number): Federation | undefined {
    // Binary search for the last manifest with iat <= at; iat is non-decreasing in seq order.
    let lo = 0
    let hi = this.manifests.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.manifests[mid]!.iat <= at) lo = mid + 1
      else hi = mid
    }
    const f = this.manifests[lo - 1]
    return f === undefined || at >= f.exp ? undefined : f
  }

  /** Was message key `<member>#<keyId>` valid at `at`? */
  messageKeyAt(member: string, keyId: string, at: number): KeyCheck {
    return this.#check('messageKeys', member, keyId, at)
  }

  /** Was log key `<member>#<keyId>` valid at `at`? */
  logKeyAt(member: string, keyId: string, at: number): KeyCheck {
    return this.#check('logKeys', member, keyId, at)
  }

  /**
   * A verifyJws resolver for a signature made at `at` (the signed `iat`): throws the check's code
   * (VN_ERR_JWS_UNKNOWN_KID, VN_ERR_JWS_KEY_NOT_VALID, VN_ERR_FED_MANIFEST_EXPIRED).
   */
  messageKeyResolver(at: number, expectedMember?: string): KeyResolver {
    return (kid: string, _header: JwsHeader) => {
      const parts = splitKid(kid)
      if (parts === undefined) throw new VnError('VN_ERR_JWS_UNKNOWN_KID', `kid ${JSON.stringify(kid.slice(0, 100))} is not <member>#<keyid>`)
      if (expectedMember !== undefined && parts.member !== expectedMember) {
        throw new VnError('VN_ERR_JWS_UNKNOWN_KID', `kid ${JSON.stringify(kid.slice(0, 100))} does not belong to member ${expectedMember}`)
      }
      const c = this.messageKeyAt(parts.member, parts.keyId, at)
      if (!c.valid) throw new VnError(c.code, c.reason)
      return c.key
    }
  }

  #check(list: 'messageKeys' | 'logKeys', member: string, keyId: string, at: number): KeyCheck {
    const label = `kid ${JSON.stringify(`${member}#${keyId}`.slice(0, 100))}`
    const f = this.inForce(at)
    if (f === undefined) {
      return { valid: false, code: 'VN_ERR_FED_MANIFEST_EXPIRED', reason: `no manifest in force at ${isoOrNumber(at)}` }
    }
    const m = f.has(member) ? f.member(member) : undefined
    const k: KeyView | undefined = m?.[list].get(keyId)
    if (k === undefined) {
      return { valid: false, code: 'VN_ERR_JWS_UNKNOWN_KID', reason: `${label} is not listed in manifest seq ${f.seq} in force at ${isoOrNumber(at)}`, seq: f.seq }
    }
    try {
      assertKeyValidAt(k, at, label)
    } catch (e) {
      return { valid: false, code: 'VN_ERR_JWS_KEY_NOT_VALID', reason: (e as VnError).detail ?? label, seq: f.seq }
    }
    return { valid: true, key: k.key, seq: f.seq, manifestHash: f.hash }
  }
}

function isoOrNumber(at: number): string {
  const d = new Date(at)
  return Number.isNaN(d.getTime()) ? String(at) : d.toISOString()
}
