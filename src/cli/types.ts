/**
 * The contract every CLI command follows. `src/cli/main.ts` picks the command by name and hands it the
 * remaining arguments; the command parses them with `node:util` parseArgs, writes human output with
 * `io.out` (or one JSON document when `io.json`), and returns the process exit code: 0 only when
 * everything asked for succeeded, 1 when a check found problems, 2 for usage or configuration errors.
 */
export interface CliIo {
  out(line: string): void
  err(line: string): void
  /** `--json` was given: print exactly one JSON document on stdout. */
  json: boolean
  /** whether stderr is a terminal (progress bars only then) */
  tty: boolean
  cwd: string
  env: Record<string, string | undefined>
}

export interface Command {
  name: string
  summary: string
  usage: string
  run(argv: string[], io: CliIo): Promise<number>
}

export const EXIT_OK = 0
export const EXIT_FINDINGS = 1
export const EXIT_USAGE = 2
