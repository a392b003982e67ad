import t from 'tap'
import { readFile, readdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { federationCommand } from '../../src/cli/commands/federation.js'
import type { CliIo } from '../../src/cli/types.js'
import { generateEd25519, loadPublicKey, publicKeyToB64u, writePublicKey } from '../../src/crypto/keys.js'
import { Federation } from '../../src/federation/federation.js'
import { keyIdFor, verifyManifest } from '../../src/federation/manifest.js'

interface Captured extends CliIo {
  stdout: string[]
  stderr: string[]
}
const capture = (cwd: string, json = false): Captured => {
  const stdout: string[] = []
  const stderr: string[] = []
  return { stdout, stderr, out: (l) => stdout.push(l), err: (l) => stderr.push(l), json, tty: false, cwd, env: {} }
}
const run = async (cwd: string, argv: string[], json = false): Promise<{ code: number; io: Captured }> => {
  const io = capture(cwd, json)
  const code = await federationCommand.run(argv, io)
  return { code, io }
}

const taxMsg = generateEd25519()
const taxLog = generateEd25519()
const audMsg = generateEd25519()

t.test('create → add-member → sign → verifyManifest, end to end', async (t) => {
  const cwd = t.testdir({})
  await writePublicKey(join(cwd, 'tax-message.pub'), taxMsg.publicKey)
  await writePublicKey(join(cwd, 'tax-log.pub'), taxLog.publicKey)

  let r = await run(cwd, ['create', '--dir', 'auth', '--name', '福建省政务数据共享'])
  t.equal(r.code, 0, r.io.stderr.join('\n'))
  t.match(r.io.stdout[0], /^created federation 福建省政务数据共享 in /)
  t.equal((await stat(join(cwd, 'auth', 'federation-root.key'))).mode & 0o777, 0o600)

  r = await run(cwd, [
    'add-member', '--dir', 'auth', '--id', 'fj-tax', '--name', '福建省税务局', '--uscc', '11350000100000016K',
    '--role', 'department', '--endpoint', 'http://127.0.0.1:7102', '--message-key', 'tax-message.pub', '--log-key', 'tax-log.pub',
  ])
  t.equal(r.code, 0, r.io.stderr.join('\n'))
  t.match(r.io.stdout.join('\n'), new RegExp(`message ${keyIdFor(taxMsg.publicKey)}`))

  // An auditor: key given inline as base64url, explicit kid, no endpoint and no log key.
  r = await run(cwd, ['add-member', '--dir', 'auth', '--id', 'fj-audit', '--name', '福建省审计厅', '--uscc', '11350000100000024E',
    '--role', 'auditor', '--message-key', publicKeyToB64u(audMsg.publicKey), '--message-kid', 'aud-1', '--not-after', '2099-01-01T00:00:00Z'], true)
  t.equal(r.code, 0)
  const added = JSON.parse(r.io.stdout.join('')) as { ok: boolean; member: { messageKeys: Array<{ kid: string; exp: number }> } }
  t.equal(r.io.stdout.length, 1, 'one JSON document')
  t.equal(added.ok, true)
  t.same(added.member.messageKeys.map((k) => [k.kid, k.exp]), [['aud-1', Date.UTC(2099, 0, 1)]])

  r = await run(cwd, ['sign', '--dir', 'auth', '--out', 'manifest.jws', '--valid-days', '7'], true)
  t.equal(r.code, 0, r.io.stdout.join(''))
  const signed = JSON.parse(r.io.stdout[0]!) as { seq: number; hash: string; warnings: string[] }
  t.equal(signed.seq, 1)
  t.same(signed.warnings, [])

  const jws = (await readFile(join(cwd, 'manifest.jws'), 'utf8')).trim()
  const root = await loadPublicKey(join(cwd, 'auth', 'federation-root.pub'))
  const m = verifyManifest(jws, root, { now: Date.now() })
  t.equal(m.seq, 1)
  t.ok(m.exp - m.iat === 7 * 86_400_000)
  const f = new Federation(m, jws)
  t.equal(f.hash, signed.hash)
  t.equal(f.endpoint('fj-tax'), 'http://127.0.0.1:7102')
  t.equal(publicKeyToB64u(f.logPublicKey('fj-tax')), publicKeyToB64u(taxLog.publicKey))
  t.ok(f.member('fj-audit').messageKeys.has('aud-1'))

  // verify, human and JSON
  r = await run(cwd, ['verify', '--manifest', 'manifest.jws', '--root', 'auth/federation-root.pub'])
  t.equal(r.code, 0)
  t.match(r.io.stdout[0], /^manifest OK: 福建省政务数据共享 seq 1/)
  r = await run(cwd, ['verify', '--manifest', 'manifest.jws', '--root', 'auth/federation-root.pub', '--json'], true)
  t.match(JSON.parse(r.io.stdout[0]!), { ok: true, valid: true, seq: 1, hash: signed.hash })

  // revoke-key: the key stays listed with exp 60 s ahead by default, or at --at
  const kid = keyIdFor(taxMsg.publicKey)
  const before = Date.now()
  r = await run(cwd, ['revoke-key', '--dir', 'auth', '--member', 'fj-tax', '--kid', kid, '--json'], true)
  t.equal(r.code, 0, r.io.stderr.join('\n'))
  const revokedAt = (JSON.parse(r.io.stdout[0]!) as { revokedAt: number }).revokedAt
  t.ok(revokedAt >= before + 60_000 && revokedAt <= Date.now() + 60_000, 'default effective time: in 60 s')
  r = await run(cwd, ['revoke-key', '--dir', 'auth', '--member', 'fj-tax', '--kid', kid, '--after-seconds', '30'])
  t.equal(r.code, 0)
  t.match(r.io.stdout[0], new RegExp(`message key fj-tax#${kid} is revoked at `))

  // revoke: remove-key, sign again, the key is gone and seq went up
  const newMsg = generateEd25519()
  r = await run(cwd, ['add-key', '--dir', 'auth', '--member', 'fj-tax', '--message-key', publicKeyToB64u(newMsg.publicKey), '--kid', 'm2'])
  t.equal(r.code, 0, r.io.stderr.join('\n'))
  r = await run(cwd, ['remove-key', '--dir', 'auth', '--member', 'fj-tax', '--kid', kid])
  t.equal(r.code, 0)
  t.match(r.io.stdout[0], `removed message key fj-tax#${kid}`)
  r = await run(cwd, ['sign', '--dir', 'auth', '--out', 'manifest.jws'])
  t.equal(r.code, 0)
  t.match(r.io.stdout[0], /^signed manifest seq 2 /)
  const m2 = verifyManifest((await readFile(join(cwd, 'manifest.jws'), 'utf8')).trim(), root, { now: Date.now(), minSeq: 1 })
  t.same(m2.members.find((x) => x.id === 'fj-tax')?.messageKeys.map((k) => k.kid), ['m2'])
  t.same(await readdir(join(cwd, 'auth', 'manifests')), ['000001.jws', '000002.jws'])

  // verify with a higher min-seq is a finding (exit 1)
  r = await run(cwd, ['verify', '--manifest', 'manifest.jws', '--root', 'auth/federation-root.pub', '--min-seq', '3'], true)
  t.equal(r.code, 1)
  t.match(JSON.parse(r.io.stdout[0]!), { ok: false, error: { code: 'VN_ERR_FED_MANIFEST_ROLLBACK' } })

  r = await run(cwd, ['remove-member', '--dir', 'auth', '--member', 'fj-audit'])
  t.equal(r.code, 0)
})

t.test('a tampered manifest fails verify with exit 1', async (t) => {
  const cwd = t.testdir({})
  t.equal((await run(cwd, ['create', '--dir', 'a', '--name', 'x'])).code, 0)
  await writePublicKey(join(cwd, 'm.pub'), taxMsg.publicKey)
  t.equal((await run(cwd, ['add-member', '--dir', 'a', '--id', 'fj-audit', '--name', 'A', '--uscc', '11350000100000024E', '--role', 'auditor', '--message-key', 'm.pub'])).code, 0)
  t.equal((await run(cwd, ['sign', '--dir', 'a', '--out', 'm.jws'])).code, 0)
  const jws = (await readFile(join(cwd, 'm.jws'), 'utf8')).trim()
  const i = jws.indexOf('.') + 10
  await writeFile(join(cwd, 'm.jws'), jws.slice(0, i) + (jws[i] === 'A' ? 'B' : 'A') + jws.slice(i + 1))
  const r = await run(cwd, ['verify', '--manifest', 'm.jws', '--root', 'a/federation-root.pub'])
  t.equal(r.code, 1)
  t.match(r.io.stderr[0], /^error VN_ERR_FED_MANIFEST_INVALID: /)
  const missing = await run(cwd, ['verify', '--manifest', 'nope.jws', '--root', 'a/federation-root.pub'])
  t.equal(missing.code, 1)
})

t.test('usage and input errors exit 2 with a clear message', async (t) => {
  const cwd = t.testdir({})
  await run(cwd, ['create', '--dir', 'a', '--name', 'x'])
  const cases: Array<[string, string[], RegExp]> = [
    ['no subcommand', [], /missing subcommand/],
    ['unknown subcommand', ['frobnicate'], /unknown subcommand "frobnicate"/],
    ['unknown option', ['create', '--bogus'], /bogus/],
    ['extra positional', ['create', 'x', '--dir', 'a'], /unexpected argument/],
    ['missing --dir', ['sign'], /--dir is required/],
    ['missing --name', ['create', '--dir', 'b'], /--name is required/],
    ['second create', ['create', '--dir', 'a', '--name', 'y'], /VN_ERR_CONFIG_INVALID.*already holds/],
    ['bad role', ['add-member', '--dir', 'a', '--id', 'x1', '--name', 'n', '--uscc', '11350000100000016K', '--role', 'boss'], /--role must be/],
    ['bad key arg', ['add-member', '--dir', 'a', '--id', 'x1', '--name', 'n', '--uscc', '11350000100000016K', '--role', 'auditor', '--message-key', 'nofile'], /--message-key: neither/],
    ['bad uscc', ['add-member', '--dir', 'a', '--id', 'x1', '--name', 'n', '--uscc', '11350000100000016A', '--role', 'auditor', '--message-key', publicKeyToB64u(taxMsg.publicKey)], /VN_ERR_CONFIG_INVALID.*uscc: check character/],
    ['department without endpoint', ['add-member', '--dir', 'a', '--id', 'x1', '--name', 'n', '--uscc', '11350000100000016K', '--role', 'department', '--message-key', publicKeyToB64u(taxMsg.publicKey), '--log-key', publicKeyToB64u(taxLog.publicKey)], /endpoint: required/],
    ['kid with two keys', ['add-member', '--dir', 'a', '--id', 'x1', '--name', 'n', '--uscc', '11350000100000016K', '--role', 'auditor', '--message-key', publicKeyToB64u(taxMsg.publicKey), '--message-key', publicKeyToB64u(taxLog.publicKey), '--message-kid', 'k'], /--message-kid needs exactly one --message-key/],
    ['bad date', ['add-member', '--dir', 'a', '--id', 'x1', '--name', 'n', '--uscc', '11350000100000016K', '--role', 'auditor', '--message-key', publicKeyToB64u(taxMsg.publicKey), '--not-before', 'tomorrow'], /--not-before: expected an ISO 8601/],
    ['add-key with both', ['add-key', '--dir', 'a', '--member', 'x', '--message-key', publicKeyToB64u(taxMsg.publicKey), '--log-key', publicKeyToB64u(taxLog.publicKey)], /exactly one/],
    ['add-key unknown member', ['add-key', '--dir', 'a', '--member', 'x1', '--log-key', publicKeyToB64u(taxLog.publicKey)], /VN_ERR_FED_UNKNOWN_MEMBER/],
    ['remove-key unknown member', ['remove-key', '--dir', 'a', '--member', 'nobody', '--kid', 'k'], /VN_ERR_FED_UNKNOWN_MEMBER/],
    ['revoke-key unknown member', ['revoke-key', '--dir', 'a', '--member', 'nobody', '--kid', 'k'], /VN_ERR_FED_UNKNOWN_MEMBER/],
    ['revoke-key bad at', ['revoke-key', '--dir', 'a', '--member', 'x', '--kid', 'k', '--at', 'soon'], /--at: expected an ISO 8601/],
    ['revoke-key bad seconds', ['revoke-key', '--dir', 'a', '--member', 'x', '--kid', 'k', '--after-seconds', '-5'], /--after-seconds/],
    ['revoke-key both times', ['revoke-key', '--dir', 'a', '--member', 'x', '--kid', 'k', '--after-seconds', '5', '--at', '2030-01-01T00:00:00Z'], /give one/],
    ['valid-days 0', ['sign', '--dir', 'a', '--valid-days', '0'], /--valid-days/],
    ['valid-days text', ['sign', '--dir', 'a', '--valid-days', 'ten'], /--valid-days/],
    ['not an authority dir', ['sign', '--dir', 'elsewhere'], /VN_ERR_CONFIG_INVALID.*cannot be read/],
    ['verify bad min-seq', ['verify', '--manifest', 'm', '--root', 'a/federation-root.pub', '--min-seq', '-1'], /--min-seq/],
    ['verify bad root file', ['verify', '--manifest', 'm', '--root', 'nope.pub'], /VN_ERR_KEY_FILE/],
  ]
  for (const [what, argv, message] of cases) {
    const r = await run(cwd, argv)
    t.equal(r.code, 2, what)
    t.match(r.io.stderr.join('\n'), message, what)
    t.same(r.io.stdout, [], `${what}: nothing on stdout`)
    const j = await run(cwd, argv, true)
    t.equal(j.code, 2, `${what} (json)`)
    t.equal(j.io.stdout.length, 1, `${what}: one JSON document`)
    t.match(JSON.parse(j.io.stdout[0]!), { ok: false, error: { code: /^VN_ERR_/ } }, what)
  }
  t.same(await readdir(join(cwd, 'a')).then((n) => n.sort()), ['federation-root.key', 'federation-root.pub', 'federation.json', 'members.json'], 'nothing else written')
  t.same(JSON.parse(await readFile(join(cwd, 'a', 'members.json'), 'utf8')), { v: 1, members: [] })
})

t.test('help', async (t) => {
  const r = await run(t.testdir({}), ['--help'])
  t.equal(r.code, 0)
  t.match(r.io.stdout[0], /^usage: verinode federation/)
  t.equal(federationCommand.name, 'federation')
})
