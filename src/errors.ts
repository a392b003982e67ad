/**
 * The one place where verinode's errors are made.
 *
 * Every error a caller can see has a stable code `VN_ERR_<AREA>_<WHAT>`, an HTTP status and a
 * short title, and is rendered as an RFC 9457 `application/problem+json` document. The catalogue
 * users read is docs/ERRORS.md; a test checks that the two agree.
 *
 * Messages (the `detail`) must never contain personal data: no ID number, name or amount. Name the
 * offending field instead ("subjects[3].id: check digit does not match").
 */

export interface ErrorSpec {
  readonly status: number
  readonly title: string
}

export const ERRORS = {
  // request / wire format
  VN_ERR_REQ_MALFORMED_JSON: { status: 400, title: 'Request body is not valid JSON' },
  VN_ERR_REQ_INVALID: { status: 400, title: 'Request does not match the schema' },
  VN_ERR_REQ_TOO_LARGE: { status: 413, title: 'Request body exceeds the configured limit' },
  VN_ERR_REQ_UNSUPPORTED_MEDIA: { status: 415, title: 'Unsupported content type' },
  VN_ERR_REQ_NOT_FOUND: { status: 404, title: 'No such route' },
  VN_ERR_REQ_BATCH_TOO_LARGE: { status: 413, title: 'Batch exceeds the configured number of subjects' },
  VN_ERR_REQ_RATE_LIMITED: { status: 429, title: 'Too many requests' },

  // JWS / signatures
  VN_ERR_JWS_MALFORMED: { status: 400, title: 'Not a well-formed compact JWS' },
  VN_ERR_JWS_ALG: { status: 400, title: 'JWS algorithm not allowed (only the federation profile\'s: EdDSA, or SM2SM3 under sm)' },
  VN_ERR_JWS_HEADER: { status: 400, title: 'JWS protected header not acceptable' },
  VN_ERR_JWS_UNKNOWN_KID: { status: 401, title: 'Signing key is not known for that member' },
  VN_ERR_JWS_KEY_NOT_VALID: { status: 401, title: 'Signing key is not valid at that instant (expired, not yet valid or revoked)' },
  VN_ERR_JWS_SIGNATURE: { status: 401, title: 'Signature does not verify' },

  // exchange envelope
  VN_ERR_EXCH_STALE: { status: 401, title: 'Request iat outside the allowed clock skew' },
  VN_ERR_EXCH_REPLAY: { status: 409, title: 'xid already used with a different request' },
  VN_ERR_EXCH_REPLAY_FULL: { status: 503, title: 'Replay memory is full; retry when its oldest entries expire' },
  VN_ERR_EXCH_BUSY: { status: 503, title: 'Too many exchanges in progress on this node; retry shortly' },
  VN_ERR_EXCH_WRONG_AUDIENCE: { status: 400, title: 'Request is addressed to another member' },
  VN_ERR_EXCH_ISSUER_MISMATCH: { status: 401, title: 'Signer is not the request issuer' },
  VN_ERR_EXCH_DISCLOSURE: { status: 400, title: 'Disclosure missing or does not match its digest' },
  VN_ERR_EXCH_DISCLOSURE_UNEXPECTED: { status: 400, title: 'Disclosures sent in a mode that takes none' },
  VN_ERR_EXCH_RESPONSE_UNBOUND: { status: 502, title: 'Response is not bound to the request sent' },
  VN_ERR_EXCH_MODE: { status: 400, title: 'Mode not offered for this service' },

  // subjects
  VN_ERR_SUBJECT_INVALID: { status: 400, title: 'Subject field missing or malformed' },
  VN_ERR_SUBJECT_ID_FORMAT: { status: 400, title: 'Resident ID number is not in the GB 11643 form (length, characters, region or birth date)' },
  VN_ERR_SUBJECT_ID_CHECKSUM: { status: 400, title: 'Resident ID number is well formed but its check character does not match' },
  VN_ERR_SUBJECT_USCC_FORMAT: { status: 400, title: 'Unified social credit code is not in the GB 32100 form (length, characters, authority, type or region)' },
  VN_ERR_SUBJECT_USCC_CHECKSUM: { status: 400, title: 'Unified social credit code is well formed but a check character does not match' },

  // data sources (the department's own database)
  VN_ERR_SOURCE_UNAVAILABLE: { status: 503, title: 'Data source is unavailable (cannot be opened, gone, replaced by an invalid file, damaged, or its database server does not answer in time)' },
  VN_ERR_SOURCE_NOT_READONLY: { status: 500, title: 'Declared SQL statement is not a read-only query' },
  VN_ERR_SOURCE_SQL_INVALID: { status: 500, title: 'Declared SQL statement does not compile (syntax error, unknown table or column)' },
  VN_ERR_SOURCE_QUERY: { status: 500, title: 'Data source query failed' },

  // policy
  VN_ERR_POLICY_UNKNOWN_CONSUMER: { status: 403, title: 'Consumer is not a member of the federation' },
  VN_ERR_POLICY_UNKNOWN_SERVICE: { status: 404, title: 'No such service on this node' },
  VN_ERR_POLICY_NO_AGREEMENT: { status: 403, title: 'No agreement permits this request' },
  VN_ERR_POLICY_QUOTA_EXHAUSTED: { status: 429, title: 'Daily quota of the agreement is exhausted' },
  VN_ERR_POLICY_NOT_SHARED: { status: 403, title: 'The item is never answered: not shared, negative-listed, core data, or another member is its authoritative source (docs/GOVERNANCE.md)' },

  // governance (start-up checks of what a node offers, docs/GOVERNANCE.md)
  VN_ERR_GOV_NOT_SOURCE: { status: 500, title: 'The node offers a data item whose authoritative source is another member' },
  VN_ERR_GOV_NEGATIVE_LISTED: { status: 500, title: 'The node offers a data item the federation’s negative list forbids' },
  VN_ERR_GOV_CORE_DATA: { status: 500, title: 'The node offers core data, which is never shared' },
  VN_ERR_GOV_GRADING: { status: 500, title: 'The node offers sensitive personal information as unconditional' },

  // governance: applications, agreement changes, disputes (docs/GOVERNANCE.md)
  VN_ERR_GOV_INVALID: { status: 400, title: 'Governance message (application, decision, agreement change, dispute or resolution) does not match its schema' },
  VN_ERR_GOV_WRONG_MEMBER: { status: 403, title: 'Governance message is not from or not addressed to the member it must be (the provider or consumer named)' },
  VN_ERR_GOV_UNKNOWN: { status: 404, title: 'No such application, agreement or dispute on this node' },
  VN_ERR_GOV_UNKNOWN_EXCHANGE: { status: 404, title: 'The disputed exchange (xid and log index) is not one this provider answered for that consumer' },
  VN_ERR_GOV_DUPLICATE: { status: 409, title: 'An application or dispute with that id, or a dispute about that exchange, exists already' },
  VN_ERR_GOV_STATE: { status: 409, title: 'Not possible in the current state (already decided, resolved, suspended or revoked)' },
  VN_ERR_GOV_AGREEMENT_CONFLICT: { status: 409, title: 'The agreement id is already used by another agreement of this node' },

  // federation
  VN_ERR_FED_MANIFEST_INVALID: { status: 500, title: 'Federation manifest does not verify against the trust anchor' },
  VN_ERR_FED_MANIFEST_EXPIRED: { status: 503, title: 'Federation manifest has expired' },
  VN_ERR_FED_MANIFEST_ROLLBACK: { status: 500, title: 'Federation manifest sequence number went backwards' },
  VN_ERR_FED_KEY_IN_USE: { status: 409, title: 'Public key is already listed in the federation draft (each message or log key belongs to one member and one use)' },
  VN_ERR_FED_USCC_IN_USE: { status: 409, title: 'Unified social credit code already belongs to another member of the federation draft' },
  VN_ERR_FED_ROOT_KEY_REUSED: { status: 400, title: 'The federation root key cannot be listed as a member key' },
  VN_ERR_FED_UNKNOWN_MEMBER: { status: 403, title: 'Member is not in the federation manifest' },
  VN_ERR_FED_OWN_KEY_REVOKED: { status: 503, title: 'The node’s own message key is revoked or not valid in the manifest it has loaded: it signs nothing' },

  // log
  VN_ERR_LOG_UNAVAILABLE: { status: 503, title: 'Log cannot be written; node refuses to answer (fail closed)' },
  VN_ERR_LOG_PROOF: { status: 400, title: 'Proof request is out of range' },
  VN_ERR_LOG_PROOF_INVALID: { status: 422, title: 'Merkle proof does not verify' },
  VN_ERR_LOG_ENTRY_INVALID: { status: 400, title: 'Log entry is not acceptable' },
  VN_ERR_LOG_NOTE_MALFORMED: { status: 400, title: 'Signed note or checkpoint is malformed' },
  VN_ERR_LOG_NOTE_SIGNATURE: { status: 401, title: 'Signed note has no valid signature from a known key' },
  VN_ERR_LOG_KEY_INVALID: { status: 400, title: 'Note signer or verifier key is malformed' },
  VN_ERR_LOG_TREE_MISMATCH: { status: 500, title: 'Stored log tree does not match the last signed checkpoint (tampering or corruption)' },
  VN_ERR_EVIDENCE_INVALID: { status: 400, title: 'Evidence record is malformed' },
  VN_ERR_EVIDENCE_CORRUPT: { status: 500, title: 'Stored evidence failed authentication (tampered or wrong key)' },

  // audit (log export and the offline auditor)
  VN_ERR_AUDIT_EXPORT_INVALID: { status: 400, title: 'Log export is incomplete or malformed' },
  VN_ERR_AUDIT_EXPORT_TARGET: { status: 409, title: 'Export target exists and is not an empty folder' },
  VN_ERR_AUDIT_INPUT_INVALID: { status: 400, title: 'Auditor input (checkpoint, proof, receipt or manifest file) is missing or malformed' },
  VN_ERR_AUDIT_NOT_FOUND: { status: 404, title: 'The export holds no entry for that exchange' },
  VN_ERR_AUDIT_NODE_RUNNING: { status: 409, title: 'The node is running: stop it before a command that writes to its log' },
  VN_ERR_AUDIT_UPLOAD_TOO_LARGE: { status: 413, title: 'Uploaded log export archive exceeds the size or file-count limit of the console upload' },
  VN_ERR_AUDIT_UPLOAD_INVALID: { status: 400, title: 'Uploaded log export is not a complete tar archive of regular files with plain relative paths holding export.json' },

  // peers (consumer side)
  VN_ERR_PEER_UNREACHABLE: { status: 502, title: 'Peer node could not be reached' },
  VN_ERR_PEER_INSECURE: { status: 400, title: 'Refusing plain HTTP to a non-loopback peer without the insecure flag' },
  VN_ERR_PEER_BAD_RESPONSE: { status: 502, title: 'Peer answered with something that is not a valid signed response' },
  VN_ERR_PEER_UNKNOWN: { status: 400, title: 'No such peer in the federation manifest' },
  VN_ERR_PEER_ANSWER_REFUSED: { status: 502, title: "Peer's answer was refused (malformed, not validly signed by the peer, or not bound to the request sent)" },
  VN_ERR_PEER_ERROR: { status: 502, title: 'Peer answered with an unsigned error (its code and status are in `peer`)' },

  // TLS between nodes (pins in the manifest, mutual TLS)
  VN_ERR_TLS_NO_PIN: { status: 502, title: 'The manifest lists no TLS pin for this peer: an https endpoint needs one' },
  VN_ERR_TLS_SERVER_PIN: { status: 502, title: "Peer's TLS certificate key is not pinned for that member in the manifest" },
  VN_ERR_TLS_SERVER_EXPIRED: { status: 502, title: "Peer's TLS certificate is outside its validity window" },
  VN_ERR_TLS_CLIENT_CERT_REQUIRED: { status: 401, title: 'A TLS client certificate is required on this listener' },
  VN_ERR_TLS_CLIENT_UNKNOWN: { status: 403, title: 'TLS client certificate key is not pinned for any member' },
  VN_ERR_TLS_CLIENT_EXPIRED: { status: 403, title: 'TLS client certificate is outside its validity window' },
  VN_ERR_TLS_CLIENT_NOT_ISSUER: { status: 403, title: 'The request is signed by another member than the one whose TLS certificate the connection presented' },
  VN_ERR_TLS_CONFIG: { status: 500, title: "The node's own TLS key or certificate is missing, unusable, expired or not pinned for it" },

  // local API
  VN_ERR_LOCAL_UNAUTHORIZED: { status: 401, title: 'Missing or unknown application token' },
  VN_ERR_LOCAL_UNREACHABLE: { status: 502, title: 'Local node could not be reached or did not answer in time' },
  VN_ERR_LOCAL_BAD_RESPONSE: { status: 502, title: 'Local node answered with something that is neither a result nor a problem' },
  VN_ERR_LOCAL_FORBIDDEN: { status: 403, title: "The application's role may not do this (an auditor only reads and runs audits)" },
  VN_ERR_LOCAL_CSRF: { status: 403, title: 'Console request without its session CSRF token, or sent from another site' },

  // CLI input files (verify-batch)
  VN_ERR_CLI_CSV_MALFORMED: { status: 400, title: 'CSV input is malformed (RFC 4180)' },
  VN_ERR_CLI_CHECKS_FAILED: { status: 422, title: 'One or more checks failed (doctor, audit or demo): the JSON document lists them' },
  VN_ERR_CLI_OUT_EXISTS: { status: 409, title: 'The output file exists: give --resume to continue it or --force to overwrite it' },
  VN_ERR_CLI_RESUME_MISMATCH: { status: 409, title: 'The file given to --resume is not the output of verify-batch with these options' },
  VN_ERR_CLI_USAGE: { status: 400, title: 'Command line is not usable (unknown option, missing or malformed argument)' },

  // config
  VN_ERR_CONFIG_INVALID: { status: 500, title: 'Configuration is invalid' },
  VN_ERR_CONFIG_OPRF_ANONYMITY: { status: 500, title: 'OPRF shards would hold fewer records than the anonymity floor (oprf.shardRecords below oprf.minAnonymitySet)' },
  VN_ERR_KEY_FILE: { status: 500, title: 'Key file missing, unreadable or too permissive' },
  VN_ERR_PROFILE_MISMATCH: { status: 400, title: 'Key, signature or manifest of another crypto profile than the federation\'s (intl or sm)' },
  VN_ERR_SM_KEY: { status: 400, title: 'Not a usable SM2 key (wrong curve, malformed encoding, or a point off the curve)' },
  VN_ERR_SM_WASM: { status: 500, title: 'The SM2 verification module (WebAssembly build output, npm run build:wasm) is missing or could not be loaded' },
  VN_ERR_SM_SEAL_AUTH: { status: 400, title: 'SM4-sealed data does not authenticate (changed nonce, ciphertext, tag or bound data)' },

  // oprf
  VN_ERR_OPRF_POINT: { status: 400, title: 'Invalid group element (identity, non-canonical or wrong length)' },
  VN_ERR_OPRF_PROOF: { status: 502, title: 'VOPRF proof does not verify' },
  VN_ERR_OPRF_TAGSET: { status: 502, title: 'Tag set missing, stale or badly signed' },
  VN_ERR_OPRF_INPUT: { status: 400, title: 'OPRF input, scalar or batch shape is invalid' },
  VN_ERR_OPRF_KEY: { status: 500, title: 'OPRF key or seed is malformed' },
  VN_ERR_OPRF_EPOCH: { status: 409, title: 'OPRF epoch is not the current one on the provider (fetch the current tag set)' },
  VN_ERR_OPRF_TAGSET_PENDING: { status: 503, title: 'Tag set for the current epoch is still being built' },
  VN_ERR_OPRF_SHARD: { status: 400, title: 'Shard number out of range or shard request malformed' },
  VN_ERR_OPRF_SHARD_PROOF: { status: 502, title: 'Shard is not the one the signed epoch header commits to' },

  // he
  VN_ERR_HE_CIPHERTEXT: { status: 400, title: 'Ciphertext is corrupt, oversized or has wrong parameters' },
  VN_ERR_HE_KEY: { status: 400, title: 'HE public key missing, corrupt or has wrong parameters' },
  VN_ERR_HE_BOUND: { status: 400, title: 'Bound outside the published grid' },
  VN_ERR_HE_KEY_UNKNOWN: { status: 409, title: 'HE public key digest not known to the provider for this consumer (resend the key)' },
  VN_ERR_HE_PARAMS: { status: 400, title: 'HE parameter set not supported by this node' },

  VN_ERR_INTERNAL: { status: 500, title: 'Internal error' },
} as const satisfies Record<string, ErrorSpec>

export type ErrorCode = keyof typeof ERRORS

/**
 * Server-error codes whose `detail` is sent to the caller all the same (other 5xx details are
 * internals and stay in the node's log, src/http/errors.ts). Their detail is made by the consumer
 * from fixed phrases, the peer's member id, an HTTP status and a VN_ERR_* code only, never from
 * what the peer sent: the application learns why its node refused the peer's answer.
 */
export const PUBLIC_DETAIL_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['VN_ERR_PEER_ANSWER_REFUSED', 'VN_ERR_PEER_ERROR'])

/** What a peer's unsigned error said, carried by `VN_ERR_PEER_ERROR` as the problem's `peer` member. */
export interface PeerProblem {
  /** the peer (provider) member id */
  member: string
  /** the HTTP status it answered with */
  status: number
  /** its VN_ERR_* code, or undefined when it sent none this node knows */
  code?: ErrorCode
}

/** A domain error with a stable code. `detail` is PII-free by contract. */
export class VnError extends Error {
  readonly code: ErrorCode
  readonly statusCode: number
  readonly title: string
  readonly detail: string | undefined
  /** `VN_ERR_PEER_ERROR` only: what the peer answered (rendered as the problem's `peer` member) */
  readonly peer: PeerProblem | undefined
  constructor(code: ErrorCode, detail?: string, options?: { cause?: unknown; peer?: PeerProblem }) {
    const spec: ErrorSpec = ERRORS[code]
    super(detail === undefined ? spec.title : `${spec.title}: ${detail}`, options)
    this.name = 'VnError'
    this.code = code
    this.statusCode = spec.status
    this.title = spec.title
    this.detail = detail
    this.peer = options?.peer
  }

  /** RFC 9457 problem document. */
  toProblem(instance?: string): Problem {
    const p: Problem = {
      type: `urn:verinode:error:${this.code}`,
      title: this.title,
      status: this.statusCode,
      code: this.code,
    }
    if (this.detail !== undefined) p.detail = this.detail
    if (instance !== undefined) p.instance = instance
    if (this.peer !== undefined) p.peer = { ...this.peer }
    return p
  }
}

export interface Problem {
  type: string
  title: string
  status: number
  code: ErrorCode
  detail?: string
  instance?: string
  peer?: PeerProblem
}

export const isVnError = (e: unknown): e is VnError => e instanceof VnError
