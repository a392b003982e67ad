/**
 * `verinode`: one binary for operators, the federation authority and auditors.
 * Human output by default, `--json` for scripts; exit 0 only when everything asked for succeeded.
 */
import { isVnError } from '../errors.js'
import type { Command, CliIo } from './types.js'
import { EXIT_USAGE } from './types.js'
import { commands } from './commands/index.js'

function usage(io: CliIo): void {
  io.out('usage: verinode <command> [options]   (--json for machine-readable output)')
  io.out('')
  for (const c of commands) io.out(`  ${c.name.padEnd(14)} ${c.summary}`)
  io.out('')
  io.out('verinode <command> --help shows the options of one command.')
}

export async function main(argv: string[], io: CliIo): Promise<number> {
  const [name, ...rest] = argv
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    usage(io)
    return name === undefined ? EXIT_USAGE : 0
  }
  const cmd: Command | undefined = commands.find((c) => c.name === name)
  if (cmd === undefined) {
    io.err(`verinode: unknown command ${JSON.stringify(name)}`)
    usage(io)
    return EXIT_USAGE
  }
  const args = rest.filter((a) => a !== '--json')
  if (args.includes('--help') || args.includes('-h')) {
    io.out(`usage: ${cmd.usage}`)
    return 0
  }
  try {
    return await cmd.run(args, io)
  } catch (e) {
    const code = isVnError(e) ? e.code : (e as { code?: string }).code
    const msg = (e as Error).message
    if (io.json) io.out(JSON.stringify({ ok: false, error: { code: code ?? 'ERROR', message: msg } }))
    else io.err(`verinode ${name}: ${code !== undefined && isVnError(e) ? `${code}: ` : ''}${msg}`)
    return code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' || code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL' ? EXIT_USAGE : 1
  }
}

export function processIo(argv: string[]): CliIo {
  return {
    out: (l) => process.stdout.write(`${l}\n`),
    err: (l) => process.stderr.write(`${l}\n`),
    json: argv.includes('--json'),
    tty: process.stderr.isTTY === true,
    cwd: process.cwd(),
    env: process.env,
  }
}
