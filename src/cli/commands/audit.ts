/**
 * `verinode audit ...`: the offline auditor (src/audit/) over log exports (`verinode log export`),
 * checkpoints and receipts. Every subcommand trusts only the root key given with `--root` (verify,
 * consistency with --export, replay, cross-check default to the export's own copy and say so).
 * Exit 0 when there is no error finding, 1 when there is, 2 for usage errors or input that is
 * not what it should be (a folder that is not an export, a file that is not a receipt).
 */
import { UsageError, attachDashValues, reportUsage } from '../args.js'
import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { isVnError } from '../../errors.js'
import { auditExport, type AuditOptions } from '../../audit/verify.js'
import { auditConsistency, parseProofFile, type ConsistencyOptions } from '../../audit/consistency.js'
import { checkReceipt, parseReceipt, proveInclusion, writeReceipt } from '../../audit/receipt.js'
import { crossCheck, type CrossCheckOptions } from '../../audit/cross-check.js'
import { replayExport } from '../../audit/replay.js'
import { readManifestTexts } from '../../audit/export-reader.js'
import { formatConsistency, formatCrossCheck, formatReceiptCheck, formatReplay, formatReport } from '../../audit/format.js'
import { EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, type CliIo, type Command } from '../types.js'
import { errorDoc, errorOf, okDoc } from '../output.js'

const USAGE = `usage: verinode audit <subcommand> ... [--json]

  verify <export-dir> [--root R] [--manifests P]...
        checks a log export: manifests against the root key, checkpoints against the recomputed
        Merkle root, every leaf (schema, canonical JSON, no personal data), every evidence digest
        and JWS signature against the key valid at its iat, response bindings, key rotations, and
        that every answer follows a permit under the agreements in force (decisions are re-run)
  consistency <old.note> <new.note> (--export <dir> | --proof <file>) [--root R] [--manifests P]...
        proves one log only grew between two checkpoints: both signed by the member's log key,
        then an RFC 9162 consistency proof made from the export's leaves or given in a file
        (the JSON of GET /v1/log/proof/consistency). Without --export, --root is required
  prove <export-dir> <xid> [--out receipt.json] [--root R] [--manifests P]...
        writes an inclusion receipt: the leaves of that exchange, a signed checkpoint and their
        inclusion proofs (stdout without --out)
  check-receipt <receipt.json> --root R --manifests P...
        checks a receipt offline (this format, or the one a consumer node fetches from a provider)
  cross-check <consumer-export> <provider-export> [--root R] [--manifests P]... [--skip-verify]
        joins the two sides' logs on xid: exchanges missing on one side, altered, answered without
        a decision, responses not bound to their request, wrong peerIndex. No personal data needed
  replay <export-dir> [--root R] [--manifests P]...
        re-runs every decision against the agreement set in force at that point of the log and
        lists answers released without a preceding permit

  --root R        the federation root public key to trust (.pub file)
  --manifests P   manifest JWS files, or folders of *.jws (e.g. the authority's manifests/)

Exit 0: no error finding; 1: error findings; 2: usage or unreadable input.
Finding codes: docs/AUDIT.md.`

const OPTIONS = {
  root: { type: 'string' },
  manifests: { type: 'string', multiple: true },
  export: { type: 'string' },
  proof: { type: 'string' },
  out: { type: 'string' },
  'skip-verify': { type: 'boolean' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const

/** Which options each subcommand takes, and how many positionals. */
const SUBCOMMANDS: Record<string, { args: string[]; options: string[] }> = {
  verify: { args: ['<export-dir>'], options: ['root', 'manifests'] },
  consistency: { args: ['<old-checkpoint>', '<new-checkpoint>'], options: ['root', 'manifests', 'export', 'proof'] },
  prove: { args: ['<export-dir>', '<xid>'], options: ['root', 'manifests', 'out'] },
  'check-receipt': { args: ['<receipt.json>'], options: ['root', 'manifests'] },
  'cross-check': { args: ['<consumer-export>', '<provider-export>'], options: ['root', 'manifests', 'skip-verify'] },
  replay: { args: ['<export-dir>'], options: ['root', 'manifests'] },
}

async function readText(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8')
  } catch {
    throw new UsageError(`${what}: cannot read ${path}`)
  }
}

export const auditCommand: Command = {
  name: 'audit',
  summary: 'auditor: verify, consistency, prove, check-receipt, cross-check, replay (offline, on exports)',
  usage: USAGE,
  async run(argv: string[], io: CliIo): Promise<number> {
    let command = 'audit'
    const usageError = (message: string): number => reportUsage(io, command, USAGE, message)
    let values
    let positionals: string[]
    try {
      ;({ values, positionals } = parseArgs({ args: attachDashValues(argv, OPTIONS), options: OPTIONS, allowPositionals: true, strict: true }))
    } catch (e) {
      return usageError((e as Error).message)
    }
    if (values.help === true) {
      io.out(USAGE)
      return EXIT_OK
    }
    const [sub, ...args] = positionals
    if (sub === undefined) return usageError('missing subcommand')
    const spec = SUBCOMMANDS[sub]
    if (spec === undefined) return usageError(`unknown subcommand ${JSON.stringify(sub.slice(0, 40))}`)
    command = `audit ${sub}`
    if (args.length < spec.args.length) return usageError(`missing ${spec.args[args.length]}`)
    if (args.length > spec.args.length) return usageError(`unexpected argument ${JSON.stringify(args[spec.args.length]!.slice(0, 40))}`)
    for (const k of Object.keys(values)) {
      if (k !== 'json' && !spec.options.includes(k)) return usageError(`--${k} is not an option of audit ${sub}`)
    }
    const at = (p: string): string => resolve(io.cwd, p)
    const emit = (ok: boolean, json: unknown, human: () => string[]): number => {
      if (io.json) io.out(ok ? okDoc(command, json as object) : errorDoc(command, { code: 'VN_ERR_CLI_CHECKS_FAILED', message: 'the audit found errors (findings)' }, json as object))
      else for (const l of human()) io.out(l)
      return ok ? EXIT_OK : EXIT_FINDINGS
    }
    try {
      const manifestTexts = values.manifests === undefined ? [] : await readManifestTexts(values.manifests.map(at))
      const rootKey = values.root === undefined ? undefined : at(values.root)
      const auditOpts: AuditOptions = {}
      if (rootKey !== undefined) auditOpts.rootKey = rootKey
      if (manifestTexts.length > 0) auditOpts.manifests = manifestTexts.map((m) => m.jws)

      switch (sub) {
        case 'verify': {
          const report = await auditExport(at(args[0]!), auditOpts)
          return emit(report.ok, report, () => formatReport(report))
        }
        case 'consistency': {
          if ((values.export === undefined) === (values.proof === undefined)) throw new UsageError('give exactly one of --export <dir> and --proof <file>')
          if (values.export === undefined && rootKey === undefined) throw new UsageError('--root is required with --proof')
          const opts: ConsistencyOptions = { manifests: manifestTexts }
          if (rootKey !== undefined) opts.rootKey = rootKey
          if (values.export !== undefined) opts.exportDir = at(values.export)
          if (values.proof !== undefined) opts.proof = parseProofFile(await readText(at(values.proof), '--proof'))
          const [a, b] = [args[0]!, args[1]!]
          const report = await auditConsistency({ file: a, note: await readText(at(a), 'old checkpoint') }, { file: b, note: await readText(at(b), 'new checkpoint') }, opts)
          return emit(report.ok, report, () => formatConsistency(report))
        }
        case 'prove': {
          const receipt = await proveInclusion(at(args[0]!), args[1]!, { ...(rootKey === undefined ? {} : { rootKey }), manifests: manifestTexts })
          if (values.out === undefined) {
            io.out(io.json ? okDoc(command, { receipt }) : JSON.stringify(receipt, null, 2))
            return EXIT_OK
          }
          await writeReceipt(at(values.out), receipt)
          const size = receipt.checkpoint.split('\n')[1]
          if (io.json) io.out(okDoc(command, { out: at(values.out), xid: receipt.xid, origin: receipt.origin, entries: receipt.entries.map((e) => e.index), size: Number(size) }))
          else io.out(`wrote the receipt of xid ${receipt.xid} (leaves ${receipt.entries.map((e) => e.index).join(', ')} in checkpoint size ${size} of ${receipt.origin}) to ${at(values.out)}`)
          return EXIT_OK
        }
        case 'check-receipt': {
          if (rootKey === undefined) throw new UsageError('--root is required: a receipt is checked against your own trust anchor')
          if (manifestTexts.length === 0) throw new UsageError('--manifests is required: the log keys come from the manifests')
          const report = await checkReceipt(parseReceipt(await readText(at(args[0]!), 'receipt')), { rootKey, manifests: manifestTexts })
          return emit(report.ok, report, () => formatReceiptCheck(report))
        }
        case 'cross-check': {
          const opts: CrossCheckOptions = { verify: values['skip-verify'] !== true }
          if (rootKey !== undefined) opts.rootKey = rootKey
          if (auditOpts.manifests !== undefined) opts.manifests = auditOpts.manifests
          const report = await crossCheck(at(args[0]!), at(args[1]!), opts)
          return emit(report.ok, report, () => formatCrossCheck(report))
        }
        default: {
          const report = await replayExport(at(args[0]!), auditOpts)
          return emit(report.ok, report, () => formatReplay(report))
        }
      }
    } catch (e) {
      if (e instanceof UsageError) return usageError(e.detail)
      if (isVnError(e)) {
        if (io.json) io.out(errorDoc(command, errorOf(e)))
        else io.err(`error ${e.code}: ${e.message}`)
        return EXIT_USAGE
      }
      throw e
    }
  },
}
