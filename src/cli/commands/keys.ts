/**
 * `verinode keys rotate --config <verinode.json> --which message|log`: rotates one of the node's
 * Ed25519 keys as a logged key event signed by both the old and the new key
 * (src/node/key-rotation.ts), and prints what to send the federation authority. The node must be
 * stopped (the event is appended to its log directly, src/node/offline-log.ts).
 */
import { resolve } from 'node:path'
import { isVnError } from '../../errors.js'
import { rotateKey } from '../../node/key-rotation.js'
import { EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, type CliIo, type Command } from '../types.js'
import { commandLine } from '../args.js'
import { errorDoc, errorOf } from '../output.js'

const USAGE = `usage: verinode keys rotate --config <verinode.json> --which message|log|tls [--json]

  rotate        with the node STOPPED: makes a new key pair, logs a key-event "rotated" carrying
                the new public key and signatures by the old and the new private key, keeps the
                old private key as <file>.retired-<time> and puts the new one in its place.
                Then send the printed add-key line to the federation authority; the node starts
                (message key) or is accepted by its peers (log key) once the new manifest lists it.
                --which tls: a new Ed25519 TLS key and self-signed certificate (the event is
                signed by the old and the new TLS key); the authority lists the new pin beside
                the old one (add-tls-pin), the node starts with it once that manifest is installed,
                and the old pin is removed once every peer has it.`

const OPTIONS = {
  config: { type: 'string' },
  which: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const

/** VN_ERR_* codes that mean "fix your command line, config or situation" (exit 2). */
const USAGE_CODES = new Set(['VN_ERR_CONFIG_INVALID', 'VN_ERR_KEY_FILE', 'VN_ERR_TLS_CONFIG', 'VN_ERR_AUDIT_NODE_RUNNING', 'VN_ERR_FED_MANIFEST_INVALID', 'VN_ERR_FED_UNKNOWN_MEMBER'])

export const keysCommand: Command = {
  name: 'keys',
  summary: 'operator: rotate the node\'s message or log key as a logged, doubly signed key event',
  usage: USAGE,
  async run(argv: string[], io: CliIo): Promise<number> {
    const cl = commandLine(argv, OPTIONS, io, 'keys rotate', USAGE)
    if (typeof cl === 'number') return cl
    const { values, positionals, usageError } = cl
    const [sub, ...rest] = positionals
    if (sub !== 'rotate') return usageError(sub === undefined ? 'missing subcommand' : `unknown subcommand ${JSON.stringify(sub.slice(0, 40))}`)
    if (rest.length > 0) return usageError(`unexpected argument ${JSON.stringify(rest[0]!.slice(0, 40))}`)
    if (values.config === undefined) return usageError('--config is required')
    if (values.which !== 'message' && values.which !== 'log' && values.which !== 'tls') return usageError('--which must be message, log or tls')
    try {
      const r = await rotateKey(resolve(io.cwd, values.config), values.which, { env: io.env })
      const flag = r.which === 'message' ? '--message-key' : '--log-key'
      const addKey = r.tls !== undefined
        ? `verinode federation add-tls-pin --dir <authority-dir> --member ${r.member} --tls-pin ${r.tls.newPin}`
        : `verinode federation add-key --dir <authority-dir> --member ${r.member} ${flag} ${r.newKey}`
      const removeKey = r.tls !== undefined
        ? `verinode federation remove-tls-pin --dir <authority-dir> --member ${r.member} --tls-pin ${r.tls.oldPin}`
        : `verinode federation remove-key --dir <authority-dir> --member ${r.member} --kid ${r.oldKid}`
      if (io.json) io.out(JSON.stringify({ ok: true, command: 'keys rotate', ...r, authority: { addKey, removeKey } }))
      else {
        io.out(`rotated the ${r.which} key of ${r.member}: key event logged at leaf ${r.index} (log size ${r.size}, checkpointed)`)
        if (r.tls !== undefined) io.out(`  new TLS pin ${r.tls.newPin} (certificate ${r.tls.certFile}, valid until ${new Date(r.tls.notAfter).toISOString()}); old key kept as ${r.retiredFile}`)
        else io.out(`  new public key ${r.newKey} (default kid ${r.newKid}); old private key kept as ${r.retiredFile}`)
        io.out('')
        io.out('send to the federation authority:')
        io.out(`  ${addKey}`)
        io.out('then install the manifest it signs and start the node. Once every peer has that manifest:')
        io.out(`  ${removeKey}`)
      }
      return EXIT_OK
    } catch (e) {
      if (isVnError(e)) {
        if (io.json) io.out(errorDoc('keys rotate', errorOf(e)))
        else io.err(`error ${e.code}: ${e.message}`)
        return USAGE_CODES.has(e.code) ? EXIT_USAGE : EXIT_FINDINGS
      }
      throw e
    }
  },
}
