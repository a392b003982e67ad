/**
 * Start-up errors name the real cause (issue 14 §4): a config naming another member's keys is a
 * config error naming the owner, an unknown member lists the manifest's members, a missing SQLite
 * file is named by its path, and the ID 12345 is a format error, not a checksum error.
 */
import t from 'tap'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pino } from 'pino'
import { federationFixture } from '../helper.js'
import { openNode } from '../../src/node/runtime.js'
import { rotateKey } from '../../src/node/key-rotation.js'

t.test('start-up errors name the real cause', async (t) => {
  const f = await federationFixture(t, { start: ['fj-psb', 'fj-tax'] })
  const variant = async (id: string, name: string, edit: (c: Record<string, unknown>) => Record<string, unknown>): Promise<string> => {
    const dir = join(f.fed.dir, id)
    const cfg = JSON.parse(await readFile(join(dir, 'verinode.json'), 'utf8')) as Record<string, unknown>
    const file = join(dir, `${name}.json`)
    await writeFile(file, JSON.stringify(edit({ ...cfg, dataDir: `var-${name}` })))
    return file
  }
  const open = (file: string): Promise<unknown> => openNode(file, { logger: pino({ level: 'silent' }), env: {}, checkpointEveryMs: 0, witnessEveryMs: 0, housekeepingEveryMs: 0, sourceCheckEveryMs: 0 })
    .then(async (n) => { await n.close(); return undefined }, (e: unknown) => e)

  const wrongMember = await open(await variant('fj-tax', 'wrong-member', (c) => ({ ...c, member: 'fj-psb', services: [], agreements: [] })))
  t.match(wrongMember, { code: 'VN_ERR_CONFIG_INVALID', detail: /^member: the config says fj-psb, but keys\/message\.key is a key of fj-tax/ }, 'another member\'s key: the member id is wrong, not the key file')

  const rotate = await rotateKey(await variant('fj-tax', 'wrong-member-rotate', (c) => ({ ...c, member: 'fj-psb', services: [], agreements: [] })), 'message', { env: {} }).then(() => undefined, (e: unknown) => e)
  t.match(rotate, { code: 'VN_ERR_CONFIG_INVALID', detail: /^member: the config says fj-psb, but keys\/message\.key is a key of fj-tax/ }, 'keys rotate says the same')

  const unknown = await open(await variant('fj-tax', 'unknown-member', (c) => ({ ...c, member: 'fj-nobody' })))
  t.match(unknown, { code: 'VN_ERR_FED_UNKNOWN_MEMBER', detail: /the config says fj-nobody, which manifest seq \d+ does not list \(members: .*fj-tax/ })

  const missing = await open(await variant('fj-psb', 'missing-data', (c) => ({ ...c, dataSource: { kind: 'sqlite', path: 'data/not-there.sqlite' } })))
  t.match(missing, { code: 'VN_ERR_SOURCE_UNAVAILABLE', detail: /^dataSource\.path "data\/not-there\.sqlite" \(.*fj-psb\/data\/not-there\.sqlite\): sqlite: data file missing/ }, 'the missing file is named')

  const r = await f.verify('fj-tax', { provider: 'fj-psb', service: 'identity.match', purpose: 'taxpayer-registration', basis: 'Tax Collection Administration Law art. 15', subjects: [{ id: '12345', name: '张三' }] })
  t.match([r.status, r.json], [400, { code: 'VN_ERR_SUBJECT_ID_FORMAT', detail: 'subjects[0].id: must be 18 characters' }], '12345 is a format error')
})
