/**
 * The TLS steps of the CLI (issue 14 §1): `init` makes an Ed25519 key and self-signed certificate
 * and prints its pin, or takes existing files (a P-256 certificate made by openssl), or none;
 * `federation add-member --tls-pin` (repeatable), `add-tls-pin`, `remove-tls-pin`; a node then
 * starts with that manifest and refuses to start when its key is not pinned.
 */
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { copyFile, mkdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pino } from 'pino'
import { initCommand } from '../../src/cli/commands/init.js'
import { federationCommand } from '../../src/cli/commands/federation.js'
import { keysCommand } from '../../src/cli/commands/keys.js'
import type { CliIo, Command } from '../../src/cli/types.js'
import { spkiPin } from '../../src/crypto/tls-cert.js'
import { loadDraft } from '../../src/federation/authority.js'
import { startNode } from '../../src/http/server.js'
import { makeUscc } from '../../src/demo/synthetic.js'

const capture = (cwd: string, json = false): CliIo & { stdout: string[]; stderr: string[] } => {
  const stdout: string[] = []
  const stderr: string[] = []
  return { stdout, stderr, out: (l) => stdout.push(l), err: (l) => stderr.push(l), json, tty: false, cwd, env: {} }
}
const run = async (cmd: Command, cwd: string, argv: string[], json = false): Promise<{ code: number; out: string[]; err: string[] }> => {
  const io = capture(cwd, json)
  const code = await cmd.run(argv, io)
  return { code, out: io.stdout, err: io.stderr }
}

t.test('init makes a TLS key and prints its pin; the authority pins it; the node serves https', async (t) => {
  const cwd = t.testdir({})
  const r = await run(initCommand, cwd, ['--id', 'fj-tax', '--dir', join(cwd, 'fj-tax'), '--port', '0', '--local-port', '0'], true)
  t.equal(r.code, 0, r.err.join('\n'))
  const doc = JSON.parse(r.out[0]!) as { tlsPin: string; messageKey: string; logKey: string }
  t.match(doc.tlsPin, /^[0-9a-f]{64}$/)
  const cert = new X509Certificate(await readFile(join(cwd, 'fj-tax', 'keys', 'tls.crt')))
  t.equal(spkiPin(cert), doc.tlsPin, 'the printed pin is the certificate key\'s SPKI SHA-256')
  t.equal(cert.publicKey.asymmetricKeyType, 'ed25519')
  t.equal((await stat(join(cwd, 'fj-tax', 'keys', 'tls.key'))).mode & 0o777, 0o600, 'tls.key is 0600')
  const cfg = JSON.parse(await readFile(join(cwd, 'fj-tax', 'verinode.json'), 'utf8')) as { tls: unknown }
  t.same(cfg.tls, {}, 'the default files: tls.crt and tls.key in the keys folder')
  // openssl agrees on the pin
  const opensslPin = execFileSync('sh', ['-c', `openssl x509 -in "${join(cwd, 'fj-tax', 'keys', 'tls.crt')}" -pubkey -noout | openssl pkey -pubin -outform der | sha256sum`]).toString().split(' ')[0]
  t.equal(opensslPin, doc.tlsPin, 'the same pin as the openssl pipeline in docs/OPERATIONS.md')

  // a relative --dir is taken from the CLI's working directory, not the process's
  const human = await run(initCommand, cwd, ['--id', 'fj-amr', '--dir', 'fj-amr'])
  t.equal(human.out[0], `created ${join(cwd, 'fj-amr', 'verinode.json')}`)
  t.match(human.out.join('\n'), /TLS pin \(SPKI SHA-256\): [0-9a-f]{64}/)
  t.match(human.out.join('\n'), /--tls-pin [0-9a-f]{64} --endpoint https:/)

  // the authority
  t.equal((await run(federationCommand, cwd, ['create', '--dir', 'auth', '--name', 'test'])).code, 0)
  const bad = await run(federationCommand, cwd, ['add-member', '--dir', 'auth', '--id', 'fj-tax', '--name', 'Tax', '--uscc', '11350000100000016K',
    '--role', 'department', '--endpoint', 'https://127.0.0.1:7100', '--message-key', 'fj-tax/keys/message.pub', '--log-key', 'fj-tax/keys/log.pub', '--tls-pin', 'abc'])
  t.equal(bad.code, 2)
  t.match(bad.err.join('\n'), /--tls-pin: expected 64 hex digits/)
  const other = 'ab'.repeat(32)
  const ok = await run(federationCommand, cwd, ['add-member', '--dir', 'auth', '--id', 'fj-tax', '--name', 'Tax', '--uscc', '11350000100000016K',
    '--role', 'department', '--endpoint', 'https://127.0.0.1:1', '--message-key', 'fj-tax/keys/message.pub', '--log-key', 'fj-tax/keys/log.pub', '--tls-pin', other, '--tls-pin', doc.tlsPin.toUpperCase()])
  t.equal(ok.code, 0, ok.err.join('\n'))
  t.same((await loadDraft(join(cwd, 'auth'))).members[0]?.tlsPins, [other, doc.tlsPin], 'repeatable, stored lower case')
  t.equal((await run(federationCommand, cwd, ['remove-tls-pin', '--dir', 'auth', '--member', 'fj-tax', '--tls-pin', other])).code, 0)
  t.equal((await run(federationCommand, cwd, ['remove-tls-pin', '--dir', 'auth', '--member', 'fj-tax', '--tls-pin', other])).code, 2, 'not listed any more')
  t.equal((await run(federationCommand, cwd, ['add-tls-pin', '--dir', 'auth', '--member', 'fj-tax', '--tls-pin', other])).code, 0)
  t.same((await loadDraft(join(cwd, 'auth'))).members[0]?.tlsPins, [doc.tlsPin, other])
  t.equal((await run(federationCommand, cwd, ['sign', '--dir', 'auth', '--out', 'fj-tax/federation/manifest.jws'])).code, 0)
  await copyFile(join(cwd, 'auth', 'federation-root.pub'), join(cwd, 'fj-tax', 'keys', 'federation-root.pub'))
  const verified = await run(federationCommand, cwd, ['verify', '--manifest', 'fj-tax/federation/manifest.jws', '--root', 'auth/federation-root.pub'], true)
  t.same((JSON.parse(verified.out[0]!) as { members: { tlsPins: string[] }[] }).members[0]?.tlsPins, [doc.tlsPin, other], 'verify shows the pins')

  const node = await startNode(join(cwd, 'fj-tax', 'verinode.json'), { logger: pino({ level: 'silent' }), checkpointEveryMs: 0, witnessEveryMs: 0, reloadOnSighup: false })
  t.teardown(() => node.close())
  t.match(node.publicUrl, /^https:/)
  t.equal(node.node.tls?.pin, doc.tlsPin)

  // `keys rotate --which tls` refuses while the node runs; a usage error names the choices
  const k = await run(keysCommand, cwd, ['rotate', '--config', 'fj-tax/verinode.json', '--which', 'tls'])
  t.equal(k.code, 2, 'the node is running')
  t.match((await run(keysCommand, cwd, ['rotate', '--config', 'fj-tax/verinode.json', '--which', 'x'])).err.join('\n'), /message, log or tls/)

  // stopped, it rotates and says what the authority must run
  await node.close()
  const rot = await run(keysCommand, cwd, ['rotate', '--config', join(cwd, 'fj-tax', 'verinode.json'), '--which', 'tls'], true)
  t.equal(rot.code, 0, rot.err.join('\n'))
  const rd = JSON.parse(rot.out[0]!) as { tls: { oldPin: string; newPin: string }; authority: { addKey: string; removeKey: string } }
  t.equal(rd.tls.oldPin, doc.tlsPin)
  t.equal(spkiPin(new X509Certificate(await readFile(join(cwd, 'fj-tax', 'keys', 'tls.crt')))), rd.tls.newPin, 'the new certificate is in place')
  t.equal(rd.authority.addKey, `verinode federation add-tls-pin --dir <authority-dir> --member fj-tax --tls-pin ${rd.tls.newPin}`)
  t.equal(rd.authority.removeKey, `verinode federation remove-tls-pin --dir <authority-dir> --member fj-tax --tls-pin ${doc.tlsPin}`)
  await t.rejects(startNode(join(cwd, 'fj-tax', 'verinode.json'), { logger: pino({ level: 'silent' }), reloadOnSighup: false }), { code: 'VN_ERR_TLS_CONFIG' }, 'no start until the manifest lists the new pin')
})

t.test('init takes an existing P-256 certificate made by openssl; a node whose key is not pinned does not start', async (t) => {
  const cwd = t.testdir({})
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(cwd, 'p256.key'),
    '-out', join(cwd, 'p256.crt'), '-days', '2', '-subj', '/CN=verinode fj-psb'], { stdio: 'ignore' })
  const r = await run(initCommand, cwd, ['--id', 'fj-psb', '--dir', join(cwd, 'n'), '--tls-cert', 'p256.crt', '--tls-key', 'p256.key'], true)
  t.equal(r.code, 0, r.err.join('\n'))
  const pin = (JSON.parse(r.out[0]!) as { tlsPin: string }).tlsPin
  t.equal(pin, spkiPin(new X509Certificate(await readFile(join(cwd, 'p256.crt')))))
  t.equal((await stat(join(cwd, 'n', 'keys', 'tls.key'))).mode & 0o777, 0o600)

  const mismatch = join(cwd, 'other')
  await mkdir(mismatch)
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(mismatch, 'other.key'),
    '-out', join(mismatch, 'other.crt'), '-days', '2', '-subj', '/CN=x'], { stdio: 'ignore' })
  await t.rejects(run(initCommand, cwd, ['--id', 'fj-psb', '--dir', join(cwd, 'm'), '--tls-cert', 'p256.crt', '--tls-key', join(mismatch, 'other.key')]), { code: 'VN_ERR_TLS_CONFIG' })
  await t.rejects(run(initCommand, cwd, ['--id', 'fj-psb', '--dir', join(cwd, 'm2'), '--tls-cert', 'p256.crt']), /go together/)

  const plain = await run(initCommand, cwd, ['--id', 'fj-x', '--dir', join(cwd, 'plain'), '--no-tls'], true)
  t.equal(plain.code, 0)
  t.equal((JSON.parse(plain.out[0]!) as { tlsPin?: string }).tlsPin, undefined)

  // a manifest without the node's pin: the node refuses to start
  t.equal((await run(federationCommand, cwd, ['create', '--dir', 'auth', '--name', 'test'])).code, 0)
  const added = await run(federationCommand, cwd, ['add-member', '--dir', 'auth', '--id', 'fj-psb', '--name', 'PSB', '--uscc', '11350000100000016K',
    '--role', 'department', '--endpoint', 'https://127.0.0.1:1', '--message-key', 'n/keys/message.pub', '--log-key', 'n/keys/log.pub', '--tls-pin', 'cd'.repeat(32)])
  t.equal(added.code, 0, added.err.join('\n'))
  t.equal((await run(federationCommand, cwd, ['sign', '--dir', 'auth', '--out', 'n/federation/manifest.jws'])).code, 0)
  await copyFile(join(cwd, 'auth', 'federation-root.pub'), join(cwd, 'n', 'keys', 'federation-root.pub'))
  await t.rejects(startNode(join(cwd, 'n', 'verinode.json'), { logger: pino({ level: 'silent' }), reloadOnSighup: false }), { code: 'VN_ERR_TLS_CONFIG', message: /is not listed for fj-psb/ })

  // a plain node listening beyond loopback without insecure: refused
  const cfgPath = join(cwd, 'plain', 'verinode.json')
  const cfg = JSON.parse(await readFile(cfgPath, 'utf8')) as Record<string, unknown>
  await writeFile(cfgPath, JSON.stringify({ ...cfg, listen: { host: '0.0.0.0', port: 0 } }))
  t.equal((await run(federationCommand, cwd, ['add-member', '--dir', 'auth', '--id', 'fj-x', '--name', 'X', '--uscc', makeUscc('11', '350000', '00300009'),
    '--role', 'department', '--endpoint', 'http://127.0.0.1:1', '--message-key', 'plain/keys/message.pub', '--log-key', 'plain/keys/log.pub'])).code, 0)
  t.equal((await run(federationCommand, cwd, ['sign', '--dir', 'auth', '--out', 'plain/federation/manifest.jws'])).code, 0)
  await copyFile(join(cwd, 'auth', 'federation-root.pub'), join(cwd, 'plain', 'keys', 'federation-root.pub'))
  await t.rejects(startNode(cfgPath, { logger: pino({ level: 'silent' }), reloadOnSighup: false }), { code: 'VN_ERR_TLS_CONFIG', message: /not loopback/ })
})
