import t from 'tap'
import type { KeyObject } from 'node:crypto'
import { readFile, stat, writeFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { generateEd25519, loadPublicKey, publicKeyToB64u } from '../../src/crypto/keys.js'
import {
  AUTHORITY_FILES,
  DAY_MS,
  addKey,
  addMember,
  archivedManifests,
  createAuthority,
  loadDraft,
  removeKey,
  removeMember,
  revokeKey,
  REVOCATION_GRACE_MS,
  signAuthorityManifest,
} from '../../src/federation/authority.js'
import { Federation, FederationHolder } from '../../src/federation/federation.js'
import { KeyHistory } from '../../src/federation/key-history.js'
import { keyIdFor, verifyManifest } from '../../src/federation/manifest.js'

const T0 = Date.UTC(2026, 10, 1)
const taxMsg = generateEd25519()
const taxLog = generateEd25519()
const audMsg = generateEd25519()

async function setup(dir: string): Promise<void> {
  await createAuthority(dir, '福建省')
  await addMember(
    dir,
    {
      id: 'fj-tax',
      name: '福建省税务局',
      uscc: '11350000100000016K',
      role: 'department',
      endpoint: 'http://127.0.0.1:7102',
      messageKeys: [{ key: taxMsg.publicKey }],
      logKeys: [{ key: publicKeyToB64u(taxLog.publicKey), kid: 'log-1' }],
    },
    T0,
  )
  await addMember(dir, { id: 'fj-audit', name: '审计厅', uscc: '11350000100000024E', role: 'auditor', messageKeys: [{ key: audMsg.publicKey }] }, T0)
}

t.test('create writes a 0600 root key, the anchor and an empty draft', async (t) => {
  const dir = join(t.testdir({}), 'authority')
  const r = await createAuthority(dir, '福建省政务数据共享')
  t.equal((await stat(join(dir, AUTHORITY_FILES.rootKey))).mode & 0o777, 0o600)
  t.equal(publicKeyToB64u(await loadPublicKey(join(dir, AUTHORITY_FILES.rootPub))), r.rootPublicKey)
  const d = await loadDraft(dir)
  t.same(d.members, [])
  t.same(d.state, { v: 1, federation: '福建省政务数据共享', rootKid: r.rootKid, seq: 0 })
  await t.rejects(createAuthority(dir, 'again'), { code: 'VN_ERR_CONFIG_INVALID' }, 'never overwrites a root key')
  await t.rejects(createAuthority(join(dir, 'x'), ''), { code: 'VN_ERR_CONFIG_INVALID' })
  await t.rejects(createAuthority(join(dir, 'y'), 'a\nb'), { code: 'VN_ERR_CONFIG_INVALID' })
})

t.test('add members, sign, verify; seq increments and manifests are archived', async (t) => {
  const dir = t.testdir({})
  await setup(dir)
  const root = await loadPublicKey(join(dir, AUTHORITY_FILES.rootPub))
  const out = join(dir, 'out', '..', 'manifest.jws')
  const s1 = await signAuthorityManifest(dir, { now: T0, out, validMs: 7 * DAY_MS })
  t.equal(s1.manifest.seq, 1)
  t.same(s1.warnings, [])
  t.equal((await readFile(out, 'utf8')).trim(), s1.jws)
  const m = verifyManifest((await readFile(out, 'utf8')).trim(), root, { now: T0 + DAY_MS })
  t.equal(m.exp, T0 + 7 * DAY_MS)
  const f = new Federation(m, s1.jws)
  t.equal(f.member('fj-tax').messageKeys.get(keyIdFor(taxMsg.publicKey))?.nbf, T0, 'kid derived from the key, nbf = now')
  t.ok(f.member('fj-tax').logKeys.has('log-1'))
  t.equal(f.member('fj-audit').role, 'auditor')

  const s2 = await signAuthorityManifest(dir, { now: T0 + 1000 })
  t.equal(s2.manifest.seq, 2)
  t.equal(s2.manifest.exp, T0 + 1000 + 30 * DAY_MS, 'default validity 30 days')
  t.equal((await loadDraft(dir)).state.seq, 2)
  t.same(await readdir(join(dir, AUTHORITY_FILES.manifests)), ['000001.jws', '000002.jws'])
  const h = KeyHistory.fromJws(await archivedManifests(dir), root)
  t.same(h.manifests.map((x) => x.seq), [1, 2])
  t.same(await archivedManifests(join(dir, 'nowhere')), [])
})

t.test('a crash between archiving and the state update never reuses a seq', async (t) => {
  const dir = t.testdir({})
  await setup(dir)
  await signAuthorityManifest(dir, { now: T0 })
  const state = JSON.parse(await readFile(join(dir, AUTHORITY_FILES.state), 'utf8')) as Record<string, unknown>
  await writeFile(join(dir, AUTHORITY_FILES.state), JSON.stringify({ ...state, seq: 0 }))
  t.equal((await signAuthorityManifest(dir, { now: T0 + 1 })).manifest.seq, 2)
})

t.test('remove a key; the next manifest revokes it', async (t) => {
  const dir = t.testdir({})
  await setup(dir)
  const root = await loadPublicKey(join(dir, AUTHORITY_FILES.rootPub))
  const rotated = generateEd25519()
  const added = await addKey(dir, 'fj-tax', 'message', { key: rotated.publicKey, nbf: T0 + 5, exp: T0 + 10 * DAY_MS }, T0)
  t.same(added, { kid: keyIdFor(rotated.publicKey), x: publicKeyToB64u(rotated.publicKey), nbf: T0 + 5, exp: T0 + 10 * DAY_MS })
  await t.rejects(addKey(dir, 'fj-tax', 'log', { key: rotated.publicKey }, T0), { code: 'VN_ERR_CONFIG_INVALID' }, 'kid already used')
  await t.rejects(addKey(dir, 'fj-nobody', 'log', { key: rotated.publicKey }, T0), { code: 'VN_ERR_FED_UNKNOWN_MEMBER' })
  const s1 = await signAuthorityManifest(dir, { now: T0 })
  const holder = new FederationHolder(root)
  t.ok(holder.accept(s1.jws, T0).ok)
  const oldKid = keyIdFor(taxMsg.publicKey)
  t.ok(holder.get(T0).messageKey(`fj-tax#${oldKid}`, T0))

  t.same(await removeKey(dir, 'fj-tax', oldKid), { list: 'messageKeys' })
  t.same(await removeKey(dir, 'fj-tax', 'log-1'), { list: 'logKeys' })
  await t.rejects(removeKey(dir, 'fj-tax', oldKid), { code: 'VN_ERR_JWS_UNKNOWN_KID' })
  await t.rejects(removeKey(dir, 'fj-nobody', oldKid), { code: 'VN_ERR_FED_UNKNOWN_MEMBER' })
  const s2 = await signAuthorityManifest(dir, { now: T0 + 1 })
  t.same(s2.warnings, ['member fj-tax has no unexpired log key'])
  t.ok(holder.accept(s2.jws, T0 + 1).ok)
  t.throws(() => holder.get(T0 + 1).messageKey(`fj-tax#${oldKid}`, T0 + 1), { code: 'VN_ERR_JWS_UNKNOWN_KID' })

  await removeMember(dir, 'fj-audit')
  await t.rejects(removeMember(dir, 'fj-audit'), { code: 'VN_ERR_FED_UNKNOWN_MEMBER' })
  t.same((await loadDraft(dir)).members.map((m) => m.id), ['fj-tax'])
})

t.test('revoke a key at an explicit time: it stays listed with exp, refused from then on', async (t) => {
  const dir = t.testdir({})
  await setup(dir)
  const root = await loadPublicKey(join(dir, AUTHORITY_FILES.rootPub))
  const kid = keyIdFor(taxMsg.publicKey)
  const r = await revokeKey(dir, 'fj-tax', kid, { now: T0 + 1000 })
  t.equal(r.list, 'messageKeys')
  t.equal(r.key.exp, T0 + 1000 + REVOCATION_GRACE_MS, 'default: the propagation allowance from now')
  t.equal((await revokeKey(dir, 'fj-tax', kid, { at: T0 + 5 * REVOCATION_GRACE_MS })).key.exp, T0 + 1000 + REVOCATION_GRACE_MS, 'a later time never extends an earlier one')
  t.equal((await revokeKey(dir, 'fj-tax', kid, { at: T0 + 2000 })).key.exp, T0 + 2000, 'an earlier time wins')
  await t.rejects(revokeKey(dir, 'fj-tax', kid, { at: T0 }), { code: 'VN_ERR_CONFIG_INVALID' }, 'not after nbf')
  await t.rejects(revokeKey(dir, 'fj-tax', 'nope'), { code: 'VN_ERR_JWS_UNKNOWN_KID' })
  await t.rejects(revokeKey(dir, 'fj-nobody', kid), { code: 'VN_ERR_FED_UNKNOWN_MEMBER' })
  const s = await signAuthorityManifest(dir, { now: T0 + 1500 })
  t.match(s.warnings, [/has no unexpired message key|ends at/], 'sign warns about a revocation that leaves little room')
  t.ok(s.warnings.some((w) => w.includes(`fj-tax#${kid}`) && w.includes('AUDIT_KEY_REVOCATION_WINDOW')))
  const holder = new FederationHolder(root)
  t.ok(holder.accept(s.jws, T0 + 1500).ok)
  t.ok(holder.get(T0 + 1999).messageKey(`fj-tax#${kid}`, T0 + 1999), 'valid before the effective time')
  t.throws(() => holder.get(T0 + 2000).messageKey(`fj-tax#${kid}`, T0 + 2000), { code: 'VN_ERR_JWS_KEY_NOT_VALID' }, 'refused from it')
})

t.test('bad member input names the field and writes nothing', async (t) => {
  const dir = t.testdir({})
  await setup(dir)
  const before = await readFile(join(dir, AUTHORITY_FILES.members), 'utf8')
  const good = {
    id: 'fj-amr',
    name: '市场监管局',
    uscc: '113500001000000329',
    role: 'department' as const,
    endpoint: 'http://127.0.0.1:7103',
    messageKeys: [{ key: generateEd25519().publicKey }],
    logKeys: [{ key: generateEd25519().publicKey }],
  }
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['duplicate id', { id: 'fj-tax' }, /^id: member fj-tax already exists/],
    ['bad id', { id: 'FJ AMR' }, /^id: /],
    ['bad uscc', { uscc: '113500001000000320' }, /^uscc: check character/],
    ['no endpoint', { endpoint: undefined }, /^endpoint: required for role department/],
    ['auditor with endpoint', { role: 'auditor' }, /^endpoint: an auditor/],
    ['bad endpoint', { endpoint: 'ftp://x' }, /^endpoint: /],
    ['no log key', { logKeys: [] }, /^logKeys: a department needs a log key/],
    ['no message key', { messageKeys: [] }, /^messageKeys: at least one/],
    ['bad key', { messageKeys: [{ key: 'AAAA' }] }, /^messageKeys\[0\]: not an Ed25519 or SM2 public key/],
    ['rsa-shaped string', { logKeys: [{ key: 'x'.repeat(43) }] }, /^logKeys\[0\]: not an Ed25519 or SM2 public key/],
    ['bad kid', { messageKeys: [{ key: generateEd25519().publicKey, kid: 'a#b' }] }, /^messageKeys\[0\]\.kid: /],
    ['bad fingerprint', { tlsFingerprint: 'zz' }, /^tlsFingerprint: /],
  ]
  for (const [what, patch, detail] of cases) {
    const input = { ...good, ...patch }
    if ('endpoint' in patch && patch.endpoint === undefined) delete (input as Record<string, unknown>).endpoint
    await t.rejects(addMember(dir, input as typeof good, T0), { code: 'VN_ERR_CONFIG_INVALID', detail }, what)
    t.equal(await readFile(join(dir, AUTHORITY_FILES.members), 'utf8'), before, `${what}: nothing written`)
  }
  await addMember(dir, good, T0)
  t.equal((await loadDraft(dir)).members.length, 3)
})

t.test('the same message key, log key or credit code twice, or the root key as a member key, is refused with its own code', async (t) => {
  const dir = t.testdir({})
  await setup(dir)
  const before = await readFile(join(dir, AUTHORITY_FILES.members), 'utf8')
  const root = (await readFile(join(dir, AUTHORITY_FILES.rootPub), 'utf8')).trim()
  const fresh = () => ({
    id: 'fj-amr', name: '市场监管局', uscc: '113500001000000329', role: 'department' as const, endpoint: 'http://127.0.0.1:7103',
    messageKeys: [{ key: generateEd25519().publicKey }] as { key: KeyObject | string }[], logKeys: [{ key: generateEd25519().publicKey }] as { key: KeyObject | string }[],
  })
  const cases: Array<[string, Record<string, unknown>, string, RegExp]> = [
    ['another member\'s message key', { messageKeys: [{ key: taxMsg.publicKey }] }, 'VN_ERR_FED_KEY_IN_USE', /^messageKeys\[0\]: this public key is already the message key .* of fj-tax/],
    ['another member\'s log key as a log key', { logKeys: [{ key: taxLog.publicKey }] }, 'VN_ERR_FED_KEY_IN_USE', /^logKeys\[0\]: this public key is already the log key log-1 of fj-tax/],
    ['another member\'s log key as a message key', { messageKeys: [{ key: taxLog.publicKey }] }, 'VN_ERR_FED_KEY_IN_USE', /already the log key log-1 of fj-tax/],
    ['one key for both uses', (() => { const k = generateEd25519().publicKey; return { messageKeys: [{ key: k }], logKeys: [{ key: k }] } })(), 'VN_ERR_FED_KEY_IN_USE', /^logKeys\[0\]: this public key is already messageKeys\[0\]/],
    ['another member\'s credit code', { uscc: '11350000100000016K' }, 'VN_ERR_FED_USCC_IN_USE', /^uscc: member fj-tax already has this credit code/],
    ['the root key as a message key', { messageKeys: [{ key: root }] }, 'VN_ERR_FED_ROOT_KEY_REUSED', /^messageKeys\[0\]: this is the federation root key/],
    ['the root key as a log key', { logKeys: [{ key: root }] }, 'VN_ERR_FED_ROOT_KEY_REUSED', /^logKeys\[0\]: this is the federation root key/],
  ]
  for (const [what, patch, code, detail] of cases) {
    await t.rejects(addMember(dir, { ...fresh(), ...patch }, T0), { code, detail }, what)
    t.equal(await readFile(join(dir, AUTHORITY_FILES.members), 'utf8'), before, `${what}: nothing written`)
  }
  await t.rejects(addKey(dir, 'fj-audit', 'message', { key: taxMsg.publicKey }, T0), { code: 'VN_ERR_FED_KEY_IN_USE' }, 'add-key: another member\'s key')
  await t.rejects(addKey(dir, 'fj-audit', 'message', { key: root }, T0), { code: 'VN_ERR_FED_ROOT_KEY_REUSED' }, 'add-key: the root key')
  t.equal(await readFile(join(dir, AUTHORITY_FILES.members), 'utf8'), before, 'nothing written')
  await addMember(dir, fresh(), T0)
  t.equal((await loadDraft(dir)).members.length, 3, 'a member with keys and a code of its own is added')
})

t.test('sign refuses bad state', async (t) => {
  const dir = t.testdir({})
  await setup(dir)
  await t.rejects(signAuthorityManifest(dir, { validMs: 0 }), { code: 'VN_ERR_CONFIG_INVALID' })
  await t.rejects(signAuthorityManifest(dir, { validMs: 3651 * DAY_MS }), { code: 'VN_ERR_CONFIG_INVALID' })
  // A root .pub that does not belong to the .key.
  const pubPath = join(dir, AUTHORITY_FILES.rootPub)
  const saved = await readFile(pubPath, 'utf8')
  await writeFile(pubPath, `${publicKeyToB64u(generateEd25519().publicKey)}\n`)
  await t.rejects(signAuthorityManifest(dir, { now: T0 }), { code: 'VN_ERR_CONFIG_INVALID', detail: /do not belong together/ })
  await writeFile(pubPath, saved)
  await writeFile(join(dir, AUTHORITY_FILES.members), '{"v":1,"members":[{"id":"x"}]}')
  await t.rejects(signAuthorityManifest(dir, { now: T0 }), { code: 'VN_ERR_CONFIG_INVALID', detail: /^members\.json: members\[0\]/ })
  await writeFile(join(dir, AUTHORITY_FILES.members), 'not json')
  await t.rejects(loadDraft(dir), { code: 'VN_ERR_CONFIG_INVALID', detail: /not JSON/ })
  await t.rejects(loadDraft(join(dir, 'nope')), { code: 'VN_ERR_CONFIG_INVALID', detail: /cannot be read/ })
  t.same(await readdir(join(dir)).then((n) => n.includes(AUTHORITY_FILES.manifests)), false, 'no manifest was signed')
})
