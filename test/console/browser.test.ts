/**
 * The web console in a real browser (Debian's chromium, playwright-core) against a real
 * two-node federation over loopback: what a person sees on every page, checked against the nodes'
 * own logs; a wrong token refused; a request from another origin refused (CSRF); the auditor
 * unable to act; an audit of a tampered export showing its finding; Chinese for a Chinese browser.
 */
import t from 'tap'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import type { Page } from 'playwright-core'
import { federationFixture } from '../helper.js'
import { browserSkipReason, ensureConsoleBuilt, launchChromium } from '../helper-browser.js'
import { exportLog } from '../../src/node/export.js'
import { parseLeaf } from '../../src/log/node-log.js'
import { utcDay } from '../../src/policy/quota.js'
import type { RunningNode } from '../../src/http/server.js'
import type { LogRecord } from '../../src/log/records.js'

const TAX = 'fj-tax'
const PSB = 'fj-psb'

async function records(n: RunningNode): Promise<LogRecord[]> {
  return (await n.node.log.entries(0, await n.node.log.size())).map((l) => parseLeaf(l))
}

async function signIn(page: Page, url: string, token: string): Promise<void> {
  await page.goto(`${url}/console/`)
  await page.fill('input[name=token]', token)
  await page.click('button[type=submit]')
  await page.waitForSelector('[data-testid=who]')
}

const text = async (page: Page, id: string): Promise<string> => (await page.locator(`[data-testid="${id}"]`).first().textContent())?.trim() ?? ''

const noBrowser = browserSkipReason()

t.test('the console in chromium', { skip: noBrowser ?? false }, async (t) => {
  await ensureConsoleBuilt()
  const lines: Record<string, unknown>[] = []
  const logger = pino({ level: 'info' }, new Writable({ write(c, _e, cb) { lines.push(JSON.parse(String(c)) as Record<string, unknown>); cb() } }))
  const f = await federationFixture(t, { start: [PSB, TAX], logger })
  const tax = f.nodes[TAX]!
  const psb = f.nodes[PSB]!
  const people = f.fed.dataset.samples.identity.matches.slice(0, 3)
  for (let i = 0; i < 4; i++) {
    const r = await f.verify(TAX, { provider: PSB, service: 'identity.match', purpose: 'taxpayer-registration', basis: 'Tax Collection Administration Law art. 15', subjects: people.map((p) => ({ id: p.id, name: p.name })) })
    t.equal(r.status, 200)
  }
  const denied = await f.verify(TAX, { provider: PSB, service: 'identity.match', purpose: 'marketing', basis: 'none', subjects: [{ id: people[0]!.id, name: people[0]!.name }] })
  t.not(denied.status, 200)
  // witnesses: each node cosigns the other's checkpoint
  await tax.node.checkpoint()
  await psb.node.checkpoint()
  await psb.node.witnessAll()
  await tax.node.witnessAll()

  const { ctx, context } = await launchChromium(t)
  const page = await ctx.newPage()

  t.test('a wrong token is refused', async (t) => {
    await page.goto(`${tax.localUrl}/console/`)
    await page.fill('input[name=token]', 'vnt_not-a-token')
    await page.click('button[type=submit]')
    await page.waitForSelector('[data-testid=error]')
    t.match(await text(page, 'error'), /VN_ERR_LOCAL_UNAUTHORIZED/)
    t.equal(await page.locator('[data-testid=who]').count(), 0, 'still signed out')
  })

  t.test('overview against the log', async (t) => {
    await signIn(page, tax.localUrl, f.fed.nodes[TAX]!.appToken)
    await page.waitForSelector('[data-testid=log-size]')
    const recs = await records(tax)
    t.equal(await text(page, 'ready'), 'Ready')
    t.equal(Number(await text(page, 'log-size')), recs.length, 'log size = leaves in the log')
    const consumer = recs.filter((r) => r.t === 'response-in').length
    t.equal(Number(await text(page, 'exchanges-consumer')), consumer, 'consumer exchanges = response-in records')
    t.match(await text(page, 'cosigners'), new RegExp(`${PSB}\\.`), 'the last checkpoint shows its witness')
    t.ok(Number(await text(page, 'manifest-seq')) >= 1)
    t.match(await text(page, 'latency-consumer'), /consumer/)
    const body = await page.content()
    for (const p of people) t.notOk(body.includes(p.id) || body.includes(p.name), 'no personal data on the page')
  })

  t.test('traffic chart numbers against the log', async (t) => {
    await page.click('[data-testid=nav-traffic]')
    await page.waitForSelector('[data-testid=chart] canvas')
    await page.selectOption('[data-testid=by]', 'decision')
    await page.selectOption('[data-testid=role]', 'consumer')
    await page.waitForSelector('[data-testid="total-denied"]')
    const recs = await records(tax)
    const ok = recs.filter((r) => r.t === 'response-in' && r.status === 'ok').length
    const no = recs.filter((r) => r.t === 'response-in' && r.status === 'denied').length
    t.equal(ok, 4)
    t.equal(Number(await text(page, 'total-ok')), ok)
    t.equal(Number(await text(page, 'total-denied')), no)
    t.equal(Number(await text(page, 'total')), ok + no)
    await page.selectOption('[data-testid=by]', 'service')
    await page.waitForSelector('[data-testid="total-identity.match"]')
    t.equal(Number(await text(page, 'total-identity.match')), ok + no)
  })

  t.test('agreements: today\'s use against the provider\'s log', async (t) => {
    const p2 = await ctx.newPage()
    await signIn(p2, psb.localUrl, f.fed.nodes[PSB]!.appToken)
    await p2.click('[data-testid=nav-agreements]')
    await p2.waitForSelector('[data-testid^=agreement-]')
    const today = utcDay(Date.now())
    const used = new Map<string, number>()
    for (const r of await records(psb)) if (r.t === 'decision' && r.permit && r.agreement !== undefined && r.day === today) used.set(r.agreement, (used.get(r.agreement) ?? 0) + r.count)
    t.ok(used.size > 0)
    for (const [id, n] of used) t.equal(Number(await text(p2, `used-${id}`)), n, `${id}: ${n} subjects today`)
    // the provider's latency per service on its traffic page: one observation per answered exchange
    await p2.click('[data-testid=nav-traffic]')
    await p2.waitForSelector('[data-testid="provider-latency-identity.match-plain"]')
    const answered = (await records(psb)).filter((r) => r.t === 'response-out').length
    t.equal(Number(await text(p2, 'provider-latency-count-identity.match-plain')), answered, 'as many as response-out records')
    t.match(await text(p2, 'provider-latency-identity.match-plain'), /≤ [\d.]+/)
    await p2.close()
  })

  t.test('peers and federation', async (t) => {
    await page.click('[data-testid=nav-peers]')
    await page.waitForSelector(`[data-testid=member-${PSB}]`)
    t.equal(await text(page, 'federation'), f.fed.federation)
    t.equal(await text(page, `up-${PSB}`), 'reachable')
    const seen = tax.node.peerLogs.lastSeen(PSB)!
    t.match(await text(page, `cosigned-${PSB}`), new RegExp(`^#${seen.checkpoint.size} `))
    await page.waitForSelector(`[data-testid="catalog-${PSB}-identity.match"]`)
    t.match(await text(page, `catalog-${PSB}-identity.match`), /plain/, 'the federation catalogue lists the peer\'s signed services')
  })

  const dir = await mkdtemp(join(tmpdir(), 'vn-console-audit-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const good = join(dir, 'export')
  await exportLog(f.fed.nodes[TAX]!.configPath, good)
  const bad = join(dir, 'tampered')
  await cp(good, bad, { recursive: true })
  const ls = (await readFile(join(bad, 'entries.jsonl'), 'utf8')).split('\n')
  const i = ls.findIndex((l) => l.includes('"t":"request-out"'))
  ls[i] = ls[i]!.replace('"count":3', '"count":30')
  await writeFile(join(bad, 'entries.jsonl'), ls.join('\n'))

  t.test('audit of an export and of a tampered copy', async (t) => {
    await page.click('[data-testid=nav-audit]')
    await page.fill('[data-testid=audit-dir]', good)
    await page.click('[data-testid=audit-run]')
    await page.waitForSelector('[data-testid=audit-ok]')
    t.equal(await text(page, 'audit-ok'), 'No error finding')
    await page.fill('[data-testid=audit-dir]', bad)
    await page.click('[data-testid=audit-run]')
    await page.waitForSelector('[data-testid=findings]')
    t.equal(await text(page, 'audit-ok'), 'Error findings')
    const codes = await page.locator('[data-testid=finding-code]').allTextContents()
    t.ok(codes.length > 0, `findings shown: ${codes.join(', ')}`)
    t.ok(Number(await text(page, 'audit-errors')) > 0)
  })

  t.test('audit of an uploaded export, and of a tampered one', async (t) => {
    await page.click('[data-testid=nav-overview]')
    await page.click('[data-testid=nav-audit]')
    await page.setInputFiles('[data-testid=audit-upload]', good)
    await page.click('[data-testid=audit-upload-run]')
    await page.waitForSelector('[data-testid=audit-ok]')
    t.equal(await text(page, 'audit-ok'), 'No error finding')
    const meta = JSON.parse(await readFile(join(good, 'export.json'), 'utf8')) as { size: number }
    t.equal(Number(await text(page, 'audit-leaves')), meta.size, 'every leaf of the export checked')
    await page.setInputFiles('[data-testid=audit-upload]', bad)
    await page.click('[data-testid=audit-upload-run]')
    await page.waitForSelector('[data-testid=findings]')
    t.equal(await text(page, 'audit-ok'), 'Error findings')
    const codes = await page.locator('[data-testid=finding-code]').allTextContents()
    t.ok(codes.length > 0, `findings shown: ${codes.join(', ')}`)
    t.ok(Number(await text(page, 'audit-errors')) > 0)
    t.ok(lines.some((l) => l.msg === 'audit verify (upload)' && l.ok === false), 'logged, without the files')
  })

  t.test('a request from another origin is refused (CSRF)', async (t) => {
    // Another origin on the same machine (the same site: the session cookie goes with it)
    const evil = createServer((_req, res) => { res.setHeader('content-type', 'text/html'); res.end('<!doctype html><title>evil</title>') })
    await new Promise<void>((r) => evil.listen(0, '127.0.0.1', r))
    // close() waits for open connections, and Chromium keeps its keep-alive one to this page for
    // about a minute after the page is closed: that minute was most of this file's time
    t.teardown(() => new Promise<void>((r) => {
      evil.close(() => r())
      evil.closeAllConnections()
    }))
    const evilPage = await ctx.newPage()
    await evilPage.goto(`http://127.0.0.1:${(evil.address() as AddressInfo).port}/`)
    const before = lines.filter((l) => l.msg === 'manifest reload').length
    await evilPage.evaluate(async (u) => {
      await fetch(u, { method: 'POST', mode: 'no-cors', credentials: 'include', body: '{}' }).catch(() => undefined)
    }, `${tax.localUrl}/local/v1/manifest/reload`)
    await new Promise((r) => setTimeout(r, 300))
    t.equal(lines.filter((l) => l.msg === 'manifest reload').length, before, 'nothing was reloaded')
    t.ok(lines.some((l) => l.msg === 'request refused' && l.code === 'VN_ERR_LOCAL_CSRF'), 'refused as VN_ERR_LOCAL_CSRF')
    await evilPage.close()
  })

  t.test('the operator acts from the page', async (t) => {
    await page.click('[data-testid=nav-overview]')
    await page.click('[data-testid=reload-manifest]')
    await page.waitForSelector('[data-testid=reload-result]')
    t.match(await text(page, 'reload-result'), /seq \d+/)
  })

  t.test('the auditor cannot act', async (t) => {
    await page.click('[data-testid=signout]')
    await page.waitForSelector('input[name=token]')
    await signIn(page, tax.localUrl, f.fed.nodes[TAX]!.auditorToken!)
    await page.waitForSelector('[data-testid=read-only]')
    t.equal(await page.locator('[data-testid=reload-manifest]').count(), 0, 'no action button')
    const r = await page.evaluate(async () => {
      const s = await (await fetch('/local/v1/session')).json() as { csrf: string }
      const res = await fetch('/local/v1/manifest/reload', { method: 'POST', headers: { 'x-csrf-token': s.csrf } })
      return { status: res.status, body: await res.json() as { code: string } }
    })
    t.equal(r.status, 403)
    t.equal(r.body.code, 'VN_ERR_LOCAL_FORBIDDEN')
  })

  t.test('Chinese first in a Chinese browser', async (t) => {
    const zh = await context('zh-CN')
    const p = await zh.newPage()
    await p.goto(`${tax.localUrl}/console/`)
    await p.waitForSelector('button[type=submit]')
    t.equal((await p.locator('button[type=submit]').textContent())?.trim(), '登录')
    await p.fill('input[name=token]', f.fed.nodes[TAX]!.appToken)
    await p.click('button[type=submit]')
    await p.waitForSelector('[data-testid=ready]')
    t.equal(await text(p, 'ready'), '就绪')
    await zh.close()
  })
})
