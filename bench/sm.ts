/**
 * bench:sm — verinode's SM2 signatures (src/crypto/sm2.ts) against OpenSSL's own SM2 on this machine.
 *
 * In one run: `openssl speed -seconds S sm2` (OpenSSL's sign and verify per second, one core), then
 * verinode's sm2Sign and sm2Verify on one core (the default ID, 1 KiB messages like a signed
 * exchange, one key as a node has), then the same two again after OpenSSL once more; each side's
 * figure is the mean of its two runs, so drift on a shared machine hits both.
 *
 * Last line: `ratio: <min(sign ÷ OpenSSL sign, verify ÷ OpenSSL verify)>` (target ≥ 0.5, issue 17).
 * VN_BENCH_SM_SECONDS sets the time of each measurement (default 3).
 */
import { execFileSync } from 'node:child_process'
import { loadavg } from 'node:os'
import { performance } from 'node:perf_hooks'
import { generateSm2, sm2PrivateKeyFromKeyObject, sm2Sign, sm2Verify } from '../src/crypto/sm2.js'

const seconds = Number(process.env.VN_BENCH_SM_SECONDS ?? 3)

function openssl(): { sign: number; verify: number } {
  const out = execFileSync('openssl', ['speed', '-seconds', String(seconds), 'sm2'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
  const line = out.split('\n').find((l) => /SM2 \(CurveSM2\)/.test(l))
  const m = line === undefined ? null : /([\d.]+)\s+([\d.]+)\s*$/.exec(line.trim())
  if (m === null) throw new Error(`openssl speed sm2: no figures in\n${out}`)
  return { sign: Number(m[1]), verify: Number(m[2]) }
}

function rate(fn: (i: number) => void): number {
  for (let i = 0; i < 50; i++) fn(i) // warm up
  const t0 = performance.now()
  let n = 0
  while (performance.now() - t0 < seconds * 1000) {
    for (let j = 0; j < 20; j++) fn(n++)
  }
  return n / ((performance.now() - t0) / 1000)
}

function ours(): { sign: number; verify: number } {
  const key = sm2PrivateKeyFromKeyObject(generateSm2().privateKey)
  const msgs = Array.from({ length: 64 }, (_, i) => Buffer.from(`exchange ${i} `.repeat(80).slice(0, 1024)))
  const sigs = msgs.map((m) => sm2Sign(key, m))
  const sign = rate((i) => sm2Sign(key, msgs[i % 64] as Buffer))
  const verify = rate((i) => {
    if (!sm2Verify(key.publicKey, msgs[i % 64] as Buffer, sigs[i % 64] as Uint8Array)) throw new Error('bench:sm: a signature did not verify')
  })
  return { sign, verify }
}

console.log(`bench:sm: ${seconds} s per figure, load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`)
const o1 = openssl()
const v1 = ours()
const o2 = openssl()
const v2 = ours()
const mean = (a: number, b: number): number => (a + b) / 2
const o = { sign: mean(o1.sign, o2.sign), verify: mean(o1.verify, o2.verify) }
const v = { sign: mean(v1.sign, v2.sign), verify: mean(v1.verify, v2.verify) }
console.log(`openssl speed sm2 (one core): sign ${o.sign.toFixed(0)}/s, verify ${o.verify.toFixed(0)}/s (runs: ${o1.sign.toFixed(0)}/${o1.verify.toFixed(0)}, ${o2.sign.toFixed(0)}/${o2.verify.toFixed(0)})`)
console.log(`verinode sm2 (one core):      sign ${v.sign.toFixed(0)}/s, verify ${v.verify.toFixed(0)}/s (runs: ${v1.sign.toFixed(0)}/${v1.verify.toFixed(0)}, ${v2.sign.toFixed(0)}/${v2.verify.toFixed(0)})`)
const rs = v.sign / o.sign
const rv = v.verify / o.verify
console.log(`sign ratio ${rs.toFixed(2)}, verify ratio ${rv.toFixed(2)}`)
console.log(`ratio: ${Math.min(rs, rv).toFixed(2)}`)
