/**
 * `verinode verify <peer> <service> --subject f=v,... --purpose P --basis B`: one signed question
 * about one or more subjects, asked through this department's own node (local API), like any other
 * department application would (docs/DESIGN.md "CLI", issue 2 §9).
 *
 * Subjects are checked locally first against the provider's catalog with the node's own
 * canonicalization (`Consumer.canonicalSubjects` → `canonicalizeField`), so a malformed ID number
 * is reported with its code and nothing is signed, logged or sent.
 *
 * Output never repeats personal data: a subject is shown by its key fields only, resident IDs
 * masked to `350102********1234`, names never. Exit 0 when answered, 1 when denied or refused,
 * 2 for usage errors.
 */
import { UsageError, asUsageError, attachDashValues } from '../args.js'
import { parseArgs } from 'node:util'
import { VnError } from '../../errors.js'
import { Consumer } from '../../exchange/consumer.js'
import type { CatalogService } from '../../exchange/catalog.js'
import { isFieldName, type Mode } from '../../protocol/vocabulary.js'
import { LOCAL_API_OPTIONS, clientFromFlags, questionArgs, reportError, type LocalVerifyResult } from '../local-client.js'
import { EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, type CliIo, type Command } from '../types.js'
import { errorDoc, okDoc, usageText } from '../output.js'

const USAGE = 'verinode verify <peer> <service> --subject field=value[,field=value...] [--subject ...] --purpose P --basis B [--mode plain|oprf|he] [--bound FEN] [--node URL] [--token T] [--json]'

const OPTIONS = {
  ...LOCAL_API_OPTIONS,
  subject: { type: 'string', multiple: true },
  purpose: { type: 'string' },
  basis: { type: 'string' },
  mode: { type: 'string' },
  /** he mode: the confidential bound (fen, a grid point) added to every subject; encrypted, never sent in clear */
  bound: { type: 'string' },
} as const


/** `350102********1234`: region and birth date prefix, sequence and check digit hidden (as in the demo). */
export const maskId = (id: string): string => (id.length === 18 ? `${id.slice(0, 6)}********${id.slice(14)}` : '***')

/**
 * Parses one `--subject` value: `field=value` pairs separated by commas, the value running to the
 * next comma (split at the first `=`). Errors name the subject's position, never its text.
 */
export function parseSubjectArg(arg: string, position: number): Record<string, string> {
  const out: Record<string, string> = {}
  for (const part of arg.split(',')) {
    const eq = part.indexOf('=')
    const name = eq < 0 ? '' : part.slice(0, eq).trim()
    if (eq < 0 || !isFieldName(name)) throw new UsageError(`--subject ${position}: expected field=value pairs separated by commas`)
    if (Object.hasOwn(out, name)) throw new UsageError(`--subject ${position}: field ${name} given twice`)
    out[name] = part.slice(eq + 1)
  }
  return out
}

/** How a subject is shown: its key fields, identifiers masked; never a name or an amount. */
export function subjectLabel(svc: CatalogService, canonical: Readonly<Record<string, string>>): string {
  const parts: string[] = []
  for (const [field, spec] of Object.entries(svc.fields)) {
    const v = canonical[field]
    if (!spec.key || v === undefined) continue
    switch (spec.kind) {
      case 'residentId':
      case 'partyId':
        parts.push(`${field} ${maskId(v)}`)
        break
      case 'uscc': // an organisation's public registration code
      case 'year':
        parts.push(`${field} ${v}`)
        break
      default:
        parts.push(`${field} ***`)
    }
  }
  return parts.join(', ')
}

/** `{ found: true, fields: { name: false } }` → `[['found', true], ['fields.name', false]]` */
export function flattenAnswer(answer: Readonly<Record<string, unknown>>, prefix = ''): [string, unknown][] {
  const out: [string, unknown][] = []
  for (const [k, v] of Object.entries(answer)) {
    const key = prefix === '' ? k : `${prefix}.${k}`
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) out.push(...flattenAnswer(v as Record<string, unknown>, key))
    else out.push([key, v])
  }
  return out
}

const showValue = (v: unknown): string => (v === true ? 'yes' : v === false ? 'no' : v === null || v === undefined ? '-' : typeof v === 'string' ? v : JSON.stringify(v))

export function formatAnswer(answer: Readonly<Record<string, unknown>>): string {
  return flattenAnswer(answer).map(([k, v]) => `${k} ${showValue(v)}`).join(', ')
}

interface VerifyArgs {
  peer: string
  service: string
  purpose: string
  basis: string
  mode: Mode
  subjects: Record<string, string>[]
}

function parseVerifyArgs(argv: string[]): { args: VerifyArgs | undefined; values: { node?: string | undefined; token?: string | undefined; json?: boolean | undefined; help?: boolean | undefined } } {
  let parsed
  try {
    parsed = parseArgs({ args: attachDashValues(argv, OPTIONS), options: OPTIONS, allowPositionals: true, strict: true })
  } catch (e) {
    throw asUsageError(e)
  }
  const { values, positionals } = parsed
  if (values.help === true) return { args: undefined, values }
  const q = questionArgs(positionals, values, ' (subjects go in --subject)')
  const raw = values.subject ?? []
  if (raw.length === 0) throw new UsageError('at least one --subject is required')
  const subjects = raw.map((s, i) => parseSubjectArg(s, i + 1))
  if (values.bound !== undefined) {
    if (!/^\d{1,18}$/.test(values.bound)) throw new UsageError('--bound: an amount in fen (digits only)')
    for (const s of subjects) s.bound = values.bound
  }
  return { args: { ...q, subjects }, values }
}

function printResult(io: CliIo, a: VerifyArgs, svc: CatalogService, canonical: Record<string, string>[], r: LocalVerifyResult): void {
  const receipt = `xid ${r.xid}${r.agreement === undefined ? '' : `, agreement ${r.agreement}`}, provider log index ${r.providerLogIndex}`
  if (r.status === 'ok') {
    io.out(`${a.peer} ${a.service}: answered (${receipt})`)
    const results = r.results ?? []
    const labels = canonical.map((s) => subjectLabel(svc, s))
    const width = Math.max(...labels.map((l) => l.length))
    canonical.forEach((_s, i) => {
      const answer = results[i]
      io.out(`  ${String(i + 1).padStart(3)}  ${(labels[i] ?? '').padEnd(width)}  ${answer === undefined ? '(no answer)' : formatAnswer(answer)}`)
    })
  } else {
    const e = r.error
    io.out(`${a.peer} ${a.service}: DENIED ${e?.code ?? ''}${e === undefined ? '' : `: ${e.title}${e.detail === undefined ? '' : ` (${e.detail})`}`}`)
    io.out(`  ${receipt}`)
  }
}

export const verifyCommand: Command = {
  name: 'verify',
  summary: 'ask a peer one verification question about one or more subjects',
  usage: USAGE,
  async run(argv: string[], io0: CliIo): Promise<number> {
    let io = io0
    try {
      const { args, values } = parseVerifyArgs(argv)
      if (values.json === true) io = { ...io0, json: true }
      if (args === undefined) {
        io.out(usageText(USAGE))
        return EXIT_OK
      }
      const client = clientFromFlags(values, io.env)
      try {
        const catalog = await client.catalog(args.peer)
        const svc = catalog.services.find((s) => s.id === args.service)
        if (svc === undefined) throw new VnError('VN_ERR_POLICY_UNKNOWN_SERVICE', `${args.peer} offers no ${args.service}`)
        if (!svc.modes.includes(args.mode)) throw new VnError('VN_ERR_EXCH_MODE', `${args.service} does not offer ${args.mode}`)
        // The node's own checks, before anything is signed or sent.
        const canonical = Consumer.canonicalSubjects(svc, args.subjects)
        const r = await client.verify({ provider: args.peer, service: args.service, purpose: args.purpose, basis: args.basis, mode: args.mode, subjects: args.subjects })
        if (io.json) {
          io.out(r.status === 'ok' ? okDoc('verify', r) : errorDoc('verify', { ...(r.error ?? { code: 'VN_ERR_POLICY_NO_AGREEMENT' }), message: r.error?.detail ?? r.error?.title ?? 'denied' }, r))
        }
        else printResult(io, args, svc, canonical, r)
        return r.status === 'ok' ? EXIT_OK : EXIT_FINDINGS
      } finally {
        await client.close()
      }
    } catch (e) {
      const code = reportError(e, io, 'verify', USAGE)
      return code === EXIT_USAGE ? EXIT_USAGE : EXIT_FINDINGS
    }
  },
}
