/**
 * `verinode log export --config <verinode.json> --out <dir>`: writes a self-contained log export
 * (src/audit/export.ts) for an auditor: entries, checkpoints, evidence JWS (never disclosures),
 * manifests and the trust anchor. Reads the log read-only, so the node may keep running.
 */
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { isVnError } from '../../errors.js'
import { exportLog } from '../../audit/export.js'
import { EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, type CliIo, type Command } from '../types.js'

const USAGE = `usage: verinode log export --config <verinode.json> --out <dir> [--json]

  export        writes entries.jsonl, checkpoints/, evidence.jsonl (signed JWS only, no
                disclosures), manifests/, federation-root.pub and export.json into <dir>, which
                must not exist or be empty. Check it with \`verinode audit verify <dir>\`.`

const OPTIONS = {
  config: { type: 'string' },
  out: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const

/** VN_ERR_* codes that mean "fix your command line or config" (exit 2) rather than "it failed" (1). */
const USAGE_CODES = new Set(['VN_ERR_CONFIG_INVALID', 'VN_ERR_KEY_FILE', 'VN_ERR_AUDIT_EXPORT_TARGET'])

export const logExportCommand: Command = {
  name: 'log',
  summary: 'operator: export the log, checkpoints, evidence and manifests for an auditor',
  usage: USAGE,
  async run(argv: string[], io: CliIo): Promise<number> {
    const usageError = (message: string): number => {
      if (io.json) io.out(JSON.stringify({ ok: false, command: 'log export', error: { code: 'USAGE', message } }))
      else io.err(`${message}\n\n${USAGE}`)
      return EXIT_USAGE
    }
    let values
    let positionals: string[]
    try {
      ;({ values, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true }))
    } catch (e) {
      return usageError((e as Error).message)
    }
    if (values.help === true) {
      io.out(USAGE)
      return EXIT_OK
    }
    const [sub, ...rest] = positionals
    if (sub !== 'export') return usageError(sub === undefined ? 'missing subcommand' : `unknown subcommand ${JSON.stringify(sub.slice(0, 40))}`)
    if (rest.length > 0) return usageError(`unexpected argument ${JSON.stringify(rest[0]!.slice(0, 40))}`)
    if (values.config === undefined) return usageError('--config is required')
    if (values.out === undefined) return usageError('--out is required')
    try {
      const r = await exportLog(resolve(io.cwd, values.config), resolve(io.cwd, values.out), { env: io.env })
      const { files: _files, ...doc } = r
      if (io.json) io.out(JSON.stringify({ ok: true, command: 'log export', ...doc }))
      else {
        io.out(`exported the log of ${r.member} (${r.origin}) to ${r.dir}`)
        io.out(`  ${r.size} leaves, ${r.evidence} evidence JWS, ${r.manifests.length} manifest(s), latest checkpoint ${r.checkpoint === null ? 'none' : `at size ${r.checkpoint.size}`}`)
        if (r.checkpoint !== null && r.checkpoint.size < r.size) io.out(`  ${r.size - r.checkpoint.size} leaves are after the latest checkpoint (the running node signs one every few seconds)`)
        for (const s of r.skipped) io.out(`  skipped ${s}: does not verify against the node's trust anchor`)
        io.out('no disclosures were exported')
      }
      return EXIT_OK
    } catch (e) {
      if (isVnError(e)) {
        if (io.json) io.out(JSON.stringify({ ok: false, command: 'log export', error: { code: e.code, message: e.message } }))
        else io.err(`error ${e.code}: ${e.message}`)
        return USAGE_CODES.has(e.code) ? EXIT_USAGE : EXIT_FINDINGS
      }
      throw e
    }
  },
}
