/**
 * `verinode doctor`: checks a node's setup without starting it and explains each finding with a
 * fix. Each check is one line (OK or FAIL); a check whose input an earlier one could not provide is
 * skipped and says so. Reads only, except a trial file created and removed in the data folder.
 * Nothing personal is read or printed: the data source is only compiled against (no row is read).
 */
import type { KeyObject } from 'node:crypto'
import { access, mkdir, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Agent, request } from 'undici'
import { loadConfig, type LoadedConfig } from '../config/load.js'
import { loadPrivateKey, loadPublicKey, loadSecretFile, publicKeyToB64u } from '../crypto/keys.js'
import { isVnError } from '../errors.js'
import { checkServiceStatements } from '../exchange/service-checks.js'
import { checkOffer } from '../policy/sharing.js'
import type { Federation } from '../federation/federation.js'
import { FederationHolder } from '../federation/federation.js'
import { oprfSeedFile } from '../oprf/tagset-service.js'
import { openDataSource } from '../sources/index.js'
import { DEFAULT_PG_LOG_SCHEMA, probePgLog } from '../log/pg-store.js'
import { pinnedConnector, type PeerTlsOptions } from '../peers/tls-pins.js'
import { nodeDataFiles, nodeKeyFiles, NODE_PID_FILE } from './files.js'
import { nodeLogLocation } from './log-store.js'
import { assertPlainListenerAllowed, readTlsFiles, tlsFilesOf } from './tls.js'
import { dataSourceConfig, declaredStatements } from './source-watch.js'

export interface DoctorCheck {
  /** which check: config, key-files, manifest, keys-match, data-source, log, peer <id>, clock */
  check: string
  ok: boolean
  /** what was found (never personal data) */
  detail: string
  /** what to do about a failure */
  fix?: string
}

export interface DoctorOptions {
  env?: Record<string, string | undefined>
  now?: () => number
  /** per-peer timeout, ms (default 5 s) */
  peerTimeoutMs?: number
  /** warn when the manifest expires within this many ms (default 7 days) */
  manifestWarnMs?: number
}

const DAY = 86_400_000

function why(e: unknown): string {
  if (isVnError(e)) return `${e.code}: ${e.detail ?? e.message}`
  return (e as Error).message
}

/** Runs every check; never throws for a finding. */
export async function runDoctor(configPath: string, opts: DoctorOptions = {}): Promise<DoctorCheck[]> {
  const now = opts.now ?? Date.now
  const out: DoctorCheck[] = []
  const ok = (check: string, detail: string): void => { out.push({ check, ok: true, detail }) }
  const fail = (check: string, detail: string, fix: string): void => { out.push({ check, ok: false, detail, fix }) }

  // 1. The config file.
  let loaded: LoadedConfig
  try {
    loaded = await loadConfig(configPath, opts.env ?? process.env)
    ok('config', `${configPath} is valid (member ${loaded.config.member}, ${loaded.config.services.length} services, ${loaded.config.agreements.length} agreements)`)
  } catch (e) {
    fail('config', why(e), `edit ${configPath} (fields: docs/OPERATIONS.md "Configuration"); every problem is listed above by path`)
    return out
  }
  const cfg = loaded.config
  const self = cfg.member

  // 2. Key files: present, private ones 0600, parseable.
  const keysDir = loaded.path(cfg.keysDir)
  const kf = nodeKeyFiles(keysDir)
  const keyProblems: string[] = []
  const fixes: string[] = []
  const privateKey = async (file: string): Promise<KeyObject | undefined> => {
    try {
      return await loadPrivateKey(file)
    } catch (e) {
      keyProblems.push(why(e))
      fixes.push(/too permissive/.test(why(e)) ? `chmod 600 ${file}` : `restore ${file} from the key backup (or verinode keys rotate)`)
      return undefined
    }
  }
  const messageKey = await privateKey(kf.messageKey)
  const logKey = await privateKey(kf.logKey)
  const secrets = [kf.evidenceKey]
  // oprf.seed is made at the first start that needs it: only a file that is there is checked.
  const seed = oprfSeedFile(keysDir)
  if (cfg.services.some((s) => s.modes.includes('oprf')) && await stat(seed).then(() => true, () => false)) secrets.push(seed)
  for (const file of secrets) {
    try {
      await loadSecretFile(file)
    } catch (e) {
      keyProblems.push(why(e))
      fixes.push(/too permissive/.test(why(e)) ? `chmod 600 ${file}` : `restore ${file} from the key backup`)
    }
  }
  if (keyProblems.length === 0) ok('key-files', `${keysDir}: message.key, log.key, ${secrets.length > 1 ? 'evidence.key, oprf.seed' : 'evidence.key'} present, mode 0600`)
  else fail('key-files', keyProblems.join('; '), fixes.join('; '))

  // 3. The manifest: signature under the trust anchor, expiry.
  let fed: Federation | undefined
  const manifestPath = loaded.path(cfg.federation.manifest)
  const rootPath = loaded.path(cfg.federation.rootKey)
  try {
    const root = await loadPublicKey(rootPath)
    const holder = await FederationHolder.open(manifestPath, root, now())
    fed = holder.get(now())
    const left = fed.exp - now()
    const days = (left / DAY).toFixed(1)
    if (left < (opts.manifestWarnMs ?? 7 * DAY)) {
      fail('manifest', `${manifestPath}: seq ${fed.seq}, signed by the root key, expires ${new Date(fed.exp).toISOString()} (in ${days} days)`, 'ask the federation authority for a freshly signed manifest now; the node stops exchanging at expiry')
    } else {
      ok('manifest', `${manifestPath}: seq ${fed.seq}, signed by the root key, expires ${new Date(fed.exp).toISOString()} (in ${days} days)`)
    }
  } catch (e) {
    fail('manifest', why(e), `install the authority's signed manifest at ${manifestPath} and its trust anchor at ${rootPath}; check them with verinode federation verify --manifest ${manifestPath} --root ${rootPath}`)
  }

  // 4. The key files match this member's keys in the manifest.
  if (fed === undefined || messageKey === undefined || logKey === undefined) {
    fail('keys-match', 'skipped: needs readable key files and a valid manifest (above)', 'fix the checks above first')
  } else if (!fed.has(self)) {
    fail('keys-match', `the manifest (seq ${fed.seq}) does not list member ${self} (members: ${fed.members().map((m) => m.id).join(', ')})`, `check "member" in the config, or send keys/message.pub and keys/log.pub to the authority for federation add-member --id ${self}`)
  } else {
    const m = fed.member(self)
    const msg = publicKeyToB64u(messageKey)
    const log = publicKeyToB64u(logKey)
    const t = now()
    const msgOk = [...m.messageKeys.values()].some((k) => k.x === msg && t >= k.nbf && (k.exp === undefined || t < k.exp))
    const logOk = [...m.logKeys.values()].some((k) => k.x === log)
    const owner = fed.members().find((o) => o.id !== self && [...o.messageKeys.values()].some((k) => k.x === msg))
    if (msgOk && logOk) ok('keys-match', `keys/message.key and keys/log.key are ${self}'s keys in manifest seq ${fed.seq}`)
    else if (owner !== undefined) fail('keys-match', `keys/message.key is a message key of ${owner.id}, but the config says member ${self}`, `set "member": "${owner.id}" in the config, or use ${self}'s key files`)
    else {
      fail('keys-match', [msgOk ? undefined : `keys/message.key is not a message key of ${self} valid now`, logOk ? undefined : `keys/log.key is not a log key of ${self}`].filter((x) => x !== undefined).join('; ') + ` (manifest seq ${fed.seq})`,
        `send the public key to the authority (verinode federation add-key --member ${self} ...) and install the manifest it signs`)
    }
  }

  // 4a. The sharing rules (docs/GOVERNANCE.md): what the node offers may be offered under this manifest.
  if (fed !== undefined) {
    try {
      checkOffer(self, cfg.services, fed.manifest.governance, cfg.agreements.map((a) => a.id))
      const g = fed.manifest.governance
      ok('sharing-rules', `${cfg.services.length} service(s) may be offered under manifest seq ${fed.seq} (${g === undefined ? 'no sources named, no negative list' : `${g.sources.length} source(s) named, ${g.negativeList.length} negative-list item(s)`})`)
    } catch (e) {
      fail('sharing-rules', why(e), 'remove or regrade the service named (docs/GOVERNANCE.md), or ask the authority about the item\'s source and the negative list')
    }
  }

  // 4b. TLS: key and certificate belong together, in date, and the key is pinned for this member.
  const tlsFiles = tlsFilesOf(cfg, (p) => loaded.path(p))
  let peerTls: PeerTlsOptions | undefined
  if (tlsFiles === undefined) {
    try {
      assertPlainListenerAllowed(cfg.listen.host, cfg.insecure)
      ok('tls', `no "tls": plain HTTP on ${cfg.listen.host} (loopback or "insecure": for tests only, never between departments)`)
    } catch (e) {
      fail('tls', why(e), 'run verinode init again, or add "tls" with a key and certificate (docs/OPERATIONS.md "TLS between nodes")')
    }
  } else {
    try {
      const t = await readTlsFiles(tlsFiles)
      const at = now()
      const left = t.notAfter - at
      if (at < t.notBefore || left <= 0) fail('tls', `${tlsFiles.cert} is valid from ${t.cert.validFrom} to ${t.cert.validTo}, not now`, 'make a new certificate: verinode keys rotate --which tls')
      else if (fed === undefined) fail('tls', `pin ${t.pin}: not compared with the manifest (it did not load, above)`, 'fix the manifest first')
      else if (fed.memberByTlsPin(t.pin) !== self) fail('tls', `the TLS key's pin ${t.pin} is not listed for ${self} in manifest seq ${fed.seq}`, `send the pin to the authority (federation add-tls-pin --member ${self} --pin ${t.pin}) and install the manifest it signs`)
      else if (left < 7 * DAY) fail('tls', `pin ${t.pin.slice(0, 16)}... is pinned for ${self}, but the certificate ends ${t.cert.validTo} (in ${(left / DAY).toFixed(1)} days)`, 'rotate it now: verinode keys rotate --which tls, then have the new pin listed')
      else ok('tls', `pin ${t.pin.slice(0, 16)}... is pinned for ${self} in manifest seq ${fed.seq}; certificate valid until ${t.cert.validTo}`)
      const f = fed
      if (f !== undefined) peerTls = { cert: t.certPem, key: t.keyPem, now, pinsFor: (origin) => f.tlsPinsForOrigin(origin) }
    } catch (e) {
      fail('tls', why(e), `restore ${tlsFiles.key} and ${tlsFiles.cert} from the key backup (key mode 0600), or make new ones with verinode keys rotate --which tls`)
    }
  }

  // 5. The data source: reachable, every statement read-only and fitting its service.
  if (cfg.dataSource === undefined) ok('data-source', 'none configured (this node only asks)')
  else {
    try {
      const source = await openDataSource(dataSourceConfig(cfg.dataSource, loaded), { statements: declaredStatements(cfg) })
      try {
        await checkServiceStatements(cfg.services, source)
      } finally {
        await source.close()
      }
      ok('data-source', `${cfg.dataSource.kind} reachable; ${Object.keys(declaredStatements(cfg)).length} statements compile, read-only, fit their services`)
    } catch (e) {
      const code = isVnError(e) ? e.code : ''
      const fix = code === 'VN_ERR_SOURCE_UNAVAILABLE'
        ? (cfg.dataSource.kind === 'sqlite' ? `put the SQLite file at ${loaded.path(cfg.dataSource.path)} (dataSource.path is relative to the config file)` : 'check the server, host, port, account and password (docs/OPERATIONS.md "Connecting to PostgreSQL or MySQL/MariaDB")')
        : code === 'VN_ERR_SOURCE_SQL_INVALID' ? 'fix the statement named above (a typo, or a table or column that does not exist in this database)'
          : code === 'VN_ERR_SOURCE_NOT_READONLY' ? 'the statement named above must be one SELECT that modifies nothing'
            : 'fix the services named above (docs/OPERATIONS.md "Configuration")'
      fail('data-source', why(e), fix)
    }
  }

  // 6. The log: its folder writable, the database file writable if present, no node holding it.
  // (A PostgreSQL log is opened, checked and, if need be, refused at start-up: verinode log pg-sql
  // prints what its role needs.)
  const dataDir = loaded.path(cfg.dataDir)
  const logAt = nodeLogLocation(cfg, loaded)
  if (logAt.kind === 'postgres') {
    const schema = logAt.conn.schema ?? DEFAULT_PG_LOG_SCHEMA
    const grants = `have the database owner run what verinode log pg-sql --schema ${schema} --role <the node's role> prints`
    try {
      const p = await probePgLog(logAt.conn)
      if (!p.tables) ok('log', `PostgreSQL answers; schema ${schema} has no log tables yet (the node creates them at its first start if its role may; otherwise ${grants})`)
      else if (!p.writable) fail('log', `PostgreSQL answers, but this account may not append to the log in schema ${schema}`, grants)
      else ok('log', `PostgreSQL log in schema ${schema}: reachable, this account may append, ${p.size ?? 0} leaves`)
    } catch (e) {
      fail('log', why(e), 'check the log\'s server, host, port, account and password (docs/OPERATIONS.md "The log on PostgreSQL, and replicas")')
    }
  } else try {
    await mkdir(dataDir, { recursive: true, mode: 0o700 })
    const probe = join(dataDir, `.doctor-${process.pid}`)
    await writeFile(probe, 'x', { flag: 'wx' })
    await rm(probe, { force: true })
    const db = nodeDataFiles(dataDir).log
    const hasDb = await stat(db).then(() => true, () => false)
    if (hasDb) await access(db, 2 /* W_OK */)
    const running = await stat(join(dataDir, NODE_PID_FILE)).then(() => true, () => false)
    ok('log', `${dataDir} is writable${hasDb ? ', log.db writable' : ' (no log.db yet: created at first start)'}${running ? '; a node is running on it (node.pid)' : ''}`)
  } catch (e) {
    fail('log', `${dataDir}: ${(e as NodeJS.ErrnoException).code ?? why(e)}`, `make ${dataDir} a folder writable by the node's user (chown; mode 0700) with free space`)
  }

  // 7. Peers: every department in the manifest answers /healthz; 8. their clocks.
  if (fed === undefined) {
    fail('peers', 'skipped: needs a valid manifest (above)', 'fix the manifest first')
    return out
  }
  const skews: { peer: string; ms: number }[] = []
  const peers = fed.departments().filter((m) => m.id !== self)
  for (const p of peers) {
    const check = `peer ${p.id}`
    if (p.endpoint === undefined) {
      fail(check, 'no endpoint in the manifest', 'ask the authority to set its endpoint')
      continue
    }
    const started = now()
    // An https peer is reached as the node reaches it: this node's certificate, the peer's pinned.
    const dispatcher = p.endpoint.startsWith('https:') && peerTls !== undefined ? new Agent({ connect: pinnedConnector(peerTls, opts.peerTimeoutMs ?? 5000) }) : undefined
    try {
      const res = await request(new URL('/healthz', p.endpoint), { headersTimeout: opts.peerTimeoutMs ?? 5000, bodyTimeout: opts.peerTimeoutMs ?? 5000, ...(dispatcher === undefined ? {} : { dispatcher }) })
      await res.body.dump()
      const rtt = now() - started
      const date = res.headers.date
      if (typeof date === 'string' && !Number.isNaN(Date.parse(date))) skews.push({ peer: p.id, ms: Date.parse(date) + rtt / 2 - now() })
      if (res.statusCode === 200) ok(check, `${p.endpoint} answered in ${rtt} ms`)
      else fail(check, `${p.endpoint} answered HTTP ${res.statusCode}`, `ask ${p.id}'s operator: its node is up but not healthy`)
    } catch (e) {
      const code = (e as { code?: string }).code ?? 'error'
      if (code.startsWith('VN_ERR_TLS_')) {
        fail(check, `${p.endpoint}: ${why(e)}`, `compare ${p.id}'s pin (verinode federation verify --json) with the certificate its node serves; the authority lists the right one`)
        continue
      }
      fail(check, `${p.endpoint}: cannot connect (${code})`, `check the endpoint in the manifest, the network and firewall between the nodes, and that ${p.id}'s node runs`)
    } finally {
      await dispatcher?.close()
    }
  }
  if (peers.length === 0) ok('peers', 'no other department in the manifest')
  // HTTP dates have a resolution of one second: a skew under 1.5 s cannot be told from none.
  const allowed = cfg.limits.skewMs
  const worst = skews.reduce<{ peer: string; ms: number } | undefined>((w, s) => (w === undefined || Math.abs(s.ms) > Math.abs(w.ms) ? s : w), undefined)
  if (peers.length === 0) ok('clock', 'no peer to compare with; keep NTP running')
  else if (worst === undefined) fail('clock', 'no peer answered with a Date header: skew not measured', 'run NTP (chrony, systemd-timesyncd) and check again when a peer answers')
  else if (Math.abs(worst.ms) > allowed / 2) fail('clock', `${worst.peer}'s clock differs from this one by ${(worst.ms / 1000).toFixed(1)} s (limits.skewMs ${allowed} ms refuses requests beyond it)`, 'synchronise the clocks with NTP on both machines')
  else ok('clock', `within ${Math.max(1, Math.ceil(Math.abs(worst.ms) / 1000))} s of ${skews.length} peer(s) (limit ${allowed / 1000} s)`)
  return out
}
