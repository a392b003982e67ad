import t from 'tap'
import { CsvParser, csvField, csvLine, parseCsv, parseCsvText, type CsvRecord } from '../../src/cli/csv.js'
import { isVnError } from '../../src/errors.js'

const fields = (rs: CsvRecord[]): string[][] => rs.map((r) => r.fields)

async function collect(chunks: (Uint8Array | string)[]): Promise<CsvRecord[]> {
  const out: CsvRecord[] = []
  for await (const r of parseCsv((async function* () { yield* chunks })())) out.push(r)
  return out
}

t.test('plain records with CRLF, LF and bare CR line breaks', async (t) => {
  t.same(fields(parseCsvText('id,name\r\n1,a\r\n2,b\r\n')), [['id', 'name'], ['1', 'a'], ['2', 'b']])
  t.same(fields(parseCsvText('id,name\n1,a\n2,b')), [['id', 'name'], ['1', 'a'], ['2', 'b']], 'LF, no final break')
  t.same(fields(parseCsvText('id,name\r1,a\r2,b\r')), [['id', 'name'], ['1', 'a'], ['2', 'b']], 'bare CR')
  t.same(fields(parseCsvText('a,b,\n,,\n')), [['a', 'b', ''], ['', '', '']], 'empty fields, trailing comma')
  t.same(parseCsvText('x\n1\n').map((r) => [r.index, r.line]), [[0, 1], [1, 2]])
})

t.test('quoted fields: commas, doubled quotes, line breaks (RFC 4180 §2.5-2.7)', async (t) => {
  const text = 'id,name,note\r\n1,"Smith, John","said ""hi"""\r\n2,"two\r\nlines","a\nb"\r\n3,"",x\r\n'
  const rs = parseCsvText(text)
  t.same(fields(rs), [['id', 'name', 'note'], ['1', 'Smith, John', 'said "hi"'], ['2', 'two\r\nlines', 'a\nb'], ['3', '', 'x']])
  t.same(rs.map((r) => r.line), [1, 2, 3, 6], 'line numbers count the breaks inside quoted fields')
  t.same(rs.map((r) => r.index), [0, 1, 2, 3])
  t.same(fields(parseCsvText('""\n')), [['']], 'a lone empty quoted field is a record, not a blank line')
  t.same(fields(parseCsvText('"a"')), [['a']], 'closing quote at the very end')
})

t.test('blank lines are skipped and not numbered', async (t) => {
  const rs = parseCsvText('id\n\n1\r\n\r\n\n2\n\n')
  t.same(fields(rs), [['id'], ['1'], ['2']])
  t.same(rs.map((r) => r.index), [0, 1, 2])
  t.same(rs.map((r) => r.line), [1, 3, 6])
  t.same(parseCsvText(''), [])
  t.same(parseCsvText('\r\n\n'), [])
})

t.test('UTF-8 with and without BOM, Chinese text, split anywhere', async (t) => {
  const text = 'id,name\n11010519491231002X,张三\n350102198001011234,"阿依古丽·买买提"\n'
  const want = [['id', 'name'], ['11010519491231002X', '张三'], ['350102198001011234', '阿依古丽·买买提']]
  const bytes = Buffer.from(`\uFEFF${text}`, 'utf8')
  t.same(fields(await collect([bytes])), want, 'BOM dropped')
  t.same(fields(await collect([Buffer.from(text)])), want, 'no BOM')
  // One byte at a time: multi-byte characters and the BOM are split across chunks.
  t.same(fields(await collect([...bytes].map((b) => Uint8Array.of(b)))), want, 'byte by byte')
  t.same(fields(parseCsvText(`\uFEFF${text}`)), want, 'BOM in text')
  t.same(fields(await collect([`\uFEFF${text}`])), want, 'string chunks')
  t.equal(parseCsvText('\uFEFFid\n')[0]?.fields[0], 'id', 'the BOM is not part of the first header name')
})

t.test('every split point of a tricky text gives the same records', async (t) => {
  const text = 'a,"b ""q"" c",d\r\n"x\r\ny",,"z"\r"p"\n"open'
  const whole = parseCsvText(text)
  t.equal(whole.length, 4)
  t.equal(whole[3]?.error, 'a quoted field is not closed before the end of the file')
  for (let i = 1; i < text.length; i++) {
    const p = new CsvParser()
    const got = [...p.push(text.slice(0, i)), ...p.push(text.slice(i)), ...p.end()]
    t.same(got, whole, `split at ${i}`)
  }
  t.end()
})

t.test('malformed records are reported in place, without their text', async (t) => {
  const text = 'id,name\n1,ok\n2,bad"quote\n3,"closed"junk\n4,fine\n5,"never closed\n6,lost\n'
  const rs = parseCsvText(text)
  t.same(rs.map((r) => r.index), [0, 1, 2, 3, 4, 5])
  t.same(fields(rs.slice(0, 2)), [['id', 'name'], ['1', 'ok']])
  t.match(rs[2], { line: 3, fields: [], error: /double quote inside an unquoted field/ })
  t.match(rs[3], { line: 4, fields: [], error: /text after a closing double quote/ })
  t.same(rs[4], { index: 4, line: 5, fields: ['4', 'fine'] }, 'the record after a bad one is intact')
  t.match(rs[5], { line: 6, fields: [], error: /not closed before the end of the file/ }, 'an unclosed quote swallows the rest of the file')
  for (const r of rs) t.notMatch(r.error ?? '', /bad|junk|never|lost/, 'no record text in the error')
})

t.test('size limits: an over-long record or too many fields is an error record', async (t) => {
  const long = parseCsvText(`a\n${'x'.repeat(100)}\nb\n`, { maxRecordChars: 50 })
  t.same(fields(long), [['a'], [], ['b']])
  t.match(long[1]?.error, /longer than 50 characters/)
  const wide = parseCsvText('a,b,c,d\nz\n', { maxFields: 3 })
  t.match(wide[0], { fields: [], error: /more than 3 fields/ })
  t.same(wide[1]?.fields, ['z'])
  // The limit also bounds memory inside an unclosed quoted field.
  const p = new CsvParser({ maxRecordChars: 10 })
  p.push('"')
  for (let i = 0; i < 1000; i++) p.push('y'.repeat(1000))
  t.match(p.end(), [{ fields: [], error: /longer than 10/ }])
})

t.test('bytes that are not UTF-8 stop the parse with VN_ERR_CLI_CSV_MALFORMED', async (t) => {
  // "张三" in GB 18030 is not valid UTF-8.
  const gb = Uint8Array.from([0x69, 0x64, 0x0a, 0xd5, 0xc5, 0xc8, 0xfd, 0x0a])
  await t.rejects(collect([gb]), { code: 'VN_ERR_CLI_CSV_MALFORMED' })
  // A truncated multi-byte sequence at the very end.
  const cut = Buffer.from('id\n张', 'utf8').subarray(0, 5)
  const err = await collect([cut]).catch((e: unknown) => e)
  t.ok(isVnError(err) && err.code === 'VN_ERR_CLI_CSV_MALFORMED')
})

t.test('writing: quote only when needed, CRLF, and it parses back', async (t) => {
  t.equal(csvField('plain'), 'plain')
  t.equal(csvField('a,b'), '"a,b"')
  t.equal(csvField('say "x"'), '"say ""x"""')
  t.equal(csvField('two\nlines'), '"two\nlines"')
  t.equal(csvField(' edge'), '" edge"')
  t.equal(csvField(''), '')
  t.equal(csvLine(['1', 'a,b', '']), '1,"a,b",\r\n')
  const rows = [['row', 'fields.name', 'extra'], ['1', 'true', '{"x":"a,\\"b\\""}'], ['2', '', 'line\r\nbreak'], ['3', '张三', '']]
  t.same(fields(parseCsvText(rows.map(csvLine).join(''))), rows)
})
