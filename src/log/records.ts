/**
 * The PII-free records a node writes to its log (docs/PROTOCOL.md "Log records").
 *
 * A leaf is the RFC 8785 canonical JSON of one record. Records hold digests, member ids, service ids,
 * counts and decisions: never a subject field, a disclosure, a name or an amount. Digests of request
 * and response JWS let an auditor bind each leaf to the signed evidence.
 */
import type { Mode } from '../protocol/vocabulary.js'
import type { GovernanceEvent } from '../policy/governance.js'

interface Base {
  v: 1
  at: number
}

/** provider: a signed request arrived and passed authentication and validation */
export interface RequestInRecord extends Base {
  t: 'request-in'
  xid: string
  iss: string
  svc: string
  mode: Mode
  purpose: string
  basis: string
  count: number
  reqDigest: string
}

/** provider: the authorization decision for that request */
export interface DecisionRecord extends Base {
  t: 'decision'
  xid: string
  iss: string
  reqDigest: string
  permit: boolean
  agreement?: string
  code?: string
  /** hash of the agreement set in force (matches the latest `agreements` record) */
  policy: string
  /** hash of the sharing rules in force (matches the latest `sharing-rules` record); absent in logs written before the rules existed */
  rules?: string
  /** subjects or evaluations counted against the quota */
  count: number
  day: string
}

/** provider: the signed response released to the consumer */
export interface ResponseOutRecord extends Base {
  t: 'response-out'
  xid: string
  aud: string
  reqDigest: string
  respDigest: string
  status: 'ok' | 'denied'
  requestIndex: number
}

/** consumer: a signed request about to be sent (logged before it leaves) */
export interface RequestOutRecord extends Base {
  t: 'request-out'
  xid: string
  aud: string
  svc: string
  mode: Mode
  purpose: string
  basis: string
  count: number
  reqDigest: string
}

/**
 * consumer: what came back, signed by the provider (status and code as signed) or an unsigned
 * transport/protocol error. Logs written before November 2026 may also carry status `error` with a
 * `respDigest` for a signed answer the consumer refused; refusals are now `response-refused`.
 *
 * Status `refused`: the peer answered with something the consumer did not accept as its signed
 * answer (not JSON, a malformed JWS, a signature that does not verify under the peer's key, a
 * response bound to another request). `code` says why, `respDigest` is the SHA-256 (base64url) of
 * the bytes received (at most the reply limit), which are kept sealed as `received` evidence
 * (evidence.ts), never in the clear: they may hold anything. No `peerIndex`: nothing the peer
 * signed for this request was accepted.
 */
export interface ResponseInRecord extends Base {
  t: 'response-in'
  xid: string
  iss: string
  reqDigest: string
  status: 'ok' | 'denied' | 'error' | 'refused'
  respDigest?: string
  code?: string
  /** the provider's log index for this exchange, from the signed response */
  peerIndex?: number
}

/**
 * consumer: a signed `ok` response (already logged as `response-in`) that the consumer could not
 * use and refused, e.g. an OPRF proof that does not verify. Logged before the application hears
 * the error; the response-in is committed while the mode checks the answer (see consumer.ts).
 */
export interface ResponseRefusedRecord extends Base {
  t: 'response-refused'
  xid: string
  iss: string
  reqDigest: string
  respDigest: string
  code: string
}

/** the agreement set put in force (logged at start-up and whenever it changes) */
export interface AgreementsRecord extends Base {
  t: 'agreements'
  policy: string
  agreements: unknown[]
}

/**
 * the sharing rules put in force (docs/GOVERNANCE.md; src/policy/sharing.ts `SharingRules`):
 * logged at start-up and whenever a manifest changes them
 */
export interface SharingRulesRecord extends Base {
  t: 'sharing-rules'
  /** `sharingRulesHash(rules)` */
  hash: string
  rules: unknown
}

/** key material put in use (public halves only) */
export interface KeyEventRecord extends Base {
  t: 'key-event'
  event: 'node-started' | 'rotated' | 'manifest-loaded'
  member: string
  messageKid: string
  messageKey: string
  logKey: string
  manifestSeq: number
  manifestHash: string
  /**
   * Set when the manifest named does not allow this node's message key at `at` (revoked, or
   * not yet valid): from this event on the node signs nothing. `messageKid` is then the kid the key
   * had last.
   */
  messageKeyRevoked?: true
  /**
   * `rotated` only (src/node/key-rotation.ts writes it, src/log/rotation-statement.ts frames it): which key was replaced, the new public key
   * (base64url raw Ed25519), and Ed25519 signatures (base64url) by the old and the new private key
   * over the canonical rotation statement. The old key is `messageKey` or `logKey` above.
   */
  rotated?: 'message' | 'log' | 'tls'
  /** `rotated: 'tls'` only: the old TLS public key (base64url raw Ed25519); its SPKI SHA-256 is the old pin */
  tlsKey?: string
  newKey?: string
  oldSig?: string
  newSig?: string
}

/** a peer's checkpoint this node verified (consistent with the last one seen) and cosigned */
export interface PeerCheckpointRecord extends Base {
  t: 'peer-checkpoint'
  peer: string
  size: number
  rootHash: string
  noteHash: string
  /**
   * The peer's signed note itself (since November 2026): a restarted node takes its last-seen
   * checkpoint of each peer from here, so a fork across its restart is still caught, and a later
   * `fork-evidence` can show both signed notes.
   */
  note?: string
}

/** two validly signed, inconsistent checkpoints of one peer's log: proof of a fork */
export interface ForkEvidenceRecord extends Base {
  t: 'fork-evidence'
  peer: string
  notes: [string, string]
}

/** disclosures were exported decrypted (`verinode log export --with-disclosures`): who asked is the operator */
export interface DisclosureExportRecord extends Base {
  t: 'disclosure-export'
  /** SHA-256 (base64url) of the operator's reason text; the text itself travels in the export, never in the log */
  reasonDigest: string
  /** how many exchanges' disclosures were exported */
  count: number
  /** how many refused peer answers' bytes were exported (received.jsonl); absent in records written before it was counted */
  received?: number
}

/**
 * an application, its review and decision, an agreement change, a dispute, a correction or a
 * dispute's resolution, sent or received (src/policy/governance.ts; docs/GOVERNANCE.md). The signed
 * message is kept as `jws` evidence under `digest`; an application's contact and a dispute's note
 * as sealed disclosures.
 */
export interface GovernanceRecord extends Base, GovernanceEvent {
  t: 'governance'
}

export type LogRecord =
  | RequestInRecord
  | DecisionRecord
  | ResponseOutRecord
  | RequestOutRecord
  | ResponseInRecord
  | ResponseRefusedRecord
  | AgreementsRecord
  | SharingRulesRecord
  | KeyEventRecord
  | PeerCheckpointRecord
  | ForkEvidenceRecord
  | DisclosureExportRecord
  | GovernanceRecord

export type LogRecordType = LogRecord['t']
