/** The governance state machine: the transitions it allows, those it refuses (with codes), and the agreements in force it derives. */
import t from 'tap'
import { GovernanceBook, type GovernanceEvent } from '../../src/policy/governance.js'
import type { Agreement } from '../../src/policy/agreements.js'

const agreement = (id: string, consumer = 'fj-psb'): Agreement => ({
  id, consumer, services: ['tax.compliance'], purposes: ['p'], basis: 'b', validFrom: '2026-01-01T00:00:00Z', validUntil: '2027-01-01T00:00:00Z', dailyQuota: 5, modes: ['plain'],
})
const ev = (e: Partial<GovernanceEvent> & Pick<GovernanceEvent, 'kind' | 'id'>): GovernanceEvent => ({ iss: 'fj-psb', aud: 'fj-tax', digest: `d-${e.kind}-${e.id}`, ...e })
const code = (f: () => void): string | undefined => {
  try {
    f()
    return undefined
  } catch (e) {
    return (e as { code?: string }).code
  }
}

t.test('an application through review and approval; its agreement in force; suspended, resumed, revoked', async (t) => {
  const book = new GovernanceBook([agreement('cfg-1', 'fj-credit')], 'fj-tax')
  t.same(book.activeAgreements('fj-tax').map((a) => a.id), ['cfg-1'])
  book.apply(ev({ kind: 'application', id: 'A1', reviewDue: 10, due: 20 }), 0, 1)
  t.equal(code(() => book.apply(ev({ kind: 'application', id: 'A1' }), 1, 1)), 'VN_ERR_GOV_DUPLICATE')
  t.equal(code(() => book.apply(ev({ kind: 'application-review', id: 'A1' }), 1, 2)), 'VN_ERR_GOV_WRONG_MEMBER', 'the consumer cannot review its own application')
  t.same(book.overdue(15, 'fj-tax').review.map((a) => a.id), ['A1'])
  book.apply(ev({ kind: 'application-review', id: 'A1', iss: 'fj-tax', aud: 'fj-psb' }), 1, 2)
  t.same(book.overdue(15, 'fj-tax').review, [], 'reviewed: no longer overdue for review')
  t.same(book.overdue(25, 'fj-tax').answer.map((a) => a.id), ['A1'])
  t.equal(code(() => book.apply(ev({ kind: 'application-decision', id: 'A1', iss: 'fj-tax', aud: 'fj-psb', outcome: 'approved', agreement: agreement('cfg-1') }), 2, 3)), 'VN_ERR_GOV_AGREEMENT_CONFLICT')
  t.equal(code(() => book.apply(ev({ kind: 'application-decision', id: 'A1', iss: 'fj-tax', aud: 'fj-psb', outcome: 'approved', agreement: agreement('apl-1', 'fj-amr') }), 2, 3)), 'VN_ERR_GOV_WRONG_MEMBER')
  book.apply(ev({ kind: 'application-decision', id: 'A1', iss: 'fj-tax', aud: 'fj-psb', outcome: 'approved', agreement: agreement('apl-1') }), 2, 3)
  t.equal(code(() => book.apply(ev({ kind: 'application-decision', id: 'A1', iss: 'fj-tax', aud: 'fj-psb', outcome: 'refused' }), 3, 4)), 'VN_ERR_GOV_STATE')
  t.same(book.activeAgreements('fj-tax').map((a) => a.id), ['apl-1', 'cfg-1'])
  t.same(book.activeAgreements('fj-psb').map((a) => a.id), ['cfg-1'], "another provider's approvals are not this node's (the config's are the node's own)")
  const change = (outcome: string, i: number): void => book.apply(ev({ kind: 'agreement-change', id: 'apl-1', iss: 'fj-tax', aud: 'fj-psb', outcome, digest: `c${i}` }), i, i)
  change('suspend', 4)
  t.same(book.activeAgreements('fj-tax').map((a) => a.id), ['cfg-1'])
  t.equal(code(() => change('suspend', 5)), 'VN_ERR_GOV_STATE')
  change('resume', 5)
  change('revoke', 6)
  t.equal(code(() => change('resume', 7)), 'VN_ERR_GOV_STATE', 'revoked is final')
  t.same(book.activeAgreements('fj-tax').map((a) => a.id), ['cfg-1'])
  // a config agreement can be suspended by its provider only
  t.equal(code(() => book.apply(ev({ kind: 'agreement-change', id: 'cfg-1', iss: 'fj-psb', aud: 'fj-credit', outcome: 'suspend' }), 8, 8)), 'VN_ERR_GOV_WRONG_MEMBER')
  book.apply(ev({ kind: 'agreement-change', id: 'cfg-1', iss: 'fj-tax', aud: 'fj-credit', outcome: 'suspend' }), 8, 8)
  t.same(book.activeAgreements('fj-tax'), [])
  t.equal(code(() => book.apply(ev({ kind: 'agreement-change', id: 'nope', iss: 'fj-tax', aud: 'fj-credit', outcome: 'suspend' }), 9, 9)), 'VN_ERR_GOV_UNKNOWN')
})

t.test('disputes: one per exchange, resolved once, by the provider', async (t) => {
  const book = new GovernanceBook([], 'fj-tax')
  book.apply(ev({ kind: 'dispute', id: 'D1', xid: 'X1', ref: 3, reason: 'outdated', due: 10 }), 0, 1)
  t.equal(code(() => book.apply(ev({ kind: 'dispute', id: 'D2', xid: 'X1', ref: 3 }), 1, 1)), 'VN_ERR_GOV_DUPLICATE')
  t.equal(code(() => book.apply(ev({ kind: 'dispute-resolution', id: 'D9', iss: 'fj-tax', aud: 'fj-psb', outcome: 'rejected' }), 1, 1)), 'VN_ERR_GOV_UNKNOWN')
  t.equal(code(() => book.apply(ev({ kind: 'dispute-resolution', id: 'D1', outcome: 'rejected' }), 1, 1)), 'VN_ERR_GOV_WRONG_MEMBER')
  t.same(book.overdue(11, 'fj-tax').disputes.map((d) => d.id), ['D1'])
  book.apply(ev({ kind: 'correction', id: 'D1', iss: 'fj-tax', aud: 'fj-psb', xid: 'X1', ref: 3 }), 1, 2)
  t.equal(code(() => book.apply(ev({ kind: 'correction', id: 'D1', iss: 'fj-tax', aud: 'fj-psb' }), 2, 2)), 'VN_ERR_GOV_STATE')
  book.apply(ev({ kind: 'dispute-resolution', id: 'D1', iss: 'fj-tax', aud: 'fj-psb', outcome: 'corrected' }), 2, 3)
  t.match(book.disputes.get('D1'), { state: 'corrected', correctionIndex: 1, resolvedAt: 3, events: [0, 1, 2] })
  t.equal(code(() => book.apply(ev({ kind: 'dispute-resolution', id: 'D1', iss: 'fj-tax', aud: 'fj-psb', outcome: 'rejected' }), 3, 4)), 'VN_ERR_GOV_STATE')
  t.same(book.overdue(11, 'fj-tax').disputes, [])
})
