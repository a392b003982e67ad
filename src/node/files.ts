/** The fixed file names inside a node's folders (docs/OPERATIONS.md "Files"). */
import { join } from 'node:path'

export const nodeKeyFiles = (keysDir: string) => ({
  messageKey: join(keysDir, 'message.key'),
  messagePub: join(keysDir, 'message.pub'),
  logKey: join(keysDir, 'log.key'),
  logPub: join(keysDir, 'log.pub'),
  /** 32 random bytes (base64) sealing disclosures at rest */
  evidenceKey: join(keysDir, 'evidence.key'),
})

export const nodeDataFiles = (dataDir: string) => ({
  log: join(dataDir, 'log.db'),
})

/** Written by a running node into its data folder (its pid), removed on close. */
export const NODE_PID_FILE = 'node.pid'

/** The data folder's copy of every manifest the node loaded, as `<seq>.jws` (read by the log export). */
export const NODE_MANIFEST_ARCHIVE = 'manifests'
