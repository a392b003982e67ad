/** `verinode init`'s TLS options (kept apart from init.ts): make a key, take existing files, or none. */
import { resolve } from 'node:path'
import { UsageError } from './args.js'

export const TLS_OPTIONS = {
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'no-tls': { type: 'boolean' },
} as const

/**
 * `true`: a fresh Ed25519 key and self-signed certificate (the default); existing PEM files with
 * `--tls-cert` and `--tls-key`; `false` with `--no-tls` (plain HTTP, a loopback test node).
 */
export function tlsChoice(v: { 'tls-cert'?: string | undefined; 'tls-key'?: string | undefined; 'no-tls'?: boolean | undefined }, cwd: string): boolean | { cert: string; key: string } {
  const cert = v['tls-cert']
  const key = v['tls-key']
  if (v['no-tls'] === true) {
    if (cert !== undefined || key !== undefined) throw new UsageError('--no-tls: not with --tls-cert or --tls-key')
    return false
  }
  if ((cert === undefined) !== (key === undefined)) throw new UsageError('--tls-cert and --tls-key go together')
  return cert === undefined || key === undefined ? true : { cert: resolve(cwd, cert), key: resolve(cwd, key) }
}
