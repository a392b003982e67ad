/**
 * `verinode audit verify`: the offline auditor, first version (issue 2 §8; DESIGN.md "Auditor
 * toolkit"). It reads a log export (export.ts) and trusts only the federation root key it is given.
 *
 * The checks, in the order they run (each step is named in the code):
 *  1. manifests: each verifies against the root key; together, ordered by seq, they are the key
 *     history (KeyHistory) that says which key was valid at which instant;
 *  2. checkpoints: each is a C2SP signed note for this member's log origin, signed by a log key the
 *     manifests list for the member; the leaves recompute its RFC 9162 root at its size. Leaves
 *     after the latest checkpoint are reported as not yet checkpointed (info);
 *  3. leaves: each is RFC 8785 canonical JSON of exactly one known record type with no unknown
 *     field, and the PII scan (pii.ts) finds nothing;
 *  4. in log order, per exchange: every request/response digest has its JWS in the evidence and
 *     SHA-256(jws) = digest; every JWS verifies against the key its signer had at its `iat`
 *     according to the manifest history (request: `iss`; response: the provider); the leaves agree
 *     with the signed messages; the response is bound to the request (reqDigest, xid, aud, iss);
 *  5. provider: every released answer (`response-out` ok) follows a `decision` permitting that very
 *     request, whose `policy` is the agreement set in force (the latest `agreements` record before
 *     it); the decision is re-run with `decide` (src/policy/decide.ts) on the signed request against
 *     that set, with a QuotaCounter replayed from the earlier permits, and any disagreement is
 *     reported;
 *  6. consumer: every `request-out` has a `response-in` (else "no answer recorded");
 *  7. key events: a `rotated` event verifies under both the old and the new key (key-rotation.ts)
 *     and its new key is listed by some manifest; disclosures in the export are accounted for by
 *     the log's last `disclosure-export` record (count, reason digest).
 * With `collectReplay`, step 5's replays are also listed per decision and per answer (replay.ts).
 *
 * Findings (findings.ts) carry a stable code, a severity and, where they concern one exchange, its
 * xid and this node's role in it. The report is `ok` only when there is no `error` finding.
 */
import { createHash, timingSafeEqual, type KeyObject } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { z } from 'zod'
import { formatZodIssues } from '../config/load.js'
import { peekJws, unverifiedJwsPayload, verifyJws } from '../crypto/jws.js'
import { loadPublicKey, publicKeyToB64u } from '../crypto/keys.js'
import { VnError, isVnError } from '../errors.js'
import { Federation, splitKid } from '../federation/federation.js'
import { KeyHistory } from '../federation/key-history.js'
import { rootKeyId } from '../federation/manifest.js'
import { ed25519NoteVerifier, openNote, parseCheckpoint, parseNote, type NoteVerifier } from '../log/checkpoint.js'
import { EMPTY_ROOT, foldRange, hashEquals, leafHash, nodeHash } from '../log/merkle.js'
import type { AgreementsRecord, DecisionRecord, DisclosureExportRecord, ForkEvidenceRecord, KeyEventRecord, LogRecord, PeerCheckpointRecord, RequestInRecord, RequestOutRecord, ResponseInRecord, ResponseOutRecord, ResponseRefusedRecord } from '../log/records.js'
import { logOrigin } from '../log/peer-logs.js'
import { AgreementSetSchema, agreementSetHash, type Agreement } from '../policy/agreements.js'
import { decide, type DecisionRequest } from '../policy/decide.js'
import { QuotaCounter, utcDay } from '../policy/quota.js'
import { canonicalJson } from '../protocol/canonical-json.js'
import { PlainQuerySchema, REQUEST_TYP, RESPONSE_TYP, RequestPayloadSchema, ResponsePayloadSchema, type RequestPayload, type ResponsePayload } from '../protocol/envelope.js'
import { COMPACT_JWS_RE, digestSchema, KID_RE, memberIdSchema as memberId } from '../protocol/vocabulary.js'
import { fromB64u } from '../util/base64url.js'
import { EXPORT_FILES, EXPORT_FORMAT } from './export.js'
import { FINDINGS, type AuditCode, type AuditFinding, type Severity } from './findings.js'
import { FREE_TEXT_FIELDS, LogRecordSchema, RECORD_TYPES } from './record-schemas.js'
import { scanValue, type PiiHit } from './pii.js'
import { checkRotation } from './key-rotation.js'
import { invalidExport, listFiles, readOptional, resolveRootKey, splitLines } from './export-reader.js'

export interface AuditOptions {
  /**
   * The trust anchor: a public KeyObject, a base64url raw Ed25519 key, or the path of a .pub file.
   * Default: the export's own federation-root.pub (then the report says so: an auditor should
   * bring the anchor from the authority, not from the node being audited).
   */
  rootKey?: KeyObject | string
  /** more manifest JWS texts to add to the history (e.g. the authority's archive) */
  manifests?: readonly string[]
  /** how far a signed iat may be from the logged instant before AUDIT_IAT_SKEW (default 5 min) */
  maxIatSkewMs?: number
  /** also list every decision's replay and every answer's permit in `report.replay` (audit replay) */
  collectReplay?: boolean
}

/** One decision re-run against the agreement set in force at its point of the log (audit replay). */
export interface DecisionReplay {
  xid: string
  index: number
  consumer: string
  service: string | null
  /** the policy hash the decision names, and the leaf of the agreements record in force (null: none) */
  policy: string
  policyIndex: number | null
  logged: { permit: boolean; agreement?: string; code?: string }
  /** null when the decision cannot be re-run (no agreements in force, or no request to re-run) */
  replayed: { permit: boolean; agreement?: string; code?: string } | null
  /** what was re-run: the signed request from the evidence, or only the request-in leaf */
  source: 'signed request' | 'request-in record' | null
  /** null when not replayed */
  agrees: boolean | null
}

/** One released response and the decision it followed (audit replay). */
export interface AnswerReplay {
  xid: string
  index: number
  status: 'ok' | 'denied'
  /** the leaf of the decision for this very request before it, or null */
  decisionIndex: number | null
  /** an `ok` answer needs a preceding permit for the same request */
  permitted: boolean
}

export interface ExchangeReport {
  xid: string
  role: 'provider' | 'consumer'
  /** the other member: the consumer (provider role) or the provider (consumer role) */
  peer: string
  /** this log's leaves of the exchange */
  indices: number[]
  findings: AuditFinding[]
}

export interface AuditReport {
  v: 1
  /** true when there is no finding of severity error */
  ok: boolean
  dir: string
  member: string
  federation: string | null
  origin: string
  /** `federation-root#<thumbprint>` of the trust anchor used, and where it came from */
  trustAnchor: { kid: string; source: 'given' | 'export' }
  leaves: number
  /** the largest checkpoint whose signature verified, with whether the leaves recompute its root */
  checkpoint: { size: number; rootHash: string; rootMatches: boolean } | null
  manifests: { seq: number; hash: string; iat: number; exp: number }[]
  counts: { provider: number; consumer: number; evidence: number; errors: number; warnings: number; infos: number }
  /** every finding, log-wide ones first, then in leaf order */
  findings: AuditFinding[]
  /** the exchanges that have findings, in log order, with their findings */
  exchanges: ExchangeReport[]
  /** with `collectReplay`: every decision's replay and every answer's permit, in log order */
  replay?: { decisions: DecisionReplay[]; answers: AnswerReplay[] }
}

const DEFAULT_IAT_SKEW_MS = 5 * 60_000
/** An xid read from unvalidated input is only echoed in findings when it looks like one. */
const SAFE_XID = /^[A-Za-z0-9_-]{1,64}$/
const SAFE_KID = KID_RE

const MetaSchema = z.object({
  v: z.literal(1),
  format: z.literal(EXPORT_FORMAT),
  member: memberId,
  federation: z.string().optional(),
  origin: z.string().optional(),
  size: z.number().int().nonnegative().optional(),
  disclosures: z.boolean().optional(),
  disclosureReason: z.string().optional(),
  files: z.record(z.string(), z.object({ sha256: z.string(), bytes: z.number() })).optional(),
})

const EvidenceLineSchema = z.strictObject({
  digest: digestSchema,
  jws: z.string().regex(COMPACT_JWS_RE),
})

const sha256b64u = (s: string): string => createHash('sha256').update(s, 'ascii').digest('base64url')

/** Constant-time comparison of two base64url digests (sigstore-js habit; public data here). */
function digestEquals(a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

const fatalUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/** The decoded, unverified JSON payload of a compact JWS (read as strictly as the node does), or undefined. */
function unverifiedPayload(jws: string): unknown {
  try {
    return unverifiedJwsPayload(jws)
  } catch {
    return undefined
  }
}

interface Where {
  xid?: string
  role?: 'provider' | 'consumer'
  index?: number
}

interface ProviderExchange {
  xid: string
  iss: string
  indices: number[]
  reqIn?: { i: number; r: RequestInRecord }
  decision?: { i: number; r: DecisionRecord }
  respOut?: { i: number; r: ResponseOutRecord }
}

interface ConsumerExchange {
  xid: string
  aud: string
  indices: number[]
  reqOut?: { i: number; r: RequestOutRecord }
  respIn?: { i: number; r: ResponseInRecord }
  refused?: { i: number; r: ResponseRefusedRecord }
}

/** Audits the export in `dir`. @throws VN_ERR_AUDIT_EXPORT_INVALID when it is not an export; VN_ERR_KEY_FILE for a bad root key */
export async function auditExport(dir: string, opts: AuditOptions = {}): Promise<AuditReport> {
  const root = resolve(dir)
  const findings: AuditFinding[] = []
  const add = (code: AuditCode, message: string, where: Where = {}, severity: Severity = FINDINGS[code].severity): void => {
    const f: AuditFinding = { code, severity, message }
    if (where.xid !== undefined) f.xid = where.xid
    if (where.role !== undefined) f.role = where.role
    if (where.index !== undefined) f.index = where.index
    findings.push(f)
  }

  // ---------------------------------------------------------------------------------------------
  // 0. The export's files

  const metaBuf = await readOptional(join(root, EXPORT_FILES.meta))
  if (metaBuf === undefined) throw invalidExport(`${root}: no ${EXPORT_FILES.meta} (not a log export?)`)
  let metaRaw: unknown
  try {
    metaRaw = JSON.parse(metaBuf.toString('utf8'))
  } catch (e) {
    throw invalidExport(`${EXPORT_FILES.meta}: not JSON`, e)
  }
  const metaParsed = MetaSchema.safeParse(metaRaw)
  if (!metaParsed.success) throw invalidExport(`${EXPORT_FILES.meta}: ${formatZodIssues(metaParsed.error)}`)
  const meta = metaParsed.data
  const member = meta.member
  const entriesBuf = await readOptional(join(root, EXPORT_FILES.entries))
  if (entriesBuf === undefined) throw invalidExport(`${root}: no ${EXPORT_FILES.entries}`)

  for (const [file, info] of Object.entries(meta.files ?? {})) {
    // Names come from an unsigned file: only plain relative paths, and never echoed beyond 200 chars.
    if (file.includes('..') || !/^[A-Za-z0-9._/-]{1,200}$/.test(file)) continue
    const b = await readOptional(join(root, file))
    if (b === undefined) add('AUDIT_EXPORT_FILE_HASH', `${file}: listed in ${EXPORT_FILES.meta} but missing`)
    else if (createHash('sha256').update(b).digest('hex') !== info.sha256 || b.length !== info.bytes) {
      add('AUDIT_EXPORT_FILE_HASH', `${file}: differs from the SHA-256 ${EXPORT_FILES.meta} lists`)
    }
  }

  // Trust anchor.
  let anchor: KeyObject
  let anchorSource: 'given' | 'export'
  if (opts.rootKey !== undefined) {
    anchor = await resolveRootKey(opts.rootKey)
    anchorSource = 'given'
  } else {
    const p = join(root, EXPORT_FILES.root)
    if ((await readOptional(p)) === undefined) throw invalidExport(`${root}: no ${EXPORT_FILES.root} and no root key given`)
    anchor = await loadPublicKey(p)
    anchorSource = 'export'
  }

  // ---------------------------------------------------------------------------------------------
  // 1. Manifests → key history

  const manifestTexts: { name: string; jws: string }[] = []
  for (const n of await listFiles(join(root, EXPORT_FILES.manifests), '.jws')) {
    manifestTexts.push({ name: `${EXPORT_FILES.manifests}/${n}`, jws: (await readFile(join(root, EXPORT_FILES.manifests, n), 'utf8')).trim() })
  }
  ;(opts.manifests ?? []).forEach((jws, i) => manifestTexts.push({ name: `manifests option [${i}]`, jws: jws.trim() }))
  const verified: Federation[] = []
  for (const m of manifestTexts) {
    try {
      verified.push(Federation.fromJws(m.jws, anchor, { now: 0, allowExpired: true }))
    } catch (e) {
      add('AUDIT_MANIFEST_INVALID', `${m.name}: ${isVnError(e) ? (e.detail ?? e.code) : 'does not verify'}`)
    }
  }
  // Build the history one manifest at a time, in seq order, so one bad manifest does not hide the rest.
  let history = new KeyHistory([])
  for (const f of verified.sort((a, b) => a.seq - b.seq)) {
    try {
      history = new KeyHistory([...history.manifests, f])
    } catch (e) {
      add('AUDIT_MANIFEST_HISTORY', `manifest seq ${f.seq}: ${isVnError(e) ? (e.detail ?? e.code) : 'refused'}`)
    }
  }
  const manifests = history.manifests
  const latest = manifests[manifests.length - 1]
  if (latest === undefined) add('AUDIT_NO_MANIFEST', 'no manifest verifies against the trust anchor; no signature can be checked')
  const federation = latest?.name ?? meta.federation ?? null
  const origin = logOrigin(federation ?? '?', member)
  if (latest !== undefined && !manifests.some((f) => f.has(member))) add('AUDIT_MEMBER_UNKNOWN', `member ${member} is in none of the manifests`)
  if (meta.origin !== undefined && meta.origin !== origin) add('AUDIT_EXPORT_META_MISMATCH', `${EXPORT_FILES.meta}: origin is not ${origin}`)

  // ---------------------------------------------------------------------------------------------
  // 2. Checkpoints against the recomputed tree

  const leaves = splitLines(entriesBuf)
  if (meta.size !== undefined && meta.size !== leaves.length) {
    add('AUDIT_EXPORT_META_MISMATCH', `${EXPORT_FILES.meta}: size ${meta.size}, but ${EXPORT_FILES.entries} holds ${leaves.length} leaves`)
  }
  const logVerifiers = new Map<string, NoteVerifier>()
  for (const f of manifests) {
    if (!f.has(member)) continue
    for (const k of f.member(member).logKeys.values()) {
      if (!logVerifiers.has(k.x)) logVerifiers.set(k.x, ed25519NoteVerifier(origin, fromB64u(k.x) as Buffer))
    }
  }
  const signedCheckpoints: { file: string; size: number; rootHash: Uint8Array }[] = []
  for (const n of await listFiles(join(root, EXPORT_FILES.checkpoints), '.note')) {
    const file = `${EXPORT_FILES.checkpoints}/${n}`
    const note = await readFile(join(root, EXPORT_FILES.checkpoints, n), 'utf8')
    let cp
    try {
      cp = parseCheckpoint(parseNote(note).text)
    } catch (e) {
      add('AUDIT_CHECKPOINT_INVALID', `${file}: ${isVnError(e) ? (e.detail ?? e.code) : 'malformed'}`)
      continue
    }
    if (cp.origin !== origin) {
      add('AUDIT_CHECKPOINT_INVALID', `${file}: origin is not ${origin}`)
      continue
    }
    try {
      openNote(note, [...logVerifiers.values()])
    } catch (e) {
      add('AUDIT_CHECKPOINT_SIGNATURE', `${file}: ${isVnError(e) ? (e.detail ?? e.title) : 'does not verify'} (log keys of ${member} in the manifests: ${logVerifiers.size})`)
      continue
    }
    signedCheckpoints.push({ file, size: cp.size, rootHash: cp.rootHash })
  }
  signedCheckpoints.sort((a, b) => a.size - b.size)

  // One pass over the leaves computes every needed root (RFC 9162 §2.1.1 with a stack of perfect
  // subtrees, as merkle.ts rootFromLeafHashes does).
  const leafHashes = leaves.map((l) => leafHash(l))
  const wanted = new Set(signedCheckpoints.map((c) => c.size).filter((s) => s <= leaves.length))
  const roots = new Map<number, Uint8Array>()
  if (wanted.has(0)) roots.set(0, EMPTY_ROOT)
  const stack: Uint8Array[] = []
  for (let n = 0; n < leafHashes.length; n++) {
    let h = leafHashes[n] as Uint8Array
    for (let m = n; m % 2 === 1; m = (m - 1) / 2) h = nodeHash(stack.pop() as Uint8Array, h)
    stack.push(h)
    if (wanted.has(n + 1)) roots.set(n + 1, foldRange(stack))
  }
  let best: AuditReport['checkpoint'] = null
  for (const c of signedCheckpoints) {
    const b64 = Buffer.from(c.rootHash).toString('base64')
    if (c.size > leaves.length) {
      add('AUDIT_CHECKPOINT_BEYOND_LOG', `${c.file}: signed for ${c.size} leaves, the export holds ${leaves.length}`)
      best = { size: c.size, rootHash: b64, rootMatches: false }
      continue
    }
    const ok = hashEquals(roots.get(c.size) as Uint8Array, c.rootHash)
    if (!ok) add('AUDIT_ROOT_MISMATCH', `${c.file}: the first ${c.size} leaves do not recompute the signed root`)
    best = { size: c.size, rootHash: b64, rootMatches: ok }
  }
  if (best === null) add('AUDIT_NO_CHECKPOINT', `no checkpoint signed by a log key of ${member} (${leaves.length} leaves uncovered)`)
  else if (best.size < leaves.length) {
    add('AUDIT_NOT_CHECKPOINTED', `leaves ${best.size}..${leaves.length - 1} (${leaves.length - best.size}) are after the latest checkpoint`)
  }

  // ---------------------------------------------------------------------------------------------
  // 3. Leaves: canonical JSON, known record types, PII scan

  const records: (LogRecord | undefined)[] = []
  const values: unknown[] = []
  const vetted = new Set<string>()
  /** Where a leaf belongs, read from its raw JSON (before, or despite, schema validation). */
  const leafWhere = (value: unknown, i: number): Where => {
    const v = value !== null && typeof value === 'object' ? (value as { t?: unknown; xid?: unknown }) : {}
    const w: Where = { index: i }
    if (typeof v.xid === 'string' && SAFE_XID.test(v.xid)) w.xid = v.xid
    if (v.t === 'request-in' || v.t === 'decision' || v.t === 'response-out') w.role = 'provider'
    if (v.t === 'request-out' || v.t === 'response-in' || v.t === 'response-refused') w.role = 'consumer'
    return w
  }
  leaves.forEach((leaf, i) => {
    let text: string
    let value: unknown
    try {
      text = fatalUtf8.decode(leaf)
      value = JSON.parse(text)
    } catch {
      add('AUDIT_LEAF_INVALID', `leaf ${i}: not UTF-8 JSON`, { index: i })
      records.push(undefined)
      values.push(undefined)
      return
    }
    values.push(value)
    let canonical: string | undefined
    try {
      canonical = canonicalJson(value)
    } catch {
      canonical = undefined
    }
    if (canonical !== text) add('AUDIT_LEAF_NOT_CANONICAL', `leaf ${i}: not RFC 8785 canonical JSON`, leafWhere(value, i))
    const r = LogRecordSchema.safeParse(value)
    if (!r.success) {
      const t = (value as { t?: unknown } | null)?.t
      const known = typeof t === 'string' && (RECORD_TYPES as readonly string[]).includes(t)
      add('AUDIT_LEAF_INVALID', `leaf ${i}: ${known ? `${t}: ${formatZodIssues(r.error)}` : 'unknown record type'}`, leafWhere(value, i))
      records.push(undefined)
      return
    }
    const rec = r.data as LogRecord
    records.push(rec)
    if (rec.t === 'agreements') {
      const a = AgreementSetSchema.safeParse(rec.agreements)
      if (a.success) for (const ag of a.data) for (const s of [...ag.purposes, ag.basis]) vetted.add(s)
    }
  })
  const piiFinding = (hits: PiiHit[], label: string, where: Where): void => {
    for (const h of hits) {
      const code: AuditCode = h.kind === 'identifier' ? 'AUDIT_PII_IDENTIFIER' : h.kind === 'name' ? 'AUDIT_PII_NAME' : 'AUDIT_PII_SUSPECT_TEXT'
      add(code, `${label}: ${h.path}`, where)
    }
  }
  values.forEach((value, i) => {
    if (value === undefined) return
    const t = (value as { t?: unknown } | null)?.t
    const freeText = t === 'agreements' ? 'all' : typeof t === 'string' ? (FREE_TEXT_FIELDS[t] ?? []) : []
    piiFinding(scanValue(value, { freeText, vetted }), `leaf ${i}`, leafWhere(value, i))
  })

  // ---------------------------------------------------------------------------------------------
  // Evidence

  const evidence = new Map<string, string>()
  const evBuf = await readOptional(join(root, EXPORT_FILES.evidence))
  if (evBuf !== undefined) {
    splitLines(evBuf).forEach((line, n) => {
      if (line.length === 0) return
      let parsed
      try {
        parsed = EvidenceLineSchema.safeParse(JSON.parse(line.toString('utf8')))
      } catch {
        parsed = undefined
      }
      if (parsed === undefined || !parsed.success) {
        add('AUDIT_EVIDENCE_MALFORMED', `${EXPORT_FILES.evidence} line ${n + 1}: not a { digest, jws } record`)
        return
      }
      const prev = evidence.get(parsed.data.digest)
      if (prev !== undefined && prev !== parsed.data.jws) add('AUDIT_EVIDENCE_MALFORMED', `${EXPORT_FILES.evidence} line ${n + 1}: a second, different JWS for digest ${parsed.data.digest}`)
      if (prev === undefined) evidence.set(parsed.data.digest, parsed.data.jws)
    })
  }

  // Evidence payloads are scanned too. The purpose and basis a leaf already carries (and was
  // scanned for) are not reported a second time as suspect text; identifiers always are.
  const leafTexts = new Set<string>(vetted)
  for (const r of records) if (r?.t === 'request-in' || r?.t === 'request-out') leafTexts.add(r.purpose).add(r.basis)
  const scanned = new Set<string>()
  const scanEvidence = (digest: string, jws: string, where: Where): void => {
    if (scanned.has(digest)) return
    scanned.add(digest)
    const payload = unverifiedPayload(jws)
    if (payload !== undefined) piiFinding(scanValue(payload, { freeText: ['purpose', 'basis'], vetted: leafTexts }), `evidence ${digest} payload`, where)
  }

  const evidenceChecked = new Map<string, string | null>()
  /** The JWS for `digest` if the evidence holds it and it hashes to it; reports once per digest. */
  const evidenceFor = (digest: string, what: string, where: Where): string | undefined => {
    const seen = evidenceChecked.get(digest)
    if (seen !== undefined) return seen ?? undefined
    const jws = evidence.get(digest)
    let out: string | null = null
    if (jws === undefined) add('AUDIT_EVIDENCE_MISSING', `${what} ${digest}: no JWS in the evidence`, where)
    else if (!digestEquals(sha256b64u(jws), digest)) add('AUDIT_EVIDENCE_DIGEST_MISMATCH', `${what} ${digest}: the evidence JWS hashes to another digest`, where)
    else out = jws
    evidenceChecked.set(digest, out)
    if (jws !== undefined) scanEvidence(digest, jws, where)
    return out ?? undefined
  }

  /** Step 4: structure, typ, payload schema, signer, key valid at iat, signature. */
  const checkJws = <T extends { iat: number; iss: string }>(jws: string, typ: string, schema: z.ZodType<T>, what: string, where: Where, expectedSigner?: string): T | undefined => {
    let kid: string
    let typHeader: unknown
    try {
      const p = peekJws(jws)
      kid = p.header.kid
      typHeader = p.header.typ
    } catch (e) {
      add('AUDIT_SIGNATURE_INVALID', `${what}: ${isVnError(e) ? e.code : 'malformed JWS'}`, where)
      return undefined
    }
    if (typHeader !== typ) {
      add('AUDIT_ENVELOPE_INVALID', `${what}: typ is not ${typ}`, where)
      return undefined
    }
    const parsed = schema.safeParse(unverifiedPayload(jws))
    if (!parsed.success) {
      add('AUDIT_ENVELOPE_INVALID', `${what}: ${formatZodIssues(parsed.error)}`, where)
      return undefined
    }
    const claims = parsed.data
    // The kid comes from untrusted input and is echoed in findings: only in its protocol shape.
    if (!SAFE_KID.test(kid)) {
      add('AUDIT_KEY_NOT_VALID', `${what}: kid is not <member>#<key id>`, where)
      return undefined
    }
    const signer = splitKid(kid)?.member
    if (signer === undefined || signer !== claims.iss || (expectedSigner !== undefined && signer !== expectedSigner)) {
      add('AUDIT_SIGNER_MISMATCH', `${what}: signed with kid ${kid}, expected a key of ${expectedSigner ?? claims.iss}`, where)
      return undefined
    }
    try {
      verifyJws(jws, history.messageKeyResolver(claims.iat, signer), typ)
    } catch (e) {
      const code = isVnError(e) ? e.code : undefined
      if (code === 'VN_ERR_JWS_KEY_NOT_VALID' || code === 'VN_ERR_JWS_UNKNOWN_KID' || code === 'VN_ERR_FED_MANIFEST_EXPIRED') {
        add('AUDIT_KEY_NOT_VALID', `${what}: ${(e as VnError).detail ?? code} (iat ${new Date(claims.iat).toISOString()})`, where)
      } else {
        add('AUDIT_SIGNATURE_INVALID', `${what}: ${code ?? 'does not verify'}`, where)
      }
      return undefined
    }
    return claims
  }

  const maxSkew = opts.maxIatSkewMs ?? DEFAULT_IAT_SKEW_MS
  const checkSkew = (iat: number, at: number, what: string, where: Where): void => {
    if (Math.abs(iat - at) > maxSkew) add('AUDIT_IAT_SKEW', `${what}: iat is ${Math.round((iat - at) / 1000)} s from the logged instant`, where)
  }
  const mismatch = (fields: [string, unknown, unknown][]): string[] => fields.filter(([, a, b]) => a !== b).map(([f]) => f)

  const requestClaims = new Map<string, RequestPayload | null>()
  /** The verified request of `digest` (evidence + signature), memoized; reports problems once. */
  const verifiedRequest = (digest: string, where: Where, expectedSigner?: string): RequestPayload | undefined => {
    const seen = requestClaims.get(digest)
    if (seen !== undefined) return seen ?? undefined
    const jws = evidenceFor(digest, 'request', where)
    const claims = jws === undefined ? undefined : checkJws(jws, REQUEST_TYP, RequestPayloadSchema, `request ${digest}`, where, expectedSigner)
    requestClaims.set(digest, claims ?? null)
    return claims
  }
  const subjectCount = (req: RequestPayload, what: string, where: Where): number | undefined => {
    if (req.mode !== 'plain') return undefined
    const q = PlainQuerySchema.safeParse(req.q)
    if (!q.success) {
      add('AUDIT_ENVELOPE_INVALID', `${what}: q: ${formatZodIssues(q.error)}`, where)
      return undefined
    }
    return q.data.subjects.length
  }

  // ---------------------------------------------------------------------------------------------
  // 4-6. The log in order

  const provider = new Map<string, ProviderExchange>()
  const consumer = new Map<string, ConsumerExchange>()
  const exchangeOrder: ({ role: 'provider'; ex: ProviderExchange } | { role: 'consumer'; ex: ConsumerExchange })[] = []
  let policy: { hash: string; agreements: Agreement[] | undefined; index: number } | undefined
  const quotas = new QuotaCounter()
  const replayRows: AuditReport['replay'] = opts.collectReplay === true ? { decisions: [], answers: [] } : undefined

  const onKeyEvent = (i: number, r: KeyEventRecord): void => {
    const w = { index: i }
    // A rotation is signed by the old and the new key over one statement (key-rotation.ts); the
    // new key should be listed for the member by some manifest, else nobody can accept it.
    for (const p of checkRotation(r)) add('AUDIT_KEY_ROTATION_SIGNATURE', `leaf ${i}: ${p}`, w)
    if (r.event === 'rotated' && r.rotated !== undefined && r.newKey !== undefined && manifests.length > 0) {
      const list = r.rotated === 'message' ? 'messageKeys' : 'logKeys'
      if (!manifests.some((f) => f.has(member) && [...f.member(member)[list].values()].some((k) => k.x === r.newKey))) {
        add('AUDIT_KEY_ROTATION_UNLISTED', `leaf ${i}: the new ${r.rotated} key is in none of the manifests (send it to the authority: federation add-key)`, w)
      }
    }
    if (r.member !== member) add('AUDIT_KEY_EVENT_MISMATCH', `leaf ${i}: key event of member ${r.member} in the log of ${member}`, w)
    const named = manifests.find((f) => digestEquals(f.hash, r.manifestHash))
    if (named === undefined) add('AUDIT_MANIFEST_MISSING', `leaf ${i}: names manifest seq ${r.manifestSeq} (${r.manifestHash}), which the export does not hold`, w)
    else if (named.seq !== r.manifestSeq) add('AUDIT_KEY_EVENT_MISMATCH', `leaf ${i}: manifest ${r.manifestHash} has seq ${named.seq}, not ${r.manifestSeq}`, w)
    const kid = splitKid(r.messageKid)
    if (kid === undefined || kid.member !== member) {
      add('AUDIT_KEY_EVENT_MISMATCH', `leaf ${i}: message kid is not a kid of ${member}`, w)
    } else if (manifests.length > 0) {
      const c = history.messageKeyAt(member, kid.keyId, r.at)
      if (!c.valid) add('AUDIT_KEY_EVENT_MISMATCH', `leaf ${i}: ${c.reason}`, w)
      else if (publicKeyToB64u(c.key) !== r.messageKey) add('AUDIT_KEY_EVENT_MISMATCH', `leaf ${i}: message key differs from ${r.messageKid} in manifest seq ${c.seq}`, w)
      const f = history.inForce(r.at)
      if (f !== undefined && f.has(member) && ![...f.member(member).logKeys.values()].some((k) => k.x === r.logKey)) {
        add('AUDIT_KEY_EVENT_MISMATCH', `leaf ${i}: log key is not listed for ${member} in manifest seq ${f.seq}`, w)
      }
    }
  }

  // A witnessed checkpoint that carries its note must be that note: hash, size and root.
  const onPeerCheckpoint = (i: number, r: PeerCheckpointRecord): void => {
    if (r.note === undefined) return
    let bad: string[]
    try {
      const cp = parseCheckpoint(parseNote(r.note).text)
      bad = mismatch([
        ['noteHash', createHash('sha256').update(r.note).digest('base64url'), r.noteHash],
        ['size', cp.size, r.size],
        ['rootHash', Buffer.from(cp.rootHash).toString('base64'), r.rootHash],
        ['origin', cp.origin, logOrigin(federation ?? '?', r.peer)],
      ])
    } catch {
      bad = ['note']
    }
    if (bad.length > 0) add('AUDIT_LEAF_INVALID', `leaf ${i}: peer-checkpoint differs from the note it carries in ${bad.join(', ')}`, { index: i })
  }

  // A witness's proof that a peer showed it two inconsistent checkpoints (peer-logs.ts): reported
  // for the auditor to follow up with `audit consistency` on the two notes and the peer's export.
  const onForkEvidence = (i: number, r: ForkEvidenceRecord): void => {
    const origin = logOrigin(federation ?? '?', r.peer)
    const verifiers: NoteVerifier[] = []
    for (const f of manifests) if (f.has(r.peer)) for (const k of f.member(r.peer).logKeys.values()) verifiers.push(ed25519NoteVerifier(origin, fromB64u(k.x) as Buffer))
    const signed = r.notes.filter((n) => {
      try {
        return parseCheckpoint(openNote(n, verifiers).text).origin === origin
      } catch {
        return false
      }
    }).length
    add('AUDIT_PEER_FORK_REPORTED', `leaf ${i}: ${member} kept two checkpoints of ${r.peer}'s log it found inconsistent (${signed} of 2 signed by ${r.peer}'s log key); check them with audit consistency`, { index: i }, signed === 2 ? 'error' : 'warning')
  }

  const onAgreements = (i: number, r: AgreementsRecord): void => {
    const a = AgreementSetSchema.safeParse(r.agreements)
    if (!a.success) add('AUDIT_LEAF_INVALID', `leaf ${i}: agreements: ${formatZodIssues(a.error)}`, { index: i })
    else if (!digestEquals(agreementSetHash(a.data), r.policy)) add('AUDIT_POLICY_HASH_MISMATCH', `leaf ${i}: policy ${r.policy} is not the hash of the agreements listed`, { index: i })
    policy = { hash: r.policy, agreements: a.success ? a.data : undefined, index: i }
  }

  const provKey = (iss: string, xid: string): string => `${iss}|${xid}`
  const provExchange = (iss: string, xid: string): ProviderExchange => {
    let ex = provider.get(provKey(iss, xid))
    if (ex === undefined) {
      ex = { xid, iss, indices: [] }
      provider.set(provKey(iss, xid), ex)
      exchangeOrder.push({ role: 'provider', ex })
    }
    return ex
  }

  const onRequestIn = (i: number, r: RequestInRecord): void => {
    const w: Where = { xid: r.xid, role: 'provider', index: i }
    let ex = provider.get(provKey(r.iss, r.xid))
    if (ex?.reqIn !== undefined) {
      add('AUDIT_DUPLICATE_EXCHANGE', `leaf ${i}: a second request-in for this xid (first at leaf ${ex.reqIn.i})`, w)
      ex = { xid: r.xid, iss: r.iss, indices: [] }
      provider.set(provKey(r.iss, r.xid), ex)
      exchangeOrder.push({ role: 'provider', ex })
    }
    ex ??= provExchange(r.iss, r.xid)
    ex.reqIn = { i, r }
    ex.indices.push(i)
  }

  const onDecision = (i: number, r: DecisionRecord): void => {
    const w: Where = { xid: r.xid, role: 'provider', index: i }
    const ex = provExchange(r.iss, r.xid)
    ex.indices.push(i)
    if (ex.reqIn === undefined) add('AUDIT_ORPHAN_ENTRY', `leaf ${i}: decision without a request-in before it`, w)
    else {
      const bad = mismatch([['reqDigest', r.reqDigest, ex.reqIn.r.reqDigest], ['count', r.count, ex.reqIn.r.count]])
      if (bad.length > 0) add('AUDIT_BINDING_MISMATCH', `leaf ${i}: decision differs from request-in (leaf ${ex.reqIn.i}) in ${bad.join(', ')}`, w)
    }
    if (ex.decision !== undefined) add('AUDIT_DUPLICATE_EXCHANGE', `leaf ${i}: a second decision for this xid (first at leaf ${ex.decision.i})`, w)
    ex.decision = { i, r }
    if (r.day !== utcDay(r.at)) add('AUDIT_BINDING_MISMATCH', `leaf ${i}: day ${r.day} is not the UTC day of at`, w)
    if (r.permit && r.agreement === undefined) add('AUDIT_LEAF_INVALID', `leaf ${i}: a permit that names no agreement`, w)
    if (!r.permit && r.code === undefined) add('AUDIT_LEAF_INVALID', `leaf ${i}: a denial without a code`, w)

    // Step 5: the policy in force is the latest agreements record before this decision.
    if (policy === undefined) add('AUDIT_POLICY_NOT_IN_FORCE', `leaf ${i}: no agreements record before this decision`, w)
    else if (!digestEquals(policy.hash, r.policy)) add('AUDIT_POLICY_NOT_IN_FORCE', `leaf ${i}: policy ${r.policy} is not ${policy.hash} put in force at leaf ${policy.index}`, w)

    // Replay: the signed request when the evidence has it, else the request-in record.
    const signed = evidence.has(r.reqDigest) ? verifiedRequest(r.reqDigest, w) : undefined
    const src = signed ?? ex.reqIn?.r
    const row: DecisionReplay | undefined = replayRows === undefined ? undefined : {
      xid: r.xid, index: i, consumer: r.iss, service: src?.svc ?? null, policy: r.policy, policyIndex: policy?.index ?? null,
      logged: r.permit ? { permit: true, ...(r.agreement === undefined ? {} : { agreement: r.agreement }) } : { permit: false, ...(r.code === undefined ? {} : { code: r.code }) },
      replayed: null, source: null, agrees: null,
    }
    if (row !== undefined) replayRows?.decisions.push(row)
    if (policy?.agreements !== undefined && src !== undefined) {
      const req: DecisionRequest = {
        consumer: src.iss,
        service: src.svc,
        purpose: src.purpose,
        basis: src.basis,
        mode: src.mode,
        count: r.count,
        at: r.at,
      }
      // Only today's counts matter (and yesterday's, for entries logged out of order around
      // midnight); pruning keeps each clone small on a long log.
      quotas.prune(utcDay(Math.max(0, r.at - 86_400_000)))
      const replay = decide(req, policy.agreements, quotas.clone())
      const same = r.permit ? replay.permit && replay.agreementId === r.agreement : !replay.permit && replay.code === r.code
      if (row !== undefined) {
        row.replayed = replay.permit ? { permit: true, agreement: replay.agreementId } : { permit: false, code: replay.code }
        row.source = signed !== undefined ? 'signed request' : 'request-in record'
        row.agrees = same
      }
      if (!same) {
        const got = replay.permit ? `permit under ${replay.agreementId}` : `${replay.code} (${replay.reason})`
        const logged = r.permit ? `permit under ${r.agreement ?? '?'}` : (r.code ?? 'denial')
        // Answering what should have been denied is the failure an audit exists for; denying what
        // could have been permitted is over-cautious (e.g. quota counted for a failed lookup).
        add('AUDIT_DECISION_REPLAY_MISMATCH', `leaf ${i}: logged ${logged}, replay gives ${got}`, w, r.permit ? 'error' : 'warning')
      }
    }
    if (r.permit && r.agreement !== undefined) quotas.restore([{ agreementId: r.agreement, day: r.day, count: r.count }])
  }

  const onResponseOut = (i: number, r: ResponseOutRecord): void => {
    const w: Where = { xid: r.xid, role: 'provider', index: i }
    const ex = provExchange(r.aud, r.xid)
    ex.indices.push(i)
    if (ex.reqIn === undefined) add('AUDIT_ORPHAN_ENTRY', `leaf ${i}: response-out without a request-in before it`, w)
    else {
      const bad = mismatch([['requestIndex', r.requestIndex, ex.reqIn.i], ['reqDigest', r.reqDigest, ex.reqIn.r.reqDigest]])
      if (bad.length > 0) add('AUDIT_BINDING_MISMATCH', `leaf ${i}: response-out differs from request-in (leaf ${ex.reqIn.i}) in ${bad.join(', ')}`, w)
    }
    if (ex.respOut !== undefined) add('AUDIT_DUPLICATE_EXCHANGE', `leaf ${i}: a second response-out for this xid (first at leaf ${ex.respOut.i})`, w)
    ex.respOut = { i, r }

    // Step 5: an answer follows a permit for this very request.
    const d = ex.decision
    if (d === undefined) {
      if (r.status === 'ok') add('AUDIT_NO_PERMIT', `leaf ${i}: answer released with no decision before it`, w)
      else add('AUDIT_NO_DECISION', `leaf ${i}: denial logged with no decision before it`, w)
    } else if (!digestEquals(d.r.reqDigest, r.reqDigest)) {
      if (r.status === 'ok') add('AUDIT_NO_PERMIT', `leaf ${i}: the decision at leaf ${d.i} is for another request`, w)
      else add('AUDIT_BINDING_MISMATCH', `leaf ${i}: the decision at leaf ${d.i} is for another request`, w)
    } else if (r.status === 'ok' && !d.r.permit) add('AUDIT_NO_PERMIT', `leaf ${i}: answer released although the decision at leaf ${d.i} denied`, w)
    else if (r.status === 'denied' && d.r.permit) add('AUDIT_STATUS_MISMATCH', `leaf ${i}: denial logged although the decision at leaf ${d.i} permitted`, w)
    if (replayRows !== undefined) {
      const forThis = d !== undefined && digestEquals(d.r.reqDigest, r.reqDigest)
      replayRows.answers.push({ xid: r.xid, index: i, status: r.status, decisionIndex: forThis ? d.i : null, permitted: forThis && d.r.permit })
    }

    // Step 4: the signed request (by its issuer) and the signed response (by this provider).
    const req = verifiedRequest(r.reqDigest, w)
    if (req !== undefined) {
      if (ex.reqIn !== undefined) {
        const q = ex.reqIn.r
        const bad = mismatch([['xid', req.xid, q.xid], ['iss', req.iss, q.iss], ['svc', req.svc, q.svc], ['mode', req.mode, q.mode], ['purpose', req.purpose, q.purpose], ['basis', req.basis, q.basis]])
        const n = subjectCount(req, `request ${r.reqDigest}`, w)
        if (n !== undefined && n !== q.count) bad.push('count')
        if (bad.length > 0) add('AUDIT_BINDING_MISMATCH', `leaf ${ex.reqIn.i}: request-in differs from the signed request in ${bad.join(', ')}`, w)
        checkSkew(req.iat, q.at, `request ${r.reqDigest}`, w)
      }
      if (req.aud !== member) add('AUDIT_BINDING_MISMATCH', `leaf ${i}: the signed request is addressed to ${req.aud}, not ${member}`, w)
    }
    const respJws = evidenceFor(r.respDigest, 'response', w)
    const resp = respJws === undefined ? undefined : checkJws<ResponsePayload>(respJws, RESPONSE_TYP, ResponsePayloadSchema, `response ${r.respDigest}`, w, member)
    if (resp === undefined) return
    const unbound = mismatch([['reqDigest', resp.reqDigest, r.reqDigest], ['xid', resp.xid, r.xid], ['aud', resp.aud, r.aud], ['iss', resp.iss, member]])
    if (req !== undefined && resp.aud !== req.iss) unbound.push('aud (request iss)')
    if (unbound.length > 0) add('AUDIT_RESPONSE_UNBOUND', `leaf ${i}: the signed response differs in ${unbound.join(', ')}`, w)
    const bad = mismatch([['status', resp.status, r.status], ['log.index', resp.log.index, r.requestIndex]])
    if (d !== undefined && digestEquals(d.r.reqDigest, r.reqDigest)) {
      bad.push(...mismatch([['policy', resp.policy, d.r.policy], ['agreement', resp.agreement, d.r.agreement]]))
      if (!d.r.permit && resp.error?.code !== d.r.code) bad.push('error.code')
    }
    if (bad.length > 0) add('AUDIT_BINDING_MISMATCH', `leaf ${i}: response-out and decision differ from the signed response in ${bad.join(', ')}`, w)
    checkSkew(resp.iat, r.at, `response ${r.respDigest}`, w)
  }

  const consKey = (aud: string, xid: string): string => `${aud}|${xid}`
  const onRequestOut = (i: number, r: RequestOutRecord): void => {
    const w: Where = { xid: r.xid, role: 'consumer', index: i }
    const prev = consumer.get(consKey(r.aud, r.xid))
    if (prev !== undefined) add('AUDIT_DUPLICATE_EXCHANGE', `leaf ${i}: a second request-out for this xid (first at leaf ${prev.reqOut?.i ?? '?'})`, w)
    const ex: ConsumerExchange = { xid: r.xid, aud: r.aud, indices: [i], reqOut: { i, r } }
    consumer.set(consKey(r.aud, r.xid), ex)
    exchangeOrder.push({ role: 'consumer', ex })
    const req = verifiedRequest(r.reqDigest, w, member)
    if (req === undefined) return
    const bad = mismatch([['xid', req.xid, r.xid], ['aud', req.aud, r.aud], ['svc', req.svc, r.svc], ['mode', req.mode, r.mode], ['purpose', req.purpose, r.purpose], ['basis', req.basis, r.basis]])
    const n = subjectCount(req, `request ${r.reqDigest}`, w)
    if (n !== undefined && n !== r.count) bad.push('count')
    if (bad.length > 0) add('AUDIT_BINDING_MISMATCH', `leaf ${i}: request-out differs from the signed request in ${bad.join(', ')}`, w)
    checkSkew(req.iat, r.at, `request ${r.reqDigest}`, w)
  }

  const onResponseIn = (i: number, r: ResponseInRecord): void => {
    const w: Where = { xid: r.xid, role: 'consumer', index: i }
    const ex = consumer.get(consKey(r.iss, r.xid))
    if (ex === undefined) {
      add('AUDIT_ORPHAN_ENTRY', `leaf ${i}: response-in without a request-out before it`, w)
    } else {
      ex.indices.push(i)
      if (ex.respIn !== undefined) add('AUDIT_DUPLICATE_EXCHANGE', `leaf ${i}: a second response-in for this xid (first at leaf ${ex.respIn.i})`, w)
      ex.respIn = { i, r }
      if (ex.reqOut !== undefined && !digestEquals(ex.reqOut.r.reqDigest, r.reqDigest)) {
        add('AUDIT_BINDING_MISMATCH', `leaf ${i}: reqDigest differs from request-out (leaf ${ex.reqOut.i})`, w)
      }
    }
    if (r.status === 'error') return // an unsigned transport or protocol failure: nothing to verify
    if (r.respDigest === undefined) {
      add('AUDIT_LEAF_INVALID', `leaf ${i}: a signed ${r.status} response-in without respDigest`, w)
      return
    }
    const respJws = evidenceFor(r.respDigest, 'response', w)
    const resp = respJws === undefined ? undefined : checkJws<ResponsePayload>(respJws, RESPONSE_TYP, ResponsePayloadSchema, `response ${r.respDigest}`, w, r.iss)
    if (resp === undefined) return
    const unbound = mismatch([['reqDigest', resp.reqDigest, r.reqDigest], ['xid', resp.xid, r.xid], ['aud', resp.aud, member], ['iss', resp.iss, r.iss]])
    if (unbound.length > 0) add('AUDIT_RESPONSE_UNBOUND', `leaf ${i}: the signed response differs in ${unbound.join(', ')}`, w)
    const bad = mismatch([['status', resp.status, r.status], ['peerIndex', resp.log.index, r.peerIndex], ['code', resp.error?.code, r.code]])
    if (bad.length > 0) add('AUDIT_BINDING_MISMATCH', `leaf ${i}: response-in differs from the signed response in ${bad.join(', ')}`, w)
    checkSkew(resp.iat, r.at, `response ${r.respDigest}`, w)
  }

  // A refusal follows the signed ok response-in it refuses (same xid and digests), once.
  const onResponseRefused = (i: number, r: ResponseRefusedRecord): void => {
    const w: Where = { xid: r.xid, role: 'consumer', index: i }
    const ex = consumer.get(consKey(r.iss, r.xid))
    const respIn = ex?.respIn
    if (ex === undefined || respIn === undefined) {
      add('AUDIT_ORPHAN_ENTRY', `leaf ${i}: response-refused without a response-in before it`, w)
      return
    }
    ex.indices.push(i)
    if (ex.refused !== undefined) add('AUDIT_DUPLICATE_EXCHANGE', `leaf ${i}: a second response-refused for this xid (first at leaf ${ex.refused.i})`, w)
    ex.refused = { i, r }
    const bad = mismatch([['status', 'ok', respIn.r.status], ['reqDigest', respIn.r.reqDigest, r.reqDigest], ['respDigest', respIn.r.respDigest, r.respDigest]])
    if (bad.length > 0) add('AUDIT_BINDING_MISMATCH', `leaf ${i}: response-refused differs from the response-in at leaf ${respIn.i} in ${bad.join(', ')}`, w)
  }

  records.forEach((r, i) => {
    if (r === undefined) return
    switch (r.t) {
      case 'key-event': return onKeyEvent(i, r)
      case 'agreements': return onAgreements(i, r)
      case 'request-in': return onRequestIn(i, r)
      case 'decision': return onDecision(i, r)
      case 'response-out': return onResponseOut(i, r)
      case 'request-out': return onRequestOut(i, r)
      case 'response-in': return onResponseIn(i, r)
      case 'response-refused': return onResponseRefused(i, r)
      case 'fork-evidence': return onForkEvidence(i, r)
      case 'peer-checkpoint': return onPeerCheckpoint(i, r)
    }
  })

  // Steps 5-6, what is missing at the end of the log.
  for (const e of exchangeOrder) {
    if (e.role === 'provider' && e.ex.reqIn !== undefined && e.ex.respOut === undefined) {
      add('AUDIT_NO_RESPONSE_LOGGED', `leaf ${e.ex.reqIn.i}: request-in has no response-out`, { xid: e.ex.xid, role: 'provider', index: e.ex.reqIn.i })
    }
    if (e.role === 'consumer' && e.ex.reqOut !== undefined && e.ex.respIn === undefined) {
      add('AUDIT_NO_ANSWER_RECORDED', `leaf ${e.ex.reqOut.i}: no answer recorded for request-out`, { xid: e.ex.xid, role: 'consumer', index: e.ex.reqOut.i })
    }
  }

  for (const [digest, jws] of evidence) {
    const xid = (unverifiedPayload(jws) as { xid?: unknown } | undefined)?.xid
    scanEvidence(digest, jws, typeof xid === 'string' && SAFE_XID.test(xid) ? { xid } : {})
  }

  // Disclosures in the export (log export --with-disclosures) must be accounted for by the last
  // disclosure-export record: same count, and the reason export.json gives hashes to its digest.
  const discBuf = await readOptional(join(root, EXPORT_FILES.disclosures))
  if (discBuf !== undefined || meta.disclosures === true) {
    const lines = discBuf === undefined ? 0 : splitLines(discBuf).filter((l) => l.length > 0).length
    let last: { i: number; r: DisclosureExportRecord } | undefined
    records.forEach((r, i) => {
      if (r?.t === 'disclosure-export') last = { i, r }
    })
    if (last === undefined) add('AUDIT_DISCLOSURES_UNLOGGED', `${EXPORT_FILES.disclosures}: ${lines} exchanges' disclosures, and no disclosure-export record in the log`)
    else if (last.r.count !== lines) add('AUDIT_DISCLOSURES_UNLOGGED', `${EXPORT_FILES.disclosures}: ${lines} exchanges' disclosures, the disclosure-export record at leaf ${last.i} logged ${last.r.count}`, { index: last.i })
    else if (meta.disclosureReason === undefined || !digestEquals(createHash('sha256').update(meta.disclosureReason, 'utf8').digest('base64url'), last.r.reasonDigest)) {
      add('AUDIT_DISCLOSURES_UNLOGGED', `${EXPORT_FILES.meta}: the disclosure reason does not hash to the reasonDigest logged at leaf ${last.i}`, { index: last.i })
    }
  }

  // ---------------------------------------------------------------------------------------------
  // The report

  const order = (f: AuditFinding): number => (f.index === undefined ? -1 : f.index)
  const sorted = findings.map((f, n) => ({ f, n })).sort((a, b) => order(a.f) - order(b.f) || a.n - b.n).map((x) => x.f)
  // Group per exchange: a finding belongs to the exchange of its role and xid that holds its leaf
  // (two exchanges share an xid only when one was logged twice).
  const byKey = new Map<string, AuditFinding[]>()
  for (const f of sorted) {
    if (f.role === undefined || f.xid === undefined) continue
    const k = `${f.role}|${f.xid}`
    const list = byKey.get(k)
    if (list === undefined) byKey.set(k, [f])
    else list.push(f)
  }
  const exchanges: ExchangeReport[] = []
  for (const e of exchangeOrder) {
    const candidates = byKey.get(`${e.role}|${e.ex.xid}`)
    if (candidates === undefined) continue
    const mine = new Set(e.ex.indices)
    const own = candidates.filter((f) => f.index === undefined || mine.has(f.index))
    const peer = e.role === 'provider' ? e.ex.iss : e.ex.aud
    if (own.length > 0) exchanges.push({ xid: e.ex.xid, role: e.role, peer, indices: [...e.ex.indices], findings: own })
  }
  const count = (s: Severity): number => findings.filter((f) => f.severity === s).length
  return {
    v: 1,
    ok: count('error') === 0,
    dir: root,
    member,
    federation,
    origin,
    trustAnchor: { kid: rootKeyId(anchor), source: anchorSource },
    leaves: leaves.length,
    checkpoint: best,
    manifests: manifests.map((f) => ({ seq: f.seq, hash: f.hash, iat: f.iat, exp: f.exp })),
    counts: {
      provider: exchangeOrder.filter((e) => e.role === 'provider').length,
      consumer: exchangeOrder.filter((e) => e.role === 'consumer').length,
      evidence: evidence.size,
      errors: count('error'),
      warnings: count('warning'),
      infos: count('info'),
    },
    findings: sorted,
    exchanges,
    ...(replayRows === undefined ? {} : { replay: replayRows }),
  }
}
