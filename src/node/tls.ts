/**
 * The node's TLS identity (issue 14 §1): its key and certificate files, the pin the manifest must
 * list for it, the public listener's server options (TLS 1.3 only, a client certificate asked
 * for), the client side (./../peers/tls-pins.ts) and who is on the other end of a connection.
 *
 * Trust comes from the manifest only: a peer's certificate is accepted when the SHA-256 of its
 * SubjectPublicKeyInfo is one of the `tlsPins` the manifest in force lists for that member, and is
 * inside its validity window. A client certificate names the member whose pin it matches; the
 * provider then serves only requests signed by that member.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto'
import { readFile, stat, writeFile, mkdir } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import type { TLSSocket } from 'node:tls'
import { Gauge, type Registry } from 'prom-client'
import { certificateWindow, selfSignedCertificate, spkiPin } from '../crypto/tls-cert.js'
import { VnError } from '../errors.js'
import type { Config } from '../config/schema.js'
import type { Federation, FederationHolder } from '../federation/federation.js'
import { isLoopbackHost } from '../peers/client.js'
import type { PeerTlsOptions } from '../peers/tls-pins.js'

/** Where `verinode init` and `keys rotate --which tls` put the files, inside the keys folder. */
export const tlsKeyFiles = (keysDir: string) => ({ key: join(keysDir, 'tls.key'), cert: join(keysDir, 'tls.crt') })

/** How long a certificate made by `init` or a rotation is valid (a rotation is due well before). */
export const TLS_CERT_DAYS = 397
const DAY_MS = 86_400_000
/** readiness warns when the certificate ends within this long */
const TLS_EXPIRY_WARNING_MS = 7 * DAY_MS

export interface TlsFiles {
  /** PEM private key, mode 0600 */
  key: string
  /** PEM certificate (chain) */
  cert: string
}

export interface MadeTls extends TlsFiles {
  pin: string
  notAfter: number
}

/**
 * Makes a fresh Ed25519 TLS key (0600, never overwrites) and a self-signed certificate for it,
 * valid from a minute ago for `days` days. Returns the pin to give the federation authority.
 */
export async function createTlsIdentity(files: TlsFiles, member: string, now: number = Date.now(), days = TLS_CERT_DAYS): Promise<MadeTls> {
  const { privateKey } = generateKeyPairSync('ed25519')
  const notAfter = now + days * DAY_MS
  const pem = selfSignedCertificate(privateKey, { commonName: `verinode ${member}`, notBefore: now - 60_000, notAfter })
  await mkdir(dirname(files.key), { recursive: true, mode: 0o700 })
  await writeFile(files.key, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600, flag: 'wx' })
  await writeFile(files.cert, pem, { mode: 0o644, flag: 'wx' })
  return { ...files, pin: spkiPin(privateKey), notAfter }
}

/** The config's `tls` member `init` writes: the default files, `tls.crt` and `tls.key` in the keys folder. */
export const TLS_CONFIG = {} as const

/** The TLS files a config names (explicit paths relative to the config file, else in the keys folder). */
export function tlsFilesOf(cfg: Pick<Config, 'tls' | 'keysDir'>, path: (p: string) => string): TlsFiles | undefined {
  if (cfg.tls === undefined) return undefined
  const inKeys = tlsKeyFiles(path(cfg.keysDir))
  return { key: cfg.tls.key === undefined ? inKeys.key : path(cfg.tls.key), cert: cfg.tls.cert === undefined ? inKeys.cert : path(cfg.tls.cert) }
}

/** `init`'s TLS step: nothing, a fresh key and certificate, or existing files taken in. */
export async function initTls(o: { member: string; tls?: boolean | TlsFiles }, keysDir: string): Promise<MadeTls | undefined> {
  if (o.tls === undefined || o.tls === false) return undefined
  const files = tlsKeyFiles(keysDir)
  return o.tls === true ? createTlsIdentity(files, o.member) : importTlsIdentity(o.tls, files)
}

export interface LoadedTls {
  /** PEM texts, as node:tls takes them */
  keyPem: string
  certPem: string
  key: KeyObject
  cert: X509Certificate
  pin: string
  notBefore: number
  notAfter: number
}

/**
 * Reads a TLS key and certificate and checks that they belong together. The key file must not be
 * readable by group or others.
 * @throws VN_ERR_TLS_CONFIG naming the file and the fault
 */
export async function readTlsFiles(files: TlsFiles, checkMode = true): Promise<LoadedTls> {
  let keyPem: string
  let certPem: string
  try {
    const mode = (await stat(files.key)).mode
    if (checkMode && process.platform !== 'win32' && (mode & 0o077) !== 0) {
      throw new VnError('VN_ERR_TLS_CONFIG', `${files.key}: mode ${(mode & 0o777).toString(8)} is too permissive (want 0600)`)
    }
    keyPem = await readFile(files.key, 'utf8')
  } catch (e) {
    if (e instanceof VnError) throw e
    throw new VnError('VN_ERR_TLS_CONFIG', `${files.key}: cannot be read`, { cause: e })
  }
  try {
    certPem = await readFile(files.cert, 'utf8')
  } catch (e) {
    throw new VnError('VN_ERR_TLS_CONFIG', `${files.cert}: cannot be read`, { cause: e })
  }
  let key: KeyObject
  let cert: X509Certificate
  try {
    key = createPrivateKey({ key: keyPem, format: 'pem' })
  } catch (e) {
    throw new VnError('VN_ERR_TLS_CONFIG', `${files.key}: not a PEM private key`, { cause: e })
  }
  try {
    cert = new X509Certificate(certPem)
  } catch (e) {
    throw new VnError('VN_ERR_TLS_CONFIG', `${files.cert}: not a PEM certificate`, { cause: e })
  }
  const pin = spkiPin(cert)
  if (spkiPin(createPublicKey(key)) !== pin) throw new VnError('VN_ERR_TLS_CONFIG', `${files.cert} is not the certificate of the key in ${files.key}`)
  const w = certificateWindow(cert)
  return { keyPem, certPem, key, cert, pin, notBefore: w.notBefore, notAfter: w.notAfter }
}

/**
 * Takes an existing key and certificate (a CA-issued one, or one made elsewhere) into the node's
 * keys folder. @throws VN_ERR_TLS_CONFIG
 */
async function importTlsIdentity(from: TlsFiles, to: TlsFiles): Promise<MadeTls> {
  // the source key's mode is not this node's business (the copy is written 0600)
  const t = await readTlsFiles(from, false)
  await mkdir(dirname(to.key), { recursive: true, mode: 0o700 })
  await writeFile(to.key, t.keyPem, { mode: 0o600, flag: 'wx' })
  await writeFile(to.cert, t.certPem, { mode: 0o644, flag: 'wx' })
  return { ...to, pin: t.pin, notAfter: t.notAfter }
}

/**
 * A public listener without TLS is for loopback tests (or, with `insecure`, a closed test network).
 * @throws VN_ERR_TLS_CONFIG for a plain listener on another address without `insecure`
 */
export function assertPlainListenerAllowed(host: string, insecure: boolean): void {
  if (insecure || isLoopbackHost(host)) return
  throw new VnError('VN_ERR_TLS_CONFIG', `listen.host ${host} is not loopback: configure "tls" (verinode init makes a key and certificate), or set "insecure" on a closed test network`)
}

export interface NodeTls {
  readonly pin: string
  readonly notAfter: number
  /** for node:https / Fastify `https`: TLS 1.3 only, a client certificate asked for (checked per request) */
  serverOptions(): { key: string; cert: string; minVersion: 'TLSv1.3'; requestCert: true; rejectUnauthorized: false }
  /** for the peer client: present this certificate, check each provider's against its pins */
  clientOptions(): PeerTlsOptions
  /**
   * The member at the other end of a TLS connection, from its client certificate's pin.
   * @throws VN_ERR_TLS_CLIENT_CERT_REQUIRED, VN_ERR_TLS_CLIENT_UNKNOWN, VN_ERR_TLS_CLIENT_EXPIRED
   */
  clientMember(socket: TLSSocket): string
  /** readiness: the certificate is valid now and pinned for this node; a warning within 7 days of its end */
  status(): { ok: boolean; detail: string }
  /** registers `verinode_tls_certificate_expiry_seconds` (notAfter, seconds since the epoch) */
  registerMetrics(registry: Registry): void
}

interface SeenCert {
  pin: string
  notBefore: number
  notAfter: number
}

/** Throws unless the manifest lists `pin` for `self`. */
function assertPinned(fed: Federation, self: string, pin: string): void {
  if (fed.memberByTlsPin(pin) !== self) {
    throw new VnError('VN_ERR_TLS_CONFIG', `the TLS key's pin ${pin} is not listed for ${self} in manifest seq ${fed.seq} (federation add-member --tls-pin, or add-tls-pin)`)
  }
}

export interface OpenTlsOptions {
  self: string
  files: TlsFiles
  federation: FederationHolder
  now: () => number
}

/**
 * Loads the node's TLS identity and refuses to start with a certificate outside its validity window
 * or one whose key the manifest does not pin for this node. @throws VN_ERR_TLS_CONFIG
 */
export async function openNodeTls(o: OpenTlsOptions): Promise<NodeTls> {
  const t = await readTlsFiles(o.files)
  const now = o.now()
  if (now < t.notBefore || now >= t.notAfter) {
    throw new VnError('VN_ERR_TLS_CONFIG', `${o.files.cert} is valid from ${t.cert.validFrom} to ${t.cert.validTo}, not now`)
  }
  assertPinned(o.federation.get(now), o.self, t.pin)
  // The certificate a connection presented, read once per connection; the member is looked up in
  // the manifest in force at each request (a reload that drops a pin takes effect at once).
  const seen = new WeakMap<TLSSocket, SeenCert | null>()
  return {
    pin: t.pin,
    notAfter: t.notAfter,
    serverOptions: () => ({ key: t.keyPem, cert: t.certPem, minVersion: 'TLSv1.3', requestCert: true, rejectUnauthorized: false }),
    clientOptions: () => ({
      cert: t.certPem,
      key: t.keyPem,
      now: o.now,
      pinsFor: (origin) => o.federation.get(o.now()).tlsPinsForOrigin(origin),
    }),
    clientMember(socket: TLSSocket): string {
      let c = seen.get(socket)
      if (c === undefined) {
        const x = socket.getPeerX509Certificate()
        c = x === undefined ? null : { pin: spkiPin(x), ...certificateWindow(x) }
        seen.set(socket, c)
      }
      if (c === null) throw new VnError('VN_ERR_TLS_CLIENT_CERT_REQUIRED', 'no client certificate on this connection')
      const at = o.now()
      const member = o.federation.get(at).memberByTlsPin(c.pin)
      if (member === undefined) throw new VnError('VN_ERR_TLS_CLIENT_UNKNOWN', `client certificate key ${c.pin.slice(0, 16)}... is not pinned for any member`)
      if (at < c.notBefore || at >= c.notAfter) throw new VnError('VN_ERR_TLS_CLIENT_EXPIRED', `client certificate of ${member} is outside its validity window`)
      return member
    },
    registerMetrics(registry: Registry): void {
      const g = new Gauge({
        name: 'verinode_tls_certificate_expiry_seconds',
        help: "The end of the node's TLS certificate validity (notAfter), seconds since the epoch",
        registers: [registry],
      })
      g.set(Math.floor(t.notAfter / 1000))
    },
    status() {
      const at = o.now()
      const ends = new Date(t.notAfter).toISOString()
      if (at >= t.notAfter) return { ok: false, detail: `certificate expired at ${ends}` }
      try {
        assertPinned(o.federation.get(at), o.self, t.pin)
      } catch (e) {
        return { ok: false, detail: (e as Error).message }
      }
      const days = (t.notAfter - at) / DAY_MS
      if (t.notAfter - at <= TLS_EXPIRY_WARNING_MS) return { ok: true, detail: `warning: certificate expires at ${ends}, in ${days.toFixed(1)} days: rotate it (keys rotate --which tls)` }
      return { ok: true, detail: `pin ${t.pin.slice(0, 16)}..., expires ${ends}` }
    },
  }
}
