import { useEffect, useState } from 'preact/hooks'
import { api, ApiError, type Peers } from '../api'
import { fmtTime, lang, t } from '../i18n'

interface CatalogService { id: string; title: { en: string; zh?: string }; kind: string; modes: string[] }
type CatalogRow = { peer: string; services: CatalogService[] } | { peer: string; error: string }
import { ErrorBox } from '../error-box'

export function PeersPage() {
  const [p, setP] = useState<Peers | null>(null)
  const [error, setError] = useState<unknown>(null)
  const [catalogs, setCatalogs] = useState<CatalogRow[]>([])
  useEffect(() => {
    api<Peers>('GET', '/status/peers').then((r) => {
      setP(r)
      // the federation catalogue: each peer's signed catalog, verified by this node
      // shown as each arrives: an unreachable peer's timeout holds up no other
      for (const m of r.members.filter((x) => x.id !== r.self && x.endpoint !== null)) {
        api<{ services: CatalogService[] }>('GET', `/peers/${encodeURIComponent(m.id)}/catalog`).then(
          (c): CatalogRow => ({ peer: m.id, services: c.services }),
          (e: unknown): CatalogRow => ({ peer: m.id, error: e instanceof ApiError ? e.problem.code : String(e) }),
        ).then((row) => setCatalogs((rows) => [...rows, row].sort((a, b) => (a.peer < b.peer ? -1 : 1))))
      }
    }, setError)
  }, [])
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
          <h3>{t('catalogue')}</h3>
          <table data-testid="catalogue">
            <thead><tr><th>{t('member')}</th><th>{t('services')}</th><th>{t('name')}</th><th>{t('kind')}</th><th>{t('modes')}</th></tr></thead>
            <tbody>
              {catalogs.flatMap((c) => ('error' in c
                ? [<tr><td class="mono">{c.peer}</td><td colSpan={4} class="bad">{c.error}</td></tr>]
                : c.services.map((sv) => (
                  <tr data-testid={`catalog-${c.peer}-${sv.id}`}><td class="mono">{c.peer}</td><td class="mono">{sv.id}</td><td>{lang() === 'zh' ? (sv.title.zh ?? sv.title.en) : sv.title.en}</td><td>{sv.kind}</td><td>{sv.modes.join(', ')}</td></tr>
                ))))}
            </tbody>
          </table>
        </>
      )}
    </section>
  )
}
