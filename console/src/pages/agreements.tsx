import { useEffect, useState } from 'preact/hooks'
import { api, type Agreement } from '../api'
import { t } from '../i18n'
import { ErrorBox } from '../error-box'

export function AgreementsPage() {
  const [list, setList] = useState<Agreement[] | null>(null)
  const [error, setError] = useState<unknown>(null)
  useEffect(() => { api<{ agreements: Agreement[] }>('GET', '/status/agreements').then((r) => setList(r.agreements), setError) }, [])
  return (
    <section data-testid="page-agreements">
      <ErrorBox error={error} />
      {list !== null && list.length === 0 && <p>{t('noAgreements')}</p>}
      {list !== null && list.length > 0 && (
        <table>
          <thead><tr><th>{t('agreement')}</th><th>{t('consumer')}</th><th>{t('services')}</th><th>{t('purposes')}</th><th>{t('modes')}</th><th>{t('validity')}</th><th>{t('usedToday')}</th></tr></thead>
          <tbody>
            {list.map((a) => {
              const share = a.used / a.dailyQuota
              return (
                <tr data-testid={`agreement-${a.id}`}>
                  <td class="mono">{a.id}</td>
                  <td>{a.consumer}</td>
                  <td>{a.services.join(', ')}</td>
                  <td>{a.purposes.join(', ')}</td>
                  <td>{a.modes.join(', ')}</td>
                  <td><span class={a.inForce ? 'ok' : 'bad'}>{a.inForce ? t('inForce') : t('notInForce')}</span><br /><span class="muted">{a.validFrom.slice(0, 10)} – {a.validUntil.slice(0, 10)}</span></td>
                  <td><span data-testid={`used-${a.id}`}>{a.used}</span> / {a.dailyQuota}<div class={share >= 0.8 ? 'bar high' : 'bar'}><div style={`width:${Math.min(100, share * 100).toFixed(1)}%`} /></div></td>
                </tr>
              )
            })}
          </tbody>
        </table>
      )}
    </section>
  )
}
