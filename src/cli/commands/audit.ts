/**
 * `verinode audit verify <export-dir>`: the offline auditor (src/audit/verify.ts) over a log export
 * (`verinode log export`). Trusts only the root key given with `--root` (default: the export's own
 * copy, which the report flags). Exit 0 when there is no error finding, 1 when there is, 2 for
 * usage errors or a folder that is not an export.
 */
import { readFile, readdir, stat } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { isVnError } from '../../errors.js'
import { auditExport, type AuditOptions } from '../../audit/verify.js'
import { formatReport } from '../../audit/format.js'
import { EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, type CliIo, type Command } from '../types.js'

const USAGE = `usage: verinode audit verify <export-dir> [--root <federation-root.pub>] [--manifests <file|dir>]... [--json]

  verify        checks a log export offline: manifests against the root key, checkpoints against
                the recomputed Merkle root, every leaf (schema, canonical JSON, no personal data),
                every evidence digest and JWS signature against the key valid at its iat, response
                bindings, and that every answer follows a permit under the agreements in force
                (decisions are re-run). Exit 0: no error finding; 1: error findings; 2: usage.

  --root F        the federation root public key to trust (default: the export's federation-root.pub)
  --manifests P   more manifest JWS files, or a folder of *.jws (e.g. the authority's manifests/)`

const OPTIONS = {
  root: { type: 'string' },
  manifests: { type: 'string', multiple: true },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const

class UsageError extends Error {}

async function manifestTexts(paths: readonly string[], cwd: string): Promise<string[]> {
  const out: string[] = []
  for (const p of paths) {
    const full = resolve(cwd, p)
    const s = await stat(full).catch(() => undefined)
    if (s === undefined) throw new UsageError(`--manifests: ${p} does not exist`)
    const files = s.isDirectory() ? (await readdir(full)).filter((n) => n.endsWith('.jws')).sort().map((n) => join(full, n)) : [full]
    for (const f of files) out.push((await readFile(f, 'utf8')).trim())
  }
  return out
}

export const auditCommand: Command = {
  name: 'audit',
  summary: 'auditor: verify a log export offline (signatures, checkpoints, evidence, decisions)',
  usage: USAGE,
  async run(argv: string[], io: CliIo): Promise<number> {
    const usageError = (message: string): number => {
      if (io.json) io.out(JSON.stringify({ ok: false, command: 'audit verify', error: { code: 'USAGE', message } }))
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
    const [sub, dir, ...rest] = positionals
    if (sub !== 'verify') return usageError(sub === undefined ? 'missing subcommand' : `unknown subcommand ${JSON.stringify(sub.slice(0, 40))}`)
    if (dir === undefined) return usageError('missing <export-dir>')
    if (rest.length > 0) return usageError(`unexpected argument ${JSON.stringify(rest[0]!.slice(0, 40))}`)
    try {
      const opts: AuditOptions = {}
      if (values.root !== undefined) opts.rootKey = resolve(io.cwd, values.root)
      if (values.manifests !== undefined) opts.manifests = await manifestTexts(values.manifests, io.cwd)
      const report = await auditExport(resolve(io.cwd, dir), opts)
      if (io.json) io.out(JSON.stringify(report))
      else for (const l of formatReport(report)) io.out(l)
      return report.ok ? EXIT_OK : EXIT_FINDINGS
    } catch (e) {
      if (e instanceof UsageError) return usageError(e.message)
      if (isVnError(e)) {
        if (io.json) io.out(JSON.stringify({ ok: false, command: 'audit verify', error: { code: e.code, message: e.message } }))
        else io.err(`error ${e.code}: ${e.message}`)
        return EXIT_USAGE
      }
      throw e
    }
  },
}
