/**
 * The reference of the tag-set build benchmarks (bench:scale-build, bench:scale): what one core
 * evaluates per second on the build's own code path (`evaluatePrefixes` on 4096-record chunks of
 * real rows, in this thread, nothing else of ours running), per wall-clock second and per CPU
 * second. A build on every core can at best reach cores × the wall-clock figure.
 */
import Database from 'better-sqlite3'
import { evaluatePrefixes } from '../src/oprf/prefixes.js'
import { deriveEpochKey } from '../src/oprf/tagset.js'
import { rowInput, type OprfProviderService } from '../src/oprf/tagset-service.js'

/** identity.match as the demo's public security bureau defines it, over `residents`. */
export function residentService(shardRecords: number): OprfProviderService {
  return {
    id: 'identity.match',
    kind: 'match',
    fields: { id: { kind: 'residentId', key: true, required: true }, name: { kind: 'name', key: false, required: true } },
    modes: ['oprf'],
    enumerate: 'SELECT id_number AS id, name FROM residents',
    oprf: { epochHours: 24, shardRecords },
  }
}

/** A one-core rate meter over 8,192 rows of the `residents` table at `dbPath`. */
export function oneCoreMeter(dbPath: string, svc: OprfProviderService): (seconds: number) => { wall: number; cpu: number } {
  const key = deriveEpochKey(new Uint8Array(32).fill(7), svc.id, 20_000)
  const db = new Database(dbPath, { readonly: true })
  const sample = (db.prepare('SELECT id_number AS id, name FROM residents LIMIT 8192').all() as { id: string; name: string }[]).map((r) => rowInput(svc, r) as Uint8Array)
  db.close()
  return (seconds) => {
    let n = 0
    const t0 = performance.now()
    const c0 = process.cpuUsage()
    while (performance.now() - t0 < seconds * 1000) {
      const off = (n % 2) * 4096
      evaluatePrefixes(key.secretKey, sample.slice(off, off + 4096))
      n += 4096
    }
    const c = process.cpuUsage(c0)
    return { wall: n / ((performance.now() - t0) / 1000), cpu: n / ((c.user + c.system) / 1e6) }
  }
}
