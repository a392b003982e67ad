/**
 * Applications, agreements and disputes from the command line (docs/GOVERNANCE.md, docs/CLI.md),
 * through this department's own node's local API like any other department application:
 *
 *   verinode apply <provider> --service S --purpose P --basis B --quota N --until ISO --contact TEXT
 *   verinode applications [list [--overdue] | show <id> | review|approve|amend|refuse <id> ...]
 *   verinode agreements [list | suspend|resume|revoke <agreement-id> --reason R]
 *   verinode dispute <provider> <xid> <index> --reason CODE --note TEXT
 *   verinode dispute [status [<id>] | correct|reject <id> --reason R]
 *
 * The contact of an application and the note of a dispute are sent to the node, which seals them;
 * they are never printed in lists (only `show` on the node's own operator's terminal prints them).
 */
import { UsageError, commandLine, intOption } from '../args.js'
import { LOCAL_API_OPTIONS, clientFromFlags, reportError, type LocalClient } from '../local-client.js'
import { EXIT_FINDINGS, EXIT_OK, type CliIo, type Command } from '../types.js'
import { okDoc } from '../output.js'
import { renderTable } from './catalog.js'
import { XID_RE } from '../../protocol/vocabulary.js'

/** an application's or dispute's id has the grammar of an xid (protocol/vocabulary.ts) */
const ID_RE = XID_RE

const when = (ms: unknown): string => (typeof ms === 'number' ? new Date(ms).toISOString().slice(0, 16).replace('T', ' ') + 'Z' : '-')

interface Item {
  id: string
  role: string
  consumer: string
  provider: string
  state: string
  due?: number
  reviewDue?: number
  overdue: boolean
  services?: string[]
  xid?: string
  reason?: string
  agreement?: string
}

async function withClient(io: CliIo, flags: { node?: string | undefined; token?: string | undefined }, fn: (c: LocalClient) => Promise<number>): Promise<number> {
  const c = clientFromFlags(flags, io.env)
  try {
    return await fn(c)
  } finally {
    await c.close()
  }
}

/** Prints `doc` as JSON or as the lines `human` makes. */
function print(io: CliIo, command: string, doc: Record<string, unknown>, human: () => string[]): void {
  if (io.json) io.out(okDoc(command, doc))
  else for (const l of human()) io.out(l)
}

const decisionLine = (r: Record<string, unknown>): string =>
  `${String(r.id ?? r.agreement)}: ${String(r.state)} (logged at ${String(r.index)}; ${r.delivered === true ? 'sent to the consumer' : `not delivered (${String(r.code ?? 'unreachable')}): the consumer gets it when it asks`})`

function ids(positionals: readonly string[], n: number, what: string): string[] {
  if (positionals.length !== n) throw new UsageError(`expected ${what}`)
  return [...positionals]
}

// --- verinode apply ----------------------------------------------------------------------------

const APPLY_USAGE = 'verinode apply <provider> --service S [--service ...] --purpose P [--purpose ...] --basis B --quota N --until ISO-DATE [--from ISO-DATE] [--mode plain|oprf|he ...] --contact TEXT [--node URL] [--token T] [--json]'
const APPLY_OPTIONS = {
  ...LOCAL_API_OPTIONS,
  service: { type: 'string', multiple: true },
  purpose: { type: 'string', multiple: true },
  basis: { type: 'string' },
  quota: { type: 'string' },
  from: { type: 'string' },
  until: { type: 'string' },
  mode: { type: 'string', multiple: true },
  contact: { type: 'string' },
} as const

export const applyCommand: Command = {
  name: 'apply',
  summary: 'file a signed sharing application (共享申请) with a provider',
  usage: APPLY_USAGE,
  async run(argv, io0) {
    const cl = commandLine(argv, APPLY_OPTIONS, io0, 'apply', APPLY_USAGE)
    if (typeof cl === 'number') return cl
    const { values: v, positionals } = cl
    const io = v.json === true ? { ...io0, json: true } : io0
    try {
      const [provider] = ids(positionals, 1, '<provider>')
      if (v.service === undefined || v.purpose === undefined || v.basis === undefined || v.until === undefined || v.contact === undefined || v.quota === undefined) {
        throw new UsageError('--service, --purpose, --basis, --quota, --until and --contact are required')
      }
      const body = {
        provider, services: v.service, purposes: v.purpose, basis: v.basis, dailyQuota: intOption(v.quota, 'quota', 1, Number.MAX_SAFE_INTEGER),
        ...(v.mode === undefined ? {} : { modes: v.mode }), ...(v.from === undefined ? {} : { validFrom: v.from }), validUntil: v.until, contact: v.contact,
      }
      return await withClient(io, v, async (c) => {
        const r = await c.json('POST', '/local/v1/applications', body) as Record<string, unknown>
        print(io, 'apply', r, () => [
          `application ${String(r.id)} filed with ${String(provider)} (logged here at ${String(r.index)}, there at ${String(r.providerIndex)})`,
          `first review due ${when(r.reviewDue)}, answer due ${when(r.due)}`,
        ])
        return EXIT_OK
      })
    } catch (e) {
      return reportError(e, io, 'apply', APPLY_USAGE)
    }
  },
}

// --- verinode applications ---------------------------------------------------------------------

const APPS_USAGE = [
  'verinode applications [list] [--overdue]',
  '       verinode applications show <id>',
  '       verinode applications review <id>',
  '       verinode applications approve <id> [--agreement-id ID]',
  '       verinode applications amend <id> --reason R [--agreement-id ID] [--quota N] [--until ISO-DATE] [--from ISO-DATE] [--service S ...] [--purpose P ...] [--mode M ...]',
  '       verinode applications refuse <id> --reason R',
  '       (each with [--node URL] [--token T] [--json])',
].join('\n')
const APPS_OPTIONS = {
  ...LOCAL_API_OPTIONS,
  overdue: { type: 'boolean' },
  reason: { type: 'string' },
  'agreement-id': { type: 'string' },
  quota: { type: 'string' },
  from: { type: 'string' },
  until: { type: 'string' },
  service: { type: 'string', multiple: true },
  purpose: { type: 'string', multiple: true },
  mode: { type: 'string', multiple: true },
} as const

function applicationRows(items: readonly Item[]): string[] {
  if (items.length === 0) return ['no applications']
  return renderTable(['ID', 'ROLE', 'PEER', 'SERVICES', 'STATE', 'REVIEW DUE', 'ANSWER DUE', 'OVERDUE'], items.map((a) => [
    [a.id], [a.role], [a.role === 'provider' ? a.consumer : a.provider], (a.services ?? []), [a.state + (a.agreement === undefined ? '' : ` (${a.agreement})`)],
    [when(a.reviewDue)], [when(a.due)], [a.overdue ? 'OVERDUE' : ''],
  ]))
}

export const applicationsCommand: Command = {
  name: 'applications',
  summary: 'the queue of sharing applications: list, show, review, approve, amend, refuse',
  usage: APPS_USAGE,
  async run(argv, io0) {
    const cl = commandLine(argv, APPS_OPTIONS, io0, 'applications', APPS_USAGE)
    if (typeof cl === 'number') return cl
    const { values: v, positionals } = cl
    const io = v.json === true ? { ...io0, json: true } : io0
    try {
      const [action = 'list', ...rest] = positionals
      return await withClient(io, v, async (c) => {
        if (action === 'list') {
          ids(rest, 0, 'no argument after list')
          const all = ((await c.json('GET', '/local/v1/applications')) as { applications: Item[] }).applications
          const items = v.overdue === true ? all.filter((a) => a.overdue) : all
          print(io, 'applications', { applications: items }, () => applicationRows(items))
          return v.overdue === true && items.length > 0 ? EXIT_FINDINGS : EXIT_OK
        }
        const [id] = ids(rest, 1, `<id> after ${action}`)
        if (!ID_RE.test(id as string)) throw new UsageError('<id>: an application id (16-64 base64url characters)')
        if (action === 'show') {
          const r = await c.json('GET', `/local/v1/applications/${id}`) as Record<string, unknown>
          print(io, 'applications', r, () => showLines(r))
          return EXIT_OK
        }
        if (!['review', 'approve', 'amend', 'refuse'].includes(action)) throw new UsageError(`unknown action ${action.slice(0, 20)}`)
        const terms = {
          ...(v.quota === undefined ? {} : { dailyQuota: intOption(v.quota, 'quota', 1, Number.MAX_SAFE_INTEGER) }),
          ...(v.until === undefined ? {} : { validUntil: v.until }), ...(v.from === undefined ? {} : { validFrom: v.from }),
          ...(v.service === undefined ? {} : { services: v.service }), ...(v.purpose === undefined ? {} : { purposes: v.purpose }), ...(v.mode === undefined ? {} : { modes: v.mode }),
        }
        const body = action === 'review' ? {} : {
          ...(v.reason === undefined ? {} : { reason: v.reason }), ...(v['agreement-id'] === undefined ? {} : { agreementId: v['agreement-id'] }),
          ...(action === 'amend' ? { terms } : {}),
        }
        const r = await c.json('POST', `/local/v1/applications/${id}/${action}`, body) as Record<string, unknown>
        print(io, 'applications', r, () => [decisionLine(r), ...(r.agreement === undefined ? [] : [`agreement ${String((r.agreement as { id: string }).id)} in force now (policy ${String(r.policy)})`])])
        return EXIT_OK
      })
    } catch (e) {
      return reportError(e, io, 'applications', APPS_USAGE)
    }
  },
}

function showLines(r: Record<string, unknown>): string[] {
  const out = [`${String(r.kind)} ${String(r.id)}: ${String(r.state)} (${String(r.role)}; ${String(r.consumer)} → ${String(r.provider)})`]
  if (r.reviewDue !== undefined) out.push(`first review due ${when(r.reviewDue)}`)
  if (r.due !== undefined) out.push(`answer due ${when(r.due)}`)
  if (typeof r.contact === 'string') out.push(`contact: ${r.contact}`)
  if (typeof r.note === 'string') out.push(`note: ${r.note}`)
  for (const m of (r.messages as { index: number; payload: Record<string, unknown> }[] | undefined) ?? []) {
    const p = m.payload
    const what = [p.decision, p.action, p.outcome].filter((x) => x !== undefined).join(' ')
    out.push(`  [${m.index}] ${String(p.t)} signed by ${String(p.iss)} at ${when(p.iat)}${what === '' ? '' : `: ${what}`}${typeof p.reason === 'string' && p.t !== 'dispute' ? ` (${p.reason})` : ''}`)
  }
  const polled = r.polled as { delivered: boolean; code?: string } | undefined
  if (polled !== undefined && !polled.delivered) out.push(`(the provider could not be asked for news: ${polled.code ?? 'unreachable'})`)
  return out
}

// --- verinode agreements -----------------------------------------------------------------------

const AGR_USAGE = 'verinode agreements [list] | verinode agreements suspend|resume|revoke <agreement-id> --reason R   [--node URL] [--token T] [--json]'
const AGR_OPTIONS = { ...LOCAL_API_OPTIONS, reason: { type: 'string' } } as const

export const agreementsCommand: Command = {
  name: 'agreements',
  summary: 'the agreements in force on this node; suspend, resume or revoke one',
  usage: AGR_USAGE,
  async run(argv, io0) {
    const cl = commandLine(argv, AGR_OPTIONS, io0, 'agreements', AGR_USAGE)
    if (typeof cl === 'number') return cl
    const { values: v, positionals } = cl
    const io = v.json === true ? { ...io0, json: true } : io0
    try {
      const [action = 'list', ...rest] = positionals
      return await withClient(io, v, async (c) => {
        if (action === 'list') {
          ids(rest, 0, 'no argument after list')
          const r = await c.json('GET', '/local/v1/agreements') as { policy: string; agreements: { id: string; consumer: string; services: string[]; dailyQuota: number; validUntil: string; modes: string[] }[] }
          print(io, 'agreements', r, () => [`policy ${r.policy}`, ...renderTable(['AGREEMENT', 'CONSUMER', 'SERVICES', 'MODES', 'QUOTA/DAY', 'UNTIL'],
            r.agreements.map((a) => [[a.id], [a.consumer], a.services, [a.modes.join(', ')], [String(a.dailyQuota)], [a.validUntil]]))])
          return EXIT_OK
        }
        if (!['suspend', 'resume', 'revoke'].includes(action)) throw new UsageError(`unknown action ${action.slice(0, 20)}`)
        const [id] = ids(rest, 1, `<agreement-id> after ${action}`)
        if (v.reason === undefined) throw new UsageError('--reason is required')
        const r = await c.json('POST', `/local/v1/agreements/${encodeURIComponent(id as string)}/${action}`, { reason: v.reason }) as Record<string, unknown>
        print(io, 'agreements', r, () => [decisionLine(r), `policy now ${String(r.policy)}`])
        return EXIT_OK
      })
    } catch (e) {
      return reportError(e, io, 'agreements', AGR_USAGE)
    }
  },
}

// --- verinode dispute --------------------------------------------------------------------------

const DISPUTE_USAGE = [
  'verinode dispute <provider> <xid> <provider-log-index> --reason wrong-answer|outdated|wrong-subject|incomplete|other --note TEXT',
  '       verinode dispute status [<id>] [--overdue]',
  '       verinode dispute correct|reject <id> --reason R',
  '       (each with [--node URL] [--token T] [--json])',
].join('\n')
const DISPUTE_OPTIONS = { ...LOCAL_API_OPTIONS, reason: { type: 'string' }, note: { type: 'string' }, overdue: { type: 'boolean' } } as const

export const disputeCommand: Command = {
  name: 'dispute',
  summary: 'file a signed dispute (数据异议) about one exchange; its status; correct or reject one',
  usage: DISPUTE_USAGE,
  async run(argv, io0) {
    const cl = commandLine(argv, DISPUTE_OPTIONS, io0, 'dispute', DISPUTE_USAGE)
    if (typeof cl === 'number') return cl
    const { values: v, positionals } = cl
    const io = v.json === true ? { ...io0, json: true } : io0
    try {
      const [first, ...rest] = positionals
      if (first === undefined) throw new UsageError('expected <provider> <xid> <index>, status, correct or reject')
      return await withClient(io, v, async (c) => {
        if (first === 'status') {
          if (rest.length === 0) {
            const all = ((await c.json('GET', '/local/v1/disputes')) as { disputes: Item[] }).disputes
            const items = v.overdue === true ? all.filter((x) => x.overdue) : all
            print(io, 'dispute', { disputes: items }, () => (items.length === 0 ? ['no disputes'] : renderTable(['ID', 'ROLE', 'PEER', 'EXCHANGE', 'REASON', 'STATE', 'DUE', 'OVERDUE'],
              items.map((x) => [[x.id], [x.role], [x.role === 'provider' ? x.consumer : x.provider], [x.xid ?? ''], [x.reason ?? ''], [x.state], [when(x.due)], [x.overdue ? 'OVERDUE' : '']]))))
            return v.overdue === true && items.length > 0 ? EXIT_FINDINGS : EXIT_OK
          }
          const [id] = ids(rest, 1, '<id> after status')
          if (!ID_RE.test(id as string)) throw new UsageError('<id>: a dispute id (16-64 base64url characters)')
          const r = await c.json('GET', `/local/v1/disputes/${id}`) as Record<string, unknown>
          print(io, 'dispute', r, () => showLines(r))
          return EXIT_OK
        }
        if (first === 'correct' || first === 'reject') {
          const [id] = ids(rest, 1, `<id> after ${first}`)
          if (!ID_RE.test(id as string)) throw new UsageError('<id>: a dispute id (16-64 base64url characters)')
          if (v.reason === undefined) throw new UsageError('--reason is required')
          const r = await c.json('POST', `/local/v1/disputes/${id}/${first}`, { reason: v.reason }) as Record<string, unknown>
          print(io, 'dispute', r, () => [decisionLine(r), ...(r.correctionIndex === undefined ? [] : [`correction logged at ${String(r.correctionIndex)}`])])
          return EXIT_OK
        }
        const [xid, index] = ids(rest, 2, '<provider> <xid> <provider-log-index>')
        if (v.reason === undefined || v.note === undefined) throw new UsageError('--reason and --note are required')
        const body = { provider: first, xid, index: intOption(index, 'index', 0, Number.MAX_SAFE_INTEGER), reason: v.reason, note: v.note }
        const r = await c.json('POST', '/local/v1/disputes', body) as Record<string, unknown>
        print(io, 'dispute', r, () => [`dispute ${String(r.id)} filed with ${first} (logged here at ${String(r.index)}, there at ${String(r.providerIndex)}); answer due ${when(r.due)}`])
        return EXIT_OK
      })
    } catch (e) {
      return reportError(e, io, 'dispute', DISPUTE_USAGE)
    }
  },
}
