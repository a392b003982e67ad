/**
 * Key events (verify.ts step 7): a `key-event` names the member's own keys as the manifest in
 * force lists them, and the manifest it names; a `rotated` event verifies under both the old and the
 * new key (the statement: src/log/rotation-statement.ts) and its new key is listed by some manifest.
 * A key event with `messageKeyRevoked` (the node stopped signing under the manifest it loaded) must
 * name a manifest that indeed does not allow the key then.
 */
import { verifyBytes } from '../../crypto/profile.js'
import { publicKeyFromB64u, publicKeyToB64u } from '../../crypto/keys.js'
import { spkiPin } from '../../crypto/tls-cert.js'
import { splitKid } from '../../federation/federation.js'
import type { KeyEventRecord } from '../../log/records.js'
import { rotationStatement, statementOf } from '../../log/rotation-statement.js'
import { fromB64u } from '../../util/base64url.js'
import { digestEquals, type AuditContext } from './context.js'
import { allowedBy } from './loaded-manifests.js'

const tlsPinOf = (key: string): string => {
  try {
    return spkiPin(publicKeyFromB64u(key))
  } catch {
    return ''
  }
}

const ed25519Verify = (key: string, data: Uint8Array, sig: string | undefined): boolean => {
  const raw = sig === undefined ? undefined : fromB64u(sig)
  if (raw === undefined || raw.length !== 64) return false
  try {
    return verifyBytes(data, publicKeyFromB64u(key), raw)
  } catch {
    return false
  }
}

/**
 * Checks a key event's rotation fields: a `rotated` event needs all four and both signatures; a
 * `node-started` event must have none. Returns the problems (empty when it verifies).
 */
export function checkRotation(r: KeyEventRecord): string[] {
  const extra = [r.rotated, r.newKey, r.oldSig, r.newSig, r.tlsKey]
  if (r.event !== 'rotated') return extra.some((x) => x !== undefined) ? ['a node-started event carries rotation fields'] : []
  const s = statementOf(r)
  if (s === undefined || r.oldSig === undefined || r.newSig === undefined) return ['a rotated event without rotated, newKey, oldSig and newSig']
  const out: string[] = []
  if (s.newKey === s.oldKey) out.push('the new key is the old key')
  const bytes = rotationStatement(s)
  if (!ed25519Verify(s.oldKey, bytes, r.oldSig)) out.push(`oldSig does not verify under the old ${s.which} key`)
  if (!ed25519Verify(s.newKey, bytes, r.newSig)) out.push(`newSig does not verify under the new ${s.which} key`)
  return out
}

export function checkKeyEvent(ctx: AuditContext, i: number, r: KeyEventRecord): void {
  const { findings, manifests, member, history } = ctx
  const w = { index: i }
  // A rotation is signed by the old and the new key over one statement; the new key should be
  // listed for the member by some manifest, else nobody can accept it.
  for (const p of checkRotation(r)) findings.add('AUDIT_KEY_ROTATION_SIGNATURE', `leaf ${i}: ${p}`, w)
  if (r.event === 'rotated' && r.rotated === 'tls' && r.newKey !== undefined && manifests.length > 0) {
    // a TLS key is listed by its pin, the SHA-256 of its SPKI
    const pin = tlsPinOf(r.newKey)
    if (!manifests.some((f) => f.has(member) && f.member(member).tlsPins.has(pin))) {
      findings.add('AUDIT_KEY_ROTATION_UNLISTED', `leaf ${i}: the new TLS key (pin ${pin}) is in none of the manifests (send it to the authority: federation add-tls-pin)`, w)
    }
  } else if (r.event === 'rotated' && r.rotated !== undefined && r.newKey !== undefined && manifests.length > 0) {
    const list = r.rotated === 'message' ? 'messageKeys' : 'logKeys'
    if (!manifests.some((f) => f.has(member) && [...f.member(member)[list].values()].some((k) => k.x === r.newKey))) {
      findings.add('AUDIT_KEY_ROTATION_UNLISTED', `leaf ${i}: the new ${r.rotated} key is in none of the manifests (send it to the authority: federation add-key)`, w)
    }
  }
  if (r.member !== member) findings.add('AUDIT_KEY_EVENT_MISMATCH', `leaf ${i}: key event of member ${r.member} in the log of ${member}`, w)
  const named = manifests.find((f) => digestEquals(f.hash, r.manifestHash))
  if (named === undefined) findings.add('AUDIT_MANIFEST_MISSING', `leaf ${i}: names manifest seq ${r.manifestSeq} (${r.manifestHash}), which the export does not hold`, w)
  else if (named.seq !== r.manifestSeq) findings.add('AUDIT_KEY_EVENT_MISMATCH', `leaf ${i}: manifest ${r.manifestHash} has seq ${named.seq}, not ${r.manifestSeq}`, w)
  const kid = splitKid(r.messageKid)
  if (kid === undefined || kid.member !== member) {
    findings.add('AUDIT_KEY_EVENT_MISMATCH', `leaf ${i}: message kid is not a kid of ${member}`, w)
  } else if (manifests.length > 0) {
    const c = history.messageKeyAt(member, kid.keyId, r.at)
    if (r.messageKeyRevoked === true) {
      // The node says it stopped signing: the manifest it names must indeed not allow its key.
      const k = named === undefined ? undefined : allowedBy(named, member, kid.keyId, r.at)
      if (k !== undefined && k.x === r.messageKey) findings.add('AUDIT_KEY_EVENT_MISMATCH', `leaf ${i}: says the message key is revoked, but manifest seq ${named?.seq} allows ${r.messageKid} then`, w)
    } else if (!c.valid) findings.add('AUDIT_KEY_EVENT_MISMATCH', `leaf ${i}: ${c.reason}`, w)
    else if (publicKeyToB64u(c.key) !== r.messageKey) findings.add('AUDIT_KEY_EVENT_MISMATCH', `leaf ${i}: message key differs from ${r.messageKid} in manifest seq ${c.seq}`, w)
    const f = history.inForce(r.at)
    if (f !== undefined && f.has(member) && ![...f.member(member).logKeys.values()].some((k) => k.x === r.logKey)) {
      findings.add('AUDIT_KEY_EVENT_MISMATCH', `leaf ${i}: log key is not listed for ${member} in manifest seq ${f.seq}`, w)
    }
  }
}
