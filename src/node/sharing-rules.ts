/**
 * The sharing rules a node applies (docs/GOVERNANCE.md), held for the provider and kept in step
 * with the manifest: built from the config's services and the manifest's catalogue section
 * (src/policy/sharing.ts), logged as a `sharing-rules` record before any decision is made under
 * them, and swapped only after that record is durable, so every decision names rules the log
 * already holds.
 */
import type { Logger } from 'pino'
import type { Config } from '../config/schema.js'
import type { Federation } from '../federation/federation.js'
import type { SharingRulesRecord } from '../log/records.js'
import { checkOffer, sharingRulesHash, sharingRulesOf, type SharingRules } from '../policy/sharing.js'

export class SharingRulesHolder {
  #rules: SharingRules
  #hash: string

  /**
   * The start-up check (a node refuses to start on a violation) and the first rules.
   * @throws VN_ERR_GOV_* (see checkOffer)
   */
  constructor(private readonly cfg: Config, fed: Federation, private readonly logger: Logger) {
    checkOffer(cfg.member, cfg.services, fed.manifest.governance, cfg.agreements.map((a) => a.id))
    this.#rules = this.build(fed)
    this.#hash = sharingRulesHash(this.#rules)
  }

  private build(fed: Federation): SharingRules {
    return sharingRulesOf(this.cfg.member, this.cfg.services, fed.manifest.governance, fed.departments().map((m) => m.id), this.cfg.governance)
  }

  get rules(): SharingRules {
    return this.#rules
  }

  get hash(): string {
    return this.#hash
  }

  /** The record that puts the current rules in force. */
  record(at: number): SharingRulesRecord {
    return { v: 1, at, t: 'sharing-rules', hash: this.#hash, rules: this.#rules }
  }

  /**
   * A new manifest: the record of the rules it implies (none when they did not change), to be
   * logged with the manifest's key event, and `commit` to put them in force once that is durable.
   * A manifest that now forbids what this node offers does not stop the running node: the
   * decisions deny those services from then on (the rules carry the negative list and the
   * sources), and the operator is told.
   */
  afterManifest(fed: Federation, at: number): { records: SharingRulesRecord[]; commit: () => void } {
    try {
      checkOffer(this.cfg.member, this.cfg.services, fed.manifest.governance)
    } catch (e) {
      this.logger.error({ err: e }, 'the new manifest forbids a service this node offers: it is denied from now on; remove it from the config')
    }
    const next = this.build(fed)
    const hash = sharingRulesHash(next)
    if (hash === this.#hash) return { records: [], commit: () => undefined }
    return {
      records: [{ v: 1, at, t: 'sharing-rules', hash, rules: next }],
      commit: () => {
        this.#rules = next
        this.#hash = hash
      },
    }
  }
}
