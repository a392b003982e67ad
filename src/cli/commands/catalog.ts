/**
 * `verinode catalog <peer>`: a provider's services as its signed catalog (docs/DESIGN.md "Endpoints",
 * `GET /v1/catalog`) describes them, fetched and verified by this department's own node through the
 * local API. Without a peer it lists the federation catalogue (docs/GOVERNANCE.md): every
 * department's verified catalog with each item's authoritative source and negative-list rule,
 * filtered by `--item`, `--provider` and `--sharing`; `--peers` lists the departments.
 */
import { UsageError, asUsageError, attachDashValues } from '../args.js'
import { parseArgs } from 'node:util'
import type { Catalog, CatalogService } from '../../exchange/catalog.js'
import { LOCAL_API_OPTIONS, clientFromFlags, reportError, type FederationCatalogueDoc, type PeerInfo } from '../local-client.js'
import { EXIT_FINDINGS, EXIT_OK, type CliIo, type Command } from '../types.js'
import { SHARING_TYPES } from '../../protocol/governance.js'
import { errorDoc, okDoc, usageText } from '../output.js'

const USAGE = `verinode catalog <peer> [--node URL] [--token T] [--json]
verinode catalog [--item I] [--provider M] [--sharing unconditional|conditional|not-shared] [--json]
                 (no peer: the federation catalogue, every department's verified catalog)
verinode catalog --peers [--json]   (the departments)`

const OPTIONS = {
  ...LOCAL_API_OPTIONS,
  item: { type: 'string' },
  provider: { type: 'string' },
  sharing: { type: 'string' },
  peers: { type: 'boolean' },
} as const

// --- a small text table whose cells may span lines -----------------------------------------------

/** East Asian Wide and Fullwidth characters (UAX #11) take two terminal columns. */
const WIDE = /[\u1100-\u115f\u2e80-\u303e\u3041-\u33ff\u3400-\u4dbf\u4e00-\u9fff\ua000-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6\u{20000}-\u{3fffd}]/u
const ZERO_WIDTH = /[\p{Mn}\p{Me}\p{Cf}]/u
/** Emoji shown as emoji by default (UTS #51) are wide too (string-width agrees; docs/CLI.md). */
const EMOJI = /\p{Emoji_Presentation}/u

export function displayWidth(s: string): number {
  let w = 0
  for (const ch of s) w += ZERO_WIDTH.test(ch) ? 0 : WIDE.test(ch) || EMOJI.test(ch) ? 2 : 1
  return w
}

const padEnd = (s: string, width: number): string => s + ' '.repeat(Math.max(0, width - displayWidth(s)))

/** Greedy word wrap at `width` columns (a longer word stays whole). */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = []
  let line = ''
  for (const word of text.split(/\s+/).filter((w) => w.length > 0)) {
    if (line === '') line = word
    else if (displayWidth(line) + 1 + displayWidth(word) <= width) line += ` ${word}`
    else {
      lines.push(line)
      line = word
    }
  }
  if (line !== '' || lines.length === 0) lines.push(line)
  return lines
}

/** Renders rows of cells (each cell a list of lines) under a header, columns two spaces apart. */
export function renderTable(header: readonly string[], rows: readonly (readonly (readonly string[])[])[]): string[] {
  const widths = header.map((h, c) => Math.max(displayWidth(h), ...rows.map((r) => Math.max(0, ...(r[c] ?? []).map(displayWidth)))))
  const line = (cells: readonly string[]): string => cells.map((x, c) => (c === cells.length - 1 ? x : padEnd(x, widths[c] ?? 0))).join('  ').trimEnd()
  const out = [line(header), line(widths.map((w) => '-'.repeat(w)))]
  for (const r of rows) {
    const height = Math.max(1, ...r.map((cell) => cell.length))
    for (let i = 0; i < height; i++) out.push(line(header.map((_h, c) => r[c]?.[i] ?? '')))
  }
  return out
}

// --- the command ---------------------------------------------------------------------------------

function serviceRow(s: CatalogService): string[][] {
  const kind: string[] = [s.kind]
  if (s.statuses !== undefined) kind.push(...wrap(`(${s.statuses.join(', ')})`, 28))
  if (s.tiers !== undefined) kind.push(...wrap(`(${s.tiers.map((t) => `${t.id} ≥ ${t.min}`).join(', ')})`, 28))
  const fields = Object.entries(s.fields).map(([name, f]) => `${name}: ${f.kind}${f.key ? ', key' : ''}${f.required ? '' : ', optional'}`)
  return [
    [s.id],
    [s.title.en, ...(s.title.zh === undefined ? [] : [s.title.zh])],
    kind,
    fields,
    [s.modes.join(', ')],
    [s.sharing],
    [s.updateCycle],
    wrap(s.authority, 40),
  ]
}

function formatCatalog(peer: string, c: Catalog): string[] {
  const n = c.services.length
  const head = `${peer}: ${n} service${n === 1 ? '' : 's'} (catalog signed ${new Date(c.iat).toISOString()}, at most ${c.limits.batchMax} subjects per request)`
  if (n === 0) return [head]
  return [head, '', ...renderTable(['SERVICE', 'TITLE', 'KIND', 'FIELDS', 'MODES', 'SHARING', 'UPDATES', 'AUTHORITY'], c.services.map(serviceRow))]
}

function formatPeers(peers: readonly PeerInfo[]): string[] {
  if (peers.length === 0) return ['no other departments in the federation']
  return renderTable(['PEER', 'NAME', 'ENDPOINT'], peers.map((p) => [[p.id], [p.name], [p.endpoint ?? '']]))
}

/** One service of the federation catalogue, with the manifest's word on its item. */
export interface CatalogueRow {
  provider: string
  providerName: string
  service: CatalogService
  item: string
  /** the item's authoritative source named by the manifest, or null */
  source: string | null
  /** the item's negative-list rule, or null */
  negative: { rule: string; conditions?: string | undefined } | null
}

export interface CatalogueFilter { item?: string | undefined; provider?: string | undefined; sharing?: string | undefined }

/** The catalogue's rows (and the members whose catalog could not be had) under the filters. */
function catalogueRows(doc: FederationCatalogueDoc, f: CatalogueFilter): { rows: CatalogueRow[]; unavailable: { member: string; code: string }[] } {
  const sources = new Map(doc.governance.sources.map((x) => [x.item, x.member]))
  const negative = new Map(doc.governance.negativeList.map((n) => [n.item, n]))
  const rows: CatalogueRow[] = []
  const unavailable: { member: string; code: string }[] = []
  for (const m of doc.members) {
    if (f.provider !== undefined && m.member !== f.provider) continue
    if (!m.ok) {
      unavailable.push({ member: m.member, code: m.error.code })
      continue
    }
    for (const svc of m.catalog.services) {
      const item = svc.item ?? svc.id
      if (f.item !== undefined && item !== f.item) continue
      if (f.sharing !== undefined && svc.sharing !== f.sharing) continue
      const n = negative.get(item)
      rows.push({
        provider: m.member, providerName: m.name, service: svc, item, source: sources.get(item) ?? null,
        negative: n === undefined ? null : { rule: n.rule, ...(n.conditions === undefined ? {} : { conditions: n.conditions }) },
      })
    }
  }
  return { rows, unavailable }
}

function formatCatalogue(doc: FederationCatalogueDoc, rows: readonly CatalogueRow[], unavailable: readonly { member: string; code: string }[], f: CatalogueFilter): string[] {
  const providers = new Set(rows.map((r) => r.provider)).size
  const out = [`${doc.federation} (manifest seq ${doc.seq}): ${rows.length} service${rows.length === 1 ? '' : 's'} from ${providers} department${providers === 1 ? '' : 's'}`]
  if (rows.length > 0) {
    out.push('', ...renderTable(
      ['PROVIDER', 'SERVICE', 'ITEM', 'SOURCE', 'SHARING', 'GRADE', 'PERSONAL', 'MODES', 'UPDATES'],
      rows.map((r) => [
        [r.provider],
        [r.service.id, ...wrap(r.service.title.zh ?? r.service.title.en, 24)],
        [r.item],
        [r.source === null ? 'not named' : r.source === r.provider ? 'yes' : `no: ${r.source}`],
        [r.service.sharing, ...(r.negative === null ? [] : [`negative: ${r.negative.rule}`])],
        [r.service.classification ?? 'general'],
        [r.service.personalInfo ?? 'none'],
        [r.service.modes.join(', ')],
        [r.service.updateCycle],
      ]),
    ))
  }
  const neg = doc.governance.negativeList.filter((n) => f.item === undefined || n.item === f.item)
  if (neg.length > 0) out.push('', 'negative list (负面清单):', ...neg.map((n) => `  ${n.item}: ${n.rule}${n.conditions === undefined ? '' : ` (${n.conditions})`}`))
  for (const u of unavailable) out.push(`${u.member}: catalog unavailable (${u.code})`)
  return out
}

export const catalogCommand: Command = {
  name: 'catalog',
  summary: "show a peer's verified service catalog (or list the peers)",
  usage: USAGE,
  async run(argv: string[], io0: CliIo): Promise<number> {
    let io = io0
    try {
      let parsed
      try {
        parsed = parseArgs({ args: attachDashValues(argv, OPTIONS), options: OPTIONS, allowPositionals: true, strict: true })
      } catch (e) {
        throw asUsageError(e)
      }
      const { values, positionals } = parsed
      if (values.json === true) io = { ...io0, json: true }
      if (values.help === true) {
        io.out(usageText(USAGE))
        return EXIT_OK
      }
      if (positionals.length > 1) throw new UsageError('expected at most one peer')
      const peer = positionals[0]
      const filter: CatalogueFilter = { item: values.item, provider: values.provider, sharing: values.sharing }
      if (peer !== undefined && (values.peers === true || Object.values(filter).some((x) => x !== undefined))) {
        throw new UsageError('--peers, --item, --provider and --sharing are for the federation catalogue (no peer)')
      }
      if (filter.sharing !== undefined && !(SHARING_TYPES as readonly string[]).includes(filter.sharing)) {
        throw new UsageError(`--sharing: one of ${SHARING_TYPES.join(', ')}`)
      }
      const client = clientFromFlags(values, io.env)
      try {
        if (peer === undefined && values.peers === true) {
          const peers = await client.peers()
          if (io.json) io.out(okDoc('catalog', { peers }))
          else for (const l of formatPeers(peers)) io.out(l)
          return EXIT_OK
        }
        if (peer === undefined) {
          const doc = await client.federationCatalogue()
          const { rows, unavailable } = catalogueRows(doc, filter)
          const fields = { federation: doc.federation, seq: doc.seq, governance: doc.governance, services: rows, unavailable }
          if (io.json && unavailable.length > 0) {
            io.out(errorDoc('catalog', { code: 'VN_ERR_CLI_CHECKS_FAILED', message: `the catalog of ${unavailable.map((u) => u.member).join(', ')} could not be had`, status: 422 }, fields))
          } else if (io.json) io.out(okDoc('catalog', fields))
          else for (const l of formatCatalogue(doc, rows, unavailable, filter)) io.out(l)
          // every catalog asked for was had, or the command says it was not
          return unavailable.length === 0 ? EXIT_OK : EXIT_FINDINGS
        }
        const c = await client.catalog(peer)
        if (io.json) io.out(okDoc('catalog', c))
        else for (const l of formatCatalog(peer, c)) io.out(l)
        return EXIT_OK
      } finally {
        await client.close()
      }
    } catch (e) {
      return reportError(e, io, 'catalog', USAGE)
    }
  },
}
