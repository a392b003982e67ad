/**
 * The sharing rules a node applies (docs/GOVERNANCE.md), held for the provider and kept in step
 * with the manifest: built from the config's services and the manifest's catalogue section
 * (src/policy/governance.ts), logged as a `governance` record before any decision is made under
 * them, and swapped only after that record is durable, so every decision names rules the log
 * already holds.
 */
import type { Logger } from 'pino'
import type { Config } from '../config/schema.js'
import type { Federation } from '../federation/federation.js'
import type { GovernanceRecord } from '../log/records.js'
import { checkOffer, governanceHash, governanceOf, type Governance } from '../policy/governance.js'

export class GovernanceHolder {
  #rules: Governance
  #hash: string

  /**
   * The start-up check (a node refuses to start on a violation) and the first rules.
   * @throws VN_ERR_GOV_* (see checkOffer)
   */
  constructor(private readonly cfg: Config, fed: Federation, private readonly logger: Logger) {
    checkOffer(cfg.member, cfg.services, fed.manifest.governance, cfg.agreements.map((a) => a.id))
    this.#rules = this.build(fed)
    this.#hash = governanceHash(this.#rules)
  }

  private build(fed: Federation): Governance {
    return governanceOf(this.cfg.member, this.cfg.services, fed.manifest.governance, fed.departments().map((m) => m.id), this.cfg.governance)
  }

  get rules(): Governance {
    return this.#rules
  }

  get hash(): string {
    return this.#hash
  }

  /** The record that puts the current rules in force. */
  record(at: number): GovernanceRecord {
    return { v: 1, at, t: 'governance', gov: this.#hash, governance: this.#rules }
  }

  /**
   * A new manifest: the record of the rules it implies (none when they did not change), to be
   * logged with the manifest's key event, and `commit` to put them in force once that is durable.
   * A manifest that now forbids what this node offers does not stop the running node: the
   * decisions deny those services from then on (the rules carry the negative list and the
   * sources), and the operator is told.
   */
  afterManifest(fed: Federation, at: number): { records: GovernanceRecord[]; commit: () => void } {
    try {
      checkOffer(this.cfg.member, this.cfg.services, fed.manifest.governance)
    } catch (e) {
      this.logger.error({ err: e }, 'the new manifest forbids a service this node offers: it is denied from now on; remove it from the config')
    }
    const next = this.build(fed)
    const hash = governanceHash(next)
    if (hash === this.#hash) return { records: [], commit: () => undefined }
    return {
      records: [{ v: 1, at, t: 'governance', gov: hash, governance: next }],
      commit: () => {
        this.#rules = next
        this.#hash = hash
      },
    }
  }
}
