import t from 'tap'
import { federationFixture } from '../helper.js'
import { catalogCommand, displayWidth, renderTable, wrap } from '../../src/cli/commands/catalog.js'
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

t.test('table helpers: CJK takes two columns, cells span lines', async (t) => {
  t.equal(displayWidth('abc'), 3)
  t.equal(displayWidth('居民身份核验'), 12)
  // the cases compared with string-width 4 (cli-table3's) in docs/CLI.md
  t.equal(displayWidth('ＡＢ'), 4, 'full-width letters')
  t.equal(displayWidth('e\u0301'), 1, 'a combining accent takes no column')
  t.equal(displayWidth('👍'), 2, 'an emoji is wide')
  t.equal(displayWidth('ＡＢ'), 4, 'full-width letters')
  t.same(wrap('one two three four', 9), ['one two', 'three', 'four'])
  t.same(wrap('', 5), [''])
  const lines = renderTable(['A', 'B', 'C'], [[['x'], ['居民', 'yy'], ['z']], [['long cell'], [], ['w']]])
  t.same(lines, [
    'A          B     C',
    '---------  ----  -',
    'x          居民  z',
    '           yy',
    'long cell        w',
  ])
})

t.test('catalog over the local API', async (t) => {
  const f = await federationFixture(t, { start: ['fj-psb', 'fj-tax'] })
  const env = { VERINODE_NODE: f.nodes['fj-tax']!.localUrl, VERINODE_TOKEN: f.fed.nodes['fj-tax']!.appToken }

  t.test('human table', async (t) => {
    const io = capture(env)
    t.equal(await catalogCommand.run(['fj-psb'], io), 0, io.stderr.join('\n'))
    const text = io.stdout.join('\n')
    t.match(io.stdout[0], /^fj-psb: 2 services \(catalog signed \d{4}-\d\d-\d\dT.*Z, at most 1000 subjects per request\)$/)
    t.match(io.stdout[2], /^SERVICE\s+TITLE\s+KIND\s+FIELDS\s+MODES\s+SHARING\s+UPDATES\s+AUTHORITY$/)
    const row = io.stdout[4] ?? ''
    t.match(row, /^identity\.match\s+Resident identity match\s+match\s+id: residentId, key\s+plain(, [a-z]+)*\s+conditional\s+real-time\s+Resident Identity Card Law of the PRC$/)
    t.match(io.stdout[5], /^\s+居民身份核验\s+name: name$/, 'second line of the cell: the Chinese title and the next field')
    // Columns line up: FIELDS starts at the same display column on both lines.
    const col = (l: string, s: string): number => displayWidth(l.slice(0, l.indexOf(s)))
    t.equal(col(io.stdout[5] ?? '', 'name:'), col(row, 'id:'))
    t.notMatch(text, new RegExp(env.VERINODE_TOKEN), 'the token is never printed')
    t.same(io.stderr, [])
  })

  t.test('--json prints the verified catalog', async (t) => {
    const io = capture(env, true)
    t.equal(await catalogCommand.run(['fj-psb'], io), 0)
    t.equal(io.stdout.length, 1)
    const c = JSON.parse(io.stdout[0]!)
    t.match(c, { v: 1, iss: 'fj-psb', limits: { batchMax: 1000 } })
    t.match(c.services, [{ id: 'identity.match', kind: 'match', fields: { id: { kind: 'residentId', key: true, required: true }, name: { kind: 'name', key: false } } }])
    t.ok(c.services[0].modes.includes('plain'))
    const flag = capture(env)
    t.equal(await catalogCommand.run(['fj-psb', '--json'], flag), 0, '--json as a flag works too')
    t.same(JSON.parse(flag.stdout[0]!).services, c.services)
  })

  t.test('no peer: the federation catalogue says which catalogs could not be had, exit 1', async (t) => {
    const io = capture(env)
    t.equal(await catalogCommand.run([], io), 1)
    t.match(io.stdout[0], /^fujian-demo \(manifest seq \d+\): 4 services from 2 departments$/)
    t.match(io.stdout.join('\n'), /^fj-amr: catalog unavailable \(VN_ERR_PEER_UNREACHABLE\)$/m)
    const json = capture(env, true)
    t.equal(await catalogCommand.run([], json), 1)
    const doc = JSON.parse(json.stdout[0]!)
    t.match(doc, { ok: false, error: { code: 'VN_ERR_CLI_CHECKS_FAILED' }, unavailable: [{ member: 'fj-amr' }, { member: 'fj-credit' }] })
    t.equal(doc.services.length, 4, 'the catalogs had are still listed')
    const one = capture(env, true)
    t.equal(await catalogCommand.run(['--provider', 'fj-psb'], one), 0, 'filtered to a reachable provider: exit 0')
    t.equal(JSON.parse(one.stdout[0]!).ok, true)
  })

  t.test('--peers lists the departments', async (t) => {
    const io = capture(env)
    t.equal(await catalogCommand.run(['--peers'], io), 0)
    t.match(io.stdout[0], /^PEER\s+NAME\s+ENDPOINT$/)
    const ids = io.stdout.slice(2).map((l) => l.split(/\s+/)[0])
    t.same(ids.sort(), ['fj-amr', 'fj-credit', 'fj-psb'], 'every department except this node')
    t.match(io.stdout.join('\n'), /福建省公安厅\s+http:\/\/127\.0\.0\.1:\d+/)
  })

  t.test('unknown peer: the node refuses with its code, exit 1', async (t) => {
    const io = capture(env)
    t.equal(await catalogCommand.run(['fj-nobody'], io), 1)
    t.match(io.stderr.join('\n'), /VN_ERR_FED_UNKNOWN_MEMBER/)
    const js = capture(env, true)
    t.equal(await catalogCommand.run(['fj-nobody'], js), 1)
    t.match(JSON.parse(js.stdout[0]!), { ok: false, command: 'catalog', error: { code: 'VN_ERR_FED_UNKNOWN_MEMBER', status: 403, message: String } })
  })

  t.test('bad token: VN_ERR_LOCAL_UNAUTHORIZED, exit 1, token not echoed', async (t) => {
    const io = capture({ ...env, VERINODE_TOKEN: 'vnt_wrong-token-value' })
    t.equal(await catalogCommand.run(['fj-psb'], io), 1)
    t.match(io.stderr.join('\n'), /VN_ERR_LOCAL_UNAUTHORIZED/)
    t.notMatch(io.stderr.join('\n'), /wrong-token-value/)
  })

  t.test('--node and --token flags take precedence over the environment', async (t) => {
    const io = capture({ VERINODE_NODE: 'http://127.0.0.1:1', VERINODE_TOKEN: 'nope' })
    t.equal(await catalogCommand.run(['fj-psb', '--node', env.VERINODE_NODE, '--token', env.VERINODE_TOKEN], io), 0, io.stderr.join('\n'))
  })

  t.test('usage errors exit 2', async (t) => {
    const none = capture({ VERINODE_NODE: env.VERINODE_NODE })
    t.equal(await catalogCommand.run(['fj-psb'], none), 2, 'no token')
    t.match(none.stderr.join('\n'), /VERINODE_TOKEN/)
    t.equal(await catalogCommand.run(['fj-psb', 'extra'], capture(env)), 2, 'two peers')
    t.equal(await catalogCommand.run(['--bogus'], capture(env)), 2, 'unknown option')
    t.equal(await catalogCommand.run(['fj-psb'], capture({ ...env, VERINODE_NODE: 'not a url' })), 2, 'bad node URL')
    const help = capture(env)
    t.equal(await catalogCommand.run(['--help'], help), 0)
    t.match(help.stdout[0], /^usage: verinode catalog/)
  })
})

t.test('node not reachable: VN_ERR_LOCAL_UNREACHABLE, exit 1', async (t) => {
  const io = capture({ VERINODE_NODE: 'http://127.0.0.1:1', VERINODE_TOKEN: 'x' })
  t.equal(await catalogCommand.run(['fj-psb'], io), 1)
  t.match(io.stderr.join('\n'), /VN_ERR_LOCAL_UNREACHABLE/)
})
