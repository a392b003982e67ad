/**
 * The tests' TypeScript hooks (test/loader/ts-transpile.mjs): `.js` specifiers reach our `.ts`
 * files, also through tap's module mocks, and what runs keeps its .ts line numbers.
 */
import t from 'tap'

t.test('a mock reaches through .js specifiers of .ts modules, the rest stays real', async (t) => {
  const real = await import('./fixtures/ts-twins/a.js')
  t.equal(real.a(), 'b(c)+c')
  const m = await t.mockImport<typeof import('./fixtures/ts-twins/a.js')>('./fixtures/ts-twins/a.js', { './fixtures/ts-twins/c.js': { c: () => 'MOCK' } })
  // a's own import is mocked. Whether b, a real module under the mock, sees the mock too depends on
  // the hooks below ours: with ts-node's it does not (as before these hooks), without it it does.
  t.match(m.a(), /^b\((c|MOCK)\)\+MOCK$/, 'the mocked module where the module under test imports it')
})

t.test('stack traces point at the .ts lines', async (t) => {
  const line = new Error('here').stack?.split('\n')[1] ?? ''
  const { readFileSync } = await import('node:fs')
  const want = readFileSync(new URL(import.meta.url), 'utf8').split('\n').findIndex((l) => l.includes("new Error('here')")) + 1
  t.match(line, new RegExp(`test/loader\\.test\\.ts:${want}:\\d+\\)?$`))
})
