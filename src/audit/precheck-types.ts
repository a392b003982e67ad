/**
 * The summaries `audit verify`'s worker threads send back (precheck.ts), and the analysis of a JWS
 * they share with signatures.ts: types only, so the checks and the workers' code import them
 * without importing each other.
 */
import type { KeyObject } from 'node:crypto'
import type { PiiHit } from './pii.js'

/** The claims every exchange JWS carries. */
export type Claims = { iat: number; iss: string }

/** Everything a JWS check needs, computed once per JWS and typ. */
export interface JwsAnalysis {
  /** the reason peekJws refused it */
  peekError?: string
  kid: string
  typOk: boolean
  schemaError?: string
  claims?: Claims
  /** the error prepareVerify (signature bytes, key in force) threw */
  prepError?: unknown
  /** the signature check, queued; `ok` once it ran (null: it could not run on a worker) */
  job?: { data: Uint8Array; key: KeyObject; sig: Uint8Array }
  ok?: boolean | null
  /** made by a worker thread (precheck.ts), not answered yet */
  pending?: boolean
}

/** A PII scan done with every free text taken as vetted: the hits, and the free texts met. */
export interface PiiPre {
  hits: PiiHit[]
  probes: string[]
}

/** A chunk of leaves [first, first + n), prechecked. */
export interface LeafChunkPre {
  /** the RFC 9162 compact range of the chunk's leaves (its perfect subtrees, left to right) */
  nodes: Uint8Array[]
  /** leaf hashes, 32 bytes each, in order */
  hashes: Uint8Array
  /** per leaf: 1 fast and ASCII, 2 fast and UTF-8, 0 for the main thread's full check */
  fast: Uint8Array
  /** free texts a fast leaf's PII scan met: [leaf offset in the chunk, texts] */
  probes: [number, string[]][]
}

/** An analysis as it crosses threads: the signature checked, an error as its code and detail. */
export type WireAnalysis = Omit<JwsAnalysis, 'job' | 'prepError'> & {
  prepError?: { code?: string; detail?: string }
  /** a request's claims come without `q`; this is plainSubjects of it (signatures.ts) */
  subjects?: number | string
}

export interface JwsItem {
  digest: string
  jws: string
  typ: string
  /** also scan the payload for PII */
  scan: boolean
}

export interface JwsPre {
  /** SHA-256(jws) is the digest */
  d: boolean
  /** with `scan`: the payload's scan, or null when the payload is not JSON */
  pii?: PiiPre | null
  /** when `d`: the analysis, signature checked */
  a?: WireAnalysis
}

