import { useEffect, useState } from 'preact/hooks'
import { api, type Traffic } from '../api'
import { t, type Key } from '../i18n'
import { Chart } from '../chart'
import { ErrorBox } from '../error-box'

const POINTS = { minute: 60, hour: 48, day: 30 } as const

/** a percentile of the provider's histogram: the upper bound of its bucket, or above the last (5 s) */
const ms = (x: number | null): string => (x === null ? '> 5000' : `≤ ${x}`)

export function TrafficPage() {
  const [step, setStep] = useState<'minute' | 'hour' | 'day'>('minute')
  const [by, setBy] = useState('service')
  const [role, setRole] = useState('')
  const [data, setData] = useState<Traffic | null>(null)
  const [error, setError] = useState<unknown>(null)
  useEffect(() => {
    const q = new URLSearchParams({ step, by, points: String(POINTS[step]) })
    if (role !== '') q.set('role', role)
    api<Traffic>('GET', `/status/traffic?${q}`).then(setData, setError)
  }, [step, by, role])
  const sel = (value: string, set: (v: string) => void, options: string[], id: string) => (
    <select data-testid={id} value={value} onChange={(e) => set((e.target as HTMLSelectElement).value)}>
      {options.map((o) => <option value={o}>{t((o === '' ? 'both' : o) as Key)}</option>)}
    </select>
  )
  return (
    <section data-testid="page-traffic">
      <div class="controls">
        <label>{t('step')} {sel(step, (v) => setStep(v as 'minute'), ['minute', 'hour', 'day'], 'step')}</label>
        <label>{t('by')} {sel(by, setBy, ['service', 'peer', 'mode', 'decision', 'role'], 'by')}</label>
        <label>{t('role')} {sel(role, setRole, ['', 'provider', 'consumer'], 'role')}</label>
      </div>
      <ErrorBox error={error} />
      {data !== null && (
        <>
          {data.total === 0 ? <p data-testid="no-traffic">{t('noTraffic')}</p> : <Chart times={data.times} series={data.series} />}
          <table data-testid="series-table">
            <thead><tr><th>{t(by as Key)}</th><th>{t('total')}</th></tr></thead>
            <tbody>
              {data.series.map((s) => <tr><td>{s.name}</td><td data-testid={`total-${s.name}`}>{s.counts.reduce((a, b) => a + b, 0)}</td></tr>)}
              <tr><th>{t('total')}</th><th data-testid="total">{data.total}</th></tr>
            </tbody>
          </table>
          <h3>{t('latency')}</h3>
          <table>
            <thead><tr><th>{t('role')}</th><th>{t('count')}</th><th>p50</th><th>p90</th><th>p99</th></tr></thead>
            <tbody>{data.summary.latency.map((l) => <tr><td>{t(l.role as Key)}</td><td>{l.count}</td><td>{l.p50}</td><td>{l.p90}</td><td>{l.p99}</td></tr>)}</tbody>
          </table>
          <h3>{t('providerLatency')}</h3>
          {data.providerLatency.length === 0 ? <p class="muted" data-testid="no-provider-latency">{t('noProviderLatency')}</p> : (
            <table data-testid="provider-latency">
              <thead><tr><th>{t('service')}</th><th>{t('mode')}</th><th>{t('count')}</th><th>p50</th><th>p90</th><th>p99</th></tr></thead>
              <tbody>{data.providerLatency.map((l) => (
                <tr data-testid={`provider-latency-${l.service}-${l.mode}`}><td>{l.service}</td><td>{l.mode}</td><td data-testid={`provider-latency-count-${l.service}-${l.mode}`}>{l.count}</td><td>{ms(l.p50)}</td><td>{ms(l.p90)}</td><td>{ms(l.p99)}</td></tr>
              ))}</tbody>
            </table>
          )}
          <p class="muted">{t('providerLatencyHelp')}</p>
        </>
      )}
    </section>
  )
}
