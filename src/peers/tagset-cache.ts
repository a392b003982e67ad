/**
 * The consumer's verified per-epoch cache of providers' tag sets (docs/PROTOCOL.md "oprf mode"):
 * fetched over the peer client (its pool per peer, timeouts, loopback/insecure rule), revalidated
 * with If-None-Match (RFC 9110 §13.1.2), and used only after the signer, the signature, the service
 * and the epoch check out.
 */
import type { KeyObject } from 'node:crypto'
import type { Dispatcher } from 'undici'
import { VnError, ERRORS, type ErrorCode } from '../errors.js'
import { TagSet, tagSetETag, verifyTagSet } from '../oprf/tagset.js'
import { TAGSET_HEADERS } from '../oprf/tagset-service.js'
import { verifyShardRoot, type ShardRoot } from '../oprf/tagshards.js'
import { ED25519_SIGNATURE_RE } from '../protocol/vocabulary.js'
import { PeerClient } from './client.js'

export interface TagSetCacheOptions {
  endpointOf: (member: string) => string
  /** the provider's message key named `kid`, valid at `at` (manifest); throws if unknown */
  messageKey: (kid: string, at: number, member: string) => KeyObject
  /** the node's peer client; without one the cache keeps its own (closed with the cache) */
  client?: PeerClient
  /** for a cache's own client: plain HTTP to non-loopback peers allowed */
  insecure?: boolean
  /** for a cache's own client: request timeout, ms (default 10 s) */
  timeoutMs?: number
  now?: () => number
  /** revalidate (If-None-Match) after this long even inside the epoch (default 60 s) */
  maxAgeMs?: number
  /** refuse bodies larger than this (default 256 MiB: 2^25 8-byte tags) */
  maxBytes?: number
  /** for a cache's own client: the undici dispatcher (tests pass a MockAgent) */
  dispatcher?: Dispatcher
}

interface CachedTagSet {
  tagset: TagSet
  etag: string
  fetchedAt: number
  endsAt: number
}

interface CachedRoot {
  /** null: the provider serves no epoch header (an older node): full sets only */
  root: ShardRoot | null
  etag: string
  fetchedAt: number
  endsAt: number
}

/** The error a non-200 tag-set answer stands for: the provider's code when it sent a problem. */
function problemOf(statusCode: number, body: Uint8Array | undefined, service: string): VnError {
  const text = body === undefined ? '' : Buffer.from(body).toString('utf8')
  let code: ErrorCode = 'VN_ERR_OPRF_TAGSET'
  let detail = `${service}: provider answered HTTP ${statusCode}`
  try {
    const j = JSON.parse(text) as { code?: unknown; detail?: unknown }
    if (typeof j.code === 'string' && j.code in ERRORS) code = j.code as ErrorCode
    if (typeof j.detail === 'string') detail = `${detail}: ${j.detail.slice(0, 300)}`
  } catch {
    // not a problem document: keep VN_ERR_OPRF_TAGSET
  }
  return new VnError(code, detail)
}

export class TagSetCache {
  private readonly o: TagSetCacheOptions
  private readonly now: () => number
  private readonly cache = new Map<string, CachedTagSet>()
  private readonly inflight = new Map<string, Promise<TagSet>>()
  private readonly roots = new Map<string, CachedRoot>()
  private readonly rootsInflight = new Map<string, Promise<ShardRoot | null>>()
  private readonly client: PeerClient
  private readonly ownClient: boolean
  /** fetches that went to the network (tests, metrics) */
  fetches = 0

  constructor(o: TagSetCacheOptions) {
    this.o = o
    this.now = o.now ?? Date.now
    this.ownClient = o.client === undefined
    const dispatcher = o.dispatcher
    this.client = o.client ?? new PeerClient({
      timeoutMs: o.timeoutMs ?? 10_000, retries: 0, connections: 4, insecure: o.insecure ?? false,
      ...(dispatcher === undefined ? {} : { dispatcherFor: () => dispatcher }),
    })
  }

  /** The provider's verified tag set for the service's current epoch (cached until it ends). */
  async get(provider: string, service: string): Promise<TagSet> {
    const k = `${provider}|${service}`
    const hit = this.cache.get(k)
    const now = this.now()
    const maxAge = this.o.maxAgeMs ?? 60_000
    if (hit !== undefined && now < hit.endsAt && now - hit.fetchedAt < maxAge) return hit.tagset
    let p = this.inflight.get(k)
    if (p === undefined) {
      p = this.fetch(provider, service, hit).finally(() => this.inflight.delete(k))
      this.inflight.set(k, p)
    }
    return p
  }

  /**
   * The provider's verified epoch header of the sharded set (src/oprf/tagshards.ts), cached like a
   * set; null when the provider has no such route (an older node: full sets only).
   */
  async root(provider: string, service: string): Promise<ShardRoot | null> {
    const k = `${provider}|${service}`
    const hit = this.roots.get(k)
    const now = this.now()
    if (hit !== undefined && now < hit.endsAt && now - hit.fetchedAt < (this.o.maxAgeMs ?? 60_000)) return hit.root
    let p = this.rootsInflight.get(k)
    if (p === undefined) {
      p = this.fetchRoot(provider, service, hit).finally(() => this.rootsInflight.delete(k))
      this.rootsInflight.set(k, p)
    }
    return p
  }

  /** Forget a cached set and epoch header (e.g. after the provider answered VN_ERR_OPRF_EPOCH). */
  invalidate(provider: string, service: string): void {
    this.cache.delete(`${provider}|${service}`)
    this.roots.delete(`${provider}|${service}`)
  }

  async close(): Promise<void> {
    if (this.ownClient) await this.client.close()
  }

  private async fetch(provider: string, service: string, hit: CachedTagSet | undefined): Promise<TagSet> {
    const path = `/v1/services/${encodeURIComponent(service)}/tagset`
    const headers: Record<string, string> = { accept: 'application/octet-stream' }
    // A set past its epoch's end is not revalidated: the provider must send the new epoch's set.
    const revalidate = hit !== undefined && this.now() < hit.endsAt
    if (revalidate) headers['if-none-match'] = hit.etag
    this.fetches++
    const maxBytes = this.o.maxBytes ?? 256 * 1024 * 1024
    const res = await this.client.getBytes(this.o.endpointOf(provider), path, headers, maxBytes)
    const h = res.header
    if (res.statusCode === 304 && revalidate && hit !== undefined) {
      hit.fetchedAt = this.now()
      hit.endsAt = endsAtOf(h, this.now(), this.o.maxAgeMs)
      return hit.tagset
    }
    if (res.statusCode !== 200) throw problemOf(res.statusCode, res.bytes, service)
    if (res.declaredBytes !== undefined && res.declaredBytes > maxBytes) {
      throw new VnError('VN_ERR_OPRF_TAGSET', `${service}: tag set of ${res.declaredBytes} bytes exceeds ${maxBytes}`)
    }
    const bytes = res.bytes
    if (bytes === undefined) throw new VnError('VN_ERR_OPRF_TAGSET', `${service}: tag set exceeds ${maxBytes} bytes`)
    // Steps: (1) the signer is the provider, with a message key valid now (manifest);
    // (2) the signature over the bytes verifies; (3) the set is for this service; (4) epochs never go back.
    const { key, sig } = this.signer(provider, service, h)
    const tagset = verifyTagSet(bytes, sig, key)
    if (tagset.service !== service) throw new VnError('VN_ERR_OPRF_TAGSET', `${service}: the set is for another service`)
    if (hit !== undefined && tagset.epoch < hit.tagset.epoch) throw new VnError('VN_ERR_OPRF_TAGSET', `${service}: epoch went backwards`)
    const headerEpoch = h(TAGSET_HEADERS.epoch)
    if (headerEpoch !== undefined && headerEpoch !== String(tagset.epoch)) throw new VnError('VN_ERR_OPRF_TAGSET', `${service}: epoch header differs from the signed set`)
    const etag = h('etag') ?? tagSetETag(bytes)
    this.cache.set(`${provider}|${service}`, { tagset, etag, fetchedAt: this.now(), endsAt: endsAtOf(h, this.now(), this.o.maxAgeMs) })
    return tagset
  }

  /** Steps (1)-(2) of a fetch: the signer is the provider with a message key valid now; the signature's form. */
  private signer(provider: string, service: string, h: (name: string) => string | undefined): { key: KeyObject; sig: Uint8Array } {
    const kid = h(TAGSET_HEADERS.kid) ?? ''
    if (!kid.startsWith(`${provider}#`)) throw new VnError('VN_ERR_OPRF_TAGSET', `${service}: signed by another member`)
    let key: KeyObject
    try {
      key = this.o.messageKey(kid, this.now(), provider)
    } catch (e) {
      throw new VnError('VN_ERR_OPRF_TAGSET', `${service}: signer key is not a valid message key of ${provider} (${(e as VnError).code ?? 'unknown'})`, { cause: e })
    }
    const sig = h(TAGSET_HEADERS.signature) ?? ''
    if (!ED25519_SIGNATURE_RE.test(sig)) throw new VnError('VN_ERR_OPRF_TAGSET', 'signature: expected 64 bytes, base64url')
    return { key, sig: new Uint8Array(Buffer.from(sig, 'base64url')) }
  }

  private async fetchRoot(provider: string, service: string, hit: CachedRoot | undefined): Promise<ShardRoot | null> {
    const path = `/v1/services/${encodeURIComponent(service)}/tagset/root`
    const headers: Record<string, string> = { accept: 'application/octet-stream' }
    const revalidate = hit !== undefined && hit.root !== null && this.now() < hit.endsAt
    if (revalidate) headers['if-none-match'] = hit.etag
    this.fetches++
    const res = await this.client.getBytes(this.o.endpointOf(provider), path, headers, 4096)
    const h = res.header
    const k = `${provider}|${service}`
    if (res.statusCode === 304 && revalidate && hit !== undefined) {
      hit.fetchedAt = this.now()
      hit.endsAt = endsAtOf(h, this.now(), this.o.maxAgeMs)
      return hit.root
    }
    if (res.statusCode !== 200) {
      const err = problemOf(res.statusCode, res.bytes, service)
      if (res.statusCode === 404 && err.code === 'VN_ERR_REQ_NOT_FOUND') {
        this.roots.set(k, { root: null, etag: '', fetchedAt: this.now(), endsAt: this.now() + (this.o.maxAgeMs ?? 60_000) })
        return null
      }
      throw err
    }
    const bytes = res.bytes
    if (bytes === undefined) throw new VnError('VN_ERR_OPRF_TAGSET', `${service}: epoch header too large`)
    const { key, sig } = this.signer(provider, service, h)
    const root = verifyShardRoot(bytes, sig, key)
    if (root.service !== service) throw new VnError('VN_ERR_OPRF_TAGSET', `${service}: the epoch header is for another service`)
    if (hit?.root != null && root.epoch < hit.root.epoch) throw new VnError('VN_ERR_OPRF_TAGSET', `${service}: epoch went backwards`)
    const headerEpoch = h(TAGSET_HEADERS.epoch)
    if (headerEpoch !== undefined && headerEpoch !== String(root.epoch)) throw new VnError('VN_ERR_OPRF_TAGSET', `${service}: epoch header differs from the signed one`)
    this.roots.set(k, { root, etag: h('etag') ?? tagSetETag(bytes), fetchedAt: this.now(), endsAt: endsAtOf(h, this.now(), this.o.maxAgeMs) })
    return root
  }
}

/** The epoch's end from its unsigned hint header, bounded so a bad value cannot pin a set. */
function endsAtOf(h: (name: string) => string | undefined, now: number, maxAgeMs = 60_000): number {
  const n = Number(h(TAGSET_HEADERS.epochEnds))
  return Number.isSafeInteger(n) && n > now ? Math.min(n, now + 366 * 86_400_000) : now + maxAgeMs
}
