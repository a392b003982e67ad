/**
 * Rows → records on the workers (src/oprf/tagset-rows.ts): the packed rows give the same inputs,
 * shard hashes and prefixes as canonicalizing in place (both profiles), a pool build of a service
 * writes the same files as an in-thread one, and a build of deferred chunks resumes from its runs.
 */
import t from 'tap'
import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { useProfile } from '../../src/crypto/profile.js'
import { generateKeyPair } from '../../src/crypto/oprf.js'
import { makeResidentId } from '../../src/demo/synthetic.js'
import { canonicalizeField } from '../../src/protocol/canonicalize.js'
import { createOprfPool } from '../../src/oprf/oprf-pool.js'
import { evaluatePrefixes } from '../../src/oprf/prefixes.js'
import { buildTagSetFiles } from '../../src/oprf/tagset-build.js'
import { evaluateRows, packRows, poolEvaluateRows, rowRecords, rowsDigest, rowSpec } from '../../src/oprf/tagset-rows.js'
import { buildServiceTagSet, rowInput, shardFilePath, tagSetFile, type OprfProviderService, type OprfServiceShape } from '../../src/oprf/tagset-service.js'
import { oprfInput, type BuildChunk } from '../../src/oprf/tagset.js'
import { shardHash } from '../../src/oprf/tagshards.js'
import type { DataSource, Row } from '../../src/sources/types.js'

t.teardown(() => useProfile('intl'))

const MATCH: OprfServiceShape = {
  id: 'identity.match',
  kind: 'match',
  fields: { id: { kind: 'residentId', key: true, required: true }, name: { kind: 'name', key: false, required: true }, note: { kind: 'text', key: false, required: true } },
}
const STATUS: OprfServiceShape = {
  id: 'credit.status',
  kind: 'status',
  fields: { id: { kind: 'residentId', key: true, required: true }, year: { kind: 'year', key: false, required: true } },
  statuses: ['active', 'closed'],
}

const id = (i: number): string => makeResidentId('350102', '1980-01-01', (i % 999) + 1)

/** Rows of every sort: valid, grouped, lower case, bad, missing, non-strings, astral and lone surrogates. */
function rows(): Row[] {
  const out: Row[] = []
  for (let i = 0; i < 60; i++) out.push({ id: id(i), name: ['张伟', ' o’brien ', 'Anne-Marie', 'x'][i % 4] as string, note: ['plain', '𠀀 astral', 'ümlaut', 'e\u0301'][i % 4] as string, year: [2020, 2021n, '2022', 1.5][i % 4] as unknown as string, status: ['active', 'closed', 'other', 3][i % 4] as unknown as string })
  out.push({ id: `${id(1).slice(0, 6)} ${id(1).slice(6)}`.toLowerCase(), name: 'a', note: 'b', year: 2020, status: 'active' })
  out.push({ id: '350102198001010000', name: 'a', note: 'b', year: 2020, status: 'active' })
  out.push({ id: null, name: 'a', note: 'b', year: 2020, status: 'active' })
  out.push({ id: id(2), name: new Uint8Array(2) as unknown as string, note: 'b', year: Number.NaN, status: 'closed' })
  out.push({ id: id(3), name: 'a', note: 'lone \uD800 surrogate', year: 2020, status: 'active' })
  return out
}

/** canonicalize in place, the reference (what the event loop did before) */
function reference(svc: OprfServiceShape, row: Row): { input: Uint8Array; hash: number } | null | 'throws' {
  const names = Object.keys(svc.fields).sort().filter((n) => svc.kind === 'match' || svc.fields[n]?.key === true)
  const values: string[] = []
  const keys: string[] = []
  for (const n of names) {
    const v = row[n]
    if (v === null || v === undefined || v instanceof Uint8Array) return null
    try {
      values.push(canonicalizeField(svc.fields[n]?.kind as 'text', typeof v === 'bigint' ? Number(v) : v, n))
    } catch {
      return null
    }
    if (svc.fields[n]?.key === true) keys.push(values[values.length - 1] as string)
  }
  if (svc.kind === 'status') {
    const l = row.status
    if (typeof l !== 'string' || !(svc.statuses ?? []).includes(l)) return null
    values.push(l)
  }
  try {
    return { input: oprfInput(svc.id, 1, values), hash: shardHash(svc.id, keys) }
  } catch {
    return 'throws'
  }
}

for (const profile of ['intl', 'sm'] as const) {
  t.test(`${profile}: packed rows give the inputs and shard hashes of canonicalizing in place`, async (t) => {
    useProfile(profile)
    t.teardown(() => useProfile('intl'))
    for (const svc of [MATCH, STATUS]) {
      const spec = rowSpec(svc)
      t.equal(spec.hashAlg, profile === 'sm' ? 'sm3' : 'sha256')
      const all = rows()
      const good = all.filter((r) => reference(svc, r) !== 'throws')
      const expected = good.map((r) => reference(svc, r)).filter((x) => x !== null && x !== 'throws') as { input: Uint8Array; hash: number }[]
      t.ok(expected.length > 10 && expected.length < good.length, `${svc.id}: some rows are records, some are not`)
      const got = rowRecords(spec, good)
      t.same(got.inputs.map((x) => Buffer.from(x).toString('hex')), expected.map((x) => Buffer.from(x.input).toString('hex')), `${svc.id}: the same inputs`)
      t.same([...got.shardHashes], expected.map((x) => x.hash), `${svc.id}: the same shard hashes`)
      for (const r of good) {
        const ref = reference(svc, r) as { input: Uint8Array } | null
        t.same(rowInput(svc, r), ref === null ? null : ref.input)
      }
      // A lone surrogate is refused as oprfInput refuses it (the build fails, as before).
      if (all.length !== good.length) t.throws(() => rowRecords(spec, all), { code: 'VN_ERR_OPRF_INPUT' })
    }
  })
}

t.test('a packed chunk evaluated on a worker and in this thread: the prefixes of the same inputs; its digest names it', async (t) => {
  const key = generateKeyPair()
  const spec = rowSpec(STATUS)
  const batch = rows().slice(0, 60)
  const packed = packRows(spec, batch)
  const expected = rowRecords(spec, batch)
  const here = evaluateRows(key.secretKey, spec, packed)
  t.same(Buffer.from(here.prefixes), Buffer.from(evaluatePrefixes(key.secretKey, expected.inputs)))
  t.same([...here.hashes], [...expected.shardHashes])
  const pool = createOprfPool(1)
  t.teardown(() => pool.close())
  const there = await poolEvaluateRows(pool, key.secretKey, spec, packed)
  t.same(Buffer.from(there.prefixes), Buffer.from(here.prefixes))
  t.same([...there.hashes], [...here.hashes])
  t.equal(rowsDigest(spec, packed).length, 32)
  t.not(rowsDigest(spec, packed).toString('hex'), rowsDigest(spec, packRows(spec, batch.slice(1))).toString('hex'))
  t.not(rowsDigest(spec, packed).toString('hex'), rowsDigest({ ...spec, labels: ['active'] }, packed).toString('hex'), 'the spec is part of it')
  t.throws(() => evaluateRows(key.secretKey, spec, '[1,2,3]'), { code: 'VN_ERR_OPRF_INPUT' })
})

function memorySource(all: Row[]): DataSource {
  return {
    kind: 'memory',
    async *iterate(_sql: string, _p: unknown, batch = 1000) {
      for (let i = 0; i < all.length; i += batch) yield all.slice(i, i + batch)
    },
    async close() {},
  } as unknown as DataSource
}

t.test('a service built on the pool writes the files of an in-thread build; deferred chunks resume from their runs', async (t) => {
  const dir = t.testdir({})
  const svc: OprfProviderService = { ...MATCH, fields: { id: MATCH.fields.id, name: MATCH.fields.name } as OprfProviderService['fields'], modes: ['oprf'], enumerate: 'SELECT', oprf: { epochHours: 24, shardRecords: 1000 } }
  const table: Row[] = Array.from({ length: 5000 }, (_, i) => ({ id: id(i), name: i % 97 === 0 ? '' : '张伟' }))
  const key = generateKeyPair()
  const pool = createOprfPool(2)
  t.teardown(() => pool.close())
  const a = await buildServiceTagSet({ svc, source: memorySource(table), key, epoch: 5, dir: join(dir, 'a'), pool })
  const b = await buildServiceTagSet({ svc, source: memorySource(table), key, epoch: 5, dir: join(dir, 'b'), pool: () => undefined })
  t.equal(a.skipped, Math.ceil(5000 / 97), 'rows that are not records are counted')
  t.equal(a.records, 5000 - a.skipped)
  t.same({ ...a, path: '', elapsedMs: 0 }, { ...b, path: '', elapsedMs: 0 })
  t.same(await readFile(tagSetFile(join(dir, 'a'), svc.id, 5)), await readFile(tagSetFile(join(dir, 'b'), svc.id, 5)), 'the same set')
  t.same(await readFile(shardFilePath(join(dir, 'a'), svc.id, 5)), await readFile(shardFilePath(join(dir, 'b'), svc.id, 5)), 'the same shards')

  // Resume: a second build over the same checkpoint evaluates nothing and writes the same bytes.
  const spec = rowSpec(svc)
  const chunks = (evaluate: boolean): BuildChunk[] => [table.slice(0, 4096), table.slice(4096)].map((batch) => {
    const packed = packRows(spec, batch)
    return { digest: rowsDigest(spec, packed), evaluate: async () => (evaluate ? evaluateRows(key.secretKey, spec, packed) : Promise.reject(new Error('evaluated again'))) }
  })
  const ck = join(dir, 'ck')
  await mkdir(ck)
  const opts = { service: svc.id, epoch: 5, key, shardRecords: 1000, checkpointDir: ck, keepCheckpoint: true }
  const first = await buildTagSetFiles({ ...opts, inputs: chunks(true), setPath: join(dir, '1.vnts'), shardPath: join(dir, '1.vnsh') })
  const second = await buildTagSetFiles({ ...opts, inputs: chunks(false), setPath: join(dir, '2.vnts'), shardPath: join(dir, '2.vnsh') })
  t.equal(first.resumedChunks, 0)
  t.equal(second.resumedChunks, 2, 'both chunks from their runs')
  t.equal(second.records, a.records)
  t.same(await readFile(join(dir, '2.vnts')), await readFile(tagSetFile(join(dir, 'a'), svc.id, 5)))
  t.same(await readFile(join(dir, '2.vnsh')), await readFile(shardFilePath(join(dir, 'a'), svc.id, 5)))
})
