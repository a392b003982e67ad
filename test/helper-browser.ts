/**
 * A real browser for the console tests: Debian's chromium driven by playwright-core (never a
 * downloaded browser), headless, no background network, a fresh profile per browser context. The
 * console's assets are built first when missing (`npm run build:console`), before any node starts:
 * a node loads them when its local app is built.
 */
import type { Test } from 'tap'
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdir, readdir, rm, stat } from 'node:fs/promises'
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
  if (await consoleFresh()) return
  // Test files run in parallel and several use the console: one builds, the others wait for it
  // (vite refuses a second build of the same project at once). The lock is a folder (mkdir is
  // atomic); one older than the build's timeout is a dead process's and is taken over.
  const lock = join(tmpdir(), `verinode-console-build-${createHash('sha256').update(ROOT).digest('hex').slice(0, 16)}`)
  for (;;) {
    try {
      await mkdir(lock)
      break
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e
      const age = await stat(lock).then((s) => Date.now() - s.mtimeMs, () => 0)
      if (age > BUILD_TIMEOUT_MS) await rm(lock, { recursive: true, force: true })
      else await new Promise((r) => setTimeout(r, 250))
    }
  }
  try {
    if (!(await consoleFresh())) await promisify(execFile)('npm', ['run', '--silent', 'build:console'], { cwd: ROOT, timeout: BUILD_TIMEOUT_MS })
  } finally {
    await rm(lock, { recursive: true, force: true })
  }
}

const BUILD_TIMEOUT_MS = 180_000

/** Whether the console's build is there and newer than its sources. */
async function consoleFresh(): Promise<boolean> {
  const built = await stat(join(DEFAULT_CONSOLE_DIR, 'index.html')).then((s) => s.mtimeMs, () => undefined)
  return built !== undefined && await newestMtime(join(ROOT, 'console')) <= built
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
 * Launches chromium (playwright gives it a fresh temporary profile and removes it on close) and
 * opens a browser context in `locale`; `context` opens another one, in another locale, on the same
 * browser (a context is a fresh profile of its own: no cookies or storage shared). Closed when `t`
 * ends (or by the returned `close`).
 */
export async function launchChromium(t: Test | undefined, locale = 'en-US'): Promise<{ ctx: BrowserContext; context: (locale: string) => Promise<BrowserContext>; close: () => Promise<void> }> {
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS })
  const context = (locale: string): Promise<BrowserContext> => browser.newContext({ locale, viewport: { width: 1366, height: 860 } })
  const close = async (): Promise<void> => {
    await browser.close().catch(() => undefined)
  }
  t?.teardown(close)
  try {
    return { ctx: await context(locale), context, close }
  } catch (e) {
    await close()
    throw e
  }
}
