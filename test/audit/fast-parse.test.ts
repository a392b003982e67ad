/**
 * The auditor's fast acceptance test in front of zod (src/audit/fast-parse.ts): on the schemas the
 * hot path uses it must accept exactly a subset of what zod accepts, with zod's data, and leave
 * every value it doubts (and every schema part it does not know) to zod, error message included.
 */
import t, { type Test } from 'tap'
import { z } from 'zod'
import { fastPredicate, safeParseFast } from '../../src/audit/fast-parse.js'
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
  let fast = 0
  for (const v of values) {
    const slow = schema.safeParse(v)
    const quick = safeParseFast(schema, v)
    if (quick.success !== slow.success) {
      t.fail(`${what}: fast ${quick.success}, zod ${slow.success} for ${JSON.stringify(v)}`)
      return
    }
    if (quick.success && slow.success) t.same(quick.data, slow.data)
    else if (!quick.success && !slow.success) t.equal(quick.error.message, slow.error.message)
    if (fastPredicate(schema)?.(v) === true) fast++
  }
  t.ok(fast > 0, `${what}: the fast path answered ${fast} of ${values.length}`)
}

t.test('the hot-path schemas have a fast predicate that agrees with zod', async (t) => {
  t.not(fastPredicate(LogRecordSchema), null)
  t.not(fastPredicate(RequestPayloadSchema), null)
  t.not(fastPredicate(ResponsePayloadSchema), null)
  agrees(t, RequestPayloadSchema, variants(request), 'request')
  agrees(t, ResponsePayloadSchema, [...variants(response), ...variants(denied)], 'response')
  agrees(t, LogRecordSchema, leaves.flatMap(variants), 'leaf')
})

t.test('schema parts it does not know stay with zod', async (t) => {
  t.equal(fastPredicate(PlainQuerySchema), null, 'a refinement (field names) is zod’s')
  t.equal(fastPredicate(z.string().transform((s) => s.length)), null)
  t.equal(fastPredicate(z.string().default('x')), null)
  t.equal(fastPredicate(z.object({ a: z.string() }).catchall(z.string())), null)
  const q = { subjects: [{ id: D }] }
  t.same(safeParseFast(PlainQuerySchema, q), PlainQuerySchema.safeParse(q))
  t.equal(safeParseFast(PlainQuerySchema, { subjects: [{ constructor: D }] }).success, false)
})

t.test('a plain (stripping) object with an extra member goes to zod, which drops it', async (t) => {
  const s = z.object({ a: z.string() })
  const r = safeParseFast(s, { a: 'x', b: 1 })
  t.ok(r.success)
  t.same(r.data, { a: 'x' })
  t.ok(fastPredicate(s)?.({ a: 'x' }))
})

t.test('records refuse nothing zod accepts and accept nothing it refuses', async (t) => {
  const s = z.record(z.string(), z.number().int())
  agrees(t, s, [{}, { a: 1 }, { a: 1.5 }, { a: 'x' }, JSON.parse('{"__proto__":1}') as unknown, [], null, { a: 1, b: 2 }], 'record')
  const tuple = z.tuple([z.string().min(1), z.string().min(1)])
  agrees(t, tuple, [['a', 'b'], ['a'], ['a', 'b', 'c'], ['', 'b'], 'ab', [1, 2]], 'tuple')
})
