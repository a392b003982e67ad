/**
 * The node's own checkpoints: signing the log's current size and root as a C2SP signed note (one
 * signing at a time, concurrent callers share it) and adding a witness's cosignature (C2SP
 * tlog-cosignature) to the note stored for that size.
 */
import type { KeyObject } from 'node:crypto'
import { VnError } from '../errors.js'
import type { Federation } from '../federation/federation.js'
import {
  cosignatureVerifier, ed25519NoteSigner, ed25519NoteVerifier, ed25519RawPublicKey, openNote, parseCheckpoint, parseNote, signCheckpoint,
  type NoteSigner,
} from '../log/checkpoint.js'
import { logOrigin } from '../log/peer-logs.js'
import type { LogStore } from '../log/storage.js'

/** The part of the log store checkpoints need. */
export type CheckpointStore = Pick<LogStore, 'size' | 'rootHash' | 'saveCheckpoint' | 'latestCheckpoint' | 'checkpointAt'>

export class Checkpointer {
  private readonly signer: NoteSigner
  private signing: Promise<string> | undefined

  constructor(
    private readonly store: CheckpointStore,
    /** this log's origin line (`logOrigin(federation, self)`) */
    readonly origin: string,
    logKey: KeyObject,
  ) {
    this.signer = ed25519NoteSigner(origin, logKey)
  }

  /** The latest signed checkpoint note, signing a new one when the log grew. */
  checkpoint(): Promise<string> {
    this.signing ??= (async () => {
      try {
        const size = await this.store.size()
        const latest = await this.store.latestCheckpoint()
        if (latest !== undefined && latest.size === size) return latest.note
        const note = signCheckpoint({ origin: this.origin, size, rootHash: await this.store.rootHash(size) }, this.signer)
        await this.store.saveCheckpoint(size, note)
        return note
      } finally {
        this.signing = undefined
      }
    })()
    return this.signing
  }

  /**
   * A witness hands back our checkpoint with its cosignature: keep every signature already on our
   * note and add the witness's line, once its cosignature verifies under its log key.
   */
  async acceptCosignature(f: Federation, self: string, witness: string, note: string): Promise<void> {
    const verifiers = f.logKeys(witness).map((k) => cosignatureVerifier(logOrigin(f.name, witness), ed25519RawPublicKey(k.key)))
    const own = f.logKeys(self).map((k) => ed25519NoteVerifier(this.origin, ed25519RawPublicKey(k.key)))
    const opened = openNote(note, [...own, ...verifiers])
    if (!opened.verified.some((v) => v.name === logOrigin(f.name, witness))) throw new VnError('VN_ERR_LOG_NOTE_SIGNATURE', 'no valid cosignature by that witness')
    const cp = parseCheckpoint(opened.text)
    const stored = await this.store.checkpointAt(cp.size)
    if (stored === undefined) throw new VnError('VN_ERR_LOG_PROOF', 'no checkpoint of that size here')
    const mine = parseNote(stored)
    if (mine.text !== opened.text) throw new VnError('VN_ERR_LOG_NOTE_MALFORMED', 'cosigned text differs from our checkpoint')
    const extra = opened.signatures.filter((sig) => !mine.signatures.some((m) => m.base64 === sig.base64))
    // signed-note format: text, a blank line, then one "— <name> <base64>" line per signature.
    const lines = [...mine.signatures, ...extra].map((x) => `\u2014 ${x.name} ${x.base64}\n`).join('')
    await this.store.saveCheckpoint(cp.size, `${mine.text}\n${lines}`)
  }
}
