/**
 * Who this node signs as: its message key, the key id the loaded manifest lists it under, and the
 * service catalog signed with it. A newer manifest may move the key id; `refresh` re-derives it and
 * re-signs the catalog when it does.
 *
 * A manifest may also revoke the node's own message key: drop it, or give it an `exp` (the
 * revocation's effective time, docs/OPERATIONS.md "Manifest revocation and expiry"). From that
 * instant the node signs nothing: `signer()` and `catalogJws()` throw VN_ERR_FED_OWN_KEY_REVOKED
 * (checked on every call, so a revocation with an effective time in the future takes effect on the
 * millisecond without waiting for a timer), and `status()` says why for readiness.
 */
import type { KeyObject } from 'node:crypto'
import type { ServiceConfig } from '../config/schema.js'
import { publicKeyToB64u } from '../crypto/keys.js'
import { VnError } from '../errors.js'
import type { Federation, KeyView } from '../federation/federation.js'
import { catalogOf, signCatalog } from '../exchange/catalog.js'
import type { Signer } from '../exchange/signer.js'

/**
 * When `publicKey` (of the key file `file`) is another member's key in `fed`: the config names the
 * wrong member, and the error says so (VN_ERR_CONFIG_INVALID naming the owner) instead of blaming
 * the key file. Undefined when no other member has it.
 */
export function wrongMemberError(fed: Federation, member: string, publicKey: string, file: string): VnError | undefined {
  const owner = fed.members().find((o) => o.id !== member && [...o.messageKeys.values(), ...o.logKeys.values()].some((k) => k.x === publicKey))
  if (owner === undefined) return undefined
  return new VnError('VN_ERR_CONFIG_INVALID', `member: the config says ${member}, but ${file} is a key of ${owner.id} in manifest seq ${fed.seq}; set "member": "${owner.id}" or use ${member}'s keys`)
}

/** The kid of `member`'s message key `publicKey` valid at `now` in the manifest, or VN_ERR_KEY_FILE. */
function findSigner(fed: Federation, member: string, publicKey: string, now: number): Signer['kid'] {
  const m = fed.member(member)
  for (const k of m.messageKeys.values()) {
    if (k.x === publicKey && now >= k.nbf && (k.exp === undefined || now < k.exp)) return `${member}#${k.kid}`
  }
  // The key is another member's: the config names the wrong member, the key file is fine.
  const wrong = wrongMemberError(fed, member, publicKey, 'keys/message.key')
  if (wrong !== undefined) throw wrong
  throw new VnError('VN_ERR_KEY_FILE', `keys/message.key is not a message key of ${member} valid now in manifest seq ${fed.seq}`)
}

export interface NodeIdentityOptions {
  self: string
  messageKey: KeyObject
  services: readonly ServiceConfig[]
  batchMax: number
  now: () => number
}

/** What readiness and the key-event record say about the node's own message key. */
export interface SigningStatus {
  /** false: the node signs nothing under the manifest it has loaded */
  ok: boolean
  /** the kid the manifest lists the key under (the last one it had when the manifest drops it) */
  kid: string
  /** the manifest seq this was judged under */
  seq: number
  /** the effective time of a revocation (the key's `exp`), when the manifest sets one */
  revokedAt?: number
  /** why the node does not sign (ok false), or the revocation to come */
  detail?: string
}

const iso = (ms: number): string => new Date(ms).toISOString()

export class NodeIdentity {
  readonly self: string
  readonly messageKey: KeyObject
  /** the message key's public half, base64url (named in key-event records) */
  readonly messagePublicKey: string
  private current: Signer
  /** the manifest entry of the key under the loaded manifest; undefined: not listed there */
  private entry: KeyView | undefined
  private seq: number
  private catalog: string

  /** Throws VN_ERR_KEY_FILE when `fed` lists no valid message key of `self` matching the key file. */
  constructor(private readonly o: NodeIdentityOptions, fed: Federation) {
    this.self = o.self
    this.messageKey = o.messageKey
    this.messagePublicKey = publicKeyToB64u(o.messageKey)
    this.current = { kid: findSigner(fed, o.self, this.messagePublicKey, o.now()), privateKey: o.messageKey }
    this.seq = fed.seq
    this.entry = this.entryIn(fed)
    this.catalog = this.signCatalog()
  }

  /**
   * The current signer (callers keep `() => identity.signer()`).
   * @throws VN_ERR_FED_OWN_KEY_REVOKED once the loaded manifest no longer allows the key
   */
  signer(): Signer {
    const s = this.status()
    if (!s.ok) throw new VnError('VN_ERR_FED_OWN_KEY_REVOKED', s.detail)
    return this.current
  }

  /** The signed catalog JWS. @throws VN_ERR_FED_OWN_KEY_REVOKED (a catalog signed by a revoked key is not served) */
  catalogJws(): string {
    this.signer()
    return this.catalog
  }

  /** The kid to name in key-event records: the listed one, or the last one when the manifest dropped the key. */
  kid(): string {
    return this.current.kid
  }

  /** Whether the node may sign now under the manifest it has loaded, and why not. */
  status(): SigningStatus {
    const now = this.o.now()
    const k = this.entry
    const base = { kid: this.current.kid, seq: this.seq }
    if (k === undefined) return { ...base, ok: false, detail: `message key ${this.current.kid} is not listed for ${this.self} in manifest seq ${this.seq} (revoked): this node signs nothing` }
    if (now < k.nbf) return { ...base, ok: false, detail: `message key ${this.current.kid} is not valid before ${iso(k.nbf)} in manifest seq ${this.seq}: this node signs nothing` }
    if (k.exp !== undefined && now >= k.exp) {
      return { ...base, ok: false, revokedAt: k.exp, detail: `message key ${this.current.kid} was revoked at ${iso(k.exp)} by manifest seq ${this.seq}: this node signs nothing` }
    }
    if (k.exp !== undefined) return { ...base, ok: true, revokedAt: k.exp, detail: `message key ${this.current.kid} is revoked at ${iso(k.exp)} (in ${Math.ceil((k.exp - now) / 1000)} s) by manifest seq ${this.seq}` }
    return { ...base, ok: true }
  }

  /**
   * Takes the key's entry from `fed`. Never throws: a manifest that revokes the key stops the node
   * signing (see `status`) rather than keeping the old signer. Re-signs the catalog when the kid moved.
   */
  refresh(fed: Federation): SigningStatus {
    this.seq = fed.seq
    this.entry = this.entryIn(fed)
    const kid = this.entry === undefined ? this.current.kid : `${this.self}#${this.entry.kid}`
    if (kid !== this.current.kid) {
      this.current = { kid, privateKey: this.o.messageKey }
      if (this.status().ok) this.catalog = this.signCatalog()
    }
    return this.status()
  }

  /** The entry listing this node's key in `fed` (the one valid now when several list it). */
  private entryIn(fed: Federation): KeyView | undefined {
    if (!fed.has(this.self)) return undefined
    const now = this.o.now()
    let found: KeyView | undefined
    for (const k of fed.member(this.self).messageKeys.values()) {
      if (k.x !== this.messagePublicKey) continue
      if (now >= k.nbf && (k.exp === undefined || now < k.exp)) return k
      found ??= k
    }
    return found
  }

  private signCatalog(): string {
    return signCatalog(catalogOf(this.self, this.o.services, this.o.batchMax, this.o.now()), this.current)
  }
}
