/**
 * The node's view of its log: typed PII-free records in, RFC 8785 canonical JSON leaves out, written
 * with their evidence in one group commit (log before answer), with the wait measured for /metrics.
 */
import { canonicalJsonBytes } from '../protocol/canonical-json.js'
import type { NodeLog, EvidenceItem } from '../exchange/provider.js'
import type { LogRecord } from './records.js'
import type { SqliteLogStore, EvidenceWrite, AppendResult } from './store.js'
import { VnError } from '../errors.js'
import type { SqliteEvidenceStore } from './evidence.js'

export class StoreNodeLog implements NodeLog {
  /**
   * The index the next appended record will get. The store commits appends in call order and this
   * wrapper is its only writer, so the index is known before the commit: a provider can put its
   * request entry's index into the signed response and commit request, decision and response in one
   * group commit. Any failed append breaks the prediction, so the log then refuses all further
   * writes until restart (fail closed), as the store itself does.
   */
  private next: number
  private broken: VnError | undefined

  private constructor(
    private readonly store: SqliteLogStore,
    private readonly evidence: SqliteEvidenceStore,
    private readonly observeCommit: ((seconds: number) => void) | undefined,
    size: number,
  ) {
    this.next = size
  }

  static async open(store: SqliteLogStore, evidence: SqliteEvidenceStore, observeCommit?: (seconds: number) => void): Promise<StoreNodeLog> {
    return new StoreNodeLog(store, evidence, observeCommit, await store.size())
  }

  nextIndex(): number {
    return this.next
  }

  async append(records: readonly LogRecord[], evidence: readonly EvidenceItem[] = []): Promise<number[]> {
    if (this.broken !== undefined) throw this.broken
    const expected = this.next
    let r: AppendResult[]
    const t0 = performance.now()
    try {
      const leaves = records.map((rec) => canonicalJsonBytes(rec))
      const writes: EvidenceWrite[] = evidence.map((e) =>
        e.kind === 'jws' ? this.evidence.jwsRecord(e.record, e.digest, e.jws) : this.evidence.sealDisclosures(e.record, e.xid, e.disclosures, e.expiresAt))
      this.next += records.length
      r = await this.store.appendWithEvidence(leaves, writes)
    } catch (e) {
      this.broken = e instanceof VnError && e.code === 'VN_ERR_LOG_UNAVAILABLE' ? e : new VnError('VN_ERR_LOG_UNAVAILABLE', 'append failed', { cause: e })
      throw this.broken
    }
    this.observeCommit?.((performance.now() - t0) / 1000)
    if (r.length > 0 && r[0]?.index !== expected) {
      this.broken = new VnError('VN_ERR_LOG_UNAVAILABLE', 'log index prediction broke (another writer?)')
      throw this.broken
    }
    return r.map((x) => x.index)
  }
}

/** Parses one leaf back into a record (auditor, restart recovery). */
export const parseLeaf = (leaf: Uint8Array): LogRecord => JSON.parse(Buffer.from(leaf).toString('utf8')) as LogRecord
