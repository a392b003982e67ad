import t from 'tap'
import { createHash } from 'node:crypto'
import { disclosureDigest, makeDisclosure, MAX_DISCLOSURE_CHARS, openDisclosure } from '../../src/protocol/disclosures.js'
import { failure } from '../helper-errors.js'

const b64u = (s: string | Uint8Array): string => Buffer.from(s).toString('base64url')
/** A disclosure of arbitrary JSON text together with its (correct) digest. */
function crafted(json: string | Uint8Array): [string, string] {
  const d = b64u(typeof json === 'string' ? Buffer.from(json, 'utf8') : json)
  return [d, createHash('sha256').update(d).digest('base64url')]
}

t.test('known answers from the SD-JWT specification', async (t) => {
  // RFC 9901 §4.2.1 / §4.2.3: ["_26bc4LT-ac6q2KI6cBW5es", "family_name", "Möbius"].
  const rfc = 'WyJfMjZiYzRMVC1hYzZxMktJNmNCVzVlcyIsICJmYW1pbHlfbmFtZSIsICJNw7ZiaXVzIl0'
  t.equal(disclosureDigest(rfc), 'X9yH0Ajrdm1Oij4tWso9UzzKJvPoDxwmuEcO3XAdRC0')
  // The RFC's claim names are not subject field names here (src/protocol/vocabulary.ts): the digest
  // matches, and the content is then refused by name.
  t.equal(failure(() => openDisclosure(rfc, 'X9yH0Ajrdm1Oij4tWso9UzzKJvPoDxwmuEcO3XAdRC0', 'disclosures[0]')), 'VN_ERR_EXCH_DISCLOSURE disclosures[0]: field name is not acceptable')
  // draft-ietf-oauth-selective-disclosure-jwt-07 §5.2.1: ["2GLC42sKQveCfGfryNRN9w", "given_name", "John"].
  const draft = 'WyIyR0xDNDJzS1F2ZUNmR2ZyeU5STjl3IiwgImdpdmVuX25hbWUiLCAiSm9obiJd'
  t.equal(disclosureDigest(draft), 'jsu9yVulwQQlhFlM_3JlzMaSFzglhQG0DpfayQwLUK4')
  t.equal(failure(() => openDisclosure(draft, 'jsu9yVulwQQlhFlM_3JlzMaSFzglhQG0DpfayQwLUK4', 'd')), 'VN_ERR_EXCH_DISCLOSURE d: field name is not acceptable')
  // The same array with a field name of this vocabulary opens (", " separators are valid JSON).
  const [ours, oursDigest] = crafted('["_26bc4LT-ac6q2KI6cBW5es", "familyName", "Möbius"]')
  t.same(openDisclosure(ours, oursDigest, 'disclosures[0]'), { field: 'familyName', value: 'Möbius' })
})

t.test('makeDisclosure with a fixed salt gives the expected compact encoding', async (t) => {
  // Expected values computed independently (Python json.dumps compact + hashlib.sha256).
  const salt = Buffer.from('2GLC42sKQveCfGfryNRN9w', 'base64url')
  t.throws(() => makeDisclosure('given_name', 'John', { salt }), TypeError, 'not a field name of this vocabulary')
  t.same(makeDisclosure('name', '张三', { salt }), {
    disclosure: 'WyIyR0xDNDJzS1F2ZUNmR2ZyeU5STjl3IiwibmFtZSIsIuW8oOS4iSJd',
    digest: 'jFVQuXJ8w1fmLK82alq4bCySxyjTZrmYjUVKuhXh_1A',
  })
})

t.test('fresh disclosures are salted and round-trip', async (t) => {
  const a = makeDisclosure('id', '11010519491231002X')
  const b = makeDisclosure('id', '11010519491231002X')
  t.not(a.digest, b.digest, 'same value, different digests')
  t.equal(a.digest.length, 43)
  const salt = (JSON.parse(Buffer.from(a.disclosure, 'base64url').toString()) as string[])[0]!
  t.equal(Buffer.from(salt, 'base64url').length, 16, '128-bit salt')
  for (const value of ['11010519491231002X', '阿依古丽·买买提', 0, 12.5, true, false, null] as const) {
    const d = makeDisclosure('field1', value)
    t.same(openDisclosure(d.disclosure, d.digest, 'x'), { field: 'field1', value })
  }
})

t.test('tampering is detected', async (t) => {
  const d = makeDisclosure('id', '11010519491231002X')
  const other = makeDisclosure('id', '11010519491231002X')
  // Flip every character of the disclosure in turn.
  for (let i = 0; i < d.disclosure.length; i++) {
    const c = d.disclosure[i] === 'A' ? 'B' : 'A'
    const tampered = d.disclosure.slice(0, i) + c + d.disclosure.slice(i + 1)
    const f = failure(() => openDisclosure(tampered, d.digest, 'disclosures[1]'))
    if (f === undefined || !f.startsWith('VN_ERR_EXCH_DISCLOSURE')) t.fail(`flip at ${i} accepted`)
  }
  // Flip one character of the digest.
  const badDigest = (d.digest[0] === 'A' ? 'B' : 'A') + d.digest.slice(1)
  t.equal(failure(() => openDisclosure(d.disclosure, badDigest, 'disclosures[1]')), 'VN_ERR_EXCH_DISCLOSURE disclosures[1]: disclosure does not match its digest')
  // A valid disclosure under another valid digest.
  t.equal(failure(() => openDisclosure(d.disclosure, other.digest, 'disclosures[1]')), 'VN_ERR_EXCH_DISCLOSURE disclosures[1]: disclosure does not match its digest')
  // Re-encoding the same content differently changes the digest (RFC 9901 §4.2.3: hash what was sent).
  const json = Buffer.from(d.disclosure, 'base64url').toString()
  const reencoded = b64u(JSON.stringify(JSON.parse(json), null, 1))
  t.equal(failure(() => openDisclosure(reencoded, d.digest, 'd')), 'VN_ERR_EXCH_DISCLOSURE d: disclosure does not match its digest')
})

t.test('malformed inputs are rejected before hashing', async (t) => {
  const d = makeDisclosure('id', 'x')
  const cases: [unknown, unknown, string][] = [
    [undefined, d.digest, 'disclosure must be a non-empty string'],
    ['', d.digest, 'disclosure must be a non-empty string'],
    [42, d.digest, 'disclosure must be a non-empty string'],
    ['A'.repeat(MAX_DISCLOSURE_CHARS + 1), d.digest, `disclosure longer than ${MAX_DISCLOSURE_CHARS} characters`],
    [d.disclosure, undefined, 'digest must be 43 base64url characters'],
    [d.disclosure, d.digest + 'A', 'digest must be 43 base64url characters'],
    [d.disclosure, '+'.repeat(43), 'digest is not base64url SHA-256'],
    // 43 characters carry 258 bits; a last character with non-zero spare bits is not canonical.
    [d.disclosure, d.digest.slice(0, 42) + (d.digest.endsWith('B') ? 'C' : 'B'), 'digest is not base64url SHA-256'],
    [d.disclosure.slice(0, 4) + '+' + d.disclosure.slice(5), d.digest, 'disclosure is not base64url'],
    [d.disclosure + '=', d.digest, 'disclosure is not base64url'],
    ['AAAAA', d.digest, 'disclosure is not base64url'],
  ]
  for (const [disc, digest, why] of cases) t.equal(failure(() => openDisclosure(disc, digest, 'disclosures[0]')), `VN_ERR_EXCH_DISCLOSURE disclosures[0]: ${why}`, why)
})

t.test('content with a matching digest must still have the right shape', async (t) => {
  const salt = '2GLC42sKQveCfGfryNRN9w'
  const cases: [string | Uint8Array, string][] = [
    ['not json', 'disclosure is not UTF-8 JSON'],
    [Uint8Array.from([0x5b, 0x22, 0xff, 0x22, 0x5d]), 'disclosure is not UTF-8 JSON'],
    [`\uFEFF["${salt}","id","x"]`, 'disclosure is not UTF-8 JSON'],
    [`{"salt":"${salt}","field":"id","value":"x"}`, 'disclosure must be a JSON array [salt, field, value]'],
    [`["${salt}","x"]`, 'disclosure must be a JSON array [salt, field, value]'],
    [`["${salt}","id","x","y"]`, 'disclosure must be a JSON array [salt, field, value]'],
    ['["short","id","x"]', 'salt must be at least 128 bits in base64url'],
    [`["${salt.slice(0, 21)}+","id","x"]`, 'salt must be at least 128 bits in base64url'],
    [`[12345678901234567890123,"id","x"]`, 'salt must be at least 128 bits in base64url'],
    [`["${salt}","_sd","x"]`, 'field name is not acceptable'],
    [`["${salt}","...","x"]`, 'field name is not acceptable'],
    [`["${salt}","","x"]`, 'field name is not acceptable'],
    [`["${salt}",7,"x"]`, 'field name is not acceptable'],
    [`["${salt}","constructor","x"]`, 'field name is not acceptable'],
    [`["${salt}","__proto__","x"]`, 'field name is not acceptable'],
    [`["${salt}","given_name","x"]`, 'field name is not acceptable'],
    [`["${salt}","id",{"a":1}]`, 'value must be a JSON string, number, boolean or null'],
    [`["${salt}","id",["x"]]`, 'value must be a JSON string, number, boolean or null'],
  ]
  for (const [json, why] of cases) {
    const [disc, digest] = crafted(json)
    t.equal(failure(() => openDisclosure(disc, digest, 'disclosures[4]')), `VN_ERR_EXCH_DISCLOSURE disclosures[4]: ${why}`, why)
  }
})

t.test('errors never contain the disclosed value', async (t) => {
  const [disc, digest] = crafted('["2GLC42sKQveCfGfryNRN9w","id",{"id":"11010519491231002X"}]')
  try {
    openDisclosure(disc, digest, 'd')
    t.fail('accepted')
  } catch (e) {
    t.notMatch((e as Error).message, '11010519491231002X')
  }
})

t.test('makeDisclosure rejects bad arguments', async (t) => {
  t.throws(() => makeDisclosure('_sd', 'x'), TypeError)
  t.throws(() => makeDisclosure('a b', 'x'), TypeError)
  t.throws(() => makeDisclosure('toString', 'x'), TypeError)
  t.throws(() => makeDisclosure('id', Number.NaN), TypeError)
  t.throws(() => makeDisclosure('id', { a: 1 } as unknown as string), TypeError)
  t.throws(() => makeDisclosure('id', 'x', { salt: new Uint8Array(15) }), RangeError)
})
