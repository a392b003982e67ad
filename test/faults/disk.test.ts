/**
 * Fault: the log's disk fills (docs/OPERATIONS.md "The log's disk fills"), reproduced for real.
 *
 * The provider's var/ (log.db and its WAL) is a small tmpfs of its own; a filler file takes the
 * rest of it, exchanges go on until the log fails closed (SQLite: SQLITE_FULL), and then:
 * reads of what was committed (signed checkpoint, inclusion and consistency proofs, an export)
 * must keep working while exchanges are refused; once the filler is removed the node must reopen
 * by itself (readiness, exchanges, an export that audits clean), with the closed time in a metric
 * and a log line. A tree changed while the log was closed must keep it closed.
 *
 * Needs `mount -t tmpfs`, i.e. root (CI runs as root). Without it the test fails and says so.
 */
import t, { type Test } from 'tap'
import { execFileSync } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { readFile, readdir, rmdir, symlink } from 'node:fs/promises'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import Database from 'better-sqlite3'
import { pino } from 'pino'
import { request } from 'undici'
import { federationFixture, type Fixture } from '../helper.js'
import { createPublicKey } from 'node:crypto'
import { loadPrivateKey, loadPublicKey } from '../../src/crypto/keys.js'
import { keyIdFor } from '../../src/federation/manifest.js'
import { signGetRequest } from '../../src/peers/member-auth.js'
import { noteVerifier, notePublicKey, openCheckpoint, parseNote, type Checkpoint } from '../../src/log/checkpoint.js'
import { leafHash, verifyConsistency, verifyInclusion } from '../../src/log/merkle.js'
import { logOrigin } from '../../src/log/peer-logs.js'
import { exportLog } from '../../src/node/export.js'
import { auditExport } from '../../src/audit/verify.js'

const PROVIDER = 'fj-amr'
const CONSUMER = 'fj-tax'
/** the provider's var/: room for the log at start and some exchanges, small enough to fill fast */
const TMPFS_KIB = 4096
const DEADLINE_MS = 60_000

const MOUNT_NEEDED =
  'this fault test puts a node\'s var/ on a small tmpfs (mount -t tmpfs) to fill its disk for real: ' +
  'run it as root, as CI does, or where mount(8) of a tmpfs is permitted'

/**
 * Mounts a tmpfs of `kib` KiB on a fresh folder outside the test's own (tap removes that one
 * first in teardown, which a mount point in it would stop) and returns it; unmounted and removed
 * in teardown, after `before`.
 */
function mountTmpfs(t: Test, kib: number, before: () => Promise<void>): string {
  const dir = mkdtempSync(join(tmpdir(), 'vn-disk-fault-var-'))
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${kib}k,mode=0700`, 'tmpfs', dir], { stdio: 'pipe' })
  } catch (e) {
    const err = e as { stderr?: Buffer; message?: string }
    rmSync(dir, { recursive: true, force: true })
    throw new Error(`${MOUNT_NEEDED} (mount failed: ${err.stderr?.toString().trim() || err.message})`)
  }
  t.teardown(async () => {
    try {
      await before()
    } finally {
      try {
        execFileSync('umount', [dir], { stdio: 'pipe' })
      } catch {
        execFileSync('umount', ['-l', dir], { stdio: 'pipe' }) // still busy: detach it all the same
      }
      rmSync(dir, { recursive: true, force: true })
    }
  })
  return dir
}

/** Writes zeros to `file` until the file system is full (ENOSPC). */
function fillDisk(file: string): number {
  const fd = openSync(file, 'w')
  let written = 0
  try {
    for (const size of [256 * 1024, 4096, 512]) {
      const block = Buffer.alloc(size)
      for (;;) {
        try {
          written += writeSync(fd, block)
        } catch (e) {
          if ((e as { code?: string }).code !== 'ENOSPC') throw e
          break
        }
      }
    }
  } finally {
    closeSync(fd)
  }
  return written
}

/** A folder on the ordinary disk for exports (removed in teardown). */
function exportsDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'vn-disk-fault-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, lines: readonly Record<string, unknown>[], deadlineMs = DEADLINE_MS): Promise<T> {
  const end = Date.now() + deadlineMs
  for (;;) {
    const v = await probe()
    if (v !== undefined) return v
    if (Date.now() > end) {
      const log = lines.filter((l) => /log|ALERT/.test(String(l.msg)) && !String(l.msg).startsWith('log entries')).slice(-8)
      throw new Error(`timed out waiting for ${what}; the node's last log lines: ${JSON.stringify(log)}`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
}

interface Harness {
  f: Fixture
  lines: Record<string, unknown>[]
  varDir: string
  filler: string
  ask: () => Promise<{ status: number; json: any }> // eslint-disable-line @typescript-eslint/no-explicit-any
  get: (path: string) => Promise<{ status: number; text: string }>
  metric: (name: string) => Promise<number | undefined>
  checkpoint: () => Promise<{ note: string; cp: Checkpoint }>
}

async function start(t: Test): Promise<Harness> {
  const lines: Record<string, unknown>[] = []
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString('utf8').split('\n')) if (l !== '') lines.push(JSON.parse(l) as Record<string, unknown>)
      done()
    },
  })
  let varDir = ''
  const started: { f?: Fixture } = {}
  const f = await federationFixture(t, {
    start: [PROVIDER, CONSUMER],
    logger: pino({ level: 'info' }, sink),
    beforeStart: async (id, nodeDir) => {
      if (id !== PROVIDER) return
      // var/ (made by init, still empty) becomes a link to the small file system.
      const link = join(nodeDir, 'var')
      if ((await readdir(link)).length > 0) throw new Error(`${link}: not empty before the mount`)
      // The nodes hold files on it: close them first (closing twice is harmless).
      varDir = mountTmpfs(t, TMPFS_KIB, async () => {
        for (const n of Object.values(started.f?.nodes ?? {})) await n.close()
      })
      await rmdir(link)
      await symlink(varDir, link)
    },
  })
  started.f = f
  const node = f.nodes[PROVIDER]!
  const origin = logOrigin(f.fed.federation, PROVIDER)
  const verifier = noteVerifier(origin, notePublicKey(await loadPublicKey(join(f.fed.dir, PROVIDER, 'keys', 'log.pub'))))
  const enterprise = f.fed.dataset.samples.enterprise.byStatus
  const uscc = Object.values(enterprise).flat()[0] as string
  const get = async (path: string): Promise<{ status: number; text: string }> => {
    const r = await request(`${node.publicUrl}${path}`)
    return { status: r.statusCode, text: await r.body.text() }
  }
  return {
    f,
    lines,
    varDir,
    filler: join(varDir, 'filler'),
    ask: () => f.verify(CONSUMER, { provider: PROVIDER, service: 'enterprise.status', purpose: 'taxpayer-registration', basis: 'Tax Collection Administration Law art. 15', subjects: [{ uscc }] }),
    get,
    async metric(name) {
      const text = await (await request(node.metricsUrl)).body.text()
      const line = text.split('\n').find((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
      return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1))
    },
    async checkpoint() {
      const r = await get('/v1/log/checkpoint')
      if (r.status !== 200) throw new Error(`GET /v1/log/checkpoint: HTTP ${r.status} ${r.text}`)
      return { note: r.text, cp: openCheckpoint(r.text, [verifier]).checkpoint }
    },
  }
}

/** Fills the disk and drives exchanges until the provider's log fails closed. */
async function fillUntilClosed(t: Test, h: Harness): Promise<void> {
  t.ok(fillDisk(h.filler) > 0, 'the filler took the rest of the tmpfs')
  let refused: { status: number; json: any } | undefined // eslint-disable-line @typescript-eslint/no-explicit-any
  for (let i = 0; i < 50 && refused === undefined; i++) {
    const r = await h.ask()
    if (r.status !== 200) refused = r
  }
  t.ok(refused, 'an exchange was refused once the disk was full')
  refusedByClosedLog(t, refused, 'the first refusal')
}

/**
 * What the consumer's application sees when the provider's log is closed: its own node's 502
 * wrapping the provider's unsigned 503 VN_ERR_LOG_UNAVAILABLE (so it is not read as its own log's).
 */
function refusedByClosedLog(t: Test, r: { status: number; json: any } | undefined, what: string): void { // eslint-disable-line @typescript-eslint/no-explicit-any
  t.same([r?.status, r?.json?.code, r?.json?.peer], [502, 'VN_ERR_PEER_ERROR', { member: PROVIDER, status: 503, code: 'VN_ERR_LOG_UNAVAILABLE' }], what)
}

t.test('fault: log disk full, then space freed', async (t) => {
  const h = await start(t)
  const node = h.f.nodes[PROVIDER]!
  const first = await h.checkpoint()
  // Exchanges committed after the last stored checkpoint: the head to serve while closed is newer.
  for (let i = 0; i < 3; i++) t.equal((await h.ask()).status, 200, 'exchange before the disk fills')
  await fillUntilClosed(t, h)

  // Closed: writes refused, readiness says why, the metric shows it.
  const ready = await until('readiness to report the log closed', async () => {
    const r = await h.get('/readyz')
    return r.status === 503 ? JSON.parse(r.text) as { checks: Record<string, { ok: boolean; detail?: string }> } : undefined
  }, h.lines)
  t.equal(ready.checks.log?.ok, false)
  t.match(ready.checks.log?.detail, /closed since .*writes refused/)
  t.equal(ready.checks.dataSource?.ok, true, 'only the log is reported')
  t.equal(await until('verinode_log_closed 1', async () => ((await h.metric('verinode_log_closed')) === 1 ? 1 : undefined), h.lines), 1)
  t.ok(h.lines.some((l) => l.msg?.toString().startsWith('log closed')), 'the closing is logged')
  const closedLine = h.lines.find((l) => l.msg?.toString().startsWith('log closed'))
  t.match(JSON.stringify(closedLine), /SQLITE_FULL/, 'the log line names the file system\'s refusal')
  refusedByClosedLog(t, await h.ask(), 'exchanges are still refused')

  // Reads of committed data keep working: the signed head, proofs, an export.
  const size = await node.node.log.size()
  const head = await h.checkpoint()
  t.equal(head.cp.size, size, 'GET /v1/log/checkpoint: the signed head of everything committed')
  t.ok(head.cp.size > first.cp.size, 'newer than the last stored checkpoint')
  const cons = await h.get(`/v1/log/proof/consistency?first=${first.cp.size}&second=${head.cp.size}`)
  t.equal(cons.status, 200, cons.text)
  verifyConsistency(first.cp.size, head.cp.size, (JSON.parse(cons.text) as { proof: string[] }).proof.map((p) => Buffer.from(p, 'base64')), first.cp.rootHash, head.cp.rootHash)
  const last = head.cp.size - 1
  const incl = await h.get(`/v1/log/proof/inclusion?index=${last}&size=${head.cp.size}`)
  t.equal(incl.status, 200, incl.text)
  verifyInclusion(last, head.cp.size, leafHash(await node.node.log.leaf(last)), (JSON.parse(incl.text) as { proof: string[] }).proof.map((p) => Buffer.from(p, 'base64')), head.cp.rootHash)
  t.pass('consistency and inclusion proofs verify against the head served while closed')
  const during = await exportLog(h.f.fed.nodes[PROVIDER]!.configPath, join(exportsDir(t), 'closed'))
  t.equal(during.size, head.cp.size, 'an export while closed holds every committed leaf')
  const duringAudit = await auditExport(during.dir)
  t.ok(duringAudit.ok, JSON.stringify(duringAudit.findings.filter((x) => x.severity === 'error')))
  // A member reads leaves (GET /v1/log/entries, signed by the consumer's message key).
  const key = await loadPrivateKey(join(h.f.fed.dir, CONSUMER, 'keys', 'message.key'))
  const entriesPath = `/v1/log/entries?start=${last - 1}&end=${head.cp.size}`
  const entries = await request(`${node.publicUrl}${entriesPath}`, {
    headers: { authorization: signGetRequest({ kid: `${CONSUMER}#${keyIdFor(createPublicKey(key))}`, privateKey: key }, CONSUMER, PROVIDER, entriesPath, Date.now()) },
  })
  const served = await entries.body.json() as { entries: string[] }
  t.equal(entries.statusCode, 200, 'GET /v1/log/entries answers while closed')
  t.same(served.entries, [Buffer.from(await node.node.log.leaf(last - 1)).toString('utf8'), Buffer.from(await node.node.log.leaf(last)).toString('utf8')], 'GET /v1/log/entries serves committed leaves while closed')
  // A witness cosigns the head served while closed: the cosignature is held with it.
  const witnessed = await h.f.nodes[CONSUMER]!.node.peerLogs.witness(PROVIDER)
  t.ok(witnessed.cosigned, 'the consumer witnessed and cosigned the head served while closed')
  const cosignedHead = await h.get('/v1/log/checkpoint')
  t.equal(parseNote(cosignedHead.text).signatures.length, 2, 'the head served while closed carries the cosignature')

  // Space freed: the node reopens by itself.
  rmSync(h.filler)
  const back = await until('readiness back', async () => ((await h.get('/readyz')).status === 200 ? true : undefined), h.lines)
  t.ok(back, '/readyz is 200 again without a restart')
  const reopened = h.lines.find((l) => /^log reopened after \d+(\.\d)? s$/.test(String(l.msg)))
  t.ok(reopened, 'log line "log reopened after N s"')
  t.ok(Number(reopened?.closedSeconds) > 0, 'it says how long the log was closed')
  t.equal(await h.metric('verinode_log_closed'), 0)
  t.equal(await h.metric('verinode_log_reopens_total'), 1)
  t.ok((await h.metric('verinode_log_closed_seconds_total') ?? 0) > 0, 'verinode_log_closed_seconds_total counts the closed time')
  for (let i = 0; i < 3; i++) t.equal((await h.ask()).status, 200, 'exchanges succeed again')

  const after = await h.checkpoint()
  t.equal(after.cp.size, await node.node.log.size())
  t.ok(after.cp.size > head.cp.size)
  const exported = await exportLog(h.f.fed.nodes[PROVIDER]!.configPath, join(exportsDir(t), 'after'))
  const report = await auditExport(exported.dir)
  t.ok(report.ok, JSON.stringify(report.findings.filter((x) => x.severity === 'error')))
  t.equal(report.leaves, exported.size)
  const notes = await readdir(join(exported.dir, 'checkpoints'))
  t.ok(notes.includes(`${String(head.cp.size).padStart(12, '0')}.note`), 'the head signed while closed was stored on reopening')
  const stored = parseNote(await readFile(join(exported.dir, 'checkpoints', `${String(head.cp.size).padStart(12, '0')}.note`), 'utf8'))
  t.equal(stored.signatures.length, 2, 'with the cosignature received while closed')
})

t.test('fault: log disk full, tree cut back before space returns: the log stays closed', async (t) => {
  const h = await start(t)
  const node = h.f.nodes[PROVIDER]!
  for (let i = 0; i < 2; i++) t.equal((await h.ask()).status, 200)
  await fillUntilClosed(t, h)
  await until('readiness to report the log closed', async () => ((await h.get('/readyz')).status === 503 ? true : undefined), h.lines)
  const head = await h.checkpoint()
  t.equal(head.cp.size, await node.node.log.size())

  // In one synchronous step (nothing of the node runs in between): space back, and the last leaf
  // gone from the stored log, as a rollback or a careless repair would leave it.
  rmSync(h.filler)
  const db = new Database(join(h.varDir, 'log.db'))
  try {
    db.prepare('DELETE FROM leaves WHERE idx = ?').run(head.cp.size - 1)
  } finally {
    db.close()
  }

  const alert = await until('the mismatch alert', async () => h.lines.find((l) => String(l.msg).startsWith('ALERT: the stored log tree does not match')), h.lines)
  t.equal(alert.code, 'VN_ERR_LOG_TREE_MISMATCH')
  t.match(String(alert.detail), /holds \d+ leaves/)
  const ready = await h.get('/readyz')
  t.equal(ready.status, 503, 'stays not ready')
  t.match(ready.text, /VN_ERR_LOG_TREE_MISMATCH|does not match the last signed checkpoint/)
  t.equal(await h.metric('verinode_log_closed'), 1)
  t.equal(await h.metric('verinode_log_reopens_total'), 0)
  refusedByClosedLog(t, await h.ask(), 'exchanges stay refused')
  const still = await h.checkpoint()
  t.equal(still.cp.size, head.cp.size, 'the head served is still the one signed, not the cut-back tree')
  t.notOk(h.lines.some((l) => String(l.msg).startsWith('log reopened')), 'never reopened')
})
