/**
 * Who this node signs as: its message key, the key id the current manifest lists it under, and the
 * service catalog signed with it. A newer manifest may move the key id; `refresh` re-derives it and
 * re-signs the catalog when it does.
 */
import type { KeyObject } from 'node:crypto'
import type { ServiceConfig } from '../config/schema.js'
import { publicKeyToB64u } from '../crypto/keys.js'
import { VnError } from '../errors.js'
import type { Federation } from '../federation/federation.js'
import { catalogOf, signCatalog } from '../exchange/catalog.js'
import type { Signer } from '../exchange/signer.js'

/** The kid of `member`'s message key `publicKey` valid at `now` in the manifest, or VN_ERR_KEY_FILE. */
export function findSigner(fed: Federation, member: string, publicKey: string, now: number): Signer['kid'] {
  const m = fed.member(member)
  for (const k of m.messageKeys.values()) {
    if (k.x === publicKey && now >= k.nbf && (k.exp === undefined || now < k.exp)) return `${member}#${k.kid}`
  }
  throw new VnError('VN_ERR_KEY_FILE', `keys/message.key is not a message key of ${member} valid now in manifest seq ${fed.seq}`)
}

export interface NodeIdentityOptions {
  self: string
  messageKey: KeyObject
  services: readonly ServiceConfig[]
  batchMax: number
  now: () => number
}

export class NodeIdentity {
  readonly self: string
  readonly messageKey: KeyObject
  /** the message key's public half, base64url (named in key-event records) */
  readonly messagePublicKey: string
  private current: Signer
  private catalog: string

  /** Throws VN_ERR_KEY_FILE when `fed` lists no valid message key of `self` matching the key file. */
  constructor(private readonly o: NodeIdentityOptions, fed: Federation) {
    this.self = o.self
    this.messageKey = o.messageKey
    this.messagePublicKey = publicKeyToB64u(o.messageKey)
    this.current = { kid: findSigner(fed, o.self, this.messagePublicKey, o.now()), privateKey: o.messageKey }
    this.catalog = this.signCatalog()
  }

  /** The current signer (a function's worth: callers keep `() => identity.signer()`). */
  signer(): Signer {
    return this.current
  }

  /** The signed catalog JWS. */
  catalogJws(): string {
    return this.catalog
  }

  /** Re-derives the key id under `fed`; re-signs the catalog when it changed. */
  refresh(fed: Federation): void {
    const kid = findSigner(fed, this.self, this.messagePublicKey, this.o.now())
    if (kid === this.current.kid) return
    this.current = { kid, privateKey: this.o.messageKey }
    this.catalog = this.signCatalog()
  }

  private signCatalog(): string {
    return signCatalog(catalogOf(this.self, this.o.services, this.o.batchMax, this.o.now()), this.current)
  }
}
