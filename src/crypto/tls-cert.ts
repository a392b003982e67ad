/**
 * The node's TLS key and certificate (issue 14 §1), over node:crypto alone (no openssl binary
 * needed on the host or in the container image).
 *
 * A node's TLS identity is its key pair; the certificate only carries it. Peers pin the SHA-256 of
 * the certificate's SubjectPublicKeyInfo (DER), listed per member in the federation manifest
 * (`tlsPins`, 64 lower-case hex digits: the same value as
 * `openssl x509 -in tls.crt -pubkey -noout | openssl pkey -pubin -outform der | sha256sum`).
 *
 * `selfSignedCertificate` writes a minimal X.509 v3 certificate (RFC 5280) for an Ed25519 key
 * (RFC 8410): version, a random serial, issuer = subject = `CN=<common name>`, the validity window,
 * the key, and a basicConstraints CA:FALSE extension, signed by the key itself. OpenSSL 3 (Node 20
 * and 24) accepts Ed25519 certificates in TLS 1.3 (signature scheme ed25519, RFC 8446 §4.2.3).
 */
import { createHash, createPublicKey, randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto'

/** SHA-256 of the key's SubjectPublicKeyInfo DER, 64 lower-case hex digits: a TLS pin. */
export function spkiPin(key: KeyObject | X509Certificate): string {
  const pub = key instanceof X509Certificate ? key.publicKey : key.type === 'private' ? createPublicKey(key) : key
  return createHash('sha256').update(pub.export({ type: 'spki', format: 'der' })).digest('hex')
}

// --- minimal DER (X.690) encoding ---

function len(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n])
  const bytes: number[] = []
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff)
  return Buffer.from([0x80 | bytes.length, ...bytes])
}
const tlv = (tag: number, body: Buffer): Buffer => Buffer.concat([Buffer.from([tag]), len(body.length), body])
const seq = (...items: Buffer[]): Buffer => tlv(0x30, Buffer.concat(items))
const set = (...items: Buffer[]): Buffer => tlv(0x31, Buffer.concat(items))
const oid = (der: number[]): Buffer => tlv(0x06, Buffer.from(der))
const utf8 = (s: string): Buffer => tlv(0x0c, Buffer.from(s, 'utf8'))

/** id-Ed25519 1.3.101.112 */
const OID_ED25519 = [0x2b, 0x65, 0x70]
/** id-at-commonName 2.5.4.3 */
const OID_CN = [0x55, 0x04, 0x03]
/** id-ce-basicConstraints 2.5.29.19 */
const OID_BASIC_CONSTRAINTS = [0x55, 0x1d, 0x13]

/** UTCTime before 2050, GeneralizedTime from then on (RFC 5280 §4.1.2.5), whole seconds. */
function time(ms: number): Buffer {
  const iso = new Date(Math.floor(ms / 1000) * 1000).toISOString() // YYYY-MM-DDTHH:MM:SS.000Z
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '')
  const year = Number(iso.slice(0, 4))
  if (year >= 1950 && year < 2050) return tlv(0x17, Buffer.from(`${digits.slice(2)}Z`, 'ascii'))
  return tlv(0x18, Buffer.from(`${digits}Z`, 'ascii'))
}

export interface SelfSignedOptions {
  /** the certificate's subject and issuer common name, e.g. `verinode fj-tax` */
  commonName: string
  /** validity window, ms since the epoch */
  notBefore: number
  notAfter: number
}

/** A self-signed X.509 v3 certificate for an Ed25519 key, PEM. */
export function selfSignedCertificate(privateKey: KeyObject, o: SelfSignedOptions): string {
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new TypeError('selfSignedCertificate: the key must be Ed25519')
  if (!(o.notAfter > o.notBefore)) throw new TypeError('selfSignedCertificate: notAfter must be after notBefore')
  const serial = randomBytes(16)
  serial[0] = (serial[0]! & 0x7f) | 0x40 // positive, and no leading zero byte needed
  const alg = seq(oid(OID_ED25519))
  const name = seq(set(seq(oid(OID_CN), utf8(o.commonName))))
  const spki = createPublicKey(privateKey).export({ type: 'spki', format: 'der' })
  const basicConstraints = seq(oid(OID_BASIC_CONSTRAINTS), tlv(0x01, Buffer.from([0xff])), tlv(0x04, seq()))
  const tbs = seq(
    tlv(0xa0, tlv(0x02, Buffer.from([2]))), // [0] version v3
    tlv(0x02, serial),
    alg,
    name,
    seq(time(o.notBefore), time(o.notAfter)),
    name,
    spki,
    tlv(0xa3, seq(basicConstraints)), // [3] extensions
  )
  const signature = sign(null, tbs, privateKey)
  const der = seq(tbs, alg, tlv(0x03, Buffer.concat([Buffer.from([0]), signature])))
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`
}

/** The validity window of a certificate, ms since the epoch. */
export function certificateWindow(cert: X509Certificate): { notBefore: number; notAfter: number } {
  return { notBefore: Date.parse(cert.validFrom), notAfter: Date.parse(cert.validTo) }
}
