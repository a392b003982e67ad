/**
 * `verinode federation`: the federation authority's tooling (docs/DESIGN.md "CLI": create, add member,
 * sign manifest), plus `verify` for node operators to check a manifest against their trust anchor.
 * A thin layer over src/federation/authority.ts; see that file for the directory layout.
 */
import { UsageError, attachDashValues, reportUsage } from '../args.js'
import type { KeyObject } from 'node:crypto'
import { readFile, stat } from 'node:fs/promises'
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { loadPublicKey } from '../../crypto/keys.js'
import { isProfileName } from '../../crypto/profile.js'
import { VnError, isVnError } from '../../errors.js'
import { errorOf } from '../output.js'
import { PUBLIC_KEY_RE } from '../../protocol/vocabulary.js'
import {
  DAY_MS,
  addKey,
  addMember,
  addTlsPin,
  createAuthority,
  removeKey,
  removeMember,
  removeTlsPin,
  setSource,
  removeSource,
  addNegative,
  removeNegative,
  loadGovernance,
  revokeKey,
  REVOCATION_GRACE_MS,
  signAuthorityManifest,
  type KeyInput,
  type NewMember,
} from '../../federation/authority.js'
import { Federation, manifestHash } from '../../federation/federation.js'
import type { ManifestGovernance, NegativeEntry } from '../../protocol/governance.js'
import { EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, type CliIo, type Command } from '../types.js'

const USAGE = `usage: verinode federation <subcommand> [options] [--json]

  create        --dir D --name <federation> [--profile intl|sm]
                  new authority directory: root key pair (federation-root.key 0600, .pub) and an
                  empty members.json draft; --profile sm makes an SM2 root key, and every manifest
                  then names profile sm (SM2/SM3/SM4, docs/NATIONAL-ALGORITHMS.md)
  add-member    --dir D --id <member> --name <display name> --uscc <code> --role department|auditor
                  [--endpoint URL] --message-key <.pub file|base64url> [--message-kid K]
                  [--log-key <.pub file|base64url>] [--log-kid K] [--tls-pin HEX ...]
                  [--not-before ISO] [--not-after ISO]
                  departments need --endpoint and --log-key; auditors have neither. --tls-pin
                  (repeatable): the SHA-256 of the node's TLS key (SPKI), as \`verinode init\`
                  prints it; an https endpoint needs one. (--tls-fingerprint is not checked.)
  add-tls-pin   --dir D --member M --tls-pin HEX   (TLS key rotation: list the new key beside the old)
  remove-tls-pin --dir D --member M --tls-pin HEX  (once the node serves the new key)
  add-key       --dir D --member M (--message-key K | --log-key K) [--kid K] [--not-before ISO] [--not-after ISO]
  revoke-key    --dir D --member M --kid K [--at ISO | --after-seconds N]
                  revokes the key at an explicit time (default: in 60 s, room for every node to
                  reload the next manifest): it stays listed with not-after set to that time
  remove-key    --dir D --member M --kid K      (drops the key: revoked as soon as a node loads
                  the next manifest, with no time for the others to reload; prefer revoke-key)
  remove-member --dir D --member M
  set-source    --dir D --item I --member M
                  names department M the one authoritative source of data item I (一数一源);
                  a node of another member that offers I refuses to start
  remove-source --dir D --item I
  negative-add  --dir D --item I --rule not-shared|conditional [--conditions TEXT]
                  puts I on the negative list (负面清单): not-shared items are never offered or
                  answered; conditional ones only under an agreement (never unconditional)
  negative-remove --dir D --item I
  governance    --dir D      (shows the draft's sources and negative list)
  sign          --dir D [--out manifest.jws] [--valid-days 30]
                  signs the draft as the next manifest (seq increments; a copy goes to D/manifests/)
  verify        --manifest F --root <federation-root.pub> [--min-seq N]
                  checks a manifest against the trust anchor, as a node does

Key ids default to the first 16 characters of the key's RFC 7638 thumbprint.`

const OPTIONS = {
  dir: { type: 'string' },
  profile: { type: 'string' },
  name: { type: 'string' },
  id: { type: 'string' },
  uscc: { type: 'string' },
  role: { type: 'string' },
  endpoint: { type: 'string' },
  'message-key': { type: 'string', multiple: true },
  'message-kid': { type: 'string' },
  'log-key': { type: 'string', multiple: true },
  'log-kid': { type: 'string' },
  'tls-fingerprint': { type: 'string' },
  'tls-pin': { type: 'string', multiple: true },
  'not-before': { type: 'string' },
  'not-after': { type: 'string' },
  member: { type: 'string' },
  kid: { type: 'string' },
  out: { type: 'string' },
  'valid-days': { type: 'string' },
  manifest: { type: 'string' },
  root: { type: 'string' },
  'min-seq': { type: 'string' },
  at: { type: 'string' },
  'after-seconds': { type: 'string' },
  item: { type: 'string' },
  rule: { type: 'string' },
  conditions: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true; strict: true }>>['values']

function need(v: Values, name: keyof Values & string): string {
  const x = v[name]
  if (typeof x !== 'string' || x.length === 0) throw new UsageError(`--${name} is required`)
  return x
}

function instant(v: Values, name: 'not-before' | 'not-after'): number | undefined {
  const x = v[name]
  if (x === undefined) return undefined
  const t = Date.parse(x)
  if (!/^\d{4}-\d{2}-\d{2}/.test(x) || Number.isNaN(t)) throw new UsageError(`--${name}: expected an ISO 8601 date-time`)
  return t
}

/** A key argument is a path to a .pub file (one line of base64url) or the base64url key itself. */
async function keyArg(value: string, cwd: string, flag: string): Promise<KeyObject | string> {
  const path = resolve(cwd, value)
  const isFile = await stat(path).then(
    (s) => s.isFile(),
    () => false,
  )
  if (isFile) return loadPublicKey(path)
  if (PUBLIC_KEY_RE.test(value)) return value
  throw new UsageError(`--${flag}: neither a readable public key file nor a base64url Ed25519 or SM2 public key`)
}

async function keyInputs(values: string[] | undefined, kid: string | undefined, cwd: string, flag: string, nbf: number | undefined, exp: number | undefined): Promise<KeyInput[]> {
  const list = values ?? []
  if (kid !== undefined && list.length !== 1) throw new UsageError(`--${flag.replace(/key$/, 'kid')} needs exactly one --${flag}`)
  const out: KeyInput[] = []
  for (const v of list) {
    const k: KeyInput = { key: await keyArg(v, cwd, flag) }
    if (kid !== undefined) k.kid = kid
    if (nbf !== undefined) k.nbf = nbf
    if (exp !== undefined) k.exp = exp
    out.push(k)
  }
  return out
}

/** A TLS pin: SHA-256 of a SubjectPublicKeyInfo, 64 hex digits (stored lower case). */
function pinArg(value: string): string {
  if (!/^[0-9a-fA-F]{64}$/.test(value)) throw new UsageError('--tls-pin: expected 64 hex digits (the SHA-256 of the TLS key\'s SPKI, as `verinode init` prints it)')
  return value.toLowerCase()
}

function governanceLines(g: ManifestGovernance | undefined): string[] {
  if (g === undefined || (g.sources.length === 0 && g.negativeList.length === 0)) return ['  no sources named, negative list empty']
  return [
    ...g.sources.map((x) => `  source    ${x.item.padEnd(36)} ${x.member}`),
    ...g.negativeList.map((n) => `  negative  ${n.item.padEnd(36)} ${n.rule}${n.conditions === undefined ? '' : `: ${n.conditions}`}`),
  ]
}

interface Outcome {
  code: number
  doc: Record<string, unknown>
  lines: string[]
}

async function runSub(sub: string, v: Values, io: CliIo): Promise<Outcome> {
  const dir = (): string => resolve(io.cwd, need(v, 'dir'))
  switch (sub) {
    case 'create': {
      const d = dir()
      const name = need(v, 'name')
      const profile = v.profile ?? 'intl'
      if (!isProfileName(profile)) throw new UsageError('--profile must be intl or sm')
      const r = await createAuthority(d, name, profile)
      return {
        code: EXIT_OK,
        doc: { dir: d, federation: name, profile, rootKid: r.rootKid, rootPublicKey: r.rootPublicKey },
        lines: [`created federation ${name}${profile === 'intl' ? '' : ` (crypto profile ${profile}: SM2, SM3, SM4)`} in ${d}`, `root key id: ${r.rootKid}`, `trust anchor: ${resolve(d, 'federation-root.pub')} (give this file to every node)`],
      }
    }
    case 'add-member': {
      const d = dir()
      const role = need(v, 'role')
      if (role !== 'department' && role !== 'auditor') throw new UsageError('--role must be department or auditor')
      const nbf = instant(v, 'not-before')
      const exp = instant(v, 'not-after')
      const m: NewMember = {
        id: need(v, 'id'),
        name: need(v, 'name'),
        uscc: need(v, 'uscc'),
        role,
        messageKeys: await keyInputs(v['message-key'], v['message-kid'], io.cwd, 'message-key', nbf, exp),
        logKeys: await keyInputs(v['log-key'], v['log-kid'], io.cwd, 'log-key', nbf, exp),
      }
      if (v.endpoint !== undefined) m.endpoint = v.endpoint
      if (v['tls-fingerprint'] !== undefined) m.tlsFingerprint = v['tls-fingerprint']
      if (v['tls-pin'] !== undefined) m.tlsPins = v['tls-pin'].map(pinArg)
      const added = await addMember(d, m)
      const kids = [...added.messageKeys.map((k) => `message ${k.kid}`), ...added.logKeys.map((k) => `log ${k.kid}`)]
      return {
        code: EXIT_OK,
        doc: { dir: d, member: added },
        lines: [`added ${added.role} ${added.id} (${added.name})`, `keys: ${kids.join(', ')}`, 'run `verinode federation sign` to publish'],
      }
    }
    case 'add-key': {
      const d = dir()
      const member = need(v, 'member')
      const msg = v['message-key'] ?? []
      const log = v['log-key'] ?? []
      if (msg.length + log.length !== 1) throw new UsageError('add-key takes exactly one --message-key or --log-key')
      const use = msg.length === 1 ? 'message' : 'log'
      const [input] = await keyInputs(use === 'message' ? msg : log, v.kid, io.cwd, `${use}-key`, instant(v, 'not-before'), instant(v, 'not-after'))
      const k = await addKey(d, member, use, input!)
      return { code: EXIT_OK, doc: { dir: d, member, use, key: k }, lines: [`added ${use} key ${member}#${k.kid}`, 'run `verinode federation sign` to publish'] }
    }
    case 'remove-key': {
      const d = dir()
      const member = need(v, 'member')
      const kid = need(v, 'kid')
      const r = await removeKey(d, member, kid)
      return {
        code: EXIT_OK,
        doc: { dir: d, member, kid, list: r.list },
        lines: [`removed ${r.list === 'messageKeys' ? 'message' : 'log'} key ${member}#${kid}`, 'run `verinode federation sign` to publish the revocation'],
      }
    }
    case 'revoke-key': {
      const d = dir()
      const member = need(v, 'member')
      const kid = need(v, 'kid')
      if (v.at !== undefined && v['after-seconds'] !== undefined) throw new UsageError('--at and --after-seconds: give one')
      let at: number | undefined
      if (v.at !== undefined) {
        at = Date.parse(v.at)
        if (!/^\d{4}-\d{2}-\d{2}T/.test(v.at) || Number.isNaN(at)) throw new UsageError('--at: expected an ISO 8601 date-time')
      } else if (v['after-seconds'] !== undefined) {
        if (!/^\d{1,9}$/.test(v['after-seconds'])) throw new UsageError('--after-seconds: expected a whole number of seconds')
        at = Date.now() + Number(v['after-seconds']) * 1000
      }
      const r = await revokeKey(d, member, kid, at === undefined ? {} : { at })
      const when = new Date(r.key.exp ?? 0).toISOString()
      return {
        code: EXIT_OK,
        doc: { dir: d, member, kid, list: r.list, revokedAt: r.key.exp },
        lines: [
          `${r.list === 'messageKeys' ? 'message' : 'log'} key ${member}#${kid} is revoked at ${when}${at === undefined ? ` (default: ${REVOCATION_GRACE_MS / 1000} s from now)` : ''}`,
          'run `verinode federation sign` now and install the manifest on every node before then',
        ],
      }
    }
    case 'add-tls-pin':
    case 'remove-tls-pin': {
      const d = dir()
      const member = need(v, 'member')
      const pins = v['tls-pin'] ?? []
      if (pins.length !== 1) throw new UsageError(`${sub} takes exactly one --tls-pin`)
      const pin = pinArg(pins[0]!)
      const list = sub === 'add-tls-pin' ? await addTlsPin(d, member, pin) : await removeTlsPin(d, member, pin)
      return {
        code: EXIT_OK,
        doc: { dir: d, member, tlsPins: list },
        lines: [`${sub === 'add-tls-pin' ? 'added' : 'removed'} TLS pin ${pin} of ${member} (now ${list.length} listed)`, 'run `verinode federation sign` to publish'],
      }
    }
    case 'remove-member': {
      const d = dir()
      const member = need(v, 'member')
      await removeMember(d, member)
      return { code: EXIT_OK, doc: { dir: d, member }, lines: [`removed member ${member}`, 'run `verinode federation sign` to publish'] }
    }
    case 'set-source':
    case 'remove-source':
    case 'negative-add':
    case 'negative-remove':
    case 'governance': {
      const d = dir()
      let g: ManifestGovernance
      if (sub === 'governance') g = await loadGovernance(d)
      else if (sub === 'set-source') g = await setSource(d, need(v, 'item'), need(v, 'member'))
      else if (sub === 'remove-source') g = await removeSource(d, need(v, 'item'))
      else if (sub === 'negative-remove') g = await removeNegative(d, need(v, 'item'))
      else {
        const rule = need(v, 'rule')
        if (rule !== 'not-shared' && rule !== 'conditional') throw new UsageError('--rule must be not-shared or conditional')
        const entry: NegativeEntry = { item: need(v, 'item'), rule }
        if (v.conditions !== undefined) entry.conditions = v.conditions
        g = await addNegative(d, entry)
      }
      return {
        code: EXIT_OK,
        doc: { dir: d, governance: g },
        lines: [...governanceLines(g), ...(sub === 'governance' ? [] : ['run `verinode federation sign` to publish'])],
      }
    }
    case 'sign': {
      const d = dir()
      let validMs: number | undefined
      if (v['valid-days'] !== undefined) {
        const days = Number(v['valid-days'])
        if (!/^\d+(\.\d+)?$/.test(v['valid-days']) || !(days > 0) || days > 3650) throw new UsageError('--valid-days: expected a number of days in (0, 3650]')
        validMs = Math.round(days * DAY_MS)
      }
      const out = v.out === undefined ? undefined : resolve(io.cwd, v.out)
      const r = await signAuthorityManifest(d, { ...(validMs === undefined ? {} : { validMs }), ...(out === undefined ? {} : { out }) })
      return {
        code: EXIT_OK,
        doc: {
          dir: d,
          out: out ?? null,
          archived: r.archived,
          federation: r.manifest.federation,
          seq: r.manifest.seq,
          iat: r.manifest.iat,
          exp: r.manifest.exp,
          members: r.manifest.members.length,
          hash: manifestHash(r.jws),
          warnings: r.warnings,
        },
        lines: [
          `signed manifest seq ${r.manifest.seq} of ${r.manifest.federation}: ${r.manifest.members.length} members, valid until ${new Date(r.manifest.exp).toISOString()}`,
          `written to ${out ?? r.archived}${out === undefined ? '' : ` (archived as ${r.archived})`}`,
          ...r.warnings.map((w) => `warning: ${w}`),
        ],
      }
    }
    case 'verify': {
      const path = resolve(io.cwd, need(v, 'manifest'))
      const root = await loadPublicKey(resolve(io.cwd, need(v, 'root')))
      let minSeq: number | undefined
      if (v['min-seq'] !== undefined) {
        if (!/^\d+$/.test(v['min-seq'])) throw new UsageError('--min-seq: expected a non-negative integer')
        minSeq = Number(v['min-seq'])
      }
      let text: string
      try {
        text = (await readFile(path, 'utf8')).trim()
      } catch (e) {
        throw new VnError('VN_ERR_FED_MANIFEST_INVALID', `${path}: cannot be read`, { cause: e })
      }
      const f = Federation.fromJws(text, root, { now: Date.now(), ...(minSeq === undefined ? {} : { minSeq }) })
      const members = f.members().map((m) => ({ id: m.id, role: m.role, messageKeys: [...m.messageKeys.keys()], logKeys: [...m.logKeys.keys()], tlsPins: [...m.tlsPins] }))
      return {
        code: EXIT_OK,
        doc: { valid: true, federation: f.name, seq: f.seq, iat: f.iat, exp: f.exp, hash: f.hash, members, governance: f.manifest.governance ?? null },
        lines: [
          `manifest OK: ${f.name} seq ${f.seq}, valid until ${new Date(f.exp).toISOString()}, hash ${f.hash}`,
          ...members.map((m) => `  ${m.id.padEnd(20)} ${m.role.padEnd(10)} message keys: ${m.messageKeys.join(' ') || '-'}  log keys: ${m.logKeys.join(' ') || '-'}`),
          'catalogue rules:',
          ...governanceLines(f.manifest.governance),
        ],
      }
    }
    default:
      throw new UsageError(sub === '' ? 'missing subcommand' : `unknown subcommand ${JSON.stringify(sub.slice(0, 40))}`)
  }
}

export const federationCommand: Command = {
  name: 'federation',
  summary: 'federation authority: create a root key, add members and keys, sign the manifest; verify a manifest',
  usage: USAGE,
  async run(argv: string[], io: CliIo): Promise<number> {
    let sub = ''
    const fail = (code: number, error: Record<string, unknown>, human: string): number => {
      if (io.json) io.out(JSON.stringify({ ok: false, command: `federation ${sub}`.trim(), error }))
      else io.err(human)
      return code
    }
    let values: Values
    try {
      const parsed = parseArgs({ args: attachDashValues(argv, OPTIONS), options: OPTIONS, allowPositionals: true, strict: true })
      values = parsed.values
      sub = parsed.positionals[0] ?? ''
      if (parsed.positionals.length > 1) throw new UsageError(`unexpected argument ${JSON.stringify(parsed.positionals[1]!.slice(0, 40))}`)
    } catch (e) {
      return reportUsage(io, `federation ${sub}`.trim(), USAGE, e instanceof UsageError ? e.detail : (e as Error).message)
    }
    if (values.help === true) {
      if (io.json) io.out(JSON.stringify({ ok: true, command: 'federation', usage: USAGE }))
      else io.out(USAGE)
      return EXIT_OK
    }
    try {
      const r = await runSub(sub, values, io)
      if (io.json) io.out(JSON.stringify({ ok: true, command: `federation ${sub}`, ...r.doc }))
      else for (const l of r.lines) io.out(l)
      return r.code
    } catch (e) {
      if (e instanceof UsageError) return reportUsage(io, `federation ${sub}`.trim(), USAGE, e.detail)
      if (isVnError(e)) {
        // A manifest that fails `verify` is a finding (exit 1); anything else is bad input or config.
        const code = sub === 'verify' && e.code.startsWith('VN_ERR_FED_') ? EXIT_FINDINGS : EXIT_USAGE
        return fail(code, errorOf(e), `error ${e.code}: ${e.message}`)
      }
      throw e
    }
  },
}
