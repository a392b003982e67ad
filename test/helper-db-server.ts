/**
 * Private database servers for the tests that need a server to go down and come back: a
 * PostgreSQL cluster (initdb + pg_ctl) or a MariaDB instance (mariadb-install-db + mariadbd) in a
 * temp dir, on a free loopback port, started and stopped by the test. The shared servers of
 * test/helper-db.ts are never touched.
 *
 * Each takes a few seconds to create. `skipReason` says why one cannot be made here (no binaries),
 * or throws under VN_TEST_REQUIRE_DB=1 like test/helper-db.ts.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { chmodSync, chownSync, copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import pg from 'pg'
import mysql from 'mysql2/promise'
import { freePort } from '../src/demo/federation.js'

const run = promisify(execFile)
const REQUIRE = process.env['VN_TEST_REQUIRE_DB'] === '1'
const PG_BIN = process.env['VN_TEST_PG_BIN'] ?? '/usr/lib/postgresql/15/bin'
const IS_ROOT = process.getuid?.() === 0

async function until(what: string, ms: number, probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms
  for (;;) {
    if (await probe().catch(() => false)) return
    if (Date.now() > deadline) throw new Error(`${what}: not ready within ${ms} ms`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

export interface PrivateServer {
  /** Admin URL (no password: trust / root without one), database `postgres` / none. */
  readonly url: string
  readonly port: number
  /** Stops the server (fast shutdown): connections drop, new ones are refused. */
  stop(): Promise<void>
  /** Starts it again on the same port and data directory. */
  start(): Promise<void>
  /** Stops it if running and removes its directory. */
  destroy(): Promise<void>
}

function skipOrThrow(why: string): string {
  if (REQUIRE) throw new Error(why)
  return why
}

export function privatePgSkipReason(): string | undefined {
  if (!existsSync(join(PG_BIN, 'initdb')) || !existsSync(join(PG_BIN, 'pg_ctl'))) return skipOrThrow(`no PostgreSQL binaries in ${PG_BIN} (set VN_TEST_PG_BIN)`)
  return undefined
}

export function privateMariadbSkipReason(): string | undefined {
  if (!existsSync('/usr/bin/mariadb-install-db') || !existsSync('/usr/sbin/mariadbd')) return skipOrThrow('no mariadb-install-db / mariadbd on this machine')
  return undefined
}

export interface PrivatePgOptions {
  /** TLS: PEM files of the server's certificate and key (copied into the cluster, owned by it). */
  readonly tls?: { readonly cert: string; readonly key: string }
  /** pg_hba.conf lines (default: trust on 127.0.0.1); `postgres` always keeps trust over TCP for the admin URL. */
  readonly hba?: readonly string[]
}

/** A PostgreSQL cluster of its own (trust auth on 127.0.0.1), running as `postgres` when we are root. */
export async function startPrivatePostgres(o: PrivatePgOptions = {}): Promise<PrivateServer> {
  const dir = mkdtempSync(join(tmpdir(), 'vn-pg-'))
  const data = join(dir, 'data')
  const port = await freePort()
  const as = async (cmd: string, args: string[]): Promise<void> => {
    if (IS_ROOT) await run('runuser', ['-u', 'postgres', '--', join(PG_BIN, cmd), ...args], { cwd: dir })
    else await run(join(PG_BIN, cmd), args, { cwd: dir })
  }
  if (IS_ROOT) chownSync(dir, ...(await pgIds()))
  await as('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '--no-instructions'])
  let opts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c shared_buffers=16MB -c max_connections=40`
  if (o.hba !== undefined) {
    writeFileSync(join(data, 'pg_hba.conf'), ['local all all trust', 'host all postgres 127.0.0.1/32 trust', ...o.hba, ''].join('\n'))
  }
  if (o.tls !== undefined) {
    const cert = join(data, 'server.crt')
    const key = join(data, 'server.key')
    copyFileSync(o.tls.cert, cert)
    copyFileSync(o.tls.key, key)
    chmodSync(key, 0o600)
    if (IS_ROOT) {
      const [uid, gid] = await pgIds()
      chownSync(cert, uid, gid)
      chownSync(key, uid, gid)
      chownSync(join(data, 'pg_hba.conf'), uid, gid)
    }
    opts += ` -c ssl=on -c ssl_cert_file=${cert} -c ssl_key_file=${key}`
  }
  let running = false
  const start = async (): Promise<void> => {
    await as('pg_ctl', ['-D', data, '-o', opts, '-l', join(dir, 'log'), '-w', '-t', '60', 'start'])
    running = true
  }
  const stop = async (): Promise<void> => {
    if (!running) return
    await as('pg_ctl', ['-D', data, '-m', 'fast', '-w', '-t', '60', 'stop'])
    running = false
  }
  await start()
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    start,
    stop,
    async destroy() {
      await stop().catch(() => undefined)
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

async function pgIds(): Promise<[number, number]> {
  const { stdout } = await run('id', ['postgres'])
  const uid = /uid=(\d+)/.exec(stdout)?.[1]
  const gid = /gid=(\d+)/.exec(stdout)?.[1]
  if (uid === undefined || gid === undefined) throw new Error('no postgres OS user')
  return [Number(uid), Number(gid)]
}

/** A MariaDB instance of its own (root without a password on 127.0.0.1); `tls`: its certificate and key. */
export async function startPrivateMariadb(o: { readonly tls?: { readonly cert: string; readonly key: string } } = {}): Promise<PrivateServer> {
  const dir = mkdtempSync(join(tmpdir(), 'vn-my-'))
  const data = join(dir, 'data')
  const port = await freePort()
  const user = IS_ROOT ? ['--user=root'] : []
  // Its own tmpdir: a shared /tmp saw 'Could not remove temporary table /tmp/#sql-temptable-...' in
  // the bootstrap once, with other MariaDB instances on the machine (mariadb-install-db passes the
  // option on to the server it bootstraps).
  await run('mariadb-install-db', ['--no-defaults', `--datadir=${data}`, `--tmpdir=${dir}`, '--auth-root-authentication-method=normal', '--skip-test-db', ...user], { cwd: dir })
  let child: ChildProcess | undefined
  const start = async (): Promise<void> => {
    child = spawn('/usr/sbin/mariadbd', [
      '--no-defaults', `--datadir=${data}`, `--tmpdir=${dir}`, `--port=${port}`, '--bind-address=127.0.0.1', `--socket=${join(dir, 'sock')}`,
      `--pid-file=${join(dir, 'pid')}`, `--log-error=${join(dir, 'err.log')}`, '--skip-log-bin', '--innodb-buffer-pool-size=16M',
      '--innodb-log-file-size=8M', '--skip-name-resolve', '--max-connections=40', ...user,
      ...(o.tls !== undefined ? [`--ssl-cert=${o.tls.cert}`, `--ssl-key=${o.tls.key}`] : []),
    ], { stdio: 'ignore' })
    const c = child
    await until(`MariaDB on port ${port}`, 60_000, async () => {
      if (c.exitCode !== null) throw new Error(`mariadbd exited (${c.exitCode}); see ${join(dir, 'err.log')}`)
      const conn = await mysql.createConnection({ host: '127.0.0.1', port, user: 'root', connectTimeout: 1000 })
      await conn.end()
      return true
    })
  }
  const stop = async (): Promise<void> => {
    const c = child
    child = undefined
    if (c === undefined || c.exitCode !== null) return
    const exited = new Promise((r) => c.once('exit', r))
    c.kill('SIGTERM')
    await exited
  }
  await start()
  return {
    url: `mysql://root@127.0.0.1:${port}/`,
    port,
    start,
    stop,
    async destroy() {
      await stop().catch(() => undefined)
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

/**
 * A throw-away CA and a server certificate for 127.0.0.1 signed by it (PEM files in `dir`), made
 * with the openssl command-line tool.
 */
export async function testCertificates(dir: string): Promise<{ ca: string; cert: string; key: string }> {
  const f = (n: string): string => join(dir, n)
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  await run('openssl', ['req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=verinode test CA'])
  await run('openssl', ['req', ...ec, '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=127.0.0.1'])
  writeFileSync(f('san.ext'), 'subjectAltName=IP:127.0.0.1\n')
  await run('openssl', ['x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('server.crt'), '-days', '2', '-extfile', f('san.ext')])
  return { ca: f('ca.pem'), cert: f('server.crt'), key: f('server.key') }
}

/** Runs `sql` (several statements allowed) as the private server's admin. */
export async function privateAdmin(server: PrivateServer, kind: 'postgres' | 'mysql', sql: string): Promise<void> {
  if (kind === 'postgres') {
    const c = new pg.Client({ connectionString: server.url })
    await c.connect()
    try {
      await c.query(sql)
    } finally {
      await c.end()
    }
  } else {
    const c = await mysql.createConnection({ uri: server.url, multipleStatements: true })
    try {
      await c.query(sql)
    } finally {
      await c.end()
    }
  }
}
