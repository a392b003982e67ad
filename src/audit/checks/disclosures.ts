/**
 * Disclosures in the export (`log export --with-disclosures`) must be accounted for by the log's
 * last `disclosure-export` record: same count, and the reason export.json gives hashes to its
 * digest. The bytes of refused peer answers that such an export carries (received.jsonl) must
 * each be named by a refused response-in of the log and hash to its digest.
 */
import { digestB64u } from '../../crypto/profile.js'
import { z } from 'zod'
import { fromB64u } from '../../util/base64url.js'
import { digestSchema, xidSchema } from '../../protocol/vocabulary.js'
import { EXPORT_FILES } from '../../log/export-layout.js'
import type { DisclosureExportRecord } from '../../log/records.js'
import { LineReader, type ExportMetaRead } from '../export-reader.js'
import { digestEquals, type AuditContext } from './context.js'

export function checkDisclosures(ctx: AuditContext, meta: ExportMetaRead, path: string, last: { i: number; r: DisclosureExportRecord } | undefined): void {
  const { findings } = ctx
  const file = new LineReader(path)
  if (!file.exists && meta.disclosures !== true) return
  let lines = 0
  for (let l = file.next(); l !== undefined; l = file.next()) if (l.length > 0) lines++
  if (last === undefined) findings.add('AUDIT_DISCLOSURES_UNLOGGED', `${EXPORT_FILES.disclosures}: ${lines} exchanges' disclosures, and no disclosure-export record in the log`)
  else if (last.r.count !== lines) findings.add('AUDIT_DISCLOSURES_UNLOGGED', `${EXPORT_FILES.disclosures}: ${lines} exchanges' disclosures, the disclosure-export record at leaf ${last.i} logged ${last.r.count}`, { index: last.i })
  else if (meta.disclosureReason === undefined || !digestEquals(digestB64u(Buffer.from(meta.disclosureReason, 'utf8')), last.r.reasonDigest)) {
    findings.add('AUDIT_DISCLOSURES_UNLOGGED', `${EXPORT_FILES.meta}: the disclosure reason does not hash to the reasonDigest logged at leaf ${last.i}`, { index: last.i })
  }
}

const ReceivedLineSchema = z.strictObject({ xid: xidSchema, digest: digestSchema, bytes: z.string() })

/**
 * received.jsonl (with `--with-disclosures`): `{ xid, digest, bytes }` per refused peer answer still
 * kept, `bytes` base64url. Each line must hash to its digest (the one check the auditor can make of
 * what a peer sent) and be named by a refused response-in of the same xid; the file, like the
 * disclosures, only leaves the node under a disclosure-export record.
 */
export function checkReceived(ctx: AuditContext, path: string, refused: ReadonlyMap<string, { xid: string; i: number }>, last: { i: number; r: { received?: number } } | undefined): void {
  const { findings } = ctx
  const file = new LineReader(path)
  if (!file.exists) return
  let lines = 0
  for (let l = file.next(); l !== undefined; l = file.next()) {
    if (l.length === 0) continue
    lines++
    let parsed: z.infer<typeof ReceivedLineSchema> | undefined
    try {
      const p = ReceivedLineSchema.safeParse(JSON.parse(l.toString('utf8')))
      parsed = p.success ? p.data : undefined
    } catch {
      parsed = undefined
    }
    const bytes = parsed === undefined ? undefined : fromB64u(parsed.bytes)
    if (parsed === undefined || bytes === undefined) {
      findings.add('AUDIT_EVIDENCE_MALFORMED', `${EXPORT_FILES.received} line ${lines}: not a { xid, digest, bytes } record`)
      continue
    }
    const named = refused.get(parsed.digest)
    const where = { xid: parsed.xid, role: 'consumer' as const, ...(named === undefined ? {} : { index: named.i }) }
    if (!digestEquals(digestB64u(bytes), parsed.digest)) {
      findings.add('AUDIT_EVIDENCE_DIGEST_MISMATCH', `${EXPORT_FILES.received} line ${lines}: the bytes do not hash to ${parsed.digest}`, where)
    }
    if (named === undefined || named.xid !== parsed.xid) {
      findings.add('AUDIT_EVIDENCE_MALFORMED', `${EXPORT_FILES.received} line ${lines}: no refused response-in of this xid names digest ${parsed.digest}`, where)
    }
  }
  if (lines > 0 && last === undefined) findings.add('AUDIT_DISCLOSURES_UNLOGGED', `${EXPORT_FILES.received}: ${lines} refused answers' bytes, and no disclosure-export record in the log`)
  // Records written before the count was logged carry none; a record that carries one must match.
  else if (last?.r.received !== undefined && last.r.received !== lines) {
    findings.add('AUDIT_DISCLOSURES_UNLOGGED', `${EXPORT_FILES.received}: ${lines} refused answers' bytes, the disclosure-export record at leaf ${last.i} logged ${last.r.received}`, { index: last.i })
  }
}
