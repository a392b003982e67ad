/**
 * The web console's static files (built by `npm run build:console` into dist/console), served under
 * /console/ from memory. Without the built files the node still starts and says so in its log;
 * /console then answers 404. The pages get their data from the local API (./status.ts).
 */
import type { FastifyInstance } from 'fastify'
import { readdir, readFile } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { dirname, extname, join, relative, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { VnError } from '../../errors.js'
import { CONSOLE_PREFIX } from '../plugins/app-auth.js'

/** The folder of the nearest package.json above this module (the package root, wherever it was built to). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir
    const up = dirname(dir)
    if (up === dir) return dirname(fileURLToPath(import.meta.url))
    dir = up
  }
}

/** dist/console at the package root (from src/, dist/ or a benchmark build alike). */
export const DEFAULT_CONSOLE_DIR = join(packageRoot(), 'dist', 'console')

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
  '.ico': 'image/x-icon',
}

const HEADERS = {
  'content-security-policy': "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = []
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) out.push(...(await listFiles(p)))
    else if (e.isFile()) out.push(p)
  }
  return out
}

/** Loads the built console from `dir` (default dist/console) into memory, if it is there. */
async function loadConsoleFiles(dir = DEFAULT_CONSOLE_DIR): Promise<Map<string, { body: Buffer; type: string }> | undefined> {
  let paths: string[]
  try {
    paths = await listFiles(dir)
  } catch {
    return undefined
  }
  const files = new Map<string, { body: Buffer; type: string }>()
  for (const p of paths) {
    const type = TYPES[extname(p)]
    if (type === undefined) continue
    files.set(`/${relative(dir, p).split(sep).join('/')}`, { body: await readFile(p), type })
  }
  return files.has('/index.html') ? files : undefined
}

export function consoleRoutes(dir?: string) {
  return async (app: FastifyInstance): Promise<void> => {
    const files = await loadConsoleFiles(dir)
    if (files === undefined) {
      app.log.info({ dir: dir ?? DEFAULT_CONSOLE_DIR }, 'web console not built (npm run build:console): /console/ is not served')
    } else {
      app.log.info({ files: files.size }, 'web console served at /console/')
    }
    app.get(CONSOLE_PREFIX, async (_req, reply) => reply.redirect(`${CONSOLE_PREFIX}/`, 302))
    app.get(`${CONSOLE_PREFIX}/*`, async (req, reply) => {
      if (files === undefined) throw new VnError('VN_ERR_REQ_NOT_FOUND', 'the web console is not built on this node (npm run build:console)')
      const rest = `/${(req.params as { '*': string })['*']}`
      const f = files.get(rest === '/' ? '/index.html' : rest)
      if (f === undefined) throw new VnError('VN_ERR_REQ_NOT_FOUND')
      // hashed asset names never change content; the page itself is always re-read
      const cache = rest.startsWith('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache'
      return reply.headers(HEADERS).header('cache-control', cache).type(f.type).send(f.body)
    })
  }
}
