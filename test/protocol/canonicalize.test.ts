import t from 'tap'
import { VnError } from '../../src/errors.js'
import { canonicalizeField, canonicalizeSubject, FIELD_KINDS, type FieldKind } from '../../src/protocol/canonicalize.js'

const ID = '11010519491231002X'
const USCC = '91350100M000100Y43'

function failure(fn: () => unknown): { code: string; detail: string | undefined } | undefined {
  try {
    fn()
    return undefined
  } catch (e) {
    if (e instanceof VnError) return { code: e.code, detail: e.detail }
    throw e
  }
}

t.test('resident ID: full-width, lower-case x, spaces and invisible characters are canonicalized', async (t) => {
  const inputs = [
    ID,
    '11010519491231002x',
    '  11010519491231002X\t',
    '110105 19491231 002x',
    '１１０１０５１９４９１２３１００２Ｘ',
    '１１０１０５１９４９１２３１００２ｘ',
    '110105\u300019491231\u3000002X', // ideographic spaces
    '1101051949\u200B1231002X', // zero-width space
    '\uFEFF11010519491231002X', // BOM
  ]
  for (const raw of inputs) t.equal(canonicalizeField('residentId', raw, 'id'), ID, JSON.stringify(raw))
})

t.test('resident ID: checksum failures keep their own code and name the path', async (t) => {
  t.same(failure(() => canonicalizeField('residentId', '110105194912310021', 'subjects[3].id')), {
    code: 'VN_ERR_SUBJECT_ID_CHECKSUM',
    detail: 'subjects[3].id: check character does not match',
  })
  t.same(failure(() => canonicalizeField('residentId', 110105194912310020, 'subjects[3].id')), {
    code: 'VN_ERR_SUBJECT_INVALID',
    detail: 'subjects[3].id: expected a string',
  })
})

t.test('USCC: lower case and full width become the canonical code', async (t) => {
  for (const raw of [USCC, '91350100m000100y43', '９１３５０１００ｍ０００１００ｙ４３', ' 9135 0100 M000 100Y 43 ']) {
    t.equal(canonicalizeField('uscc', raw, 'uscc'), USCC, raw)
  }
  t.equal(failure(() => canonicalizeField('uscc', '91350100M000100Y44', 'uscc'))?.code, 'VN_ERR_SUBJECT_USCC_CHECKSUM')
})

t.test('partyId accepts either identifier and nothing else', async (t) => {
  t.equal(canonicalizeField('partyId', '11010519491231002x', 'id'), ID)
  t.equal(canonicalizeField('partyId', '91350100m000100y43', 'id'), USCC)
  t.same(failure(() => canonicalizeField('partyId', '110105194912310021', 'subjects[0].id')), {
    code: 'VN_ERR_SUBJECT_INVALID',
    detail: 'subjects[0].id: neither a valid resident ID number nor a valid unified social credit code',
  })
})

t.test('names: CJK spacing removed, Latin words single-spaced and upper-cased, dots unified', async (t) => {
  const cases: [string, string][] = [
    ['张三', '张三'],
    ['张 三', '张三'],
    ['  张\u3000三  ', '张三'],
    ['欧阳 娜娜', '欧阳娜娜'],
    ['张\u200B三', '张三'],
    ['  John   Smith ', 'JOHN SMITH'],
    ['Ｊｏｈｎ　Ｓｍｉｔｈ', 'JOHN SMITH'],
    ['john\tsmith', 'JOHN SMITH'],
    ['阿依古丽·买买提', '阿依古丽·买买提'],
    ['阿依古丽 · 买买提', '阿依古丽·买买提'],
    ['阿依古丽・买买提', '阿依古丽·买买提'], // U+30FB katakana middle dot
    ['阿依古丽･买买提', '阿依古丽·买买提'], // U+FF65 half-width katakana middle dot
    ['阿依古丽•买买提', '阿依古丽·买买提'], // U+2022 bullet
    ['O’Brien', "O'BRIEN"],
    ['Jean‐Paul', 'JEAN-PAUL'],
    ['张 John', '张 JOHN'], // a space between CJK and Latin stays
    ['김 민준', '김민준'],
  ]
  for (const [raw, canonical] of cases) t.equal(canonicalizeField('name', raw, 'name'), canonical, raw)
})

t.test('names: bad input is rejected with VN_ERR_SUBJECT_INVALID', async (t) => {
  const cases: [unknown, string][] = [
    ['', 'is empty'],
    [' \u3000 ', 'is empty'],
    ['\u200B', 'is empty'],
    ['张三1', 'contains characters that do not occur in names'],
    ['张三<script>', 'contains characters that do not occur in names'],
    ['张\u0007三', 'contains control characters'],
    ['张'.repeat(129), 'longer than 128 characters'],
    ['张'.repeat(1025), 'longer than 1024 characters'],
    [42, 'expected a string'],
    [null, 'expected a string'],
    [['张三'], 'expected a string'],
  ]
  for (const [raw, why] of cases) {
    t.same(failure(() => canonicalizeField('name', raw, 'subjects[1].name')), { code: 'VN_ERR_SUBJECT_INVALID', detail: `subjects[1].name: ${why}` }, String(raw).slice(0, 20))
  }
})

t.test('year: four digits from 1900 to 2100, string or integer', async (t) => {
  for (const raw of ['2024', ' 2024 ', '２０２４', 2024]) t.equal(canonicalizeField('year', raw, 'year'), '2024', String(raw))
  t.equal(canonicalizeField('year', 1900, 'year'), '1900')
  t.equal(canonicalizeField('year', '2100', 'year'), '2100')
  const bad: [unknown, string][] = [
    ['1899', 'year must be between 1900 and 2100'],
    [2101, 'year must be between 1900 and 2100'],
    ['24', 'year must be 4 digits'],
    ['02024', 'year must be 4 digits'],
    ['2024.0', 'year must be 4 digits'],
    ['+2024', 'year must be 4 digits'],
    [2024.5, 'number must be a safe integer'],
    [Number.NaN, 'number must be a safe integer'],
    [true, 'expected a string or an integer'],
  ]
  for (const [raw, why] of bad) t.same(failure(() => canonicalizeField('year', raw, 'q.year')), { code: 'VN_ERR_SUBJECT_INVALID', detail: `q.year: ${why}` }, String(raw))
})

t.test('amount: non-negative integer fen as a decimal string without leading zeros', async (t) => {
  const good: [unknown, string][] = [
    ['0', '0'],
    ['000', '0'],
    ['00123', '123'],
    [123, '123'],
    [0, '0'],
    ['１２３', '123'],
    [' 500000 ', '500000'],
    [Number.MAX_SAFE_INTEGER, '9007199254740991'],
    ['999999999999999999', '999999999999999999'],
    ['0000999999999999999999', '999999999999999999'],
  ]
  for (const [raw, canonical] of good) t.equal(canonicalizeField('amount', raw, 'q.bound'), canonical, String(raw))
  const bad: [unknown, string][] = [
    ['-1', 'amount must be a non-negative integer number of fen'],
    [-1, 'amount must not be negative'],
    ['1.5', 'amount must be a non-negative integer number of fen'],
    [1.5, 'number must be a safe integer'],
    [2 ** 53, 'number must be a safe integer'],
    ['1e3', 'amount must be a non-negative integer number of fen'],
    ['1,000', 'amount must be a non-negative integer number of fen'],
    ['', 'amount must be a non-negative integer number of fen'],
    ['1000000000000000000', 'amount has more than 18 digits'],
  ]
  for (const [raw, why] of bad) t.same(failure(() => canonicalizeField('amount', raw, 'q.bound')), { code: 'VN_ERR_SUBJECT_INVALID', detail: `q.bound: ${why}` }, String(raw))
})

t.test('text: NFKC, trimmed, whitespace collapsed', async (t) => {
  t.equal(canonicalizeField('text', '  hello \n  world ', 'purpose'), 'hello world')
  t.equal(canonicalizeField('text', 'ｆｕｌｌ　ｗｉｄｔｈ', 'purpose'), 'full width')
  t.equal(canonicalizeField('text', 'Mixed Case', 'purpose'), 'Mixed Case', 'text keeps case')
  t.equal(failure(() => canonicalizeField('text', '   ', 'purpose'))?.detail, 'purpose: is empty')
  t.equal(failure(() => canonicalizeField('text', 'x'.repeat(513), 'purpose'))?.detail, 'purpose: longer than 512 characters')
})

t.test('canonicalization is idempotent', async (t) => {
  const samples: [FieldKind, unknown][] = [
    ['residentId', '１１０１０５１９４９１２３１００２ｘ'],
    ['uscc', '91350100m000100y43'],
    ['partyId', ' 11010519491231002x'],
    ['name', '阿依古丽 ・ 买买提'],
    ['name', ' o’brien  sean '],
    ['year', 2024],
    ['amount', '0042'],
    ['text', ' a  b '],
  ]
  for (const [kind, raw] of samples) {
    const once = canonicalizeField(kind, raw, 'x')
    t.equal(canonicalizeField(kind, once, 'x'), once, `${kind}`)
  }
  t.same([...FIELD_KINDS].sort(), ['amount', 'name', 'partyId', 'residentId', 'text', 'uscc', 'year'])
})

t.test('error details never contain the value', async (t) => {
  const secret = '35010219800101123'
  for (const kind of FIELD_KINDS) {
    try {
      canonicalizeField(kind, `${secret}5!`, 'subjects[0].f')
    } catch (e) {
      t.notMatch((e as Error).message, secret, kind)
    }
  }
})

t.test('unknown kind is a programming error', async (t) => {
  t.throws(() => canonicalizeField('colour' as FieldKind, 'red', 'x'), TypeError)
})

t.test('canonicalizeSubject: exactly the declared fields, canonicalized, in declared order', async (t) => {
  const fields = { id: 'residentId', name: 'name' } as const
  const out = canonicalizeSubject(fields, { name: '张 三', id: '11010519491231002x' }, 'subjects[0]')
  t.same(out, { id: ID, name: '张三' })
  t.same(Object.keys(out), ['id', 'name'])

  const cases: [unknown, string, string][] = [
    [{ id: ID }, 'VN_ERR_SUBJECT_INVALID', 'subjects[2].name: missing'],
    [{ id: ID, name: undefined }, 'VN_ERR_SUBJECT_INVALID', 'subjects[2].name: missing'],
    [{ id: ID, name: '张三', birth: '1949' }, 'VN_ERR_SUBJECT_INVALID', 'subjects[2]: unknown field birth'],
    // A key that does not look like a field name might itself be personal data: not echoed.
    [{ id: ID, name: '张三', '11010519491231002X': 1 }, 'VN_ERR_SUBJECT_INVALID', 'subjects[2]: unknown field'],
    [JSON.parse(`{"id":"${ID}","name":"张三","__proto__":{"x":1}}`), 'VN_ERR_SUBJECT_INVALID', 'subjects[2]: unknown field __proto__'],
    // Inherited names are looked up as own properties: every object has a `constructor`.
    [{ id: ID, name: '张三', constructor: 'x' }, 'VN_ERR_SUBJECT_INVALID', 'subjects[2]: unknown field constructor'],
    [{ id: ID, name: '张三', toString: 'x' }, 'VN_ERR_SUBJECT_INVALID', 'subjects[2]: unknown field toString'],
    [{ id: ID, name: '张三', hasOwnProperty: 'x' }, 'VN_ERR_SUBJECT_INVALID', 'subjects[2]: unknown field hasOwnProperty'],
    [null, 'VN_ERR_SUBJECT_INVALID', 'subjects[2]: expected an object'],
    [[ID, '张三'], 'VN_ERR_SUBJECT_INVALID', 'subjects[2]: expected an object'],
    ['张三', 'VN_ERR_SUBJECT_INVALID', 'subjects[2]: expected an object'],
    [{ id: '110105194912310021', name: '张三' }, 'VN_ERR_SUBJECT_ID_CHECKSUM', 'subjects[2].id: check character does not match'],
  ]
  for (const [subject, code, detail] of cases) t.same(failure(() => canonicalizeSubject(fields, subject, 'subjects[2]')), { code, detail }, detail)
})

t.test('canonicalizeSubject: __proto__ and inherited names are refused even when declared', async (t) => {
  // Config and catalog schemas refuse such declarations (vocabulary.ts); this is the second line.
  const fields = JSON.parse('{"__proto__":"year","constructor":"year"}') as Record<string, FieldKind>
  t.same(failure(() => canonicalizeSubject(fields, JSON.parse('{"__proto__":"2024"}'), 's')), { code: 'VN_ERR_SUBJECT_INVALID', detail: 's: unknown field __proto__' })
  t.same(failure(() => canonicalizeSubject(fields, { constructor: '2024' }, 's')), { code: 'VN_ERR_SUBJECT_INVALID', detail: 's: unknown field constructor' })
})

t.test('canonicalizeSubject: optional fields, and empty values only when asked', async (t) => {
  const fields = { id: { kind: 'residentId', required: true }, year: { kind: 'year', required: false } } as const
  t.same(canonicalizeSubject(fields, { id: ID }, 's'), { id: ID })
  t.same(canonicalizeSubject(fields, { id: ID, year: 2024 }, 's'), { id: ID, year: '2024' })
  t.same(canonicalizeSubject(fields, { id: ID, year: '' }, 's', { emptyIsAbsent: true }), { id: ID }, 'a form left the optional field empty')
  t.same(canonicalizeSubject(fields, { id: ID, year: null }, 's', { emptyIsAbsent: true }), { id: ID })
  t.same(failure(() => canonicalizeSubject(fields, { id: '' }, 's', { emptyIsAbsent: true })), { code: 'VN_ERR_SUBJECT_INVALID', detail: 's.id: missing' })
  // A provider canonicalizes every value it opened: an empty one is refused, not dropped.
  t.same(failure(() => canonicalizeSubject(fields, { id: ID, year: '' }, 's')), { code: 'VN_ERR_SUBJECT_INVALID', detail: 's.year: year must be 4 digits' })
  t.same(failure(() => canonicalizeSubject(fields, { id: ID, year: null }, 's')), { code: 'VN_ERR_SUBJECT_INVALID', detail: 's.year: expected a string or an integer' })
})
