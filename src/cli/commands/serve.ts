/** `verinode serve`: run a node until SIGINT/SIGTERM, then close gracefully (close-with-grace). */
import { parseArgs } from 'node:util'
import closeWithGrace from 'close-with-grace'
import { startNode } from '../../http/server.js'
import type { Command, CliIo } from '../types.js'

export const serveCommand: Command = {
  name: 'serve',
  summary: 'run this node (public and local listeners)',
  usage: 'verinode serve [--config verinode.json]',
  async run(argv: string[], io: CliIo): Promise<number> {
    const { values } = parseArgs({ args: argv, options: { config: { type: 'string', default: 'verinode.json' } } })
    const running = await startNode(values.config ?? 'verinode.json', { env: io.env, processMetrics: true })
    const log = running.node.logger
    log.info({ public: running.publicUrl, local: running.localUrl, member: running.node.self }, 'verinode listening')
    if (!io.json) io.err(`verinode ${running.node.self}: public ${running.publicUrl}, local ${running.localUrl}`)
    await new Promise<void>((resolve) => {
      closeWithGrace({ delay: 10_000 }, async ({ signal, err }) => {
        if (err !== undefined) log.error({ err }, 'shutting down after an error')
        else log.info({ signal }, 'shutting down')
        await running.close()
        resolve()
      })
    })
    return 0
  },
}
