/**
 * RFC 7515 §5.2: the protected header and a JSON payload must be UTF-8 JSON, and a member name
 * may appear once per object. Each case is correctly signed, so only the strict reading refuses
 * it; the auditor's readers (`unverifiedJwsPayload` in cross-check, `parseJwsJson` in audit verify's
 * evidence check) refuse the same bytes.
 */
import t from 'tap'
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { peekJws, unverifiedJwsPayload, verifyJws, verifyJwsJson, verifyJwsJsonAsync } from '../../src/crypto/jws.js'
import { parseStrictJson, StrictJsonError } from '../../src/util/strict-json.js'
import { unverifiedPayload } from '../../src/audit/checks/evidence.js'
import { failure } from '../helper-errors.js'

const { privateKey, publicKey } = generateKeyPairSync('ed25519')
const resolve = (): KeyObject => publicKey
const b64 = (b: Uint8Array | string): string => Buffer.from(b).toString('base64url')
const HEADER = '{"alg":"EdDSA","kid":"a#1"}'

/** A correctly signed compact JWS over exactly these header and payload bytes. */
function signRaw(header: Uint8Array | string, payload: Uint8Array | string): string {
  const input = `${b64(header)}.${b64(payload)}`
  return `${input}.${sign(null, Buffer.from(input, 'ascii'), privateKey).toString('base64url')}`
}

const utf8 = (s: string): Buffer => Buffer.from(s, 'utf8')
const withBytes = (before: string, bytes: number[], after: string): Buffer => Buffer.concat([utf8(before), Buffer.from(bytes), utf8(after)])

t.test('payloads that are not UTF-8 or repeat a member name are refused, by the node and by the auditor', async (t) => {
  const cases: [string, Uint8Array | string, string][] = [
    ['lone continuation byte', withBytes('{"a":"', [0x80], '"}'), 'payload is not UTF-8'],
    ['overlong encoding of "/"', withBytes('{"a":"', [0xc0, 0xaf], '"}'), 'payload is not UTF-8'],
    ['UTF-16 surrogate encoded in UTF-8', withBytes('{"a":"', [0xed, 0xa0, 0x80], '"}'), 'payload is not UTF-8'],
    ['truncated sequence', withBytes('{"a":"', [0xe4, 0xb8], '"}'), 'payload is not UTF-8'],
    ['byte order mark', withBytes('', [0xef, 0xbb, 0xbf], '{"a":1}'), 'payload is not JSON'],
    ['duplicate at the top', '{"a":1,"a":2}', 'payload is JSON with duplicate member names'],
    ['duplicate in a nested subject', '{"q":{"subjects":[{"id":"x"},{"id":"y","id":"z"}]}}', 'payload is JSON with duplicate member names'],
    ['duplicate spelled with an escape', '{"a":1,"\\u0061":2}', 'payload is JSON with duplicate member names'],
    ['duplicate with whitespace before the colon', '{"a":1,"a" \n\t:2}', 'payload is JSON with duplicate member names'],
    ['__proto__ twice', '{"__proto__":1,"__proto__":2}', 'payload is JSON with duplicate member names'],
    ['duplicate after a string with escaped quotes', '{"s":"x\\":\\"","a":1,"a":1}', 'payload is JSON with duplicate member names'],
  ]
  for (const [name, payload, why] of cases) {
    const jws = signRaw(HEADER, payload)
    t.equal(failure(() => verifyJwsJson(jws, resolve)), `VN_ERR_JWS_MALFORMED ${why}`, name)
    await t.rejects(verifyJwsJsonAsync(jws, resolve), { code: 'VN_ERR_JWS_MALFORMED' }, `async: ${name}`)
    t.equal(failure(() => unverifiedJwsPayload(jws)), `VN_ERR_JWS_MALFORMED ${why}`, `auditor's reader: ${name}`)
    t.doesNotThrow(() => verifyJws(jws, resolve), `the signature itself is fine: ${name}`)
  }
})

t.test('protected headers that are not UTF-8 or repeat a member name are refused', async (t) => {
  const cases: [string, Uint8Array | string, string][] = [
    ['invalid UTF-8 in kid', withBytes('{"alg":"EdDSA","kid":"a#', [0xff], '"}'), 'protected header is not UTF-8'],
    // RFC 7515 §5.2 step 4: a lenient parser would read the second alg or kid.
    ['alg twice', '{"alg":"EdDSA","kid":"a#1","alg":"EdDSA"}', 'protected header is JSON with duplicate member names'],
    ['kid twice', '{"alg":"EdDSA","kid":"b#1","kid":"a#1"}', 'protected header is JSON with duplicate member names'],
  ]
  for (const [name, header, why] of cases) {
    const jws = signRaw(header, '{"a":1}')
    t.equal(failure(() => peekJws(jws)), `VN_ERR_JWS_MALFORMED ${why}`, name)
    t.equal(failure(() => verifyJws(jws, resolve)), `VN_ERR_JWS_MALFORMED ${why}`, name)
  }
})

t.test('valid payloads with tricky strings still parse exactly as JSON.parse reads them', async (t) => {
  const texts = [
    '{"a":"\\"b\\":1","b":"\\\\","c":"\\\\\\"","d":{"a":1},"e":[{"a":1},{"a":2}]}',
    '{ "a" : 1 , "b" :\n[ "x\\":" , { "a" : "\\u0000" } ] }',
    '{"名前":"阿依古丽·买买提","𝌆":"\\ud834\\udf06"}',
    '{"__proto__":{"x":1},"constructor":2}',
    '[1,"a",{"a":{}},[]]',
    '"just a string"',
    '{}',
  ]
  for (const text of texts) {
    t.same(parseStrictJson(utf8(text)), JSON.parse(text), text)
    t.same(verifyJwsJson(signRaw(HEADER, text), resolve).claims, JSON.parse(text), `through verifyJwsJson: ${text}`)
  }
  const deep = '['.repeat(100_000) + ']'.repeat(100_000)
  t.doesNotThrow(() => parseStrictJson(utf8(deep)), 'deep nesting does not overflow the stack')
  t.throws(() => parseStrictJson(utf8('{"a":1,}')), StrictJsonError, 'not JSON')
})

t.test("the auditor's readers use the node's strict reader, not a JSON.parse of their own", async (t) => {
  // audit verify decodes each evidence payload once (checks/evidence.ts) with the node's reader
  for (const [what, payload] of [
    ['not UTF-8', withBytes('{"a":"', [0x80], '"}')],
    ['a repeated member name', '{"a":1,"a":2}'],
  ] as const) {
    t.equal(unverifiedPayload(signRaw(HEADER, payload)), undefined, `audit verify refuses ${what}`)
  }
  t.same(unverifiedPayload(signRaw(HEADER, '{"a":1}')), { a: 1 }, 'and reads a good payload')
  const evidence = await readFile(new URL('../../src/audit/checks/evidence.ts', import.meta.url), 'utf8')
  t.match(evidence, /parseJwsJson\(/, 'checks/evidence.ts decodes with parseJwsJson')
  const cross = await readFile(new URL('../../src/audit/cross-check.ts', import.meta.url), 'utf8')
  t.match(cross, /unverifiedJwsPayload\(/, 'cross-check.ts decodes with unverifiedJwsPayload')
  for (const [file, src] of [['checks/evidence.ts', evidence], ['cross-check.ts', cross]]) {
    t.notMatch(src, /JSON\.parse\([^)]*fromB64u/, `${file}: no lenient payload decoding`)
  }
})
