/**
 * `verinode init`: a new node's keys and config. Private keys are written 0600 and never printed; the
 * public halves are printed for the federation authority's `federation add-member`.
 */
import { parseArgs } from 'node:util'
import { randomBytes, createHash } from 'node:crypto'
import { mkdir, writeFile, access } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { generateEd25519, writePrivateKey, writePublicKey, writeSecretFile, publicKeyToB64u } from '../../crypto/keys.js'
import { nodeKeyFiles } from '../../node/files.js'
import { createOprfSeed, oprfSeedFile } from '../../oprf/tagset-service.js'
import { MEMBER_ID } from '../../protocol/envelope.js'
import type { Command, CliIo } from '../types.js'
import { EXIT_OK } from '../types.js'
import { UsageError, intOption } from '../args.js'
import type { ConfigInput } from '../../config/schema.js'

export interface InitOptions {
  dir: string
  member: string
  port?: number
  localPort?: number
  host?: string
  /** extra config merged in (services, agreements, dataSource) */
  extra?: Partial<ConfigInput>
}

export interface InitResult {
  configPath: string
  messageKey: string
  logKey: string
  /** the local API token for a first application; shown once, only its hash is stored */
  appToken: string
}

export async function initNode(o: InitOptions): Promise<InitResult> {
  if (!MEMBER_ID.test(o.member)) throw new TypeError('member: must match ^[a-z0-9][a-z0-9-]{1,62}$')
  const dir = resolve(o.dir)
  const configPath = join(dir, 'verinode.json')
  if (await access(configPath).then(() => true, () => false)) throw new Error(`${configPath} already exists`)
  const keys = nodeKeyFiles(join(dir, 'keys'))
  const msg = generateEd25519()
  const log = generateEd25519()
  await writePrivateKey(keys.messageKey, msg.privateKey)
  await writePrivateKey(keys.logKey, log.privateKey)
  await writePublicKey(keys.messagePub, msg.publicKey)
  await writePublicKey(keys.logPub, log.publicKey)
  await writeSecretFile(keys.evidenceKey)
  // oprf mode: the master seed every epoch key is derived from (src/oprf/tagset-service.ts)
  await createOprfSeed(oprfSeedFile(join(dir, 'keys')))
  await mkdir(join(dir, 'var'), { recursive: true, mode: 0o700 })
  await mkdir(join(dir, 'federation'), { recursive: true })
  const appToken = `vnt_${randomBytes(24).toString('base64url')}`
  const config: ConfigInput = {
    member: o.member,
    keysDir: 'keys',
    dataDir: 'var',
    federation: { rootKey: 'keys/federation-root.pub', manifest: 'federation/manifest.jws' },
    listen: { host: o.host ?? '127.0.0.1', port: o.port ?? 7100 },
    local: { host: '127.0.0.1', port: o.localPort ?? 7180, apps: [{ name: 'default', tokenSha256: createHash('sha256').update(appToken).digest('hex') }] },
    ...o.extra,
  }
  await writeFile(configPath, `${JSON.stringify(config, null, 2)}\n`, { flag: 'wx' })
  return { configPath, messageKey: publicKeyToB64u(msg.publicKey), logKey: publicKeyToB64u(log.publicKey), appToken }
}

export const initCommand: Command = {
  name: 'init',
  summary: 'create keys and a config for a new node',
  usage: 'verinode init --id <member-id> [--dir .] [--port 7100] [--local-port 7180] [--host 127.0.0.1]',
  async run(argv: string[], io: CliIo): Promise<number> {
    const { values } = parseArgs({
      args: argv,
      options: { id: { type: 'string' }, dir: { type: 'string', default: '.' }, port: { type: 'string' }, 'local-port': { type: 'string' }, host: { type: 'string' } },
    })
    if (values.id === undefined) throw new UsageError('--id <member-id> is required')
    if (!MEMBER_ID.test(values.id)) throw new UsageError('--id: not a member id (lower-case letters, digits and -, 2 to 63 characters)')
    const o: InitOptions = { dir: values.dir ?? '.', member: values.id }
    const port = intOption(values.port, 'port', 0, 65535)
    const localPort = intOption(values['local-port'], 'local-port', 0, 65535)
    if (port !== undefined) o.port = port
    if (localPort !== undefined) o.localPort = localPort
    if (values.host !== undefined) o.host = values.host
    const r = await initNode(o)
    if (io.json) {
      io.out(JSON.stringify({ config: r.configPath, member: values.id, messageKey: r.messageKey, logKey: r.logKey, appToken: r.appToken }))
      return EXIT_OK
    }
    io.out(`created ${r.configPath}`)
    io.out(`message key (public): ${r.messageKey}`)
    io.out(`log key (public):     ${r.logKey}`)
    io.out(`local API token for application "default" (shown once): ${r.appToken}`)
    io.out('')
    io.out('Next: give keys/message.pub and keys/log.pub to the federation authority, which runs')
    io.out(`  verinode federation add-member --id ${values.id} --message-key message.pub --log-key log.pub ...`)
    io.out('then place the signed manifest in federation/manifest.jws and the root key in keys/federation-root.pub.')
    return EXIT_OK
  },
}
