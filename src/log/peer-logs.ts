/**
 * What a node keeps of its peers' logs: the origin line that names each member's log (C2SP
 * signed note), the last checkpoint seen of a peer, and the receipt of one exchange. The
 * witnessing itself (fetching, checking consistency, cosigning, receipts over HTTP) is a node's
 * work: src/node/witness.ts.
 */
import type { Checkpoint } from './checkpoint.js'

export const logOrigin = (federation: string, member: string): string => `${member}.${federation}.verinode/log`

export interface SeenCheckpoint {
  note: string
  checkpoint: Checkpoint
}

export interface Receipt {
  peer: string
  index: number
  leaf: Record<string, unknown>
  checkpoint: string
  proof: string[]
}
