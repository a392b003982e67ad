/**
 * `verinode init`: argument handling for a new node's keys and config (src/node/init.ts writes
 * them). The public halves are printed for the federation authority's `federation add-member`.
 */
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { initNode, type InitOptions } from '../../node/init.js'
import { isProfileName } from '../../crypto/profile.js'
import type { Command, CliIo } from '../types.js'
import { EXIT_OK } from '../types.js'
import { okDoc } from '../output.js'
import { UsageError, intOption } from '../args.js'
import { MEMBER_ID_RE } from '../../protocol/vocabulary.js'
import { TLS_OPTIONS, tlsChoice } from '../tls-options.js'

export const initCommand: Command = {
  name: 'init',
  summary: 'create keys and a config for a new node',
  usage: 'verinode init --id <member-id> [--dir .] [--port 7100] [--local-port 7180] [--host 127.0.0.1] [--profile intl|sm] [--tls-cert F --tls-key F | --no-tls]',
  async run(argv: string[], io: CliIo): Promise<number> {
    const { values } = parseArgs({
      args: argv,
      options: { id: { type: 'string' }, dir: { type: 'string', default: '.' }, port: { type: 'string' }, 'local-port': { type: 'string' }, host: { type: 'string' }, profile: { type: 'string' }, ...TLS_OPTIONS },
    })
    if (values.id === undefined) throw new UsageError('--id <member-id> is required')
    if (!MEMBER_ID_RE.test(values.id)) throw new UsageError('--id: not a member id (lower-case letters, digits and -, 2 to 63 characters)')
    const o: InitOptions = { dir: resolve(io.cwd, values.dir ?? '.'), member: values.id }
    const port = intOption(values.port, 'port', 0, 65535)
    const localPort = intOption(values['local-port'], 'local-port', 0, 65535)
    if (port !== undefined && localPort !== undefined && port === localPort && port !== 0) throw new UsageError('--local-port: must differ from --port')
    if (values.host !== undefined && !/^[A-Za-z0-9.:[\]-]{1,253}$/.test(values.host)) throw new UsageError('--host: expected an IP address or host name')
    if (port !== undefined) o.port = port
    if (localPort !== undefined) o.localPort = localPort
    if (values.host !== undefined) o.host = values.host
    o.tls = tlsChoice(values, io.cwd)
    // the federation's crypto profile: Ed25519 keys (intl) or SM2 keys (sm); the manifest must name the same
    if (values.profile !== undefined) {
      if (!isProfileName(values.profile)) throw new UsageError('--profile must be intl or sm')
      o.profile = values.profile
    }
    const r = await initNode(o)
    if (io.json) {
      io.out(okDoc('init', { config: r.configPath, member: values.id, messageKey: r.messageKey, logKey: r.logKey, appToken: r.appToken, ...(r.tlsPin === undefined ? {} : { tlsPin: r.tlsPin }) }))
      return EXIT_OK
    }
    io.out(`created ${r.configPath}`)
    io.out(`message key (public): ${r.messageKey}`)
    io.out(`log key (public):     ${r.logKey}`)
    if (r.tlsPin !== undefined) io.out(`TLS pin (SPKI SHA-256): ${r.tlsPin}`)
    io.out(`local API token for application "default" (shown once): ${r.appToken}`)
    io.out('')
    io.out('Next: give keys/message.pub and keys/log.pub to the federation authority, which runs')
    io.out(`  verinode federation add-member --id ${values.id} --message-key message.pub --log-key log.pub${r.tlsPin === undefined ? '' : ` --tls-pin ${r.tlsPin} --endpoint https://<host>:<port>`} ...`)
    io.out('then place the signed manifest in federation/manifest.jws and the root key in keys/federation-root.pub.')
    return EXIT_OK
  },
}
