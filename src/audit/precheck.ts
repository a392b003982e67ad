/**
 * The per-leaf and per-JWS work of `audit verify` that does not depend on log order, as plain
 * functions over bytes and strings, so that worker threads (precheck-worker.ts, driven by
 * precheck-pool.ts) run it while the main thread keeps only what is sequential (the tree fold,
 * exchanges linked across leaves, decisions replayed in order, findings in order).
 *
 * Nothing here reports: each function returns a compact summary that the main thread turns into
 * exactly the findings the one-thread path would give, in the same place. Whatever is not plainly
 * clean is left to the main thread's own checks (leaves.ts, evidence.ts, signatures.ts), which
 * then run as before:
 * - a leaf is "fast" only when it is UTF-8, RFC 8785 canonical, a valid record of a type other
 *   than `agreements` (whose vetting the main thread does in order), and the PII scan finds
 *   nothing, counting every free text it met as vetted. Those texts (`probes`) go back: the main
 *   thread checks them against the set vetted so far and scans again itself when one is not;
 * - a JWS comes back with SHA-256 against its digest, the analysis signatures.ts makes of it
 *   (analyzeJws: header, typ, payload schema, key in force at iat) with its signature checked,
 *   and its payload's PII scan in the same form as a leaf's (hits, and the free texts it met).
 */
import type { KeyHistory } from '../federation/key-history.js'
import { CompactRange, leafHash } from '../log/compact-range.js'
import { canonicalJson } from '../protocol/canonical-json.js'
import { isVnError } from '../errors.js'
import { decodeUtf8Strict } from '../util/strict-json.js'
import { digestEquals } from './checks/context.js'
import { digestB64u, verifyBytes } from '../crypto/profile.js'
import { unverifiedPayload } from './checks/evidence.js'
import { analyzeJws, plainSubjects } from './checks/signatures.js'
import { REQUEST_TYP } from '../protocol/envelope.js'
import type { JwsItem, JwsPre, LeafChunkPre, PiiPre, WireAnalysis } from './precheck-types.js'
import { safeParseFast } from './fast-parse.js'
import { scanInto, type PiiHit } from './pii.js'
import { FREE_TEXT_FIELDS, LogRecordSchema, PAYLOAD_FREE_TEXT } from './record-schemas.js'

function scanPre(value: unknown, freeText: readonly string[] | 'all'): PiiPre {
  const probes: string[] = []
  const hits: PiiHit[] = []
  const all = {
    has: (s: string): boolean => {
      probes.push(s)
      return true
    },
  } as ReadonlySet<string>
  scanInto(value, freeText, all, hits)
  return { hits, probes }
}

/** 1 ASCII, 2 other UTF-8: a leaf the main thread only has to JSON.parse; 0 otherwise. */
function leafVerdict(leaf: Uint8Array, k: number, probes: [number, string[]][]): number {
  const text = decodeUtf8Strict(leaf)
  if (text === undefined) return 0
  let value: unknown
  try {
    value = JSON.parse(text)
    if (canonicalJson(value) !== text) return 0
  } catch {
    return 0
  }
  if (!safeParseFast(LogRecordSchema, value).success) return 0
  const t = (value as { t: string }).t
  if (t === 'agreements') return 0
  const pre = scanPre(value, FREE_TEXT_FIELDS[t] ?? [])
  if (pre.hits.length > 0) return 0
  if (pre.probes.length > 0) probes.push([k, pre.probes])
  return text.length === leaf.length ? 1 : 2
}

/** Leaves [first, first + ends.length), packed in `bytes` (leaf k ends at ends[k]). */
export function precheckLeaves(first: number, bytes: Uint8Array, ends: Uint32Array): LeafChunkPre {
  const n = ends.length
  const range = CompactRange.empty(first)
  const hashes = new Uint8Array(32 * n)
  const fast = new Uint8Array(n)
  const probes: [number, string[]][] = []
  let start = 0
  for (let k = 0; k < n; k++) {
    const end = ends[k] as number
    const leaf = bytes.subarray(start, end)
    start = end
    const h = leafHash(leaf)
    hashes.set(h, 32 * k)
    range.append(h)
    fast[k] = leafVerdict(leaf, k, probes)
  }
  return { nodes: [...range.nodes], hashes, fast, probes }
}

/** JWS of the evidence, each against its digest, analysed as `typ` and its signature checked. */
export function precheckJws(history: KeyHistory, items: readonly JwsItem[]): JwsPre[] {
  return items.map(({ digest, jws, typ, scan }) => {
    const d = digestEquals(digestB64u(jws), digest)
    const out: JwsPre = { d }
    let payload: { value: unknown } | undefined
    if (d) {
      const r = analyzeJws(jws, typ, history)
      payload = r.payload
      const { job, prepError, ...rest } = r.a
      const w: WireAnalysis = rest
      // A response's per-subject results are checked by its schema and used by no later check: they
      // stay here rather than cross threads.
      if (w.claims !== undefined && 'results' in w.claims) w.claims = { ...w.claims, results: [] } as typeof w.claims
      // A request's query (subjects, or an he request's ciphertexts) only gives the subject count.
      if (w.claims !== undefined && typ === REQUEST_TYP) {
        const n = plainSubjects(w.claims as { mode?: unknown; q?: unknown })
        if (n !== undefined) w.subjects = n
        w.claims = { ...w.claims, q: undefined } as typeof w.claims
      }
      if (prepError !== undefined) w.prepError = isVnError(prepError) ? { code: prepError.code, ...(prepError.detail === undefined ? {} : { detail: prepError.detail }) } : {}
      else if (job !== undefined) {
        try {
          w.ok = verifyBytes(job.data, job.key, job.sig)
        } catch {
          w.ok = false
        }
      }
      out.a = w
    }
    if (scan) {
      const value = payload !== undefined ? payload.value : unverifiedPayload(jws)
      out.pii = value === undefined ? null : scanPre(value, PAYLOAD_FREE_TEXT)
    }
    return out
  })
}
