/**
 * What a `rotated` key event commits to (issue 5 §6; docs/DESIGN.md "Keys and the federation"): the
 * RFC 8785 canonical JSON of
 * `{ t: "verinode-key-rotation", v: 1, member, which, oldKey, newKey, at, manifestHash }`
 * (keys base64url raw Ed25519, TLS keys included: `verinode init` makes Ed25519 TLS keys; `manifestHash` is the manifest in force that lists the old key),
 * signed by the old and by the new private key, so a signature cannot be replayed for another
 * member, key, instant or manifest. `verinode keys rotate` (src/node/key-rotation.ts) signs it; the
 * auditor (src/audit/checks/key-events.ts) re-builds it from the record and checks both.
 */
import { canonicalJsonBytes } from '../protocol/canonical-json.js'
import type { KeyEventRecord } from './records.js'

const ROTATION_STATEMENT_TYPE = 'verinode-key-rotation'

export interface RotationStatement {
  member: string
  which: 'message' | 'log' | 'tls'
  oldKey: string
  newKey: string
  at: number
  manifestHash: string
}

/** The exact bytes both keys sign. */
export function rotationStatement(s: RotationStatement): Uint8Array {
  return canonicalJsonBytes({ t: ROTATION_STATEMENT_TYPE, v: 1, member: s.member, which: s.which, oldKey: s.oldKey, newKey: s.newKey, at: s.at, manifestHash: s.manifestHash })
}

/** The statement a `rotated` key event commits to, or undefined when the record is not one. */
export function statementOf(r: KeyEventRecord): RotationStatement | undefined {
  if (r.event !== 'rotated' || r.rotated === undefined || r.newKey === undefined) return undefined
  if ((r.rotated === 'tls') !== (r.tlsKey !== undefined)) return undefined
  const oldKey = r.rotated === 'message' ? r.messageKey : r.rotated === 'log' ? r.logKey : r.tlsKey
  if (oldKey === undefined) return undefined
  return { member: r.member, which: r.rotated, oldKey, newKey: r.newKey, at: r.at, manifestHash: r.manifestHash }
}
