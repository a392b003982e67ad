/**
 * `npm run console:screenshots`: regenerates docs/console/*.png, one per console page, from a real
 * three-node demo federation on loopback with some traffic (synthetic data, no real person), seen
 * from fj-tax's console in Debian's chromium (playwright-core). The governance page shows two
 * applications to fj-tax (one approved) and a dispute; the audit page shows a tampered copy of
 * fj-tax's export, uploaded, so a finding is on it.
 */
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { pino } from 'pino'
import { chromium, type Page } from 'playwright-core'
import { startDemoFederation } from '../src/demo/federation.js'
import { startNode, type RunningNode } from '../src/http/server.js'
import { exportLog } from '../src/node/export.js'

const OUT = fileURLToPath(new URL('../docs/console/', import.meta.url))
const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync', '--disable-quic']

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'vn-console-shots-'))
  const nodes: Record<string, RunningNode> = {}
  try {
    const { fed } = await startDemoFederation((a) => join(dir, `try-${a}`), { ids: ['fj-psb', 'fj-tax', 'fj-credit'] },
      (_id, configPath) => startNode(configPath, { logger: pino({ level: 'silent' }), checkpointEveryMs: 0, witnessEveryMs: 0 }), nodes)
    const ask = async (from: string, body: Record<string, unknown>): Promise<void> => {
      await fetch(`${nodes[from]!.localUrl}/local/v1/verify`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${fed.nodes[from]!.appToken}` }, body: JSON.stringify(body) })
    }
    const s = fed.dataset.samples
    for (let i = 0; i < 12; i++) {
      const p = s.identity.matches[i % s.identity.matches.length]!
      await ask('fj-tax', { provider: 'fj-psb', service: 'identity.match', purpose: 'taxpayer-registration', basis: 'Tax Collection Administration Law art. 15', subjects: [{ id: p.id, name: p.name }] })
      const tx = s.tax.paidInFull[i % s.tax.paidInFull.length]!
      await ask('fj-credit', { provider: 'fj-tax', service: 'tax.compliance', purpose: 'credit-evaluation', basis: 'Social Credit Regulations art. 12', subjects: [{ uscc: tx.uscc, year: tx.year }] })
    }
    await ask('fj-tax', { provider: 'fj-psb', service: 'identity.match', purpose: 'marketing', basis: 'none', subjects: [{ id: s.identity.matches[0]!.id, name: s.identity.matches[0]!.name }] })
    // the governance queues at fj-tax: two applications (one approved) and a dispute
    const local = async (from: string, path: string, body: unknown): Promise<Record<string, unknown>> => {
      const r = await fetch(`${nodes[from]!.localUrl}/local/v1${path}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${fed.nodes[from]!.appToken}` }, body: JSON.stringify(body) })
      return await r.json() as Record<string, unknown>
    }
    const until = new Date(Date.now() + 180 * 86_400_000).toISOString()
    const contact = 'synthetic contact, not shown'
    await local('fj-psb', '/applications', { provider: 'fj-tax', services: ['tax.compliance'], purposes: ['loan-screening'], basis: 'Commercial Bank Law art. 35', dailyQuota: 50, validUntil: until, contact })
    const approved = await local('fj-credit', '/applications', { provider: 'fj-tax', services: ['income.band'], purposes: ['credit-evaluation'], basis: 'Social Credit Regulations art. 12', dailyQuota: 20, validUntil: until, contact })
    await local('fj-tax', `/applications/${String(approved['id'])}/approve`, {})
    const tx = s.tax.paidInFull[0]!
    const x = await local('fj-credit', '/verify', { provider: 'fj-tax', service: 'tax.compliance', purpose: 'credit-evaluation', basis: 'Social Credit Regulations art. 12', subjects: [{ uscc: tx.uscc, year: tx.year }] })
    await local('fj-credit', '/disputes', { provider: 'fj-tax', xid: x['xid'], index: x['providerLogIndex'], reason: 'outdated', note: 'synthetic note, not shown' })
    for (const n of Object.values(nodes)) await n.node.checkpoint()
    for (const n of Object.values(nodes)) await n.node.witnessAll()

    const tax = nodes['fj-tax']!
    const good = join(dir, 'export-fj-tax')
    await exportLog(fed.nodes['fj-tax']!.configPath, good)
    const bad = join(dir, 'export-fj-tax-tampered')
    await cp(good, bad, { recursive: true })
    const lines = (await readFile(join(bad, 'entries.jsonl'), 'utf8')).split('\n')
    const i = lines.findIndex((l) => l.includes('"t":"request-out"'))
    lines[i] = lines[i]!.replace('"count":1', '"count":10')
    await writeFile(join(bad, 'entries.jsonl'), lines.join('\n'))

    await mkdir(OUT, { recursive: true })
    for (const locale of ['en-US', 'zh-CN']) {
      const profile = await mkdtemp(join(tmpdir(), 'vn-chromium-'))
      const ctx = await chromium.launchPersistentContext(profile, { executablePath: '/usr/bin/chromium', headless: true, args: ARGS, locale, viewport: { width: 1366, height: 860 } })
      try {
        const page = await ctx.newPage()
        await page.goto(`${tax.localUrl}/console/`)
        const suffix = locale === 'zh-CN' ? '-zh' : ''
        if (locale === 'en-US') await shot(page, `signin${suffix}`)
        await page.fill('input[name=token]', fed.nodes['fj-tax']!.appToken)
        await page.click('button[type=submit]')
        await page.waitForSelector('[data-testid=log-size]')
        await shot(page, `overview${suffix}`)
        if (locale === 'zh-CN') continue
        await page.click('[data-testid=nav-traffic]')
        await page.waitForSelector('[data-testid=chart] canvas')
        await page.selectOption('[data-testid=by]', 'peer')
        await page.waitForTimeout(300)
        await shot(page, 'traffic')
        await page.click('[data-testid=nav-agreements]')
        await page.waitForSelector('[data-testid^=agreement-]')
        await shot(page, 'agreements')
        await page.click('[data-testid=nav-governance]')
        await page.waitForSelector('[data-testid^=dispute-]')
        await shot(page, 'governance')
        await page.click('[data-testid=nav-peers]')
        await page.waitForSelector('[data-testid^=member-]')
        await page.waitForSelector('[data-testid^=catalog-fj-psb-]')
        await page.waitForSelector('[data-testid^=catalog-fj-credit-]')
        await shot(page, 'peers')
        await page.click('[data-testid=nav-audit]')
        await page.setInputFiles('[data-testid=audit-upload]', bad)
        await page.click('[data-testid=audit-upload-run]')
        await page.waitForSelector('[data-testid=findings]')
        await shot(page, 'audit')
      } finally {
        await ctx.close()
        await rm(profile, { recursive: true, force: true })
      }
    }
  } finally {
    for (const n of Object.values(nodes)) await n.close()
    await rm(dir, { recursive: true, force: true })
  }
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(OUT, `${name}.png`), fullPage: true })
  console.log(`docs/console/${name}.png`)
}

main().catch((e: unknown) => {
  console.error(e)
  process.exit(1)
})
