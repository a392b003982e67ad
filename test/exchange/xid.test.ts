import t from 'tap'
import { newXid } from '../../src/exchange/consumer.js'

t.test('exchange ids are 128-bit base64url and never look like a command-line option', async (t) => {
  const xids = Array.from({ length: 5000 }, newXid)
  t.ok(xids.every((x) => /^[A-Za-z0-9_][A-Za-z0-9_-]{21}$/.test(x)), 'no leading "-" in 5,000 draws (about 78 would have one)')
  t.equal(new Set(xids).size, xids.length)
})
