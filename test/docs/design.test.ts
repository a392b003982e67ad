/**
 * docs/DESIGN.md is the project's own design document: every `DESIGN.md "<section>"` the code and the
 * docs cite is a heading there, and nothing cites a DESIGN.md outside the repository.
 */
import t from 'tap'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'

const ROOT = join(import.meta.dirname, '..', '..')

async function files(dir: string, ext: RegExp): Promise<string[]> {
  const out: string[] = []
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) out.push(...await files(p, ext))
    else if (ext.test(e.name)) out.push(p)
  }
  return out
}

t.test('every DESIGN.md section cited exists', async (t) => {
  const design = await readFile(join(ROOT, 'docs', 'DESIGN.md'), 'utf8')
  const headings = new Set([...design.matchAll(/^#{2,3} (.+)$/gm)].map((m) => m[1]!.trim()))
  const sources = [...await files(join(ROOT, 'src'), /\.ts$/), ...await files(join(ROOT, 'docs'), /\.md$/), join(ROOT, 'README.md')]
  let cited = 0
  for (const file of sources) {
    // comments wrap: join the lines and drop the comment markers
    const text = (await readFile(file, 'utf8')).replace(/\n\s*(\*|\/\/)?\s*/g, ' ')
    for (const m of text.matchAll(/(\S*)DESIGN\.md\]?\s*"([^"]+)"/g)) {
      const prefix = m[1]!
      // in src/ the path is spelled out; in docs/ a bare DESIGN.md is the file beside
      const inSrc = file.includes(`${join(ROOT, 'src')}/`)
      t.ok(inSrc ? prefix.endsWith('docs/') : prefix === '' || /(docs\/|[([]"?)$/.test(prefix), `${file}: ${m[0]} is the repository's docs/DESIGN.md`)
      const section = m[2]!
      // "Question kinds" names the section "Question kinds and modes"
      t.ok([...headings].some((h) => h === section || h.startsWith(section)), `${file}: section "${section}" exists`)
      cited++
    }
  }
  t.ok(cited >= 20, `${cited} citations checked`)
})
