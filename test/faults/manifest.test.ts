/**
 * Faults of manifest revocation and expiry, reproduced for real: demo nodes on loopback, a NEW
 * manifest signed by the federation authority and written in place over a node's manifest file,
 * and a real reload (the local API, SIGHUP, or the housekeeping timer). docs/OPERATIONS.md
 * "Manifest revocation and expiry" describes the behaviour these tests hold the node to.
 */
import t from 'tap'
import { join } from 'node:path'
import { readdir, writeFile } from 'node:fs/promises'
import { request } from 'undici'
import { federationFixture, auditEditedExport, type Fixture } from '../helper.js'
import { AUTHORITY_FILES, archivedManifests, revokeKey, signAuthorityManifest } from '../../src/federation/authority.js'
import { manifestHash } from '../../src/federation/federation.js'
import { exportLog } from '../../src/node/export.js'
import { auditExport } from '../../src/audit/verify.js'

const PSB = 'fj-psb'
const TAX = 'fj-tax'
/** small synthetic databases: these tests are about manifests, not data */
const SIZES = { residents: 60, enterprises: 40, taxYears: [2025] }

/** fj-tax asks fj-psb one identity question through its local API. */
function asker(f: Fixture): () => Promise<{ status: number; json: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const m = f.fed.dataset.samples.identity.matches[0]!
  return () => f.verify(TAX, { provider: PSB, service: 'identity.match', purpose: 'taxpayer-registration', basis: 'Tax Collection Administration Law art. 15', subjects: [{ id: m.id, name: m.name }] })
}

/** Installs a manifest JWS on `member`'s node by writing it over its manifest file, as an operator does. */
async function install(f: Fixture, member: string, jws: string): Promise<void> {
  await writeFile(join(f.fed.dir, member, 'federation', 'manifest.jws'), `${jws}\n`)
}

/** POST /local/v1/manifest/reload on `member`'s local API. */
async function reload(f: Fixture, member: string): Promise<{ status: number; json: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const res = await request(`${f.nodes[member]!.localUrl}/local/v1/manifest/reload`, {
    method: 'POST', headers: { authorization: `Bearer ${f.fed.nodes[member]!.appToken}` },
  })
  return { status: res.statusCode, json: await res.body.json() }
}

async function readyz(f: Fixture, member: string): Promise<{ status: number; json: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const res = await request(`${f.nodes[member]!.publicUrl}/readyz`)
  return { status: res.statusCode, json: await res.body.json() }
}

/** Polls `cond` every 20 ms until it holds; generous deadline for a loaded machine. */
async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

const taxKid = (f: Fixture): string => f.nodes[PSB]!.node.federation.get().member(TAX).messageKeys.keys().next().value as string

async function leaves(f: Fixture, member: string, from: number): Promise<Record<string, unknown>[]> {
  const log = f.nodes[member]!.node.log
  const out: Record<string, unknown>[] = []
  for (let i = from; i < (await log.size()); i++) out.push(JSON.parse(Buffer.from(await log.leaf(i)).toString()) as Record<string, unknown>)
  return out
}

/** Checkpoints and exports `member`'s log into `dir`. */
async function exportOf(f: Fixture, member: string, dir: string): Promise<string> {
  await f.nodes[member]!.node.checkpoint()
  const out = join(dir, `export-${member}`)
  await exportLog(f.fed.nodes[member]!.configPath, out, { env: {} })
  return out
}

t.test('fault: revoked key accepted until the provider reloads; the auditor reports the window, not an error', async (t) => {
  const f = await federationFixture(t, { sizes: SIZES, start: [PSB, TAX], housekeepingEveryMs: 0 })
  const ask = asker(f)
  t.equal((await ask()).status, 200, 'before the revocation')

  // The authority revokes fj-tax's message key with an effective time just ahead, and the new
  // manifest reaches fj-psb's file, but fj-psb has not re-read it yet (fj-tax never gets it).
  const kid = taxKid(f)
  const at = Date.now() + 300
  await revokeKey(f.fed.authorityDir, TAX, kid, { at })
  const signed = await signAuthorityManifest(f.fed.authorityDir)
  t.equal(signed.manifest.members.find((m) => m.id === TAX)!.messageKeys[0]!.exp, at, 'the key stays listed, with exp = the effective time')
  await install(f, PSB, signed.jws)
  await until(() => Date.now() > at + 20, 'the revocation to take effect')

  const late = await ask()
  t.equal(late.status, 200, 'the window: fj-psb still has manifest seq 1 loaded and accepts the revoked key')

  const r = await reload(f, PSB)
  t.equal(r.status, 200)
  t.match(r.json, { ok: true, seq: signed.manifest.seq, changed: true })
  t.equal((await reload(f, PSB)).json.changed, false, 'a second reload changes nothing and logs nothing')
  const refused = await ask()
  t.equal(refused.status, 502, 'after the reload the revoked key is refused (by the provider: the peer\'s error)')
  t.match(refused.json, { code: 'VN_ERR_PEER_ERROR', peer: { member: PSB, status: 401, code: 'VN_ERR_JWS_KEY_NOT_VALID' } })

  // The provider's export carries both manifests it loaded, and the auditor judges the late
  // exchange against the one fj-psb had loaded: a warning with the window's length, no error.
  const dir = join(f.fed.dir, 'exports')
  const out = await exportOf(f, PSB, dir)
  t.same((await readdir(join(out, 'manifests'))).sort(), ['000001.jws', '000002.jws'], 'every manifest the node loaded is exported')
  const rootKey = join(f.fed.authorityDir, AUTHORITY_FILES.rootPub)
  const report = await auditExport(out, { rootKey })
  const windows = report.findings.filter((x) => x.code === 'AUDIT_KEY_REVOCATION_WINDOW')
  t.equal(report.findings.filter((x) => x.code === 'AUDIT_KEY_NOT_VALID').length, 0, 'no AUDIT_KEY_NOT_VALID')
  t.equal(windows.length, 1, 'one exchange in the window')
  t.equal(windows[0]?.severity, 'warning')
  t.equal(windows[0]?.xid, late.json.xid, 'the late exchange')
  t.match(windows[0]?.message, /\d+ ms after its revocation took effect \(manifest seq 2, .*\), while this node had manifest seq 1 loaded/)
  const ms = Number(/(\d+) ms after/.exec(windows[0]?.message ?? '')?.[1])
  t.ok(ms >= 20 && ms < 60_000, `window length ${ms} ms`)
  t.equal(report.ok, true, 'the audit passes')

  // Had fj-psb loaded seq 2 before that exchange, accepting the key would have been its own fault:
  // the same export with its start-up key event naming seq 2 is an error.
  const seq2Hash = manifestHash(signed.jws)
  const edited = await auditEditedExport(f.fed, PSB, out, join(dir, 'edited'), (records) => records.map((x) =>
    x.t === 'key-event' && x.event === 'node-started' ? { ...x, manifestSeq: signed.manifest.seq, manifestHash: seq2Hash } : x))
  const notValid = edited.findings.filter((x) => x.code === 'AUDIT_KEY_NOT_VALID')
  t.equal(notValid.length, 1, 'an error when no manifest the node had loaded allowed the key')
  t.equal(notValid[0]?.xid, late.json.xid)
  t.equal(edited.findings.filter((x) => x.code === 'AUDIT_KEY_REVOCATION_WINDOW').length, 0)
  t.equal(edited.ok, false)

  // The consumer signed with its key in the window too (it never got seq 2): a warning on its side.
  const taxOut = await exportOf(f, TAX, dir)
  const taxReport = await auditExport(taxOut, { rootKey, manifests: await archivedManifests(f.fed.authorityDir) })
  t.equal(taxReport.findings.filter((x) => x.code === 'AUDIT_KEY_NOT_VALID').length, 0)
  t.ok(taxReport.findings.some((x) => x.code === 'AUDIT_KEY_REVOCATION_WINDOW' && x.xid === late.json.xid), 'fj-tax signed in the window under seq 1')
  t.equal(taxReport.ok, true)
})

t.test('fault: consumer manifest expired before signing', async (t) => {
  const f = await federationFixture(t, { sizes: SIZES, start: [PSB, TAX], housekeepingEveryMs: 0 })
  const ask = asker(f)
  t.equal((await ask()).status, 200, 'the provider catalog is now cached by the consumer')

  // A new manifest valid for 1.5 s only, installed and loaded on the consumer; then it expires.
  const signed = await signAuthorityManifest(f.fed.authorityDir, { validMs: 1500 })
  await install(f, TAX, signed.jws)
  t.match((await reload(f, TAX)).json, { ok: true, seq: signed.manifest.seq, changed: true })
  await until(() => Date.now() >= signed.manifest.exp + 10, 'the manifest to expire')

  const taxLog = f.nodes[TAX]!.node.log
  const psbLog = f.nodes[PSB]!.node.log
  const [taxBefore, psbBefore] = [await taxLog.size(), await psbLog.size()]
  const r = await ask()
  t.equal(r.status, 503)
  t.equal(r.json.code, 'VN_ERR_FED_MANIFEST_EXPIRED')
  t.equal(await taxLog.size(), taxBefore, 'the consumer signed and logged nothing (no request-out)')
  t.equal(await psbLog.size(), psbBefore, 'nothing reached the provider')
  t.equal((await readyz(f, TAX)).status, 503, 'and it says so in readiness')
})

t.test('fault: node keeps signing after its own key is revoked', async (t) => {
  const f = await federationFixture(t, { sizes: SIZES, start: [PSB, TAX], housekeepingEveryMs: 0 })
  const ask = asker(f)
  t.equal((await ask()).status, 200)
  const tax = f.nodes[TAX]!

  // The authority revokes fj-tax's own message key, effective at once; fj-tax gets SIGHUP.
  const kid = taxKid(f)
  await revokeKey(f.fed.authorityDir, TAX, kid, { at: Date.now() + 1 })
  const signed = await signAuthorityManifest(f.fed.authorityDir)
  await install(f, TAX, signed.jws)
  const from = await tax.node.log.size()
  process.kill(process.pid, 'SIGHUP')
  await until(async () => (await leaves(f, TAX, from)).some((x) => x.t === 'key-event'), 'the manifest-loaded event')
  const events = (await leaves(f, TAX, from)).filter((x) => x.t === 'key-event')
  t.equal(events.length, 1, 'the load is logged once')
  t.match(events[0], { event: 'manifest-loaded', manifestSeq: signed.manifest.seq, manifestHash: manifestHash(signed.jws), messageKid: `${TAX}#${kid}`, messageKeyRevoked: true })

  const ready = await readyz(f, TAX)
  t.equal(ready.status, 503, 'not ready')
  t.equal(ready.json.checks.keys.ok, false)
  t.match(ready.json.checks.keys.detail, /revoked at .* by manifest seq 2: this node signs nothing/)

  const size = await tax.node.log.size()
  const r = await ask()
  t.equal(r.status, 503, 'as a consumer it signs no request')
  t.equal(r.json.code, 'VN_ERR_FED_OWN_KEY_REVOKED')
  const asProvider = await request(`${tax.publicUrl}/v1/exchange`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
  t.equal(asProvider.statusCode, 503, 'as a provider it answers nothing')
  t.equal(((await asProvider.body.json()) as { code: string }).code, 'VN_ERR_FED_OWN_KEY_REVOKED')
  const catalog = await request(`${tax.publicUrl}/v1/catalog`)
  t.equal(catalog.statusCode, 503, 'its catalog, signed by the revoked key, is no longer served')
  await catalog.body.dump()
  t.equal(await tax.node.log.size(), size, 'nothing signed, nothing logged')

  // The auditor accepts the key event: seq 2 indeed no longer allows the key.
  const report = await auditExport(await exportOf(f, TAX, join(f.fed.dir, 'exports')), { rootKey: join(f.fed.authorityDir, AUTHORITY_FILES.rootPub) })
  t.same(report.findings.filter((x) => x.severity === 'error'), [])
})

t.test('fault: own key revoked at a future time stops signing on the millisecond, without another reload', async (t) => {
  // Here the housekeeping timer picks the manifest up, as in production (every 30 s there).
  const f = await federationFixture(t, { sizes: SIZES, start: [PSB, TAX], housekeepingEveryMs: 100 })
  const ask = asker(f)
  const tax = f.nodes[TAX]!
  const kid = taxKid(f)
  const at = Date.now() + 4000
  await revokeKey(f.fed.authorityDir, TAX, kid, { at })
  const signed = await signAuthorityManifest(f.fed.authorityDir)
  t.ok(signed.warnings.some((w) => w.includes(`${TAX}#${kid}`)), 'the authority is warned that the effective time leaves little room')
  await install(f, TAX, signed.jws)
  await install(f, PSB, signed.jws)
  await until(() => tax.node.federation.get().seq === signed.manifest.seq && f.nodes[PSB]!.node.federation.get().seq === signed.manifest.seq, 'both nodes to load seq 2')

  const ready = await readyz(f, TAX)
  t.equal(ready.json.checks.keys.ok, true)
  t.match(ready.json.checks.keys.detail, /is revoked at .* \(in \d+ s\) by manifest seq 2/, 'readiness announces the revocation to come')
  const before = await ask()
  if (Date.now() < at) t.equal(before.status, 200, 'still signing before the effective time')

  await until(() => Date.now() >= at, 'the effective time')
  const after = await ask()
  t.equal(after.status, 503)
  t.equal(after.json.code, 'VN_ERR_FED_OWN_KEY_REVOKED', 'stopped at the effective time, with no further reload')
  t.equal((await readyz(f, TAX)).status, 503)
})

t.test('fault: a refused manifest file keeps the one loaded, and the reload says why', async (t) => {
  const f = await federationFixture(t, { sizes: SIZES, start: [TAX], housekeepingEveryMs: 0 })
  await install(f, TAX, 'garbage')
  const r = await reload(f, TAX)
  t.equal(r.status, 409)
  t.match(r.json, { code: 'VN_ERR_FED_MANIFEST_INVALID', ok: false, seq: 1, changed: false })
  t.equal((await readyz(f, TAX)).status, 200, 'still ready on the manifest loaded before')
})
