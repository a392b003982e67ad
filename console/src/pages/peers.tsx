import { useEffect, useState } from 'preact/hooks'
import { api, type Peers } from '../api'
import { fmtTime, t } from '../i18n'
import { ErrorBox } from '../error-box'

export function PeersPage() {
  const [p, setP] = useState<Peers | null>(null)
  const [error, setError] = useState<unknown>(null)
  useEffect(() => { api<Peers>('GET', '/status/peers').then(setP, setError) }, [])
  return (
    <section data-testid="page-peers">
      <ErrorBox error={error} />
      {p !== null && (
        <>
          <p>{t('federation')}: <strong data-testid="federation">{p.federation}</strong> · {t('seq')} <strong>{p.seq}</strong></p>
          <table>
            <thead><tr><th>{t('member')}</th><th>{t('name')}</th><th>{t('role')}</th><th>{t('endpoint')}</th><th>{t('pins')}</th><th>{t('keyIds')}</th><th>{t('reachable')}</th><th>{t('cosigned')}</th></tr></thead>
            <tbody>
              {p.members.map((m) => (
                <tr data-testid={`member-${m.id}`}>
                  <td class="mono">{m.id}{m.id === p.self ? ` (${t('self')})` : ''}</td>
                  <td>{m.name}</td>
                  <td>{m.role}</td>
                  <td class="mono">{m.endpoint ?? '—'}</td>
                  <td class="mono">{m.tlsPins.length === 0 ? '—' : m.tlsPins.map((x) => `${x.slice(0, 16)}…`).join(' ')}</td>
                  <td class="mono">{[...m.messageKids, ...m.logKids].join(' ')}</td>
                  <td data-testid={`up-${m.id}`} class={m.up === 1 ? 'ok' : m.up === 0 ? 'bad' : 'muted'}>{m.id === p.self ? '' : m.up === 1 ? t('up') : m.up === 0 ? t('down') : t('unknown')}</td>
                  <td data-testid={`cosigned-${m.id}`}>{m.lastCosigned === null ? '—' : `#${m.lastCosigned.size} ${fmtTime(m.lastCosigned.at)}`}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </section>
  )
}
