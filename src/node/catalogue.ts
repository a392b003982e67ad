/**
 * The federation catalogue (docs/GOVERNANCE.md "Catalogue and one source per item"): every
 * department's signed catalog, each fetched and verified by this node like any provider's
 * (src/exchange/consumer.ts `catalog`), beside the manifest's catalogue section (the authoritative
 * source of each item, the negative list). A member whose catalog cannot be had is listed with
 * the error's code; the others are still shown.
 */
import { isVnError } from '../errors.js'
import type { Catalog } from '../exchange/catalog.js'
import type { Consumer } from '../exchange/consumer.js'
import type { FederationHolder } from '../federation/federation.js'
import type { ManifestGovernance } from '../protocol/governance.js'

export type CatalogueEntry =
  | { member: string; name: string; ok: true; catalog: Catalog }
  | { member: string; name: string; ok: false; error: { code: string; detail?: string | undefined } }

export interface FederationCatalogue {
  federation: string
  seq: number
  /** the manifest's catalogue section (empty lists when it has none) */
  governance: ManifestGovernance
  members: CatalogueEntry[]
}

export async function federationCatalogue(d: { federation: FederationHolder; consumer: Pick<Consumer, 'catalog'> }): Promise<FederationCatalogue> {
  const fed = d.federation.get()
  const members = await Promise.all(fed.departments().map(async (m): Promise<CatalogueEntry> => {
    try {
      return { member: m.id, name: m.name, ok: true, catalog: await d.consumer.catalog(m.id) }
    } catch (e) {
      if (!isVnError(e)) throw e
      return { member: m.id, name: m.name, ok: false, error: { code: e.code, detail: e.detail } }
    }
  }))
  return { federation: fed.name, seq: fed.seq, governance: fed.manifest.governance ?? { sources: [], negativeList: [] }, members }
}
