/**
 * The demo (README command one) end to end on a small federation: every step behaves as expected.
 * Its first node start is made to fail as if another process had taken the port picked for it, and
 * the demo builds the federation again on fresh ports instead of giving up.
 */
import t from 'tap'
import type { startNode as StartNode } from '../../src/http/server.js'
import * as server from '../../src/http/server.js'
import { auditDemo } from '../../src/cli/commands/demo.js'

t.test('the demo survives a port taken before its node listens', async (t) => {
  let calls = 0
  const flaky: typeof StartNode = async (...a) => {
    calls++
    if (calls === 2) throw Object.assign(new Error('listen EADDRINUSE: address already in use'), { code: 'EADDRINUSE' })
    return server.startNode(...a)
  }
  const { runDemo } = await t.mockImport<typeof import('../../src/demo/run.js')>('../../src/demo/run.js', {
    '../../src/http/server.js': { ...server, startNode: flaky },
  })
  const lines: string[] = []
  const report = await runDemo({ dir: t.testdir({}), residents: 400, enterprises: 200, out: (l) => lines.push(l), audit: auditDemo })
  t.ok(lines.some((l) => /building the federation again on fresh ports/.test(l)), 'said so')
  t.equal(lines.filter((l) => /public https:\/\/127\.0\.0\.1:\d+ /.test(l)).length, 4 + 1, 'every public listener serves mutual TLS')
  t.equal(calls, 2 + 4, 'one node started, the second failed, then all four on the new ports')
  const failed = report.steps.filter((s) => !s.ok)
  t.same(failed, [], 'every step behaved as expected')
  // the sharing rules (docs/GOVERNANCE.md): one unconditional answer without an agreement, one not-shared refusal
  t.match(report.steps.find((s) => s.service === 'enterprise.status' && s.consumer === 'fj-psb'), { outcome: 'ok', ok: true })
  t.match(report.steps.find((s) => s.service === 'household.detail'), { outcome: 'HTTP 403 VN_ERR_POLICY_NOT_SHARED', ok: true })
  t.same(report.audits.filter((a) => !a.ok), [], 'every node\'s log verifies with these events in it')
  t.equal(report.audits.length, 4)
  t.ok(report.ok)
})
