/**
 * docs/AUDIT.md lists exactly the finding codes of src/audit/findings.ts with their severity and
 * meaning, like docs/ERRORS.md for the VN_ERR_* codes: scripts match on the codes, so the
 * catalogue users read must stay true.
 */
import t from 'tap'
import { readFile } from 'node:fs/promises'
import { FINDINGS } from '../../src/audit/findings.js'

t.test('docs/AUDIT.md lists every finding code with its severity and title', async (t) => {
  const doc = await readFile(new URL('../../docs/AUDIT.md', import.meta.url), 'utf8')
  const rows = new Map<string, { severity: string; title: string }>()
  for (const m of doc.matchAll(/^\| `(AUDIT_[A-Z_]+)` \| (\w+) \| [^|]+ \| (.+) \|$/gm)) rows.set(m[1]!, { severity: m[2]!, title: m[3]! })
  t.same([...rows.keys()].sort(), Object.keys(FINDINGS).sort(), 'same codes')
  for (const [code, f] of Object.entries(FINDINGS)) t.same(rows.get(code), { severity: f.severity, title: f.title }, code)
})
