/**
 * Start-up checks that every service can be answered from the node's data source.
 *
 * A lookup whose columns do not fit its question kind (./answers.ts "Column conventions") would
 * not fail loudly: a `match` field without its column reads "no match" for everyone, a `status`
 * lookup without `status` answers "unknown", an he value lookup without `value` fails every
 * request with VN_ERR_INTERNAL, an oprf enumeration without a field's column builds an empty tag
 * set. So the node asks the data source to describe each declared statement (parameters and
 * result columns, without running it) when it is assembled, and refuses to start with
 * VN_ERR_CONFIG_INVALID listing every problem. What only the data can show (a threshold column
 * holding an amount, a value lookup returning two rows) is still refused per request.
 */
import { VnError, isVnError } from '../errors.js'
import type { ServiceConfig } from '../config/schema.js'
import type { DataSource } from '../sources/types.js'
import { labelColumn, oprfFields, oprfLabels } from '../oprf/tagset-service.js'

/** The result columns a service's `lookup` must have, by question kind. */
function lookupColumns(svc: ServiceConfig): string[] {
  switch (svc.kind) {
    case 'match':
      // every non-key field is compared with the column of the same name
      return Object.entries(svc.fields).filter(([, f]) => !f.key).map(([name]) => name)
    case 'status':
      return ['status']
    case 'tier':
      return ['value']
    case 'membership':
    case 'threshold':
      return []
  }
}

/**
 * Describes every statement of every service and collects what cannot work. Lookups get every
 * declared field as a named parameter (./answers.ts binds them all); enumerations get none.
 * @throws VnError VN_ERR_CONFIG_INVALID (all problems in one detail), VN_ERR_SOURCE_NOT_READONLY.
 */
export async function checkServiceStatements(services: readonly ServiceConfig[], source: DataSource): Promise<void> {
  const problems: string[] = []
  const check = async (sql: string, label: string, params: readonly string[], needed: readonly string[], why: string): Promise<void> => {
    let columns: string[]
    try {
      ;({ columns } = await source.describe(sql, label, params))
    } catch (e) {
      if (isVnError(e) && e.code === 'VN_ERR_CONFIG_INVALID') {
        problems.push(e.detail ?? label)
        return
      }
      throw e
    }
    const missing = needed.filter((c) => !columns.includes(c))
    if (missing.length > 0) problems.push(`${label}: no result column ${missing.join(', ')} (${why})`)
  }
  for (const svc of services) {
    const fields = Object.keys(svc.fields)
    await check(svc.lookup, `services.${svc.id}.lookup`, fields, lookupColumns(svc), `a ${svc.kind} service reads it`)
    if (svc.modes.includes('he') && svc.he !== undefined) {
      await check(svc.he.valueLookup, `services.${svc.id}.he.valueLookup`, fields, ['value'], 'he mode reads the amount from it')
    }
    if (svc.modes.includes('oprf') && svc.enumerate !== undefined) {
      const needed = oprfFields(svc)
      if (oprfLabels(svc) !== undefined) needed.push(labelColumn(svc))
      await check(svc.enumerate, `services.${svc.id}.enumerate`, [], needed, 'the oprf tag set is built from it')
    }
  }
  if (problems.length > 0) throw new VnError('VN_ERR_CONFIG_INVALID', problems.join('; '))
}
