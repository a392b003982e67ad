/**
 * A real browser for the console tests: Debian's chromium driven by playwright-core (never a
 * downloaded browser), headless, no background network, a fresh profile per launch. The console's
 * assets are built first when missing (`npm run build:console`), before any node starts: a node
 * loads them when its local app is built.
 */
import type { Test } from 'tap'
import { execFile } from 'node:child_process'
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'
import { existsSync } from 'node:fs'
import { chromium, type BrowserContext } from 'playwright-core'
import { DEFAULT_CONSOLE_DIR } from '../src/http/routes/console.js'

export const CHROMIUM = '/usr/bin/chromium'
export const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
  '--no-first-run', '--disable-sync', '--disable-quic',
]
const ROOT = fileURLToPath(new URL('..', import.meta.url))

/**
 * Why the browser tests cannot run here (no /usr/bin/chromium), or undefined. `.ci/run` installs
 * chromium and sets VN_TEST_REQUIRE_BROWSER=1, under which a missing browser fails instead: plain
 * `npm test` on a machine with only Node and npm skips them and says why.
 */
export function browserSkipReason(): string | undefined {
  if (existsSync(CHROMIUM)) return undefined
  const why = `${CHROMIUM} is not installed (apt-get install -y chromium); .ci/run installs it`
  if (process.env['VN_TEST_REQUIRE_BROWSER'] === '1') throw new Error(`browser tests required (VN_TEST_REQUIRE_BROWSER=1) but ${why}`)
  return why
}

/** Builds dist/console when its index.html is missing. */
export async function ensureConsoleBuilt(): Promise<void> {
  const built = await stat(join(DEFAULT_CONSOLE_DIR, 'index.html')).then((s) => s.mtimeMs, () => undefined)
  if (built !== undefined && await newestMtime(join(ROOT, 'console')) <= built) return
  await promisify(execFile)('npm', ['run', '--silent', 'build:console'], { cwd: ROOT, timeout: 180_000 })
}

/** The newest modification time of the files under `dir` (the console's sources: a build older than them is stale). */
async function newestMtime(dir: string): Promise<number> {
  let newest = 0
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) newest = Math.max(newest, (await stat(join(e.parentPath, e.name))).mtimeMs)
  }
  return newest
}

/**
 * Launches chromium with a fresh profile (`--user-data-dir`, which playwright sets for a persistent
 * context), closed and removed when `t` ends (or by the returned `close`).
 */
export async function launchChromium(t: Test | undefined, locale = 'en-US'): Promise<{ ctx: BrowserContext; close: () => Promise<void> }> {
  const profile = await mkdtemp(join(tmpdir(), 'vn-chromium-'))
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, locale, viewport: { width: 1366, height: 860 },
  })
  const close = async (): Promise<void> => {
    await ctx.close().catch(() => undefined)
    await rm(profile, { recursive: true, force: true })
  }
  t?.teardown(close)
  return { ctx, close }
}
