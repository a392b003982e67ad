/**
 * The provider keeps only disclosures a mode opened against a digest of the signed query
 * (issue 12 §7): a request in a mode that takes none (oprf) but carries some is refused with
 * VN_ERR_EXCH_DISCLOSURE_UNEXPECTED, an he request with a disclosure no digest names is refused
 * with VN_ERR_EXCH_DISCLOSURE, and in both cases nothing reaches the log. A plain request's
 * disclosures are kept as evidence, exactly those. `Provider` is built directly over a recording
 * log and a fake data source (no sockets, no workers).
 */
import t from 'tap'
import { generateKeyPairSync } from 'node:crypto'
import { Provider } from '../../src/exchange/provider.js'
import type { NodeLog } from '../../src/log/node-log.js'
import type { EvidenceRow } from '../../src/log/evidence.js'
import { MemoryReplayMemory } from '../../src/log/memory-store.js'
import { plainProvider } from '../../src/exchange/modes/plain.js'
import { oprfProvider } from '../../src/exchange/modes/oprf.js'
import { heProvider, HeKeyCache } from '../../src/exchange/modes/he.js'
import { ServiceSchema, type ServiceConfig } from '../../src/config/schema.js'
import { signJwsJson } from '../../src/crypto/jws.js'
import { makeDisclosure } from '../../src/protocol/disclosures.js'
import { REQUEST_TYP } from '../../src/protocol/envelope.js'
import type { Mode } from '../../src/protocol/vocabulary.js'
import { HE_PARAMS } from '../../src/he/context.js'
import { newXid } from '../../src/exchange/consumer.js'
import { makeUscc } from '../../src/demo/synthetic.js'
import type { LogRecord } from '../../src/log/records.js'
import type { ProviderMode } from '../../src/exchange/modes/types.js'
import type { DataSource } from '../../src/sources/types.js'

const consumer = generateKeyPairSync('ed25519')
const provider = generateKeyPairSync('ed25519')
const KID = 'fj-credit#k1'

const svc: ServiceConfig = ServiceSchema.parse({
  id: 'tax.compliance',
  title: { en: 'Tax compliance' },
  kind: 'threshold',
  fields: { uscc: { kind: 'uscc', key: true }, year: { kind: 'year', key: true } },
  modes: ['plain', 'oprf', 'he'],
  lookup: 'SELECT 1 AS paid_in_full',
  tiers: [{ id: 'low', min: 0 }],
  he: { valueLookup: 'SELECT 1 AS value' },
})

const source: DataSource = {
  kind: 'memory',
  async assertReadOnly() {},
  async describe() { return { columns: [] } },
  async query() { return [{ paid_in_full: 1 }] },
  async *iterate() {},
  async ping() {},
  async close() {},
}

/** A log that records what would have been appended. */
function recordingLog(): NodeLog & { records: LogRecord[]; evidence: EvidenceRow[] } {
  let next = 0
  const log = {
    records: [] as LogRecord[],
    evidence: [] as EvidenceRow[],
    async append(records: readonly LogRecord[], evidence: readonly EvidenceRow[] = []) {
      log.records.push(...records)
      log.evidence.push(...evidence)
      return records.map(() => next++)
    },
    reserve(count: number) {
      const index = next
      return { index, append: log.append, abandon: () => undefined, count }
    },
    async appendWith(_count: number, build: (first: number) => Promise<{ records: readonly LogRecord[]; evidence?: readonly EvidenceRow[] }>) {
      const built = await build(next)
      return log.append(built.records, built.evidence)
    },
  }
  return log
}

const noPool = (): never => {
  throw new Error('no worker pool in this file')
}

function provider0(log: NodeLog): Provider {
  const modes = new Map<Mode, ProviderMode>([
    ['plain', plainProvider],
    ['oprf', oprfProvider({ keys: { currentEpoch: () => 1, key: noPool }, pool: noPool })],
    ['he', heProvider({ pool: noPool, keys: new HeKeyCache() })],
  ])
  return new Provider({
    self: 'fj-tax',
    signer: () => ({ kid: 'fj-tax#k1', privateKey: provider.privateKey }),
    resolver: () => (kid) => {
      if (kid !== KID) throw new Error('unknown kid')
      return consumer.publicKey
    },
    services: new Map([[svc.id, svc]]),
    authorize: () => ({ permit: true, agreementId: 'a1' }),
    policyHash: () => 'A'.repeat(43),
    source,
    modes,
    log,
    replay: new MemoryReplayMemory(),
    evidence: { getJws: async () => undefined },
    limits: { batchMax: 100, skewMs: 60_000, retentionDays: 30 },
  })
}

function body(mode: Mode, q: Record<string, unknown>, disclosures: string[]): { jws: string; disclosures: string[] } {
  const payload = {
    v: 1, xid: newXid(), iat: Date.now(), iss: 'fj-credit', aud: 'fj-tax', svc: svc.id,
    purpose: 'credit-evaluation', basis: 'Social Credit Regulations art. 12', mode, q,
  }
  return { jws: signJwsJson(payload, consumer.privateKey, KID, REQUEST_TYP), disclosures }
}

const USCC = makeUscc('91', '350100', 'MA2Y0000')
const uscc = makeDisclosure('uscc', USCC)
const year = makeDisclosure('year', '2024')
const stray = makeDisclosure('name', 'someone')

t.test('oprf: disclosures beside the JWS are refused with their code and nothing is logged', async (t) => {
  const log = recordingLog()
  const p = provider0(log)
  const q = { epoch: 1, blinded: ['A'.repeat(43)] }
  await t.rejects(p.handle(body('oprf', q, [stray.disclosure])), { code: 'VN_ERR_EXCH_DISCLOSURE_UNEXPECTED', statusCode: 400 })
  await t.rejects(p.handle(body('oprf', q, [uscc.disclosure, year.disclosure])), { code: 'VN_ERR_EXCH_DISCLOSURE_UNEXPECTED' })
  t.same(log.records, [], 'no log record')
  t.same(log.evidence, [], 'no evidence')
})

t.test('he: a disclosure that no digest of the signed query names is refused and nothing is logged', async (t) => {
  const log = recordingLog()
  const p = provider0(log)
  const q = { subjects: [{ uscc: uscc.digest, year: year.digest }], kind: 'threshold', params: HE_PARAMS.id, pk: 'ab'.repeat(32), ct: ['AAAA'] }
  await t.rejects(p.handle(body('he', q, [uscc.disclosure, year.disclosure, stray.disclosure])), { code: 'VN_ERR_EXCH_DISCLOSURE', statusCode: 400 })
  // the same digests with a disclosure swapped for an unbound one
  await t.rejects(p.handle(body('he', q, [uscc.disclosure, stray.disclosure])), { code: 'VN_ERR_EXCH_DISCLOSURE' })
  t.same(log.records, [], 'no log record')
  t.same(log.evidence, [], 'no evidence')
})

t.test('plain: exactly the disclosures opened against the signed digests are kept as evidence', async (t) => {
  const log = recordingLog()
  const p = provider0(log)
  const reply = await p.handle(body('plain', { subjects: [{ uscc: uscc.digest, year: year.digest }] }, [year.disclosure, uscc.disclosure]))
  t.equal(reply.status, 200)
  const kept = log.evidence.filter((e: EvidenceRow) => e.kind === 'disclosures')
  t.equal(kept.length, 1)
  t.same(kept[0]?.kind === 'disclosures' ? [...kept[0].disclosures].sort() : [], [year.disclosure, uscc.disclosure].sort())
  t.equal(log.records.length, 3, 'request-in, decision, response-out')
})
