/**
 * The auditor reads evidence.jsonl lines in the exporter's exact layout from their bytes, and any
 * other line through JSON.parse and the schema: both must accept exactly the `{ digest, jws }`
 * records and give the same digest and JWS. Checked against a plain reading of the contract on
 * crafted lines and on random single-byte edits of a real one.
 */
import t from 'tap'
import { parseEvidenceLine } from '../../src/audit/checks/evidence.js'

const DIGEST = /^[A-Za-z0-9_-]{43}$/
const JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+$/

/** The contract, read the slow way. */
function reference(line: string): { digest: string; jws: string } | undefined {
  let v: unknown
  try {
    v = JSON.parse(line)
  } catch {
    return undefined
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined
  const keys = Object.keys(v).sort()
  const { digest, jws } = v as { digest?: unknown; jws?: unknown }
  if (keys.join(',') !== 'digest,jws' || typeof digest !== 'string' || typeof jws !== 'string') return undefined
  return DIGEST.test(digest) && JWS.test(jws) ? { digest, jws } : undefined
}

const digest = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNO-_'
const jws = 'eyJhbGciOiJFZERTQSJ9.eyJ4IjoxfQ.c2lnbmF0dXJl'
const good = `{"digest":"${digest}","jws":"${jws}"}`

t.test('crafted lines', async (t) => {
  const lines = [
    good,
    `{"digest":"${digest}","jws":"h..s"}`, // empty payload: allowed
    `{"digest":"${digest}","jws":".p.s"}`, // empty header
    `{"digest":"${digest}","jws":"h.p."}`, // empty signature
    `{"digest":"${digest}","jws":"h.p"}`,
    `{"digest":"${digest}","jws":"h.p.s.x"}`,
    `{"digest":"${digest}","jws":"h.p=.s"}`,
    `{"digest":"${digest.slice(1)}","jws":"${jws}"}`,
    `{"digest":"${digest}A","jws":"${jws}"}`,
    `{"digest":"${digest.slice(1)}+","jws":"${jws}"}`,
    `{"jws":"${jws}","digest":"${digest}"}`, // other order: valid JSON, read by the slow path
    `{ "digest": "${digest}", "jws": "${jws}" }`,
    `{"digest":"${digest}","jws":"\\u0065${jws.slice(1)}"}`, // an escape in the JWS: valid
    `{"digest":"${digest}","jws":"${jws}","x":1}`,
    `{"digest":"${digest}","jws":"${jws}"} `,
    `{"digest":"${digest}","jws":"${jws}"`,
    `{"digest":"${digest}","jws":"${jws}"}}`,
    `{"digest":"${digest}","jws":${jws}}`,
    '',
    'not json',
  ]
  for (const l of lines) t.same(parseEvidenceLine(Buffer.from(l, 'latin1')), reference(l), l.slice(0, 60))
  t.same(parseEvidenceLine(Buffer.from(good)), { digest, jws }, 'the exporter layout')
})

t.test('every single-byte edit of a real line', async (t) => {
  const alphabet = ['A', '.', '"', '}', '{', ',', ':', ' ', '\\', '-', '\u00e9', '=']
  let n = 0
  let accepted = 0
  for (let k = 0; k < good.length; k++) {
    for (const c of alphabet) {
      for (const line of [good.slice(0, k) + c + good.slice(k + 1), good.slice(0, k) + c + good.slice(k), good.slice(0, k) + good.slice(k + 1)]) {
        const got = parseEvidenceLine(Buffer.from(line, 'utf8'))
        const want = reference(line)
        if (JSON.stringify(got) !== JSON.stringify(want)) t.fail(`differs on ${JSON.stringify(line)}`)
        n++
        if (want !== undefined) accepted++
      }
    }
  }
  t.ok(n > 3000 && accepted > 100, `${n} lines compared, ${accepted} of them valid`)
})
