/**
 * The node's own checkpoints: signing the log's current size and root as a C2SP signed note (one
 * signing at a time, concurrent callers share it) and adding a witness's cosignature (C2SP
 * tlog-cosignature) to the note stored for that size.
 *
 * While the log refuses writes (fail closed) its committed head is still signed and served, so
 * witnesses and auditors can read it: the note is held in memory (`held`) and stored once the log
 * accepts writes again (`flushHeld`). Ed25519 signatures are deterministic, so the note signed
 * then is byte for byte the one that is stored later.
 */
import type { KeyObject } from 'node:crypto'
import { VnError } from '../errors.js'
import type { Federation } from '../federation/federation.js'
import {
  cosignatureVerifier, noteSigner, noteVerifier, notePublicKey, openNote, parseCheckpoint, parseNote, signCheckpoint,
  type NoteSigner,
} from '../log/checkpoint.js'
import { logOrigin } from '../log/peer-logs.js'
import type { LogStore } from '../log/storage.js'

/** The part of the log store checkpoints need. */
export type CheckpointStore = Pick<LogStore, 'size' | 'rootHash' | 'saveCheckpoint' | 'latestCheckpoint' | 'checkpointAt' | 'writable'>

const unavailable = (e: unknown): boolean => e instanceof VnError && e.code === 'VN_ERR_LOG_UNAVAILABLE'

export class Checkpointer {
  private readonly signer: NoteSigner
  private signing: Promise<string> | undefined
  /** the newest checkpoint signed (or cosigned) while the log could not store it */
  private heldNote: { size: number; note: string } | undefined

  constructor(
    private readonly store: CheckpointStore,
    /** this log's origin line (`logOrigin(federation, self)`) */
    readonly origin: string,
    logKey: KeyObject,
    /**
     * Replicas sharing one log (log/pg-store.ts `PgLease`): only the holder of this lease signs
     * and stores new checkpoints; taking it renews it. Without it, this process always signs.
     */
    private readonly lease?: { acquire(): Promise<boolean> },
  ) {
    this.signer = noteSigner(origin, logKey)
  }

  /** The latest signed checkpoint note, signing a new one when the log grew. */
  checkpoint(): Promise<string> {
    this.signing ??= (async () => {
      try {
        if (this.store.writable) await this.flushHeld().catch(() => undefined)
        const size = await this.store.size()
        const held = this.heldNote
        if (held !== undefined && held.size === size) return held.note
        const latest = await this.store.latestCheckpoint()
        if (latest !== undefined && latest.size === size) return latest.note
        const note = signCheckpoint({ origin: this.origin, size, rootHash: await this.store.rootHash(size) }, this.signer)
        // Another replica holds the lease: it signs and stores; this one serves the latest stored
        // (or, before there is one, the note just signed, without storing it).
        if (this.lease !== undefined && !(await this.lease.acquire())) return latest?.note ?? note
        await this.save(size, note)
        return note
      } finally {
        this.signing = undefined
      }
    })()
    return this.signing
  }

  /** The checkpoint signed while the log refused writes and not stored yet, if any. */
  get held(): { readonly size: number; readonly note: string } | undefined {
    return this.heldNote
  }

  /** Stores the held checkpoint (the log accepts writes again). */
  async flushHeld(): Promise<void> {
    const held = this.heldNote
    if (held === undefined) return
    await this.store.saveCheckpoint(held.size, held.note)
    if (this.heldNote === held) this.heldNote = undefined
  }

  /** Stores a note; while the log refuses writes, holds it instead (the newest one). */
  private async save(size: number, note: string): Promise<void> {
    if (this.store.writable) {
      try {
        await this.store.saveCheckpoint(size, note)
        if (this.heldNote?.size === size) this.heldNote = undefined
        return
      } catch (e) {
        if (!unavailable(e)) throw e
      }
    }
    if (this.heldNote === undefined || this.heldNote.size <= size) this.heldNote = { size, note }
  }

  /**
   * A witness hands back our checkpoint with its cosignature: keep every signature already on our
   * note and add the witness's line, once its cosignature verifies under its log key.
   */
  async acceptCosignature(f: Federation, self: string, witness: string, note: string): Promise<void> {
    const verifiers = f.logKeys(witness).map((k) => cosignatureVerifier(logOrigin(f.name, witness), notePublicKey(k.key)))
    const own = f.logKeys(self).map((k) => noteVerifier(this.origin, notePublicKey(k.key)))
    const opened = openNote(note, [...own, ...verifiers])
    if (!opened.verified.some((v) => v.name === logOrigin(f.name, witness))) throw new VnError('VN_ERR_LOG_NOTE_SIGNATURE', 'no valid cosignature by that witness')
    const cp = parseCheckpoint(opened.text)
    const held = this.heldNote?.size === cp.size ? this.heldNote.note : undefined
    const stored = held ?? await this.store.checkpointAt(cp.size)
    if (stored === undefined) throw new VnError('VN_ERR_LOG_PROOF', 'no checkpoint of that size here')
    const mine = parseNote(stored)
    if (mine.text !== opened.text) throw new VnError('VN_ERR_LOG_NOTE_MALFORMED', 'cosigned text differs from our checkpoint')
    const extra = opened.signatures.filter((sig) => !mine.signatures.some((m) => m.base64 === sig.base64))
    // signed-note format: text, a blank line, then one "— <name> <base64>" line per signature.
    const lines = [...mine.signatures, ...extra].map((x) => `\u2014 ${x.name} ${x.base64}\n`).join('')
    await this.save(cp.size, `${mine.text}\n${lines}`)
  }
}
