import { useEffect, useState } from 'preact/hooks'
import { api, type Overview } from '../api'
import { fmtTime, t, type Key } from '../i18n'
import { ErrorBox } from '../error-box'

export function OverviewPage(props: { role: 'operator' | 'auditor' }) {
  const [o, setO] = useState<Overview | null>(null)
  const [error, setError] = useState<unknown>(null)
  const [reload, setReload] = useState<string | null>(null)
  const load = () => api<Overview>('GET', '/status/overview').then(setO, setError)
  useEffect(() => { void load() }, [])
  const reloadManifest = async () => {
    setError(null)
    try {
      const r = await api<{ seq: number }>('POST', '/manifest/reload')
      setReload(`${t('reloaded')} ${r.seq}`)
      await load()
    } catch (e) {
      setError(e)
    }
  }
  return (
    <section data-testid="page-overview">
      <ErrorBox error={error} />
      {o !== null && (
        <div class="cards">
          <div class="card">
            <h2>{o.member}: <span class={o.ready.ok ? 'ok' : 'bad'} data-testid="ready">{o.ready.ok ? t('ready') : t('notReady')}</span></h2>
            <table>
              <thead><tr><th>{t('check')}</th><th>{t('state')}</th><th>{t('detail')}</th></tr></thead>
              <tbody>
                {Object.entries(o.ready.checks).map(([name, c]) => (
                  <tr data-testid={`check-${name}`}><td>{name}</td><td class={c.ok ? 'ok' : 'bad'}>{c.ok ? 'ok' : '✗'}</td><td class="muted">{c.detail ?? ''}</td></tr>
                ))}
              </tbody>
            </table>
          </div>
          <div class="card">
            <h2>{t('manifest')}</h2>
            {o.manifest === null ? <p>{t('none')}</p> : (
              <table><tbody>
                <tr><th>{t('federation')}</th><td>{o.manifest.federation}</td></tr>
                <tr><th>{t('seq')}</th><td data-testid="manifest-seq">{o.manifest.seq}</td></tr>
                <tr><th>{t('expires')}</th><td data-testid="manifest-exp">{fmtTime(o.manifest.exp)}</td></tr>
              </tbody></table>
            )}
            {props.role === 'operator'
              ? <p><button type="button" data-testid="reload-manifest" onClick={reloadManifest}>{t('reloadManifest')}</button></p>
              : <p class="muted" data-testid="read-only">{t('auditorReadOnly')}</p>}
            {reload !== null && <p class="ok" data-testid="reload-result">{reload}</p>}
          </div>
          <div class="card">
            <h2>{t('keys')}</h2>
            <table>
              <thead><tr><th>{t('kind')}</th><th>kid</th><th>{t('validFrom')}</th><th>{t('validUntil')}</th></tr></thead>
              <tbody>{o.keys.map((k) => <tr><td>{k.kind}</td><td class="mono">{k.kid}</td><td>{fmtTime(k.nbf)}</td><td>{fmtTime(k.exp)}</td></tr>)}</tbody>
            </table>
            <h2 style="margin-top:10px">{t('certificate')}</h2>
            <p data-testid="certificate">{o.certificate === null ? t('noCertificate') : `${t('validUntil')} ${fmtTime(o.certificate.notAfter)}`}</p>
          </div>
          <div class="card">
            <h2>{t('log')}</h2>
            <table><tbody>
              <tr><th>{t('logSize')}</th><td data-testid="log-size">{o.log.size}</td></tr>
              <tr><th>{t('lastCheckpoint')}</th><td data-testid="checkpoint-size">{o.log.checkpoint?.size ?? t('none')}</td></tr>
              <tr><th>{t('root')}</th><td class="mono">{o.log.checkpoint?.root ?? '—'}</td></tr>
              <tr><th>{t('cosigners')}</th><td data-testid="cosigners">{o.log.checkpoint === null || o.log.checkpoint.cosigners.length === 0 ? t('none') : o.log.checkpoint.cosigners.join(', ')}</td></tr>
            </tbody></table>
          </div>
          <div class="card">
            <h2>{t('exchanges')}</h2>
            <p><span class="big" data-testid="exchanges-provider">{o.traffic.exchanges.provider}</span> {t('asProvider')} · <span class="big" data-testid="exchanges-consumer">{o.traffic.exchanges.consumer}</span> {t('asConsumer')}</p>
            <table>
              <thead><tr><th>{t('role')}</th><th>{t('count')}</th><th>p50</th><th>p90</th><th>p99</th></tr></thead>
              <tbody>{o.traffic.latency.map((l) => <tr data-testid={`latency-${l.role}`}><td>{t(l.role as Key)}</td><td>{l.count}</td><td>{l.p50}</td><td>{l.p90}</td><td>{l.p99}</td></tr>)}</tbody>
            </table>
            <p class="muted">{t('latency')}</p>
          </div>
          <div class="card">
            <h2>{t('alerts')}</h2>
            {o.alerts.length === 0 ? <p class="ok" data-testid="no-alerts">{t('noAlerts')}</p> : (
              <ul data-testid="alerts">{o.alerts.map((a) => <li class="warn">{t(`alert.${a.kind}` as Key)}: {a.subject}{a.index === undefined ? '' : ` (#${a.index})`}</li>)}</ul>
            )}
          </div>
        </div>
      )}
    </section>
  )
}
