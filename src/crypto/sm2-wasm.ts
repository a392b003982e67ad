/**
 * The public side of an SM2 verification on the recommended curve, x(sG + tP), in WebAssembly
 * (./wasm/sm2.ts, AssemblyScript, compiled by `npm run build:wasm` into ./wasm/sm2.wasm beside
 * this module's compiled file). BigInt field arithmetic costs microseconds a multiplication; the
 * same in WebAssembly with 32-bit limbs costs a small fraction of that.
 *
 * G's table (33 windows of 128 affine points) is built when the module is first used; each public
 * key gets a table of its own in one of SLOTS slots, built the first time it verifies and kept
 * while the key stays among the SLOTS most recently used (a node verifies with its peers' few
 * keys). Each thread (the event loop, each worker) has its own instance and tables.
 *
 * Not constant time: only for public values (a signature's s, t = r + s, a public key). Signing
 * never comes here.
 *
 * No fallback: a missing or broken sm2.wasm is an error (VN_ERR_SM_WASM) at the first SM2
 * verification, never a silent switch to the slow path.
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { VnError } from '../errors.js'

/** Key tables kept per thread (270 KB each). */
const SLOTS = 16
const IO_S = 0
const IO_T = 32
const IO_KEY = 64
const IO_X = 128

// The few WebAssembly globals used here (Node has them; @types/node 20 and lib ES2023 declare none).
interface WasmMemory { readonly buffer: ArrayBuffer }
declare const WebAssembly: {
  readonly Module: new (bytes: Uint8Array) => object
  readonly Instance: new (module: object, imports: object) => { readonly exports: object }
  readonly Memory: abstract new (...args: never[]) => WasmMemory
}

interface Sm2Wasm {
  readonly memory: WasmMemory
  io(): number
  init(slots: number): number
  setKey(slot: number): number
  mulAdd(slot: number): number
}

let wasm: Sm2Wasm | undefined
let io: Uint8Array | undefined
/** key (x ‖ y, hex) → slot, least recently used first */
const slots = new Map<string, number>()

/** Where the compiled module is read from (beside this module, in src/ and in each compiled tree). */
export const SM2_WASM_PATH = fileURLToPath(new URL('./wasm/sm2.wasm', import.meta.url))

function load(): Sm2Wasm {
  if (wasm !== undefined) return wasm
  let w: Sm2Wasm
  try {
    const instance = new WebAssembly.Instance(new WebAssembly.Module(readFileSync(SM2_WASM_PATH)), {})
    w = instance.exports as unknown as Sm2Wasm
    if (typeof w.mulAdd !== 'function' || !(w.memory instanceof WebAssembly.Memory)) throw new Error('not the SM2 module (no mulAdd or memory export)')
    if (w.init(SLOTS) !== 1) throw new Error('could not allocate its tables')
  } catch (e) {
    throw new VnError('VN_ERR_SM_WASM', `SM2 verification: ${SM2_WASM_PATH} could not be loaded (${(e as Error).message}); it is build output: npm run build:wasm`)
  }
  wasm = w
  return w
}

/** The I/O area's bytes (the view is made again if the memory grew). */
function ioBytes(w: Sm2Wasm): Uint8Array {
  if (io === undefined || io.buffer !== w.memory.buffer) io = new Uint8Array(w.memory.buffer, w.io(), 160)
  return io
}

/** The slot holding `xy`'s table, building it (in the least recently used slot) if needed. */
function slotOf(w: Sm2Wasm, xy: Uint8Array): number {
  const id = Buffer.from(xy.buffer, xy.byteOffset, xy.byteLength).toString('hex')
  let slot = slots.get(id)
  if (slot !== undefined) {
    slots.delete(id)
    slots.set(id, slot)
    return slot
  }
  if (slots.size < SLOTS) slot = slots.size
  else {
    const [oldest, s] = slots.entries().next().value as [string, number]
    slots.delete(oldest)
    slot = s
  }
  ioBytes(w).set(xy, IO_KEY)
  if (w.setKey(slot) !== 1) throw new VnError('VN_ERR_SM_KEY', 'SM2 public key coordinates are not field elements')
  slots.set(id, slot)
  return slot
}

/**
 * x of sG + tP (32 bytes, big-endian) on the recommended curve, or undefined if the sum is the
 * point at infinity. `xy` is a checked public key (x ‖ y, a point of the curve, not the identity);
 * `s` and `t` are 32 bytes big-endian each.
 */
export function sm2MulAddX(xy: Uint8Array, s: Uint8Array, t: Uint8Array): Buffer | undefined {
  if (xy.length !== 64 || s.length !== 32 || t.length !== 32) throw new VnError('VN_ERR_INTERNAL', 'sm2MulAddX: wrong input lengths')
  const w = load()
  const slot = slotOf(w, xy)
  const b = ioBytes(w)
  b.set(s, IO_S)
  b.set(t, IO_T)
  if (w.mulAdd(slot) !== 1) return undefined
  return Buffer.from(b.subarray(IO_X, IO_X + 32))
}
