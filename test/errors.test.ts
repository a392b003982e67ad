import t from 'tap'
import { readFile } from 'node:fs/promises'
import { errorTables, docPath, BEGIN, END } from '../scripts/errors-doc.js'
import { ERRORS, VnError } from '../src/errors.js'

t.test('docs/ERRORS.md lists exactly the codes in src/errors.ts', async (t) => {
  const doc = await readFile(docPath, 'utf8')
  const section = doc.slice(doc.indexOf(BEGIN) + BEGIN.length, doc.indexOf(END)).trim()
  t.equal(section, errorTables().trim(), 'run `npm run docs:errors` after changing src/errors.ts')
})

t.test('codes follow VN_ERR_<AREA>_<WHAT> and statuses are HTTP errors', async (t) => {
  for (const [code, spec] of Object.entries(ERRORS)) {
    t.match(code, /^VN_ERR_[A-Z]+(_[A-Z0-9]+)*$/)
    t.ok(spec.status >= 400 && spec.status < 600, code)
  }
})

t.test('problem documents', async (t) => {
  const e = new VnError('VN_ERR_SUBJECT_ID_CHECKSUM', 'subjects[0].id: check character does not match')
  t.same(e.toProblem('/v1/exchange'), {
    type: 'urn:verinode:error:VN_ERR_SUBJECT_ID_CHECKSUM', title: ERRORS.VN_ERR_SUBJECT_ID_CHECKSUM.title, status: 400,
    code: 'VN_ERR_SUBJECT_ID_CHECKSUM', detail: 'subjects[0].id: check character does not match', instance: '/v1/exchange',
  })
  t.equal(new VnError('VN_ERR_INTERNAL').toProblem().detail, undefined)
})
