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
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true })
  } catch (e) {
    return usageError((e as Error).message)
  }
  if ((parsed.values as { help?: boolean }).help === true) {
    io.out(usage)
    return EXIT_OK
  }
  return { values: parsed.values, positionals: parsed.positionals, usageError }
}
