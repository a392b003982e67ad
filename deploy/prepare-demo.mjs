#!/usr/bin/env node
/**
 * Prepares the folders deploy/compose.yaml mounts: the four demo departments (fj-psb, fj-amr, fj-tax,
 * fj-credit) with their keys, configs, synthetic databases and a federation manifest whose endpoints
 * are the compose service names (http://fj-psb:7100, ...).
 *
 * It builds the same federation as `verinode demo` (src/demo/federation.ts buildDemoFederation, from
 * the compiled dist/), then rearranges each member into the container's mount layout
 * (docs/OPERATIONS.md "Container"):
 *
 *   <dir>/<member>/config/verinode.json            -> /config (read-only)
 *   <dir>/<member>/config/federation/manifest.jws, federation-root.pub
 *   <dir>/<member>/config/source/<department>.sqlite  the department's own database (demo data)
 *   <dir>/<member>/keys/                            -> /keys (read-only; private keys 0600)
 *   <dir>/<member>/data/                            the log store on a host run; compose uses a volume
 *   <dir>/authority/                                the federation authority (root private key: keep it
 *                                                   off every node)
 *   <dir>/compose-demo.json                         local API tokens and published URLs (0600)
 *
 * Paths in each config are relative to its folder (keysDir "../keys", dataDir "../data"), so the same
 * folder also runs outside a container: `verinode serve --config <dir>/fj-psb/config/verinode.json`.
 *
 * usage: node deploy/prepare-demo.mjs [--dir deploy/demo] [--residents 5000] [--enterprises 2000]
 *          [--valid-days 30] [--owner 1000:1000] [--app <folder holding dist/>]
 * Run as root, it hands the member folders to --owner (default 1000:1000, the image's `node` user),
 * since the node refuses private keys it cannot read and keys readable by others.
 */
import { parseArgs } from 'node:util'
import { existsSync } from 'node:fs'
import { chown, copyFile, lstat, mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const PUBLIC_PORT = 7100
const LOCAL_PORT = 7180
/** host ports compose.yaml publishes on 127.0.0.1, per member (public, local) */
export const PUBLISHED = {
  'fj-psb': [7101, 7181],
  'fj-amr': [7102, 7182],
  'fj-tax': [7103, 7183],
  'fj-credit': [7104, 7184],
}

function fail(msg, code = 1) {
  process.stderr.write(`prepare-demo: ${msg}\n`)
  process.exit(code)
}

const { values } = parseArgs({
  options: {
    dir: { type: 'string', default: join(here, 'demo') },
    residents: { type: 'string', default: '5000' },
    enterprises: { type: 'string', default: '2000' },
    'valid-days': { type: 'string', default: '30' },
    owner: { type: 'string' },
    app: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
})
if (values.help) {
  process.stdout.write('usage: node deploy/prepare-demo.mjs [--dir deploy/demo] [--residents 5000] [--enterprises 2000] [--valid-days 30] [--owner 1000:1000] [--app <folder holding dist/>]\n')
  process.exit(0)
}
const count = (name, v) => {
  const n = Number(v)
  if (!Number.isSafeInteger(n) || n <= 0) fail(`--${name}: expected a positive integer`, 2)
  return n
}
const residents = count('residents', values.residents)
const enterprises = count('enterprises', values.enterprises)
const validDays = count('valid-days', values['valid-days'])
let owner
if (values.owner !== undefined || process.getuid?.() === 0) {
  const m = /^(\d+):(\d+)$/.exec(values.owner ?? '1000:1000')
  if (m === null) fail('--owner: expected uid:gid', 2)
  owner = { uid: Number(m[1]), gid: Number(m[2]) }
}

// The compiled app: --app, $VERINODE_APP_DIR, this checkout's dist/, or the image's /app.
const appDir = resolve(values.app ?? process.env.VERINODE_APP_DIR ?? (existsSync(join(here, '..', 'dist', 'cli', 'bin.js')) ? join(here, '..') : '/app'))
if (!existsSync(join(appDir, 'dist', 'demo', 'federation.js'))) fail(`${appDir}/dist is missing: run npm run build first (or pass --app)`)
const load = (p) => import(pathToFileURL(join(appDir, 'dist', p)).href)
const { buildDemoFederation } = await load('demo/federation.js')
const { signAuthorityManifest, AUTHORITY_FILES, DAY_MS } = await load('federation/authority.js')

const dir = resolve(values.dir)
if (existsSync(dir) && (await readdir(dir)).length > 0) fail(`${dir} is not empty (remove it to start over)`, 2)

const fed = await buildDemoFederation(dir, { sizes: { residents, enterprises }, configOverrides: { logLevel: 'info' } })

// 1. The manifest: endpoints become the compose service names; sign it as the next seq.
const membersPath = join(fed.authorityDir, AUTHORITY_FILES.members)
const draft = JSON.parse(await readFile(membersPath, 'utf8'))
for (const m of draft.members) if (m.role === 'department') m.endpoint = `http://${m.id}:${PUBLIC_PORT}`
await writeFile(`${membersPath}.tmp`, `${JSON.stringify(draft, null, 2)}\n`)
await rename(`${membersPath}.tmp`, membersPath)
// iat a little in the past, as the demo does, so a node whose clock is slightly behind accepts it
const signed = await signAuthorityManifest(fed.authorityDir, { now: Date.now() - 30_000, validMs: validDays * DAY_MS })

// 2. Each member: config/ (read-only mount), keys/ (read-only mount), data/ (host runs only).
const index = { federation: fed.federation, manifestSeq: signed.manifest.seq, nodes: {} }
for (const [id, n] of Object.entries(fed.nodes)) {
  const nodeDir = dirname(n.configPath)
  const configDir = join(nodeDir, 'config')
  await mkdir(join(configDir, 'federation'), { recursive: true })
  await mkdir(join(configDir, 'source'), { recursive: true })
  const cfg = JSON.parse(await readFile(n.configPath, 'utf8'))
  if (cfg.dataSource?.kind === 'sqlite') {
    const db = basename(cfg.dataSource.path)
    await copyFile(cfg.dataSource.path, join(configDir, 'source', db))
    cfg.dataSource = { kind: 'sqlite', path: `source/${db}` }
  }
  cfg.keysDir = '../keys'
  cfg.dataDir = '../data'
  cfg.federation = { rootKey: 'federation/federation-root.pub', manifest: 'federation/manifest.jws' }
  // In the container the image's VERINODE_LISTEN_* / VERINODE_LOCAL_* say the same; kept here so the
  // file reads true on its own.
  cfg.listen = { host: '0.0.0.0', port: PUBLIC_PORT }
  cfg.local = { ...cfg.local, host: '0.0.0.0', port: LOCAL_PORT }
  await writeFile(join(configDir, 'verinode.json'), `${JSON.stringify(cfg, null, 2)}\n`)
  await writeFile(join(configDir, 'federation', 'manifest.jws'), `${signed.jws}\n`)
  await rename(join(nodeDir, 'keys', 'federation-root.pub'), join(configDir, 'federation', 'federation-root.pub'))
  await rm(n.configPath)
  await rm(join(nodeDir, 'federation'), { recursive: true, force: true })
  await rm(join(nodeDir, 'var'), { recursive: true, force: true })
  await mkdir(join(nodeDir, 'data'), { mode: 0o700 })
  const [pub, loc] = PUBLISHED[id] ?? []
  index.nodes[id] = {
    config: join(configDir, 'verinode.json'),
    appToken: n.appToken,
    ...(pub !== undefined ? { public: `http://127.0.0.1:${pub}`, local: `http://127.0.0.1:${loc}` } : {}),
  }
}
await rm(join(dir, 'demo.json'), { force: true }) // its loopback ports do not apply here
await writeFile(join(dir, 'compose-demo.json'), `${JSON.stringify(index, null, 2)}\n`, { mode: 0o600 })

// 3. Ownership: the container runs as uid 1000 and reads 0600 keys.
async function chownTree(p, uid, gid) {
  await chown(p, uid, gid)
  if ((await lstat(p)).isDirectory()) for (const e of await readdir(p)) await chownTree(join(p, e), uid, gid)
}
if (owner !== undefined) for (const id of Object.keys(fed.nodes)) await chownTree(join(dir, id), owner.uid, owner.gid)

const out = (l = '') => process.stdout.write(`${l}\n`)
out(`prepared ${Object.keys(fed.nodes).length} departments of federation ${fed.federation} in ${dir}`)
out(`  manifest seq ${signed.manifest.seq}, valid ${validDays} days; endpoints http://<member>:${PUBLIC_PORT}`)
if (owner !== undefined) out(`  member folders owned by ${owner.uid}:${owner.gid}`)
out(`  local API tokens: ${join(dir, 'compose-demo.json')}`)
out('')
out('next: docker compose -f deploy/compose.yaml up -d   (see deploy/README.md)')
