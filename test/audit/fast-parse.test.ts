/**
 * The auditor parses its hot-path schemas through zod's compiled form (src/audit/fast-parse.ts):
 * on those schemas and many variants of valid values, it must give exactly what zod's runtime
 * parser gives, data and error messages alike.
 */
import t, { type Test } from 'tap'
import { z } from 'zod'
import { compiledSchema, safeParseFast } from '../../src/audit/fast-parse.js'
import { LogRecordSchema } from '../../src/audit/record-schemas.js'
import { PlainQuerySchema, RequestPayloadSchema, ResponsePayloadSchema } from '../../src/protocol/envelope.js'

const D = 'A'.repeat(43)
const XID = 'As7McctybV8ii5CV1D63Kg'

const request = { v: 1, xid: XID, iat: 1796216824619, iss: 'fj-tax', aud: 'fj-psb', svc: 'identity.match', purpose: 'taxpayer-registration', basis: 'Tax law art. 15', mode: 'plain', q: { subjects: [{ id: D }] } }
const response = { v: 1, xid: XID, reqDigest: D, iat: 1796216824619, iss: 'fj-psb', aud: 'fj-tax', status: 'ok', policy: D, log: { index: 2 }, results: [{ found: true }], agreement: 'psb-tax-identity' }
const denied = { v: 1, xid: XID, reqDigest: D, iat: 1, iss: 'fj-psb', aud: 'fj-tax', status: 'denied', policy: D, log: { index: 0 }, error: { code: 'VN_ERR_X', title: 'x', status: 403, detail: 'd' } }
const leaves: Record<string, unknown>[] = [
  { v: 1, at: 0, t: 'request-in', xid: XID, iss: 'fj-tax', svc: 'identity.match', mode: 'plain', purpose: 'p', basis: 'b', count: 1, reqDigest: D },
  { v: 1, at: 5, t: 'decision', xid: XID, iss: 'fj-tax', reqDigest: D, permit: true, agreement: 'a1', policy: D, count: 2, day: '2026-12-02' },
  { v: 1, at: 5, t: 'response-out', xid: XID, aud: 'fj-tax', reqDigest: D, respDigest: D, status: 'ok', requestIndex: 0 },
  { v: 1, at: 5, t: 'response-in', xid: XID, iss: 'fj-psb', reqDigest: D, status: 'error', code: 'VN_ERR_PEER' },
  { v: 1, at: 5, t: 'agreements', policy: D, agreements: [{ any: 'thing' }] },
  { v: 1, at: 5, t: 'key-event', event: 'node-started', member: 'fj-psb', messageKid: 'fj-psb#k1', messageKey: D, logKey: D, manifestSeq: 1, manifestHash: D },
  { v: 1, at: 5, t: 'fork-evidence', peer: 'fj-tax', notes: ['a', 'b'] },
  { v: 1, at: 5, t: 'disclosure-export', reasonDigest: D, count: 0 },
]

/** Values around `base`: each member dropped, replaced by odd values, and one member added. */
function variants(base: Record<string, unknown>): unknown[] {
  const odd: unknown[] = [undefined, null, '', 'x', 'x'.repeat(301), -1, 0, 1, 1.5, 2 ** 53, Number.NaN, Infinity, true, [], {}, ['a', 'b'], '张伟', D, XID, 'VN_ERR_X', 'ok', '2026-12-02']
  const out: unknown[] = [base, null, [], 'x', { ...base, extra: 1 }, Object.assign(Object.create(null) as object, base), JSON.parse(`{"__proto__":1,${JSON.stringify(base).slice(1)}`) as unknown]
  for (const k of Object.keys(base)) {
    const { [k]: _dropped, ...rest } = base
    out.push(rest)
    for (const v of odd) out.push({ ...base, [k]: v })
    const inner = base[k]
    if (inner !== null && typeof inner === 'object' && !Array.isArray(inner)) for (const w of variants(inner as Record<string, unknown>)) out.push({ ...base, [k]: w })
  }
  return out
}

function agrees(t: Test, schema: z.ZodType, values: unknown[], what: string): void {
  for (const v of values) {
    const slow = schema.safeParse(v)
    const quick = safeParseFast(schema, v)
    if (quick.success !== slow.success) {
      t.fail(`${what}: fast ${quick.success}, zod ${slow.success} for ${JSON.stringify(v)}`)
      return
    }
    if (quick.success && slow.success) t.same(quick.data, slow.data)
    else if (!quick.success && !slow.success) t.equal(quick.error.message, slow.error.message)
  }
  t.pass(`${what}: ${values.length} values agree`)
}

t.test('the hot-path schemas, compiled, agree with zod', async (t) => {
  t.equal(compiledSchema(LogRecordSchema), compiledSchema(LogRecordSchema), 'compiled once')
  agrees(t, RequestPayloadSchema, variants(request), 'request')
  agrees(t, ResponsePayloadSchema, [...variants(response), ...variants(denied)], 'response')
  agrees(t, LogRecordSchema, leaves.flatMap(variants), 'leaf')
})

t.test('the query schema (a refinement on field names) agrees too', async (t) => {
  const q = { subjects: [{ id: D }] }
  agrees(t, PlainQuerySchema, [q, { subjects: [] }, { subjects: [{ constructor: D }] }, { subjects: [{ 'not a name': D }] }, { subjects: [{ id: 'x' }] }, { subjects: [{ id: D }], x: 1 }], 'query')
})
