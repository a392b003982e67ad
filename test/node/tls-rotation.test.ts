/**
 * TLS key rotation with overlap (issue 14 §1): `keys rotate --which tls` on a stopped node logs a
 * key event signed by the old and the new TLS key; the authority lists both pins; peers accept
 * either key while both are listed (as server and as client); once the old pin is removed, the old
 * key is refused.
 */
import t from 'tap'
import { readFile, readdir, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { pino } from 'pino'
import { Agent, buildConnector, request } from 'undici'
import { federationFixture } from '../helper.js'
import { addTlsPin, removeTlsPin, signAuthorityManifest } from '../../src/federation/authority.js'
import { rotateKey } from '../../src/node/key-rotation.js'
import { tlsKeyFiles } from '../../src/node/tls.js'
import { startNode } from '../../src/http/server.js'
import { checkRotation } from '../../src/audit/checks/key-events.js'
import type { KeyEventRecord } from '../../src/log/records.js'
import { exportLog } from '../../src/node/export.js'
import { auditExport } from '../../src/audit/verify.js'

t.test('rotate the TLS key of fj-psb with both pins listed, then drop the old one', async (t) => {
  const f = await federationFixture(t, { start: ['fj-psb', 'fj-tax'], tls: true })
  const psbDir = dirname(f.fed.nodes['fj-psb']!.configPath)
  const files = tlsKeyFiles(join(psbDir, 'keys'))
  const oldPem = { key: await readFile(files.key, 'utf8'), cert: await readFile(files.cert, 'utf8') }
  const oldPin = f.nodes['fj-psb']!.node.tls!.pin
  const s = f.fed.dataset.samples.identity
  const ask = async (): Promise<{ status: number; json: any }> => f.verify('fj-tax', { // eslint-disable-line @typescript-eslint/no-explicit-any
    provider: 'fj-psb', service: 'identity.match', purpose: 'taxpayer-registration',
    basis: 'Tax Collection Administration Law art. 15', subjects: [{ id: s.matches[0]!.id, name: s.matches[0]!.name }],
  })
  t.equal((await ask()).status, 200, 'before: an exchange works')

  const exportTo = async (name: string): Promise<string> => {
    const out = join(f.fed.dir, `export-${name}`)
    await exportLog(f.fed.nodes['fj-psb']!.configPath, out)
    return out
  }
  const publish = async (): Promise<void> => {
    const r = await signAuthorityManifest(f.fed.authorityDir)
    for (const id of ['fj-psb', 'fj-tax', 'fj-amr', 'fj-credit']) await writeFile(join(dirname(f.fed.nodes[id]!.configPath), 'federation', 'manifest.jws'), `${r.jws}\n`)
  }

  // 1. the node stopped, its TLS key rotated (logged), the new pin listed beside the old one
  await f.nodes['fj-psb']!.close()
  const r = await rotateKey(f.fed.nodes['fj-psb']!.configPath, 'tls')
  t.equal(r.which, 'tls')
  t.equal(r.tls?.oldPin, oldPin)
  t.not(r.tls?.newPin, oldPin)
  t.ok((await readdir(join(psbDir, 'keys'))).some((n) => n.startsWith('tls.key.retired-')), 'the old key is kept, retired')
  // the auditor, before the authority listed the new pin: both signatures fine, the new key unlisted
  const rootKey = join(f.fed.authorityDir, 'federation-root.pub')
  const early = await auditExport(await exportTo('before-listed'), { rootKey })
  t.ok(early.ok, JSON.stringify(early.findings.filter((x) => x.severity === 'error')))
  t.same(early.findings.map((x) => x.code), ['AUDIT_KEY_ROTATION_UNLISTED'], 'the new TLS key is in no manifest yet')
  await addTlsPin(f.fed.authorityDir, 'fj-psb', r.tls!.newPin)
  await publish()
  t.equal((await f.nodes['fj-tax']!.node.reloadManifest()).ok, true, 'fj-tax loads the manifest with both pins')

  // 2. fj-psb starts with the new key; fj-tax accepts it
  f.nodes['fj-psb'] = await startNode(f.fed.nodes['fj-psb']!.configPath, { logger: pino({ level: 'silent' }), checkpointEveryMs: 0, witnessEveryMs: 0 })
  const psb = f.nodes['fj-psb']!
  t.equal(psb.node.tls?.pin, r.tls!.newPin, 'serves the new key')
  t.same([...psb.node.federation.get().member('fj-psb').tlsPins].sort(), [oldPin, r.tls!.newPin].sort(), 'both pins listed')
  const during = await ask()
  t.equal(during.status, 200, `during the overlap: an exchange works (${String(during.json.code ?? during.json.status)})`)

  // the key event: rotated tls, signed by the old and the new TLS key
  const size = await psb.node.log.size()
  const records = (await psb.node.log.entries(0, size)).map((b) => JSON.parse(Buffer.from(b).toString('utf8')) as Record<string, unknown>)
  const ev = records.find((x) => x.t === 'key-event' && x.event === 'rotated') as KeyEventRecord | undefined
  t.equal(ev?.rotated, 'tls')
  t.same(checkRotation(ev!), [], 'both signatures verify')

  // as a client, both keys of fj-psb are accepted by fj-tax while both are listed
  const tax = f.nodes['fj-tax']!
  const newPem = { key: await readFile(files.key, 'utf8'), cert: await readFile(files.cert, 'utf8') }
  const status = async (pem: { key: string; cert: string }): Promise<number> => {
    const agent = new Agent({ connect: buildConnector({ rejectUnauthorized: false, maxCachedSessions: 0, ...pem }) })
    try {
      const res = await request(`${tax.publicUrl}/v1/catalog`, { dispatcher: agent })
      await res.body.dump()
      return res.statusCode
    } finally {
      await agent.close()
    }
  }
  t.equal(await status(oldPem), 200, 'old key accepted during the overlap')
  t.equal(await status(newPem), 200, 'new key accepted')

  // 3. the old pin removed: the old key is refused, the new one works
  await removeTlsPin(f.fed.authorityDir, 'fj-psb', oldPin)
  await publish()
  t.equal((await tax.node.reloadManifest()).ok, true)
  t.equal((await psb.node.reloadManifest()).ok, true)
  t.equal(await status(oldPem), 403, 'old key refused once unpinned')
  t.equal(await status(newPem), 200)
  t.equal((await ask()).status, 200, 'after: an exchange works')
  t.equal((await psb.node.ready()).checks.tls?.ok, true)

  // the auditor, afterwards: the rotation verifies and its new pin is in the manifests the node loaded
  const late = await auditExport(await exportTo('after'), { rootKey })
  t.ok(late.ok, JSON.stringify(late.findings.filter((x) => x.severity === 'error')))
  t.notOk(late.findings.some((x) => x.code.startsWith('AUDIT_KEY_')), JSON.stringify(late.findings.map((x) => x.code)))
})
