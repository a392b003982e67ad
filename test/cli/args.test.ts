import t from 'tap'
import { attachDashValues, commandLine } from '../../src/cli/args.js'
import type { CliIo } from '../../src/cli/types.js'

const options = { kid: { type: 'string' as const }, json: { type: 'boolean' as const }, help: { type: 'boolean' as const, short: 'h' } }

t.test('a string option takes a value that starts with a dash (base64url ids)', async (t) => {
  t.same(attachDashValues(['--kid', '-a1mfAZMBuS25-Ex', 'pos'], options), ['--kid=-a1mfAZMBuS25-Ex', 'pos'])
  t.same(attachDashValues(['--kid', '--json'], options), ['--kid', '--json'], 'a declared option is not taken as the value')
  t.same(attachDashValues(['--kid', '-h'], options), ['--kid', '-h'], 'nor a declared short option')
  t.same(attachDashValues(['--json', '-x'], options), ['--json', '-x'], 'boolean options take no value')
  t.same(attachDashValues(['--kid', '--', '-x'], options), ['--kid', '--', '-x'], '-- ends the options')
  t.same(attachDashValues(['--', '--kid', '-x'], options), ['--', '--kid', '-x'])
})

t.test('commandLine: the value arrives, ambiguity is still a usage error', async (t) => {
  const errs: string[] = []
  const io = { json: false, out: () => undefined, err: (s: string) => errs.push(s) } as unknown as CliIo
  const ok = commandLine(['--kid', '-a1mf', 'x'], options, io, 'c', 'usage')
  t.ok(typeof ok === 'object' && ok.values.kid === '-a1mf' && ok.positionals[0] === 'x')
  t.equal(commandLine(['--kid', '--json'], options, io, 'c', 'usage'), 2, '--kid without its value')
  t.match(errs.join('\n'), /kid/)
})
