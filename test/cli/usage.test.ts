/**
 * One usage error for the whole CLI (issue 12 §7): every command's command-line mistake exits 2
 * and, with --json, prints one JSON document whose code is VN_ERR_CLI_USAGE (never a bare
 * `ERROR` from a TypeError, nor a parseArgs code). Nothing here starts a node.
 */
import t from 'tap'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { main } from '../../src/cli/main.js'
import { UsageError, intOption } from '../../src/cli/args.js'
import { VnError, ERRORS } from '../../src/errors.js'
import type { CliIo } from '../../src/cli/types.js'

function captureIo(cwd: string, json: boolean): CliIo & { stdout: string[]; stderr: string[] } {
  const io = { stdout: [] as string[], stderr: [] as string[], json, tty: false, cwd, env: {}, out: (l: string) => io.stdout.push(l), err: (l: string) => io.stderr.push(l) }
  return io
}

t.test('UsageError is the coded VN_ERR_CLI_USAGE', async (t) => {
  const e = new UsageError('--id is required')
  t.ok(e instanceof VnError)
  t.equal(e.code, 'VN_ERR_CLI_USAGE')
  t.equal(e.detail, '--id is required')
  t.equal(e.message, '--id is required', 'the message is what the user reads, without the title')
  t.ok(Object.hasOwn(ERRORS, 'VN_ERR_CLI_USAGE'))
  t.equal(intOption(undefined, 'n', 0, 5), undefined)
  t.equal(intOption('5', 'n', 0, 5), 5)
  for (const bad of ['6', '-1', '1e0', '0x1', ' 1', '', '1.5']) t.throws(() => intOption(bad, 'n', 0, 5), { code: 'VN_ERR_CLI_USAGE', detail: '--n: expected an integer from 0 to 5' }, JSON.stringify(bad))
})

t.test('every command reports its usage mistakes as VN_ERR_CLI_USAGE, exit 2', async (t) => {
  const cwd = t.testdir({})
  // a valid config that offers no oprf service
  const config = join(cwd, 'verinode.json')
  await writeFile(config, JSON.stringify({ member: 'fj-tax' }))
  const cases: Array<[string, string[], RegExp]> = [
    ['unknown command', ['frobnicate'], /unknown command/],
    ['init without --id', ['init'], /--id <member-id> is required/],
    ['init with a bad member id', ['init', '--id', 'Not An Id', '--dir', join(cwd, 'n')], /--id: not a member id/],
    ['init with a bad port', ['init', '--id', 'fj-x', '--port', 'eighty', '--dir', join(cwd, 'n')], /--port: expected an integer/],
    ['init with an unknown option', ['init', '--colour', 'blue'], /colour/],
    ['serve with an unknown option', ['serve', '--colour'], /colour/],
    ['demo with a residents count that is not a number', ['demo', '--residents', 'many'], /--residents: expected an integer/],
    ['demo with an unknown source', ['demo', '--source', 'oracle'], /--source: expected sqlite, postgres or mysql/],
    ['demo with a source URL but the SQLite files', ['demo', '--source-url', 'postgres://x@db/y'], /--source-url: only with --source postgres or mysql/],
    ['tagset without its subcommand', ['tagset'], /missing subcommand build/],
    ['tagset with a bad --workers', ['tagset', 'build', '--workers', 'all'], /--workers: expected an integer from 0 to 256/],
    ['tagset: no oprf service in the config', ['tagset', 'build', '--config', config], /no service offers oprf mode/],
    ['tagset: --service that does not offer oprf', ['tagset', 'build', '--config', config, '--service', 'no.such'], /service no\.such does not offer oprf mode/],
    ['keys without subcommand', ['keys'], /missing subcommand/],
    ['log export without --config', ['log', 'export'], /--config is required/],
    ['audit without subcommand', ['audit'], /missing subcommand/],
    ['audit check-receipt without --root', ['audit', 'check-receipt', 'r.json'], /--root is required/],
    ['federation unknown subcommand', ['federation', 'spin'], /unknown subcommand/],
    ['catalog with two peers', ['catalog', 'a-b', 'c-d'], /at most one peer/],
    ['verify without its arguments', ['verify', 'fj-psb'], /expected <peer> and <service>/],
    ['verify-batch without --in', ['verify-batch', 'fj-psb', 'identity.match', '--purpose', 'p', '--basis', 'b'], /--in <subjects\.csv> is required/],
  ]
  for (const [what, argv, message] of cases) {
    const human = captureIo(cwd, false)
    t.equal(await main(argv, human), 2, what)
    t.match(human.stderr.join('\n'), message, `${what}: the message on stderr`)
    const json = captureIo(cwd, true)
    t.equal(await main([...argv, '--json'], json), 2, `${what} (--json)`)
    t.equal(json.stdout.length, 1, `${what}: one JSON document`)
    const doc = JSON.parse(json.stdout[0] ?? '{}') as Record<string, unknown>
    t.match(doc, { ok: false, command: String, error: { code: 'VN_ERR_CLI_USAGE', message: String } }, `${what}: the one --json error shape`)
    t.match(JSON.stringify(doc), message, `${what}: the message in the document`)
  }
})

t.test('--version, help on stdout, usage after a mistake on stderr, and "usage:" printed once', async (t) => {
  const cwd = t.testdir({})
  const pkg = JSON.parse(await readFile(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }
  for (const flag of ['--version', '-V', 'version']) {
    const io = captureIo(cwd, false)
    t.equal(await main([flag], io), 0, flag)
    t.equal(io.stdout[0], `verinode ${pkg.version} (Node ${process.version})`)
  }
  const js = captureIo(cwd, true)
  t.equal(await main(['--version', '--json'], js), 0)
  t.same(JSON.parse(js.stdout[0]!), { ok: true, command: 'version', version: pkg.version, node: process.version })

  const bare = captureIo(cwd, false)
  t.equal(await main([], bare), 2, 'no command: exit 2')
  t.same(bare.stdout, [], 'nothing on stdout')
  t.match(bare.stderr.join('\n'), /^usage: verinode <command>/, 'the usage on stderr')
  const unknown = captureIo(cwd, false)
  t.equal(await main(['frobnicate'], unknown), 2)
  t.same(unknown.stdout, [], 'an unknown command: nothing on stdout')
  t.match(unknown.stderr.join('\n'), /unknown command[\s\S]*usage: verinode <command>/)

  for (const name of ['audit', 'federation', 'keys', 'log', 'doctor', 'verify', 'verify-batch', 'catalog', 'init', 'serve', 'demo', 'tagset']) {
    const help = captureIo(cwd, false)
    t.equal(await main([name, '--help'], help), 0, `${name} --help`)
    const text = help.stdout.join('\n')
    t.match(text, /^usage: /, `${name}: starts with usage:`)
    t.notMatch(text, /usage: usage:/, `${name}: usage: once`)
    t.same(help.stderr, [], `${name}: help goes to stdout`)
    const bad = captureIo(cwd, false)
    t.equal(await main([name, '--no-such-option'], bad), 2, `${name} with an unknown option`)
    t.same(bad.stdout, [], `${name}: nothing on stdout after a mistake`)
    t.notMatch(bad.stderr.join('\n'), /usage: usage:/, `${name}: usage: once after a mistake`)
  }
})

t.test('init validates before writing anything; --json has the common shape', async (t) => {
  const cwd = t.testdir({})
  for (const [argv, message] of [
    [['--port', 'abc'], /--port: expected an integer from 0 to 65535/],
    [['--port', '99999'], /--port: expected an integer from 0 to 65535/],
    [['--local-port', '-1'], /--local-port/],
    [['--port', '7100', '--local-port', '7100'], /--local-port: must differ from --port/],
    [['--host', ''], /--host: /],
  ] as Array<[string[], RegExp]>) {
    const dir = join(cwd, `n-${argv.join('')}`)
    const io = captureIo(cwd, false)
    t.equal(await main(['init', '--id', 'fj-x', '--dir', dir, ...argv], io), 2, argv.join(' '))
    t.match(io.stderr.join('\n'), message)
    t.equal(await stat(dir).then(() => true, () => false), false, `${argv.join(' ')}: nothing written`)
  }
  const js = captureIo(cwd, true)
  t.equal(await main(['init', '--id', 'fj-x', '--dir', join(cwd, 'ok'), '--port', '7300', '--json'], js), 0)
  const doc = JSON.parse(js.stdout[0]!) as Record<string, unknown>
  t.match(doc, { ok: true, command: 'init', member: 'fj-x', config: String, messageKey: String, logKey: String, appToken: String })
  const cfg = JSON.parse(await readFile(join(cwd, 'ok', 'verinode.json'), 'utf8')) as { listen: { port: number } }
  t.equal(cfg.listen.port, 7300)
})
