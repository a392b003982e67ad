/** The web console: sign-in, then the pages (hash routes). Data from the local API only. */
import { render } from 'preact'
import { useEffect, useState } from 'preact/hooks'
import { api, setCsrf, type Session } from './api'
import { ErrorBox } from './error-box'
import { lang, setLang, t } from './i18n'
import { OverviewPage } from './pages/overview'
import { TrafficPage } from './pages/traffic'
import { AgreementsPage } from './pages/agreements'
import { PeersPage } from './pages/peers'
import { AuditPage } from './pages/audit'
import { GovernancePage } from './pages/governance'
import './style.css'

const PAGES = ['overview', 'traffic', 'agreements', 'governance', 'peers', 'audit'] as const
type Page = (typeof PAGES)[number]

const pageOf = (hash: string): Page => {
  const p = hash.replace(/^#\/?/, '')
  return (PAGES as readonly string[]).includes(p) ? (p as Page) : 'overview'
}

function SignIn(props: { onSession: (s: Session) => void }) {
  const [token, setToken] = useState('')
  const [error, setError] = useState<unknown>(null)
  const submit = async (ev: Event) => {
    ev.preventDefault()
    setError(null)
    try {
      const s = await api<Session>('POST', '/session', { token })
      setToken('')
      props.onSession(s)
    } catch (e) {
      setError(e)
    }
  }
  return (
    <form class="signin" onSubmit={submit}>
      <h1>{t('title')}</h1>
      <label>
        {t('token')}
        <input type="password" name="token" autoComplete="off" value={token} onInput={(e) => setToken((e.target as HTMLInputElement).value)} required />
      </label>
      <p class="muted">{t('tokenHelp')}</p>
      <button type="submit">{t('signIn')}</button>
      <ErrorBox error={error} />
    </form>
  )
}

function App() {
  const [session, setSession] = useState<Session | null | undefined>(undefined)
  const [page, setPage] = useState<Page>(pageOf(location.hash))
  const [, setLangTick] = useState(0)
  useEffect(() => {
    const on = () => setPage(pageOf(location.hash))
    addEventListener('hashchange', on)
    api<Session>('GET', '/session').then((s) => { setCsrf(s.csrf); setSession(s) }, () => setSession(null))
    return () => removeEventListener('hashchange', on)
  }, [])
  const toggleLang = () => {
    setLang(lang() === 'zh' ? 'en' : 'zh')
    setLangTick((x) => x + 1)
  }
  const langButton = <button type="button" class="link" data-testid="lang" onClick={toggleLang}>{t('language')}</button>
  if (session === undefined) return null
  if (session === null) {
    return (
      <main>
        <div class="topright">{langButton}</div>
        <SignIn onSession={(s) => { setCsrf(s.csrf); setSession(s) }} />
      </main>
    )
  }
  const signOut = async () => {
    await api('DELETE', '/session').catch(() => undefined)
    setCsrf(null)
    setSession(null)
  }
  return (
    <div class="shell">
      <header>
        <strong>{t('title')}</strong>
        <nav>
          {PAGES.map((p) => <a href={`#/${p}`} class={p === page ? 'active' : ''} data-testid={`nav-${p}`}>{t(p)}</a>)}
        </nav>
        <span class="who" data-testid="who">{t('signedInAs')}: {session.app} ({session.role})</span>
        {langButton}
        <button type="button" class="link" data-testid="signout" onClick={signOut}>{t('signOut')}</button>
      </header>
      <main key={`${page}-${lang()}`}>
        {page === 'overview' && <OverviewPage role={session.role} />}
        {page === 'traffic' && <TrafficPage />}
        {page === 'agreements' && <AgreementsPage />}
        {page === 'governance' && <GovernancePage role={session.role} />}
        {page === 'peers' && <PeersPage />}
        {page === 'audit' && <AuditPage />}
      </main>
    </div>
  )
}

setLang(lang())
render(<App />, document.getElementById('app') as HTMLElement)
