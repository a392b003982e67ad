/**
 * The auditor's finding codes: stable, machine-readable, each with its default severity and what it
 * means. Like the VN_ERR_* catalogue (src/errors.ts), a code never changes meaning once published;
 * scripts match on it. Messages are PII-free: they name leaf indices, fields, member ids, digests
 * and codes, never a subject.
 *
 * Severity: `error` means the log, its evidence or its history cannot be trusted as exported (the
 * audit fails, exit 1); `warning` needs a human look but proves nothing wrong; `info` is context.
 */
export type Severity = 'error' | 'warning' | 'info'

export const FINDINGS = {
  // the export itself
  AUDIT_EXPORT_FILE_HASH: { severity: 'warning', title: 'A file differs from the hash export.json lists for it (changed after export)' },
  AUDIT_EXPORT_META_MISMATCH: { severity: 'warning', title: 'export.json describes the export differently from its files' },

  // federation manifests
  AUDIT_MANIFEST_INVALID: { severity: 'error', title: 'A manifest does not verify against the trust anchor' },
  AUDIT_MANIFEST_HISTORY: { severity: 'error', title: 'The manifests do not form one history (same seq twice, or out of order)' },
  AUDIT_NO_MANIFEST: { severity: 'error', title: 'No manifest verifies against the trust anchor: no key can be checked' },
  AUDIT_MANIFEST_MISSING: { severity: 'warning', title: 'A key event names a manifest the export does not hold' },
  AUDIT_MEMBER_UNKNOWN: { severity: 'error', title: 'The exporting member is not in any manifest' },

  // checkpoints and the Merkle tree
  AUDIT_NO_CHECKPOINT: { severity: 'error', title: 'No checkpoint signed by the member’s log key covers the log' },
  AUDIT_CHECKPOINT_INVALID: { severity: 'error', title: 'A checkpoint note is malformed or names another log' },
  AUDIT_CHECKPOINT_SIGNATURE: { severity: 'error', title: 'A checkpoint is not signed by a log key of the member listed in the manifests' },
  AUDIT_CHECKPOINT_BEYOND_LOG: { severity: 'error', title: 'A signed checkpoint covers more leaves than the export holds (leaves removed or truncated)' },
  AUDIT_ROOT_MISMATCH: { severity: 'error', title: 'The leaves do not recompute the signed checkpoint root (a leaf was changed, removed, added or reordered)' },
  AUDIT_NOT_CHECKPOINTED: { severity: 'info', title: 'Leaves after the latest checkpoint are not yet covered by a signature' },

  // leaves
  AUDIT_LEAF_INVALID: { severity: 'error', title: 'A leaf is not a known log record (bad JSON, unknown type or field, bad value)' },
  AUDIT_LEAF_NOT_CANONICAL: { severity: 'error', title: 'A leaf is not RFC 8785 canonical JSON' },
  AUDIT_PII_IDENTIFIER: { severity: 'error', title: 'A resident ID number or credit code appears in a leaf or evidence payload' },
  AUDIT_PII_NAME: { severity: 'error', title: 'A personal name (CJK text where none belongs, or a name-like token) appears in a leaf or evidence payload' },
  AUDIT_PII_SUSPECT_TEXT: { severity: 'warning', title: 'Unvetted CJK free text in a purpose or basis: check it holds no personal data' },
  AUDIT_POLICY_HASH_MISMATCH: { severity: 'error', title: 'An agreements record’s policy hash is not the hash of its agreements' },
  AUDIT_KEY_EVENT_MISMATCH: { severity: 'error', title: 'A key event names keys the manifest in force does not list for the member' },

  // evidence
  AUDIT_EVIDENCE_MALFORMED: { severity: 'error', title: 'An evidence line is not a { digest, jws } record' },
  AUDIT_EVIDENCE_MISSING: { severity: 'error', title: 'A digest in a leaf has no JWS in the evidence' },
  AUDIT_EVIDENCE_DIGEST_MISMATCH: { severity: 'error', title: 'An evidence JWS does not hash to its digest (the JWS was altered)' },

  // signatures
  AUDIT_SIGNATURE_INVALID: { severity: 'error', title: 'An exchange JWS is malformed or its signature does not verify' },
  AUDIT_KEY_NOT_VALID: { severity: 'error', title: 'An exchange JWS is signed with a key not valid at its iat (unlisted, revoked, expired or no manifest in force) under any manifest the node had loaded' },
  AUDIT_KEY_REVOCATION_WINDOW: { severity: 'warning', title: 'An exchange JWS is signed with a key revoked at its iat, which the manifest the node had loaded still allowed (the revocation had not reached the node)' },
  AUDIT_SIGNER_MISMATCH: { severity: 'error', title: 'An exchange JWS is signed by someone other than its issuer or the provider' },
  AUDIT_ENVELOPE_INVALID: { severity: 'error', title: 'An exchange JWS payload or typ does not match the protocol' },
  AUDIT_IAT_SKEW: { severity: 'warning', title: 'A signed iat is far from the instant the node logged (possible backdating)' },

  // exchanges
  AUDIT_BINDING_MISMATCH: { severity: 'error', title: 'A leaf disagrees with the signed message or the entry it refers to' },
  AUDIT_RESPONSE_UNBOUND: { severity: 'error', title: 'A response is not bound to its request (reqDigest, xid, aud or iss)' },
  AUDIT_NO_PERMIT: { severity: 'error', title: 'An answer was released without a preceding permit for that request' },
  AUDIT_NO_DECISION: { severity: 'error', title: 'A response was logged without any decision for that request' },
  AUDIT_STATUS_MISMATCH: { severity: 'error', title: 'A response status differs from the decision' },
  AUDIT_POLICY_NOT_IN_FORCE: { severity: 'error', title: 'A decision names a policy other than the agreement set in force at that point of the log' },
  AUDIT_DECISION_REPLAY_MISMATCH: { severity: 'error', title: 'Re-running the decision against the agreements in force gives another result' },
  AUDIT_SHARING_RULES_INVALID: { severity: 'error', title: 'A sharing-rules record does not parse or its hash is not the hash of its rules' },
  AUDIT_SHARING_RULES_NOT_IN_FORCE: { severity: 'error', title: 'A decision names sharing rules other than those in force at that point of the log, or none while some are' },
  AUDIT_SHARING_FORBIDDEN: { severity: 'error', title: 'An answer was permitted that the sharing rules in force forbid (not shared, negative-listed, core, another source, or over the graded or unconditional quota)' },
  AUDIT_ORPHAN_ENTRY: { severity: 'error', title: 'An entry refers to an exchange whose request entry is not in the log' },
  AUDIT_DUPLICATE_EXCHANGE: { severity: 'warning', title: 'The same exchange was logged more than once' },
  AUDIT_NO_RESPONSE_LOGGED: { severity: 'warning', title: 'Provider: a request was decided but no response was logged (never released)' },
  AUDIT_NO_ANSWER_RECORDED: { severity: 'warning', title: 'Consumer: a request was sent but no answer was recorded' },
  AUDIT_PEER_ANSWER_REFUSED: { severity: 'warning', title: 'Consumer: the node refused what a peer (or something in its place) answered: malformed, not validly signed by the peer, or bound to another request' },

  // applications, agreement changes and disputes (governance records; docs/GOVERNANCE.md)
  AUDIT_GOV_RECORD_INVALID: { severity: 'error', title: 'A governance record does not follow from the ones before it (unknown application or dispute, answered twice, wrong member) or disagrees with its signed message' },
  AUDIT_GOV_SIGNATURE_INVALID: { severity: 'error', title: 'A governance message is malformed or not validly signed by its issuer at its iat' },
  AUDIT_APPLICATION_LATE: { severity: 'warning', title: 'An application was first reviewed or answered after its deadline' },
  AUDIT_APPLICATION_UNANSWERED: { severity: 'warning', title: 'An application was not reviewed or answered by its deadline, and still is not at the end of the log' },
  AUDIT_DISPUTE_LATE: { severity: 'warning', title: 'A dispute was resolved after its deadline' },
  AUDIT_DISPUTE_UNANSWERED: { severity: 'warning', title: 'A dispute was not resolved by its deadline, and still is not at the end of the log' },
  AUDIT_AGREEMENT_NOT_IN_FORCE: { severity: 'error', title: 'A decision permitted under an agreement that was suspended, revoked or not yet approved at that point of the log' },

  // consistency between two checkpoints (audit consistency)
  AUDIT_INCONSISTENT: { severity: 'error', title: 'Two checkpoints signed by the log’s key are not consistent: the history was rewritten or forked' },
  AUDIT_PEER_FORK_REPORTED: { severity: 'error', title: 'The log holds fork evidence: two checkpoints of a peer’s log it found inconsistent (warning when they are not both validly signed)' },
  AUDIT_CONSISTENCY_PROOF_INVALID: { severity: 'error', title: 'The given consistency proof does not verify between the two checkpoints (append-only not shown)' },

  // inclusion receipts (audit prove, audit check-receipt)
  AUDIT_INCLUSION_INVALID: { severity: 'error', title: 'An inclusion proof does not lead to the signed checkpoint root' },
  AUDIT_RECEIPT_MISMATCH: { severity: 'error', title: 'A receipt’s leaf is not about the exchange or log it claims' },

  // key rotation (key-event records with event 'rotated')
  AUDIT_KEY_ROTATION_SIGNATURE: { severity: 'error', title: 'A key rotation is not signed by both the old and the new key' },
  AUDIT_KEY_ROTATION_UNLISTED: { severity: 'warning', title: 'A rotated-in key is listed for the member by no manifest the audit holds' },

  // disclosures exported with --with-disclosures
  AUDIT_DISCLOSURES_UNLOGGED: { severity: 'error', title: 'The export holds disclosures that no disclosure-export record of its log accounts for' },

  // cross-check of a consumer's and a provider's exports (audit cross-check)
  AUDIT_CROSS_EXPORT_FAILED: { severity: 'error', title: 'One of the two exports fails audit verify: the join can only be as trustworthy as the logs' },
  AUDIT_CROSS_MISSING_AT_PROVIDER: { severity: 'error', title: 'The consumer logged an exchange with the provider that the provider’s log does not hold' },
  AUDIT_CROSS_MISSING_AT_CONSUMER: { severity: 'error', title: 'The provider logged a request from the consumer that the consumer’s log does not hold' },
  AUDIT_CROSS_RESPONSE_MISSING: { severity: 'error', title: 'A signed response is logged on one side only' },
  AUDIT_CROSS_ALTERED: { severity: 'error', title: 'The two sides logged the same exchange differently (digest, status, service, purpose, count)' },
  AUDIT_CROSS_EVIDENCE_DIFFERS: { severity: 'error', title: 'The two sides hold different signed messages for the same exchange' },
  AUDIT_CROSS_PEER_INDEX: { severity: 'error', title: 'The consumer’s peerIndex does not point at the provider’s request-in of that exchange' },
  AUDIT_CROSS_OUTSIDE_WINDOW: { severity: 'info', title: 'An exchange falls after the end of the other side’s export and cannot be joined' },
} as const satisfies Record<string, { severity: Severity; title: string }>

export type AuditCode = keyof typeof FINDINGS

export interface AuditFinding {
  code: AuditCode
  severity: Severity
  message: string
  /** the exchange this is about, when it is about one */
  xid?: string
  /** which side of the exchange this node was */
  role?: 'provider' | 'consumer'
  /** the leaf this is about, when it is about one */
  index?: number
}

/** Where a finding belongs (see AuditFinding). */
export interface Where {
  xid?: string
  role?: 'provider' | 'consumer'
  index?: number
}

interface Entry {
  f: AuditFinding
  stage: number
  seq: number
}

/**
 * The one place findings are collected (every audit tool, and every check of `audit verify`).
 *
 * `sorted()` gives the report's order: log-wide findings (no leaf index) first, then by leaf, each
 * group in the order found. A streaming check may learn a log-wide finding late (a file's hash
 * after reading it through): `stage` names the step it belongs to, so it still sorts before the
 * findings of later steps; and `reserve` keeps a place for a finding that can only be decided at
 * the end (a text a later agreements record vets).
 */
export class Findings {
  private readonly entries: Entry[] = []
  private seq = 0
  /** the step log-wide findings added now belong to (see `sorted`) */
  stage = 0

  /** every finding, in the order added */
  get list(): AuditFinding[] {
    return this.entries.map((e) => e.f)
  }

  add(code: AuditCode, message: string, where: Where = {}, severity: Severity = FINDINGS[code].severity): void {
    this.put(this.seq++, code, message, where, severity)
  }

  /** A place in the order for a finding decided later with `addAt`. */
  reserve(): number {
    return this.seq++
  }

  addAt(place: number, code: AuditCode, message: string, where: Where = {}, severity: Severity = FINDINGS[code].severity): void {
    this.put(place, code, message, where, severity)
  }

  /** Runs `fn` with `stage` set, for log-wide findings of an earlier step learnt late. */
  during<T>(stage: number, fn: () => T): T {
    const prev = this.stage
    this.stage = stage
    try {
      return fn()
    } finally {
      this.stage = prev
    }
  }

  private put(seq: number, code: AuditCode, message: string, where: Where, severity: Severity): void {
    const f: AuditFinding = { code, severity, message }
    if (where.xid !== undefined) f.xid = where.xid
    if (where.role !== undefined) f.role = where.role
    if (where.index !== undefined) f.index = where.index
    this.entries.push({ f, stage: this.stage, seq })
  }

  /** Log-wide findings first (by stage, then as found), then by leaf index (as found). */
  sorted(): AuditFinding[] {
    const key = (e: Entry): number => (e.f.index === undefined ? -1 : e.f.index)
    return [...this.entries]
      .sort((a, b) => key(a) - key(b) || (a.f.index === undefined ? a.stage - b.stage : 0) || a.seq - b.seq)
      .map((e) => e.f)
  }

  count(s: Severity): number {
    let n = 0
    for (const e of this.entries) if (e.f.severity === s) n++
    return n
  }

  get ok(): boolean {
    return this.count('error') === 0
  }

  counts(): { errors: number; warnings: number; infos: number } {
    return { errors: this.count('error'), warnings: this.count('warning'), infos: this.count('info') }
  }
}
