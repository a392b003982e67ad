/**
 * `verinode catalog <peer>`: a provider's services as its signed catalog (docs/DESIGN.md "Endpoints",
 * `GET /v1/catalog`) describes them, fetched and verified by this department's own node through the
 * local API. Without a peer it lists the federation's departments.
 */
import { UsageError, asUsageError, attachDashValues } from '../args.js'
import { parseArgs } from 'node:util'
import type { Catalog, CatalogService } from '../../exchange/catalog.js'
import { LOCAL_API_OPTIONS, clientFromFlags, reportError, type PeerInfo } from '../local-client.js'
import { EXIT_OK, type CliIo, type Command } from '../types.js'
import { okDoc, usageText } from '../output.js'

const USAGE = 'verinode catalog [<peer>] [--node URL] [--token T] [--json]   (no peer: list the departments)'

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

export const catalogCommand: Command = {
  name: 'catalog',
  summary: "show a peer's verified service catalog (or list the peers)",
  usage: USAGE,
  async run(argv: string[], io0: CliIo): Promise<number> {
    let io = io0
    try {
      let parsed
      try {
        parsed = parseArgs({ args: attachDashValues(argv, LOCAL_API_OPTIONS), options: LOCAL_API_OPTIONS, allowPositionals: true, strict: true })
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
      const client = clientFromFlags(values, io.env)
      try {
        const peer = positionals[0]
        if (peer === undefined) {
          const peers = await client.peers()
          if (io.json) io.out(okDoc('catalog', { peers }))
          else for (const l of formatPeers(peers)) io.out(l)
          return EXIT_OK
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
