/**
 * The container packaging, tested without a container engine (docs/OPERATIONS.md "Container"):
 * scripts/production-build.sh performs the Dockerfile's steps for real in a test folder (npm ci with
 * the native addon compiled, tsc, prune, runtime tree, non-root read-only run, demo, serve and the
 * HEALTHCHECK); this file checks the result, that the Dockerfile and the script have not drifted
 * apart, and that deploy/prepare-demo.mjs makes folders the compose file's containers can serve.
 *
 * Slow on purpose: better-sqlite3 compiles from source (1-3 minutes on 2 cores), hence the timeout.
 */
import t from 'tap'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync, readdirSync, lstatSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { createServer } from 'node:net'
import { get as httpsGet } from 'node:https'
import { fileURLToPath } from 'node:url'
import { parse as parseYaml } from 'yaml'
import { parseConfig } from '../../src/config/load.js'

// The build compiles better-sqlite3: 3 CPU-minutes, 3-7 minutes on a busy 2-core machine; the rest
// of the file takes seconds. tap's per-file timeout (package.json) is raised for this file only.
// The build itself runs only with VN_TEST_PRODUCTION_BUILD=1 (see the last test).
t.setTimeout(900_000)

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const SCRIPT = join(ROOT, 'scripts', 'production-build.sh')
const DOCKERFILE = readFileSync(join(ROOT, 'Dockerfile'), 'utf8')
const SCRIPT_TEXT = readFileSync(SCRIPT, 'utf8')
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> }
const MEMBERS = ['fj-psb', 'fj-amr', 'fj-tax', 'fj-credit']
const IS_ROOT = process.getuid?.() === 0
const HAS_SETPRIV = spawnSync('sh', ['-c', 'command -v setpriv'], { stdio: 'ignore' }).status === 0

// ---------------------------------------------------------------------------------------------------
// Dockerfile reading and the drift check

interface Instruction { stage: string; op: string; args: string }

/** Instructions with continuation lines joined, comments dropped, each tagged with its stage name. */
export function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = []
  let stage = ''
  let buf = ''
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (buf === '' && (line === '' || line.startsWith('#'))) continue
    if (line.startsWith('#')) continue // comment inside a continued instruction
    if (line.endsWith('\\')) { buf += `${line.slice(0, -1)} `; continue }
    const full = (buf + line).trim()
    buf = ''
    const m = /^(\S+)\s*(.*)$/.exec(full)
    if (m === null) continue
    const op = (m[1] as string).toUpperCase()
    const args = (m[2] as string).trim()
    if (op === 'FROM') stage = /\sAS\s+(\S+)/i.exec(args)?.[1] ?? ''
    out.push({ stage, op, args })
  }
  return out
}

/** RUN commands split at `&&`, without BuildKit flags (`--mount=...`). */
export function runCommands(ins: Instruction[]): string[] {
  return ins.filter((i) => i.op === 'RUN').flatMap((i) =>
    i.args.replace(/^(--\S+\s+)+/, '').split('&&').map((c) => c.replace(/\s+/g, ' ').trim()).filter((c) => c !== ''))
}

const PATH_VARS: Record<string, string> = { BUILD: '/build', APP: '/app', DATA: '/data', KEYS: '/keys', CONFIG: '/config', NODE_USER: 'node:node' }

/** The script's executable lines with its path variables put back as container paths. */
function scriptCommandLines(script: string): { exec: string[]; notMirrored: string[] } {
  const exec: string[] = []
  const notMirrored: string[] = []
  for (const raw of script.split('\n')) {
    const line = raw.trim()
    const nm = /^# not mirrored:\s*(.+)$/.exec(line)
    if (nm !== null) { notMirrored.push((nm[1] as string).replace(/\s+/g, ' ').trim()); continue }
    if (line.startsWith('#') || line === '') continue
    exec.push(line.replace(/["']/g, '').replace(/\$\{?([A-Z_]+)\}?/g, (all, v: string) => PATH_VARS[v] ?? all).replace(/\s+/g, ' '))
  }
  return { exec, notMirrored }
}

/** Everything in the Dockerfile the script does not mirror; empty when they agree. */
export function driftProblems(dockerfile: string, script: string): string[] {
  const ins = parseDockerfile(dockerfile)
  const { exec, notMirrored } = scriptCommandLines(script)
  const problems: string[] = []
  for (const cmd of runCommands(ins)) {
    if (!exec.some((l) => l.includes(cmd)) && !notMirrored.includes(cmd)) problems.push(`RUN ${cmd}`)
  }
  for (const i of ins.filter((x) => x.op === 'COPY')) {
    const parts = i.args.split(/\s+/)
    const from = parts.find((p) => p.startsWith('--from='))
    const files = parts.filter((p) => !p.startsWith('--'))
    const dest = files.pop()
    let expected: string
    if (from !== undefined) {
      const src = (files[0] ?? '').replace(/^\/build\//, '')
      expected = `copy_from_build ${src}`
      if (files.length !== 1 || dest !== `./${src}`) problems.push(`COPY ${i.args} (expected one /build/<path> copied to ./<path>)`)
    } else {
      expected = `copy_context ${files.join(' ')}`
      if (!(dest === './' || (files.length === 1 && dest === `./${files[0]}`))) problems.push(`COPY ${i.args} (expected ./ or ./<name> as destination)`)
    }
    if (!exec.some((l) => l === expected)) problems.push(`COPY ${i.args} (no "${expected}" line in the script)`)
  }
  for (const i of ins.filter((x) => x.op === 'ENV')) {
    // a variable name starts the ENV line or follows whitespace (not the `size=` of `--max-old-space-size=`)
    for (const m of i.args.matchAll(/(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=/g)) {
      const key = m[1] as string
      if (!new RegExp(`(^|[\\s"(])(export\\s+)?${key}=`, 'm').test(script)) problems.push(`ENV ${key}`)
    }
  }
  return problems
}

/** GET over https from a node's public listener (its certificate is not checked: a probe). */
function tlsGet(port: number, path: string, client: { cert?: Buffer; key?: Buffer } = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    httpsGet({ host: '127.0.0.1', port, path, rejectUnauthorized: false, ...client }, (res) => {
      let body = ''
      res.setEncoding('utf8').on('data', (c: string) => { body += c }).on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    }).on('error', reject)
  })
}

function healthcheckCommand(dockerfile: string): string[] {
  const hc = parseDockerfile(dockerfile).find((i) => i.op === 'HEALTHCHECK')
  const m = hc && /\bCMD\s+(\[.*\])\s*$/.exec(hc.args)
  if (!m) throw new Error('no exec-form HEALTHCHECK in the Dockerfile')
  return JSON.parse(m[1] as string) as string[]
}

// ---------------------------------------------------------------------------------------------------
// process helpers

/** The environment of a child that should behave like a fresh shell: no test-runner loaders or
 * coverage hooks, no parent npm's settings. */
function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined || /^(NODE_OPTIONS|NODE_V8_COVERAGE|NODE_ENV|TAP.*|_TAPJS.*|npm_.*|VERINODE_.*)$/.test(k)) continue
    env[k] = v
  }
  return { ...env, ...extra }
}

/**
 * argv behind `env -i` with exactly `env`: tap's process tracking wraps child_process.spawn and puts
 * its loader back into NODE_OPTIONS, which must not reach the production build or the node (a
 * non-root child cannot even write tap's records).
 */
const isolated = (argv: string[], env: Record<string, string>): string[] =>
  ['env', '-i', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), ...argv]

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const a = s.address()
      s.close(() => resolve(typeof a === 'object' && a !== null ? a.port : 0))
    })
  })
}

/** Runs argv as the image's `node` user (uid 1000) when we are root and can drop privileges. */
const asNode = (argv: string[]): string[] => (IS_ROOT && HAS_SETPRIV ? ['setpriv', '--reuid=1000', '--regid=1000', '--clear-groups', '--', ...argv] : argv)

function run(argv: string[], opts: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {}): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const a = isolated(argv, opts.env ?? cleanEnv())
    const p = spawn(a[0] as string, a.slice(1), { cwd: opts.cwd ?? ROOT, stdio: ['ignore', 'pipe', 'pipe'], timeout: opts.timeoutMs ?? 60_000, killSignal: 'SIGKILL' })
    let out = ''
    p.stdout.on('data', (d: Buffer) => { out += d.toString() })
    p.stderr.on('data', (d: Buffer) => { out += d.toString() })
    p.on('close', (code) => resolve({ code, out }))
  })
}

interface Served { proc: ChildProcess; port: number; lport: number; log: () => string; stop: () => Promise<number | null> }

/** `verinode serve` from the built tree with the runtime stage's environment. */
async function serve(app: string, config: string, env: Record<string, string>): Promise<Served> {
  const port = await freePort()
  const lport = await freePort()
  const argv = isolated(asNode(['node', join(app, 'dist/cli/bin.js'), 'serve', '--config', config]),
    cleanEnv({ NODE_ENV: 'production', VERINODE_LISTEN_HOST: '127.0.0.1', VERINODE_LISTEN_PORT: String(port), VERINODE_LOCAL_HOST: '127.0.0.1', VERINODE_LOCAL_PORT: String(lport), ...env }))
  // env and setpriv exec the command, so this pid is the node's and SIGTERM reaches it
  const proc = spawn(argv[0] as string, argv.slice(1), { cwd: app, stdio: ['ignore', 'pipe', 'pipe'] })
  let log = ''
  proc.stdout?.on('data', (d: Buffer) => { log += d.toString() })
  proc.stderr?.on('data', (d: Buffer) => { log += d.toString() })
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)))
  return {
    proc,
    port,
    lport,
    log: () => log,
    async stop() {
      if (proc.exitCode === null) proc.kill('SIGTERM')
      const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000)
      const code = await exited
      clearTimeout(timer)
      return code
    },
  }
}

/** Polls until `probe` is true or the time is up. */
async function until(probe: () => Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (await probe()) return true
    await new Promise((r) => setTimeout(r, 250))
  }
  return false
}

function walk(dir: string, skip: (rel: string) => boolean = () => false): string[] {
  const out: string[] = []
  const go = (d: string): void => {
    for (const e of readdirSync(d)) {
      const p = join(d, e)
      if (skip(relative(dir, p))) continue
      out.push(p)
      if (lstatSync(p).isDirectory()) go(p)
    }
  }
  go(dir)
  return out
}

/** PEM private keys with a body, as written by src/crypto/keys.ts (not the string in a parser). */
const PEM_PRIVATE = /-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----\r?\n[A-Za-z0-9+/=]{40}/

// ---------------------------------------------------------------------------------------------------
// fast checks of the files themselves

t.test('the Dockerfile is a conventional multi-stage, non-root image', async (t) => {
  const ins = parseDockerfile(DOCKERFILE)
  const from = ins.filter((i) => i.op === 'FROM')
  t.same(from.map((i) => i.stage), ['build', 'runtime'], 'two stages: build and runtime')
  t.match(DOCKERFILE, /^ARG NODE_IMAGE=node:24-bookworm-slim$/m, 'both stages on node:24-bookworm-slim (Node 24 LTS)')
  t.ok(from.every((i) => i.args.startsWith('${NODE_IMAGE}')), 'FROM uses the pinned base')
  const rt = ins.filter((i) => i.stage === 'runtime')
  const ops = rt.map((i) => i.op)
  t.ok(rt.filter((i) => i.op === 'COPY').every((i) => i.args.startsWith('--from=build ')), 'the runtime stage copies only from the build stage')
  t.same(rt.filter((i) => i.op === 'COPY').map((i) => i.args.split(/\s+/)[1]).sort(), ['/build/dist', '/build/node_modules', '/build/package.json'])
  t.equal(rt.find((i) => i.op === 'USER')?.args, 'node', 'runs as the node user')
  t.ok(ops.indexOf('USER') < ops.indexOf('ENTRYPOINT') && ops.indexOf('USER') > ops.lastIndexOf('RUN'), 'USER comes after the last RUN and before ENTRYPOINT')
  t.equal(rt.find((i) => i.op === 'VOLUME')?.args, '["/data", "/keys"]')
  t.equal(rt.find((i) => i.op === 'EXPOSE')?.args, '7100 7180')
  t.equal(rt.find((i) => i.op === 'ENTRYPOINT')?.args, '["node", "/app/dist/cli/bin.js"]')
  t.equal(rt.find((i) => i.op === 'CMD')?.args, '["serve", "--config", "/config/verinode.json"]')
  const env = rt.filter((i) => i.op === 'ENV').map((i) => i.args).join(' ')
  t.match(env, /\bNODE_ENV=production\b/)
  t.match(env, /\bVERINODE_DATA_DIR=\/data\b/)
  t.match(env, /\bVERINODE_KEYS_DIR=\/keys\b/)
  const hc = healthcheckCommand(DOCKERFILE)
  t.equal(hc[0], 'node', 'HEALTHCHECK runs node itself (no curl in slim images)')
  t.match(hc.join(' '), /\/healthz/)
  const build = ins.filter((i) => i.stage === 'build' && i.op === 'RUN').map((i) => i.args).join('\n')
  t.match(build, /python3 make g\+\+/, 'the build stage installs the native toolchain')
  t.match(build, /npm ci /)
  t.match(build, /npm run build/)
  t.match(build, /npm prune --omit=dev/)
  t.match(DOCKERFILE, /scripts\/production-build\.sh/, 'the Dockerfile points to its script')
  t.match(SCRIPT_TEXT, /\.\.\/Dockerfile/, 'the script points to the Dockerfile')
})

t.test('drift check: every RUN, COPY and ENV of the Dockerfile is in the script', async (t) => {
  t.same(driftProblems(DOCKERFILE, SCRIPT_TEXT), [], 'the Dockerfile and scripts/production-build.sh agree')
  t.ok(runCommands(parseDockerfile(DOCKERFILE)).length >= 8, 'the check sees the RUN commands')

  // The check must be able to fail: a changed or added step in the Dockerfile is reported.
  const changed = DOCKERFILE.replace('npm prune --omit=dev --no-audit --no-fund', 'npm prune --omit=dev --omit=optional --no-audit --no-fund')
  t.same(driftProblems(changed, SCRIPT_TEXT), ['RUN npm prune --omit=dev --omit=optional --no-audit --no-fund'])
  const added = DOCKERFILE.replace('RUN npm run build', 'RUN npm run build && npm test')
  t.same(driftProblems(added, SCRIPT_TEXT), ['RUN npm test'])
  const copied = DOCKERFILE.replace('COPY src ./src', 'COPY src ./src\nCOPY keys ./keys')
  t.same(driftProblems(copied, SCRIPT_TEXT), ['COPY keys ./keys (no "copy_context keys" line in the script)'])
  const envAdded = DOCKERFILE.replace('VERINODE_KEYS_DIR=/keys', 'VERINODE_KEYS_DIR=/keys VERINODE_EXTRA=1')
  t.same(driftProblems(envAdded, SCRIPT_TEXT), ['ENV VERINODE_EXTRA'])
  // ... and a step dropped from the script is reported too.
  const scriptDropped = SCRIPT_TEXT.replace('run_in "$BUILD" npm prune --omit=dev --no-audit --no-fund', '')
  t.same(driftProblems(DOCKERFILE, scriptDropped), ['RUN npm prune --omit=dev --no-audit --no-fund'])
  const scriptChmod = SCRIPT_TEXT.replace('chown "$NODE_USER" "$DATA" "$KEYS"', 'true')
  t.same(driftProblems(DOCKERFILE, scriptChmod), ['RUN chown node:node /data /keys'])
})

t.test('.dockerignore keeps modules, output, data, keys, history and tests out of the context', async (t) => {
  const lines = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'))
  for (const p of ['node_modules', 'dist', 'var', 'keys', '**/*.key', '**/*.pem', '.git', 'test', 'deploy/demo']) t.ok(lines.includes(p), `excludes ${p}`)
  t.notOk(lines.some((l) => l.startsWith('!')), 'no re-inclusions')
  for (const c of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'src']) t.notOk(lines.includes(c), `keeps ${c}`)
})

t.test('compose.yaml: the four departments from one image, read-only, internal network', async (t) => {
  const doc = parseYaml(readFileSync(join(ROOT, 'deploy', 'compose.yaml'), 'utf8'), { merge: true }) as {
    services: Record<string, Record<string, any>> // eslint-disable-line @typescript-eslint/no-explicit-any
    networks: Record<string, { internal?: boolean } | null>
    volumes: Record<string, unknown>
  }
  t.same(Object.keys(doc.services).sort(), [...MEMBERS].sort())
  const images = new Set(Object.values(doc.services).map((s) => s.image))
  t.equal(images.size, 1, 'one image for all')
  t.ok(Object.values(doc.networks).some((n) => n?.internal === true), 'an internal network')
  const hc = ['CMD', ...healthcheckCommand(DOCKERFILE)]
  for (const id of MEMBERS) {
    const s = doc.services[id] as Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any
    t.equal(s.read_only, true, `${id}: read_only`)
    t.ok((s.tmpfs as string[]).some((x) => x.startsWith('/tmp')), `${id}: tmpfs /tmp`)
    t.same(s.healthcheck.test, hc, `${id}: the Dockerfile's HEALTHCHECK command`)
    t.same([...(s.volumes as string[])].sort(), [`./demo/${id}/config:/config:ro`, `./demo/${id}/keys:/keys:ro`, `${id}-data:/data`].sort(), `${id}: own config, keys, data`)
    t.ok(`${id}-data` in doc.volumes, `${id}: data volume declared`)
    t.equal(s.environment.VERINODE_INSECURE, '1', `${id}: plain HTTP between containers is declared`)
    t.ok((s.ports as string[]).every((p) => p.startsWith('127.0.0.1:')), `${id}: published on loopback only`)
  }
})

// ---------------------------------------------------------------------------------------------------
// the real build

// The real build runs in its own step (`npm run test:deploy`, which .ci/run calls after `npm test`):
// its compile alone is longer than the rest of the suite on 2 cores. Everything above runs always.
const REAL_BUILD = process.env.VN_TEST_PRODUCTION_BUILD === '1'
t.test('scripts/production-build.sh builds and runs the production tree', { skip: REAL_BUILD ? false : 'set VN_TEST_PRODUCTION_BUILD=1 (npm run test:deploy) for the real build' }, async (t) => {
  let out = ''
  // Registered before the fixture, so the read-only tree is writable again when tap removes it.
  t.teardown(() => { if (out !== '') spawnSync('chmod', ['-R', 'u+w', out]) })
  out = join(t.testdir({}), 'out')
  const t0 = Date.now()
  const r = await run(['bash', SCRIPT, out], { timeoutMs: 840_000 })
  const seconds = (Date.now() - t0) / 1000
  t.comment(`production build and checks: ${seconds.toFixed(0)} s`)
  if (!t.equal(r.code, 0, 'the script succeeds')) {
    t.comment(r.out.split('\n').slice(-60).join('\n'))
    return
  }
  t.match(r.out, /check: verinode demo from the built tree: ok/)
  t.match(r.out, /check: Dockerfile HEALTHCHECK against verinode serve: ok/)
  t.match(r.out, /check: \/readyz: ok/)
  t.match(r.out, /check: graceful shutdown on SIGTERM: ok/)
  t.match(r.out, /check: writes only in the data volume: ok/)
  if (IS_ROOT && HAS_SETPRIV) t.match(r.out, /check: read-only app tree, non-root user: ok \(uid 1000 via setpriv\)/)
  else if (!IS_ROOT) t.match(r.out, /check: read-only app tree, non-root user: ok/)
  else t.match(r.out, /SKIPPED/, 'says the non-root part was skipped')

  const app = join(out, 'app')

  t.test('runtime tree: production dependencies only, the addon compiled', async (t) => {
    t.same(readdirSync(app).sort(), ['dist', 'node_modules', 'package.json'])
    // A package a production dependency itself asks for (mysql2 names @types/node as a peer, which
    // npm installs) stays, though the project also lists it as a devDependency.
    const wanted = new Set<string>()
    for (const dep of Object.keys(PKG.dependencies)) {
      const meta = JSON.parse(readFileSync(join(app, 'node_modules', dep, 'package.json'), 'utf8')) as { dependencies?: object; peerDependencies?: object }
      for (const name of [...Object.keys(meta.dependencies ?? {}), ...Object.keys(meta.peerDependencies ?? {})]) wanted.add(name)
    }
    for (const dev of Object.keys(PKG.devDependencies)) {
      if (!wanted.has(dev)) t.notOk(existsSync(join(app, 'node_modules', dev)), `no devDependency ${dev}`)
    }
    for (const tool of ['typescript', 'tap', 'tsx', 'esbuild', 'autocannon']) t.notOk(existsSync(join(app, 'node_modules', tool)), `no ${tool}`)
    // npm prune leaves emptied scope folders behind; no package may remain in them
    const ls = (p: string): string[] => (existsSync(p) ? readdirSync(p) : [])
    const types = ls(join(app, 'node_modules', '@types')).filter((n) => !wanted.has(`@types/${n}`))
    t.same([...ls(join(app, 'node_modules', '@tapjs')), ...types], [], 'no @tapjs package, no @types package no production dependency asks for')
    for (const dep of Object.keys(PKG.dependencies)) t.ok(existsSync(join(app, 'node_modules', dep, 'package.json')), `has ${dep}`)
    t.ok(existsSync(join(app, 'node_modules/better-sqlite3/build/Release/better_sqlite3.node')), 'better-sqlite3 addon built')
    const load = await run(['node', '-e', "const D=require(process.argv[1]);const d=new D(':memory:');console.log(d.prepare('select sqlite_version() v').get().v)", join(app, 'node_modules/better-sqlite3')], { cwd: app })
    t.equal(load.code, 0, `the addon loads in this Node (${load.out.trim()})`)
  })

  t.test('runtime tree: compiled JavaScript, no TypeScript sources, tests or configs', async (t) => {
    const files = walk(app, (rel) => rel.startsWith('node_modules'))
    const rels = files.map((f) => relative(app, f))
    t.ok(rels.includes(join('dist', 'cli', 'bin.js')), 'dist/cli/bin.js')
    t.same(rels.filter((f) => /\.[cm]?ts$/.test(f)), [], 'no .ts files outside node_modules')
    t.same(rels.filter((f) => /^(src|test|bench|scripts|deploy|keys|var)(\/|$)|tsconfig/.test(f)), [], 'no src, test, bench, keys, var, tsconfig')
  })

  t.test('runtime tree: no private key material anywhere', async (t) => {
    const files = walk(app).filter((f) => lstatSync(f).isFile())
    t.ok(files.length > 1000, `scanned ${files.length} files`)
    t.same(files.filter((f) => /\.(key|pem|p12|pfx)$/i.test(f)).map((f) => relative(app, f)), [], 'no key files by name')
    const pem = files.filter((f) => statSync(f).size < 4_000_000 && PEM_PRIVATE.test(readFileSync(f, 'latin1')))
    t.same(pem.map((f) => relative(app, f)), [], 'no PEM private key in any file')
    // the scan finds a key where there is one
    const keys = join(out, 'keys')
    t.ok(readdirSync(keys).filter((f) => f.endsWith('.key') && f !== 'evidence.key').some((f) => PEM_PRIVATE.test(readFileSync(join(keys, f), 'latin1'))), 'the same scan finds the keys in the keys volume')
  })

  t.test('runtime tree: read-only', async (t) => {
    const writable = walk(app).filter((f) => !lstatSync(f).isSymbolicLink() && (statSync(f).mode & 0o222) !== 0)
    t.same(writable.map((f) => relative(app, f)).slice(0, 5), [], 'no write permission bit anywhere under app/')
  })

  t.test('the HEALTHCHECK command passes against a running node and fails without one', async (t) => {
    const hc = healthcheckCommand(DOCKERFILE)
    const data = join(out, 'work', 'data-healthcheck')
    await run(['mkdir', '-p', data])
    if (IS_ROOT && HAS_SETPRIV) await run(['chown', '1000:1000', data])
    const node = await serve(app, join(out, 'config', 'verinode.json'), { VERINODE_DATA_DIR: data, VERINODE_KEYS_DIR: join(out, 'keys'), VERINODE_LOG_LEVEL: 'info' })
    const probeEnv = cleanEnv({ VERINODE_LISTEN_PORT: String(node.port) })
    try {
      const ok = await until(async () => (await run(asNode(hc), { cwd: app, env: probeEnv, timeoutMs: 10_000 })).code === 0, 60_000)
      if (!t.ok(ok, 'HEALTHCHECK exits 0 against verinode serve')) t.comment(node.log().slice(-3000))
      // the demo's nodes serve mutual TLS: /readyz needs no client certificate
      const ready = await tlsGet(node.port, '/readyz')
      t.equal(ready.status, 200, '/readyz over https')
      t.equal((JSON.parse(ready.body) as { status: string }).status, 'ready')
      const metrics = await fetch(`http://127.0.0.1:${node.lport}/metrics`)
      t.match(await metrics.text(), /verinode_tls_certificate_expiry_seconds/, '/metrics on the local listener, with the certificate gauge')
      const keys = join(out, 'keys')
      t.equal((await tlsGet(node.port, '/metrics', { cert: readFileSync(join(keys, 'tls.crt')), key: readFileSync(join(keys, 'tls.key')) })).status, 404, 'not on the public listener')
    } finally {
      t.equal(await node.stop(), 0, 'SIGTERM: graceful exit 0')
    }
    t.match(node.log(), /shutting down/)
    const after = await run(asNode(hc), { cwd: app, env: probeEnv, timeoutMs: 10_000 })
    t.not(after.code, 0, 'HEALTHCHECK fails once the node is gone')
  })

  t.test('deploy/prepare-demo.mjs makes folders the compose containers can serve', async (t) => {
    const demo = join(out, 'work', 'compose-demo')
    const p = await run(['node', join(ROOT, 'deploy', 'prepare-demo.mjs'), '--app', app, '--dir', demo, '--residents', '300', '--enterprises', '200'], { cwd: ROOT })
    if (!t.equal(p.code, 0, 'prepare-demo succeeds')) { t.comment(p.out); return }
    const again = await run(['node', join(ROOT, 'deploy', 'prepare-demo.mjs'), '--app', app, '--dir', demo], { cwd: ROOT })
    t.equal(again.code, 2, 'refuses a folder that is not empty')
    const index = JSON.parse(readFileSync(join(demo, 'compose-demo.json'), 'utf8')) as { nodes: Record<string, { appToken: string }> }
    t.same(Object.keys(index.nodes).sort(), [...MEMBERS].sort())
    let manifestJws = ''
    for (const id of MEMBERS) {
      const cfgDir = join(demo, id, 'config')
      const raw = JSON.parse(readFileSync(join(cfgDir, 'verinode.json'), 'utf8')) as unknown
      const cfg = parseConfig(raw, {})
      t.equal(cfg.member, id)
      t.same([cfg.listen.host, cfg.listen.port, cfg.local.host, cfg.local.port], ['0.0.0.0', 7100, '0.0.0.0', 7180], `${id}: container ports`)
      const ds = cfg.dataSource?.kind === 'sqlite' ? cfg.dataSource : undefined
      t.match(ds?.path, /^source\/[a-z-]+\.sqlite$/, `${id}: its database inside its config folder`)
      t.ok(existsSync(join(cfgDir, ds?.path ?? 'missing')), `${id}: database present`)
      t.ok(existsSync(join(cfgDir, cfg.federation.rootKey)), `${id}: root key present`)
      manifestJws = readFileSync(join(cfgDir, cfg.federation.manifest), 'utf8').trim()
      const cfgFiles = walk(cfgDir).filter((f) => lstatSync(f).isFile())
      t.same(cfgFiles.filter((f) => /\.key$/.test(f) || PEM_PRIVATE.test(readFileSync(f, 'latin1'))), [], `${id}: no private key in the config mount`)
      for (const k of ['message.key', 'log.key', 'evidence.key']) {
        const st = statSync(join(demo, id, 'keys', k))
        t.equal(st.mode & 0o777, 0o600, `${id}: ${k} is 0600`)
        if (IS_ROOT) t.equal(st.uid, 1000, `${id}: ${k} owned by uid 1000`)
      }
    }
    const manifest = JSON.parse(Buffer.from(manifestJws.split('.')[1] ?? '', 'base64url').toString('utf8')) as { members: { id: string; endpoint?: string }[] }
    t.same(Object.fromEntries(manifest.members.map((m) => [m.id, m.endpoint])), Object.fromEntries(MEMBERS.map((id) => [id, `http://${id}:7100`])), 'endpoints are the compose service names')

    // fj-tax as its container would run it: config and keys mounted, a data volume, insecure as in compose
    const data = join(out, 'work', 'compose-tax-data')
    await run(['mkdir', '-p', data])
    if (IS_ROOT && HAS_SETPRIV) await run(['chown', '1000:1000', data])
    const node = await serve(app, join(demo, 'fj-tax', 'config', 'verinode.json'), { VERINODE_KEYS_DIR: join(demo, 'fj-tax', 'keys'), VERINODE_DATA_DIR: data, VERINODE_INSECURE: '1' })
    try {
      const ready = await until(async () => {
        const res = await fetch(`http://127.0.0.1:${node.port}/readyz`).catch(() => undefined)
        return res?.status === 200
      }, 60_000)
      if (!t.ok(ready, 'fj-tax from the prepared folder is ready')) t.comment(node.log().slice(-3000))
    } finally {
      t.equal(await node.stop(), 0, 'graceful exit')
    }
    t.match(node.log(), /insecure/, 'the insecure flag is warned about at start-up')
    t.ok(existsSync(join(data, 'log.db')), 'the log went to the data volume')
  })
})
