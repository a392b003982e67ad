/**
 * `verinode doctor --config <verinode.json>`: checks a node's setup without starting it
 * (src/node/doctor.ts) and prints one line per check, OK or FAIL, with the fix for each failure.
 * Exit 0 when every check passed, 1 when one failed, 2 for usage errors.
 */
import { resolve } from 'node:path'
import { runDoctor } from '../../node/doctor.js'
import { commandLine } from '../args.js'
import { EXIT_FINDINGS, EXIT_OK, type CliIo, type Command } from '../types.js'

const USAGE = `usage: verinode doctor [--config verinode.json] [--json]

  Checks, without starting the node: the config, the key files (present, 0600), the manifest
  (signature, expiry), that the key files are this member's keys in the manifest, the data source
  (reachable, every statement compiles and is read-only), the log folder (writable), every peer in
  the manifest (answers /healthz) and the clocks (from the peers' Date headers, against
  limits.skewMs). One line per check, OK or FAIL, each failure with its fix.
  Exit 0: all OK; 1: a check failed; 2: usage.`

const OPTIONS = {
  config: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const

export const doctorCommand: Command = {
  name: 'doctor',
  summary: 'check a node\'s setup (config, keys, manifest, data source, log, peers, clock) and say how to fix it',
  usage: USAGE,
  async run(argv: string[], io: CliIo): Promise<number> {
    const cl = commandLine(argv, OPTIONS, io, 'doctor', USAGE)
    if (typeof cl === 'number') return cl
    const { values, positionals, usageError } = cl
    if (positionals.length > 0) return usageError(`unexpected argument ${JSON.stringify(positionals[0]!.slice(0, 40))}`)
    const config = resolve(io.cwd, values.config ?? 'verinode.json')
    const checks = await runDoctor(config, { env: io.env })
    const allOk = checks.every((c) => c.ok)
    if (io.json) {
      io.out(JSON.stringify(allOk
        ? { ok: true, command: 'doctor', checks }
        : { ok: false, command: 'doctor', checks, error: { code: 'VN_ERR_CLI_CHECKS_FAILED', message: `${checks.filter((c) => !c.ok).length} check(s) failed` } }))
    } else {
      const width = Math.max(...checks.map((c) => c.check.length))
      for (const c of checks) {
        io.out(`${c.ok ? 'OK  ' : 'FAIL'} ${c.check.padEnd(width)}  ${c.detail}`)
        if (c.fix !== undefined) io.out(`     ${' '.repeat(width)}  fix: ${c.fix}`)
      }
      io.out(allOk ? 'all checks passed' : `${checks.filter((c) => !c.ok).length} of ${checks.length} checks failed`)
    }
    return allOk ? EXIT_OK : EXIT_FINDINGS
  },
}
