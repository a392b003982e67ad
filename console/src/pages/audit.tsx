import { useState } from 'preact/hooks'
import { api, ApiError, type AuditResult } from '../api'
import { t } from '../i18n'
import { ErrorBox } from '../error-box'

/** The node's limit on an upload's files, decoded (src/http/audit-upload.ts MAX_UPLOAD_BYTES): larger is not sent. */
const MAX_UPLOAD_BYTES = 64 * 1024 * 1024

/** A file's bytes in base64 (the browser encodes it: a data: URL without its prefix). */
const base64Of = (f: File): Promise<string> => new Promise((resolve, reject) => {
  const r = new FileReader()
  r.onload = () => resolve(String(r.result).replace(/^data:[^,]*,/, ''))
  r.onerror = () => reject(r.error ?? new Error('read failed'))
  r.readAsDataURL(f)
})

/** A picked export folder's files, their paths inside it (the picked folder's own name dropped). */
async function uploadBody(list: FileList): Promise<{ files: { path: string; data: string }[] }> {
  const files: { path: string; data: string }[] = []
  for (const f of Array.from(list)) {
    const rel = f.webkitRelativePath === '' ? f.name : f.webkitRelativePath.split('/').slice(1).join('/')
    files.push({ path: rel, data: await base64Of(f) })
  }
  return { files }
}

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
      const size = Array.from(picked).reduce((n, f) => n + f.size, 0)
      if (size > MAX_UPLOAD_BYTES) throw new ApiError({ code: 'VN_ERR_AUDIT_UPLOAD_TOO_LARGE', title: t('uploadTooLarge'), status: 413 })
      setR(await api<AuditResult>('POST', '/audit/upload', await uploadBody(picked)))
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
