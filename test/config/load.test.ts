import t from 'tap'
import { join } from 'node:path'
import { parseConfig, loadConfig } from '../../src/config/load.js'

const base = { member: 'fj-tax' }

/** A config with one service (a membership service unless `svc` says otherwise). */
const svcConfig = (svc: Record<string, unknown>): Record<string, unknown> => ({
  ...base,
  dataSource: { kind: 'sqlite', path: 'x' },
  services: [{ id: 'a.b', title: { en: 'x' }, kind: 'membership', fields: { id: { kind: 'uscc', key: true } }, lookup: 'SELECT 1', ...svc }],
})

t.test('defaults and env overrides', async (t) => {
  const c = parseConfig(base, { VERINODE_LISTEN_PORT: '9000', VERINODE_LOG_LEVEL: 'warn', VERINODE_INSECURE: 'true' })
  t.equal(c.listen.port, 9000)
  t.equal(c.logLevel, 'warn')
  t.equal(c.insecure, true)
  t.equal(c.limits.skewMs, 60_000)
})

t.test('bad configs are refused with every problem named by path', async (t) => {
  const bad: Array<[string, unknown, RegExp]> = [
    ['not an object', [], /must be a JSON object/],
    ['bad member id', { member: 'FJ TAX' }, /member/],
    ['unknown key', { ...base, colour: 'blue' }, /colour|Unrecognized/],
    ['port out of range', { ...base, listen: { port: 70000 } }, /listen\.port/],
    ['env port not a number', base, /^(?!.*eighty).*VERINODE_LISTEN_PORT: not a port number/],
    ['env local port out of range', base, /VERINODE_LOCAL_PORT: not a port number/],
    ['env metrics port negative', base, /VERINODE_METRICS_PORT: not a port number/],
    ['metrics port out of range', { ...base, metrics: { port: 70000 } }, /metrics\.port/],
    ['service without data source', { ...base, services: [{ id: 'a.b', title: { en: 'x' }, kind: 'membership', fields: { id: { kind: 'uscc', key: true } }, lookup: 'SELECT 1' }] }, /dataSource: required/],
    ['service without key field', { ...base, dataSource: { kind: 'sqlite', path: 'x' }, services: [{ id: 'a.b', title: { en: 'x' }, kind: 'membership', fields: { id: { kind: 'uscc' } }, lookup: 'SELECT 1' }] }, /key: true/],
    ['agreement for unknown service', {
      ...base,
      agreements: [{ id: 'a1', consumer: 'fj-psb', services: ['x.y'], purposes: ['p'], basis: 'b', validFrom: '2026-01-01T00:00:00Z', validUntil: '2027-01-01T00:00:00Z', dailyQuota: 1, modes: ['plain'] }],
    }, /unknown service x\.y/],
    ['agreement ending before it starts', {
      ...base,
      agreements: [{ id: 'a1', consumer: 'fj-psb', services: ['x.y'], purposes: ['p'], basis: 'b', validFrom: '2027-01-01T00:00:00Z', validUntil: '2026-01-01T00:00:00Z', dailyQuota: 1, modes: ['plain'] }],
    }, /validUntil/],
    ['unknown data source kind', { ...base, dataSource: { kind: 'oracle', path: 'x' } }, /dataSource/],
    // faults that would otherwise surface per request (issue 12 §7): refused at start-up
    ['tiers not lowest first', svcConfig({ kind: 'tier', tiers: [{ id: 'high', min: 100 }, { id: 'low', min: 0 }] }), /tiers\.1\.min: must be above/],
    ['two tiers with one min', svcConfig({ kind: 'tier', tiers: [{ id: 'a', min: 0 }, { id: 'b', min: 0 }] }), /tiers\.1\.min/],
    ['duplicate tier id', svcConfig({ kind: 'tier', tiers: [{ id: 'a', min: 0 }, { id: 'a', min: 5 }] }), /duplicate tier a/],
    ['duplicate status', svcConfig({ kind: 'status', statuses: ['open', 'open'] }), /statuses: duplicates/],
    ['he mode without he.valueLookup', svcConfig({ kind: 'threshold', modes: ['plain', 'he'] }), /he\.valueLookup: required for he mode/],
    ['he mode on a membership service', svcConfig({ modes: ['he'], he: { valueLookup: 'SELECT 1 AS value' } }), /he mode answers threshold and tier services, not membership/],
  ]
  for (const [name, raw, re] of bad) {
    const envs: Record<string, Record<string, string>> = {
      'env port not a number': { VERINODE_LISTEN_PORT: 'eighty' },
      'env local port out of range': { VERINODE_LOCAL_PORT: '99999' },
      'env metrics port negative': { VERINODE_METRICS_PORT: '-1' },
    }
    const env = envs[name] ?? {}
    t.throws(() => parseConfig(raw, env), { code: 'VN_ERR_CONFIG_INVALID', message: re }, name)
  }
})

t.test('well-formed tiers, statuses and he services pass', async (t) => {
  t.doesNotThrow(() => parseConfig(svcConfig({ kind: 'tier', tiers: [{ id: 'low', min: 0 }, { id: 'high', min: 100 }], modes: ['plain', 'he'], he: { valueLookup: 'SELECT 1 AS value' } })))
  t.doesNotThrow(() => parseConfig(svcConfig({ kind: 'status', statuses: ['open', 'closed'] })))
})

t.test('files: unreadable and not JSON', async (t) => {
  const dir = t.testdir({ 'bad.json': '{ "member": ', 'ok.json': JSON.stringify(base) })
  await t.rejects(loadConfig(join(dir, 'missing.json'), {}), { code: 'VN_ERR_CONFIG_INVALID' })
  await t.rejects(loadConfig(join(dir, 'bad.json'), {}), { code: 'VN_ERR_CONFIG_INVALID', message: /not valid JSON/ })
  const ok = await loadConfig(join(dir, 'ok.json'), {})
  t.equal(ok.path('var'), join(dir, 'var'))
})

t.test('local API tokens: stored as SHA-256 or SM3, exactly one, and either authenticates', async (t) => {
  const { createHash } = await import('node:crypto')
  const { appTokenAuthenticator } = await import('../../src/node/app-tokens.js')
  const hex = (alg: string, s: string): string => createHash(alg).update(s).digest('hex')
  const apps = (a: Record<string, unknown>): Record<string, unknown> => ({ ...base, local: { apps: [{ name: 'x', ...a }] } })
  const c = parseConfig(apps({ tokenSm3: hex('sm3', 'vnt_sm') }), {})
  t.equal(c.local.apps[0]?.tokenSm3, hex('sm3', 'vnt_sm'))
  t.throws(() => parseConfig(apps({ tokenSha256: hex('sha256', 'a'), tokenSm3: hex('sm3', 'a') }), {}), /exactly one of tokenSha256 and tokenSm3/, 'both: refused')
  t.throws(() => parseConfig(apps({}), {}), /exactly one of tokenSha256 and tokenSm3/, 'neither: refused')
  t.throws(() => parseConfig(apps({ tokenSm3: 'ABC' }), {}), /64 lower-case hex digits \(SM3\)/, 'not a digest: refused')

  const auth = appTokenAuthenticator([{ name: 'intl', tokenSha256: hex('sha256', 'vnt_a') }, { name: 'sm', tokenSm3: hex('sm3', 'vnt_b') }])
  t.equal(auth('vnt_a'), 'intl', 'a SHA-256-stored token')
  t.equal(auth('vnt_b'), 'sm', 'an SM3-stored token')
  t.throws(() => auth('vnt_c'), { code: 'VN_ERR_LOCAL_UNAUTHORIZED' }, 'an unknown token')
  // The SHA-256 of the sm app's token is not accepted in place of its SM3 (and vice versa).
  const swapped = appTokenAuthenticator([{ name: 'sm', tokenSm3: hex('sha256', 'vnt_b') }])
  t.throws(() => swapped('vnt_b'), { code: 'VN_ERR_LOCAL_UNAUTHORIZED' }, 'a tokenSm3 holding a SHA-256 does not match')
})
