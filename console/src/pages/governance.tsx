import { useEffect, useState } from 'preact/hooks'
import { api, type ActionResult, type ApplicationItem, type DisputeItem } from '../api'
import { fmtTime, t, type Key } from '../i18n'
import { ErrorBox } from '../error-box'

/**
 * Applications and disputes (docs/GOVERNANCE.md): both queues, incoming (this node provides) and
 * outgoing (this node filed), from `GET /local/v1/applications` and `/disputes`: ids, digests,
 * parties, services, states and deadlines only (never the sealed contact or note). The operator
 * answers an incoming item here; the node signs, logs and sends the answer.
 */

type Action = 'review' | 'approve' | 'amend' | 'refuse' | 'correct' | 'reject'
interface Pending { kind: 'applications' | 'disputes'; id: string; action: Action }

/** what each action needs besides the click: a reason, and for an amendment the new daily quota */
const NEEDS_REASON: Record<Action, boolean> = { review: false, approve: false, amend: true, refuse: true, correct: true, reject: true }

/** a deadline passed (shown only for one still open: the node sends the days left only for those) */
const past = (at: number | undefined): boolean => at !== undefined && Date.now() > at

const short = (s: string): string => `${s.slice(0, 12)}…`

function Deadline(props: { at: number | undefined; left: number | undefined; overdue: boolean }) {
  if (props.at === undefined) return <span class="muted">—</span>
  return (
    <>
      {fmtTime(props.at)}
      {props.left !== undefined && <br />}
      {props.left !== undefined && (props.overdue
        ? <span class="bad">{t('overdue')}</span>
        : <span class={props.left <= 1 ? 'warn' : 'muted'}>{props.left} {t('workingDaysLeft')}</span>)}
    </>
  )
}

const stateOf = (s: string) => <span class={s === 'approved' || s === 'amended' || s === 'corrected' ? 'ok' : s === 'refused' || s === 'rejected' ? 'bad' : 'warn'}>{t(`st.${s}` as Key)}</span>

export function GovernancePage(props: { role: 'operator' | 'auditor' }) {
  const [apps, setApps] = useState<ApplicationItem[] | null>(null)
  const [disputes, setDisputes] = useState<DisputeItem[] | null>(null)
  const [error, setError] = useState<unknown>(null)
  const [pending, setPending] = useState<Pending | null>(null)
  const [reason, setReason] = useState('')
  const [quota, setQuota] = useState('')
  const [busy, setBusy] = useState(false)
  const [done, setDone] = useState<string | null>(null)
  const load = async () => {
    try {
      const [a, d] = await Promise.all([
        api<{ applications: ApplicationItem[] }>('GET', '/applications'),
        api<{ disputes: DisputeItem[] }>('GET', '/disputes'),
      ])
      setApps(a.applications.sort((x, y) => y.filedAt - x.filedAt))
      setDisputes(d.disputes.sort((x, y) => y.filedAt - x.filedAt))
    } catch (e) {
      setError(e)
    }
  }
  useEffect(() => { void load() }, [])
  const operator = props.role === 'operator'

  const start = (kind: Pending['kind'], id: string, action: Action) => {
    setPending({ kind, id, action })
    setReason('')
    setQuota('')
    setError(null)
    setDone(null)
  }
  const submit = async (ev: Event) => {
    ev.preventDefault()
    if (pending === null) return
    setBusy(true)
    setError(null)
    try {
      const body: Record<string, unknown> = {}
      if (NEEDS_REASON[pending.action]) body['reason'] = reason
      if (pending.action === 'amend') body['terms'] = { dailyQuota: Number(quota) }
      const r = await api<ActionResult>('POST', `/${pending.kind}/${encodeURIComponent(pending.id)}/${pending.action}`, body)
      setDone(`${pending.id}: ${t(`st.${r.state}` as Key)} · ${t('logIndex')} #${r.index}${r.agreement === undefined ? '' : ` · ${t('agreement')} ${r.agreement.id}`} · ${r.delivered ? t('delivered') : t('notDelivered')}`)
      setPending(null)
      await load()
    } catch (e) {
      setError(e)
    } finally {
      setBusy(false)
    }
  }

  const button = (kind: Pending['kind'], id: string, action: Action) => (
    <button type="button" class="small" data-testid={`${action}-${id}`} onClick={() => start(kind, id, action)}>{t(action)}</button>
  )

  const appTable = (list: ApplicationItem[], incoming: boolean) => (
    <table data-testid={incoming ? 'applications-in' : 'applications-out'}>
      <thead><tr><th>{t('id')}</th><th>{incoming ? t('theConsumer') : t('theProvider')}</th><th>{t('services')}</th><th>{t('filed')}</th><th>{t('state')}</th><th>{t('reviewDue')}</th><th>{t('answerDue')}</th><th>{t('agreement')}</th>{incoming && operator && <th>{t('actions')}</th>}</tr></thead>
      <tbody>
        {list.length === 0 && <tr><td colSpan={9} class="muted">{t('none')}</td></tr>}
        {list.map((a) => (
          <tr data-testid={`application-${a.id}`}>
            <td class="mono" title={`${t('digest')} ${a.digest}`}>{a.id}<br /><span class="muted">#{a.index} · {short(a.digest)}</span></td>
            <td>{incoming ? a.consumer : a.provider}</td>
            <td>{a.services.join(', ')}</td>
            <td>{fmtTime(a.filedAt)}</td>
            <td data-testid={`state-${a.id}`}>{stateOf(a.state)}</td>
            <td><Deadline at={a.reviewDue} left={a.reviewDaysLeft} overdue={past(a.reviewDue)} /></td>
            <td><Deadline at={a.due} left={a.dueDaysLeft} overdue={past(a.due)} /></td>
            <td class="mono">{a.agreement ?? '—'}</td>
            {incoming && operator && (
              <td class="actions">
                {a.state === 'filed' && button('applications', a.id, 'review')}
                {(a.state === 'filed' || a.state === 'under-review') && <>{button('applications', a.id, 'approve')}{button('applications', a.id, 'amend')}{button('applications', a.id, 'refuse')}</>}
              </td>
            )}
          </tr>
        ))}
      </tbody>
    </table>
  )

  const disputeTable = (list: DisputeItem[], incoming: boolean) => (
    <table data-testid={incoming ? 'disputes-in' : 'disputes-out'}>
      <thead><tr><th>{t('id')}</th><th>{incoming ? t('theConsumer') : t('theProvider')}</th><th>{t('exchange')}</th><th>{t('disputeReason')}</th><th>{t('filed')}</th><th>{t('state')}</th><th>{t('answerDue')}</th>{incoming && operator && <th>{t('actions')}</th>}</tr></thead>
      <tbody>
        {list.length === 0 && <tr><td colSpan={8} class="muted">{t('none')}</td></tr>}
        {list.map((x) => (
          <tr data-testid={`dispute-${x.id}`}>
            <td class="mono" title={`${t('digest')} ${x.digest}`}>{x.id}<br /><span class="muted">#{x.index} · {short(x.digest)}</span></td>
            <td>{incoming ? x.consumer : x.provider}</td>
            <td class="mono">{x.xid}<br /><span class="muted">#{x.ref}</span></td>
            <td>{x.reason}</td>
            <td>{fmtTime(x.filedAt)}</td>
            <td data-testid={`state-${x.id}`}>{stateOf(x.state)}</td>
            <td><Deadline at={x.due} left={x.dueDaysLeft} overdue={past(x.due)} /></td>
            {incoming && operator && <td class="actions">{x.state === 'filed' && <>{button('disputes', x.id, 'correct')}{button('disputes', x.id, 'reject')}</>}</td>}
          </tr>
        ))}
      </tbody>
    </table>
  )

  return (
    <section data-testid="page-governance">
      {!operator && <p class="muted" data-testid="read-only">{t('auditorReadOnly')}</p>}
      {pending !== null && (
        <form class="controls action-form" data-testid="action-form" onSubmit={submit}>
          <strong>{t(pending.action)}</strong> <span class="mono">{pending.id}</span>
          {NEEDS_REASON[pending.action] && (
            <label>{t('reason')} <input data-testid="action-reason" size={50} maxLength={1000} value={reason} onInput={(e) => setReason((e.target as HTMLInputElement).value)} required /></label>
          )}
          {pending.action === 'amend' && (
            <label>{t('dailyQuota')} <input data-testid="action-quota" type="number" min={1} value={quota} onInput={(e) => setQuota((e.target as HTMLInputElement).value)} required /></label>
          )}
          <button type="submit" data-testid="action-confirm" disabled={busy}>{busy ? t('running') : t('signAndSend')}</button>
          <button type="button" class="link" onClick={() => setPending(null)}>{t('cancel')}</button>
          <p class="muted">{t('reasonHelp')}</p>
        </form>
      )}
      {done !== null && <p class="ok" data-testid="action-result">{done}</p>}
      <ErrorBox error={error} />
      {apps !== null && disputes !== null && (
        <>
          <h3>{t('applications')}</h3>
          <h4>{t('incoming')}</h4>
          {appTable(apps.filter((a) => a.role === 'provider'), true)}
          <h4>{t('outgoing')}</h4>
          {appTable(apps.filter((a) => a.role === 'consumer'), false)}
          <h3>{t('disputes')}</h3>
          <h4>{t('incoming')}</h4>
          {disputeTable(disputes.filter((x) => x.role === 'provider'), true)}
          <h4>{t('outgoing')}</h4>
          {disputeTable(disputes.filter((x) => x.role === 'consumer'), false)}
          <p><button type="button" class="link" data-testid="governance-refresh" onClick={() => void load()}>{t('refresh')}</button></p>
        </>
      )}
    </section>
  )
}
