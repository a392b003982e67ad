/** The CLI asks hidden-threshold questions: `verify --mode he --bound` and `verify-batch --mode he` with a bound column. */
import t from 'tap'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { federationFixture } from '../helper.js'
import { verifyCommand } from '../../src/cli/commands/verify.js'
import { verifyBatchCommand } from '../../src/cli/commands/verify-batch.js'
import { gridValues } from '../../src/he/grid.js'
import type { CliIo } from '../../src/cli/types.js'

const io = (env: Record<string, string>, json = false) => {
  const stdout: string[] = []
  const stderr: string[] = []
  const c: CliIo & { stdout: string[]; stderr: string[] } = { stdout, stderr, out: (l) => stdout.push(l), err: (l) => stderr.push(l), json, tty: false, cwd: process.cwd(), env }
  return c
}

t.test('he mode from the command line', async (t) => {
  const f = await federationFixture(t, { start: ['fj-tax', 'fj-credit'] })
  const env = { VERINODE_NODE: f.nodes['fj-credit']!.localUrl, VERINODE_TOKEN: f.fed.nodes['fj-credit']!.appToken }
  const paid = f.fed.dataset.samples.tax.paidInFull.find((x) => x.paidFen > 1_000_00)!
  const grid = gridValues()
  const below = [...grid].reverse().find((g) => g > 0 && g <= paid.paidFen)!
  const above = grid.find((g) => g > paid.paidFen)!
  const base = ['fj-tax', 'tax.compliance', '--mode', 'he', '--purpose', 'credit-evaluation', '--basis', 'Social Credit Regulations art. 12', '--subject', `uscc=${paid.uscc},year=${paid.year}`]

  const a = io(env, true)
  t.equal(await verifyCommand.run([...base, '--bound', String(below)], a), 0, a.stderr.join('\n'))
  t.equal(JSON.parse(a.stdout.join('')).results[0].atLeast, true, 'paid ≥ a bound below the amount')
  const b = io(env, true)
  t.equal(await verifyCommand.run([...base, '--bound', String(above)], b), 0)
  t.equal(JSON.parse(b.stdout.join('')).results[0].atLeast, false, 'paid < a bound above the amount')
  const c = io(env)
  t.equal(await verifyCommand.run([...base, '--bound', '12345'], c), 1, 'a bound off the grid is refused')
  t.match(c.stderr.join('\n') + c.stdout.join('\n'), /VN_ERR_HE_BOUND/)

  // verify-batch: per-row bounds from the CSV
  // Not t.testdir(): a second call for this test would empty the folder the running nodes' data
  // files are in (the nodes now notice a deleted data file and stop answering from it).
  const dir = join(f.fed.dir, 'cli-files')
  await mkdir(dir)
  const rows = f.fed.dataset.samples.tax.paidInFull.slice(0, 3).map((x) => `${x.uscc},${x.year},${below}`)
  await writeFile(join(dir, 'in.csv'), `uscc,year,bound\n${rows.join('\n')}\n`)
  const d = io(env)
  const code = await verifyBatchCommand.run(['fj-tax', 'tax.compliance', '--mode', 'he', '--purpose', 'credit-evaluation', '--basis', 'Social Credit Regulations art. 12', '--in', join(dir, 'in.csv'), '--out', join(dir, 'out.csv')], d)
  t.equal(code, 0, d.stderr.join('\n'))
  const out = await readFile(join(dir, 'out.csv'), 'utf8')
  t.equal(out.trim().split('\n').length, 4, 'header and three rows')
  t.match(out.split('\n')[0], /atLeast/)
  t.notMatch(out, String(below), 'the confidential bound is not copied into the output')
})
