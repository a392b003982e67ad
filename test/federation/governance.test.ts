/**
 * The manifest's catalogue section (docs/GOVERNANCE.md): signed with the rest of the manifest, so
 * an altered or unsigned section is refused like any altered manifest; its sources must be
 * departments of the manifest; the authority tooling keeps a draft and signs it in.
 */
import t from 'tap'
import { join } from 'node:path'
import { readFile } from 'node:fs/promises'
import { generateEd25519, publicKeyToB64u } from '../../src/crypto/keys.js'
import { signJwsJson } from '../../src/crypto/jws.js'
import type { VnError } from '../../src/errors.js'
import { MANIFEST_TYP, rootKeyId, signManifest, verifyManifest, type Manifest } from '../../src/federation/manifest.js'
import { addMember, createAuthority, loadGovernance, removeNegative, removeSource, setSource, signAuthorityManifest, AUTHORITY_FILES } from '../../src/federation/authority.js'
import { loadPublicKey } from '../../src/crypto/keys.js'
import { federationCommand } from '../../src/cli/commands/federation.js'
import type { CliIo } from '../../src/cli/types.js'

const root = generateEd25519()
const rootKid = rootKeyId(root.publicKey)
const T0 = Date.UTC(2026, 10, 1)
const key = (): string => publicKeyToB64u(generateEd25519().publicKey)

const base = (): Manifest => ({
  v: 1, federation: 'fujian', seq: 1, iat: T0, exp: T0 + 86_400_000,
  members: [
    { id: 'fj-tax', name: 'tax', uscc: '11350000100000016K', role: 'department', endpoint: 'http://127.0.0.1:7102', messageKeys: [{ kid: 'm1', x: key(), nbf: T0 }], logKeys: [{ kid: 'l1', x: key(), nbf: T0 }] },
    { id: 'fj-audit', name: 'audit', uscc: '11350000100000024E', role: 'auditor', messageKeys: [{ kid: 'a1', x: key(), nbf: T0 }], logKeys: [] },
  ],
  governance: { sources: [{ item: 'tax.payment-compliance', member: 'fj-tax' }], negativeList: [{ item: 'population.biometrics', rule: 'not-shared' }] },
})

const codeOf = (fn: () => unknown): { code?: string; detail?: string } => {
  try {
    fn()
  } catch (e) {
    const v = e as VnError
    return { code: v.code, ...(v.detail === undefined ? {} : { detail: v.detail }) }
  }
  return {}
}

t.test('the section is signed: it verifies as signed, and not once altered or unsigned', async (t) => {
  const jws = signManifest(base(), root.privateKey, rootKid)
  t.same(verifyManifest(jws, root.publicKey, { now: T0 }).governance, base().governance)
  // the payload with the source moved to another member, the signature kept
  const [h, p, s] = jws.split('.') as [string, string, string]
  const altered = JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as Manifest
  altered.governance!.negativeList = []
  const forged = `${h}.${Buffer.from(JSON.stringify(altered)).toString('base64url')}.${s}`
  t.match(codeOf(() => verifyManifest(forged, root.publicKey, { now: T0 })), { code: 'VN_ERR_FED_MANIFEST_INVALID', detail: /^signature: VN_ERR_JWS_SIGNATURE/ }, 'the negative list emptied: the signature fails')
  const other = generateEd25519()
  const wrongSigner = signJwsJson(base(), other.privateKey, rootKid, MANIFEST_TYP)
  t.match(codeOf(() => verifyManifest(wrongSigner, root.publicKey, { now: T0 })), { code: 'VN_ERR_FED_MANIFEST_INVALID', detail: /^signature:/ }, 'signed by another key')
  const unsigned = `${Buffer.from(JSON.stringify({ alg: 'none', typ: MANIFEST_TYP, kid: rootKid })).toString('base64url')}.${p}.`
  t.match(codeOf(() => verifyManifest(unsigned, root.publicKey, { now: T0 })), { code: 'VN_ERR_FED_MANIFEST_INVALID', detail: /^signature:/ }, 'unsigned (alg none)')
  const withoutSection = base()
  delete withoutSection.governance
  t.equal(verifyManifest(signManifest(withoutSection, root.privateKey, rootKid), root.publicKey, { now: T0 }).governance, undefined, 'a manifest without the section still verifies')
})

t.test('sources name departments of this manifest; items are listed once', async (t) => {
  const bad = (edit: (m: Manifest) => void): { code?: string; detail?: string } => {
    const m = base()
    edit(m)
    return codeOf(() => signManifest(m, root.privateKey, rootKid))
  }
  t.match(bad((m) => { m.governance!.sources.push({ item: 'a.b', member: 'fj-nobody' }) }), { code: 'VN_ERR_FED_MANIFEST_INVALID', detail: 'governance.sources[1].member: member fj-nobody is not in this manifest' })
  t.match(bad((m) => { m.governance!.sources.push({ item: 'a.b', member: 'fj-audit' }) }), { code: 'VN_ERR_FED_MANIFEST_INVALID', detail: 'governance.sources[1].member: member fj-audit is not a department' })
  t.match(bad((m) => { m.governance!.sources.push({ item: 'tax.payment-compliance', member: 'fj-tax' }) }), { detail: /more than one authoritative source/ })
  t.match(bad((m) => { m.governance!.negativeList.push({ item: 'population.biometrics', rule: 'conditional' }) }), { detail: /listed twice/ })
  t.match(bad((m) => { m.governance!.negativeList.push({ item: 'Not An Item', rule: 'conditional' }) }), { detail: /must be a data item id/ })
})

t.test('authority tooling and CLI: sources and the negative list go into the next manifest', async (t) => {
  const dir = join(t.testdir({}), 'auth')
  await createAuthority(dir, 'fujian')
  await addMember(dir, { id: 'fj-tax', name: 'tax', uscc: '11350000100000016K', role: 'department', endpoint: 'http://127.0.0.1:7102', messageKeys: [{ key: key() }], logKeys: [{ key: key() }] })
  await addMember(dir, { id: 'fj-audit', name: 'audit', uscc: '11350000100000024E', role: 'auditor', messageKeys: [{ key: key() }] })
  t.same(await loadGovernance(dir), { sources: [], negativeList: [] }, 'no draft: empty')
  const first = await signAuthorityManifest(dir)
  t.equal(first.manifest.governance, undefined, 'an empty section is left out')

  await t.rejects(setSource(dir, 'tax.payment-compliance', 'fj-nobody'), { code: 'VN_ERR_FED_UNKNOWN_MEMBER' })
  await t.rejects(setSource(dir, 'tax.payment-compliance', 'fj-audit'), { code: 'VN_ERR_CONFIG_INVALID', detail: /not a department/ })
  await t.rejects(setSource(dir, 'Bad Item', 'fj-tax'), { code: 'VN_ERR_CONFIG_INVALID', detail: /governance\.json: sources\[0\]\.item/ })
  await t.rejects(removeSource(dir, 'tax.payment-compliance'), { code: 'VN_ERR_CONFIG_INVALID' }, 'nothing to remove')
  await t.rejects(removeNegative(dir, 'a.b'), { code: 'VN_ERR_CONFIG_INVALID' })
  t.same(await loadGovernance(dir), { sources: [], negativeList: [] }, 'the refusals wrote nothing')

  const stdout: string[] = []
  const stderr: string[] = []
  const io: CliIo = { out: (l) => stdout.push(l), err: (l) => stderr.push(l), json: false, tty: false, cwd: process.cwd(), env: {} }
  t.equal(await federationCommand.run(['set-source', '--dir', dir, '--item', 'tax.payment-compliance', '--member', 'fj-tax'], io), 0, stderr.join('\n'))
  t.equal(await federationCommand.run(['negative-add', '--dir', dir, '--item', 'population.biometrics', '--rule', 'not-shared', '--conditions', 'never between departments'], io), 0, stderr.join('\n'))
  t.equal(await federationCommand.run(['negative-add', '--dir', dir, '--item', 'a.b', '--rule', 'sometimes'], io), 2, 'a bad rule is a usage error')
  t.match(stdout.join('\n'), /source\s+tax\.payment-compliance\s+fj-tax[\s\S]*negative\s+population\.biometrics\s+not-shared: never between departments/)
  const signed = await signAuthorityManifest(dir)
  t.same(signed.manifest.governance, { sources: [{ item: 'tax.payment-compliance', member: 'fj-tax' }], negativeList: [{ item: 'population.biometrics', rule: 'not-shared', conditions: 'never between departments' }] })
  const rootPub = await loadPublicKey(join(dir, AUTHORITY_FILES.rootPub))
  t.same(verifyManifest(signed.jws, rootPub, { now: Date.now() }).governance, signed.manifest.governance, 'the section verifies under the root key')
  const verifyOut: string[] = []
  t.equal(await federationCommand.run(['verify', '--manifest', signed.archived, '--root', join(dir, AUTHORITY_FILES.rootPub)], { ...io, out: (l) => verifyOut.push(l) }), 0)
  t.match(verifyOut.join('\n'), /catalogue rules:\n\s+source\s+tax\.payment-compliance\s+fj-tax/)
  await removeSource(dir, 'tax.payment-compliance')
  await removeNegative(dir, 'population.biometrics')
  t.same(JSON.parse(await readFile(join(dir, AUTHORITY_FILES.governance), 'utf8')), { sources: [], negativeList: [] })
})
