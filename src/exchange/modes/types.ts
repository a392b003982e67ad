/**
 * How a question is asked (`plain`, `oprf`, `he`) is a pluggable part of an exchange. The exchange
 * core (provider.ts, consumer.ts) does signing, replay protection, policy, logging and evidence the
 * same way for every mode; a mode only turns subjects into a query `q` and a reply back into answers.
 */
import type { ServiceConfig } from '../../config/schema.js'
import type { DataSource } from '../../sources/types.js'
import type { CatalogService } from '../catalog.js'
import type { RequestPayload } from '../../protocol/envelope.js'
import type { Mode } from '../../protocol/vocabulary.js'

export type Answer = Record<string, unknown>

export interface ProviderModeContext {
  source: DataSource | undefined
  limits: { batchMax: number }
  now: number
}

/** A validated query, ready to be answered once the decision permits it. */
export interface PreparedQuery {
  /** units counted against the quota (subjects or evaluations) */
  count: number
  /**
   * The disclosures this mode opened against the digests in the signed query: the only ones the
   * provider keeps as evidence of what the consumer disclosed. Absent: none.
   */
  disclosures?: readonly string[]
  /** computes the reply: per-subject `results` (plain) and/or a mode-specific `r` */
  answer(): Promise<{ results?: Answer[]; r?: Record<string, unknown> }>
}

export interface ProviderMode {
  readonly mode: Mode
  /**
   * Whether requests in this mode carry disclosures beside the JWS. When false, a request that
   * carries some is refused (VN_ERR_EXCH_DISCLOSURE_UNEXPECTED) before `prepare`: strings no digest
   * binds must not be sealed into the evidence as "what the consumer disclosed".
   */
  readonly takesDisclosures: boolean
  /**
   * Validates `req.q` (and the disclosures beside it) completely. Throws a VnError for anything the
   * consumer could have checked itself: nothing is written in that case.
   */
  prepare(svc: ServiceConfig, req: RequestPayload, disclosures: readonly string[], ctx: ProviderModeContext): Promise<PreparedQuery>
}

export interface ConsumerModeContext {
  provider: string
  now: number
}

/** What a consumer mode sends, and how it reads the reply. */
export interface BuiltQuery {
  q: Record<string, unknown>
  disclosures?: string[]
  count: number
  /**
   * `finish` holds the thread for a while (a proof check, a decryption): the consumer first lets
   * the log store hand the response-in to its writer, so the commit and the check overlap.
   */
  heavyFinish?: boolean
  /** turns the verified response's `results`/`r` into one answer per subject */
  finish(reply: { results?: Answer[]; r?: Record<string, unknown> }): Promise<Answer[]>
}

export interface ConsumerMode {
  readonly mode: Mode
  /** the provider refused before answering (an unsigned problem): a mode may drop cached state */
  refused?(provider: string, service: string, code: string): void
  build(svc: CatalogService, subjects: readonly Record<string, string>[], ctx: ConsumerModeContext): Promise<BuiltQuery>
}
