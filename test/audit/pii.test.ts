/**
 * The auditor's PII scan (src/audit/pii.ts): what it flags, what it must not flag (digests,
 * ASCII records, vetted agreement text), and that hits name a path, never the text.
 */
import t from 'tap'
import { createHash } from 'node:crypto'
import { hasIdentifierToken, looksLikeName, scanValue } from '../../src/audit/pii.js'
import { residentIdCheckChar } from '../../src/protocol/identifiers.js'
import { makeUscc } from '../../src/demo/synthetic.js'

const ID = `11010519491231002${residentIdCheckChar('11010519491231002')}`
const USCC = makeUscc('91', '350100', 'MA2Y0000')

t.test('ID numbers and credit codes are found as tokens, digests are not', async (t) => {
  t.ok(hasIdentifierToken(ID))
  t.ok(hasIdentifierToken(`purpose ${ID}.`), 'delimited by space and full stop')
  t.ok(hasIdentifierToken(ID.slice(0, 17) + 'x'), 'lower-case check character')
  t.ok(hasIdentifierToken(USCC))
  t.ok(hasIdentifierToken(`核查${ID}`), 'CJK text around it is a delimiter')
  t.notOk(hasIdentifierToken(ID.slice(0, 17)), '17 digits is not an ID number')
  t.notOk(hasIdentifierToken(`${ID}1`), '19 digits is not an ID number')
  // A base64url digest that happens to contain 18 digits in a row is one 43-character token.
  const digest = `Ab${'123456789012345678'}_-${'x'.repeat(21)}`
  t.equal(digest.length, 43)
  t.notOk(hasIdentifierToken(digest))
  for (let i = 0; i < 2000; i++) {
    const d = createHash('sha256').update(String(i)).digest('base64url')
    if (hasIdentifierToken(d)) t.fail(`digest ${d} flagged`)
  }
})

t.test('name heuristics', async (t) => {
  t.ok(looksLikeName('张伟'))
  t.ok(looksLikeName('check 欧阳娜娜 please'))
  t.ok(looksLikeName('阿依古丽·买买提'), 'transliterated name with a middle dot')
  t.notOk(looksLikeName('行政审批'), 'a 4-character word not starting with a surname')
  t.notOk(looksLikeName('中华人民共和国税收征收管理法'), 'long runs are text, not a name')
})

t.test('scanValue: structural fields, free text, vetted text, keys', async (t) => {
  t.same(scanValue({ t: 'decision', xid: 'abc', code: 'VN_ERR_X' }), [], 'ASCII records are clean')
  t.same(scanValue({ t: 'request-in', iss: '张伟' }), [{ kind: 'name', path: '$.iss' }], 'CJK in a structural field is a name')
  t.same(scanValue({ t: 'request-in', purpose: '行政审批' }, { freeText: ['purpose'] }), [{ kind: 'suspect-text', path: '$.purpose' }])
  t.same(scanValue({ t: 'request-in', purpose: '行政审批' }, { freeText: ['purpose'], vetted: new Set(['行政审批']) }), [], 'vetted agreement text')
  t.same(scanValue({ t: 'request-in', purpose: '核验 张伟' }, { freeText: ['purpose'] }), [{ kind: 'name', path: '$.purpose' }])
  t.same(scanValue({ t: 'request-in', purpose: `check ${ID}` }, { freeText: ['purpose'], vetted: new Set([`check ${ID}`]) }), [{ kind: 'identifier', path: '$.purpose' }], 'vetting never excuses an ID number')
  t.same(scanValue({ nested: [{ a: USCC }] }), [{ kind: 'identifier', path: '$.nested[0].a' }])
  t.same(scanValue({ [ID]: 1 }), [{ kind: 'identifier', path: '$.<key>' }], 'keys are scanned, and not echoed')
  t.same(scanValue({ agreements: [{ purposes: ['行政审批'] }] }, { freeText: 'all', vetted: new Set(['行政审批']) }), [])
  const hits = scanValue({ purpose: `张伟 ${ID}` }, { freeText: ['purpose'] })
  for (const h of hits) t.notOk(JSON.stringify(h).includes(ID) || JSON.stringify(h).includes('张伟'), 'hits never carry the text')
})
