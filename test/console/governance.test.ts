/**
 * The applications and disputes page in a real browser (Debian's chromium, playwright-core) against
 * a real two-node federation: the consumer files an application and a dispute over its local API,
 * the provider's operator sees both in the console, approves the application and corrects the
 * dispute from the page (signed, logged, sent), the agreement permits at once; the auditor sees
 * the page read-only and is refused (403) when it tries an action; no personal data on the page.
 */
import t from 'tap'
import { request } from 'undici'
import type { Page } from 'playwright-core'
import { federationFixture, type Fixture } from '../helper.js'
import { browserSkipReason, ensureConsoleBuilt, launchChromium } from '../helper-browser.js'

const PSB = 'fj-psb'
const TAX = 'fj-tax'

/* eslint-disable @typescript-eslint/no-explicit-any */
async function local(f: Fixture, member: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await request(`${f.nodes[member]!.localUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${f.fed.nodes[member]!.appToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  return { status: res.statusCode, json: await res.body.json() }
}
/* eslint-enable @typescript-eslint/no-explicit-any */

async function signIn(page: Page, url: string, token: string): Promise<void> {
  await page.goto(`${url}/console/`)
  await page.fill('input[name=token]', token)
  await page.click('button[type=submit]')
  await page.waitForSelector('[data-testid=who]')
}

const text = async (page: Page, id: string): Promise<string> => (await page.locator(`[data-testid="${id}"]`).first().textContent())?.trim() ?? ''

/** Waits until the element `id` says `want` (the page reloads its list after an action). */
async function waitText(page: Page, id: string, want: string): Promise<void> {
  await page.locator(`[data-testid="${id}"]`).filter({ hasText: new RegExp(`^${want}$`) }).waitFor()
}

const CONTACT = 'Zhang San, 0591-12345678'
const NOTE = 'paid on 2025-12-30, receipt no. 778'

const question = (subjects: unknown[]): Record<string, unknown> => ({
  provider: TAX, service: 'tax.compliance', purpose: 'loan-screening', basis: 'Commercial Bank Law art. 35', subjects,
})

t.test('applications and disputes in the console', { skip: browserSkipReason() ?? false }, async (t) => {
  await ensureConsoleBuilt()
  const f = await federationFixture(t, { start: [PSB, TAX] })
  const tax = f.nodes[TAX]!
  const sample = f.fed.dataset.samples.tax.paidInFull[0]!
  const subject = [{ uscc: sample.uscc, year: sample.year }]
  t.equal((await f.verify(PSB, question(subject))).json.code, 'VN_ERR_POLICY_NO_AGREEMENT', 'no agreement before')

  // the consumer files an application (its local API, as its applications or the CLI do)
  const filed = await local(f, PSB, 'POST', '/local/v1/applications', {
    provider: TAX, services: ['tax.compliance'], purposes: ['loan-screening'], basis: 'Commercial Bank Law art. 35',
    dailyQuota: 50, modes: ['plain'], validUntil: new Date(Date.now() + 30 * 86_400_000).toISOString(), contact: CONTACT,
  })
  t.equal(filed.status, 201, JSON.stringify(filed.json))
  const id = filed.json.id as string

  const { ctx } = await launchChromium(t)
  const page = await ctx.newPage()

  t.test('the auditor sees the queue read-only, and its action is refused', async (t) => {
    await signIn(page, tax.localUrl, f.fed.nodes[TAX]!.auditorToken!)
    await page.click('[data-testid=nav-governance]')
    await page.waitForSelector(`[data-testid=application-${id}]`)
    await page.waitForSelector('[data-testid=read-only]')
    t.equal(await page.locator(`[data-testid=approve-${id}]`).count(), 0, 'no action button')
    const r = await page.evaluate(async (app) => {
      const s = await (await fetch('/local/v1/session')).json() as { csrf: string }
      const res = await fetch(`/local/v1/applications/${app}/approve`, { method: 'POST', headers: { 'x-csrf-token': s.csrf, 'content-type': 'application/json' }, body: '{}' })
      return { status: res.status, body: await res.json() as { code: string } }
    }, id)
    t.equal(r.status, 403)
    t.equal(r.body.code, 'VN_ERR_LOCAL_FORBIDDEN')
    t.equal((await local(f, TAX, 'GET', `/local/v1/applications/${id}`)).json.state, 'filed', 'still filed')
    await page.click('[data-testid=signout]')
    await page.waitForSelector('input[name=token]')
  })

  t.test('the operator sees the pending application and approves it from the page', async (t) => {
    await signIn(page, tax.localUrl, f.fed.nodes[TAX]!.appToken)
    await page.click('[data-testid=nav-governance]')
    await page.waitForSelector(`[data-testid=application-${id}]`)
    const row = (await page.locator(`[data-testid=application-${id}]`).textContent()) ?? ''
    t.match(row, PSB, 'the consumer')
    t.match(row, 'tax.compliance', 'the service')
    t.match(row, /\d working days left/, 'the deadlines in working days')
    t.equal(await text(page, `state-${id}`), 'filed')
    t.equal(await page.locator(`[data-testid=applications-in] [data-testid=application-${id}]`).count(), 1, 'in the incoming queue')
    const body = await page.content()
    t.notOk(body.includes('Zhang') || body.includes('0591'), 'the sealed contact is not on the page')

    await page.click(`[data-testid=approve-${id}]`)
    await page.click('[data-testid=action-confirm]')
    await page.waitForSelector('[data-testid=action-result]')
    t.match(await text(page, 'action-result'), new RegExp(`approved .*apl-${id}.*delivered`))
    await waitText(page, `state-${id}`, 'approved')
    t.equal(await page.locator(`[data-testid=approve-${id}]`).count(), 0, 'no action left')

    // in force at once: listed by the node, and an exchange under it succeeds
    const agreements = (await local(f, TAX, 'GET', '/local/v1/agreements')).json.agreements as { id: string }[]
    t.ok(agreements.some((a) => a.id === `apl-${id}`), 'the agreement is in force')
    const used = await f.verify(PSB, question(subject))
    t.equal(used.status, 200, 'an exchange under it succeeds')
    t.equal(used.json.agreement, `apl-${id}`)
    t.equal((await local(f, PSB, 'GET', `/local/v1/applications/${id}`)).json.state, 'approved', 'the consumer has the decision')
  })

  t.test('a dispute corrected from the page', async (t) => {
    const x = await f.verify(PSB, question(subject))
    t.equal(x.status, 200)
    const d = await local(f, PSB, 'POST', '/local/v1/disputes', { provider: TAX, xid: x.json.xid, index: x.json.providerLogIndex, reason: 'outdated', note: NOTE })
    t.equal(d.status, 201, JSON.stringify(d.json))
    const did = d.json.id as string
    await page.click('[data-testid=governance-refresh]')
    await page.waitForSelector(`[data-testid=dispute-${did}]`)
    t.match((await page.locator(`[data-testid=dispute-${did}]`).textContent()) ?? '', x.json.xid as string, 'the disputed exchange')
    t.notOk((await page.content()).includes('receipt'), 'the sealed note is not on the page')
    await page.click(`[data-testid=correct-${did}]`)
    await page.fill('[data-testid=action-reason]', 'record updated')
    await page.click('[data-testid=action-confirm]')
    await page.waitForSelector('[data-testid=action-result]')
    await waitText(page, `state-${did}`, 'corrected')
    t.equal((await local(f, PSB, 'GET', `/local/v1/disputes/${did}`)).json.state, 'corrected', 'the consumer has the resolution')
  })

  t.test('the consumer sees its application as outgoing; a refusal needs its reason', async (t) => {
    const p2 = await ctx.newPage()
    await signIn(p2, f.nodes[PSB]!.localUrl, f.fed.nodes[PSB]!.appToken)
    await p2.click('[data-testid=nav-governance]')
    await p2.waitForSelector(`[data-testid=applications-out] [data-testid=application-${id}]`)
    t.equal(await text(p2, `state-${id}`), 'approved')
    t.equal(await p2.locator(`[data-testid=approve-${id}]`).count(), 0, 'no action on an outgoing application')
    await p2.close()

    const a2 = (await local(f, PSB, 'POST', '/local/v1/applications', {
      provider: TAX, services: ['income.band'], purposes: ['loan-screening'], basis: 'Commercial Bank Law art. 35',
      dailyQuota: 5, validUntil: new Date(Date.now() + 30 * 86_400_000).toISOString(), contact: CONTACT,
    })).json.id as string
    await page.click('[data-testid=governance-refresh]')
    await page.click(`[data-testid=refuse-${a2}]`)
    t.equal(await page.locator('[data-testid=action-reason]').getAttribute('required'), '', 'the reason is required')
    await page.fill('[data-testid=action-reason]', 'income data is not shared for this purpose')
    await page.click('[data-testid=action-confirm]')
    await waitText(page, `state-${a2}`, 'refused')
    t.pass('refused')
  })

  t.test('Chinese', async (t) => {
    await page.click('[data-testid=lang]')
    await page.waitForSelector(`[data-testid=application-${id}]`)
    t.equal(await text(page, `state-${id}`), '已批准')
    t.equal(await text(page, 'nav-governance'), '申请与异议')
    await page.click('[data-testid=lang]')
  })
})
