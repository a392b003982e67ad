import t from 'tap'
import { access, mkdir, readFile, writeFile } from 'node:fs/promises'
import { createReadStream, createWriteStream } from 'node:fs'
import { once } from 'node:events'
import { join } from 'node:path'
import { federationFixture } from '../helper.js'
import { verifyBatchCommand, runBatch } from '../../src/cli/commands/verify-batch.js'
import { parseCsvText } from '../../src/cli/csv.js'
import { LocalClient } from '../../src/cli/local-client.js'
import { Progress, formatDuration } from '../../src/cli/progress.js'
import { canonicalizeField } from '../../src/protocol/canonicalize.js'
import type { CliIo } from '../../src/cli/types.js'
import { VnError } from '../../src/errors.js'

interface Captured extends CliIo {
  stdout: string[]
  stderr: string[]
}

function capture(env: Record<string, string | undefined>, cwd: string, opts: { json?: boolean; tty?: boolean } = {}): Captured {
  const stdout: string[] = []
  const stderr: string[] = []
  return { stdout, stderr, out: (l) => stdout.push(l), err: (l) => stderr.push(l), json: opts.json ?? false, tty: opts.tty ?? false, cwd, env }
}

/** Output CSV as objects keyed by the header. */
function readResults(text: string): { header: string[]; rows: Record<string, string>[] } {
  const recs = parseCsvText(text)
  for (const r of recs) if (r.error !== undefined) throw new Error(`output line ${r.line}: ${r.error}`)
  const header = recs[0]?.fields ?? []
  return { header, rows: recs.slice(1).map((r) => Object.fromEntries(header.map((h, i) => [h, r.fields[i] ?? '']))) }
}

t.test('progress lines', async (t) => {
  t.equal(formatDuration(400), '0.4s')
  t.equal(formatDuration(65_000), '1m05s')
  t.equal(formatDuration(3_725_000), '1h02m')
  t.equal(formatDuration(Number.NaN), '?')

  const unknown: string[] = []
  let clock = 0
  const u = new Progress({ unit: 'rows', tty: false, write: (l) => unknown.push(l), now: () => clock })
  clock = 2000
  u.update(10, undefined, true)
  t.same(unknown, ['progress: 10/? rows (?%), 5 rows/s, ETA ?'], 'no estimate of the total yet')

  let now = 0
  const plain: string[] = []
  const p = new Progress({ unit: 'rows', tty: false, write: (l) => plain.push(l), now: () => now, intervalMs: 5000 })
  now = 1000
  p.update(1500, 2500, true)
  now = 3000
  p.update(2000, 2500, true)
  now = 6500
  p.update(2400, 2500, false)
  p.finish(2500, 2500)
  t.same(plain, ['progress: 1,500/~2,500 rows (60%), 1,500 rows/s, ETA 0.7s', 'progress: 2,400/2,500 rows (96%), 369 rows/s, ETA 0.3s'],
    'first update at once, then at most one line per interval; no bar, no control characters')

  now = 0
  const tty: string[] = []
  const b = new Progress({ unit: 'rows', tty: true, write: (l) => tty.push(l), now: () => now, barWidth: 10 })
  now = 2000
  b.update(500, 1000)
  now = 2050
  b.update(600, 1000)
  now = 2200
  b.update(700, 1000)
  b.finish(1000, 1000)
  t.equal(tty.length, 3, 'redraws are rate-limited, the final state always drawn')
  t.equal(tty[0], '[#####.....]  50% 500/1,000 rows  250 rows/s, ETA 2.0s')
  t.ok(tty[1]!.startsWith('\x1b[1A\x1b[2K[#######...]  70% 700/1,000'), 'cursor up and erase before each redraw')
  t.match(tty[2], /\[##########\] 100% 1,000\/1,000 rows .* ETA 0s$/)
})

t.test('verify-batch against real nodes', async (t) => {
  const f = await federationFixture(t, { start: ['fj-psb', 'fj-tax', 'fj-credit'] })
  // Not t.testdir(): a second call for this test would empty the folder the running nodes' data
  // files are in (the nodes now notice a deleted data file and stop answering from it).
  const dir = join(f.fed.dir, 'cli-files')
  await mkdir(dir)
  const env = { VERINODE_NODE: f.nodes['fj-tax']!.localUrl, VERINODE_TOKEN: f.fed.nodes['fj-tax']!.appToken }
  const s = f.fed.dataset.samples
  const id = s.identity
  const ARGS = ['fj-psb', 'identity.match', '--purpose', 'taxpayer-registration', '--basis', 'Tax Collection Administration Law art. 15']

  // 2,500 rows cycling through known answers, with a few malformed rows at fixed places.
  type Expect = { outcome: 'answered'; found: string; match: string; name: string } | { outcome: 'invalid'; code: string }
  const expected: Expect[] = []
  const lines: string[] = ['id,name']
  const bad = `${id.matches[0]!.id.slice(0, 17)}${id.matches[0]!.id.endsWith('0') ? '1' : '0'}`
  const malformed: Record<number, [string, string]> = {
    7: [`${bad},${id.matches[0]!.name}`, 'VN_ERR_SUBJECT_ID_CHECKSUM'],
    777: [`${id.matches[1]!.id},`, 'VN_ERR_SUBJECT_INVALID'],
    1500: [`${id.matches[2]!.id},${id.matches[2]!.name},extra`, 'VN_ERR_CLI_CSV_MALFORMED'],
    2222: [`${id.matches[3]!.id},"${id.matches[3]!.name}"x`, 'VN_ERR_CLI_CSV_MALFORMED'],
    2499: [`${id.matches[4]!.id},${id.matches[4]!.name}3`, 'VN_ERR_SUBJECT_INVALID'],
  }
  for (let row = 1; row <= 2500; row++) {
    const m = malformed[row]
    if (m !== undefined) {
      lines.push(m[0])
      expected.push({ outcome: 'invalid', code: m[1] })
      continue
    }
    const k = row % 5
    switch (row % 4) {
      case 0: lines.push(`${id.matches[k]!.id},"${id.matches[k]!.name}"`); expected.push({ outcome: 'answered', found: 'true', match: 'true', name: 'true' }); break
      case 1: lines.push(`"${id.variantMatches[k]!.id}",${id.variantMatches[k]!.name}`); expected.push({ outcome: 'answered', found: 'true', match: 'true', name: 'true' }); break
      case 2: lines.push(`${id.nameMismatches[k]!.id},${id.nameMismatches[k]!.name}`); expected.push({ outcome: 'answered', found: 'true', match: 'false', name: 'false' }); break
      default: lines.push(`${id.unknownIds[k]},${id.matches[k]!.name}`); expected.push({ outcome: 'answered', found: 'false', match: 'false', name: 'false' })
    }
  }
  const input = join(dir, 'subjects.csv')
  // Excel-style: BOM and CRLF; a blank line at the end.
  await writeFile(input, `\uFEFF${lines.join('\r\n')}\r\n\r\n`)
  // Everything personal that went in, raw and canonical.
  const personal = new Set<string>()
  for (const x of [...id.matches, ...id.variantMatches, ...id.nameMismatches]) {
    personal.add(x.id).add(x.name).add(canonicalizeField('residentId', x.id, 'id')).add(canonicalizeField('name', x.name, 'name'))
  }
  for (const u of id.unknownIds) personal.add(u)
  personal.add(bad)

  t.test('2,500 rows in chunks of 500: every row answered in order, malformed rows on their own', async (t) => {
    const out = join(dir, 'results.csv')
    const io = capture(env, dir)
    const started = Date.now()
    const code = await verifyBatchCommand.run([...ARGS, '--in', 'subjects.csv', '--out', 'results.csv', '--chunk', '500'], io)
    t.equal(code, 1, 'exit 1: not every row was answered')
    t.ok(Date.now() - started < 30_000, "reasonably fast")
    const text = await readFile(out, 'utf8')
    const { header, rows } = readResults(text)
    t.same(header, ['row', 'line', 'outcome', 'code', 'detail', 'xid', 'providerLogIndex', 'found', 'match', 'fields.name', 'extra'])
    t.same(rows.slice(0, 3).map((r) => r.line), ['2', '3', '4'], 'the input line of each row (the header is line 1)')
    t.equal(rows.length, 2500, 'one output line per input row')
    t.same(rows.map((r) => Number(r.row)), Array.from({ length: 2500 }, (_v, i) => i + 1), 'in input order')
    let wrong = 0
    rows.forEach((r, i) => {
      const e = expected[i]!
      const ok = e.outcome === 'answered'
        ? r.outcome === 'answered' && r.code === '' && r.found === e.found && r.match === e.match && r['fields.name'] === e.name && /^[A-Za-z0-9_-]{16,}$/.test(r.xid ?? '') && /^\d+$/.test(r.providerLogIndex ?? '')
        : r.outcome === 'invalid' && r.code === e.code && r.xid === '' && r.found === ''
      if (!ok && wrong++ < 5) t.fail(`row ${i + 1}: expected ${JSON.stringify(e)}, got ${JSON.stringify(r)}`)
    })
    t.equal(wrong, 0, 'every answer matches the dataset')
    t.match(rows[1499], { outcome: 'invalid', code: 'VN_ERR_CLI_CSV_MALFORMED', detail: 'line 1501: 3 fields, the header has 2' })
    t.match(rows[776], { detail: 'name: missing' })
    t.match(rows[6], { detail: 'id: check character does not match' })
    const xids = new Set(rows.filter((r) => r.outcome === 'answered').map((r) => r.xid))
    t.equal(xids.size, 5, '2,495 valid rows in 5 signed requests')
    for (const p of personal) {
      if (text.includes(p)) t.fail('the results file contains an ID number or a name')
    }
    t.notMatch(text, /\d{17}[\dX]/, 'no 18-character ID anywhere')
    t.match(io.stdout[0], /^verify-batch fj-psb identity\.match: 2,500 rows in .* rows\/s, 5 signed requests\)$/)
    t.equal(io.stdout[1], '  answered 2,495, denied 0, invalid 5, errors 0')
    t.match(io.stdout.join('\n'), /VN_ERR_SUBJECT_INVALID: 2 rows[\s\S]*results: .*results\.csv/)
    t.ok(io.stderr.length >= 1 && io.stderr.every((l) => /^progress: [\d,]+\/(~?[\d,]+|\?) rows \((\d+|\?)%\), [\d,]+ rows\/s, ETA /.test(l)), `plain progress lines: ${io.stderr.join(' | ')}`)
    for (const p of personal) if ((io.stdout.join('\n') + io.stderr.join('\n')).includes(p)) t.fail('personal data on the console')
  })

  t.test('all valid: exit 0, --json summary, bar on a terminal', async (t) => {
    const ok = lines.filter((_l, i) => i === 0 || expected[i - 1]?.outcome === 'answered').slice(0, 301)
    await writeFile(join(dir, 'ok.csv'), `${ok.join('\n')}\n`)
    const io = capture(env, dir, { json: true, tty: true })
    t.equal(await verifyBatchCommand.run([...ARGS, '--in', 'ok.csv', '--out', 'ok-results.csv', '--concurrency', '2'], io), 0, io.stderr.join('\n'))
    const sum = JSON.parse(io.stdout[0]!)
    t.match(sum, { ok: true, command: 'verify-batch', provider: 'fj-psb', service: 'identity.match', chunk: 1000, rows: 300, answered: 300, denied: 0, invalid: 0, errors: 0, requests: 1 })
    t.match(io.stderr.at(-1), /\[#+\] 100% 300\/300 rows/)
    t.equal(readResults(await readFile(join(dir, 'ok-results.csv'), 'utf8')).rows.length, 300)
  })

  t.test('a denied batch: every row denied with the signed code and xid', async (t) => {
    await writeFile(join(dir, 'few.csv'), `${lines.slice(0, 4).join('\n')}\n`)
    const io = capture(env, dir)
    t.equal(await verifyBatchCommand.run(['fj-psb', 'identity.match', '--purpose', 'marketing', '--basis', 'none', '--in', 'few.csv', '--out', 'denied.csv'], io), 1)
    const { rows } = readResults(await readFile(join(dir, 'denied.csv'), 'utf8'))
    t.equal(rows.length, 3)
    for (const r of rows) t.match(r, { outcome: 'denied', code: 'VN_ERR_POLICY_NO_AGREEMENT', xid: /^[A-Za-z0-9_-]{16,}$/, providerLogIndex: /^\d+$/, found: '' })
    t.equal(io.stdout[1], '  answered 0, denied 3, invalid 0, errors 0')
  })

  t.test('quota runs out between chunks: the first chunk answered, the second denied', async (t) => {
    const c = s.credit
    const subjects = [c.listedPersons[0], c.unlistedPersons[0], c.listedEnterprises[0], c.unlistedEnterprises[0], c.listedPersons[1], c.unlistedPersons[1], c.listedEnterprises[1], c.unlistedEnterprises[1]]
    await writeFile(join(dir, 'credit.csv'), `id\n${subjects.join('\n')}\n`)
    const io = capture(env, dir)
    t.equal(await verifyBatchCommand.run(['fj-credit', 'credit.dishonest', '--purpose', 'tax-credit-rating', '--basis', 'Tax Collection Administration Law art. 45',
      '--in', 'credit.csv', '--out', 'credit-results.csv', '--chunk', '4', '--concurrency', '1'], io), 1)
    const { header, rows } = readResults(await readFile(join(dir, 'credit-results.csv'), 'utf8'))
    t.same(header.slice(7), ['listed', 'extra'])
    t.same(rows.map((r) => [r.outcome, r.listed, r.code]), [
      ['answered', 'true', ''], ['answered', 'false', ''], ['answered', 'true', ''], ['answered', 'false', ''],
      ['denied', '', 'VN_ERR_POLICY_QUOTA_EXHAUSTED'], ['denied', '', 'VN_ERR_POLICY_QUOTA_EXHAUSTED'], ['denied', '', 'VN_ERR_POLICY_QUOTA_EXHAUSTED'], ['denied', '', 'VN_ERR_POLICY_QUOTA_EXHAUSTED'],
    ])
  })

  t.test('answer columns follow the answers; late ones go to extra', async (t) => {
    const credit = { VERINODE_NODE: f.nodes['fj-credit']!.localUrl, VERINODE_TOKEN: f.fed.nodes['fj-credit']!.appToken }
    const tx = s.tax
    await writeFile(join(dir, 'tax.csv'), `uscc,year,bound\n${tx.notPaidInFull[0]!.uscc},${tx.year},\n${tx.paidInFull[0]!.uscc},${tx.year},100\n${tx.noRecord[0]},${tx.year},\n`)
    const io = capture(credit, dir)
    t.equal(await verifyBatchCommand.run(['fj-tax', 'tax.compliance', '--purpose', 'credit-evaluation', '--basis', 'Social Credit Regulations art. 12', '--in', 'tax.csv', '--out', 'tax-results.csv'], io), 0, io.stderr.join('\n'))
    const all = readResults(await readFile(join(dir, 'tax-results.csv'), 'utf8'))
    t.same(all.header.slice(7), ['found', 'paidInFull', 'meetsBound', 'extra'])
    t.same(all.rows.map((r) => [r.found, r.paidInFull, r.meetsBound, r.extra]), [['true', 'false', '', ''], ['true', 'true', 'true', ''], ['false', '', '', '']])

    // With the header fixed after one row, an entry seen later lands in `extra` as JSON.
    const client = new LocalClient({ node: credit.VERINODE_NODE, token: credit.VERINODE_TOKEN })
    const catalog = await client.catalog('fj-tax')
    const outPath = join(dir, 'tax-late.csv')
    const sum = await runBatch({
      client, provider: 'fj-tax', service: catalog.services[0]!, purpose: 'credit-evaluation', basis: 'Social Credit Regulations art. 12', mode: 'plain',
      input: createReadStream(join(dir, 'tax.csv')),
      openOutput: async () => { const w = createWriteStream(outPath); await once(w, 'open'); return w },
      chunk: 1, concurrency: 1, headerSampleRows: 1,
    })
    await client.close()
    t.match(sum, { rows: 3, answered: 3, requests: 3 })
    const late = readResults(await readFile(outPath, 'utf8'))
    t.same(late.header.slice(7), ['found', 'paidInFull', 'extra'])
    t.same(JSON.parse(late.rows[1]!.extra!), { meetsBound: true })
  })

  t.test('header and option problems: exit 2 before anything is sent or written', async (t) => {
    const before = Number((await f.nodes['fj-tax']!.node.checkpoint()).split('\n')[1])
    const cases: [string, string, string[], RegExp][] = [
      ['unknown column', 'idno,name\n1,2\n', [], /header row: idno is not a field of identity\.match \(fields: id, name\)/],
      ['no header row', `${lines[4]}\n${lines[5]}\n`, [], /header row: column 1 is not a field/],
      ['missing required column', 'id\nx\n', [], /the required field name has no column/],
      ['duplicate column', 'id,name,name\n', [], /name appears twice/],
      ['empty file', '', [], /the input is empty/],
      ['chunk over the limit', 'id,name\n', ['--chunk', '5000'], /--chunk: fj-psb takes at most 1000 subjects per request/],
      ['bad chunk', 'id,name\n', ['--chunk', '0'], /--chunk: expected an integer/],
    ]
    for (const [name, content, extra, msg] of cases) {
      await writeFile(join(dir, 'h.csv'), content)
      const io = capture(env, dir)
      t.equal(await verifyBatchCommand.run([...ARGS, '--in', 'h.csv', '--out', 'h-out.csv', ...extra], io), 2, name)
      t.match(io.stderr.join('\n'), msg, name)
      for (const p of personal) if (io.stderr.join('\n').includes(p)) t.fail(`${name}: personal data echoed`)
      t.equal(await access(join(dir, 'h-out.csv')).then(() => true, () => false), false, `${name}: no output file`)
    }
    const usage: [string, string[], RegExp][] = [
      ['no --in', [...ARGS, '--out', 'x.csv'], /--in/],
      ['no --out', [...ARGS, '--in', 'subjects.csv'], /--out/],
      ['missing input', [...ARGS, '--in', 'nope.csv', '--out', 'x.csv'], /--in: not a readable file/],
      ['same file', [...ARGS, '--in', 'subjects.csv', '--out', './subjects.csv'], /must not be the input/],
      ['no purpose', ['fj-psb', 'identity.match', '--basis', 'b', '--in', 'subjects.csv', '--out', 'x.csv'], /--purpose/],
    ]
    for (const [name, argv, msg] of usage) {
      const io = capture(env, dir)
      t.equal(await verifyBatchCommand.run(argv, io), 2, name)
      t.match(io.stderr.join('\n'), msg, name)
    }
    t.equal(Number((await f.nodes['fj-tax']!.node.checkpoint()).split('\n')[1]), before, 'the consumer log did not grow')
  })

  t.test('refusals before reading: unknown service, bad token', async (t) => {
    const svc = capture(env, dir)
    t.equal(await verifyBatchCommand.run(['fj-psb', 'identity.lookup', '--purpose', 'p', '--basis', 'b', '--in', 'subjects.csv', '--out', 'r2.csv'], svc), 1)
    t.match(svc.stderr.join('\n'), /VN_ERR_POLICY_UNKNOWN_SERVICE/)
    const tok = capture({ ...env, VERINODE_TOKEN: 'vnt_wrong' }, dir, { json: true })
    t.equal(await verifyBatchCommand.run([...ARGS, '--in', 'subjects.csv', '--out', 'r2.csv'], tok), 1)
    t.match(JSON.parse(tok.stdout[0]!), { ok: false, command: 'verify-batch', error: { code: 'VN_ERR_LOCAL_UNAUTHORIZED' } })
    t.equal(await access(join(dir, 'r2.csv')).then(() => true, () => false), false, 'no output file')
  })

  t.test('an existing --out is never overwritten silently', async (t) => {
    await writeFile(join(dir, 'small.csv'), `${lines.slice(0, 4).join('\n')}\n`)
    await writeFile(join(dir, 'taken.csv'), 'precious\n')
    const io = capture(env, dir)
    t.equal(await verifyBatchCommand.run([...ARGS, '--in', 'small.csv', '--out', 'taken.csv'], io), 2)
    t.match(io.stderr.join('\n'), /VN_ERR_CLI_OUT_EXISTS: .*taken\.csv exists: --resume continues it .* --force overwrites it/)
    t.equal(await readFile(join(dir, 'taken.csv'), 'utf8'), 'precious\n', 'untouched')
    const both = capture(env, dir)
    t.equal(await verifyBatchCommand.run([...ARGS, '--in', 'small.csv', '--out', 'taken.csv', '--force', '--resume'], both), 2)
    const resumeMissing = capture(env, dir)
    t.equal(await verifyBatchCommand.run([...ARGS, '--in', 'small.csv', '--out', 'nothing-here.csv', '--resume'], resumeMissing), 2)
    t.match(resumeMissing.stderr.join('\n'), /--resume: nothing-here\.csv does not exist/)
    const notOurs = capture(env, dir, { json: true })
    t.equal(await verifyBatchCommand.run([...ARGS, '--in', 'small.csv', '--out', 'taken.csv', '--resume'], notOurs), 2)
    t.match(JSON.parse(notOurs.stdout[0]!), { ok: false, error: { code: 'VN_ERR_CLI_RESUME_MISMATCH' } })
    const forced = capture(env, dir)
    t.equal(await verifyBatchCommand.run([...ARGS, '--in', 'small.csv', '--out', 'taken.csv', '--force'], forced), 0, forced.stderr.join('\n'))
    t.equal(readResults(await readFile(join(dir, 'taken.csv'), 'utf8')).rows.length, 3, '--force overwrote it')
  })

  t.test('--key-column carries your own reference to the results; a subject field is refused', async (t) => {
    const withRef = ['ref,id,name', ...lines.slice(1, 4).map((l, i) => `case-${i + 1},${l}`)]
    await writeFile(join(dir, 'ref.csv'), `${withRef.join('\n')}\n`)
    const io = capture(env, dir)
    t.equal(await verifyBatchCommand.run([...ARGS, '--in', 'ref.csv', '--out', 'ref-out.csv', '--key-column', 'ref'], io), 0, io.stderr.join('\n'))
    const { header, rows } = readResults(await readFile(join(dir, 'ref-out.csv'), 'utf8'))
    t.same(header.slice(0, 4), ['row', 'line', 'ref', 'outcome'])
    t.same(rows.map((r) => [r.ref, r.outcome]), [['case-1', 'answered'], ['case-2', 'answered'], ['case-3', 'answered']])
    for (const [argv, msg] of [
      [['--key-column', 'id'], /--key-column: id is a field of identity\.match \(personal data is never copied/],
      [['--key-column', 'nope'], /--key-column: the header row has no column nope/],
      [['--key-column', 'outcome'], /--key-column: outcome is a column of the output/],
    ] as Array<[string[], RegExp]>) {
      const bad = capture(env, dir)
      t.equal(await verifyBatchCommand.run([...ARGS, '--in', 'ref.csv', '--out', 'ref-bad.csv', ...argv], bad), 2, argv.join(' '))
      t.match(bad.stderr.join('\n'), msg)
      t.equal(await access(join(dir, 'ref-bad.csv')).then(() => true, () => false), false, 'no output file')
    }
  })

  t.test('the node goes away mid-run: the run stops and says so; --resume asks only the rows not answered', async (t) => {
    const rows40 = [lines[0]!, ...lines.slice(1).filter((_l, i) => expected[i]?.outcome === 'answered').slice(0, 40)]
    await writeFile(join(dir, 'forty.csv'), `${rows40.join('\n')}\n`)
    const real = new LocalClient({ node: env.VERINODE_NODE!, token: env.VERINODE_TOKEN! })
    t.teardown(() => real.close())
    const catalog = await real.catalog('fj-psb')
    let calls = 0
    // The first two chunks are answered, then the node is gone.
    const flaky = { verify: async (b: Parameters<LocalClient['verify']>[0]) => {
      if (++calls > 2) throw new VnError('VN_ERR_LOCAL_UNREACHABLE', 'http://127.0.0.1:1: ECONNREFUSED')
      return real.verify(b)
    } } as unknown as LocalClient
    const outPath = join(dir, 'forty-out.csv')
    const first = await runBatch({
      client: flaky, provider: 'fj-psb', service: catalog.services.find((x) => x.id === 'identity.match')!, purpose: ARGS[3]!, basis: ARGS[5]!, mode: 'plain',
      input: createReadStream(join(dir, 'forty.csv')),
      openOutput: async () => { const w = createWriteStream(outPath); await once(w, 'open'); return w },
      chunk: 10, concurrency: 1,
    })
    t.match(first, { answered: 20, stopped: { code: 'VN_ERR_LOCAL_UNREACHABLE', firstUnanswered: 21, message: /the node stopped answering .* at row 21/ } })
    t.equal(calls, 3, 'no chunk sent after the failure')
    t.same(readResults(await readFile(outPath, 'utf8')).rows.map((r) => r.row), Array.from({ length: 20 }, (_v, i) => String(i + 1)), 'only the answered rows are written')

    const providerLog = async (): Promise<number> => Number((await f.nodes['fj-psb']!.node.checkpoint()).split('\n')[1])
    const before = await providerLog()
    const io = capture(env, dir, { json: true })
    t.equal(await verifyBatchCommand.run([...ARGS, '--in', 'forty.csv', '--out', 'forty-out.csv', '--resume', '--chunk', '10'], io), 0, io.stdout.join('\n'))
    t.match(JSON.parse(io.stdout[0]!), { ok: true, rows: 40, answered: 20, skipped: 20, requests: 2 }, 'only the 20 rows not answered are asked')
    t.ok(await providerLog() > before)
    const all = readResults(await readFile(outPath, 'utf8'))
    t.same(all.rows.map((r) => Number(r.row)).sort((a, b) => a - b), Array.from({ length: 40 }, (_v, i) => i + 1), 'every row once')
    t.ok(all.rows.every((r) => r.outcome === 'answered'))

    // Through the command: the stop is reported with its code and the way to resume.
    const down = capture({ ...env, VERINODE_NODE: 'http://127.0.0.1:1' }, dir)
    t.equal(await verifyBatchCommand.run([...ARGS, '--in', 'forty.csv', '--out', 'down.csv'], down), 1)
    t.match(down.stderr.join('\n'), /VN_ERR_LOCAL_UNREACHABLE/)
  })

  t.test('input that is not UTF-8: VN_ERR_CLI_CSV_MALFORMED, exit 1, nothing sent', async (t) => {
    const before = Number((await f.nodes['fj-tax']!.node.checkpoint()).split('\n')[1])
    const good = Buffer.from(`${lines.slice(0, 3).join('\n')}\n`)
    // GB 18030 bytes in a file read as UTF-8: the read chunk holding them is refused as a whole.
    await writeFile(join(dir, 'gbk.csv'), Buffer.concat([good, Buffer.from([0xd5, 0xc5, 0x0a])]))
    const io = capture(env, dir)
    t.equal(await verifyBatchCommand.run([...ARGS, '--in', 'gbk.csv', '--out', 'gbk-out.csv'], io), 1)
    t.match(io.stderr.join('\n'), /VN_ERR_CLI_CSV_MALFORMED.*not valid UTF-8/)
    t.equal(Number((await f.nodes['fj-tax']!.node.checkpoint()).split('\n')[1]), before, 'nothing sent')
  })
})
