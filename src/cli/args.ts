/**
 * Shared command-line handling for commands with subcommands: strict parsing, `--help`, and usage
 * errors reported the same way everywhere (exit 2; one JSON document with `--json`).
 */
import { parseArgs, type ParseArgsConfig } from 'node:util'
import type { CliIo } from './types.js'
import { EXIT_OK, EXIT_USAGE } from './types.js'

type Options = NonNullable<ParseArgsConfig['options']>

export interface CommandLine<O extends Options> {
  values: ReturnType<typeof parseArgs<{ options: O; allowPositionals: true; strict: true }>>['values']
  positionals: string[]
  /** prints the message and the usage; returns the usage exit code */
  usageError(message: string): number
}

/** Parses `argv`; returns the exit code instead when parsing failed or `--help` was asked for. */
export function commandLine<O extends Options>(argv: string[], options: O, io: CliIo, command: string, usage: string): CommandLine<O> | number {
  const usageError = (message: string): number => {
    if (io.json) io.out(JSON.stringify({ ok: false, command, error: { code: 'USAGE', message } }))
    else io.err(`${message}\n\n${usage}`)
    return EXIT_USAGE
  }
  let parsed
  try {
    parsed = parseArgs({ args: attachDashValues(argv, options), options, allowPositionals: true, strict: true })
  } catch (e) {
    return usageError((e as Error).message)
  }
  if ((parsed.values as { help?: boolean }).help === true) {
    io.out(usage)
    return EXIT_OK
  }
  return { values: parsed.values, positionals: parsed.positionals, usageError }
}

/**
 * `--kid -a1mf…` → `--kid=-a1mf…`. Key ids and xids are base64url, so one in 64 starts with '-',
 * and parseArgs refuses such a value after a space as ambiguous. The next token is taken as the
 * value of a string option unless it is `--` or an option this command declares (so
 * `--kid --json` is still a usage error).
 */
export function attachDashValues(argv: readonly string[], options: Options): string[] {
  const declared = (tok: string): boolean => {
    const long = /^--([^=]+)/.exec(tok)
    if (long !== null) return Object.hasOwn(options, long[1] as string)
    const short = /^-(.)/.exec(tok)
    return short !== null && Object.values(options).some((o) => o.short === short[1])
  }
  const out: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string
    if (a === '--') {
      out.push(...argv.slice(i))
      break
    }
    const name = /^--([^=]+)$/.exec(a)?.[1]
    const next = argv[i + 1]
    if (name !== undefined && options[name]?.type === 'string' && next !== undefined && next.startsWith('-') && next !== '--' && !declared(next)) {
      out.push(`${a}=${next}`)
      i++
    } else out.push(a)
  }
  return out
}
