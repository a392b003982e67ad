/**
 * No ID number, name or amount appears in clear anywhere a node writes: its log database (leaves,
 * checkpoints, evidence, WAL), its pino log lines, its metrics. Disclosures are stored, but sealed.
 */
import t from 'tap'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { request } from 'undici'
import { federationFixture } from '../helper.js'
import { REDACT } from '../../src/http/app.js'

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = []
  const entries = await readdir(dir, { withFileTypes: true }).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return [] // a folder removed while listing (see below)
    throw e
  })
  for (const e of entries) {
    const p = join(dir, e.name)
    if (e.isDirectory()) out.push(...await filesUnder(p))
    else out.push(p)
  }
  return out
}

t.test('personal data never reaches the log store, evidence, log lines or metrics', async (t) => {
  const lines: string[] = []
  const sink = new Writable({ write(chunk, _enc, cb) { lines.push(String(chunk)); cb() } })
  const logger = pino({ level: 'trace', redact: REDACT }, sink)
  const f = await federationFixture(t, { start: ['fj-psb', 'fj-tax', 'fj-credit'], logger })
  const s = f.fed.dataset.samples
  const people = [...s.identity.matches.slice(0, 3), ...s.identity.nameMismatches.slice(0, 2)]
  const secrets = new Set<string>()
  for (const p of people) { secrets.add(p.id); secrets.add(p.name) }
  const tax = s.tax.paidInFull[0]!
  secrets.add(tax.uscc)
  const bound = 987654321
  secrets.add(String(bound))

  const r1 = await f.verify('fj-tax', { provider: 'fj-psb', service: 'identity.match', purpose: 'taxpayer-registration', basis: 'Tax Collection Administration Law art. 15', subjects: people.map((p) => ({ id: p.id, name: p.name })) })
  t.equal(r1.status, 200)
  const r2 = await f.verify('fj-credit', { provider: 'fj-tax', service: 'tax.compliance', purpose: 'credit-evaluation', basis: 'Social Credit Regulations art. 12', subjects: [{ uscc: tax.uscc, year: tax.year, bound }] })
  t.equal(r2.status, 200)
  const r3 = await f.verify('fj-credit', { provider: 'fj-psb', service: 'identity.match', purpose: 'not-agreed', basis: 'x', subjects: [{ id: people[0]!.id, name: people[0]!.name }] })
  t.equal(r3.status, 403, 'a denial is logged too')
  const bad = await f.verify('fj-tax', { provider: 'fj-psb', service: 'identity.match', purpose: 'taxpayer-registration', basis: 'b', subjects: [{ id: `${people[0]!.id.slice(0, 17)}0`, name: people[0]!.name }] })
  t.equal(bad.status, 400)
  t.notMatch(JSON.stringify(bad.json), people[0]!.id.slice(0, 17), 'error does not echo the ID')

  let metrics = ''
  for (const n of Object.values(f.nodes)) {
    await n.node.checkpoint()
    const res = await request(n.metricsUrl)
    metrics += await res.body.text()
  }
  t.match(metrics, /verinode_exchanges_total/, 'metrics are there')

  const stored: Array<[string, Buffer]> = []
  for (const id of Object.keys(f.nodes)) {
    for (const file of await filesUnder(join(f.fed.dir, id, 'var'))) {
      // A file may go between the listing and the read (a tag-set build's run files, removed once
      // merged, while the nodes run): gone, it holds nothing. Any other error fails the test.
      const buf = await readFile(file).catch((e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT') return undefined
        throw e
      })
      if (buf !== undefined) stored.push([file, buf])
    }
  }
  t.ok(stored.some(([p]) => p.endsWith('log.db')), 'scanned the log databases')
  t.ok(lines.length > 0, 'scanned log lines')
  const logText = lines.join('')
  for (const secret of secrets) {
    const bytes = Buffer.from(secret, 'utf8')
    for (const [file, buf] of stored) t.notOk(buf.includes(bytes), `${file.slice(f.fed.dir.length)} holds no subject data`)
    t.notOk(logText.includes(secret), 'log lines hold no subject data')
    t.notOk(metrics.includes(secret), 'metrics hold no subject data')
  }
})
