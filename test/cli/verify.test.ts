import t from 'tap'
import { federationFixture, type Fixture } from '../helper.js'
import { verifyCommand, parseSubjectArg, maskId, subjectLabel, flattenAnswer, formatAnswer } from '../../src/cli/commands/verify.js'
import type { CatalogService } from '../../src/exchange/catalog.js'
import type { CliIo } from '../../src/cli/types.js'

interface Captured extends CliIo {
  stdout: string[]
  stderr: string[]
}

function capture(env: Record<string, string | undefined>, json = false): Captured {
  const stdout: string[] = []
  const stderr: string[] = []
  return { stdout, stderr, out: (l) => stdout.push(l), err: (l) => stderr.push(l), json, tty: false, cwd: process.cwd(), env }
}

/** The node's log size, from its latest signed checkpoint (C2SP tlog-checkpoint line 2). */
async function logSize(f: Fixture, member: string): Promise<number> {
  return Number((await f.nodes[member]!.node.checkpoint()).split('\n')[1])
}

const IDENTITY = ['fj-psb', 'identity.match', '--purpose', 'taxpayer-registration', '--basis', 'Tax Collection Administration Law art. 15']

t.test('helpers', async (t) => {
  t.same(parseSubjectArg('id=350102198001011234,name=张三', 1), { id: '350102198001011234', name: '张三' })
  t.same(parseSubjectArg('expr=a=b', 1), { expr: 'a=b' }, 'split at the first =')
  t.throws(() => parseSubjectArg('350102198001011234', 2), { message: '--subject 2: expected field=value pairs separated by commas' })
  t.throws(() => parseSubjectArg('id=1,id=2', 1), { message: /field id given twice/ })
  t.throws(() => parseSubjectArg('张三=x', 1), { message: /^--subject 1: expected field=value/ }, 'a field name that is not one is not echoed')
  t.equal(maskId('350102198001011234'), '350102********1234')
  t.equal(maskId('short'), '***')
  const svc = {
    id: 'x.y', fields: { id: { kind: 'residentId', key: true, required: true }, name: { kind: 'name', key: false, required: true }, org: { kind: 'uscc', key: true, required: true }, k: { kind: 'text', key: true, required: true } },
  } as unknown as CatalogService
  t.equal(subjectLabel(svc, { id: '350102198001011234', name: '张三', org: '91350100M000100Y43', k: 'secret' }), 'id 350102********1234, org 91350100M000100Y43, k ***')
  t.same(flattenAnswer({ found: true, fields: { name: false, x: { y: 1 } }, list: [1] }), [['found', true], ['fields.name', false], ['fields.x.y', 1], ['list', [1]]])
  t.equal(formatAnswer({ found: true, match: false, tier: null, status: 'active' }), 'found yes, match no, tier -, status active')
})

t.test('verify over the local API', async (t) => {
  const f = await federationFixture(t, { start: ['fj-psb', 'fj-tax', 'fj-credit'] })
  const env = { VERINODE_NODE: f.nodes['fj-tax']!.localUrl, VERINODE_TOKEN: f.fed.nodes['fj-tax']!.appToken }
  const s = f.fed.dataset.samples
  const m = s.identity.matches[0]!
  const mm = s.identity.nameMismatches[0]!
  const v = s.identity.variantMatches[0]!

  t.test('match, mismatch and a full-width variant: answered, exit 0, nothing personal printed', async (t) => {
    const io = capture(env)
    const code = await verifyCommand.run([...IDENTITY, '--subject', `id=${m.id},name=${m.name}`, '--subject', `id=${mm.id},name=${mm.name}`, '--subject', `id=${v.id},name=${v.name}`, '--subject', `id=${s.identity.unknownIds[0]},name=${m.name}`], io)
    t.equal(code, 0, io.stderr.join('\n'))
    t.match(io.stdout[0], /^fj-psb identity\.match: answered \(xid [A-Za-z0-9_-]{16,}, agreement psb-tax-identity, provider log index \d+\)$/)
    t.match(io.stdout[1], new RegExp(`^\\s+1\\s+id ${maskId(m.id).replace(/\*/g, '\\*')}\\s+found yes, match yes, fields\\.name yes$`))
    t.match(io.stdout[2], /^\s+2\s+id \d{6}\*{8}[0-9X]{4}\s+found yes, match no, fields\.name no$/)
    t.match(io.stdout[3], /^\s+3\s+id \d{6}\*{8}[0-9X]{4}\s+found yes, match yes, fields\.name yes$/, 'full-width digits canonicalized')
    t.match(io.stdout[4], /^\s+4\s+id \d{6}\*{8}[0-9X]{4}\s+found no, match no, fields\.name no$/)
    const text = io.stdout.join('\n') + io.stderr.join('\n')
    for (const secret of [m.id, mm.id, m.name, mm.name, v.name, env.VERINODE_TOKEN]) t.notOk(text.includes(secret), 'no ID number, name or token in the output')
  })

  t.test('--json prints the verification result', async (t) => {
    const io = capture(env, true)
    t.equal(await verifyCommand.run([...IDENTITY, '--subject', `id=${m.id},name=${m.name}`, '--subject', `id=${mm.id},name=${mm.name}`], io), 0)
    t.equal(io.stdout.length, 1)
    const r = JSON.parse(io.stdout[0]!)
    t.match(r, { ok: true, command: 'verify', provider: 'fj-psb', service: 'identity.match', status: 'ok', agreement: 'psb-tax-identity', providerLogIndex: Number, logIndex: { request: Number, response: Number }, jws: String })
    t.same(r.results, [{ found: true, match: true, fields: { name: true } }, { found: true, match: false, fields: { name: false } }])
  })

  t.test('threshold question from another department', async (t) => {
    const credit = { VERINODE_NODE: f.nodes['fj-credit']!.localUrl, VERINODE_TOKEN: f.fed.nodes['fj-credit']!.appToken }
    const tx = s.tax
    const io = capture(credit, true)
    const code = await verifyCommand.run(['fj-tax', 'tax.compliance', '--purpose', 'credit-evaluation', '--basis', 'Social Credit Regulations art. 12',
      '--subject', `uscc=${tx.paidInFull[0]!.uscc},year=${tx.year}`, '--subject', `uscc=${tx.notPaidInFull[0]!.uscc},year=${tx.year}`, '--subject', `uscc=${tx.noRecord[0]},year=${tx.year}`], io)
    t.equal(code, 0, io.stdout.join('\n'))
    t.match(JSON.parse(io.stdout[0]!).results, [{ found: true, paidInFull: true }, { found: true, paidInFull: false }, { found: false }])
  })

  t.test('signed denial: exit 1, code printed, receipt shown', async (t) => {
    const io = capture(env)
    const code = await verifyCommand.run(['fj-psb', 'identity.match', '--purpose', 'marketing', '--basis', 'none', '--subject', `id=${m.id},name=${m.name}`], io)
    t.equal(code, 1)
    t.match(io.stdout[0], /^fj-psb identity\.match: DENIED VN_ERR_POLICY_NO_AGREEMENT: No agreement permits this request/)
    t.match(io.stdout[1], /xid [A-Za-z0-9_-]{16,}, provider log index \d+/)
    const js = capture(env, true)
    t.equal(await verifyCommand.run(['fj-psb', 'identity.match', '--purpose', 'marketing', '--basis', 'none', '--subject', `id=${m.id},name=${m.name}`], js), 1)
    t.match(JSON.parse(js.stdout[0]!), { ok: false, command: 'verify', status: 'denied', error: { code: 'VN_ERR_POLICY_NO_AGREEMENT', status: 403, message: String }, xid: String, jws: String })
  })

  t.test('malformed ID number: code printed, exit 1, nothing signed, logged or sent', async (t) => {
    const before = [await logSize(f, 'fj-tax'), await logSize(f, 'fj-psb')]
    const bad = `${m.id.slice(0, 17)}${m.id.endsWith('0') ? '1' : '0'}`
    const io = capture(env)
    t.equal(await verifyCommand.run([...IDENTITY, '--subject', `id=${m.id},name=${m.name}`, '--subject', `id=${bad},name=${m.name}`], io), 1)
    t.match(io.stderr.join('\n'), /VN_ERR_SUBJECT_ID_CHECKSUM.*subjects\[1\]\.id/)
    t.notOk(io.stderr.join('\n').includes(bad), 'the value is not echoed')
    t.same([await logSize(f, 'fj-tax'), await logSize(f, 'fj-psb')], before, 'neither log grew')
    const js = capture(env, true)
    t.equal(await verifyCommand.run([...IDENTITY, '--subject', `id=${bad},name=${m.name}`], js), 1)
    t.match(JSON.parse(js.stdout[0]!), { ok: false, command: 'verify', error: { code: 'VN_ERR_SUBJECT_ID_CHECKSUM', status: 400 } })
  })

  t.test('subject field errors found locally', async (t) => {
    const missing = capture(env)
    t.equal(await verifyCommand.run([...IDENTITY, '--subject', `id=${m.id}`], missing), 1)
    t.match(missing.stderr.join('\n'), /VN_ERR_SUBJECT_INVALID.*subjects\[0\]\.name: missing/)
    const extra = capture(env)
    t.equal(await verifyCommand.run([...IDENTITY, '--subject', `id=${m.id},name=${m.name},age=40`], extra), 1)
    t.match(extra.stderr.join('\n'), /VN_ERR_SUBJECT_INVALID.*unknown field age/)
  })

  t.test('unknown service and unknown peer: the codes, exit 1', async (t) => {
    const svc = capture(env)
    t.equal(await verifyCommand.run(['fj-psb', 'identity.lookup', '--purpose', 'p', '--basis', 'b', '--subject', 'id=1'], svc), 1)
    t.match(svc.stderr.join('\n'), /VN_ERR_POLICY_UNKNOWN_SERVICE/)
    const peer = capture(env)
    t.equal(await verifyCommand.run(['fj-nobody', 'identity.match', '--purpose', 'p', '--basis', 'b', '--subject', 'id=1'], peer), 1)
    t.match(peer.stderr.join('\n'), /VN_ERR_FED_UNKNOWN_MEMBER/)
  })

  t.test('bad token: VN_ERR_LOCAL_UNAUTHORIZED, exit 1', async (t) => {
    const io = capture({ ...env, VERINODE_TOKEN: 'vnt_not-the-token' })
    t.equal(await verifyCommand.run([...IDENTITY, '--subject', `id=${m.id},name=${m.name}`], io), 1)
    t.match(io.stderr.join('\n'), /VN_ERR_LOCAL_UNAUTHORIZED/)
    t.notMatch(io.stderr.join('\n'), /not-the-token/)
    const js = capture({ ...env, VERINODE_TOKEN: 'vnt_not-the-token' }, true)
    t.equal(await verifyCommand.run([...IDENTITY, '--subject', `id=${m.id},name=${m.name}`], js), 1)
    t.match(JSON.parse(js.stdout[0]!), { ok: false, command: 'verify', error: { code: 'VN_ERR_LOCAL_UNAUTHORIZED', status: 401 } })
  })

  t.test('usage errors: exit 2, values not echoed', async (t) => {
    const cases: [string, string[], RegExp][] = [
      ['no purpose', ['fj-psb', 'identity.match', '--basis', 'b', '--subject', `id=${m.id}`], /--purpose is required/],
      ['no basis', ['fj-psb', 'identity.match', '--purpose', 'p', '--subject', `id=${m.id}`], /--basis is required/],
      ['no subject', ['fj-psb', 'identity.match', '--purpose', 'p', '--basis', 'b'], /at least one --subject/],
      ['no service', ['fj-psb'], /expected <peer> and <service>/],
      ['bad subject syntax', [...IDENTITY, '--subject', m.id], /--subject 1: expected field=value/],
      ['stray positional', [...IDENTITY, m.id], /unexpected argument/],
      ['bad mode', [...IDENTITY, '--mode', 'magic', '--subject', `id=${m.id}`], /--mode/],
      ['bad peer id', ['FJ PSB', 'identity.match', '--purpose', 'p', '--basis', 'b', '--subject', 'id=1'], /<peer>/],
      ['unknown option', [...IDENTITY, '--frobnicate'], /frobnicate/],
    ]
    for (const [name, argv, msg] of cases) {
      const io = capture(env)
      t.equal(await verifyCommand.run(argv, io), 2, name)
      t.match(io.stderr.join('\n'), msg, name)
      t.notOk(io.stderr.join('\n').includes(m.id), `${name}: no ID number echoed`)
    }
    const noToken = capture({ VERINODE_NODE: env.VERINODE_NODE })
    t.equal(await verifyCommand.run([...IDENTITY, '--subject', `id=${m.id},name=${m.name}`], noToken), 2)
    const js = capture(env, true)
    t.equal(await verifyCommand.run(['fj-psb'], js), 2)
    t.match(JSON.parse(js.stdout[0]!), { ok: false, command: 'verify', error: { code: 'VN_ERR_CLI_USAGE', status: 400 } })
  })
})
