/**
 * Witnessing: what this node's log says about its peers' logs. A witnessed checkpoint that carries
 * its note must be that note (hash, size, root, origin); fork evidence (two inconsistent
 * checkpoints of a peer, src/log/peer-logs.ts) is reported for the auditor to follow up with
 * `audit consistency` on the two notes and the peer's export.
 */
import { digestB64u } from '../../crypto/profile.js'
import { noteVerifier, openNote, parseCheckpoint, parseNote, type NoteVerifier } from '../../log/checkpoint.js'
import { logOrigin } from '../../log/peer-logs.js'
import type { ForkEvidenceRecord, PeerCheckpointRecord } from '../../log/records.js'
import { fromB64u } from '../../util/base64url.js'
import { mismatch, type AuditContext } from './context.js'

export function checkPeerCheckpoint(ctx: AuditContext, i: number, r: PeerCheckpointRecord): void {
  if (r.note === undefined) return
  let bad: string[]
  try {
    const cp = parseCheckpoint(parseNote(r.note).text)
    bad = mismatch(
      'noteHash', digestB64u(Buffer.from(r.note, 'utf8')), r.noteHash,
      'size', cp.size, r.size,
      'rootHash', Buffer.from(cp.rootHash).toString('base64'), r.rootHash,
      'origin', cp.origin, logOrigin(ctx.federation ?? '?', r.peer),
    )
  } catch {
    bad = ['note']
  }
  if (bad.length > 0) ctx.findings.add('AUDIT_LEAF_INVALID', `leaf ${i}: peer-checkpoint differs from the note it carries in ${bad.join(', ')}`, { index: i })
}

export function checkForkEvidence(ctx: AuditContext, i: number, r: ForkEvidenceRecord): void {
  const origin = logOrigin(ctx.federation ?? '?', r.peer)
  const verifiers: NoteVerifier[] = []
  for (const f of ctx.manifests) if (f.has(r.peer)) for (const k of f.member(r.peer).logKeys.values()) verifiers.push(noteVerifier(origin, fromB64u(k.x) as Buffer))
  const signed = r.notes.filter((n) => {
    try {
      return parseCheckpoint(openNote(n, verifiers).text).origin === origin
    } catch {
      return false
    }
  }).length
  ctx.findings.add('AUDIT_PEER_FORK_REPORTED', `leaf ${i}: ${ctx.member} kept two checkpoints of ${r.peer}'s log it found inconsistent (${signed} of 2 signed by ${r.peer}'s log key); check them with audit consistency`, { index: i }, signed === 2 ? 'error' : 'warning')
}
