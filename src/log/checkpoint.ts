/**
 * Log checkpoints as C2SP signed notes, signed with Ed25519 through `node:crypto`, or under the
 * `sm` crypto profile with SM2/SM3 (types 0xfe and 0xfd below; the log key's kind decides, so
 * `noteSigner`, `noteVerifier` and `cosignatureSigner` serve both profiles).
 *
 * - c2sp.org/signed-note: note text ending in a newline, a blank line, then signature lines
 *   `— <key name> base64(key ID ‖ signature)`; key ID = SHA-256(name ‖ 0x0A ‖ type ‖ pubkey)[:4];
 *   Ed25519 is signature type 0x01; verifier keys (vkeys) are `<name>+<hex key ID>+base64(type ‖ pubkey)`.
 * - c2sp.org/tlog-checkpoint: the note text is origin, decimal tree size (no leading zeros), base64
 *   root hash (RFC 9162 MTH), then optional non-empty extension lines.
 * - c2sp.org/tlog-cosignature: Ed25519 witness cosignatures (type 0x04), a `timestamped_signature`
 *   (u64 big-endian POSIX seconds ‖ 64-byte signature) over `cosignature/v1\ntime <t>\n` ‖ note text.
 *
 * Parsing is strict (the Go reference, golang.org/x/mod/sumdb/note, is the model): any deviation is
 * `VN_ERR_LOG_NOTE_MALFORMED`. Per signed-note, signatures from unknown keys are ignored (this is how
 * cosignatures from witnesses ride along), a failing signature from a known key rejects the whole
 * note, and a note with no verified signature is rejected (`VN_ERR_LOG_NOTE_SIGNATURE`).
 *
 * Everything here is pure (no storage) so the offline auditor can import it.
 */
import { createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto'
import { VnError } from '../errors.js'
import { rawPublicKey, publicKeyFromB64u } from '../crypto/keys.js'
import { PROFILES, profileOfKey, signBytes, verifyBytes } from '../crypto/profile.js'
import { HASH_SIZE } from './merkle.js'

/** Signature type bytes assigned by c2sp.org/signed-note. */
const SIG_TYPE_ED25519 = 0x01
export const SIG_TYPE_COSIGNATURE_V1 = 0x04
/**
 * The `sm` profile's types (crypto/profile.ts), verinode's own, not assigned by C2SP: a checkpoint
 * signature with SM2/SM3 (r ‖ s), and a cosignature laid out like tlog-cosignature v1 (timestamp ‖
 * r ‖ s) with SM2/SM3. Their key IDs use SM3 in place of SHA-256. Verifiers that do not know them
 * ignore such lines, as signed-note requires for unknown keys.
 */
const SIG_TYPE_SM2 = PROFILES.sm.noteSigType
const SIG_TYPE_COSIGNATURE_SM2 = PROFILES.sm.cosignatureSigType
const isSmType = (t: number): boolean => t === SIG_TYPE_SM2 || t === SIG_TYPE_COSIGNATURE_SM2

/** At most this many signature lines are parsed (Go's sumdb/note uses 100; the spec requires ≥ 16). */
const MAX_SIGNATURES = 100

const EM_DASH_PREFIX = '\u2014 '
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')

const malformed = (detail: string): never => {
  throw new VnError('VN_ERR_LOG_NOTE_MALFORMED', detail)
}
const badKey = (detail: string): never => {
  throw new VnError('VN_ERR_LOG_KEY_INVALID', detail)
}

/** Standard base64 (RFC 4648 §4) that must round-trip exactly: no whitespace, correct padding. */
function decodeBase64Strict(s: string): Uint8Array | undefined {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0) return undefined
  const b = Buffer.from(s, 'base64')
  return b.toString('base64') === s ? new Uint8Array(b) : undefined
}
const encodeBase64 = (b: Uint8Array): string => Buffer.from(b).toString('base64')

/** Valid UTF-16 (no lone surrogates), i.e. encodable as UTF-8 (String#isWellFormed is ES2024). */
const isWellFormed = (s: string): boolean => !/\p{Cs}/u.test(s)

/** signed-note: key names are non-empty and contain no Unicode spaces and no '+'. */
function isValidKeyName(name: string): boolean {
  return name.length > 0 && isWellFormed(name) && !/[\s+]/u.test(name) && !/[\u0000-\u001f]/.test(name)
}

/** Key ID = SHA-256(name ‖ 0x0A ‖ type ‖ public key)[:4] (signed-note, "Signatures"); SM3 for the `sm` types. */
export function keyId(name: string, sigType: number, publicKey: Uint8Array): Uint8Array {
  const h = createHash(isSmType(sigType) ? 'sm3' : 'sha256').update(name, 'utf8').update(new Uint8Array([0x0a, sigType])).update(publicKey).digest()
  return new Uint8Array(h.subarray(0, 4))
}

/** Produces note signature lines. `sign` gets the note text bytes, returns the signature bytes. */
export interface NoteSigner {
  readonly name: string
  readonly keyId: Uint8Array
  sign(text: Uint8Array): Uint8Array
}

/** Checks note signature lines from one key (name + key ID). */
export interface NoteVerifier {
  readonly name: string
  readonly keyId: Uint8Array
  readonly sigType: number
  readonly publicKey: Uint8Array
  verify(text: Uint8Array, signature: Uint8Array): boolean
}

/** An Ed25519 private key object from a 32-byte RFC 8032 seed (as in Go's `PRIVATE+KEY+...` strings). */
export function ed25519PrivateKeyFromSeed(seed: Uint8Array): KeyObject {
  if (seed.length !== 32) badKey('seed: must be 32 bytes')
  return createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' })
}

/** The raw public key of a private or public key object: 32 bytes (Ed25519) or the 65-byte SM2 point. */
export function notePublicKey(key: KeyObject): Uint8Array {
  if (profileOfKey(key) === undefined) badKey('key: must be an Ed25519 or SM2 key')
  return new Uint8Array(rawPublicKey(key))
}

function sm2PublicKeyObject(raw: Uint8Array): KeyObject {
  try {
    return publicKeyFromB64u(Buffer.from(raw).toString('base64url'))
  } catch {
    return badKey('publicKey: not a valid SM2 public key')
  }
}

function ed25519PublicKeyObject(raw: Uint8Array): KeyObject {
  if (raw.length !== 32) badKey('publicKey: must be 32 bytes')
  try {
    return createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, raw]), format: 'der', type: 'spki' })
  } catch {
    return badKey('publicKey: not a valid Ed25519 public key')
  }
}

function checkName(name: string): void {
  if (!isValidKeyName(name)) badKey('name: must be non-empty without spaces or "+"')
}

/**
 * A signed-note signer over the log key: type 0x01 for an Ed25519 key, the `sm` type (SM2/SM3) for
 * an SM2 key; the key decides.
 */
export function noteSigner(name: string, privateKey: KeyObject): NoteSigner {
  checkName(name)
  const p = profileOfKey(privateKey)
  if (privateKey.type !== 'private' || p === undefined) badKey('privateKey: must be an Ed25519 or SM2 private key')
  const id = keyId(name, p === 'sm' ? SIG_TYPE_SM2 : SIG_TYPE_ED25519, notePublicKey(privateKey))
  return { name, keyId: id, sign: (text) => new Uint8Array(signBytes(text, privateKey)) }
}

/** A signed-note verifier for a raw public key: 32 bytes Ed25519 (type 0x01), 65 bytes SM2 (the `sm` type). */
export function noteVerifier(name: string, publicKey: Uint8Array): NoteVerifier {
  checkName(name)
  const sm = publicKey.length === 65
  const key = sm ? sm2PublicKeyObject(publicKey) : ed25519PublicKeyObject(publicKey)
  const sigType = sm ? SIG_TYPE_SM2 : SIG_TYPE_ED25519
  return {
    name,
    keyId: keyId(name, sigType, publicKey),
    sigType,
    publicKey: new Uint8Array(publicKey),
    verify: (text, sig) => sig.length === 64 && verifyBytes(text, key, sig),
  }
}

/** The vkey string `<name>+<hex key ID>+<base64(type ‖ public key)>` (signed-note verifier keys). */
export function formatVerifierKey(name: string, publicKey: Uint8Array, sigType: number = SIG_TYPE_ED25519): string {
  checkName(name)
  if (publicKey.length !== (isSmType(sigType) ? 65 : 32)) badKey('publicKey: must be 32 bytes (65 for the sm types)')
  const id = Buffer.from(keyId(name, sigType, publicKey)).toString('hex')
  return `${name}+${id}+${encodeBase64(new Uint8Array([sigType, ...publicKey]))}`
}

/**
 * Parse a vkey into a verifier. Accepts Ed25519 (0x01) and Ed25519 cosignature v1 (0x04) keys;
 * the key ID must be 8 lower-case hex digits and match the key.
 */
export function parseVerifierKey(vkey: string): NoteVerifier {
  if (typeof vkey !== 'string') return badKey('vkey: must be a string')
  const first = vkey.indexOf('+')
  const second = vkey.indexOf('+', first + 1)
  if (first < 0 || second < 0) return badKey('vkey: must be name+keyid+key')
  const name = vkey.slice(0, first)
  const idHex = vkey.slice(first + 1, second)
  const material = decodeBase64Strict(vkey.slice(second + 1))
  if (!isValidKeyName(name)) return badKey('vkey: name is not a valid key name')
  if (!/^[0-9a-f]{8}$/.test(idHex)) return badKey('vkey: key ID must be 8 lower-case hex digits')
  if (material === undefined || material.length < 1 || material.length !== (isSmType(material[0] as number) ? 66 : 33)) return badKey('vkey: key must be base64 of type byte and 32-byte key (65-byte for the sm types)')
  const sigType = material[0] as number
  const pub = material.subarray(1)
  let v: NoteVerifier
  if (sigType === SIG_TYPE_ED25519 || sigType === SIG_TYPE_SM2) v = noteVerifier(name, pub)
  else if (sigType === SIG_TYPE_COSIGNATURE_V1 || sigType === SIG_TYPE_COSIGNATURE_SM2) v = cosignatureVerifier(name, pub)
  else return badKey('vkey: unsupported signature type')
  if (Buffer.from(v.keyId).toString('hex') !== idHex) return badKey('vkey: key ID does not match the key')
  return v
}

// ---------------------------------------------------------------------------------------------
// Notes

export interface NoteSignature {
  readonly name: string
  /** Big-endian key ID, the first 4 bytes of the decoded signature. */
  readonly keyId: Uint8Array
  /** The signature bytes after the key ID. */
  readonly signature: Uint8Array
  /** The base64 as it appeared on the line (key ID ‖ signature). */
  readonly base64: string
}

export interface ParsedNote {
  /** Note text including its final newline (what the signatures cover). */
  readonly text: string
  readonly signatures: readonly NoteSignature[]
}

export interface OpenedNote extends ParsedNote {
  /** Signatures that verified against a given verifier. At least one. */
  readonly verified: readonly NoteSignature[]
  /** Signatures from keys not given (e.g. witness cosignatures), kept so they can be re-emitted. */
  readonly unverified: readonly NoteSignature[]
}

function toNoteString(note: string | Uint8Array): string {
  if (typeof note === 'string') return note
  if (!(note instanceof Uint8Array)) return malformed('note: must be a string or bytes')
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(note)
  } catch {
    return malformed('note: not valid UTF-8')
  }
}

/**
 * Parse a signed note's structure (signed-note "Format") without checking signatures.
 * Throws `VN_ERR_LOG_NOTE_MALFORMED`.
 */
export function parseNote(input: string | Uint8Array): ParsedNote {
  const note = toNoteString(input)
  if (!isWellFormed(note)) malformed('note: not valid UTF-8')
  // No ASCII control characters other than newline.
  if (/[\u0000-\u0009\u000b-\u001f]/.test(note)) malformed('note: contains a control character')
  // The text is separated from the signatures by the last empty line.
  const split = note.lastIndexOf('\n\n')
  if (split < 0) malformed('note: no blank line before the signatures')
  const text = note.slice(0, split + 1)
  const block = note.slice(split + 2)
  if (block.length === 0 || !block.endsWith('\n')) malformed('note: signature block must be non-empty and end with a newline')
  const lines = block.slice(0, -1).split('\n')
  if (lines.length > MAX_SIGNATURES) malformed(`note: more than ${MAX_SIGNATURES} signatures`)
  const signatures = lines.map((line, i): NoteSignature => {
    if (!line.startsWith(EM_DASH_PREFIX)) return malformed(`signatures[${i}]: must start with an em dash and a space`)
    const rest = line.slice(EM_DASH_PREFIX.length)
    const sp = rest.indexOf(' ')
    if (sp < 0) return malformed(`signatures[${i}]: missing key name or signature`)
    const name = rest.slice(0, sp)
    const b64 = rest.slice(sp + 1)
    if (!isValidKeyName(name)) return malformed(`signatures[${i}]: invalid key name`)
    const raw = decodeBase64Strict(b64)
    if (raw === undefined || raw.length < 5) return malformed(`signatures[${i}]: signature is not base64 of key ID and signature`)
    return { name, keyId: raw.slice(0, 4), signature: raw.slice(4), base64: b64 }
  })
  return { text, signatures }
}

const sameKey = (s: { name: string; keyId: Uint8Array }, v: { name: string; keyId: Uint8Array }): boolean =>
  s.name === v.name && Buffer.compare(s.keyId, v.keyId) === 0

/**
 * Parse a note and verify its signatures against the given verifiers (signed-note "Signatures"):
 * unknown keys are kept as `unverified`, a bad signature from a known key rejects the note, and at
 * least one known signature must verify.
 */
export function openNote(input: string | Uint8Array, verifiers: readonly NoteVerifier[]): OpenedNote {
  const parsed = parseNote(input)
  const textBytes = Buffer.from(parsed.text, 'utf8')
  const verified: NoteSignature[] = []
  const unverified: NoteSignature[] = []
  for (const sig of parsed.signatures) {
    const matches = verifiers.filter((v) => sameKey(sig, v))
    if (matches.length === 0) {
      unverified.push(sig)
      continue
    }
    if (matches.length > 1) throw new VnError('VN_ERR_LOG_KEY_INVALID', `verifiers: ambiguous key ${sig.name}`)
    if (!(matches[0] as NoteVerifier).verify(textBytes, sig.signature)) {
      throw new VnError('VN_ERR_LOG_NOTE_SIGNATURE', `signature of ${sig.name} does not verify`)
    }
    if (!verified.some((s) => sameKey(s, sig))) verified.push(sig)
  }
  if (verified.length === 0) throw new VnError('VN_ERR_LOG_NOTE_SIGNATURE', 'note has no signature from a known key')
  return { ...parsed, verified, unverified }
}

/**
 * Sign a note text with one or more signers. `keep` are signature lines to carry over (e.g. the
 * existing signatures when a witness adds its cosignature); a line from the same key as a new
 * signer is replaced. Existing lines come first, as in Go's note.Sign.
 */
export function signNote(text: string, signers: readonly NoteSigner[], keep: readonly NoteSignature[] = []): string {
  if (typeof text !== 'string' || !text.endsWith('\n')) malformed('text: must end with a newline')
  if (!isWellFormed(text) || /[\u0000-\u0009\u000b-\u001f]/.test(text)) malformed('text: contains a control character or invalid UTF-8')
  const bytes = Buffer.from(text, 'utf8')
  const lines: string[] = []
  for (const s of keep) {
    if (signers.some((n) => sameKey(s, n))) continue
    lines.push(`${EM_DASH_PREFIX}${s.name} ${s.base64}\n`)
  }
  for (const s of signers) {
    if (!isValidKeyName(s.name)) badKey('signer: invalid key name')
    const sig = s.sign(bytes)
    lines.push(`${EM_DASH_PREFIX}${s.name} ${encodeBase64(new Uint8Array([...s.keyId, ...sig]))}\n`)
  }
  if (lines.length === 0) malformed('signers: at least one signature is needed')
  const out = `${text}\n${lines.join('')}`
  parseNote(out) // never emit something our own parser rejects
  return out
}

// ---------------------------------------------------------------------------------------------
// Checkpoints

export interface Checkpoint {
  /** Log identity, e.g. `fj-tax.verinode/log`. */
  readonly origin: string
  readonly size: number
  /** RFC 9162 root hash of the first `size` leaves (32 bytes). */
  readonly rootHash: Uint8Array
  /** Optional opaque extension lines (not auditable; avoid). */
  readonly extensions?: readonly string[]
}

/** tlog-checkpoint note text: origin, size, base64 root, extension lines; each newline-terminated. */
export function formatCheckpoint(cp: Checkpoint): string {
  if (typeof cp.origin !== 'string' || cp.origin.length === 0 || cp.origin.includes('\n')) malformed('origin: must be a non-empty single line')
  if (!Number.isSafeInteger(cp.size) || cp.size < 0) malformed('size: must be a non-negative safe integer')
  if (!(cp.rootHash instanceof Uint8Array) || cp.rootHash.length !== HASH_SIZE) malformed(`rootHash: must be ${HASH_SIZE} bytes`)
  const ext = cp.extensions ?? []
  ext.forEach((l, i) => {
    if (typeof l !== 'string' || l.length === 0 || l.includes('\n')) malformed(`extensions[${i}]: must be a non-empty single line`)
  })
  return [cp.origin, String(cp.size), encodeBase64(cp.rootHash), ...ext].map((l) => `${l}\n`).join('')
}

/** Parse a checkpoint note text strictly (tlog-checkpoint "Note text"). */
export function parseCheckpoint(text: string): Checkpoint {
  if (typeof text !== 'string' || !text.endsWith('\n')) return malformed('checkpoint: text must end with a newline')
  const lines = text.slice(0, -1).split('\n')
  if (lines.length < 3) return malformed('checkpoint: needs origin, size and root hash lines')
  const [origin, sizeLine, rootLine, ...extensions] = lines as [string, string, string, ...string[]]
  if (origin.length === 0) malformed('checkpoint.origin: empty')
  if (!/^(0|[1-9][0-9]*)$/.test(sizeLine)) malformed('checkpoint.size: must be decimal without leading zeros')
  const size = Number(sizeLine)
  if (!Number.isSafeInteger(size)) malformed('checkpoint.size: too large')
  const rootHash = decodeBase64Strict(rootLine)
  if (rootHash === undefined || rootHash.length !== HASH_SIZE) return malformed(`checkpoint.rootHash: must be base64 of ${HASH_SIZE} bytes`)
  extensions.forEach((l, i) => {
    if (l.length === 0) malformed(`checkpoint.extensions[${i}]: empty line`)
  })
  return extensions.length > 0 ? { origin, size, rootHash, extensions } : { origin, size, rootHash }
}

/** Format and sign a checkpoint with the log key. The key name should equal the origin. */
export function signCheckpoint(cp: Checkpoint, signer: NoteSigner): string {
  return signNote(formatCheckpoint(cp), [signer])
}

/** Verify a signed checkpoint against the log's verifier(s) and parse its body. */
export function openCheckpoint(note: string | Uint8Array, verifiers: readonly NoteVerifier[]): { checkpoint: Checkpoint; note: OpenedNote } {
  const opened = openNote(note, verifiers)
  return { checkpoint: parseCheckpoint(opened.text), note: opened }
}

// ---------------------------------------------------------------------------------------------
// Cosignatures (c2sp.org/tlog-cosignature, Ed25519, type 0x04)

/** The message an Ed25519 v1 cosignature signs: header line, timestamp line, checkpoint text. */
function cosignatureMessage(text: string | Uint8Array, timestamp: number): Uint8Array {
  const body = typeof text === 'string' ? Buffer.from(text, 'utf8') : Buffer.from(text)
  return new Uint8Array(Buffer.concat([Buffer.from(`cosignature/v1\ntime ${timestamp}\n`, 'ascii'), body]))
}

function timestampBytes(ts: number): Uint8Array {
  const b = Buffer.alloc(8)
  b.writeBigUInt64BE(BigInt(ts))
  return new Uint8Array(b)
}

/**
 * A cosigner (witness) for tlog-cosignature v1 over an Ed25519 key (type 0x04), or an SM2 key (type 0xfd, the same layout with SM2/SM3). `now` returns POSIX seconds;
 * each signature line is `timestamp (u64 BE) ‖ Ed25519 signature`.
 */
export function cosignatureSigner(name: string, privateKey: KeyObject, now: () => number = () => Math.floor(Date.now() / 1000)): NoteSigner {
  checkName(name)
  const p = profileOfKey(privateKey)
  if (privateKey.type !== 'private' || p === undefined) badKey('privateKey: must be an Ed25519 or SM2 private key')
  const id = keyId(name, p === 'sm' ? SIG_TYPE_COSIGNATURE_SM2 : SIG_TYPE_COSIGNATURE_V1, notePublicKey(privateKey))
  return {
    name,
    keyId: id,
    sign: (text) => {
      const ts = now()
      if (!Number.isSafeInteger(ts) || ts < 0) badKey('now: must return non-negative integer seconds')
      // The cosignature covers a checkpoint: refuse to cosign anything else.
      parseCheckpoint(Buffer.from(text).toString('utf8'))
      return new Uint8Array([...timestampBytes(ts), ...signBytes(cosignatureMessage(text, ts), privateKey)])
    },
  }
}

/** Verifier for tlog-cosignature v1 Ed25519 signatures (type 0x04), or their SM2 form for a 65-byte SM2 key. */
export function cosignatureVerifier(name: string, publicKey: Uint8Array): NoteVerifier {
  checkName(name)
  const sm = publicKey.length === 65
  const key = sm ? sm2PublicKeyObject(publicKey) : ed25519PublicKeyObject(publicKey)
  const sigType = sm ? SIG_TYPE_COSIGNATURE_SM2 : SIG_TYPE_COSIGNATURE_V1
  return {
    name,
    keyId: keyId(name, sigType, publicKey),
    sigType,
    publicKey: new Uint8Array(publicKey),
    verify: (text, sig) => {
      if (sig.length !== 72) return false
      const ts = Buffer.from(sig.subarray(0, 8)).readBigUInt64BE()
      if (ts > BigInt(Number.MAX_SAFE_INTEGER)) return false // the spec caps at 2^63-1; we cap lower
      return verifyBytes(cosignatureMessage(text, Number(ts)), key, sig.subarray(8))
    },
  }
}

/** The timestamp (POSIX seconds) of a cosignature v1 signature line's base64. */
export function cosignatureTimestamp(sigBase64: string): number {
  const raw = decodeBase64Strict(sigBase64)
  if (raw === undefined || raw.length !== 4 + 8 + 64) return malformed('cosignature: not key ID, timestamp and Ed25519 signature')
  const ts = Buffer.from(raw.subarray(4, 12)).readBigUInt64BE()
  if (ts > BigInt(Number.MAX_SAFE_INTEGER)) malformed('cosignature: timestamp too large')
  return Number(ts)
}

/** Add a witness cosignature to a signed checkpoint, keeping every existing signature line. */
export function cosignCheckpoint(note: string, cosigner: NoteSigner): string {
  const parsed = parseNote(note)
  parseCheckpoint(parsed.text)
  return signNote(parsed.text, [cosigner], parsed.signatures)
}
