/**
 * Federation authority tooling (docs/DESIGN.md "Actors": the provincial data bureau holds the root key
 * and signs the manifest; it runs no data service and sees no exchange).
 *
 * An authority directory holds:
 * ```
 * federation-root.key   PKCS#8 PEM, mode 0600: the root private key (never leaves this folder)
 * federation-root.pub   base64url raw public key: the trust anchor every node installs
 * federation.json       { v: 1, federation, rootKid, seq }: seq of the last signed manifest
 * members.json          { v: 1, members: [...] }: the draft member list, edited by add-member etc.
 * manifests/NNNNNN.jws  every manifest ever signed, by seq (the auditor's key history)
 * ```
 * The `verinode federation` CLI command is a thin layer over these functions; the demo and tests
 * call them directly. Files are replaced atomically (write, then rename), so an interrupted command
 * leaves the previous state.
 */
import { randomBytes, type KeyObject } from 'node:crypto'
import { mkdir, readFile, readdir, rename, stat, writeFile, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'
import { assertKeyProfile, profileOfKey, type ProfileName } from '../crypto/profile.js'
import { generateKeyPairFor, loadPrivateKey, loadPublicKey, publicKeyFromB64u, publicKeyToB64u, writePrivateKey, writePublicKey } from '../crypto/keys.js'
import { VnError } from '../errors.js'
import { ManifestGovernanceSchema, type ManifestGovernance, type NegativeEntry } from '../protocol/governance.js'
import {
  MemberSchema,
  keyIdFor,
  rootKeyId,
  signManifest,
  zodDetail,
  type Manifest,
  type ManifestKey,
  type Member,
  type MemberRole,
} from './manifest.js'

export const AUTHORITY_FILES = {
  rootKey: 'federation-root.key',
  rootPub: 'federation-root.pub',
  state: 'federation.json',
  members: 'members.json',
  /** the draft of the manifest's catalogue section (one source per item, negative list); optional */
  governance: 'governance.json',
  manifests: 'manifests',
} as const

export const DAY_MS = 86_400_000

/**
 * How long after `revoke-key` a revocation takes effect by default: the time a new manifest needs
 * to reach every node (each re-reads its file every 30 s, or at once on SIGHUP or the local API's
 * reload), so that no node accepts the key after it was revoked merely because it had not yet
 * reloaded (docs/OPERATIONS.md "Manifest revocation and expiry").
 */
export const REVOCATION_GRACE_MS = 60_000

const StateSchema = z.strictObject({
  v: z.literal(1),
  federation: z.string().min(1).max(100),
  rootKid: z.string().min(1),
  seq: z.number().int().min(0),
})
const DraftSchema = z.strictObject({ v: z.literal(1), members: z.array(MemberSchema) })

export type AuthorityState = z.infer<typeof StateSchema>

export interface Draft {
  state: AuthorityState
  members: Member[]
}

/** A key to list: a public KeyObject or its base64url raw form. */
export interface KeyInput {
  key: KeyObject | string
  /** default: `keyIdFor(key)`, derived from the key */
  kid?: string
  /** default: now */
  nbf?: number
  exp?: number
}

export interface NewMember {
  id: string
  name: string
  uscc: string
  role: MemberRole
  endpoint?: string
  messageKeys: KeyInput[]
  logKeys?: KeyInput[]
  tlsFingerprint?: string
  /** SPKI SHA-256 pins (hex) of the member's TLS keys (`verinode init` prints its pin) */
  tlsPins?: string[]
}

async function writeAtomic(path: string, data: string, mode = 0o644): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`
  try {
    await writeFile(tmp, data, { mode, flag: 'wx' })
    await rename(tmp, path)
  } catch (e) {
    await unlink(tmp).catch(() => undefined)
    throw e
  }
}

const bad = (detail: string): VnError => new VnError('VN_ERR_CONFIG_INVALID', detail)

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  )
}

async function readJson(path: string): Promise<unknown> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (e) {
    throw new VnError('VN_ERR_CONFIG_INVALID', `${path}: cannot be read (not an authority directory?)`, { cause: e })
  }
  try {
    return JSON.parse(text)
  } catch (e) {
    throw new VnError('VN_ERR_CONFIG_INVALID', `${path}: not JSON`, { cause: e })
  }
}

/**
 * Creates an authority directory: a fresh root key pair, `federation.json` with seq 0 and an empty
 * `members.json`. Refuses a directory that already holds a root key. The root key's kind chooses
 * the federation's crypto profile (src/crypto/profile.ts): Ed25519 for `intl` (default), SM2 for
 * `sm`; every manifest it signs names that profile, and only member keys of it are accepted.
 */
export async function createAuthority(dir: string, federation: string, profile: ProfileName = 'intl'): Promise<{ rootKid: string; rootPublicKey: string }> {
  if (typeof federation !== 'string' || federation.length === 0 || federation.length > 100 || /\p{Cc}/u.test(federation)) {
    throw bad('name: 1-100 characters without control characters')
  }
  if (await exists(join(dir, AUTHORITY_FILES.rootKey))) throw bad(`${dir}: already holds ${AUTHORITY_FILES.rootKey}`)
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const kp = generateKeyPairFor(profile)
  const rootKid = rootKeyId(kp.publicKey)
  await writePrivateKey(join(dir, AUTHORITY_FILES.rootKey), kp.privateKey)
  await writePublicKey(join(dir, AUTHORITY_FILES.rootPub), kp.publicKey)
  const state: AuthorityState = { v: 1, federation, rootKid, seq: 0 }
  await writeAtomic(join(dir, AUTHORITY_FILES.members), `${JSON.stringify({ v: 1, members: [] }, null, 2)}\n`)
  await writeAtomic(join(dir, AUTHORITY_FILES.state), `${JSON.stringify(state, null, 2)}\n`)
  return { rootKid, rootPublicKey: publicKeyToB64u(kp.publicKey) }
}

/** Reads and validates the authority state and member draft. @throws VN_ERR_CONFIG_INVALID */
export async function loadDraft(dir: string): Promise<Draft> {
  const s = StateSchema.safeParse(await readJson(join(dir, AUTHORITY_FILES.state)))
  if (!s.success) throw bad(zodDetail(s.error, `${AUTHORITY_FILES.state}: `))
  const d = DraftSchema.safeParse(await readJson(join(dir, AUTHORITY_FILES.members)))
  if (!d.success) throw bad(zodDetail(d.error, `${AUTHORITY_FILES.members}: `))
  return { state: s.data, members: d.data.members }
}

/** Validates the whole member list (ids unique, every member well-formed) and writes it. */
async function saveMembers(dir: string, members: Member[]): Promise<void> {
  const d = DraftSchema.safeParse({ v: 1, members })
  if (!d.success) throw bad(zodDetail(d.error))
  const ids = new Set<string>()
  for (const m of d.data.members) {
    if (ids.has(m.id)) throw bad(`members: duplicate member id ${m.id}`)
    ids.add(m.id)
  }
  await writeAtomic(join(dir, AUTHORITY_FILES.members), `${JSON.stringify(d.data, null, 2)}\n`)
}

/** Turns a KeyInput into a manifest key entry. @throws VN_ERR_CONFIG_INVALID */
function toManifestKey(k: KeyInput, field: string, now: number): ManifestKey {
  let key: KeyObject
  try {
    key = typeof k.key === 'string' ? publicKeyFromB64u(k.key, field) : k.key
    publicKeyToB64u(key)
  } catch {
    throw bad(`${field}: not an Ed25519 or SM2 public key`)
  }
  const out: ManifestKey = { kid: k.kid ?? keyIdFor(key), x: publicKeyToB64u(key), nbf: k.nbf ?? now }
  if (k.exp !== undefined) out.exp = k.exp
  return out
}

/**
 * Refuses keys that would make two parties indistinguishable: the root key as a member key
 * (VN_ERR_FED_ROOT_KEY_REUSED), and a public key already listed for any member, in either list
 * (VN_ERR_FED_KEY_IN_USE). `entries` are the new keys with the field that named them.
 */
async function checkNewKeys(dir: string, members: Member[], entries: { field: string; key: ManifestKey }[]): Promise<void> {
  const rootKey = await loadPublicKey(join(dir, AUTHORITY_FILES.rootPub))
  const root = publicKeyToB64u(rootKey)
  // One federation, one crypto profile: the root key's.
  const profile = profileOfKey(rootKey) ?? 'intl'
  for (const { field, key } of entries) assertKeyProfile(publicKeyFromB64u(key.x, field), profile, field)
  const seen = new Map<string, string>()
  for (const m of members) {
    for (const k of m.messageKeys) seen.set(k.x, `the message key ${k.kid} of ${m.id}`)
    for (const k of m.logKeys) seen.set(k.x, `the log key ${k.kid} of ${m.id}`)
  }
  for (const { field, key } of entries) {
    if (key.x === root) throw new VnError('VN_ERR_FED_ROOT_KEY_REUSED', `${field}: this is the federation root key; a member needs keys of its own (verinode init makes them)`)
    const other = seen.get(key.x)
    if (other !== undefined) throw new VnError('VN_ERR_FED_KEY_IN_USE', `${field}: this public key is already ${other}; each member and each use needs its own key`)
    seen.set(key.x, field)
  }
}

/**
 * Adds a member to the draft.
 * @throws VN_ERR_CONFIG_INVALID (the detail names the field), VN_ERR_FED_USCC_IN_USE,
 *   VN_ERR_FED_KEY_IN_USE, VN_ERR_FED_ROOT_KEY_REUSED
 */
export async function addMember(dir: string, input: NewMember, now: number = Date.now()): Promise<Member> {
  const { members } = await loadDraft(dir)
  if (members.some((m) => m.id === input.id)) throw bad(`id: member ${input.id} already exists`)
  const candidate: Record<string, unknown> = {
    id: input.id,
    name: input.name,
    uscc: input.uscc,
    role: input.role,
    messageKeys: input.messageKeys.map((k, i) => toManifestKey(k, `messageKeys[${i}]`, now)),
    logKeys: (input.logKeys ?? []).map((k, i) => toManifestKey(k, `logKeys[${i}]`, now)),
  }
  if (input.endpoint !== undefined) candidate.endpoint = input.endpoint
  if (input.tlsFingerprint !== undefined) candidate.tlsFingerprint = input.tlsFingerprint
  if (input.tlsPins !== undefined && input.tlsPins.length > 0) candidate.tlsPins = input.tlsPins.map((p) => p.toLowerCase())
  const taken = members.find((m) => (m.tlsPins ?? []).some((p) => input.tlsPins?.some((q) => q.toLowerCase() === p)))
  if (taken !== undefined) throw bad(`tlsPins: a pin is already listed for member ${taken.id}`)
  // Before the schema, whose duplicate-kid rule would name the symptom, not the shared key.
  await checkNewKeys(dir, members, [
    ...(candidate.messageKeys as ManifestKey[]).map((key, i) => ({ field: `messageKeys[${i}]`, key })),
    ...(candidate.logKeys as ManifestKey[]).map((key, i) => ({ field: `logKeys[${i}]`, key })),
  ])
  const r = MemberSchema.safeParse(candidate)
  if (!r.success) throw bad(zodDetail(r.error))
  if (r.data.role === 'department' && r.data.logKeys.length === 0) throw bad('logKeys: a department needs a log key')
  if (r.data.messageKeys.length === 0) throw bad('messageKeys: at least one message key is required')
  const sameUscc = members.find((m) => m.uscc === r.data.uscc)
  if (sameUscc !== undefined) throw new VnError('VN_ERR_FED_USCC_IN_USE', `uscc: member ${sameUscc.id} already has this credit code; one organisation is one member`)
  await saveMembers(dir, [...members, r.data])
  return r.data
}

/** Adds a key to an existing member (rotation: add the new key, sign, later remove the old one). */
export async function addKey(dir: string, memberId: string, use: 'message' | 'log', k: KeyInput, now: number = Date.now()): Promise<ManifestKey> {
  const { members } = await loadDraft(dir)
  const m = members.find((x) => x.id === memberId)
  if (m === undefined) throw new VnError('VN_ERR_FED_UNKNOWN_MEMBER', `member ${memberId} is not in the draft`)
  const list = use === 'message' ? 'messageKeys' : 'logKeys'
  const entry = toManifestKey(k, list, now)
  if ([...m.messageKeys, ...m.logKeys].some((x) => x.kid === entry.kid)) throw bad(`kid: ${entry.kid} already used by member ${memberId}`)
  await checkNewKeys(dir, members, [{ field: list, key: entry }])
  m[list] = [...m[list], entry]
  await saveMembers(dir, members)
  return entry
}

/**
 * Adds a TLS pin to a member (rotation: add the new pin, sign, install the manifest on every node,
 * then switch the node to the new key, and later remove the old pin). @throws VN_ERR_CONFIG_INVALID
 */
export async function addTlsPin(dir: string, memberId: string, pin: string): Promise<string[]> {
  const { members } = await loadDraft(dir)
  const m = members.find((x) => x.id === memberId)
  if (m === undefined) throw new VnError('VN_ERR_FED_UNKNOWN_MEMBER', `member ${memberId} is not in the draft`)
  const p = pin.toLowerCase()
  const owner = members.find((x) => (x.tlsPins ?? []).includes(p))
  if (owner !== undefined) throw bad(`tls-pin: already listed for member ${owner.id}`)
  m.tlsPins = [...(m.tlsPins ?? []), p]
  await saveMembers(dir, members)
  return m.tlsPins
}

/** Removes a TLS pin from a member (the end of a rotation). @throws VN_ERR_CONFIG_INVALID */
export async function removeTlsPin(dir: string, memberId: string, pin: string): Promise<string[]> {
  const { members } = await loadDraft(dir)
  const m = members.find((x) => x.id === memberId)
  if (m === undefined) throw new VnError('VN_ERR_FED_UNKNOWN_MEMBER', `member ${memberId} is not in the draft`)
  const p = pin.toLowerCase()
  if (!(m.tlsPins ?? []).includes(p)) throw bad(`tls-pin: member ${memberId} has no such pin`)
  const rest = (m.tlsPins ?? []).filter((x) => x !== p)
  if (rest.length === 0) delete m.tlsPins
  else m.tlsPins = rest
  await saveMembers(dir, members)
  return rest
}

/** Removes a key (either list) from a member: published by the next `sign`, this revokes it. */
export async function removeKey(dir: string, memberId: string, kid: string): Promise<{ list: 'messageKeys' | 'logKeys' }> {
  const { members } = await loadDraft(dir)
  const m = members.find((x) => x.id === memberId)
  if (m === undefined) throw new VnError('VN_ERR_FED_UNKNOWN_MEMBER', `member ${memberId} is not in the draft`)
  for (const list of ['messageKeys', 'logKeys'] as const) {
    const i = m[list].findIndex((k) => k.kid === kid)
    if (i >= 0) {
      m[list] = m[list].filter((_, j) => j !== i)
      await saveMembers(dir, members)
      return { list }
    }
  }
  throw new VnError('VN_ERR_JWS_UNKNOWN_KID', `member ${memberId} has no key ${kid}`)
}

export interface RevokeOptions {
  /** the instant the revocation takes effect, ms; default now + REVOCATION_GRACE_MS */
  at?: number
  now?: number
}

/**
 * Revokes a key (either list) at an explicit instant: the key stays listed with `exp` set to that
 * instant (an earlier `exp` is kept), so every node that has loaded the next manifest refuses it
 * from then on, and an auditor can tell an exchange accepted before the revocation took effect
 * from one accepted after. Published by the next `sign`.
 * @throws VN_ERR_FED_UNKNOWN_MEMBER, VN_ERR_JWS_UNKNOWN_KID, VN_ERR_CONFIG_INVALID (`at` not after the key's nbf)
 */
export async function revokeKey(dir: string, memberId: string, kid: string, opts: RevokeOptions = {}): Promise<{ list: 'messageKeys' | 'logKeys'; key: ManifestKey }> {
  const now = opts.now ?? Date.now()
  const at = opts.at ?? now + REVOCATION_GRACE_MS
  if (!Number.isSafeInteger(at) || at < 0) throw bad('at: an instant in ms since the epoch')
  const { members } = await loadDraft(dir)
  const m = members.find((x) => x.id === memberId)
  if (m === undefined) throw new VnError('VN_ERR_FED_UNKNOWN_MEMBER', `member ${memberId} is not in the draft`)
  for (const list of ['messageKeys', 'logKeys'] as const) {
    const k = m[list].find((x) => x.kid === kid)
    if (k === undefined) continue
    if (at <= k.nbf) throw bad(`at: ${new Date(at).toISOString()} is not after the key's nbf ${new Date(k.nbf).toISOString()} (use remove-key for a key never valid)`)
    k.exp = k.exp === undefined ? at : Math.min(k.exp, at)
    await saveMembers(dir, members)
    return { list, key: k }
  }
  throw new VnError('VN_ERR_JWS_UNKNOWN_KID', `member ${memberId} has no key ${kid}`)
}

/** Removes a member altogether (published by the next `sign`). */
export async function removeMember(dir: string, memberId: string): Promise<void> {
  const { members } = await loadDraft(dir)
  const rest = members.filter((m) => m.id !== memberId)
  if (rest.length === members.length) throw new VnError('VN_ERR_FED_UNKNOWN_MEMBER', `member ${memberId} is not in the draft`)
  await saveMembers(dir, rest)
}

/** The draft of the catalogue section (`governance.json`); empty when the file does not exist. */
export async function loadGovernance(dir: string): Promise<ManifestGovernance> {
  const path = join(dir, AUTHORITY_FILES.governance)
  if (!(await exists(path))) return { sources: [], negativeList: [] }
  const g = ManifestGovernanceSchema.safeParse(await readJson(path))
  if (!g.success) throw bad(zodDetail(g.error, `${AUTHORITY_FILES.governance}: `))
  return g.data
}

async function saveGovernance(dir: string, g: ManifestGovernance): Promise<ManifestGovernance> {
  const r = ManifestGovernanceSchema.safeParse(g)
  if (!r.success) throw bad(zodDetail(r.error, `${AUTHORITY_FILES.governance}: `))
  await writeAtomic(join(dir, AUTHORITY_FILES.governance), `${JSON.stringify(r.data, null, 2)}\n`)
  return r.data
}

/**
 * Names `member` the authoritative source of `item` (一数一源), replacing any earlier source.
 * @throws VN_ERR_FED_UNKNOWN_MEMBER (not in the draft), VN_ERR_CONFIG_INVALID (not a department, bad item id)
 */
export async function setSource(dir: string, item: string, member: string): Promise<ManifestGovernance> {
  const { members } = await loadDraft(dir)
  const m = members.find((x) => x.id === member)
  if (m === undefined) throw new VnError('VN_ERR_FED_UNKNOWN_MEMBER', `member ${member} is not in the draft`)
  if (m.role !== 'department') throw bad(`source: member ${member} is not a department`)
  const g = await loadGovernance(dir)
  return saveGovernance(dir, { ...g, sources: [...g.sources.filter((s) => s.item !== item), { item, member }] })
}

/** Drops the source of `item`. @throws VN_ERR_CONFIG_INVALID when none is named */
export async function removeSource(dir: string, item: string): Promise<ManifestGovernance> {
  const g = await loadGovernance(dir)
  if (!g.sources.some((s) => s.item === item)) throw bad(`source: no source is named for item ${item}`)
  return saveGovernance(dir, { ...g, sources: g.sources.filter((s) => s.item !== item) })
}

/** Puts `item` on the negative list (负面清单), replacing an earlier entry. @throws VN_ERR_CONFIG_INVALID */
export async function addNegative(dir: string, entry: NegativeEntry): Promise<ManifestGovernance> {
  const g = await loadGovernance(dir)
  return saveGovernance(dir, { ...g, negativeList: [...g.negativeList.filter((n) => n.item !== entry.item), entry] })
}

/** Takes `item` off the negative list. @throws VN_ERR_CONFIG_INVALID when it is not listed */
export async function removeNegative(dir: string, item: string): Promise<ManifestGovernance> {
  const g = await loadGovernance(dir)
  if (!g.negativeList.some((n) => n.item === item)) throw bad(`negative list: item ${item} is not listed`)
  return saveGovernance(dir, { ...g, negativeList: g.negativeList.filter((n) => n.item !== item) })
}

async function lastSeq(dir: string, stateSeq: number): Promise<number> {
  let names: string[] = []
  try {
    names = await readdir(join(dir, AUTHORITY_FILES.manifests))
  } catch {
    // no manifest signed yet
  }
  let max = stateSeq
  for (const n of names) {
    const m = /^([0-9]{6,})\.jws$/.exec(n)
    if (m !== null) max = Math.max(max, Number(m[1]))
  }
  return max
}

/** Every archived manifest JWS in seq order (input for KeyHistory.fromJws). */
export async function archivedManifests(dir: string): Promise<string[]> {
  let names: string[] = []
  try {
    names = await readdir(join(dir, AUTHORITY_FILES.manifests))
  } catch {
    return []
  }
  const seqs = names.flatMap((n) => {
    const m = /^([0-9]{6,})\.jws$/.exec(n)
    return m === null ? [] : [{ n, seq: Number(m[1]) }]
  })
  seqs.sort((a, b) => a.seq - b.seq)
  return Promise.all(seqs.map(async ({ n }) => (await readFile(join(dir, AUTHORITY_FILES.manifests, n), 'utf8')).trim()))
}

export interface SignOptions {
  /** validity from now; default 30 days */
  validMs?: number
  now?: number
  /** also write the manifest here (the copy under manifests/ is always written) */
  out?: string
}

export interface SignResult {
  jws: string
  manifest: Manifest
  /** path of the archived copy, manifests/NNNNNN.jws */
  archived: string
  /** non-fatal remarks, e.g. a department left without a valid message key */
  warnings: string[]
}

/**
 * Signs the draft as the next manifest: seq = last seq + 1, iat = now, exp = now + validMs. The
 * last seq is the larger of the state file's and the highest archived manifest's, so a crash
 * between archiving and updating the state never reuses a seq.
 */
export async function signAuthorityManifest(dir: string, opts: SignOptions = {}): Promise<SignResult> {
  const now = opts.now ?? Date.now()
  const validMs = opts.validMs ?? 30 * DAY_MS
  if (!Number.isSafeInteger(validMs) || validMs <= 0 || validMs > 3650 * DAY_MS) throw bad('valid-days: must be more than 0 and at most 3650 days')
  const { state, members } = await loadDraft(dir)
  const rootKey = await loadPrivateKey(join(dir, AUTHORITY_FILES.rootKey))
  const rootPub = await loadPublicKey(join(dir, AUTHORITY_FILES.rootPub))
  if (publicKeyToB64u(rootKey) !== publicKeyToB64u(rootPub) || rootKeyId(rootPub) !== state.rootKid) {
    throw bad(`${AUTHORITY_FILES.rootKey}, ${AUTHORITY_FILES.rootPub} and ${AUTHORITY_FILES.state} rootKid do not belong together`)
  }
  const manifest: Manifest = { v: 1, federation: state.federation, seq: (await lastSeq(dir, state.seq)) + 1, iat: now, exp: now + validMs, members }
  // The root key's kind is the federation's profile; `intl` stays implicit, as in every manifest before profiles.
  if (profileOfKey(rootKey) === 'sm') manifest.profile = 'sm'
  const governance = await loadGovernance(dir)
  if (governance.sources.length > 0 || governance.negativeList.length > 0) manifest.governance = governance
  const warnings: string[] = []
  for (const m of members) {
    const live = (ks: ManifestKey[]): boolean => ks.some((k) => k.exp === undefined || k.exp > now)
    if (!live(m.messageKeys)) warnings.push(`member ${m.id} has no unexpired message key`)
    if (m.role === 'department' && !live(m.logKeys)) warnings.push(`member ${m.id} has no unexpired log key`)
    if (m.endpoint?.startsWith('https:') === true && (m.tlsPins ?? []).length === 0) warnings.push(`member ${m.id} has an https endpoint and no TLS pin: no node will connect to it (add-tls-pin)`)
    for (const k of [...m.messageKeys, ...m.logKeys]) {
      if (k.exp !== undefined && k.exp > now - REVOCATION_GRACE_MS && k.exp < now + REVOCATION_GRACE_MS) {
        warnings.push(`key ${m.id}#${k.kid} ends at ${new Date(k.exp).toISOString()}, less than ${REVOCATION_GRACE_MS / 1000} s from this manifest's issue: nodes that have not reloaded by then still accept it (audit reports AUDIT_KEY_REVOCATION_WINDOW)`)
      }
    }
  }
  const jws = signManifest(manifest, rootKey, state.rootKid)
  await mkdir(join(dir, AUTHORITY_FILES.manifests), { recursive: true })
  const archived = join(dir, AUTHORITY_FILES.manifests, `${String(manifest.seq).padStart(6, '0')}.jws`)
  await writeFile(archived, `${jws}\n`, { flag: 'wx' })
  if (opts.out !== undefined) await writeAtomic(opts.out, `${jws}\n`)
  await writeAtomic(join(dir, AUTHORITY_FILES.state), `${JSON.stringify({ ...state, seq: manifest.seq }, null, 2)}\n`)
  return { jws, manifest, archived, warnings }
}
