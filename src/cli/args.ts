/**
 * Shared command-line handling: the one usage error every command throws, strict parsing,
 * `--help`, and usage errors reported the same way everywhere (exit 2; with `--json`, one JSON
 * document whose error code is VN_ERR_CLI_USAGE).
 */
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { VnError } from '../errors.js'
import type { CliIo } from './types.js'
import { EXIT_OK, EXIT_USAGE } from './types.js'
import { usageText } from './output.js'

/**
 * A bad command line: VN_ERR_CLI_USAGE, exit 2. `detail` is what the user reads above the usage;
 * it never repeats a value that might be personal data.
 */
export class UsageError extends VnError {
  override readonly detail: string
  constructor(detail: string) {
    super('VN_ERR_CLI_USAGE', detail)
    this.name = 'UsageError'
    this.detail = detail
    // the user reads the message above the usage text: no catalogue title in front
    this.message = detail
  }
}

/** node:util parseArgs refusing the command line (unknown option, missing value, stray argument). */
function isParseArgsError(e: unknown): e is Error & { code: string } {
  const code = (e as { code?: unknown } | null)?.code
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_')
}

/** A parseArgs refusal as a UsageError; anything else unchanged. */
export function asUsageError(e: unknown): unknown {
  if (!isParseArgsError(e)) return e
  return new UsageError(e.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL' ? 'unexpected argument' : e.message)
}

/**
 * Reports a usage error: `{ ok: false, command, error: { code: 'VN_ERR_CLI_USAGE', message } }`
 * with `--json`, else the message and the usage on stderr. Returns the usage exit code.
 */
export function reportUsage(io: Pick<CliIo, 'json' | 'out' | 'err'>, command: string, usage: string, message: string): number {
  if (io.json) io.out(JSON.stringify({ ok: false, command, error: { code: 'VN_ERR_CLI_USAGE', message } }))
  else io.err(usage === '' ? message : `${message}\n\n${usageText(usage)}`)
  return EXIT_USAGE
}

/** A decimal integer option in [min, max], or undefined when absent; UsageError otherwise. */
export function intOption(value: string | undefined, flag: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined
  if (!/^[0-9]{1,15}$/.test(value) || Number(value) < min || Number(value) > max) throw new UsageError(`--${flag}: expected an integer from ${min} to ${max}`)
  return Number(value)
}

type Options = NonNullable<ParseArgsConfig['options']>

export interface CommandLine<O extends Options> {
  values: ReturnType<typeof parseArgs<{ options: O; allowPositionals: true; strict: true }>>['values']
  positionals: string[]
  /** prints the message and the usage; returns the usage exit code */
  usageError(message: string): number
}

/** Parses `argv`; returns the exit code instead when parsing failed or `--help` was asked for. */
export function commandLine<O extends Options>(argv: string[], options: O, io: CliIo, command: string, usage: string): CommandLine<O> | number {
  const usageError = (message: string): number => reportUsage(io, command, usage, message)
  let parsed
  try {
    parsed = parseArgs({ args: attachDashValues(argv, options), options, allowPositionals: true, strict: true })
  } catch (e) {
    return usageError((e as Error).message)
  }
  if ((parsed.values as { help?: boolean }).help === true) {
    io.out(usageText(usage))
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
