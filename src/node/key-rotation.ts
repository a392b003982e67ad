/**
 * Key rotation as a logged key event (issue 5 §6; docs/DESIGN.md "Keys and the federation").
 *
 * `verinode keys rotate --which message|log` makes a new Ed25519 key pair (SM2 under the `sm` profile) and writes a `key-event`
 * record with `event: 'rotated'` into the node's own log, carrying the new public key and two
 * Ed25519 signatures over one canonical statement: one by the old private key (the holder of the
 * key in force hands over) and one by the new private key (proof of possession of the new key).
 * The auditor (src/audit/checks/key-events.ts) re-builds the statement (src/log/rotation-statement.ts)
 * from the record and checks both, so a log cannot claim a rotation its key holder did not make,
 * nor one to a key nobody holds.
 *
 * The log append needs the node stopped (offline-log.ts). Afterwards the new key replaces the
 * old one in `keys/` (the old private key is kept as `<file>.retired-<time>`, mode 0600), and the
 * authority must list the new key (`verinode federation add-key`) before peers accept it: a
 * message-key rotation keeps the node from starting until the new manifest is installed.
 */
import type { KeyObject } from 'node:crypto'
import { signBytes } from '../crypto/profile.js'
import { readFile, rename, writeFile } from 'node:fs/promises'
import { loadConfig, type LoadedConfig } from '../config/load.js'
import { selfSignedCertificate, spkiPin } from '../crypto/tls-cert.js'
import { generateEd25519, generateKeyPairFor, loadPrivateKey, loadPublicKey, publicKeyToB64u, writePrivateKey } from '../crypto/keys.js'
import { VnError } from '../errors.js'
import { Federation } from '../federation/federation.js'
import { keyIdFor } from '../federation/manifest.js'
import { logOrigin } from '../log/peer-logs.js'
import type { KeyEventRecord } from '../log/records.js'
import { rotationStatement, type RotationStatement } from '../log/rotation-statement.js'
import { nodeKeyFiles } from './files.js'
import { appendOffline } from './offline-log.js'
import { nodeLogLocation } from './log-store.js'
import { wrongMemberError } from './identity.js'
import { readTlsFiles, TLS_CERT_DAYS, tlsFilesOf } from './tls.js'

export interface RotationResult {
  member: string
  which: 'message' | 'log' | 'tls'
  /** base64url raw public key, and the kid the authority's add-key will give it by default */
  newKey: string
  newKid: string
  /** the old key's kid in the manifest in force */
  oldKid: string
  /** leaf index of the rotated key event, and the log size after it */
  index: number
  size: number
  privateKeyFile: string
  retiredFile: string
  /** tls only: the old and new pins (SPKI SHA-256, hex), and the new certificate's file and end */
  tls?: { oldPin: string; newPin: string; certFile: string; notAfter: number }
}

const stamp = (ms: number): string => new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')

/**
 * Rotates the message or log key of the (stopped) node configured in `configPath`.
 * @throws VN_ERR_CONFIG_INVALID, VN_ERR_KEY_FILE, VN_ERR_FED_MANIFEST_INVALID, VN_ERR_AUDIT_NODE_RUNNING
 */
export async function rotateKey(configPath: string, which: 'message' | 'log' | 'tls', opts: { env?: Record<string, string | undefined>; now?: () => number } = {}): Promise<RotationResult> {
  const now = opts.now ?? Date.now
  const loaded = await loadConfig(configPath, opts.env ?? process.env)
  const cfg = loaded.config
  const files = nodeKeyFiles(loaded.path(cfg.keysDir))
  const root = await loadPublicKey(loaded.path(cfg.federation.rootKey))
  const fed = Federation.fromJws((await readFile(loaded.path(cfg.federation.manifest), 'utf8')).trim(), root, { now: now(), allowExpired: true })
  const messageKey = await loadPrivateKey(files.messageKey)
  const logKey = await loadPrivateKey(files.logKey)
  const messagePub = publicKeyToB64u(messageKey)
  const logPub = publicKeyToB64u(logKey)
  const wrong = wrongMemberError(fed, cfg.member, messagePub, 'keys/message.key')
  if (wrong !== undefined) throw wrong
  const member = fed.member(cfg.member)
  const msgKid = [...member.messageKeys.values()].find((k) => k.x === messagePub)
  if (msgKid === undefined) throw new VnError('VN_ERR_KEY_FILE', `keys/message.key is not a message key of ${cfg.member} in manifest seq ${fed.seq}`)
  if (which === 'tls') return rotateTls({ cfg, loaded, fed, messagePub, logPub, logKey, msgKid: msgKid.kid, now })
  const listed = (which === 'message' ? member.messageKeys : member.logKeys)
  const old = [...listed.values()].find((k) => k.x === (which === 'message' ? messagePub : logPub))
  if (old === undefined) throw new VnError('VN_ERR_KEY_FILE', `keys/${which}.key is not a ${which} key of ${cfg.member} in manifest seq ${fed.seq}`)

  // the federation's profile: an SM2 key under `sm`, Ed25519 otherwise
  const fresh = generateKeyPairFor(fed.profile)
  const newKey = publicKeyToB64u(fresh.publicKey)
  const at = now()
  const oldPrivate: KeyObject = which === 'message' ? messageKey : logKey
  const statement: RotationStatement = { member: cfg.member, which, oldKey: which === 'message' ? messagePub : logPub, newKey, at, manifestHash: fed.hash }
  const bytes = rotationStatement(statement)
  const record: KeyEventRecord = {
    v: 1, at, t: 'key-event', event: 'rotated', member: cfg.member,
    messageKid: `${cfg.member}#${msgKid.kid}`, messageKey: messagePub, logKey: logPub,
    manifestSeq: fed.seq, manifestHash: fed.hash,
    rotated: which, newKey,
    oldSig: signBytes(bytes, oldPrivate).toString('base64url'),
    newSig: signBytes(bytes, fresh.privateKey).toString('base64url'),
  }
  // Log first (the checkpoint over it is signed with the key still listed), then swap the files.
  const { first, size } = await appendOffline(nodeLogLocation(cfg, loaded), [record], logKey, logOrigin(fed.name, cfg.member))

  const keyFile = which === 'message' ? files.messageKey : files.logKey
  const pubFile = which === 'message' ? files.messagePub : files.logPub
  const retiredFile = `${keyFile}.retired-${stamp(at)}`
  const staged = `${keyFile}.new-${process.pid}`
  await writePrivateKey(staged, fresh.privateKey)
  await rename(keyFile, retiredFile)
  await rename(staged, keyFile)
  await writeFile(pubFile, `${newKey}\n`, { mode: 0o644 })
  return { member: cfg.member, which, newKey, newKid: keyIdFor(fresh.publicKey), oldKid: old.kid, index: first, size, privateKeyFile: keyFile, retiredFile }
}

interface TlsRotationInput {
  cfg: LoadedConfig['config']
  loaded: LoadedConfig
  fed: Federation
  messagePub: string
  logPub: string
  logKey: KeyObject
  msgKid: string
  now: () => number
}

/**
 * `keys rotate --which tls`: a new Ed25519 TLS key and self-signed certificate replace the files the
 * config's `tls` names (the old key kept as `<file>.retired-<time>`), after a `rotated` key event
 * with `rotated: 'tls'`, the old key in `tlsKey`, signed by the old and the new TLS key. The node
 * serves the new key at its next start, which needs a manifest listing the new pin: the overlap is
 * the authority listing both pins (add-tls-pin) until every peer has that manifest.
 */
async function rotateTls(i: TlsRotationInput): Promise<RotationResult> {
  const { cfg, loaded, fed } = i
  const files = tlsFilesOf(cfg, (p) => loaded.path(p))
  if (files === undefined) throw new VnError('VN_ERR_CONFIG_INVALID', 'the config has no "tls": there is no TLS key to rotate (verinode init makes one)')
  const current = await readTlsFiles(files)
  if (current.key.asymmetricKeyType !== 'ed25519') {
    throw new VnError('VN_ERR_TLS_CONFIG', `${files.key}: a ${current.key.asymmetricKeyType ?? 'non-Ed25519'} key; keys rotate signs the key event with Ed25519 TLS keys only (replace the files and the pin by hand)`)
  }
  const oldPin = current.pin
  if (!fed.member(cfg.member).tlsPins.has(oldPin)) throw new VnError('VN_ERR_TLS_CONFIG', `${files.cert}: its key (pin ${oldPin}) is not pinned for ${cfg.member} in manifest seq ${fed.seq}`)
  const oldKey = publicKeyToB64u(current.key)
  const fresh = generateEd25519()
  const newKey = publicKeyToB64u(fresh.publicKey)
  const at = i.now()
  const statement: RotationStatement = { member: cfg.member, which: 'tls', oldKey, newKey, at, manifestHash: fed.hash }
  const bytes = rotationStatement(statement)
  const record: KeyEventRecord = {
    v: 1, at, t: 'key-event', event: 'rotated', member: cfg.member,
    messageKid: `${cfg.member}#${i.msgKid}`, messageKey: i.messagePub, logKey: i.logPub,
    manifestSeq: fed.seq, manifestHash: fed.hash,
    rotated: 'tls', tlsKey: oldKey, newKey,
    oldSig: signBytes(bytes, current.key).toString('base64url'),
    newSig: signBytes(bytes, fresh.privateKey).toString('base64url'),
  }
  const { first, size } = await appendOffline(nodeLogLocation(cfg, loaded), [record], i.logKey, logOrigin(fed.name, cfg.member))

  const notAfter = at + TLS_CERT_DAYS * 86_400_000
  const certPem = selfSignedCertificate(fresh.privateKey, { commonName: `verinode ${cfg.member}`, notBefore: at - 60_000, notAfter })
  const retiredFile = `${files.key}.retired-${stamp(at)}`
  const stagedKey = `${files.key}.new-${process.pid}`
  const stagedCert = `${files.cert}.new-${process.pid}`
  await writePrivateKey(stagedKey, fresh.privateKey)
  await writeFile(stagedCert, certPem, { mode: 0o644 })
  await rename(files.key, retiredFile)
  await rename(files.cert, `${files.cert}.retired-${stamp(at)}`)
  await rename(stagedKey, files.key)
  await rename(stagedCert, files.cert)
  return {
    member: cfg.member, which: 'tls', newKey, newKid: spkiPin(fresh.publicKey), oldKid: oldPin, index: first, size,
    privateKeyFile: files.key, retiredFile, tls: { oldPin, newPin: spkiPin(fresh.publicKey), certFile: files.cert, notAfter },
  }
}
