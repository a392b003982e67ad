/**
 * `verinode apply`, `applications`, `agreements` and `dispute` against two real nodes on
 * 127.0.0.1, through the local API: human and --json output, exit codes, usage errors.
 */
import t from 'tap'
import { federationFixture } from '../helper.js'
import { agreementsCommand, applicationsCommand, applyCommand, disputeCommand } from '../../src/cli/commands/governance.js'
import type { CliIo, Command } from '../../src/cli/types.js'

const PSB = 'fj-psb'
const TAX = 'fj-tax'

t.test('the application and dispute commands, end to end', async (t) => {
  const f = await federationFixture(t, { start: [PSB, TAX] })
  const envOf = (m: string): Record<string, string> => ({ VERINODE_NODE: f.nodes[m]!.localUrl, VERINODE_TOKEN: f.fed.nodes[m]!.appToken })
  const run = async (cmd: Command, member: string, argv: string[]): Promise<{ code: number; out: string[]; err: string[]; doc: any }> => { // eslint-disable-line @typescript-eslint/no-explicit-any
    const out: string[] = []
    const err: string[] = []
    const io: CliIo = { out: (l) => out.push(l), err: (l) => err.push(l), json: false, tty: false, cwd: '.', env: envOf(member) }
    const code = await cmd.run(argv, io)
    let doc
    try {
      doc = argv.includes('--json') ? JSON.parse(out.join('\n')) : undefined
    } catch {
      doc = undefined
    }
    return { code, out, err, doc }
  }
  const until = new Date(Date.now() + 90 * 86_400_000).toISOString()

  const filed = await run(applyCommand, PSB, [TAX, '--service', 'tax.compliance', '--purpose', 'loan-screening', '--basis', 'Commercial Bank Law art. 35',
    '--quota', '20', '--until', until, '--contact', 'Wang Wu, 0591-87654321', '--json'])
  t.equal(filed.code, 0, filed.err.join('\n'))
  const id = filed.doc.id as string
  t.match(filed.doc, { ok: true, command: 'apply', state: 'filed' })

  const list = await run(applicationsCommand, TAX, [])
  t.equal(list.code, 0)
  t.match(list.out.join('\n'), new RegExp(`${id.replace(/[-_]/g, '.')}.*provider.*fj-psb.*tax.compliance.*filed`))
  t.notMatch(list.out.join('\n'), /Wang/, 'no contact in the list')
  t.equal((await run(applicationsCommand, TAX, ['list', '--overdue'])).code, 0, 'nothing overdue: exit 0')
  const show = await run(applicationsCommand, TAX, ['show', id])
  t.match(show.out.join('\n'), /contact: Wang Wu/)

  const ok = await run(applicationsCommand, TAX, ['approve', id, '--agreement-id', 'psb-loans', '--json'])
  t.equal(ok.code, 0, ok.err.join('\n'))
  t.match(ok.doc, { ok: true, state: 'approved', delivered: true, agreement: { id: 'psb-loans' } })
  const agreements = await run(agreementsCommand, TAX, [])
  t.match(agreements.out.join('\n'), /psb-loans\s+fj-psb\s+tax.compliance/)
  const again = await run(applicationsCommand, TAX, ['approve', id, '--json'])
  t.equal(again.code, 1)
  t.equal(again.doc.error.code, 'VN_ERR_GOV_STATE')
  const status = await run(applicationsCommand, PSB, ['show', id])
  t.match(status.out.join('\n'), /approved[\s\S]*application-decision signed by fj-tax/)

  const suspended = await run(agreementsCommand, TAX, ['suspend', 'psb-loans', '--reason', 'audit'])
  t.equal(suspended.code, 0)
  t.match(suspended.out[0], /psb-loans: suspended/)
  t.equal((await run(agreementsCommand, TAX, ['suspend', 'psb-loans'])).code, 2, 'no reason: a usage error')

  // a dispute about an exchange under the new agreement
  await run(agreementsCommand, TAX, ['resume', 'psb-loans', '--reason', 'done'])
  const s = f.fed.dataset.samples.tax
  const x = await f.verify(PSB, { provider: TAX, service: 'tax.compliance', purpose: 'loan-screening', basis: 'Commercial Bank Law art. 35', subjects: [{ uscc: s.paidInFull[0]!.uscc, year: s.year }] })
  t.equal(x.status, 200)
  const d = await run(disputeCommand, PSB, [TAX, x.json.xid, String(x.json.providerLogIndex), '--reason', 'outdated', '--note', 'see the receipt', '--json'])
  t.equal(d.code, 0, d.err.join('\n'))
  const did = d.doc.id as string
  const queue = await run(disputeCommand, TAX, ['status'])
  t.match(queue.out.join('\n'), /provider\s+fj-psb.*outdated\s+filed/)
  const fixed = await run(disputeCommand, TAX, ['correct', did, '--reason', 'record updated'])
  t.equal(fixed.code, 0)
  t.match(fixed.out.join('\n'), /corrected[\s\S]*correction logged at/)
  const seen = await run(disputeCommand, PSB, ['status', did, '--json'])
  t.equal(seen.doc.state, 'corrected')
  t.equal(seen.doc.messages.at(-1).payload.reason, 'record updated')

  // usage errors
  t.equal((await run(applyCommand, PSB, [TAX])).code, 2)
  t.equal((await run(applicationsCommand, TAX, ['approve'])).code, 2)
  t.equal((await run(applicationsCommand, TAX, ['approve', 'short'])).code, 2)
  t.equal((await run(applicationsCommand, TAX, ['frobnicate', id])).code, 2)
  t.equal((await run(disputeCommand, PSB, [TAX, x.json.xid, 'not-a-number', '--reason', 'other', '--note', 'n'])).code, 2)
  t.equal((await run(disputeCommand, PSB, [])).code, 2)
  const unknown = await run(disputeCommand, TAX, ['reject', 'AAAAAAAAAAAAAAAAAAAAAA', '--reason', 'x', '--json'])
  t.equal(unknown.code, 1)
  t.equal(unknown.doc.error.code, 'VN_ERR_GOV_UNKNOWN')
})
