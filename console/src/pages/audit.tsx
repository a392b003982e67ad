import { useState } from 'preact/hooks'
import { api, apiUpload, ApiError, type AuditResult } from '../api'
import { tarOf } from '../tar'
import { t } from '../i18n'
import { ErrorBox } from '../error-box'

/** The node's limit on an upload (src/http/audit-upload.ts MAX_UPLOAD_BYTES): larger is not sent. */
const MAX_UPLOAD_BYTES = 256 * 1024 * 1024

export function AuditPage() {
  const [dir, setDir] = useState('')
  const [busy, setBusy] = useState(false)
  const [r, setR] = useState<AuditResult | null>(null)
  const [error, setError] = useState<unknown>(null)
  const run = async (ev: Event) => {
    ev.preventDefault()
    setBusy(true)
    setError(null)
    setR(null)
    try {
      setR(await api<AuditResult>('POST', '/audit/verify', { dir }))
    } catch (e) {
      setError(e)
    } finally {
      setBusy(false)
    }
  }
  const [picked, setPicked] = useState<FileList | null>(null)
  const upload = async (ev: Event) => {
    ev.preventDefault()
    if (picked === null || picked.length === 0) return
    setBusy(true)
    setError(null)
    setR(null)
    try {
      const tar = tarOf(picked)
      if (tar.size > MAX_UPLOAD_BYTES) throw new ApiError({ code: 'VN_ERR_AUDIT_UPLOAD_TOO_LARGE', title: t('uploadTooLarge'), status: 413 })
      setR(await apiUpload<AuditResult>('/audit/upload', tar))
    } catch (e) {
      setError(e)
    } finally {
      setBusy(false)
    }
  }
  return (
    <section data-testid="page-audit">
      <form class="controls" onSubmit={upload}>
        <label>{t('uploadExport')} <input type="file" data-testid="audit-upload" multiple ref={(el) => el?.setAttribute('webkitdirectory', '')} onChange={(e) => setPicked((e.target as HTMLInputElement).files)} /></label>
        <button type="submit" data-testid="audit-upload-run" disabled={busy || picked === null || picked.length === 0}>{busy ? t('running') : t('uploadAndVerify')}</button>
        <span class="muted">{t('uploadHelp')}</span>
      </form>
      <form class="controls" onSubmit={run}>
        <label>{t('exportDir')} <input data-testid="audit-dir" size={60} value={dir} onInput={(e) => setDir((e.target as HTMLInputElement).value)} required /></label>
        <button type="submit" data-testid="audit-run" disabled={busy}>{busy ? t('running') : t('runAudit')}</button>
      </form>
      <ErrorBox error={error} />
      {r !== null && (
        <>
          <p><span class={r.ok ? 'ok big' : 'bad big'} data-testid="audit-ok">{r.ok ? t('auditOk') : t('auditFailed')}</span></p>
          <p>{r.origin} · {t('leaves')} <strong data-testid="audit-leaves">{r.leaves}</strong> · {t('provider')} {r.counts.provider} · {t('consumer')} {r.counts.consumer} · <span data-testid="audit-errors">{r.counts.errors}</span> {t('errors')} · {r.counts.warnings} {t('warnings')}</p>
          {r.findings.length > 0 && (
            <table data-testid="findings">
              <thead><tr><th>{t('severity')}</th><th>{t('code')}</th><th>{t('message')}</th><th>{t('entry')}</th><th>xid</th></tr></thead>
              <tbody>
                {r.findings.map((f) => (
                  <tr data-testid="finding">
                    <td class={f.severity === 'error' ? 'bad' : f.severity === 'warning' ? 'warn' : 'muted'}>{f.severity}</td>
                    <td class="mono" data-testid="finding-code">{f.code}</td>
                    <td>{f.message}</td>
                    <td>{f.index === undefined ? '' : <a href={`/local/v1/status/entry/${f.index}`} target="_blank" rel="noreferrer">#{f.index}</a>}</td>
                    <td class="mono">{f.xid ?? ''}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </>
      )}
    </section>
  )
}
