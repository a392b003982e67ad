/**
 * The node's view of its log: typed PII-free records in, RFC 8785 canonical JSON leaves out, written
 * with their evidence in one group commit (log before answer), with the wait measured for /metrics.
 */
import { canonicalJsonBytes } from '../protocol/canonical-json.js'
import type { NodeLog, EvidenceItem } from '../exchange/provider.js'
import type { LogRecord } from './records.js'
import type { SqliteLogStore, EvidenceWrite } from './store.js'
import type { SqliteEvidenceStore } from './evidence.js'

export class StoreNodeLog implements NodeLog {
  constructor(
    private readonly store: SqliteLogStore,
    private readonly evidence: SqliteEvidenceStore,
    private readonly observeCommit?: (seconds: number) => void,
  ) {}

  async append(records: readonly LogRecord[], evidence: readonly EvidenceItem[] = []): Promise<number[]> {
    const leaves = records.map((r) => canonicalJsonBytes(r))
    const writes: EvidenceWrite[] = evidence.map((e) =>
      e.kind === 'jws' ? this.evidence.jwsRecord(e.digest, e.jws) : this.evidence.sealDisclosures(e.xid, e.disclosures, e.expiresAt))
    const t0 = performance.now()
    const r = await this.store.appendWithEvidence(leaves, writes)
    this.observeCommit?.((performance.now() - t0) / 1000)
    return r.map((x) => x.index)
  }
}

/** Parses one leaf back into a record (auditor, restart recovery). */
export const parseLeaf = (leaf: Uint8Array): LogRecord => JSON.parse(Buffer.from(leaf).toString('utf8')) as LogRecord
