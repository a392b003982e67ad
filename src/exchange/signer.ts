/** The node's current message-signing key and its `kid` ("<member>#<key id>") from the manifest. */
import type { KeyObject } from 'node:crypto'

export interface Signer {
  kid: string
  privateKey: KeyObject
}
