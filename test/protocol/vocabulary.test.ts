/**
 * The vocabulary's grammars, pinned by examples, and proof that every schema uses the one
 * definition (the same zod object, or no private copy of the pattern in src/).
 */
import t, { type Test } from 'tap'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { z } from 'zod'
import {
  AGREEMENT_ID_RE, agreementIdSchema, COMPACT_JWS_RE, DIGEST_RE, digestSchema, ED25519_SIGNATURE_RE, fieldMapSchema, fieldNameSchema,
  HASH_BASE64_RE, INHERITED_NAMES, isFieldName, KEY_ID_RE, KID_RE, MEMBER_ID_RE, memberIdSchema, modeSchema, SERVICE_ID_RE,
  serviceIdSchema, SHA256_HEX_RE, sha256HexSchema, XID_RE, xidSchema,
} from '../../src/protocol/vocabulary.js'
import { ConfigSchema, ServiceSchema } from '../../src/config/schema.js'
import { AgreementSchema } from '../../src/policy/agreements.js'
import { ManifestKeySchema, MemberSchema } from '../../src/federation/manifest.js'
import { PlainQuerySchema, RequestPayloadSchema, ResponsePayloadSchema } from '../../src/protocol/envelope.js'
import { DecisionSchema, RequestInSchema } from '../../src/audit/record-schemas.js'
import { CatalogSchema, CatalogServiceSchema } from '../../src/exchange/catalog.js'
import { LocalVerifySchema } from '../../src/http/local-api.js'

function pin(t: Test, name: string, re: { test(s: string): boolean }, schema: z.ZodType | undefined, accept: readonly string[], refuse: readonly unknown[]): void {
  for (const s of accept) {
    t.ok(re.test(s), `${name} accepts ${JSON.stringify(s)}`)
    if (schema !== undefined) t.ok(schema.safeParse(s).success, `${name} schema accepts ${JSON.stringify(s)}`)
  }
  for (const s of refuse) {
    if (typeof s === 'string') t.notOk(re.test(s), `${name} refuses ${JSON.stringify(s)}`)
    if (schema !== undefined) t.notOk(schema.safeParse(s).success, `${name} schema refuses ${JSON.stringify(s)}`)
  }
}

const D43 = 'jsu9yVulwQQlhFlM_3JlzMaSFzglhQG0DpfayQwLUK4'

t.test('member id', async (t) => {
  pin(t, 'member id', MEMBER_ID_RE, memberIdSchema,
    ['fj-psb', 'fj-tax', 'a1', '0x', 'a'.repeat(63), 'x--y'],
    ['a', 'a'.repeat(64), 'FJ-PSB', '-fj', 'fj_psb', 'fj.psb', 'fj psb', 'fj-psb\n', '', 42, null])
})

t.test('key id and kid', async (t) => {
  pin(t, 'key id', KEY_ID_RE, undefined, ['k1', 'Ab-_9', 'x'.repeat(64)], ['', 'x'.repeat(65), 'a#b', 'a.b', 'a=b'])
  pin(t, 'kid', KID_RE, undefined, ['fj-psb#k1', 'fj-psb#' + 'x'.repeat(64)], ['fj-psb', '#k1', 'FJ#k1', 'fj-psb#k#1', 'fj-psb#', 'federation-root#'])
})

t.test('service id: the dot-separated lower-case grammar of docs/PROTOCOL.md', async (t) => {
  pin(t, 'service id', SERVICE_ID_RE, serviceIdSchema,
    ['identity.match', 'tax.compliance', 'credit.dishonest-debtor', 'a.b.c', 'x.y', 'enterprise.status2', 'a.' + 'b'.repeat(126)],
    // The looser grammar agreements used to accept: single labels, upper case, leading digits, underscores.
    ['s', 'identity', 'Identity.match', 'identity.Match', '1tax.compliance', 'tax.1st', 'tax_compliance.x', 'tax..x', 'tax.', '.tax',
      'tax.-x', 'a.' + 'b'.repeat(127), '', 7])
})

t.test('agreement id, xid, mode', async (t) => {
  pin(t, 'agreement id', AGREEMENT_ID_RE, agreementIdSchema, ['agr-2026-001', 'k', 'urn:x:1', 'A.b_c', 'a'.repeat(128)], ['', '-a', 'a b', 'a'.repeat(129), 'a/b'])
  pin(t, 'xid', XID_RE, xidSchema, ['a'.repeat(16), 'AAAAAAAAAAAAAAAAAAAAAA', '-'.repeat(64)], ['a'.repeat(15), 'a'.repeat(65), 'a'.repeat(15) + '=', 'a'.repeat(15) + '+'])
  t.same(modeSchema.options, ['plain', 'oprf', 'he'])
})

t.test('digests, keys, signatures, hashes', async (t) => {
  pin(t, 'digest', DIGEST_RE, digestSchema, [D43], [D43.slice(1), D43 + 'A', D43.slice(1) + '=', D43.slice(1) + '+', ''])
  pin(t, 'signature', ED25519_SIGNATURE_RE, undefined, ['A'.repeat(86)], ['A'.repeat(85), 'A'.repeat(87), 'A'.repeat(84) + '=='])
  pin(t, 'sha256 hex', SHA256_HEX_RE, sha256HexSchema, ['0'.repeat(64), 'f'.repeat(64)], ['F'.repeat(64), '0'.repeat(63), 'g'.repeat(64)])
  pin(t, 'hash base64', HASH_BASE64_RE, undefined, ['A'.repeat(43) + '=', '+/' + 'A'.repeat(41) + '='], ['A'.repeat(43), 'A'.repeat(44), '-_' + 'A'.repeat(41) + '='])
  pin(t, 'compact JWS', COMPACT_JWS_RE, undefined, ['a.b.c', 'a..c'], ['a.b', 'a.b.c.d', '.b.c', 'a.b.', 'a=.b.c'])
})

t.test('field names: the grammar, minus every name objects inherit', async (t) => {
  pin(t, 'field name', { test: isFieldName }, fieldNameSchema,
    ['id', 'name', 'taxYear', 'uscc', 'bound', 'below', 'a'.repeat(32), 'x1'],
    ['', 'Id', '1a', 'tax_year', 'tax-year', 'a'.repeat(33), '名前', '_sd', '...', '__proto__', 'constructor', 'toString', 'valueOf', 'hasOwnProperty'])
  for (const name of Object.getOwnPropertyNames(Object.prototype)) {
    t.ok(INHERITED_NAMES.has(name), `${name} is listed`)
    t.notOk(isFieldName(name), `${name} is not a field name`)
  }
  t.notOk(isFieldName(7))
})

t.test('field maps: keys are checked before z.record drops __proto__', async (t) => {
  const m = fieldMapSchema(digestSchema)
  t.ok(m.safeParse({ id: D43, name: D43 }).success)
  for (const [raw, why] of [
    ['{"id":"' + D43 + '","__proto__":"' + D43 + '"}', /not a field name/],
    ['{"id":"' + D43 + '","constructor":"' + D43 + '"}', /constructor is an inherited name/],
    ['{"toString":"' + D43 + '"}', /toString is an inherited name/],
    ['{"ID_Number":"' + D43 + '"}', /not a field name/],
  ] as const) {
    const r = m.safeParse(JSON.parse(raw))
    t.notOk(r.success, raw)
    t.match(r.error?.issues[0]?.message, why, raw)
    t.notMatch(JSON.stringify(r.error?.issues), 'ID_Number', 'a key that is not a field name is not echoed')
  }
  t.notOk(m.safeParse(null).success)
  t.notOk(m.safeParse([D43]).success)
  // The same rule in every map keyed by field names.
  const q = PlainQuerySchema.safeParse(JSON.parse(`{"subjects":[{"id":"${D43}","__proto__":"${D43}"}]}`))
  t.notOk(q.success, 'signed query refuses __proto__')
  const svc = { id: 'a.b', title: { en: 'x' }, kind: 'match', lookup: 'SELECT 1' }
  t.notOk(ServiceSchema.safeParse({ ...svc, fields: { constructor: { kind: 'text' } } }).success, 'config refuses constructor as a field')
  t.notOk(ServiceSchema.safeParse({ ...svc, fields: JSON.parse('{"__proto__":{"kind":"text"}}') }).success, 'config refuses __proto__ as a field')
  t.ok(ServiceSchema.safeParse({ ...svc, fields: { id: { kind: 'residentId', key: true } } }).success)
})

t.test('every schema carries the one definition', async (t) => {
  t.equal(ConfigSchema.shape.member, memberIdSchema, 'config member')
  t.equal(ServiceSchema.shape.id, serviceIdSchema, 'config service id')
  t.equal(AgreementSchema.shape.consumer, memberIdSchema, 'agreement consumer')
  t.equal(AgreementSchema.shape.id, agreementIdSchema, 'agreement id')
  t.equal(AgreementSchema.shape.services.element, serviceIdSchema, 'agreement services')
  t.equal(MemberSchema.shape.id, memberIdSchema, 'manifest member id')
  t.equal(ManifestKeySchema.shape.kid.def.type, 'string')
  for (const [name, s] of [['request', RequestPayloadSchema], ['response', ResponsePayloadSchema]] as const) {
    t.equal(s.shape.iss, memberIdSchema, `${name} iss`)
    t.equal(s.shape.aud, memberIdSchema, `${name} aud`)
    t.equal(s.shape.xid, xidSchema, `${name} xid`)
  }
  t.equal(RequestPayloadSchema.shape.svc, serviceIdSchema)
  t.equal(RequestPayloadSchema.shape.mode, modeSchema)
  t.equal(ResponsePayloadSchema.shape.reqDigest, digestSchema)
  t.equal(RequestInSchema.shape.iss, memberIdSchema, 'log record iss')
  t.equal(RequestInSchema.shape.svc, serviceIdSchema, 'log record svc')
  t.equal(RequestInSchema.shape.reqDigest, digestSchema, 'log record digest')
  t.equal(DecisionSchema.shape.agreement.unwrap(), agreementIdSchema, 'log record agreement')
  t.equal(CatalogSchema.shape.iss, memberIdSchema, 'catalog iss')
  t.equal(CatalogServiceSchema.shape.id, serviceIdSchema, 'catalog service id')
  t.equal(LocalVerifySchema.shape.provider, memberIdSchema, 'local API provider')
  t.equal(LocalVerifySchema.shape.service, serviceIdSchema, 'local API service')
})

/** Pattern texts that only src/protocol/vocabulary.ts may spell out. */
const ONCE = [
  '[a-z0-9][a-z0-9-]{1,62}', // member id
  '[a-z][a-z0-9]*(\\.[a-z][a-z0-9-]*)+', // service id
  '[A-Za-z0-9][A-Za-z0-9._-]{0,127}', // the looser service id agreements used to accept
  '[a-z][a-zA-Z0-9]{0,31}', // field name
  '[A-Za-z][A-Za-z0-9_]{0,63}', // the disclosures' field name
  '[A-Za-z_][A-Za-z0-9_]{0,31}', // the echo checks' field name
  '[A-Za-z0-9_-]{43}', // digest, public key
  '[A-Za-z0-9_-]{86}', // signature
  '[0-9a-f]{64}', // SHA-256 hex
  '[A-Za-z0-9+/]{43}=', // hash, base64
  '[A-Za-z0-9_-]{16,64}', // xid
]

async function sources(dir: string): Promise<string[]> {
  const out: string[] = []
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) out.push(...(await sources(p)))
    else if (e.name.endsWith('.ts')) out.push(p)
  }
  return out
}

t.test('no file in src/ keeps its own copy of a vocabulary pattern', async (t) => {
  const src = fileURLToPath(new URL('../../src/', import.meta.url))
  const copies: string[] = []
  for (const file of await sources(src)) {
    if (file.endsWith(join('protocol', 'vocabulary.ts'))) continue
    const text = await readFile(file, 'utf8')
    for (const p of ONCE) if (text.includes(p)) copies.push(`${file.slice(src.length)}: ${p}`)
  }
  t.same(copies, [])
})

t.test('subject field names are looked up as own properties', async (t) => {
  const src = fileURLToPath(new URL('../../src/', import.meta.url))
  const found: string[] = []
  for (const file of await sources(src)) {
    const text = await readFile(file, 'utf8')
    // `x in svc.fields` / `in fields` is true for `constructor` and `toString`.
    for (const m of text.matchAll(/\bin\s+(?:svc\.|service\.|spec\.)?fields\b/g)) found.push(`${file.slice(src.length)}: ${m[0]}`)
  }
  t.same(found, [])
})
