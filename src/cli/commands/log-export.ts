/**
 * `verinode log export --config <verinode.json> --out <dir>`: writes a self-contained log export
 * (src/node/export.ts) for an auditor: entries, checkpoints, evidence JWS (no disclosures),
 * manifests and the trust anchor. Reads the log read-only, so the node may keep running.
 *
 * `--with-disclosures --reason <text>` also exports the sealed disclosures, decrypted. That is
 * personal data leaving the node, so it is itself logged (a `disclosure-export` record with the
 * reason's SHA-256 and the count), which needs the node stopped (src/node/offline-log.ts), unless
 * its log is on PostgreSQL (the database assigns the record's index; the replicas may run).
 */
import { resolve } from 'node:path'
import { isVnError } from '../../errors.js'
import { exportLog } from '../../node/export.js'
import { SCHEMA_NAME } from '../../sources/server-common.js'
import { pgLogSetupSql } from '../../log/pg-store.js'
import { EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, type CliIo, type Command } from '../types.js'
import { commandLine } from '../args.js'
import { errorDoc, errorOf } from '../output.js'

const USAGE = `usage: verinode log export --config <verinode.json> --out <dir> [--with-disclosures --reason <text>] [--json]
       verinode log pg-sql --schema <name> --role <login role>

  export        writes entries.jsonl, checkpoints/, evidence.jsonl (signed JWS only, no
                disclosures), manifests/, federation-root.pub and export.json into <dir>, which
                must not exist or be empty. Check it with \`verinode audit verify <dir>\`.

  --with-disclosures  also write disclosures.jsonl: the sealed disclosures (personal data),
                decrypted. Needs --reason; the node must be STOPPED, because the export is first
                logged as a disclosure-export record (reason SHA-256, count) and checkpointed
                (a log on PostgreSQL is shared by replicas: they may keep running).
  --reason T    why disclosures leave the node (kept in export.json; only its hash is logged)

  pg-sql        prints the SQL that creates a PostgreSQL log's schema and tables (run it as
                their owner) and grants the node's login role only what it needs
                (docs/OPERATIONS.md "The log on PostgreSQL, and replicas")`

const OPTIONS = {
  config: { type: 'string' },
  out: { type: 'string' },
  'with-disclosures': { type: 'boolean' },
  reason: { type: 'string' },
  json: { type: 'boolean' },
  schema: { type: 'string' },
  role: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const

/** VN_ERR_* codes that mean "fix your command line or config" (exit 2) rather than "it failed" (1). */
const USAGE_CODES = new Set(['VN_ERR_CONFIG_INVALID', 'VN_ERR_KEY_FILE', 'VN_ERR_AUDIT_EXPORT_TARGET', 'VN_ERR_AUDIT_NODE_RUNNING'])

export const logExportCommand: Command = {
  name: 'log',
  summary: 'operator: export the log, checkpoints, evidence and manifests for an auditor',
  usage: USAGE,
  async run(argv: string[], io: CliIo): Promise<number> {
    const cl = commandLine(argv, OPTIONS, io, 'log export', USAGE)
    if (typeof cl === 'number') return cl
    const { values, positionals, usageError } = cl
    const [sub, ...rest] = positionals
    if (sub === 'pg-sql') {
      if (rest.length > 0) return usageError(`unexpected argument ${JSON.stringify(rest[0]!.slice(0, 40))}`)
      if (values.schema === undefined || values.role === undefined) return usageError('pg-sql needs --schema and --role')
      if (!SCHEMA_NAME.test(values.schema) || !SCHEMA_NAME.test(values.role)) return usageError('--schema and --role: plain identifiers (letters, digits, _)')
      io.out(pgLogSetupSql(values.schema, values.role))
      return EXIT_OK
    }
    if (sub !== 'export') return usageError(sub === undefined ? 'missing subcommand' : `unknown subcommand ${JSON.stringify(sub.slice(0, 40))}`)
    if (rest.length > 0) return usageError(`unexpected argument ${JSON.stringify(rest[0]!.slice(0, 40))}`)
    if (values.config === undefined) return usageError('--config is required')
    if (values.out === undefined) return usageError('--out is required')
    const withDisclosures = values['with-disclosures'] === true
    if (withDisclosures && (values.reason === undefined || values.reason.trim().length === 0)) return usageError('--with-disclosures needs --reason "<why>"')
    if (!withDisclosures && values.reason !== undefined) return usageError('--reason is only for --with-disclosures')
    try {
      const r = await exportLog(resolve(io.cwd, values.config), resolve(io.cwd, values.out), {
        env: io.env,
        ...(withDisclosures ? { withDisclosures: { reason: values.reason as string } } : {}),
      })
      const { files: _files, ...doc } = r
      if (io.json) io.out(JSON.stringify({ ok: true, command: 'log export', ...doc }))
      else {
        io.out(`exported the log of ${r.member} (${r.origin}) to ${r.dir}`)
        io.out(`  ${r.size} leaves, ${r.evidence} evidence JWS, ${r.manifests.length} manifest(s), latest checkpoint ${r.checkpoint === null ? 'none' : `at size ${r.checkpoint.size}`}`)
        if (r.checkpoint !== null && r.checkpoint.size < r.size) io.out(`  ${r.size - r.checkpoint.size} leaves are after the latest checkpoint (the running node signs one every few seconds)`)
        for (const s of r.skipped) io.out(`  skipped ${s}: does not verify against the node's trust anchor`)
        if (r.disclosures) io.out(`  disclosures of ${r.disclosureCount ?? 0} exchange(s) exported DECRYPTED to disclosures.jsonl; logged as a disclosure-export record`)
        else io.out('no disclosures were exported')
      }
      return EXIT_OK
    } catch (e) {
      if (isVnError(e)) {
        if (io.json) io.out(errorDoc('log export', errorOf(e)))
        else io.err(`error ${e.code}: ${e.message}`)
        return USAGE_CODES.has(e.code) ? EXIT_USAGE : EXIT_FINDINGS
      }
      throw e
    }
  },
}
