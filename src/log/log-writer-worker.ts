/**
 * Worker-thread entry that owns the log database's write connection (see log-writer.ts). The
 * synchronous commit + fsync runs here, so the main event loop keeps serving requests while a
 * group-commit batch is being made durable (FACTS.md: a commit blocks its thread for its whole
 * duration).
 */
import { serveWorker } from '../util/worker-pool.js'
import { VnError } from '../errors.js'
import { LogWriter, type BatchResult, type OpenResult, type WriteBatch } from './log-writer.js'

let writer: LogWriter | undefined

serveWorker({
  open: (args: { path: string; sealKey?: Uint8Array }): OpenResult => {
    writer?.close()
    writer = new LogWriter(args.path, args.sealKey)
    return writer.state()
  },
  commit: (batch: WriteBatch): BatchResult => {
    if (writer === undefined) throw new VnError('VN_ERR_LOG_UNAVAILABLE', 'writer not open')
    return writer.commit(batch)
  },
  probe: (args: { bytes: number; minFreeBytes: number; simulateFailure?: boolean }): null => {
    if (writer === undefined) throw new VnError('VN_ERR_LOG_UNAVAILABLE', 'writer not open')
    writer.probe(args.bytes, args.minFreeBytes, args.simulateFailure === true)
    return null
  },
  reload: (): OpenResult => {
    if (writer === undefined) throw new VnError('VN_ERR_LOG_UNAVAILABLE', 'writer not open')
    return writer.reload()
  },
  close: (): null => {
    writer?.close()
    writer = undefined
    return null
  },
})
