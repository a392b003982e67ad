/**
 * Regenerates the code tables of docs/ERRORS.md from src/errors.ts (`npm run docs:errors`).
 * test/errors.test.ts fails when the two disagree, so the catalogue users read stays true.
 */
import { readFile, writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { ERRORS } from '../src/errors.js'

const AREAS: Record<string, string> = {
  REQ: 'Request and wire format', JWS: 'Signatures (JWS)', EXCH: 'Exchange envelope', SUBJECT: 'Subjects',
  POLICY: 'Policy (signed and logged denials)', FED: 'Federation', LOG: 'Log', EVIDENCE: 'Evidence', PEER: 'Peers (consumer side)', TLS: 'TLS between nodes',
  LOCAL: 'Local API', CONFIG: 'Configuration', KEY: 'Key files', SOURCE: 'Data sources', OPRF: 'OPRF mode', HE: 'HE mode',
  CLI: 'Command line', AUDIT: 'Auditor', INTERNAL: 'Internal',
}
export const BEGIN = '<!-- BEGIN GENERATED: npm run docs:errors -->'
export const END = '<!-- END GENERATED -->'

export function errorTables(): string {
  const byArea = new Map<string, [string, { status: number; title: string }][]>()
  for (const [code, spec] of Object.entries(ERRORS)) {
    const area = code.split('_')[2] ?? 'OTHER'
    byArea.set(area, [...(byArea.get(area) ?? []), [code, spec]])
  }
  let out = ''
  for (const [area, list] of byArea) {
    out += `\n### ${AREAS[area] ?? area}\n\n| code | HTTP | meaning |\n|---|---|---|\n`
    for (const [code, spec] of list) out += `| \`${code}\` | ${spec.status} | ${spec.title} |\n`
  }
  return out
}

export const docPath = fileURLToPath(new URL('../docs/ERRORS.md', import.meta.url))

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const doc = await readFile(docPath, 'utf8')
  const a = doc.indexOf(BEGIN)
  const b = doc.indexOf(END)
  if (a < 0 || b < a) throw new Error('docs/ERRORS.md lacks the generated-section markers')
  await writeFile(docPath, `${doc.slice(0, a + BEGIN.length)}\n${errorTables()}\n${doc.slice(b)}`)
  console.log('docs/ERRORS.md updated')
}
