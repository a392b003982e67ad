/**
 * Tag-set build step shared by the worker and the in-thread path: Evaluate (RFC 9497 §3.3.1) each
 * input and keep the first 8 bytes of the 64-byte output, packed. 8 bytes is the longest tag a tag
 * set may use (src/oprf/tagset.ts), so the final tag length can be chosen after the record count is
 * known and every shorter tag is a prefix of these bytes.
 */
import { evaluateMany, type OprfMode } from '../crypto/oprf.js'

export const PREFIX_BYTES = 8

export function evaluatePrefixes(secretKey: Uint8Array, inputs: readonly Uint8Array[], mode?: OprfMode): Uint8Array {
  const outputs = evaluateMany(secretKey, inputs, mode)
  const packed = new Uint8Array(outputs.length * PREFIX_BYTES)
  for (let i = 0; i < outputs.length; i++) packed.set((outputs[i] as Uint8Array).subarray(0, PREFIX_BYTES), i * PREFIX_BYTES)
  return packed
}
