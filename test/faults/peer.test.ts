/**
 * Faults: a peer that answers wrongly (docs/OPERATIONS.md "A peer that answers wrongly").
 *
 * Real parts only: the consumer node `fj-tax` asks `fj-psb` over loopback HTTP. The manifest's
 * endpoint of `fj-psb` is a node:http proxy in front of the real `fj-psb` node (started on another
 * port); each fault makes the proxy alter the provider's answer, or stand in for it. The consumer's
 * application sees the local API's answer; the consumer's log, its sealed evidence, its pino output
 * and finally `audit verify` / `audit cross-check` over real exports are checked.
 *
 * Each top-level subtest is named "fault: ..." (the fault drill prints one line per subtest).
 */
import t, { type Test } from 'tap'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { Writable } from 'node:stream'
import { readFile, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { request } from 'undici'
import { pino } from 'pino'
import { auditEditedExport, federationFixture } from '../helper.js'
import { startNode, type RunningNode } from '../../src/http/server.js'
import { freePort } from '../../src/demo/federation.js'
import { parseLeaf } from '../../src/log/node-log.js'
import type { LogRecord, ResponseInRecord } from '../../src/log/records.js'
import { receivedDigest } from '../../src/log/evidence.js'
import { exportLog } from '../../src/node/export.js'
import { auditExport } from '../../src/audit/verify.js'
import { crossCheck } from '../../src/audit/cross-check.js'
import { verifyCommand } from '../../src/cli/commands/verify.js'

const CONSUMER = 'fj-tax'
const PROVIDER = 'fj-psb'
/** A resident ID number shape: what a forged answer might carry. It must reach no log, detail or export in the clear. */
const MARKER = '35010219900101123X'

interface Answer { status: number; contentType: string; body: Buffer }
/** How the proxy answers POST /v1/exchange: `upstream` forwards to the real provider. */
type Exchange = (upstream: () => Promise<Answer>) => Promise<Answer>
const passThrough: Exchange = (upstream) => upstream()

// The consumer node's own pino output, to show nothing of a refused answer reaches it.
const pinoLines: string[] = []
const logger = pino({ level: 'debug' }, new Writable({ write(chunk: Buffer, _enc, done) { pinoLines.push(chunk.toString('utf8')); done() } }))

const f = await federationFixture(t, { start: [CONSUMER], logger, sizes: { residents: 20, enterprises: 20, taxYears: [2025] } })
const psb = f.fed.nodes[PROVIDER]!
// The real provider listens elsewhere; the manifest's endpoint (its publicPort) is the proxy's.
const realPort = await freePort()
const real: RunningNode = await startNode(psb.configPath, { env: { VERINODE_LISTEN_PORT: String(realPort), VERINODE_LOCAL_PORT: String(await freePort()) }, logger: pino({ level: 'silent' }), checkpointEveryMs: 0, witnessEveryMs: 0 })
t.teardown(() => real.close())

let exchange: Exchange = passThrough
let exchangesSeen = 0
const forward = async (req: IncomingMessage, body: Buffer): Promise<Answer> => {
  const up = await request(`${real.publicUrl}${req.url ?? '/'}`, {
    method: req.method === 'POST' ? 'POST' : 'GET',
    headers: { accept: 'application/json', ...(req.method === 'POST' ? { 'content-type': String(req.headers['content-type'] ?? 'application/json') } : {}) },
    ...(req.method === 'POST' ? { body } : {}),
  })
  return { status: up.statusCode, contentType: String(up.headers['content-type'] ?? ''), body: Buffer.from(await up.body.arrayBuffer()) }
}
const proxy: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
  const chunks: Buffer[] = []
  req.on('data', (c: Buffer) => chunks.push(c))
  req.on('end', () => {
    const body = Buffer.concat(chunks)
    const isExchange = req.method === 'POST' && req.url === '/v1/exchange'
    if (isExchange) exchangesSeen++
    const answer = isExchange ? exchange(() => forward(req, body)) : forward(req, body)
    answer.then(
      (a) => res.writeHead(a.status, { 'content-type': a.contentType }).end(a.body),
      () => res.writeHead(500).end(),
    )
  })
})
await new Promise<void>((resolve, reject) => {
  proxy.once('error', reject)
  proxy.listen(psb.publicPort, '127.0.0.1', () => resolve())
})
t.teardown(() => new Promise<void>((r) => proxy.close(() => r())))

const sample = f.fed.dataset.samples.identity.matches[0]!
const ask = () => f.verify(CONSUMER, {
  provider: PROVIDER, service: 'identity.match', purpose: 'taxpayer-registration',
  basis: 'Tax Collection Administration Law art. 15', subjects: [{ id: sample.id, name: sample.name }],
})
const consumerRecords = async (): Promise<LogRecord[]> => {
  const log = f.nodes[CONSUMER]!.node.log
  return (await log.entries(0, await log.size())).map(parseLeaf)
}
const lastResponseIn = async (): Promise<ResponseInRecord> => (await consumerRecords()).filter((r): r is ResponseInRecord => r.t === 'response-in').at(-1)!
/** An answer's JSON body with its `jws` rewritten. */
const withJws = (a: Answer, jws: (old: string) => string): Answer => {
  const j = JSON.parse(a.body.toString('utf8')) as { jws: string }
  return { ...a, body: Buffer.from(JSON.stringify({ ...j, jws: jws(j.jws) })) }
}

/** What the proxy sent for each refused exchange, by xid, to compare with what the export carries. */
const sentBytes = new Map<string, Buffer>()
/** Runs one refused exchange: the application's 502, the refused response-in and what it names. */
async function refusedExchange(t: Test, fault: Exchange, reason: RegExp, code: string): Promise<void> {
  let sent: Buffer | undefined
  exchange = async (upstream) => {
    const a = await fault(upstream)
    sent = a.body
    return a
  }
  const before = (await consumerRecords()).length
  const r = await ask()
  exchange = passThrough
  t.equal(r.status, 502, 'the application gets a 502, not a 4xx about its own request')
  t.equal(r.json.code, 'VN_ERR_PEER_ANSWER_REFUSED')
  t.match(r.json.detail, reason, 'the detail says why')
  t.match(r.json.detail, new RegExp(`\\(${code}\\)$`))
  t.notMatch(JSON.stringify(r.json), MARKER, 'nothing of the answer in the problem')
  const recs = (await consumerRecords()).slice(before)
  t.same(recs.map((x) => x.t), ['request-out', 'response-in'], 'request-out, then the refused answer as response-in')
  const respIn = recs[1] as ResponseInRecord
  t.match(respIn, { status: 'refused', code, iss: PROVIDER, xid: (recs[0] as { xid: string }).xid })
  t.equal(respIn.peerIndex, undefined)
  t.ok(sent !== undefined)
  t.equal(respIn.respDigest, receivedDigest(sent!), 'the digest is of the very bytes the proxy sent')
  t.notMatch(JSON.stringify(recs), MARKER, 'nothing of the answer in the log records')
  sentBytes.set(respIn.xid, sent!)
}

t.test('fault: provider answers normally (the proxy is transparent)', async (t) => {
  const r = await ask()
  t.equal(r.status, 200, JSON.stringify(r.json))
  t.match(r.json, { status: 'ok', results: [{ found: true, match: true }] })
  t.match(await lastResponseIn(), { status: 'ok' })
})

t.test('fault: provider answers with a forged signature', async (t) => {
  await refusedExchange(t, async (upstream) => withJws(await upstream(), (jws) => {
    const [h, p, s] = jws.split('.') as [string, string, string]
    const sig = Buffer.from(s, 'base64url')
    sig[10] = (sig[10] as number) ^ 0x40
    return `${h}.${p}.${sig.toString('base64url')}`
  }), /signature does not verify/i, 'VN_ERR_JWS_SIGNATURE')
})

t.test('fault: provider answers with a malformed JWS', async (t) => {
  await refusedExchange(t, async (upstream) => withJws(await upstream(), () => `eyJhbGciOiJFZERTQSJ9.${Buffer.from(`{"id":"${MARKER}"}`).toString('base64url')}`), /well-formed compact JWS/i, 'VN_ERR_JWS_MALFORMED')
})

t.test('fault: provider answers with something that is not JSON', async (t) => {
  await refusedExchange(t, async (upstream) => {
    await upstream()
    return { status: 200, contentType: 'text/html', body: Buffer.from(`<html><body>${MARKER} 张三</body></html>`) }
  }, /not JSON/, 'VN_ERR_PEER_BAD_RESPONSE')
})

t.test('fault: provider answers with a validly signed response to another request', async (t) => {
  // A first exchange passes through; the proxy keeps the provider's genuine signed answer to it...
  let earlier: Answer | undefined
  exchange = async (upstream) => (earlier = await upstream())
  t.equal((await ask()).status, 200)
  t.ok(earlier !== undefined)
  // ...and answers the next request with it (the provider still answers that one, and logs it).
  await refusedExchange(t, async (upstream) => {
    await upstream()
    return earlier!
  }, /bound to another request \(xid, reqDigest differ/, 'VN_ERR_EXCH_RESPONSE_UNBOUND')
})

t.test("fault: provider's log is down (its unsigned 503)", async (t) => {
  // What a provider whose log failed closed answers: an unsigned problem, code only (docs/ERRORS.md).
  const seen = exchangesSeen
  exchange = async () => ({ status: 503, contentType: 'application/problem+json', body: Buffer.from(JSON.stringify({ type: 'urn:verinode:error:VN_ERR_LOG_UNAVAILABLE', title: 'Log cannot be written; node refuses to answer (fail closed)', status: 503, code: 'VN_ERR_LOG_UNAVAILABLE' })) })
  const r = await ask()
  t.equal(exchangesSeen - seen, 3, 'sent with the same bytes three times (two retries of a 503)')
  t.equal(r.status, 502, "not the 503 this node answers when its own log is down")
  t.match(r.json, { code: 'VN_ERR_PEER_ERROR', peer: { member: PROVIDER, status: 503, code: 'VN_ERR_LOG_UNAVAILABLE' } })
  t.match(r.json.detail, /fj-psb answered HTTP 503 VN_ERR_LOG_UNAVAILABLE/)
  t.match(await lastResponseIn(), { status: 'error', code: 'VN_ERR_LOG_UNAVAILABLE' }, 'logged with the peer\'s code')
  // The CLI, an application of the local API, prints the wrapped problem as it came.
  const stdout: string[] = []
  const io = { out: (l: string) => stdout.push(l), err: () => undefined, json: true, tty: false, cwd: process.cwd(), env: { VERINODE_NODE: f.nodes[CONSUMER]!.localUrl, VERINODE_TOKEN: f.fed.nodes[CONSUMER]!.appToken } }
  t.equal(await verifyCommand.run([PROVIDER, 'identity.match', '--purpose', 'taxpayer-registration', '--basis', 'Tax Collection Administration Law art. 15', '--subject', `id=${sample.id},name=${sample.name}`], io), 1)
  t.match(JSON.parse(stdout[0]!), { ok: false, command: 'verify', error: { code: 'VN_ERR_PEER_ERROR', status: 502, peer: { member: PROVIDER, status: 503, code: 'VN_ERR_LOG_UNAVAILABLE' } } })
  exchange = passThrough
  t.equal((await ask()).status, 200, 'the next exchange, answered, is fine')
})

t.test('fault: refused answers are sealed, exported with disclosures only, and judged by the auditor', async (t) => {
  t.notMatch(pinoLines.join(''), MARKER, "nothing of a refused answer in the consumer node's own log")
  t.match(pinoLines.join(''), /VN_ERR_PEER_ANSWER_REFUSED/, 'the refusals are in it, by code')
  const cfg = f.fed.nodes[CONSUMER]!.configPath
  const dataDir = join(dirname(cfg), 'var')
  const out = t.testdir({})
  // The provider's export (its node runs) and the consumer's, with disclosures (its node stopped).
  await exportLog(psb.configPath, join(out, 'provider'))
  await f.nodes[CONSUMER]!.close()
  for (const file of ['log.db', 'log.db-wal']) {
    const b = await readFile(join(dataDir, file)).catch(() => Buffer.alloc(0))
    t.equal(b.includes(MARKER), false, `${file}: the refused bytes are sealed at rest`)
  }
  await exportLog(cfg, join(out, 'plain'))
  const plain = await readFile(join(out, 'plain', 'evidence.jsonl'), 'utf8')
  t.notMatch(plain, MARKER, 'a plain export carries none of the refused bytes')
  const r = await exportLog(cfg, join(out, 'consumer'), { withDisclosures: { reason: 'fault drill: refused peer answers' } })
  t.equal(r.receivedCount, 4)
  const lines = (await readFile(join(out, 'consumer', 'received.jsonl'), 'utf8')).split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { xid: string; digest: string; bytes: string })
  t.same(new Map(lines.map((l) => [l.xid, Buffer.from(l.bytes, 'base64url')])), sentBytes, 'exported: exactly the bytes each refused answer was')

  const a = await auditExport(join(out, 'consumer'))
  t.ok(a.ok, JSON.stringify(a.findings.filter((x) => x.severity === 'error')))
  const codes = a.findings.map((x) => x.code)
  t.equal(codes.filter((c) => c === 'AUDIT_PEER_ANSWER_REFUSED').length, 4, 'each refused answer reported (warning)')
  t.same(codes.filter((c) => /SIGNATURE|EVIDENCE|BINDING|UNBOUND/.test(c)), [], "a peer's forgery is not reported as this log's")
  t.notMatch(JSON.stringify(a), MARKER)
  t.ok((await auditExport(join(out, 'plain'))).ok, 'the plain export passes too')

  // A refused response-in must say so completely: no peerIndex, a code and a digest.
  const edited = await auditEditedExport(f.fed, CONSUMER, join(out, 'plain'), join(out, 'edited'), (recs) => recs.map((r) => (r.t === 'response-in' && r.status === 'refused' ? { ...r, peerIndex: 3 } : r)))
  t.equal(edited.findings.filter((x) => x.code === 'AUDIT_LEAF_INVALID').length, 4, 'a refused response-in with a peerIndex is not a valid leaf')

  // Tampered bytes in received.jsonl are caught by the digest check.
  const tampered = join(out, 'tampered')
  await exportLog(cfg, tampered, { withDisclosures: { reason: 'fault drill: tampering check' } })
  const text = await readFile(join(tampered, 'received.jsonl'), 'utf8')
  const first = JSON.parse(text.split('\n')[0]!) as { xid: string; digest: string; bytes: string }
  await writeFile(join(tampered, 'received.jsonl'), text.replace(first.bytes, Buffer.from('something else').toString('base64url')))
  const bad = await auditExport(tampered)
  t.match(bad.findings.find((x) => x.code === 'AUDIT_EVIDENCE_DIGEST_MISMATCH'), { severity: 'error', xid: first.xid })

  // The disclosure-export record counts the refused answers' bytes too: a line dropped is caught.
  const logged = (await readFile(join(tampered, 'entries.jsonl'), 'utf8')).split('\n').filter((l) => l.includes('"disclosure-export"')).map((l) => JSON.parse(l) as { received?: number })
  t.equal(logged.at(-1)?.received, 4, 'the disclosure-export record logs how many refused answers left')
  const dropped = join(out, 'dropped')
  await exportLog(cfg, dropped, { withDisclosures: { reason: 'fault drill: a line dropped' } })
  const all = (await readFile(join(dropped, 'received.jsonl'), 'utf8')).split('\n').filter((l) => l !== '')
  await writeFile(join(dropped, 'received.jsonl'), all.slice(1).map((l) => `${l}\n`).join(''))
  const short = await auditExport(dropped)
  t.match(short.findings.find((x) => x.code === 'AUDIT_DISCLOSURES_UNLOGGED'), { severity: 'error', message: /3 refused answers' bytes, the disclosure-export record at leaf \d+ logged 4/ })

  const x = await crossCheck(join(out, 'consumer'), join(out, 'provider'))
  t.ok(x.ok, JSON.stringify(x.findings.filter((y) => y.severity === 'error')))
  const answered = x.findings.filter((y) => y.code === 'AUDIT_CROSS_RESPONSE_MISSING')
  t.equal(answered.length, 4, 'each refused answer: the provider signed an answer the consumer did not receive intact')
  t.ok(answered.every((y) => y.severity === 'warning' && /refused what it received/.test(y.message)))
})
