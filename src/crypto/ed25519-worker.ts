/**
 * Worker-thread entry for batched Ed25519 and SM2 (see ed25519-batch.ts): one message carries many
 * verifications and signatures, answered by one message. Keys arrive as DER (SPKI / PKCS#8) and
 * are parsed once per distinct key; the key's kind decides the algorithm (profile.ts).
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto'
import { signBytes, verifyBytes } from './profile.js'
import { parentPort } from 'node:worker_threads'
import type { Ed25519Op, Ed25519Reply, PackedVerify } from './ed25519-batch.js'

const port = parentPort
if (port === null) throw new Error('ed25519-worker must run in a worker thread')

const keys = new Map<number, KeyObject>()

port.on('message', (m: { keys?: { id: number; der: Uint8Array; private: boolean }[]; ops?: Ed25519Op[]; packed?: PackedVerify }) => {
  for (const k of m.keys ?? []) {
    const der = Buffer.from(k.der.buffer, k.der.byteOffset, k.der.byteLength)
    keys.set(k.id, k.private ? createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }) : createPublicKey({ key: der, format: 'der', type: 'spki' }))
  }
  if (m.packed !== undefined) {
    // verifyMany: one buffer in, one byte per operation out (1 valid, 0 invalid, 2 could not run)
    const { meta, bytes } = m.packed
    const res = new Uint8Array(meta.length / 5)
    for (let i = 0; i < res.length; i++) {
      try {
        const key = keys.get(meta[5 * i] as number)
        if (key === undefined) throw new Error('unknown key')
        const d = meta[5 * i + 1] as number
        const s = meta[5 * i + 3] as number
        res[i] = verifyBytes(bytes.subarray(d, d + (meta[5 * i + 2] as number)), key, bytes.subarray(s, s + (meta[5 * i + 4] as number))) ? 1 : 0
      } catch {
        res[i] = 2
      }
    }
    port.postMessage(res, [res.buffer])
    return
  }
  const out: Ed25519Reply[] = []
  for (const op of m.ops ?? []) {
    try {
      const key = keys.get(op.key)
      if (key === undefined) throw new Error('unknown key')
      const data = Buffer.from(op.data.buffer, op.data.byteOffset, op.data.byteLength)
      if (op.sig === undefined) out.push(new Uint8Array(signBytes(data, key)))
      else out.push(verifyBytes(data, key, Buffer.from(op.sig.buffer, op.sig.byteOffset, op.sig.byteLength)))
    } catch {
      out.push(null)
    }
  }
  port.postMessage(out)
})
