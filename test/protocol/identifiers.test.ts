import t from 'tap'
import { VnError } from '../../src/errors.js'
import {
  assertResidentId, assertUscc, isValidResidentId, isValidUscc, orgCodeCheckChar, parseResidentId, residentIdCheckChar,
  USCC_CHARSET, usccCheckChar,
} from '../../src/protocol/identifiers.js'

const NOW = new Date('2026-11-24T00:00:00Z')

/** The example in GB 11643-1999 §8 (北京市朝阳区, born 1949-12-31, sequence 002). */
const GB11643_EXAMPLE = '11010519491231002X'

/**
 * Published codes: the example of GB 32100-2015 and codes printed on the business licences of
 * well-known companies (Huawei Technologies, Shenzhen Tencent Computer Systems, Alibaba (China),
 * Xiaomi Technology, Bank of China, Kweichow Moutai).
 */
const PUBLISHED_USCC = [
  '91350100M000100Y43',
  '914403001922038216',
  '91440300708461136T',
  '91330100716105852F',
  '91110108551385082Q',
  '911000001000013428',
  '91520000214434146R',
]

function withCheck(first17: string): string {
  return first17 + residentIdCheckChar(first17)
}

function codeAndDetail(fn: () => unknown): { code: string; detail: string | undefined } | undefined {
  try {
    fn()
    return undefined
  } catch (e) {
    if (e instanceof VnError) return { code: e.code, detail: e.detail }
    throw e
  }
}

t.test('GB 11643 standard example', async (t) => {
  t.equal(residentIdCheckChar('11010519491231002'), 'X')
  t.ok(isValidResidentId(GB11643_EXAMPLE, NOW))
  t.same(parseResidentId(GB11643_EXAMPLE, 'id', NOW), { region: '110105', birthDate: '1949-12-31', sex: 'female' })
  t.same(parseResidentId(withCheck('35010219800101001'), 'id', NOW).sex, 'male', 'odd sequence code is male')
  assertResidentId(GB11643_EXAMPLE, 'subjects[0].id', NOW)
})

t.test('GB 11643 second example has a correct check digit but a birth year before 1900', async (t) => {
  // 440524188001010014 (汕头市潮阳县, 1880-01-01) is the standard's other example.
  t.equal(residentIdCheckChar('44052418800101001'), '4')
  t.same(codeAndDetail(() => assertResidentId('440524188001010014', 'subjects[1].id', NOW)), {
    code: 'VN_ERR_SUBJECT_ID_FORMAT',
    detail: 'subjects[1].id: birth date is before 1900',
  })
})

t.test('every single-character substitution of a valid resident ID fails', async (t) => {
  let tried = 0
  for (const valid of [GB11643_EXAMPLE, withCheck('35020320000229123')]) {
    t.ok(isValidResidentId(valid, NOW), valid)
    for (let i = 0; i < 18; i++) {
      for (const c of '0123456789X') {
        if (c === valid[i]) continue
        const mutated = valid.slice(0, i) + c + valid.slice(i + 1)
        tried++
        if (isValidResidentId(mutated, NOW)) t.fail(`substitution at ${i} accepted`)
      }
    }
  }
  t.equal(tried, 2 * (18 * 10), 'all substitutions tried')
})

t.test('every adjacent transposition of a valid resident ID fails (MOD 11-2 catches them)', async (t) => {
  const valid = withCheck('35058219871123456')
  for (let i = 0; i < 17; i++) {
    if (valid[i] === valid[i + 1]) continue
    const swapped = valid.slice(0, i) + valid[i + 1]! + valid[i]! + valid.slice(i + 2)
    t.notOk(isValidResidentId(swapped, NOW), `swap ${i},${i + 1}`)
  }
})

t.test('resident ID: lengths, characters and case', async (t) => {
  const cases: [unknown, string][] = [
    ['', 'must be 18 characters'],
    [GB11643_EXAMPLE.slice(0, 17), 'must be 18 characters'],
    [GB11643_EXAMPLE + '0', 'must be 18 characters'],
    ['11010519491231002x', 'check character must be upper-case X'],
    ['1101051949123100X2', 'must be 17 digits followed by a digit or X'],
    ['１１０１０５１９４９１２３１００２Ｘ', 'must be 17 digits followed by a digit or X'],
    [110105194912310020, 'expected a string'],
    [null, 'expected a string'],
  ]
  for (const [input, why] of cases) {
    t.notOk(isValidResidentId(input, NOW))
    t.same(codeAndDetail(() => assertResidentId(input, 'subjects[3].id', NOW)), { code: 'VN_ERR_SUBJECT_ID_FORMAT', detail: `subjects[3].id: ${why}` })
  }
})

t.test('resident ID: "in the future" follows the China date of each call, not a remembered one', async (t) => {
  const id = withCheck('35010220261125001') // born 2026-11-25
  const beforeCst = new Date('2026-11-24T15:59:59.999Z') // 23:59:59.999 on the 24th in Beijing
  const atCst = new Date('2026-11-24T16:00:00Z') // midnight of the 25th in Beijing
  t.notOk(isValidResidentId(id, beforeCst))
  t.ok(isValidResidentId(id, atCst))
  t.notOk(isValidResidentId(id, beforeCst), 'going back in time is not served from the cache')
  t.throws(() => isValidResidentId(id, new Date(Number.NaN)), RangeError, 'an invalid date still fails')
})

t.test('resident ID: birth date must be a real date, not before 1900, not in the future', async (t) => {
  t.ok(isValidResidentId(withCheck('35010220000229001'), NOW), '2000-02-29 (leap year)')
  t.ok(isValidResidentId(withCheck('35010219000101001'), NOW), '1900-01-01')
  const bad: [string, string][] = [
    ['35010219000229001', 'birth date is not a calendar date'], // 1900 is not a leap year
    ['35010219990230001', 'birth date is not a calendar date'],
    ['35010219991301001', 'birth date is not a calendar date'],
    ['35010219990100001', 'birth date is not a calendar date'],
    ['35010219990431001', 'birth date is not a calendar date'],
    ['35010218991231001', 'birth date is before 1900'],
    ['35010220261125001', 'birth date is in the future'],
    ['99010219900101001', 'administrative division code is not a known province'],
    ['00010219900101001', 'administrative division code is not a known province'],
  ]
  for (const [first17, why] of bad) {
    const id = withCheck(first17)
    t.same(codeAndDetail(() => parseResidentId(id, 'id', NOW)), { code: 'VN_ERR_SUBJECT_ID_FORMAT', detail: `id: ${why}` }, first17)
  }
  t.ok(isValidResidentId(withCheck('35010220261124001'), NOW), 'born today is fine')
  t.ok(isValidResidentId(withCheck('35010220261125001'), new Date('2026-11-24T16:00:00Z')), 'midnight in Beijing: the future arrives')
  t.notOk(isValidResidentId(withCheck('35010220261125001'), new Date('2026-11-24T15:59:59Z')), 'one second before')
})

t.test('a short number such as 12345 is a format error, not a checksum error', async (t) => {
  t.same(codeAndDetail(() => assertResidentId('12345', 'subjects[0].id', NOW)), { code: 'VN_ERR_SUBJECT_ID_FORMAT', detail: 'subjects[0].id: must be 18 characters' })
  t.same(codeAndDetail(() => assertUscc('12345', 'subjects[0].uscc')), { code: 'VN_ERR_SUBJECT_USCC_FORMAT', detail: 'subjects[0].uscc: must be 18 characters' })
})

t.test('resident ID errors never contain the number', async (t) => {
  const id = withCheck('35010219800101123').slice(0, 17) + (residentIdCheckChar('35010219800101123') === '0' ? '1' : '0')
  const err = codeAndDetail(() => assertResidentId(id, 'subjects[3].id', NOW))
  t.same(err, { code: 'VN_ERR_SUBJECT_ID_CHECKSUM', detail: 'subjects[3].id: check character does not match' })
  try {
    assertResidentId(id, 'subjects[3].id', NOW)
  } catch (e) {
    t.notMatch((e as Error).message, /\d{6}/)
  }
})

t.test('residentIdCheckChar rejects bad input', async (t) => {
  t.throws(() => residentIdCheckChar('1101051949123100'), TypeError)
  t.throws(() => residentIdCheckChar('1101051949123100A'), TypeError)
})

t.test('published USCCs are valid and their check characters recompute', async (t) => {
  for (const code of PUBLISHED_USCC) {
    t.ok(isValidUscc(code), code)
    t.equal(usccCheckChar(code.slice(0, 17)), code[17], `${code} MOD 31`)
    t.equal(orgCodeCheckChar(code.slice(8, 16)), code[16], `${code} GB 11714`)
    assertUscc(code, 'uscc')
  }
})

t.test('every single-character substitution of a valid USCC fails', async (t) => {
  let tried = 0
  for (const valid of PUBLISHED_USCC) {
    for (let i = 0; i < 18; i++) {
      for (const c of USCC_CHARSET) {
        if (c === valid[i]) continue
        tried++
        if (isValidUscc(valid.slice(0, i) + c + valid.slice(i + 1))) t.fail(`${valid}: substitution ${c} at ${i} accepted`)
      }
    }
  }
  t.equal(tried, PUBLISHED_USCC.length * 18 * 30)
})

/** A code whose MOD 31 check is right, whatever else is wrong. */
function withUsccCheck(first17: string): string {
  return first17 + usccCheckChar(first17)
}

t.test('USCC: the GB 11714 organisation code check is validated too', async (t) => {
  // Huawei's code with its organisation check character changed, then the MOD 31 check redone.
  const base = '914403001922038216'
  const wrongOrg = withUsccCheck(base.slice(0, 16) + (base[16] === '2' ? '3' : '2'))
  t.notOk(isValidUscc(wrongOrg))
  t.same(codeAndDetail(() => assertUscc(wrongOrg, 'subjects[0].uscc')), {
    code: 'VN_ERR_SUBJECT_USCC_CHECKSUM',
    detail: 'subjects[0].uscc: organisation code check character does not match',
  })
})

t.test('USCC: structure, lengths, characters and case', async (t) => {
  const org = '19220382'
  const orgFull = org + orgCodeCheckChar(org)
  const cases: [unknown, string][] = [
    ['', 'must be 18 characters'],
    ['91350100M000100Y4', 'must be 18 characters'],
    ['91350100M000100Y430', 'must be 18 characters'],
    ['91350100m000100y43', 'character 9 must be upper-case'],
    ['91350100M000100I43', 'character 16 is not a GB 32100 code character'],
    ['91350100M000100O43', 'character 16 is not a GB 32100 code character'],
    ['９１３５０１００Ｍ０００１００Ｙ４３', 'character 1 is not a GB 32100 code character'],
    [42, 'expected a string'],
    [withUsccCheck(`B1440300${orgFull}`), 'registration authority code is not assigned'],
    [withUsccCheck(`94440300${orgFull}`), 'organisation type code is not valid for the registration authority'],
    [withUsccCheck(`Y2440300${orgFull}`), 'organisation type code is not valid for the registration authority'],
    [withUsccCheck(`9144A300${orgFull}`), 'administrative division code must be 6 digits'],
    [withUsccCheck(`91990300${orgFull}`), 'administrative division code is not a known province'],
    ['914403001922038217', 'check character does not match'],
  ]
  for (const [input, why] of cases) {
    t.notOk(isValidUscc(input))
    const code = why.endsWith('check character does not match') ? 'VN_ERR_SUBJECT_USCC_CHECKSUM' : 'VN_ERR_SUBJECT_USCC_FORMAT'
    t.same(codeAndDetail(() => assertUscc(input, 'subjects[0].uscc')), { code, detail: `subjects[0].uscc: ${why}` }, String(input))
  }
  // Other authorities' codes with valid checks are accepted (民政 social organisation, 机构编制 institution).
  t.ok(isValidUscc(withUsccCheck(`53350100${orgFull}`)))
  t.ok(isValidUscc(withUsccCheck(`12100000${orgFull}`)))
})

t.test('USCC: early Fujian pilot codes that break the MOD 31 rule are rejected (documented limitation)', async (t) => {
  t.notOk(isValidUscc('91350100M0001TGQXM'))
})

t.test('usccCheckChar and orgCodeCheckChar reject bad input', async (t) => {
  t.throws(() => usccCheckChar('91350100M000100Y'), TypeError)
  t.throws(() => usccCheckChar('91350100M000100YI'), { name: 'TypeError', message: /first17\[16\]/ })
  t.throws(() => orgCodeCheckChar('1922038'), TypeError)
  t.throws(() => orgCodeCheckChar('1922038a'), TypeError)
  // GB 11714: 11 - (Σ mod 11) = 10 is written X and 11 is written 0.
  let sawX = false
  let saw0 = false
  for (let n = 10000000; n < 10000100; n++) {
    const c = orgCodeCheckChar(String(n))
    const digits = String(n)
    const sum = [3, 7, 9, 10, 5, 8, 4, 2].reduce((s, w, i) => s + w * Number(digits[i]), 0)
    const expected = 11 - (sum % 11)
    t.equal(c, expected === 10 ? 'X' : expected === 11 ? '0' : String(expected))
    sawX ||= c === 'X'
    saw0 ||= c === '0'
  }
  t.ok(sawX && saw0, 'both special values occur')
})
