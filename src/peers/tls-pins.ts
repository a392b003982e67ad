/**
 * The consumer's side of TLS between nodes (issue 14 §1): an undici connector that presents the
 * node's own certificate (mutual TLS) and accepts the provider's certificate only if the SHA-256
 * of its SubjectPublicKeyInfo is a pin the manifest lists for the member at that origin, and only
 * inside the certificate's validity window. No CA is consulted: a certificate chain, however
 * valid, is never enough on its own (a CA-issued certificate is fine, its key must be pinned).
 *
 * The check runs on `secureConnect`, before a byte of the request is written. TLS session
 * resumption is off, so every connection shows the provider's certificate anew.
 */
import type { TLSSocket } from 'node:tls'
import { buildConnector } from 'undici'
import { certificateWindow, spkiPin } from '../crypto/tls-cert.js'
import { VnError } from '../errors.js'

export interface PeerTlsOptions {
  /** this node's certificate chain (PEM) and private key (PEM): presented as the client certificate */
  cert: string
  key: string
  /** the pins (hex) the manifest in force lists for the member(s) at `origin` */
  pinsFor(origin: string): ReadonlySet<string>
  now?: () => number
}

/**
 * Checks a provider's certificate against the pins for `origin`.
 * @throws VN_ERR_TLS_NO_PIN, VN_ERR_TLS_SERVER_PIN, VN_ERR_TLS_SERVER_EXPIRED
 */
function checkServerCertificate(socket: TLSSocket, origin: string, pins: ReadonlySet<string>, now: number): void {
  if (pins.size === 0) throw new VnError('VN_ERR_TLS_NO_PIN', `${origin}: the manifest lists no TLS pin for it`)
  const cert = socket.getPeerX509Certificate()
  if (cert === undefined) throw new VnError('VN_ERR_TLS_SERVER_PIN', `${origin}: presented no certificate`)
  const pin = spkiPin(cert)
  if (!pins.has(pin)) throw new VnError('VN_ERR_TLS_SERVER_PIN', `${origin}: certificate key ${pin.slice(0, 16)}... is not pinned for it`)
  const w = certificateWindow(cert)
  if (!(now >= w.notBefore && now < w.notAfter)) {
    throw new VnError('VN_ERR_TLS_SERVER_EXPIRED', `${origin}: certificate valid ${cert.validFrom} to ${cert.validTo}`)
  }
}

/** undici `connect` option for one origin: mutual TLS 1.3 with the pin check above. */
export function pinnedConnector(o: PeerTlsOptions, timeoutMs: number): buildConnector.connector {
  const base = buildConnector({
    cert: o.cert,
    key: o.key,
    minVersion: 'TLSv1.3',
    // The chain is not what is trusted: the pin check below decides.
    rejectUnauthorized: false,
    maxCachedSessions: 0,
    timeout: timeoutMs,
  })
  const now = o.now ?? Date.now
  return (opts, callback) => {
    base(opts, (err, socket) => {
      if (err !== null) {
        callback(err, null)
        return
      }
      if (opts.protocol !== 'https:') {
        callback(null, socket)
        return
      }
      const host = opts.hostname.includes(':') && !opts.hostname.startsWith('[') ? `[${opts.hostname}]` : opts.hostname
      const origin = new URL(`https://${host}${opts.port === '' ? '' : `:${opts.port}`}`).origin
      try {
        checkServerCertificate(socket as TLSSocket, origin, o.pinsFor(origin), now())
      } catch (e) {
        socket.destroy()
        callback(e as Error, null)
        return
      }
      callback(null, socket)
    })
  }
}
