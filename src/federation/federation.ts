/**
 * The trust view a node builds from a verified federation manifest (docs/DESIGN.md "Keys and the
 * federation"): who the members are, where their nodes listen, and which keys they may sign with
 * at which instant.
 *
 * Public keys are parsed into KeyObjects once, when the view is built, so the exchange path does a
 * map lookup and a window check per request and never parses key material.
 *
 * A signature is accepted only from a key the current manifest lists for that member and for that
 * instant. Revocation is publishing a newer manifest without the key; `FederationHolder` swaps the
 * view when such a manifest is loaded and keeps the old view when the new file is bad.
 */
import type { KeyObject } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import type { JwsHeader, KeyResolver } from '../crypto/jws.js'
import { publicKeyFromB64u } from '../crypto/keys.js'
import { digestB64u, useProfile, type ProfileName } from '../crypto/profile.js'
import { VnError, isVnError } from '../errors.js'
import { canonicalJson } from '../protocol/canonical-json.js'
import { profileOf, verifyManifest, type Manifest, type ManifestKey, type MemberRole, type VerifyManifestOptions } from './manifest.js'

/** One listed key, parsed. The window is half-open: valid for `nbf <= at < exp`. */
export interface KeyView {
  readonly kid: string
  readonly key: KeyObject
  /** base64url raw public key, as listed */
  readonly x: string
  readonly nbf: number
  readonly exp: number | undefined
}

export interface MemberView {
  readonly id: string
  readonly name: string
  readonly uscc: string
  readonly role: MemberRole
  readonly endpoint: string | undefined
  readonly tlsFingerprint: string | undefined
  /** the SPKI SHA-256 pins (hex) of the TLS keys this member may present; empty: none listed */
  readonly tlsPins: ReadonlySet<string>
  readonly messageKeys: ReadonlyMap<string, KeyView>
  readonly logKeys: ReadonlyMap<string, KeyView>
}

const NO_PINS: ReadonlySet<string> = new Set()

/** The profile's digest (SHA-256 or SM3) of the manifest's compact JWS text, base64url: the manifest's identity in logs. */
export const manifestHash = (jws: string): string => digestB64u(Buffer.from(jws, 'ascii'))

/** Splits `<member>#<keyid>`; member ids cannot contain `#`, so the first one separates. */
export function splitKid(kid: string): { member: string; keyId: string } | undefined {
  const i = kid.indexOf('#')
  if (i <= 0 || i === kid.length - 1) return undefined
  return { member: kid.slice(0, i), keyId: kid.slice(i + 1) }
}

/** Throws VN_ERR_JWS_KEY_NOT_VALID unless `at` is inside the key's `[nbf, exp)`. */
export function assertKeyValidAt(k: KeyView, at: number, label: string): void {
  if (at < k.nbf) throw new VnError('VN_ERR_JWS_KEY_NOT_VALID', `${label} is not valid before ${new Date(k.nbf).toISOString()}`)
  if (k.exp !== undefined && at >= k.exp) throw new VnError('VN_ERR_JWS_KEY_NOT_VALID', `${label} expired at ${new Date(k.exp).toISOString()}`)
}

function parseKeys(memberId: string, list: string, keys: readonly ManifestKey[]): Map<string, KeyView> {
  const out = new Map<string, KeyView>()
  keys.forEach((k, i) => {
    let key: KeyObject
    try {
      key = publicKeyFromB64u(k.x)
    } catch (e) {
      throw new VnError('VN_ERR_FED_MANIFEST_INVALID', `members[${memberId}].${list}[${i}].x: not an Ed25519 or SM2 public key`, { cause: e })
    }
    out.set(k.kid, { kid: k.kid, key, x: k.x, nbf: k.nbf, exp: k.exp })
  })
  return out
}

export class Federation {
  readonly manifest: Manifest
  readonly jws: string
  /** the profile's digest of the manifest JWS, base64url */
  readonly hash: string
  /** the federation's crypto profile (src/crypto/profile.ts) */
  readonly profile: ProfileName
  readonly name: string
  readonly seq: number
  readonly iat: number
  readonly exp: number
  readonly #members: ReadonlyMap<string, MemberView>
  /** TLS pin → member id (a pin belongs to one member, the schema checks it) */
  readonly #byTlsPin: ReadonlyMap<string, string>
  #pinsByOrigin: Map<string, Set<string>> | undefined

  /** Verifies `jws` against the trust anchor (see verifyManifest) and builds the view. */
  static fromJws(jws: string, rootPublicKey: KeyObject, opts: VerifyManifestOptions): Federation {
    return new Federation(verifyManifest(jws, rootPublicKey, opts), jws)
  }

  /** `manifest` must be the verified payload of `jws`; use `fromJws` unless you just verified it. */
  constructor(manifest: Manifest, jws: string) {
    this.manifest = manifest
    this.jws = jws
    this.profile = profileOf(manifest)
    // The manifest chooses the process's profile (one process serves one federation), before any
    // digest of it is made.
    useProfile(this.profile)
    this.hash = manifestHash(jws)
    this.name = manifest.federation
    this.seq = manifest.seq
    this.iat = manifest.iat
    this.exp = manifest.exp
    const members = new Map<string, MemberView>()
    const byTlsPin = new Map<string, string>()
    for (const m of manifest.members) {
      for (const pin of m.tlsPins ?? []) byTlsPin.set(pin, m.id)
      members.set(m.id, {
        id: m.id,
        name: m.name,
        uscc: m.uscc,
        role: m.role,
        endpoint: m.endpoint,
        tlsFingerprint: m.tlsFingerprint,
        tlsPins: new Set(m.tlsPins ?? []),
        messageKeys: parseKeys(m.id, 'messageKeys', m.messageKeys),
        logKeys: parseKeys(m.id, 'logKeys', m.logKeys),
      })
    }
    this.#members = members
    this.#byTlsPin = byTlsPin
  }

  /** The member whose TLS key has this SPKI pin, or undefined. */
  memberByTlsPin(pin: string): string | undefined {
    return this.#byTlsPin.get(pin)
  }

  /**
   * The TLS pins of the member(s) whose endpoint has this origin (`https://host:port`): what a
   * connection to that origin must present. Empty when none lists one.
   */
  tlsPinsForOrigin(origin: string): ReadonlySet<string> {
    if (this.#pinsByOrigin === undefined) {
      // built once per manifest, on first use: the peer client asks at every request
      const byOrigin = new Map<string, Set<string>>()
      for (const m of this.#members.values()) {
        if (m.endpoint === undefined) continue
        let o: string
        try {
          o = new URL(m.endpoint).origin
        } catch {
          continue
        }
        const set = byOrigin.get(o) ?? new Set<string>()
        for (const p of m.tlsPins) set.add(p)
        byOrigin.set(o, set)
      }
      this.#pinsByOrigin = byOrigin
    }
    return this.#pinsByOrigin.get(origin) ?? NO_PINS
  }

  has(id: string): boolean {
    return this.#members.has(id)
  }

  /** @throws VN_ERR_FED_UNKNOWN_MEMBER */
  member(id: string): MemberView {
    const m = this.#members.get(id)
    if (m === undefined) throw new VnError('VN_ERR_FED_UNKNOWN_MEMBER', `member ${JSON.stringify(id.slice(0, 64))}`)
    return m
  }

  members(): MemberView[] {
    return [...this.#members.values()]
  }

  departments(): MemberView[] {
    return this.members().filter((m) => m.role === 'department')
  }

  /** The member's node URL. @throws VN_ERR_FED_UNKNOWN_MEMBER, VN_ERR_PEER_UNKNOWN (an auditor runs no node) */
  endpoint(id: string): string {
    const m = this.member(id)
    if (m.endpoint === undefined) throw new VnError('VN_ERR_PEER_UNKNOWN', `member ${id} has role ${m.role} and runs no node`)
    return m.endpoint
  }

  /** Throws VN_ERR_FED_MANIFEST_EXPIRED when the manifest is no longer in force at `now`. */
  assertFresh(now: number): void {
    if (now >= this.exp) throw new VnError('VN_ERR_FED_MANIFEST_EXPIRED', `seq ${this.seq} expired at ${new Date(this.exp).toISOString()}`)
  }

  /**
   * A resolver for verifyJws: `kid` is `<member>#<keyid>` and must name a message key valid at
   * `at`. With `expectedMember`, a key of any other member is unknown (the signer must be the
   * issuer). @throws VN_ERR_JWS_UNKNOWN_KID, VN_ERR_JWS_KEY_NOT_VALID
   */
  messageKeyResolver(at: number, expectedMember?: string): KeyResolver {
    return (kid: string, _header: JwsHeader) => this.#resolve('messageKeys', kid, at, expectedMember).key
  }

  /** The same for log keys (checkpoint signatures). */
  logKeyResolver(at: number, expectedMember?: string): KeyResolver {
    return (kid: string, _header: JwsHeader) => this.#resolve('logKeys', kid, at, expectedMember).key
  }

  /** A message key by its full kid, after the same checks as the resolver. */
  messageKey(kid: string, at: number, expectedMember?: string): KeyView {
    return this.#resolve('messageKeys', kid, at, expectedMember)
  }

  /**
   * A member's log public key: the one named `kid`, or without `kid` the listed log key with the
   * latest `nbf` (the current one after a rotation). No validity check: checkpoints are verified
   * against their own timestamps by the caller (see `logKeys`).
   * @throws VN_ERR_FED_UNKNOWN_MEMBER, VN_ERR_JWS_UNKNOWN_KID
   */
  logPublicKey(member: string, kid?: string): KeyObject {
    const m = this.member(member)
    if (kid !== undefined) {
      const k = m.logKeys.get(kid)
      if (k === undefined) throw new VnError('VN_ERR_JWS_UNKNOWN_KID', `log key ${member}#${kid.slice(0, 64)} is not listed`)
      return k.key
    }
    let best: KeyView | undefined
    for (const k of m.logKeys.values()) if (best === undefined || k.nbf > best.nbf) best = k
    if (best === undefined) throw new VnError('VN_ERR_JWS_UNKNOWN_KID', `member ${member} lists no log key`)
    return best.key
  }

  logKeys(member: string): KeyView[] {
    return [...this.member(member).logKeys.values()]
  }

  #resolve(list: 'messageKeys' | 'logKeys', kid: string, at: number, expectedMember: string | undefined): KeyView {
    const parts = splitKid(kid)
    // Hot path: the label is only built when something is wrong.
    const shown = (): string => JSON.stringify(kid.slice(0, 100))
    if (parts === undefined) throw new VnError('VN_ERR_JWS_UNKNOWN_KID', `kid ${shown()} is not <member>#<keyid>`)
    if (expectedMember !== undefined && parts.member !== expectedMember) {
      throw new VnError('VN_ERR_JWS_UNKNOWN_KID', `kid ${shown()} does not belong to member ${expectedMember}`)
    }
    const m = this.#members.get(parts.member)
    if (m === undefined) throw new VnError('VN_ERR_JWS_UNKNOWN_KID', `kid ${shown()}: member not in manifest seq ${this.seq}`)
    const k = m[list].get(parts.keyId)
    if (k === undefined) throw new VnError('VN_ERR_JWS_UNKNOWN_KID', `kid ${shown()} is not listed in manifest seq ${this.seq}`)
    if (at < k.nbf || (k.exp !== undefined && at >= k.exp)) assertKeyValidAt(k, at, `kid ${shown()}`)
    return k
  }
}

export type LoadResult =
  | { ok: true; federation: Federation; changed: boolean }
  | { ok: false; error: VnError; federation: Federation | undefined }

/**
 * Holds the manifest in force and swaps it when a newer one is loaded. A new manifest is accepted
 * only with a valid root signature, not expired, and `seq` at least the current one; the same `seq`
 * is accepted only for the identical document (two different manifests with one seq mean the
 * authority's key or process is broken). On any failure the current view stays.
 */
export class FederationHolder {
  readonly #root: KeyObject
  /** the federation root public key this holder trusts (the console's audits use it too) */
  get rootKey(): KeyObject {
    return this.#root
  }
  #current: Federation | undefined

  constructor(rootPublicKey: KeyObject, initial?: Federation) {
    this.#root = rootPublicKey
    this.#current = initial
  }

  /** Loads the first manifest from a file; throws instead of returning the error. */
  static async open(path: string, rootPublicKey: KeyObject, now: number = Date.now()): Promise<FederationHolder> {
    const h = new FederationHolder(rootPublicKey)
    const r = await h.load(path, now)
    if (!r.ok) throw r.error
    return h
  }

  /** The current view without a freshness check (undefined before the first successful load). */
  peek(): Federation | undefined {
    return this.#current
  }

  /** The current view if it is in force at `now`. @throws VN_ERR_FED_MANIFEST_EXPIRED, VN_ERR_FED_MANIFEST_INVALID (none loaded) */
  get(now: number = Date.now()): Federation {
    const f = this.#current
    if (f === undefined) throw new VnError('VN_ERR_FED_MANIFEST_INVALID', 'no manifest loaded')
    f.assertFresh(now)
    return f
  }

  /** Re-reads a manifest file and offers it (see `accept`). */
  async load(path: string, now: number = Date.now()): Promise<LoadResult> {
    let text: string
    try {
      text = await readFile(path, 'utf8')
    } catch (e) {
      return { ok: false, error: new VnError('VN_ERR_FED_MANIFEST_INVALID', `${path}: cannot be read`, { cause: e }), federation: this.#current }
    }
    return this.accept(text.trim(), now)
  }

  /** Offers a manifest JWS; returns the outcome instead of throwing, the current view stays on failure. */
  accept(jws: string, now: number = Date.now()): LoadResult {
    const cur = this.#current
    try {
      const opts: VerifyManifestOptions = cur === undefined ? { now } : { now, minSeq: cur.seq }
      const m = verifyManifest(jws, this.#root, opts)
      if (cur !== undefined && m.seq === cur.seq) {
        // Ed25519 is deterministic, but compare payloads, not bytes, so a re-encoded copy of the
        // same manifest is recognised.
        if (manifestHash(jws) === cur.hash || canonicalJson(m) === canonicalJson(cur.manifest)) return { ok: true, federation: cur, changed: false }
        throw new VnError('VN_ERR_FED_MANIFEST_ROLLBACK', `a different manifest with the current seq ${m.seq}`)
      }
      const next = new Federation(m, jws)
      this.#current = next
      return { ok: true, federation: next, changed: true }
    } catch (e) {
      const error = isVnError(e) ? e : new VnError('VN_ERR_FED_MANIFEST_INVALID', 'unexpected failure', { cause: e })
      return { ok: false, error, federation: cur }
    }
  }
}
