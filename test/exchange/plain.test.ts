import t from 'tap'
import { federationFixture } from '../helper.js'

t.test('identity match over real HTTP between two nodes', async (t) => {
  const f = await federationFixture(t, { start: ['fj-psb', 'fj-tax'] })
  const s = f.fed.dataset.samples.identity
  const m = s.matches[0]!
  const mm = s.nameMismatches[0]!
  const r = await f.verify('fj-tax', {
    provider: 'fj-psb', service: 'identity.match', purpose: 'taxpayer-registration',
    basis: 'Tax Collection Administration Law art. 15',
    subjects: [{ id: m.id, name: m.name }, { id: mm.id, name: mm.name }, { id: s.unknownIds[0], name: m.name }],
  })
  t.equal(r.status, 200, JSON.stringify(r.json))
  t.equal(r.json.status, 'ok')
  t.same(r.json.results[0], { found: true, match: true, fields: { name: true } })
  t.same(r.json.results[1], { found: true, match: false, fields: { name: false } })
  t.same(r.json.results[2], { found: false, match: false, fields: { name: false } })
})
