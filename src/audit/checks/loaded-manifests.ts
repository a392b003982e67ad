/**
 * Which manifest the exporting node had loaded when it judged a signature (docs/AUDIT.md
 * "Revocation, as the auditor sees it").
 *
 * A node learns of a newer manifest only when it re-reads its file, so for a while after a
 * revocation took effect it may still accept (or sign with) the revoked key under the manifest it
 * has. Its own `key-event` records say which manifest it had and from when (`node-started`,
 * `manifest-loaded`, `rotated`: seq, hash, `at`). The key history (key-history.ts) says what the
 * authority had published; this says what the node knew. A signature the history refuses but the
 * node's loaded manifest allowed is that window (a warning with its length); one that no manifest
 * the node had loaded allowed is an error.
 *
 * Fed in log order as the leaves are checked; `candidatesAt` answers for the leaf being checked.
 */
import type { Federation, KeyView } from '../../federation/federation.js'
import type { KeyEventRecord } from '../../log/records.js'
import { digestEquals } from './context.js'

interface Loaded {
  at: number
  f: Federation
}

export class LoadedManifests {
  private readonly timeline: Loaded[] = []

  constructor(private readonly manifests: readonly Federation[]) {}

  /** A key event: the node had the manifest it names loaded from `r.at` (unknown manifests are skipped). */
  onKeyEvent(r: KeyEventRecord): void {
    const f = this.manifests.find((m) => digestEquals(m.hash, r.manifestHash))
    if (f !== undefined) this.timeline.push({ at: r.at, f })
  }

  /** The manifest the latest key event so far names (the one the node had loaded last), if known. */
  current(): Federation | undefined {
    return this.timeline[this.timeline.length - 1]?.f
  }

  /**
   * The manifests the node may have judged a signature made at `iat` under, as of the leaf being
   * checked: the one named by the latest key event so far, and the one it had loaded at `iat` (a
   * reload between the signature's check and its log entry is then covered either way).
   */
  candidatesAt(iat: number): Federation[] {
    const out = new Set<Federation>()
    const t = this.timeline
    const last = t[t.length - 1]
    if (last !== undefined) out.add(last.f)
    for (let k = 0; k < t.length; k++) {
      const next = t[k + 1]
      if (t[k]!.at <= iat && (next === undefined || next.at > iat)) out.add(t[k]!.f)
    }
    return [...out]
  }
}

/**
 * The message key `<member>#<keyId>` as `f` lists it, if a node holding `f` allowed it at `at`
 * (`f` not expired, the key listed and in its window). As on a node, a loaded manifest counts from
 * its loading, not from its `iat`.
 */
export function allowedBy(f: Federation, member: string, keyId: string, at: number): KeyView | undefined {
  if (at >= f.exp || !f.has(member)) return undefined
  const k = f.member(member).messageKeys.get(keyId)
  if (k === undefined || at < k.nbf || (k.exp !== undefined && at >= k.exp)) return undefined
  return k
}

/**
 * When the revocation that `later` (manifests after the loaded one, by seq) published took effect
 * for a signature at `at`: the key's `exp` when the revoking manifest lists it with one, else the
 * revoking manifest's `iat` (a key dropped from the list is revoked as it is issued).
 */
export function revocationOf(later: readonly Federation[], member: string, keyId: string, at: number): { seq: number; effective: number } | undefined {
  for (const f of later) {
    if (f.iat > at || allowedBy(f, member, keyId, at) !== undefined) continue
    const k = f.has(member) ? f.member(member).messageKeys.get(keyId) : undefined
    const effective = k?.exp !== undefined && k.exp <= at ? k.exp : at >= f.exp ? f.exp : f.iat
    return { seq: f.seq, effective }
  }
  return undefined
}
