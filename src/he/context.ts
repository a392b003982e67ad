/**
 * The BFV parameter set of the `he` mode and the shared node-seal context.
 *
 * One fixed parameter set (docs/HE.md §Parameters), built with Microsoft SEAL 4.1 through
 * node-seal 6.0.3:
 * - N = 8192 (poly modulus degree), 8192 batching slots;
 * - coefficient modulus = SEAL's `BFVDefault(8192, tc128)`: primes of 43 + 43 + 44 + 44 + 44 = 218
 *   bits, the largest total the Homomorphic Encryption Security Standard (Albrecht et al. 2018,
 *   Table 1, ternary secret) allows for 128-bit classical security at N = 8192. The last prime is
 *   SEAL's "special" key-level prime; ciphertexts live at the first data level (4 primes, 174 bits)
 *   and results are switched down to the last level (1 prime, 43 bits);
 * - plain modulus t = 1032193, the 20-bit prime with t ≡ 1 (mod 2N) that
 *   `PlainModulus.Batching(8192, 20)` returns, so that batching (CRT slots) is available.
 * The primes are pinned: if node-seal ever produced other primes the context refuses to start,
 * since peers would silently stop understanding each other.
 *
 * WASM memory is not garbage collected: the context lives for the process (one per thread).
 */
import { createRequire } from 'node:module'
import type { SEALLibrary } from 'node-seal/implementation/seal.js'
import type { Context } from 'node-seal/implementation/context.js'
import type { BatchEncoder } from 'node-seal/implementation/batch-encoder.js'
import type { Evaluator } from 'node-seal/implementation/evaluator.js'
import { VnError } from '../errors.js'

const require = createRequire(import.meta.url)

export const HE_PARAMS = {
  /** Stable name of the parameter set, carried in exchanges so a peer can refuse what it does not run. */
  id: 'bfv-n8192-t1032193-q218-g64',
  scheme: 'bfv',
  polyModulusDegree: 8192,
  coeffModulus: [8796092858369n, 8796092792833n, 17592186028033n, 17592185438209n, 17592184717313n],
  plainModulus: 1032193,
  securityLevel: 128,
} as const

/** SEAL serialization version this code produces and accepts (SEAL 4.1). */
export const SEAL_VERSION = { major: 4, minor: 1 } as const

/** Everything a client or provider needs from SEAL, built once per thread. */
export interface HeContext {
  readonly seal: SEALLibrary
  readonly context: Context
  readonly encoder: BatchEncoder
  readonly evaluator: Evaluator
  readonly slotCount: number
  readonly plainModulus: number
  /** parms_id (SEAL's parameter hash) of the first data level: query ciphertexts. */
  readonly firstParmsId: BigUint64Array
  /** parms_id of the last data level: result ciphertexts. */
  readonly lastParmsId: BigUint64Array
  /** parms_id of the key level: public keys. */
  readonly keyParmsId: BigUint64Array
  /** Number of primes at the first data level, last data level and key level. */
  readonly firstLevelPrimes: number
  readonly lastLevelPrimes: number
  readonly keyLevelPrimes: number
}

let loading: Promise<HeContext> | undefined

/** The shared HE context of this thread (loads and compiles the WASM module once). */
export function createHeContext(): Promise<HeContext> {
  loading ??= build().catch((e: unknown) => {
    loading = undefined
    throw e
  })
  return loading
}

async function build(): Promise<HeContext> {
  const SEAL = require('node-seal') as () => Promise<SEALLibrary>
  const seal = await SEAL()
  const p = HE_PARAMS
  const parms = seal.EncryptionParameters(seal.SchemeType.bfv)
  const coeff = seal.CoeffModulus.BFVDefault(p.polyModulusDegree, seal.SecurityLevel.tc128)
  const plain = seal.PlainModulus.Batching(p.polyModulusDegree, 20)
  try {
    parms.setPolyModulusDegree(p.polyModulusDegree)
    parms.setCoeffModulus(coeff)
    parms.setPlainModulus(plain)
    const q = Array.from(parms.coeffModulus)
    if (q.length !== p.coeffModulus.length || q.some((x, i) => x !== p.coeffModulus[i]) || plain.value !== BigInt(p.plainModulus)) {
      throw new VnError('VN_ERR_INTERNAL', 'node-seal produced other BFV primes than the pinned parameter set')
    }
    const context = seal.Context(parms, true, seal.SecurityLevel.tc128)
    if (!context.parametersSet()) throw new VnError('VN_ERR_INTERNAL', 'SEAL rejected the BFV parameter set')
    const ids = (get: () => { values: BigUint64Array; delete: () => void }): BigUint64Array => {
      const h = get()
      try {
        return BigUint64Array.from(h.values)
      } finally {
        h.delete()
      }
    }
    const levelPrimes = (which: 'firstContextData' | 'lastContextData' | 'keyContextData'): number => {
      const cd = context[which]
      try {
        const prm = cd.parms
        try {
          return prm.coeffModulus.length
        } finally {
          prm.delete()
        }
      } finally {
        cd.delete()
      }
    }
    const encoder = seal.BatchEncoder(context)
    return {
      seal,
      context,
      encoder,
      evaluator: seal.Evaluator(context),
      slotCount: encoder.slotCount,
      plainModulus: p.plainModulus,
      firstParmsId: ids(() => context.firstParmsId),
      lastParmsId: ids(() => context.lastParmsId),
      keyParmsId: ids(() => context.keyParmsId),
      firstLevelPrimes: levelPrimes('firstContextData'),
      lastLevelPrimes: levelPrimes('lastContextData'),
      keyLevelPrimes: levelPrimes('keyContextData'),
    }
  } finally {
    coeff.delete()
    plain.delete()
    parms.delete()
  }
}
