/**
 * `verinode`: one binary for operators, the federation authority and auditors.
 * Human output by default, `--json` for scripts; exit 0 only when everything asked for succeeded.
 */
import { readFileSync } from 'node:fs'
import { isVnError } from '../errors.js'
import { errorDoc, errorOf, okDoc, usageText } from './output.js'
import type { Command, CliIo } from './types.js'
import { EXIT_USAGE } from './types.js'
import { UsageError, asUsageError, reportUsage } from './args.js'
import { commands } from './commands/index.js'

/** The command list; on stdout for `--help`, on stderr after a mistake. */
function usage(print: (l: string) => void): void {
  print('usage: verinode <command> [options]   (--json for machine-readable output, --version)')
  print('')
  for (const c of commands) print(`  ${c.name.padEnd(14)} ${c.summary}`)
  print('')
  print('verinode <command> --help shows the options of one command.')
}

/** This package's version (package.json two folders up from src/cli/ and dist/cli/). */
function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown }
  return typeof pkg.version === 'string' ? pkg.version : '0.0.0'
}

export async function main(argv: string[], io: CliIo): Promise<number> {
  const [name, ...rest] = argv.filter((a, i) => !(i === 0 && a === '--json'))
  if (name === '--version' || name === '-V' || name === 'version') {
    io.out(io.json ? okDoc('version', { version: version(), node: process.version }) : `verinode ${version()} (Node ${process.version})`)
    return 0
  }
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    if (name === undefined) {
      if (io.json) return reportUsage(io, '', '', 'missing command')
      usage(io.err)
      return EXIT_USAGE
    }
    usage(io.out)
    return 0
  }
  const cmd: Command | undefined = commands.find((c) => c.name === name)
  if (cmd === undefined) {
    const message = `unknown command ${JSON.stringify(name.slice(0, 40))}`
    if (io.json) return reportUsage(io, name.slice(0, 40), '', message)
    io.err(`verinode: ${message}`)
    usage(io.err)
    return EXIT_USAGE
  }
  const args = rest.filter((a) => a !== '--json')
  if (args.includes('--help') || args.includes('-h')) {
    io.out(usageText(cmd.usage))
    return 0
  }
  try {
    return await cmd.run(args, io)
  } catch (e0) {
    // A command's usage mistake (its own check or parseArgs's): VN_ERR_CLI_USAGE, exit 2.
    const e = asUsageError(e0)
    if (e instanceof UsageError) {
      if (io.json) return reportUsage(io, name, cmd.usage, e.detail)
      io.err(`verinode ${name}: ${e.detail}\n${usageText(cmd.usage)}`)
      return EXIT_USAGE
    }
    if (io.json) io.out(errorDoc(name, errorOf(e)))
    else io.err(`verinode ${name}: ${isVnError(e) ? `${e.code}: ` : ''}${(e as Error).message}`)
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
