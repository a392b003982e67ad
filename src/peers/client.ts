/**
 * HTTP client towards peer nodes: one undici Pool per peer origin, timeouts, and bounded retries that
 * resend the very same signed body (same xid), so a retry is answered idempotently by the provider.
 *
 * The dispatcher can be swapped (tests pass undici's MockAgent or a custom Agent).
 */
import { Pool, type Dispatcher } from 'undici'
import { isIP } from 'node:net'
import { VnError } from '../errors.js'
import { pinnedConnector, type PeerTlsOptions } from './tls-pins.js'

export interface PeerClientOptions {
  timeoutMs: number
  retries: number
  connections: number
  /** allow plain http:// to non-loopback peers (closed test networks only) */
  insecure: boolean
  dispatcherFor?: (origin: string) => Dispatcher
  /** mutual TLS to https:// peers, each certificate checked against its pins (./tls-pins.ts) */
  tls?: PeerTlsOptions
}

export interface PeerReply {
  statusCode: number
  contentType: string
  /** the body parsed as JSON (null: no body); undefined only with `keepBytes`, when it is not JSON or was cut */
  json: unknown
  /** with `keepBytes`: the body as received, at most `maxBytes` of it */
  raw?: Uint8Array
  /** with `keepBytes`: the body was longer than `maxBytes` and was cut there (`raw` is its start) */
  truncated?: boolean
}

/**
 * For a caller that must keep what the peer answered (the consumer's exchange: a refused answer is
 * evidence). The body is read up to `maxBytes` and handed back as bytes too; a body that is not
 * JSON, or longer than that, is returned (json undefined) rather than thrown away.
 */
export interface KeepBytes {
  maxBytes: number
}

/** A binary reply (tag sets); `bytes` is undefined when the body exceeded the caller's limit. */
export interface PeerBytesReply {
  statusCode: number
  header(name: string): string | undefined
  /** content-length as the peer declared it, when it did */
  declaredBytes: number | undefined
  bytes: Uint8Array | undefined
}

export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '')
  if (h === 'localhost') return true
  if (isIP(h) === 4) return h.startsWith('127.')
  if (isIP(h) === 6) return h === '::1'
  return false
}

/** Refuses plain HTTP to anything but loopback unless the operator set `insecure`. */
export function checkEndpoint(endpoint: string, insecure: boolean, tls = true): URL {
  let u: URL
  try {
    u = new URL(endpoint)
  } catch {
    throw new VnError('VN_ERR_PEER_UNKNOWN', 'endpoint is not a URL')
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new VnError('VN_ERR_PEER_UNKNOWN', 'endpoint must be http(s)')
  if (u.protocol === 'https:' && !tls) throw new VnError('VN_ERR_TLS_CONFIG', `${u.host}: an https peer needs this node's TLS key and certificate (config "tls")`)
  if (u.protocol === 'http:' && !isLoopbackHost(u.hostname) && !insecure) {
    throw new VnError('VN_ERR_PEER_INSECURE', `${u.host} is not loopback`)
  }
  return u
}

const RETRYABLE_STATUS = new Set([502, 503, 504])

const sameSet = (a: ReadonlySet<string>, b: ReadonlySet<string>): boolean => a.size === b.size && [...a].every((x) => b.has(x))

export class PeerClient {
  private readonly pools = new Map<string, Dispatcher>()
  /** https origins: the pin set (as the manifest handed it out) the pool's connections were checked against */
  private readonly pinsSeen = new Map<string, ReadonlySet<string>>()
  constructor(private readonly opts: PeerClientOptions) {}

  private dispatcher(origin: string): Dispatcher {
    let d = this.pools.get(origin)
    const tls = this.opts.tls
    if (d !== undefined && tls !== undefined && origin.startsWith('https:')) {
      // The pins in force for this origin changed (a newer manifest): the pool's connections were
      // checked against the old ones, so they are closed and the next ones checked anew.
      const pins = tls.pinsFor(origin)
      const was = this.pinsSeen.get(origin)
      if (was !== pins) {
        this.pinsSeen.set(origin, pins)
        if (was !== undefined && !sameSet(was, pins)) {
          this.pools.delete(origin)
          d.close().catch(() => undefined)
          d = undefined
        }
      }
    }
    if (d === undefined) {
      if (tls !== undefined && origin.startsWith('https:')) this.pinsSeen.set(origin, tls.pinsFor(origin))
      d = this.opts.dispatcherFor?.(origin) ?? new Pool(origin, {
        connections: this.opts.connections,
        headersTimeout: this.opts.timeoutMs,
        bodyTimeout: this.opts.timeoutMs,
        connectTimeout: Math.min(this.opts.timeoutMs, 5000),
        pipelining: 1,
        ...(this.opts.tls === undefined ? {} : { connect: pinnedConnector(this.opts.tls, Math.min(this.opts.timeoutMs, 5000)) }),
      })
      this.pools.set(origin, d)
    }
    return d
  }

  /** POST a JSON body (already serialized) with bounded retries of the same bytes. */
  async post(endpoint: string, path: string, body: string, keepBytes?: KeepBytes): Promise<PeerReply> {
    return this.send(endpoint, path, 'POST', body, {}, keepBytes)
  }

  async get(endpoint: string, path: string, headers: Record<string, string> = {}): Promise<PeerReply> {
    return this.send(endpoint, path, 'GET', undefined, headers)
  }

  /** Fetches a text body (checkpoints are signed notes, not JSON). */
  async getText(endpoint: string, path: string): Promise<{ statusCode: number; text: string }> {
    const u = checkEndpoint(endpoint, this.opts.insecure, this.opts.tls !== undefined || this.opts.dispatcherFor !== undefined)
    const res = await this.dispatcher(u.origin).request({
      origin: u.origin, path: u.pathname.replace(/\/$/, '') + path, method: 'GET',
      headersTimeout: this.opts.timeoutMs, bodyTimeout: this.opts.timeoutMs,
    }).catch((e: unknown) => { throw new VnError('VN_ERR_PEER_UNREACHABLE', `${u.host}: ${(e as Error).message}`, { cause: e }) })
    return { statusCode: res.statusCode, text: await res.body.text() }
  }

  /**
   * A binary GET without retries (a tag set is revalidated at the next use anyway). A body longer
   * than `maxBytes` is not read whole: declared too long, it is discarded unread; streamed too long,
   * the stream is cut.
   */
  async getBytes(endpoint: string, path: string, headers: Record<string, string>, maxBytes: number): Promise<PeerBytesReply> {
    const u = checkEndpoint(endpoint, this.opts.insecure, this.opts.tls !== undefined || this.opts.dispatcherFor !== undefined)
    const res = await this.dispatcher(u.origin).request({
      origin: u.origin, path: u.pathname.replace(/\/$/, '') + path, method: 'GET', headers,
      headersTimeout: this.opts.timeoutMs, bodyTimeout: this.opts.timeoutMs,
    }).catch((e: unknown) => { throw new VnError('VN_ERR_PEER_UNREACHABLE', `${u.host}: ${(e as Error).message}`, { cause: e }) })
    const header = (name: string): string | undefined => {
      const v = res.headers[name]
      return Array.isArray(v) ? v[0] : v
    }
    const declared = Number(header('content-length'))
    const declaredBytes = header('content-length') !== undefined && Number.isFinite(declared) ? declared : undefined
    if (declaredBytes !== undefined && declaredBytes > maxBytes) {
      await res.body.dump()
      return { statusCode: res.statusCode, header, declaredBytes, bytes: undefined }
    }
    const chunks: Buffer[] = []
    let total = 0
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      total += chunk.length
      if (total > maxBytes) {
        res.body.destroy()
        return { statusCode: res.statusCode, header, declaredBytes, bytes: undefined }
      }
      chunks.push(chunk)
    }
    return { statusCode: res.statusCode, header, declaredBytes, bytes: new Uint8Array(Buffer.concat(chunks, total)) }
  }

  private async send(endpoint: string, path: string, method: 'GET' | 'POST', body: string | undefined, extraHeaders: Record<string, string> = {}, keep?: KeepBytes): Promise<PeerReply> {
    const u = checkEndpoint(endpoint, this.opts.insecure, this.opts.tls !== undefined || this.opts.dispatcherFor !== undefined)
    const base = u.pathname.replace(/\/$/, '')
    let lastErr: unknown
    for (let attempt = 0; attempt <= this.opts.retries; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, Math.min(1000, 50 * 2 ** attempt)))
      try {
        const res = await this.dispatcher(u.origin).request({
          origin: u.origin,
          path: base + path,
          method,
          headers: body === undefined ? { accept: 'application/json', ...extraHeaders } : { 'content-type': 'application/json', accept: 'application/json', ...extraHeaders },
          ...(body === undefined ? {} : { body }),
          headersTimeout: this.opts.timeoutMs,
          bodyTimeout: this.opts.timeoutMs,
        })
        const contentType = String(res.headers['content-type'] ?? '')
        if (RETRYABLE_STATUS.has(res.statusCode) && attempt < this.opts.retries) {
          await res.body.dump().catch(() => undefined)
          lastErr = new VnError('VN_ERR_PEER_UNREACHABLE', `peer answered ${res.statusCode}`)
          continue
        }
        if (keep !== undefined) return await readKept(res, contentType, keep.maxBytes)
        const text = await res.body.text()
        let json: unknown = null
        // 204 No Content (e.g. an accepted cosignature) has no body to parse.
        if (res.statusCode === 204 || text === '') return { statusCode: res.statusCode, contentType, json }
        try {
          json = JSON.parse(text)
        } catch {
          throw new VnError('VN_ERR_PEER_BAD_RESPONSE', `peer answered ${res.statusCode} with a body that is not JSON`)
        }
        return { statusCode: res.statusCode, contentType, json }
      } catch (e) {
        if (e instanceof VnError) throw e
        lastErr = e
      }
    }
    throw new VnError('VN_ERR_PEER_UNREACHABLE', `${u.host}: ${(lastErr as Error)?.message ?? 'no answer'}`, { cause: lastErr })
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.close()))
    this.pools.clear()
  }
}

/** Reads a reply body up to `maxBytes` (then cuts the stream), keeping the bytes and parsing JSON when it can. */
async function readKept(res: Dispatcher.ResponseData, contentType: string, maxBytes: number): Promise<PeerReply> {
  const chunks: Buffer[] = []
  let total = 0
  let truncated = false
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    if (total + chunk.length > maxBytes) {
      chunks.push(chunk.subarray(0, maxBytes - total))
      total = maxBytes
      truncated = true
      res.body.destroy()
      break
    }
    chunks.push(chunk)
    total += chunk.length
  }
  const raw = new Uint8Array(Buffer.concat(chunks, total))
  let json: unknown
  if (!truncated) {
    if (raw.length === 0) json = null
    else {
      try {
        json = JSON.parse(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('utf8'))
      } catch {
        json = undefined
      }
    }
  }
  return { statusCode: res.statusCode, contentType, json, raw, truncated }
}
