/**
 * `verinode doctor`: one line per check, OK or FAIL with a fix, exit 0 or 1; the same as one JSON
 * document with --json. Against a real two-node federation, then with one thing broken at a time.
 */
import t from 'tap'
import { chmod, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { randomBytes, X509Certificate } from 'node:crypto'
import { federationFixture } from '../helper.js'
import { spkiPin } from '../../src/crypto/tls-cert.js'
import { addTlsPin, removeTlsPin, signAuthorityManifest } from '../../src/federation/authority.js'
import { tlsKeyFiles } from '../../src/node/tls.js'
import { main } from '../../src/cli/main.js'
import type { CliIo } from '../../src/cli/types.js'

function captureIo(cwd: string, json = false): CliIo & { stdout: string[]; stderr: string[] } {
  const io = { stdout: [] as string[], stderr: [] as string[], json, tty: false, cwd, env: {}, out: (l: string) => io.stdout.push(l), err: (l: string) => io.stderr.push(l) }
  return io
}

t.test('doctor on a healthy node, then one fault at a time', async (t) => {
  const f = await federationFixture(t, { start: ['fj-psb', 'fj-amr', 'fj-tax', 'fj-credit'] })
  const taxDir = join(f.fed.dir, 'fj-tax')
  const psbDir = join(f.fed.dir, 'fj-psb')
  const run = async (config: string, json = false): Promise<{ code: number; io: ReturnType<typeof captureIo> }> => {
    const io = captureIo(f.fed.dir, json)
    const code = await main(['doctor', '--config', config, ...(json ? ['--json'] : [])], io)
    return { code, io }
  }

  const healthy = await run(join(taxDir, 'verinode.json'))
  t.equal(healthy.code, 0, healthy.io.stdout.join('\n'))
  for (const check of ['config', 'key-files', 'manifest', 'keys-match', 'tls', 'data-source', 'log', 'peer fj-psb', 'clock']) {
    t.match(healthy.io.stdout.join('\n'), new RegExp(`^OK +${check} `, 'm'), `${check}: OK`)
  }
  t.match(healthy.io.stdout.at(-1), /all checks passed/)
  const provider = await run(join(psbDir, 'verinode.json'), true)
  const doc = JSON.parse(provider.io.stdout[0]!) as { ok: boolean; checks: { check: string; ok: boolean; detail: string }[] }
  t.equal(provider.code, 0)
  t.equal(doc.ok, true)
  t.match(doc.checks.find((c) => c.check === 'data-source'), { ok: true, detail: /^sqlite reachable; \d+ statements compile, read-only/ })

  t.test('a private key readable by others', async (t) => {
    await chmod(join(taxDir, 'keys', 'message.key'), 0o644)
    t.teardown(() => chmod(join(taxDir, 'keys', 'message.key'), 0o600))
    const r = await run(join(taxDir, 'verinode.json'))
    t.equal(r.code, 1)
    t.match(r.io.stdout.join('\n'), /^FAIL key-files .*message\.key: mode 644 is too permissive[\s\S]*fix: chmod 600 .*message\.key/m)
    t.match(r.io.stdout.join('\n'), /^FAIL keys-match +skipped/m)
  })

  t.test('an SQL typo is named as such, with the fix', async (t) => {
    const cfg = JSON.parse(await readFile(join(psbDir, 'verinode.json'), 'utf8')) as { services: { lookup: string }[] }
    cfg.services[0]!.lookup = cfg.services[0]!.lookup.replace(/^SELECT/, 'SELEC')
    await writeFile(join(psbDir, 'typo.json'), JSON.stringify(cfg))
    const r = await run(join(psbDir, 'typo.json'), true)
    t.equal(r.code, 1)
    const d = JSON.parse(r.io.stdout[0]!) as { ok: boolean; error: { code: string }; checks: { check: string; ok: boolean; detail: string; fix?: string }[] }
    t.match(d, { ok: false, error: { code: 'VN_ERR_CLI_CHECKS_FAILED' } })
    t.match(d.checks.find((c) => c.check === 'data-source'), { ok: false, detail: /^VN_ERR_SOURCE_SQL_INVALID: services\..*\.lookup: statement does not compile/, fix: /typo/ })
  })

  t.test('an invalid config stops at the first line', async (t) => {
    await writeFile(join(taxDir, 'bad.json'), JSON.stringify({ member: 'FJ TAX' }))
    const r = await run(join(taxDir, 'bad.json'))
    t.equal(r.code, 1)
    t.match(r.io.stdout[0], /^FAIL config +VN_ERR_CONFIG_INVALID: member/)
    t.match(r.io.stdout[1], /fix: edit /)
  })

  t.test('a peer that is down', async (t) => {
    await f.nodes['fj-psb']!.close()
    const r = await run(join(taxDir, 'verinode.json'))
    t.equal(r.code, 1)
    t.match(r.io.stdout.join('\n'), /^FAIL peer fj-psb +http:\/\/127\.0\.0\.1:\d+: cannot connect \(ECONNREFUSED\)[\s\S]*fix: check the endpoint/m)
    t.match(r.io.stdout.join('\n'), /^OK +clock +within \d+ s of 2 peer\(s\)/m, 'the clock is measured against the peers that answer')
  })
})

t.test('doctor on TLS nodes: the own pin, and each peer reached over mutual TLS with its pin checked', async (t) => {
  const f = await federationFixture(t, { start: ['fj-psb', 'fj-tax'], tls: true })
  const taxDir = join(f.fed.dir, 'fj-tax')
  const run = async (config: string): Promise<string> => {
    const io = captureIo(f.fed.dir)
    await main(['doctor', '--config', config], io)
    return io.stdout.join('\n')
  }
  const healthy = await run(join(taxDir, 'verinode.json'))
  t.match(healthy, /^OK +tls +pin [0-9a-f]{16}\.\.\. is pinned for fj-tax in manifest seq \d+; certificate valid until /m)
  t.match(healthy, /^OK +peer fj-psb +https:\/\/127\.0\.0\.1:\d+ answered in \d+ ms/m, 'reached over mutual TLS')

  // A manifest that pins another key for fj-psb: the doctor refuses its certificate as the node would.
  const psbPin = spkiPin(new X509Certificate(await readFile(tlsKeyFiles(join(f.fed.dir, 'fj-psb', 'keys')).cert)))
  await removeTlsPin(f.fed.authorityDir, 'fj-psb', psbPin)
  await addTlsPin(f.fed.authorityDir, 'fj-psb', randomBytes(32).toString('hex'))
  const other = join(taxDir, 'other-manifest.jws')
  await signAuthorityManifest(f.fed.authorityDir, { out: other })
  const cfg = JSON.parse(await readFile(join(taxDir, 'verinode.json'), 'utf8')) as { federation: { manifest: string } }
  cfg.federation.manifest = other
  await writeFile(join(taxDir, 'other.json'), JSON.stringify(cfg))
  const wrong = await run(join(taxDir, 'other.json'))
  t.match(wrong, /^OK +tls /m, 'its own pin is still listed')
  t.match(wrong, /^FAIL peer fj-psb +https:\/\/127\.0\.0\.1:\d+: VN_ERR_TLS_SERVER_PIN: [\s\S]*fix: compare fj-psb's pin/m)
})
