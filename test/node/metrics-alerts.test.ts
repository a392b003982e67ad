/**
 * Monitoring as shipped: every metric that deploy/prometheus/alerts.yaml and the Grafana dashboard
 * name exists on running nodes (started, asked, scraped); consumer-side exchanges are counted;
 * /metrics is served on the local listener or on `metrics.port`, never on the public listener.
 */
import t from 'tap'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { request } from 'undici'
import { parse } from 'yaml'
import { federationFixture } from '../helper.js'

const ROOT = join(import.meta.dirname, '..', '..')

/**
 * Named by the rules but provided elsewhere: `up` by Prometheus itself. The TLS certificate gauge
 * exists only on a node with `tls`, so a TLS node is scraped as well.
 */
const PROVIDED_ELSEWHERE = new Set(['up'])

/** Metric names in a PromQL expression (verinode_*, process_*, nodejs_*, and `up`). */
function metricNames(expr: string): string[] {
  const names = expr.match(/\b(?:verinode|process|nodejs)_[a-z0-9_]+\b|\bup\b(?=\{)/g) ?? []
  return [...new Set(names)]
}

/**
 * Sample names of a Prometheus text exposition, and those of every declared metric: a labelled
 * histogram has no sample before its first observation (prom-client's GC histogram until the first
 * GC, which on Node 24 may come after the scrape), yet its series are exported.
 */
function sampleNames(text: string): Set<string> {
  const out = new Set<string>()
  for (const l of text.split('\n')) {
    const declared = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (\w+)$/.exec(l)
    if (declared !== null) {
      const [, name, type] = declared as unknown as [string, string, string]
      if (type === 'histogram' || type === 'summary') for (const s of ['_sum', '_count', ...(type === 'histogram' ? ['_bucket'] : [])]) out.add(name + s)
      else out.add(name)
    }
    if (l === '' || l.startsWith('#')) continue
    out.add(/^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(l)![0])
  }
  return out
}

/** The value of the sample `name` whose labels include `labels` (order-insensitive), or undefined. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const l of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(l)
    if (m === null || m[1] !== name) continue
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-zA-Z_]+)="([^"]*)"/g)].map((x) => [x[1], x[2]]))
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3])
  }
  return undefined
}

t.test('the metrics named by alerts.yaml and the dashboard exist on running nodes', async (t) => {
  const f = await federationFixture(t, {
    start: ['fj-psb', 'fj-tax'],
    processMetrics: true,
    // fj-tax serves its metrics on a listener of its own; fj-psb on its local listener
    beforeStart: async (id, dir) => {
      if (id !== 'fj-tax') return
      const file = join(dir, 'verinode.json')
      const cfg = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>
      await writeFile(file, JSON.stringify({ ...cfg, metrics: { port: 0 } }))
    },
  })
  const psb = f.nodes['fj-psb']!
  const tax = f.nodes['fj-tax']!
  const p = f.fed.dataset.samples.identity.matches[0]!
  const r = await f.verify('fj-tax', { provider: 'fj-psb', service: 'identity.match', purpose: 'taxpayer-registration', basis: 'Tax Collection Administration Law art. 15', subjects: [{ id: p.id, name: p.name }] })
  t.equal(r.status, 200, 'one exchange')

  t.equal(psb.metricsUrl, `${psb.localUrl}/metrics`, 'by default on the local listener')
  t.not(tax.metricsUrl, `${tax.localUrl}/metrics`, 'metrics.port: a listener of its own')
  for (const n of [psb, tax]) t.equal((await request(`${n.publicUrl}/metrics`)).statusCode, 404, 'never on the public listener')
  t.equal((await request(`${tax.localUrl}/metrics`)).statusCode, 404, 'with metrics.port, not on the local listener either')
  // a refused request, so the rejection counter has a sample
  t.equal((await request(`${psb.publicUrl}/v1/exchange`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{' })).statusCode, 400)

  const texts: Record<string, string> = {}
  for (const [id, n] of Object.entries(f.nodes)) {
    const res = await request(n.metricsUrl)
    t.equal(res.statusCode, 200, `${id}: scraped without a token`)
    texts[id] = await res.body.text()
  }
  const psbText = texts['fj-psb']!
  const taxText = texts['fj-tax']!
  const exchange = { service: 'identity.match', mode: 'plain' }
  t.equal(sample(taxText, 'verinode_exchanges_total', { ...exchange, role: 'consumer', decision: 'permit', member: 'fj-tax' }), 1, 'the consumer side is counted')
  t.equal(sample(taxText, 'verinode_exchange_duration_seconds_count', { ...exchange, role: 'consumer', member: 'fj-tax' }), 1, 'and timed')
  t.equal(sample(psbText, 'verinode_exchanges_total', { ...exchange, role: 'provider', decision: 'permit', member: 'fj-psb' }), 1, 'and the provider side')
  t.equal(sample(taxText, 'verinode_peer_up', { peer: 'fj-psb', member: 'fj-tax' }), 1, 'the peer answered')
  const quota = sample(psbText, 'verinode_quota_used_ratio', { consumer: 'fj-tax', member: 'fj-psb' })
  t.ok(quota !== undefined && quota > 0 && quota < 1, 'quota use per agreement')
  t.equal(sample(psbText, 'verinode_ready', { member: 'fj-psb' }), 1)
  const exp = sample(psbText, 'verinode_manifest_expiry_timestamp_seconds', { member: 'fj-psb' })
  t.ok(exp !== undefined && exp > Date.now() / 1000, 'manifest expiry in the future')
  t.ok(sample(psbText, 'process_resident_memory_bytes', { member: 'fj-psb' }), 'prom-client default metrics')
  t.notMatch(Object.values(texts).join('\n'), p.id, 'no ID number in the metrics')
  t.notMatch(Object.values(texts).join('\n'), p.name, 'no name in the metrics')

  const present = new Set<string>([...sampleNames(texts['fj-psb']!), ...sampleNames(texts['fj-tax']!)])
  const tlsFed = await federationFixture(t, { start: ['fj-psb'], tls: true })
  const tlsText = await (await request(tlsFed.nodes['fj-psb']!.metricsUrl)).body.text()
  const notAfter = sample(tlsText, 'verinode_tls_certificate_expiry_seconds', { member: 'fj-psb' })
  t.ok(notAfter !== undefined && notAfter > Date.now() / 1000 + 30 * 86_400, 'a TLS node exports its certificate notAfter (seconds since the epoch)')
  for (const n of sampleNames(tlsText)) present.add(n)
  const alerts = parse(await readFile(join(ROOT, 'deploy/prometheus/alerts.yaml'), 'utf8')) as { groups: { rules: { alert: string; expr: string }[] }[] }
  const dashboard = JSON.parse(await readFile(join(ROOT, 'deploy/grafana/verinode-dashboard.json'), 'utf8')) as { panels: { title: string; targets: { expr: string }[] }[] }
  const named = new Map<string, string>()
  for (const g of alerts.groups) for (const rule of g.rules) for (const m of metricNames(rule.expr)) named.set(m, `alert ${rule.alert}`)
  for (const panel of dashboard.panels) for (const target of panel.targets) for (const m of metricNames(target.expr)) named.set(m, `panel ${panel.title}`)
  t.ok(named.size >= 15, `${named.size} metrics named`)
  const alertNames = alerts.groups.flatMap((g) => g.rules.map((r) => r.alert))
  for (const want of ['VerinodePeerForkEvidence', 'VerinodeManifestExpiringSoon', 'VerinodeLogUnavailable', 'VerinodeNotReady', 'VerinodeQuotaNearlyExhausted', 'VerinodePeerUnreachable', 'VerinodeTlsCertificateExpiring']) {
    t.ok(alertNames.includes(want), `alert ${want}`)
  }
  for (const [m, where] of named) {
    if (PROVIDED_ELSEWHERE.has(m)) {
      t.comment(`${m} (${where}): provided elsewhere, not checked here`)
      continue
    }
    t.ok(present.has(m), `${m} (${where}) is exported`)
  }
})

t.test('an unreachable peer reads as down', async (t) => {
  const f = await federationFixture(t, { start: ['fj-tax'] })
  const tax = f.nodes['fj-tax']!
  const p = f.fed.dataset.samples.identity.matches[0]!
  const r = await f.verify('fj-tax', { provider: 'fj-psb', service: 'identity.match', purpose: 'taxpayer-registration', basis: 'Tax Collection Administration Law art. 15', subjects: [{ id: p.id, name: p.name }] })
  t.equal(r.status, 502, 'fj-psb is not running')
  const text = await (await request(tax.metricsUrl)).body.text()
  t.equal(sample(text, 'verinode_peer_up', { peer: 'fj-psb', member: 'fj-tax' }), 0)
  t.equal(sample(text, 'verinode_exchanges_total', { role: 'consumer', service: 'identity.match', decision: 'VN_ERR_PEER_UNREACHABLE' }), 1, 'a failed exchange is counted with its code')
})
