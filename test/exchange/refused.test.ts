/**
 * The consumer's response-in is handed to its log writer before an OPRF proof check starts, so
 * the two overlap. A signed answer the consumer cannot use: the provider (its oprf mode wrapped to damage the DLEQ
 * proof before signing) answers over real HTTP; the consumer logs the response as received while
 * it checks the proof, then a `response-refused` record, and only then returns the error. The
 * consumer's export passes `audit verify`; a refusal that does not match its response-in, or has
 * none, is a finding.
 */
import t from 'tap'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { auditEditedExport, federationFixture } from '../helper.js'
import { exportLog } from '../../src/node/export.js'
import { auditExport, type AuditReport } from '../../src/audit/verify.js'

const PSB = 'fj-psb'
const TAX = 'fj-tax'
const ask = { provider: PSB, service: 'identity.match', purpose: 'taxpayer-registration', basis: 'Tax Collection Administration Law art. 15', mode: 'oprf' }

type Answer = { r?: { proof?: string } }
interface PreparedLike { answer: () => Promise<Answer> }
interface ModeLike { prepare: (...a: unknown[]) => Promise<PreparedLike> }

const errorsOf = (r: AuditReport): string => JSON.stringify(r.findings.filter((f) => f.severity !== 'info'), null, 1)

t.test('a refused signed answer is logged as received, then refused, and audits clean', async (t) => {
  const f = await federationFixture(t, { start: [PSB, TAX] })
  for (const n of Object.values(f.nodes)) await n.node.tagsets?.whenReady()
  const id = f.fed.dataset.samples.identity
  const subject = { id: id.matches[0]!.id, name: id.matches[0]!.name }

  // The order of events on the consumer: the response-in's commit overlaps the proof check.
  const events: string[] = []
  const consumer = f.nodes[TAX]!.node.consumer as unknown as {
    d: {
      log: { store: { inlineFor: unknown; writer: { commit: (b: unknown) => Promise<unknown>; inline: { commitNow: (b: unknown) => unknown } } } }
      modes: Map<string, { build: (...a: unknown[]) => Promise<{ finish: (r: unknown) => Promise<unknown> }> }>
    }
  }
  const store = consumer.d.log.store
  const writer = store.writer
  const commit = writer.commit.bind(writer)
  writer.commit = async (b) => {
    events.push('commit')
    return commit(b)
  }
  const commitNow = writer.inline.commitNow.bind(writer.inline)
  writer.inline.commitNow = (b) => {
    events.push('commit here')
    return commitNow(b)
  }
  const oprfMode = consumer.d.modes.get('oprf')!
  const build = oprfMode.build.bind(oprfMode)
  oprfMode.build = async (...a) => {
    const built = await build(...a)
    const finish = built.finish.bind(built)
    built.finish = async (r) => {
      events.push('finish')
      return finish(r)
    }
    return built
  }
  await new Promise((r) => setTimeout(r, 10))
  const good = await f.verify(TAX, { ...ask, subjects: [subject] })
  t.equal(good.status, 200, JSON.stringify(good.json))
  t.equal(good.json.results?.[0]?.match, true)
  // A lone exchange commits on the event loop; the response-in waits one turn, so the check has
  // handed its worker's share over before the commit holds the thread.
  t.same(events, ['commit here', 'finish', 'commit here'], 'lone: request-out, then the check starts, then the response-in commit')
  // With load (here: inline commits switched off) the writer thread gets the response-in first.
  const inlineFor = store.inlineFor
  store.inlineFor = () => undefined
  events.length = 0
  const busy = await f.verify(TAX, { ...ask, subjects: [subject] })
  t.equal(busy.json.results?.[0]?.match, true)
  t.same(events, ['commit', 'commit', 'finish'], 'writer thread: request-out, then response-in handed to the writer before the proof check')
  store.inlineFor = inlineFor

  // From here on the provider signs answers whose proof has one bit flipped.
  const mode = (f.nodes[PSB]!.node.provider as unknown as { d: { modes: Map<string, ModeLike> } }).d.modes.get('oprf')!
  const prepare = mode.prepare.bind(mode)
  mode.prepare = async (...a: unknown[]) => {
    const p = await prepare(...a)
    const answer = p.answer.bind(p)
    p.answer = async () => {
      const x = await answer()
      const proof = Buffer.from(x.r!.proof!, 'base64url')
      proof[40] = (proof[40] as number) ^ 1
      return { ...x, r: { ...x.r, proof: proof.toString('base64url') } }
    }
    return p
  }
  const bad = await f.verify(TAX, { ...ask, subjects: [subject] })
  t.equal(bad.json.code, 'VN_ERR_OPRF_PROOF', JSON.stringify(bad.json))
  t.equal(bad.json.results, undefined, 'no answer reaches the application')

  const db = new Database(join(f.fed.dir, TAX, 'var', 'log.db'), { readonly: true })
  const last = (db.prepare('SELECT data FROM leaves ORDER BY idx DESC LIMIT 3').pluck().all() as Buffer[]).reverse().map((b) => JSON.parse(b.toString('utf8')) as Record<string, unknown>)
  db.close()
  t.same(last.map((r) => r.t), ['request-out', 'response-in', 'response-refused'])
  const [reqOut, respIn, refused] = last as [Record<string, unknown>, Record<string, unknown>, Record<string, unknown>]
  t.equal(respIn.status, 'ok', 'the response-in says what the provider signed')
  t.equal(refused.code, 'VN_ERR_OPRF_PROOF')
  t.equal(refused.xid, reqOut.xid)
  t.equal(refused.respDigest, respIn.respDigest)
  t.equal(refused.reqDigest, reqOut.reqDigest)

  for (const n of Object.values(f.nodes)) await n.close()
  const out = join(f.fed.dir, 'export-tax')
  await exportLog(f.fed.nodes[TAX]!.configPath, out)
  const r = await auditExport(out)
  t.ok(r.ok, errorsOf(r))
  t.same(r.findings.filter((x) => x.severity !== 'info').map((x) => x.code), [], errorsOf(r))

  // Tampered copies, re-signed with the consumer's real log key so only the records are wrong.
  let k = 0
  const tampered = (edit: (leaves: Record<string, unknown>[]) => Record<string, unknown>[]): Promise<AuditReport> =>
    auditEditedExport(f.fed, TAX, out, join(f.fed.dir, `tampered-${k++}`), edit)
  const isRefusal = (x: Record<string, unknown>): boolean => x.t === 'response-refused'
  const codes = (rep: AuditReport): string[] => rep.findings.filter((x) => x.severity === 'error').map((x) => x.code)

  const otherDigest = await tampered((ls) => ls.map((x) => (isRefusal(x) ? { ...x, respDigest: x.reqDigest } : x)))
  t.notOk(otherDigest.ok)
  t.match(codes(otherDigest), ['AUDIT_BINDING_MISMATCH'])

  const twice = await tampered((ls) => ls.flatMap((x) => (isRefusal(x) ? [x, x] : [x])))
  t.ok(twice.findings.some((x) => x.code === 'AUDIT_DUPLICATE_EXCHANGE' && /second response-refused/.test(x.message)), errorsOf(twice))

  const orphan = await tampered((ls) => ls.map((x) => (isRefusal(x) ? { ...x, xid: 'AAAAAAAAAAAAAAAAAAAAAA' } : x)))
  t.notOk(orphan.ok)
  t.ok(codes(orphan).includes('AUDIT_ORPHAN_ENTRY'), errorsOf(orphan))
})
