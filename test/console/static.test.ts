/**
 * The console's static files on the local listener: served from memory with their types and
 * security headers when built; when not built the node still starts, logs it, and /console/ is a 404.
 */
import t, { type Test } from 'tap'
import Fastify from 'fastify'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { capture } from '../helper-apps.js'
import { consoleRoutes } from '../../src/http/routes/console.js'
import { errorHandler, notFoundHandler } from '../../src/http/errors.js'

async function appFor(t: Test, dir: string) {
  const { logger, lines } = capture()
  const app = Fastify({ loggerInstance: logger })
  app.setErrorHandler(errorHandler())
  app.setNotFoundHandler(notFoundHandler)
  await app.register(consoleRoutes(dir))
  await app.ready()
  t.teardown(() => app.close())
  return { app, lines }
}

t.test('not built: the app starts, says so, and /console/ is a 404 that says why', async (t) => {
  const { app, lines } = await appFor(t, join(t.testdir({}), 'missing'))
  t.ok(lines.some((l) => String(l.msg).startsWith('web console not built')))
  const r = await app.inject({ url: '/console/' })
  t.equal(r.statusCode, 404)
  t.equal(r.json().code, 'VN_ERR_REQ_NOT_FOUND')
  t.match(r.json().detail, /npm run build:console/)
})

t.test('built: files from memory with their type, cache rule and security headers', async (t) => {
  const dir = t.testdir({ 'index.html': '<!doctype html><title>c</title>', assets: { 'a-123.js': 'console.log(1)', 'b.css': 'body{}' }, 'notes.txt': 'x' })
  await mkdir(join(dir, 'empty'), { recursive: true })
  await writeFile(join(dir, 'empty', 'x.md'), '# no')
  const { app, lines } = await appFor(t, dir)
  t.ok(lines.some((l) => l.msg === 'web console served at /console/'))
  const redirect = await app.inject({ url: '/console' })
  t.equal(redirect.statusCode, 302)
  t.equal(redirect.headers.location, '/console/')
  const page = await app.inject({ url: '/console/' })
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /^text\/html/)
  t.match(page.headers['content-security-policy'], /default-src 'self'/)
  t.equal(page.headers['x-frame-options'], 'DENY')
  t.equal(page.headers['cache-control'], 'no-cache')
  const js = await app.inject({ url: '/console/assets/a-123.js' })
  t.match(js.headers['content-type'], /^text\/javascript/)
  t.match(js.headers['cache-control'], /immutable/)
  t.equal(js.body, 'console.log(1)')
  t.equal((await app.inject({ url: '/console/notes.txt' })).statusCode, 404, 'unknown types are not served')
  t.equal((await app.inject({ url: '/console/../package.json' })).statusCode, 404)
  t.equal((await app.inject({ url: '/console/assets/none.js' })).statusCode, 404)
})
