/** `verinode demo`: the whole four-department federation on loopback, no setup needed. */
import { parseArgs } from 'node:util'
import { join } from 'node:path'
import { runDemo } from '../../demo/run.js'
import type { DemoFederation } from '../../demo/federation.js'
import { auditExport } from '../../audit/verify.js'
import { summarizeReport } from '../../audit/format.js'
import { exportLog } from '../../node/export.js'
import { isProfileName } from '../../crypto/profile.js'

/** The auditor's step of the demo: export every node's log and verify it offline. */
export async function auditDemo(fed: DemoFederation): Promise<{ member: string; ok: boolean; entries: number; summary: string }[]> {
  const out = []
  for (const [member, n] of Object.entries(fed.nodes)) {
    const dir = join(fed.dir, 'exports', member)
    await exportLog(n.configPath, dir)
    const r = await auditExport(dir, { rootKey: join(fed.authorityDir, 'federation-root.pub') })
    out.push({ member, ok: r.ok, entries: r.leaves, summary: summarizeReport(r) })
  }
  return out
}
import type { Command, CliIo } from '../types.js'
import { errorDoc, okDoc } from '../output.js'
import { intOption, UsageError } from '../args.js'

const DEFAULT_PG_URL = 'postgres://postgres@127.0.0.1:5432/verinode_test'
const DEFAULT_MYSQL_URL = 'mysql://root@127.0.0.1:3306/verinode_test'

export const demoCommand: Command = {
  name: 'demo',
  summary: 'run a four-department federation on loopback with synthetic data',
  usage: 'verinode demo [--dir <folder>] [--residents 5000] [--enterprises 2000] [--source sqlite|postgres|mysql] [--source-url <admin URL>] [--profile intl|sm]',
  async run(argv: string[], io: CliIo): Promise<number> {
    const { values } = parseArgs({
      args: argv,
      options: {
        dir: { type: 'string' }, residents: { type: 'string' }, enterprises: { type: 'string' },
        source: { type: 'string' }, 'source-url': { type: 'string' }, profile: { type: 'string' },
      },
    })
    const opts: Parameters<typeof runDemo>[0] = { out: io.json ? () => undefined : io.out, audit: auditDemo }
    const source = values.source ?? 'sqlite'
    if (source !== 'sqlite' && source !== 'postgres' && source !== 'mysql') throw new UsageError('--source: expected sqlite, postgres or mysql')
    if (source === 'sqlite') {
      if (values['source-url'] !== undefined) throw new UsageError('--source-url: only with --source postgres or mysql')
    } else {
      // The local servers by default, or the ones the database tests use (VN_TEST_PG_URL, VN_TEST_MYSQL_URL).
      const url = values['source-url'] ?? (source === 'postgres'
        ? io.env['VN_TEST_PG_URL'] ?? DEFAULT_PG_URL
        : io.env['VN_TEST_MYSQL_URL'] ?? DEFAULT_MYSQL_URL)
      opts.source = { kind: source, url }
    }
    if (values.dir !== undefined) opts.dir = values.dir
    if (values.profile !== undefined) {
      if (!isProfileName(values.profile)) throw new UsageError('--profile: expected intl or sm')
      opts.profile = values.profile
    }
    const residents = intOption(values.residents, 'residents', 1, 10_000_000)
    const enterprises = intOption(values.enterprises, 'enterprises', 1, 10_000_000)
    if (residents !== undefined) opts.residents = residents
    if (enterprises !== undefined) opts.enterprises = enterprises
    const report = await runDemo(opts)
    if (io.json) {
      io.out(report.ok ? okDoc('demo', report) : errorDoc('demo', { code: 'VN_ERR_CLI_CHECKS_FAILED', message: 'a demo step or audit did not behave as expected' }, report))
    } else {
      io.out('\nSummary')
      for (const s of report.steps) io.out(`  ${s.ok ? 'ok ' : 'BAD'} ${s.title.padEnd(76)} ${s.outcome}`)
      for (const a of report.audits) io.out(`  ${a.ok ? 'ok ' : 'BAD'} audit of ${a.member}: ${a.summary}`)
      io.out(`\n${report.ok ? 'All verifications behaved as expected.' : 'Something did not behave as expected.'} Files: ${report.dir}`)
    }
    return report.ok ? 0 : 1
  },
}
