/** `verinode demo`: the whole four-department federation on loopback, no setup needed. */
import { parseArgs } from 'node:util'
import { join } from 'node:path'
import { runDemo } from '../../demo/run.js'
import type { DemoFederation } from '../../demo/federation.js'
import { auditExport } from '../../audit/verify.js'
import { summarizeReport } from '../../audit/format.js'
import { exportLog } from '../../node/export.js'

/** The auditor's step of the demo: export every node's log and verify it offline. */
async function auditDemo(fed: DemoFederation): Promise<{ member: string; ok: boolean; entries: number; summary: string }[]> {
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
import { intOption } from '../args.js'

export const demoCommand: Command = {
  name: 'demo',
  summary: 'run a four-department federation on loopback with synthetic data',
  usage: 'verinode demo [--dir <folder>] [--residents 5000] [--enterprises 2000]',
  async run(argv: string[], io: CliIo): Promise<number> {
    const { values } = parseArgs({ args: argv, options: { dir: { type: 'string' }, residents: { type: 'string' }, enterprises: { type: 'string' } } })
    const opts: Parameters<typeof runDemo>[0] = { out: io.json ? () => undefined : io.out, audit: auditDemo }
    if (values.dir !== undefined) opts.dir = values.dir
    const residents = intOption(values.residents, 'residents', 1, 10_000_000)
    const enterprises = intOption(values.enterprises, 'enterprises', 1, 10_000_000)
    if (residents !== undefined) opts.residents = residents
    if (enterprises !== undefined) opts.enterprises = enterprises
    const report = await runDemo(opts)
    if (io.json) {
      io.out(JSON.stringify(report))
    } else {
      io.out('\nSummary')
      for (const s of report.steps) io.out(`  ${s.ok ? 'ok ' : 'BAD'} ${s.title.padEnd(76)} ${s.outcome}`)
      for (const a of report.audits) io.out(`  ${a.ok ? 'ok ' : 'BAD'} audit of ${a.member}: ${a.summary}`)
      io.out(`\n${report.ok ? 'All verifications behaved as expected.' : 'Something did not behave as expected.'} Files: ${report.dir}`)
    }
    return report.ok ? 0 : 1
  },
}
