/**
 * `verinode`: one binary for operators, the federation authority and auditors.
 * Human output by default, `--json` for scripts; exit 0 only when everything asked for succeeded.
 */
import { isVnError } from '../errors.js'
import type { Command, CliIo } from './types.js'
import { EXIT_USAGE } from './types.js'
import { UsageError, asUsageError, reportUsage } from './args.js'
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
    const message = `unknown command ${JSON.stringify(name.slice(0, 40))}`
    if (io.json) return reportUsage(io, name.slice(0, 40), '', message)
    io.err(`verinode: ${message}`)
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
  } catch (e0) {
    // A command's usage mistake (its own check or parseArgs's): VN_ERR_CLI_USAGE, exit 2.
    const e = asUsageError(e0)
    if (e instanceof UsageError) {
      if (io.json) return reportUsage(io, name, cmd.usage, e.detail)
      io.err(`verinode ${name}: ${e.detail}\nusage: ${cmd.usage}`)
      return EXIT_USAGE
    }
    const code = isVnError(e) ? e.code : (e as { code?: string }).code
    const msg = (e as Error).message
    if (io.json) io.out(JSON.stringify({ ok: false, error: { code: code ?? 'ERROR', message: msg } }))
    else io.err(`verinode ${name}: ${code !== undefined && isVnError(e) ? `${code}: ` : ''}${msg}`)
    return 1
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
