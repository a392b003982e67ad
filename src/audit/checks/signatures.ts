/**
 * Signatures against the key in force (verify.ts step 4, second half): every exchange JWS is well
 * formed, of the expected `typ` and payload schema, signed by its issuer (or the expected signer),
 * with a key the manifest history lists for the signer at the JWS's `iat`, and the Ed25519
 * signature verifies.
 *
 * The work is split so it runs on worker threads in batches while this thread streams on
 * (verify.ts): `prepare` (while a chunk of leaves is read) asks for each JWS the chunk names;
 * `settle` hands them to the workers (precheck-pool.ts), one part per worker, which hash each
 * against its digest, decode it, resolve its key, verify its signature and scan its payload
 * (`analyzeJws`, precheck.ts); `checkJws` (when the chunk's leaves are checked in log order, after
 * the workers answered) reports exactly what a one-by-one check would have, in the same order.
 * Without workers (a small export), or for a JWS met late, the same analysis runs here.
 *
 * A key the history refuses at the signature's `iat` is then judged against the manifests this node
 * had loaded (loaded-manifests.ts, fed by its key events): when one of them allowed the key and the
 * signature verifies under it, the exchange fell in a revocation's propagation window
 * (AUDIT_KEY_REVOCATION_WINDOW, a warning with the window's length); otherwise AUDIT_KEY_NOT_VALID.
 */
import { verifyBytes } from '../../crypto/profile.js'
import type { z } from 'zod'
import { formatZodIssues } from '../../config/load.js'
import { MAX_JWS_LENGTH, peekJws, prepareVerify, type JwsHeader } from '../../crypto/jws.js'
import { VnError, isVnError, type ErrorCode } from '../../errors.js'
import type { PrecheckPool } from '../precheck-pool.js'
import type { Claims, JwsAnalysis, JwsItem, JwsPre } from '../precheck-types.js'
import { splitKid } from '../../federation/federation.js'
import { PlainQuerySchema, REQUEST_TYP, RESPONSE_TYP, RequestPayloadSchema, ResponsePayloadSchema, type RequestPayload, type ResponsePayload } from '../../protocol/envelope.js'
import type { Where } from '../findings.js'
import { SAFE_KID, type AuditContext } from './context.js'
import type { KeyHistory } from '../../federation/key-history.js'
import { LoadedManifests, allowedBy, revocationOf } from './loaded-manifests.js'
import { safeParseFast } from '../fast-parse.js'
import { DIGEST, decodePayload, type EvidenceCheck, type EvidenceEntry } from './evidence.js'


interface Entry extends EvidenceEntry {
  analyses?: Map<string, JwsAnalysis>
  /** the verified request of this digest (memo of verifiedRequest; null: it did not verify) */
  request?: RequestPayload | null
}

const KEY_CODES = new Set(['VN_ERR_JWS_KEY_NOT_VALID', 'VN_ERR_JWS_UNKNOWN_KID', 'VN_ERR_FED_MANIFEST_EXPIRED'])
const schemaOf = (typ: string): z.ZodType<Claims> => (typ === REQUEST_TYP ? RequestPayloadSchema : ResponsePayloadSchema) as unknown as z.ZodType<Claims>

export class SignatureCheck {
  /** with a precheck pool: the analyses asked of its workers for the chunk being read */
  private remote: { e: Entry; typ: string; a: JwsAnalysis; scan: boolean }[] = []
  /** signature checks run on this thread (none when the workers answer) */
  inline = 0
  /** signature checks done */
  checked = 0
  /** the manifests this node had loaded, from its key events (fed in log order by exchanges.ts) */
  readonly loaded: LoadedManifests

  constructor(
    private readonly ctx: AuditContext, private readonly evidence: EvidenceCheck,
    /** when given, JWS are hashed, analysed, verified and PII-scanned on its workers */
    private readonly pool?: PrecheckPool,
  ) {
    this.loaded = new LoadedManifests(ctx.manifests)
  }

  /** While reading chunk `chunk`: the JWS of `digest`, as a `typ` message, will be checked. */
  prepare(digest: string, typ: string, chunk: number): void {
    const e = this.evidence.entry(digest, chunk, this.pool !== undefined) as Entry
    if (e.jws === undefined || (e.pending !== true && !e.digestOk)) return
    if (this.pool === undefined) {
      this.analysis(e, typ)
      return
    }
    if (e.analyses?.has(typ) === true) return
    // A placeholder, answered by the worker (or analysed here if it is needed before that).
    const a: JwsAnalysis = { kid: '', typOk: false, pending: true }
    ;(e.analyses ??= new Map()).set(typ, a)
    const scan = e.piiAsked !== true && e.pii === undefined
    e.piiAsked = true
    this.remote.push({ e, typ, a, scan })
  }

  /** Hands the JWS prepared so far to the workers; resolves when they answered. */
  settle(): Promise<void> {
    const pool = this.pool
    if (pool === undefined) return Promise.resolve()
    const jobs = this.remote
    this.remote = []
    if (jobs.length === 0) return Promise.resolve()
    // One part per worker, so that all of them work on this chunk while this thread goes on.
    const parts: Promise<void>[] = []
    const per = Math.ceil(jobs.length / pool.size)
    for (let at = 0; at < jobs.length; at += per) {
      const part = jobs.slice(at, at + per)
      const items: JwsItem[] = part.map((j) => ({ digest: j.e.digest, jws: j.e.jws as string, typ: j.typ, scan: j.scan }))
      // A worker that fails leaves its placeholders pending: each is then analysed here when used.
      parts.push(pool.jws(items).then((res) => part.forEach((j, k) => fill(j, res[k] as JwsPre)), () => undefined))
    }
    return Promise.all(parts).then(() => undefined)
  }

  private analysis(e: Entry, typ: string): JwsAnalysis {
    let a = e.analyses?.get(typ)
    if (a?.pending === true) {
      Object.assign(a, analyze(e, typ, this.ctx))
      a.pending = false
      return a
    }
    if (a !== undefined) return a
    a = analyze(e, typ, this.ctx)
    ;(e.analyses ??= new Map()).set(typ, a)
    return a
  }

  /** Structure, typ, payload schema, signer, key valid at iat, signature: reports the first problem. */
  checkJws<T extends Claims>(digest: string, typ: string, what: string, where: Where, chunk: number, expectedSigner?: string): T | undefined {
    const { findings } = this.ctx
    const e = this.evidence.entry(digest, chunk) as Entry
    const a = this.analysis(e, typ)
    if (a.peekError !== undefined) {
      findings.add('AUDIT_SIGNATURE_INVALID', `${what}: ${a.peekError}`, where)
      return undefined
    }
    if (!a.typOk) {
      findings.add('AUDIT_ENVELOPE_INVALID', `${what}: typ is not ${typ}`, where)
      return undefined
    }
    if (a.schemaError !== undefined || a.claims === undefined) {
      findings.add('AUDIT_ENVELOPE_INVALID', `${what}: ${a.schemaError ?? 'payload'}`, where)
      return undefined
    }
    const claims = a.claims
    // The kid comes from untrusted input and is echoed in findings: only in its protocol shape.
    if (!SAFE_KID.test(a.kid)) {
      findings.add('AUDIT_KEY_NOT_VALID', `${what}: kid is not <member>#<key id>`, where)
      return undefined
    }
    const signer = splitKid(a.kid)?.member
    if (signer === undefined || signer !== claims.iss || (expectedSigner !== undefined && signer !== expectedSigner)) {
      findings.add('AUDIT_SIGNER_MISMATCH', `${what}: signed with kid ${a.kid}, expected a key of ${expectedSigner ?? claims.iss}`, where)
      return undefined
    }
    const err = a.prepError ?? (this.signatureOk(a) ? undefined : new VnError('VN_ERR_JWS_SIGNATURE'))
    if (err !== undefined) {
      const code = isVnError(err) ? err.code : undefined
      if (code !== undefined && KEY_CODES.has(code)) {
        const window = this.revocationWindow(e, a, claims, typ)
        if (window !== undefined) {
          findings.add('AUDIT_KEY_REVOCATION_WINDOW', `${what}: ${window}`, where)
          return claims as T
        }
        findings.add('AUDIT_KEY_NOT_VALID', `${what}: ${(err as VnError).detail ?? code} (iat ${new Date(claims.iat).toISOString()})`, where)
      } else {
        findings.add('AUDIT_SIGNATURE_INVALID', `${what}: ${code ?? 'does not verify'}`, where)
      }
      return undefined
    }
    return claims as T
  }

  /**
   * A key the history refuses at `claims.iat`: the window's description when a manifest this node
   * had loaded allowed the key and the signature verifies under it, else undefined.
   */
  private revocationWindow(e: Entry, a: JwsAnalysis, claims: Claims, typ: string): string | undefined {
    const parts = splitKid(a.kid)
    if (parts === undefined || e.jws === undefined) return undefined
    for (const f of this.loaded.candidatesAt(claims.iat)) {
      const k = allowedBy(f, parts.member, parts.keyId, claims.iat)
      if (k === undefined) continue
      let ok: boolean
      try {
        const v = prepareVerify(e.jws, () => k.key, typ)
        this.inline++
        ok = verifyBytes(v.input, v.key, v.sig)
      } catch {
        ok = false
      }
      if (!ok) return undefined
      const rev = revocationOf(this.ctx.manifests.filter((m) => m.seq > f.seq), parts.member, parts.keyId, claims.iat)
      const late = rev === undefined
        ? 'after the manifests in force stopped allowing it'
        : `${claims.iat - rev.effective} ms after its revocation took effect (manifest seq ${rev.seq}, at ${new Date(rev.effective).toISOString()})`
      return `kid ${a.kid} was used ${late}, while this node had manifest seq ${f.seq} loaded, which allowed it (iat ${new Date(claims.iat).toISOString()})`
    }
    return undefined
  }

  private signatureOk(a: JwsAnalysis): boolean {
    const job = a.job as NonNullable<JwsAnalysis['job']>
    if (a.ok === undefined || a.ok === null) {
      // not handed to a worker (a JWS met late, or no workers): checked here
      this.inline++
      try {
        a.ok = verifyBytes(job.data, job.key, job.sig)
      } catch {
        a.ok = false
      }
    }
    return a.ok
  }

  /** The verified request of `digest` (evidence + signature), memoized; reports problems once. */
  verifiedRequest(digest: string, where: Where, chunk: number, expectedSigner?: string): RequestPayload | undefined {
    const e = this.evidence.entry(digest, chunk) as Entry
    if (e.request !== undefined) return e.request ?? undefined
    const known = this.evidence.flags(digest)
    let claims: RequestPayload | undefined
    if ((known & DIGEST.request) !== 0) {
      // judged before its entry was dropped: the same JWS gives the same claims, without findings
      const a = (known & DIGEST.requestOk) === 0 || e.jws === undefined ? undefined : this.analysis(e, REQUEST_TYP)
      claims = a?.claims as RequestPayload | undefined
    } else {
      const jws = this.evidence.evidenceFor(digest, 'request', where, chunk)
      claims = jws === undefined ? undefined : this.checkJws<RequestPayload>(digest, REQUEST_TYP, `request ${digest}`, where, chunk, expectedSigner)
      this.evidence.setFlags(digest, claims !== undefined ? DIGEST.request | DIGEST.requestOk : DIGEST.request)
      this.checked++
    }
    e.request = claims ?? null
    return claims
  }

  /** The verified response of `digest`, checked on every call (as each leaf naming it is). */
  verifiedResponse(digest: string, where: Where, chunk: number, expectedSigner: string): ResponsePayload | undefined {
    const jws = this.evidence.evidenceFor(digest, 'response', where, chunk)
    if (jws === undefined) return undefined
    this.checked++
    return this.checkJws<ResponsePayload>(digest, RESPONSE_TYP, `response ${digest}`, where, chunk, expectedSigner)
  }

  /** Plain mode: the number of subjects the signed request asks about. */
  subjectCount(req: RequestPayload, what: string, where: Where): number | undefined {
    const n = workerSubjects.get(req) ?? plainSubjects(req)
    if (typeof n !== 'string') return n
    this.ctx.findings.add('AUDIT_ENVELOPE_INVALID', `${what}: q: ${n}`, where)
    return undefined
  }
}

/**
 * A plain request's subject count, or why its `q` is not a plain query (undefined in other
 * modes). The workers answer it (precheck.ts) instead of sending `q` back: its subjects (or an
 * he request's ciphertexts) are read by no other check.
 */
export function plainSubjects(req: { mode?: unknown; q?: unknown }): number | string | undefined {
  if (req.mode !== 'plain') return undefined
  const q = safeParseFast(PlainQuerySchema, req.q)
  return q.success ? q.data.subjects.length : formatZodIssues(q.error)
}

/** Request claims that came from a worker without their `q`: what plainSubjects gave there. */
const workerSubjects = new WeakMap<object, number | string>()

/** A worker's answer (precheck.ts) into the entry and the placeholder analysis it was asked for. */
function fill(j: { e: Entry; typ: string; a: JwsAnalysis }, r: JwsPre): void {
  const { e, a } = j
  if (e.pending === true) {
    e.pending = false
    e.digestOk = r.d
  }
  if (r.pii !== undefined && e.pii === undefined) e.pii = r.pii
  if (a.pending !== true) return
  if (r.a === undefined) {
    // not analysed: the JWS does not hash to its digest (nothing is checked against it)
    e.analyses?.delete(j.typ)
    return
  }
  const { prepError, subjects, ...rest } = r.a
  if (rest.claims !== undefined && subjects !== undefined) workerSubjects.set(rest.claims, subjects)
  Object.assign(a, rest)
  a.pending = false
  if (prepError !== undefined) a.prepError = prepError.code === undefined ? new Error('prepare failed') : new VnError(prepError.code as ErrorCode, prepError.detail)
}

/**
 * Protected headers already accepted by peekJws, by their base64url text: a log's JWS carry a
 * handful of distinct headers (one per signing key and typ), so each is decoded and checked once.
 */
const headers = new Map<string, JwsHeader>()
const HEADERS_KEPT = 256

/** peekJws, answered from `headers` when the JWS's header part is one it already accepted. */
function peekCached(jws: string): ReturnType<typeof peekJws> {
  const i = jws.indexOf('.')
  if (i > 0 && jws.length <= MAX_JWS_LENGTH) {
    const h = jws.slice(0, i)
    const header = headers.get(h)
    const j = header === undefined ? -1 : jws.indexOf('.', i + 1)
    if (header !== undefined && j >= 0 && !jws.includes('.', j + 1)) return { header, parts: [h, jws.slice(i + 1, j), jws.slice(j + 1)] }
  }
  const peeked = peekJws(jws)
  if (headers.size >= HEADERS_KEPT) headers.clear()
  headers.set(peeked.parts[0], peeked.header)
  return peeked
}

/** Decodes a JWS as a `typ` message and, when it gets that far, prepares its signature check. */
function analyze(e: Entry, typ: string, ctx: AuditContext): JwsAnalysis {
  const { a, payload } = analyzeJws(e.jws as string, typ, ctx.history)
  if (payload !== undefined) e.payload ??= payload
  return a
}

/**
 * The analysis of one JWS as a `typ` message, against the key history: `analyze`'s work without an
 * evidence entry, so the audit's worker threads (precheck-worker.ts) run exactly the same steps.
 * `payload` is the decoded payload when the typ was right (for the PII scan).
 */
export function analyzeJws(jws: string, typ: string, history: KeyHistory): { a: JwsAnalysis; payload?: { value: unknown } } {
  let peeked: ReturnType<typeof peekJws>
  try {
    peeked = peekCached(jws)
  } catch (err) {
    return { a: { peekError: isVnError(err) ? err.code : 'malformed JWS', kid: '', typOk: false } }
  }
  const kid = peeked.header.kid
  const a: JwsAnalysis = { kid, typOk: peeked.header.typ === typ }
  if (!a.typOk) return { a }
  // The payload is decoded once: for the schema here, the PII scan (evidence.ts) and the check.
  const decoded = decodePayload(peeked.parts[1])
  const payload = { value: decoded?.value }
  const parsed = safeParseFast(schemaOf(typ), decoded?.value)
  if (!parsed.success) {
    a.schemaError = formatZodIssues(parsed.error)
    return { a, payload }
  }
  a.claims = parsed.data
  const signer = SAFE_KID.test(kid) ? splitKid(kid)?.member : undefined
  if (signer === undefined || signer !== a.claims.iss || decoded === undefined) return { a, payload } // checkJws reports it; nothing to verify
  try {
    const v = prepareVerify(jws, history.messageKeyResolver(a.claims.iat, signer), typ, { peeked, payload: decoded.bytes })
    a.job = { data: v.input, key: v.key, sig: v.sig }
  } catch (err) {
    a.prepError = err
  }
  return { a, payload }
}
