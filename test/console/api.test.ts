/**
 * The console's local API over real HTTP on a real two-node federation: status views against the
 * node's own log, sign-in with a token for an httpOnly SameSite=Strict cookie, CSRF on every
 * state-changing request of a session, the auditor role refused every action but audits, and an
 * audit of a real export (and of a tampered copy) through the node.
 */
import t from 'tap'
import { Client, request } from 'undici'
import { cp, readFile, readdir, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { federationFixture } from '../helper.js'
import { exportLog } from '../../src/node/export.js'
import { parseLeaf } from '../../src/log/node-log.js'
import type { RunningNode } from '../../src/http/server.js'
import { MAX_UPLOAD_BYTES, extractTar } from '../../src/http/audit-upload.js'
import { execFileSync } from 'node:child_process'
import { Readable } from 'node:stream'
import { connect } from 'node:net'

const TAX = 'fj-tax'
const PSB = 'fj-psb'

async function call(url: string, o: { method?: string; token?: string; cookie?: string; csrf?: string; origin?: string; body?: unknown } = {}) {
  const headers: Record<string, string> = {}
  if (o.token !== undefined) headers.authorization = `Bearer ${o.token}`
  if (o.cookie !== undefined) headers.cookie = o.cookie
  if (o.csrf !== undefined) headers['x-csrf-token'] = o.csrf
  if (o.origin !== undefined) headers.origin = o.origin
  if (o.body !== undefined) headers['content-type'] = 'application/json'
  const res = await request(url, { method: (o.method ?? 'GET') as 'GET', headers, ...(o.body === undefined ? {} : { body: JSON.stringify(o.body) }) })
  const text = await res.body.text()
  return { status: res.statusCode, headers: res.headers, json: text === '' ? undefined : JSON.parse(text) as Record<string, unknown> }
}

/** A ustar archive of `entries` (type '0' a file, '5' a folder, '2' a symlink), as the console builds one. */
function tarOf(entries: { path: string; data?: Buffer; type?: string }[], end = true): Buffer {
  const parts: Buffer[] = []
  for (const e of entries) {
    const h = Buffer.alloc(512)
    const data = e.data ?? Buffer.alloc(0)
    h.write(e.path, 0, 100)
    h.write('0000644\0', 100)
    h.write('0000000\0', 108)
    h.write('0000000\0', 116)
    h.write(`${data.length.toString(8).padStart(11, '0')}\0`, 124)
    h.write('00000000000\0', 136)
    h.write('        ', 148)
    h.write(e.type ?? '0', 156)
    h.write('ustar\0', 257)
    h.write('00', 263)
    let sum = 0
    for (const b of h) sum += b
    h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148)
    parts.push(h, data, Buffer.alloc((512 - (data.length % 512)) % 512))
  }
  if (end) parts.push(Buffer.alloc(1024))
  return Buffer.concat(parts)
}

/** An export folder's files as tar entries, paths inside it. */
async function entriesOf(dir: string): Promise<{ path: string; data: Buffer }[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true })
  return Promise.all(entries.filter((e) => e.isFile()).map(async (e) => {
    const full = join(e.parentPath, e.name)
    return { path: relative(dir, full).split('\\').join('/'), data: await readFile(full) }
  }))
}

async function upload(url: string, body: Buffer, o: { cookie: string; csrf?: string; type?: string }) {
  const headers: Record<string, string> = { cookie: o.cookie, 'content-type': o.type ?? 'application/x-tar' }
  if (o.csrf !== undefined) headers['x-csrf-token'] = o.csrf
  const res = await request(url, { method: 'POST', headers, body })
  return { status: res.statusCode, json: await res.body.json() as Record<string, unknown> }
}

const uploadDirs = async (): Promise<string[]> => (await readdir(tmpdir())).filter((n) => n.startsWith('vn-audit-upload-'))

/** Exchanges in the log of `n` as the console counts them (consumer: response-in after request-out). */
async function countFromLog(n: RunningNode): Promise<Record<string, number>> {
  const size = await n.node.log.size()
  const leaves = await n.node.log.entries(0, size)
  const out: Record<string, number> = {}
  const asked = new Map<string, string>()
  for (const l of leaves) {
    const r = parseLeaf(l)
    if (r.t === 'request-out') asked.set(`${r.aud} ${r.xid}`, r.svc)
    if (r.t === 'response-in' && asked.has(`${r.iss} ${r.xid}`)) {
      const k = `${asked.get(`${r.iss} ${r.xid}`)} ${r.status}`
      out[k] = (out[k] ?? 0) + 1
    }
  }
  return out
}

t.test('console API on a real federation', async (t) => {
  const f = await federationFixture(t, { start: [PSB, TAX] })
  const tax = f.nodes[TAX]!
  const base = `${tax.localUrl}/local/v1`
  const token = f.fed.nodes[TAX]!.appToken
  const auditorToken = f.fed.nodes[TAX]!.auditorToken!
  const people = f.fed.dataset.samples.identity.matches.slice(0, 3)
  for (let i = 0; i < 4; i++) {
    const r = await f.verify(TAX, { provider: PSB, service: 'identity.match', purpose: 'taxpayer-registration', basis: 'Tax Collection Administration Law art. 15', subjects: people.map((p) => ({ id: p.id, name: p.name })) })
    t.equal(r.status, 200)
  }
  // one denied: a purpose no agreement names
  const denied = await f.verify(TAX, { provider: PSB, service: 'identity.match', purpose: 'marketing', basis: 'none', subjects: [{ id: people[0]!.id, name: people[0]!.name }] })
  t.not(denied.status, 200)

  t.test('status views with a bearer token', async (t) => {
    const ov = await call(`${base}/status/overview`, { token })
    t.equal(ov.status, 200)
    const o = ov.json as { member: string; ready: { ok: boolean }; manifest: { seq: number }; log: { size: number }; traffic: { exchanges: { consumer: number } }; keys: unknown[] }
    t.equal(o.member, TAX)
    t.equal(o.ready.ok, true)
    t.ok(o.manifest.seq >= 1)
    t.equal(o.log.size, await tax.node.log.size())
    t.ok(o.keys.length >= 2, 'message and log keys listed')
    const expected = await countFromLog(tax)
    const total = Object.values(expected).reduce((a, b) => a + b, 0)
    t.equal(o.traffic.exchanges.consumer, total, 'consumer exchanges = response-in records after a request-out')
    const tr = await call(`${base}/status/traffic?step=minute&by=decision&points=5&role=consumer`, { token })
    t.equal(tr.status, 200)
    const series = (tr.json as { series: { name: string; counts: number[] }[]; total: number })
    t.equal(series.total, total)
    const byDecision = Object.fromEntries(series.series.map((s) => [s.name, s.counts.reduce((a, b) => a + b, 0)]))
    t.same(byDecision, { denied: expected['identity.match denied'], ok: expected['identity.match ok'] })
    t.equal((await call(`${base}/status/traffic?step=week`, { token })).json?.code, 'VN_ERR_REQ_INVALID')
    const ag = await call(`${base}/status/agreements`, { token })
    t.equal(ag.status, 200)
    const peers = await call(`${base}/status/peers`, { token })
    t.ok((peers.json as { members: { id: string }[] }).members.some((m) => m.id === PSB))
    // the provider counts the same exchanges from its side
    const po = await call(`${f.nodes[PSB]!.localUrl}/local/v1/status/overview`, { token: f.fed.nodes[PSB]!.appToken })
    t.equal((po.json as { traffic: { exchanges: { provider: number } } }).traffic.exchanges.provider, total)
    const text = JSON.stringify([ov.json, tr.json, ag.json, peers.json, po.json])
    for (const p of people) t.notOk(text.includes(p.id) || text.includes(p.name), 'no personal data in the status views')
  })

  t.test('sign-in, cookie and CSRF', async (t) => {
    t.equal((await call(`${base}/status/overview`)).status, 401, 'no token, no cookie')
    const bad = await call(`${base}/session`, { method: 'POST', body: { token: 'vnt_wrong' } })
    t.equal(bad.status, 401)
    t.equal(bad.json?.code, 'VN_ERR_LOCAL_UNAUTHORIZED')
    const cross = await call(`${base}/session`, { method: 'POST', body: { token }, origin: 'http://evil.example' })
    t.equal(cross.status, 403)
    t.equal(cross.json?.code, 'VN_ERR_LOCAL_CSRF')
    const ok = await call(`${base}/session`, { method: 'POST', body: { token } })
    t.equal(ok.status, 200)
    const setCookie = String(ok.headers['set-cookie'])
    t.match(setCookie, /^vn_session_\d+=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict/)
    t.notOk(setCookie.includes(token), 'the cookie is not the token')
    const cookie = setCookie.split(';')[0]!
    const csrf = ok.json?.csrf as string
    t.equal(ok.json?.role, 'operator')
    t.equal((await call(`${base}/status/overview`, { cookie })).status, 200, 'a session reads')
    t.equal((await call(`${base}/session`, { cookie })).json?.csrf, csrf)
    const noCsrf = await call(`${base}/manifest/reload`, { method: 'POST', cookie })
    t.equal(noCsrf.status, 403)
    t.equal(noCsrf.json?.code, 'VN_ERR_LOCAL_CSRF')
    const wrongCsrf = await call(`${base}/manifest/reload`, { method: 'POST', cookie, csrf: 'x'.repeat(43) })
    t.equal(wrongCsrf.json?.code, 'VN_ERR_LOCAL_CSRF')
    const crossSite = await call(`${base}/manifest/reload`, { method: 'POST', cookie, csrf, origin: 'http://evil.example' })
    t.equal(crossSite.json?.code, 'VN_ERR_LOCAL_CSRF', 'the right CSRF token from another origin is still refused')
    const acted = await call(`${base}/manifest/reload`, { method: 'POST', cookie, csrf, origin: tax.localUrl })
    t.equal(acted.status, 200, 'the operator acts with the CSRF token')
    const out = await call(`${base}/session`, { method: 'DELETE', cookie, csrf })
    t.equal(out.status, 200)
    t.match(String(out.headers['set-cookie']), /Max-Age=0/)
    t.equal((await call(`${base}/status/overview`, { cookie })).status, 401, 'the session ended')
  })

  t.test('the auditor role reads and audits, never acts', async (t) => {
    const s = await call(`${base}/session`, { method: 'POST', body: { token: auditorToken } })
    t.equal(s.json?.role, 'auditor')
    const cookie = String(s.headers['set-cookie']).split(';')[0]!
    const csrf = s.json?.csrf as string
    t.equal((await call(`${base}/status/overview`, { cookie })).status, 200)
    const act = await call(`${base}/manifest/reload`, { method: 'POST', cookie, csrf })
    t.equal(act.status, 403)
    t.equal(act.json?.code, 'VN_ERR_LOCAL_FORBIDDEN')
    const verify = await call(`${base}/verify`, { method: 'POST', token: auditorToken, body: { provider: PSB, service: 'identity.match', purpose: 'x', basis: 'y', subjects: [{ id: '1' }] } })
    t.equal(verify.json?.code, 'VN_ERR_LOCAL_FORBIDDEN', 'nor with its bearer token')

    const dir = t.testdir({})
    const exp = join(dir, 'export')
    await exportLog(f.fed.nodes[TAX]!.configPath, exp)
    const good = await call(`${base}/audit/verify`, { method: 'POST', cookie, csrf, body: { dir: exp } })
    t.equal(good.status, 200)
    t.equal(good.json?.ok, true, 'the export audits clean')
    const bad = join(dir, 'tampered')
    await cp(exp, bad, { recursive: true })
    const lines = (await readFile(join(bad, 'entries.jsonl'), 'utf8')).split('\n')
    const i = lines.findIndex((l) => l.includes('"t":"request-out"'))
    lines[i] = lines[i]!.replace('"count":3', '"count":30')
    await writeFile(join(bad, 'entries.jsonl'), lines.join('\n'))
    const tampered = await call(`${base}/audit/verify`, { method: 'POST', cookie, csrf, body: { dir: bad } })
    t.equal(tampered.json?.ok, false)
    const codes = (tampered.json?.findings as { code: string }[]).map((x) => x.code)
    t.ok(codes.length > 0, `findings: ${codes.join(', ')}`)
    const missing = await call(`${base}/audit/verify`, { method: 'POST', cookie, csrf, body: { dir: join(dir, 'nothing') } })
    t.equal(missing.json?.code, 'VN_ERR_AUDIT_EXPORT_INVALID')
    const noDir = await call(`${base}/audit/verify`, { method: 'POST', cookie, csrf, body: {} })
    t.equal(noDir.json?.code, 'VN_ERR_REQ_INVALID')

    // the same checks on an uploaded export (a tar archive): the auditor may, nothing is left in the temp folder
    const before = await uploadDirs()
    const entries = await entriesOf(exp)
    const up = await upload(`${base}/audit/upload`, tarOf(entries), { cookie, csrf })
    t.equal(up.status, 200, JSON.stringify(up.json).slice(0, 300))
    t.equal(up.json.ok, true, 'the uploaded export audits clean')
    t.equal(up.json.leaves, good.json?.leaves, 'the same export, the same leaves')
    const upBad = await upload(`${base}/audit/upload`, tarOf(await entriesOf(bad)), { cookie, csrf })
    t.equal(upBad.json.ok, false)
    t.same((upBad.json.findings as { code: string }[]).map((x) => x.code), codes, 'the same findings as the folder on the machine')
    // GNU tar's own archives: of the folder's files, and of the folder itself
    const flat = await upload(`${base}/audit/upload`, execFileSync('tar', ['-C', exp, '-cf', '-', '.']), { cookie, csrf })
    t.equal(flat.json.ok, true, 'tar -C export -cf - .')
    const nested = await upload(`${base}/audit/upload`, execFileSync('tar', ['-C', dir, '-cf', '-', 'tampered']), { cookie, csrf })
    t.same((nested.json.findings as { code: string }[]).map((x) => x.code), codes, 'tar -cf - tampered/')
    t.same(await uploadDirs(), before, 'no temporary folder left behind')
    // malformed uploads: coded, nothing left behind either
    const malformed: [string, Buffer][] = [
      ['no export.json', tarOf(entries.filter((x) => x.path !== 'export.json'))],
      ['a path out of the folder', tarOf([...entries, { path: '../escape', data: Buffer.from('x') }])],
      ['an absolute path', tarOf([...entries, { path: '/etc/x', data: Buffer.from('x') }])],
      ['a path too deep', tarOf([...entries, { path: 'a/b/c/d', data: Buffer.from('x') }])],
      ['a symlink', tarOf([...entries, { path: 'link', type: '2' }])],
      ['a path given twice', tarOf([...entries, entries[0]!])],
      ['a file and a folder', tarOf([...entries, { path: 'export.json/x', data: Buffer.from('x') }])],
      ['cut off', tarOf(entries).subarray(0, 700)],
      ['no end blocks', tarOf(entries, false)],
      ['not a tar archive', Buffer.from(JSON.stringify({ files: [] }).padEnd(2048, ' '))],
      ['empty', tarOf([])],
    ]
    for (const [why, body] of malformed) {
      const r = await upload(`${base}/audit/upload`, body, { cookie, csrf })
      t.equal(r.status, 400, why)
      t.equal(r.json.code, 'VN_ERR_AUDIT_UPLOAD_INVALID', why)
    }
    t.equal((await upload(`${base}/audit/upload`, tarOf(entries), { cookie, csrf, type: 'application/json' })).status, 400, 'JSON is not an archive')
    t.equal((await upload(`${base}/audit/upload`, tarOf(entries), { cookie, csrf, type: 'application/zip' })).json.code, 'VN_ERR_REQ_UNSUPPORTED_MEDIA')
    // too large: a declared length over the limit is refused before the body is read. On a client
    // of its own, closed after: the server otherwise keeps waiting for the declared body on that
    // connection, and the node's close() at the end of the file waited over a minute for it.
    const bigClient = new Client(new URL(base).origin)
    const big = await request(`${base}/audit/upload`, { dispatcher: bigClient, method: 'POST', headers: { cookie, 'x-csrf-token': csrf, 'content-type': 'application/x-tar', 'content-length': String(MAX_UPLOAD_BYTES + 1) }, body: 'x' }).catch((e: unknown) => (e instanceof Error ? e : new Error(String(e))))
    if (!(big instanceof Error)) {
      t.equal(big.statusCode, 413)
      t.equal(((await big.body.json()) as { code: string }).code, 'VN_ERR_AUDIT_UPLOAD_TOO_LARGE')
    } else {
      t.pass(`the client refused to send a body shorter than its declared length (${big.message})`)
    }
    await bigClient.destroy()
    t.same(await uploadDirs(), before, 'still no temporary folder left behind')
    // a client that goes away in the middle of its upload: the half-written folder goes too
    const partial = tarOf(entries)
    const u = new URL(`${base}/audit/upload`)
    await new Promise<void>((resolve) => {
      const sock = connect(Number(u.port), u.hostname, () => {
        sock.write(`POST ${u.pathname} HTTP/1.1\r\nhost: ${u.host}\r\ncookie: ${cookie}\r\nx-csrf-token: ${csrf}\r\ncontent-type: application/x-tar\r\ncontent-length: ${partial.length}\r\n\r\n`)
        sock.write(partial.subarray(0, 3000), () => setTimeout(() => { sock.destroy(); resolve() }, 300))
      })
      sock.on('error', () => resolve())
    })
    for (let i = 0; i < 50 && (await uploadDirs()).length > before.length; i++) await new Promise((r) => setTimeout(r, 100))
    t.same(await uploadDirs(), before, 'no temporary folder left after an upload cut off by its client')
    t.equal((await upload(`${base}/audit/upload`, tarOf(entries), { cookie })).json.code, 'VN_ERR_LOCAL_CSRF', 'the upload needs the CSRF token too')
  })

  t.test('the upload is bounded while it streams: bytes and files', async (t) => {
    const dir = t.testdir({ a: {}, b: {}, c: {} })
    const files = Array.from({ length: 5 }, (_, i) => ({ path: `f${i}`, data: Buffer.alloc(600, 1) }))
    await t.rejects(extractTar(Readable.from([tarOf(files)]), join(dir, 'a'), { bytes: 2048, files: 100 }), { code: 'VN_ERR_AUDIT_UPLOAD_TOO_LARGE' })
    await t.rejects(extractTar(Readable.from([tarOf(files)]), join(dir, 'b'), { bytes: 1 << 20, files: 3 }), { code: 'VN_ERR_AUDIT_UPLOAD_TOO_LARGE' })
    const c = join(dir, 'c')
    // one byte at a time: headers and data split across chunks
    const one = tarOf(files)
    t.equal(await extractTar(Readable.from(Array.from({ length: one.length }, (_, i) => one.subarray(i, i + 1))), c), 5)
    t.same(await readFile(join(c, 'f4')), Buffer.alloc(600, 1))
  })

  t.test('the OpenAPI document lists the console endpoints', async (t) => {
    const doc = await call(`${base}/openapi.json`)
    const paths = Object.keys((doc.json as { paths: Record<string, unknown> }).paths)
    for (const p of ['/local/v1/status/overview', '/local/v1/status/traffic', '/local/v1/status/agreements', '/local/v1/status/peers', '/local/v1/audit/verify', '/local/v1/audit/upload', '/local/v1/applications', '/local/v1/applications/{id}/{action}', '/local/v1/disputes', '/local/v1/disputes/{id}/{action}', '/local/v1/session']) t.ok(paths.includes(p), p)
  })
})
