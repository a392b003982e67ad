/**
 * A new node's keys and config (`verinode init`, the demo federation). Private keys are written 0600
 * and never printed; the public halves are returned for the federation authority's
 * `federation add-member`.
 */
import { randomBytes, createHash } from 'node:crypto'
import { mkdir, writeFile, access } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import type { ProfileName } from '../crypto/profile.js'
import { generateKeyPairFor, writePrivateKey, writePublicKey, writeSecretFile, publicKeyToB64u } from '../crypto/keys.js'
import { nodeKeyFiles } from './files.js'
import { createOprfSeed, oprfSeedFile } from '../oprf/tagset-service.js'
import { MEMBER_ID_RE } from '../protocol/vocabulary.js'
import type { ConfigInput } from '../config/schema.js'
import { initTls, TLS_CONFIG, type TlsFiles } from './tls.js'

export interface InitOptions {
  dir: string
  member: string
  port?: number
  localPort?: number
  host?: string
  /** extra config merged in (services, agreements, dataSource) */
  extra?: Partial<ConfigInput>
  /** a TLS key and self-signed certificate (`true`), or these existing files, as keys/tls.* (./tls.ts) */
  tls?: boolean | TlsFiles
  /** also a read-only `auditor` application (console sign-in for auditors, docs/CONSOLE.md) */
  auditor?: boolean
  /** the federation's crypto profile: Ed25519 (`intl`, default) or SM2 (`sm`) message and log keys */
  profile?: ProfileName
}

export interface InitResult {
  configPath: string
  messageKey: string
  logKey: string
  /** the local API token for a first application; shown once, only its hash is stored */
  appToken: string
  /** with `auditor`: the token of the read-only `auditor` application; shown once */
  auditorToken?: string
  /** with `tls`: the SPKI SHA-256 pin of the TLS key, for `federation add-member --tls-pin` */
  tlsPin?: string
}

export async function initNode(o: InitOptions): Promise<InitResult> {
  if (!MEMBER_ID_RE.test(o.member)) throw new TypeError(`member: must match ${MEMBER_ID_RE.source}`)
  const dir = resolve(o.dir)
  const configPath = join(dir, 'verinode.json')
  if (await access(configPath).then(() => true, () => false)) throw new Error(`${configPath} already exists`)
  // TLS first: existing files that do not belong together stop init before anything is written
  const tls = await initTls(o, join(dir, 'keys'))
  const keys = nodeKeyFiles(join(dir, 'keys'))
  const msg = generateKeyPairFor(o.profile ?? 'intl')
  const log = generateKeyPairFor(o.profile ?? 'intl')
  await writePrivateKey(keys.messageKey, msg.privateKey)
  await writePrivateKey(keys.logKey, log.privateKey)
  await writePublicKey(keys.messagePub, msg.publicKey)
  await writePublicKey(keys.logPub, log.publicKey)
  await writeSecretFile(keys.evidenceKey)
  // oprf mode: the master seed every epoch key is derived from (src/oprf/tagset-service.ts)
  await createOprfSeed(oprfSeedFile(join(dir, 'keys')))
  await mkdir(join(dir, 'var'), { recursive: true, mode: 0o700 })
  await mkdir(join(dir, 'federation'), { recursive: true })
  const appToken = `vnt_${randomBytes(24).toString('base64url')}`
  const auditorToken = o.auditor === true ? `vnt_${randomBytes(24).toString('base64url')}` : undefined
  // The token's hash follows the profile: SM3 under `sm` (no SHA-256 in an `sm` node), else SHA-256.
  const tokenHash = (tok: string): { tokenSha256: string } | { tokenSm3: string } =>
    o.profile === 'sm' ? { tokenSm3: createHash('sm3').update(tok).digest('hex') } : { tokenSha256: createHash('sha256').update(tok).digest('hex') }
  const config: ConfigInput = {
    member: o.member,
    keysDir: 'keys',
    dataDir: 'var',
    federation: { rootKey: 'keys/federation-root.pub', manifest: 'federation/manifest.jws' },
    listen: { host: o.host ?? '127.0.0.1', port: o.port ?? 7100 },
    local: { host: '127.0.0.1', port: o.localPort ?? 7180, apps: [
      { name: 'default', ...tokenHash(appToken) },
      ...(auditorToken === undefined ? [] : [{ name: 'auditor', ...tokenHash(auditorToken), role: 'auditor' as const }]),
    ] },
    ...(tls === undefined ? {} : { tls: TLS_CONFIG }),
    ...o.extra,
  }
  await writeFile(configPath, `${JSON.stringify(config, null, 2)}\n`, { flag: 'wx' })
  return { configPath, messageKey: publicKeyToB64u(msg.publicKey), logKey: publicKeyToB64u(log.publicKey), appToken, ...(auditorToken === undefined ? {} : { auditorToken }), ...(tls === undefined ? {} : { tlsPin: tls.pin }) }
}
