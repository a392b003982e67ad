// AssemblyScript, not TypeScript: compiled to WebAssembly by scripts/build-wasm.mjs (npm run
// build:wasm) into sm2.wasm next to this file, loaded by ../sm2-wasm.ts. Excluded from tsc, eslint,
// knip and dependency-cruiser (they cannot read its types: u32, u64, usize, load, store).
//
// The public side of an SM2 verification on the recommended curve (GB/T 32918.5):
// x(sG + tP) for public s, t and P. NOT constant time: never give it a secret.
//
// Field: p = 2^256 − 2^224 − 2^96 + 2^64 − 1, elements as 8 little-endian 32-bit limbs in linear
// memory, in Montgomery form (R = 2^256; p ≡ −1 mod 2^32, so the Montgomery factor m' is 1).
// Points: Jacobian (X, Y, Z) for the running sum, affine (x, y) in the tables; a = −3.
// Scalars: signed 8-bit windows, k = Σ d_i·2^(8i), d_i in [−127, 128], 33 windows. A table holds
// j·2^(8i)·Q for j = 1..128 and each window i (33 × 128 affine points, 270,336 bytes), so a
// multiplication is at most 33 mixed additions and no doubling. G's table is built by init(), each
// key's by setKey() in a slot; JavaScript chooses the slots.

const FE: usize = 32
const AFF: usize = 64
const WINDOWS: i32 = 33
const ROW: i32 = 128
const TABLE_BYTES: usize = <usize>WINDOWS * <usize>ROW * AFF

// constants and scratch, in static memory
// p, little-endian limbs
const P_: usize = memory.data<u32>([0xffffffff, 0xffffffff, 0x00000000, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xfffffffe])
// R mod p = 2^256 − p = 2^224 + 2^96 − 2^64 + 1: 1 in Montgomery form
const ONE: usize = memory.data<u32>([1, 0, 0xffffffff, 0, 0, 0, 0, 1])
const R2: usize = memory.data(32) // R^2 mod p, computed by init()
// G = (x, y), GB/T 32918.5, little-endian limbs
const GX: usize = memory.data<u32>([0x334c74c7, 0x715a4589, 0xf2660be1, 0x8fe30bbf, 0x6a39c994, 0x5f990446, 0x1f198119, 0x32c4ae2c])
const GY: usize = memory.data<u32>([0x2139f0a0, 0x02df32e5, 0xc62a4740, 0xd0a9877c, 0x6b692153, 0x59bdcee3, 0xf4f6779c, 0xbc3736a2])
// the I/O area JavaScript reads and writes: s, t, then x and y of a key, then the result x (big-endian)
const IO: usize = memory.data(160)
// temporaries of the point formulas
const t0: usize = memory.data(32)
const t1: usize = memory.data(32)
const t2: usize = memory.data(32)
const t3: usize = memory.data(32)
const t4: usize = memory.data(32)
const t5: usize = memory.data(32)
const t6: usize = memory.data(32)
const inv16: usize = memory.data(32 * 16)
const digS: usize = memory.data(WINDOWS * 2)
const digT: usize = memory.data(WINDOWS * 2)
// running sum: X, Y, Z and whether it is the point at infinity
const ACC: usize = memory.data(96)
let accInf: bool = true
// table building: the window's base point (Jacobian and affine) and one row of Jacobian points
const BJ: usize = memory.data(96)
const BA: usize = memory.data(64)
const RJ: usize = memory.data(96 * 128)
const PRE: usize = memory.data(32 * 128)
const NEGY: usize = memory.data(32)

let gTable: usize = 0
let slotBase: usize = 0
let slotCount: i32 = 0

// ------------------------------------------------------------------------------------------------
// field

@inline function limb(a: usize, i: i32): u64 {
  return <u64>load<u32>(a + (<usize>i << 2))
}

function feCopy(r: usize, a: usize): void {
  memory.copy(r, a, FE)
}

function feIsZero(a: usize): bool {
  return (load<u64>(a) | load<u64>(a, 8) | load<u64>(a, 16) | load<u64>(a, 24)) == 0
}

function feEq(a: usize, b: usize): bool {
  return load<u64>(a) == load<u64>(b) && load<u64>(a, 8) == load<u64>(b, 8) && load<u64>(a, 16) == load<u64>(b, 16) && load<u64>(a, 24) == load<u64>(b, 24)
}

/** a >= p (a has 8 limbs, below 2^256) */
function geP(a: usize): bool {
  for (let i = 7; i >= 0; i--) {
    const x = load<u32>(a + (<usize>i << 2))
    const y = load<u32>(P_ + (<usize>i << 2))
    if (x != y) return x > y
  }
  return true
}

/** r = a − p, with a < 2p (limbs and the carry word) */
function subP(r: usize, a: usize): void {
  let borrow: i64 = 0
  for (let i = 0; i < 8; i++) {
    const d: i64 = <i64>limb(a, i) - <i64>limb(P_, i) + borrow
    store<u32>(r + (<usize>i << 2), <u32>d)
    borrow = d >> 32
  }
}

function feAdd(r: usize, a: usize, b: usize): void {
  let c: u64 = 0
  for (let i = 0; i < 8; i++) {
    c += limb(a, i) + limb(b, i)
    store<u32>(r + (<usize>i << 2), <u32>c)
    c >>= 32
  }
  if (c != 0 || geP(r)) subP(r, r)
}

function feSub(r: usize, a: usize, b: usize): void {
  let borrow: i64 = 0
  for (let i = 0; i < 8; i++) {
    const d: i64 = <i64>limb(a, i) - <i64>limb(b, i) + borrow
    store<u32>(r + (<usize>i << 2), <u32>d)
    borrow = d >> 32
  }
  if (borrow != 0) {
    // add p back
    let c: u64 = 0
    for (let i = 0; i < 8; i++) {
      c += limb(r, i) + limb(P_, i)
      store<u32>(r + (<usize>i << 2), <u32>c)
      c >>= 32
    }
  }
}

/** r = a·b·R⁻¹ mod p (CIOS Montgomery multiplication; r may alias a or b). */
function feMul(r: usize, a: usize, b: usize): void {
  let w0: u64 = 0, w1: u64 = 0, w2: u64 = 0, w3: u64 = 0, w4: u64 = 0, w5: u64 = 0, w6: u64 = 0, w7: u64 = 0, w8: u64 = 0
  const a0 = limb(a, 0), a1 = limb(a, 1), a2 = limb(a, 2), a3 = limb(a, 3), a4 = limb(a, 4), a5 = limb(a, 5), a6 = limb(a, 6), a7 = limb(a, 7)
  for (let i = 0; i < 8; i++) {
    const bi = limb(b, i)
    let c: u64
    c = w0 + a0 * bi; w0 = c & 0xffffffff; c >>= 32
    c += w1 + a1 * bi; w1 = c & 0xffffffff; c >>= 32
    c += w2 + a2 * bi; w2 = c & 0xffffffff; c >>= 32
    c += w3 + a3 * bi; w3 = c & 0xffffffff; c >>= 32
    c += w4 + a4 * bi; w4 = c & 0xffffffff; c >>= 32
    c += w5 + a5 * bi; w5 = c & 0xffffffff; c >>= 32
    c += w6 + a6 * bi; w6 = c & 0xffffffff; c >>= 32
    c += w7 + a7 * bi; w7 = c & 0xffffffff; c >>= 32
    c += w8; w8 = c & 0xffffffff
    const w9 = c >> 32
    // m = w0 (m' = 1); add m·p, where p's limbs are ffffffff ffffffff 0 ffffffff ffffffff ffffffff ffffffff fffffffe
    // and m·0xffffffff = (m << 32) − m; then shift one limb down.
    const m = w0
    const mf = (m << 32) - m
    c = w0 + mf; c >>= 32 // low limb becomes 0
    c += w1 + mf; w0 = c & 0xffffffff; c >>= 32
    c += w2; w1 = c & 0xffffffff; c >>= 32
    c += w3 + mf; w2 = c & 0xffffffff; c >>= 32
    c += w4 + mf; w3 = c & 0xffffffff; c >>= 32
    c += w5 + mf; w4 = c & 0xffffffff; c >>= 32
    c += w6 + mf; w5 = c & 0xffffffff; c >>= 32
    c += w7 + (mf - m); w6 = c & 0xffffffff; c >>= 32
    c += w8; w7 = c & 0xffffffff; c >>= 32
    w8 = w9 + c
  }
  store<u32>(r, <u32>w0)
  store<u32>(r, <u32>w1, 4)
  store<u32>(r, <u32>w2, 8)
  store<u32>(r, <u32>w3, 12)
  store<u32>(r, <u32>w4, 16)
  store<u32>(r, <u32>w5, 20)
  store<u32>(r, <u32>w6, 24)
  store<u32>(r, <u32>w7, 28)
  if (w8 != 0 || geP(r)) subP(r, r)
}

@inline function feSqr(r: usize, a: usize): void {
  feMul(r, a, a)
}

/** r = a^(p−2) = a⁻¹ (Montgomery form in and out; 0 stays 0), 4-bit fixed windows. */
function feInv(r: usize, a: usize): void {
  feCopy(inv16, ONE)
  feCopy(inv16 + 32, a)
  for (let i = 2; i < 16; i++) feMul(inv16 + (<usize>i << 5), inv16 + (<usize>(i - 1) << 5), a)
  // p − 2, limbs little-endian
  feCopy(t6, P_)
  store<u32>(t6, load<u32>(t6) - 2)
  feCopy(t5, ONE)
  for (let i = 63; i >= 0; i--) {
    feSqr(t5, t5)
    feSqr(t5, t5)
    feSqr(t5, t5)
    feSqr(t5, t5)
    const nib = (load<u32>(t6 + (<usize>(i >> 3) << 2)) >> ((<u32>i & 7) << 2)) & 15
    if (nib != 0) feMul(t5, t5, inv16 + (<usize>nib << 5))
  }
  feCopy(r, t5)
}

/** Big-endian 32 bytes at `src` to little-endian limbs at `r` (no reduction). */
function fromBE(r: usize, src: usize): void {
  for (let i = 0; i < 8; i++) {
    store<u32>(r + (<usize>i << 2), bswap<u32>(load<u32>(src + 28 - (<usize>i << 2))))
  }
}

function toBE(dst: usize, a: usize): void {
  for (let i = 0; i < 8; i++) {
    store<u32>(dst + 28 - (<usize>i << 2), bswap<u32>(load<u32>(a + (<usize>i << 2))))
  }
}

function toMont(r: usize, a: usize): void {
  feMul(r, a, R2)
}

function fromMont(r: usize, a: usize): void {
  memory.fill(t0, 0, FE)
  store<u32>(t0, 1)
  feMul(r, a, t0)
}

// ------------------------------------------------------------------------------------------------
// points

/** Jacobian doubling in place (a = −3; dbl-2001-b). Y = 0 cannot occur on a prime-order curve. */
function pointDouble(p: usize): void {
  const X = p, Y = p + 32, Z = p + 64
  feSqr(t0, Z) // delta
  feSqr(t1, Y) // gamma
  feMul(t2, X, t1) // beta
  feSub(t3, X, t0)
  feAdd(t4, X, t0)
  feMul(t3, t3, t4)
  feAdd(t4, t3, t3)
  feAdd(t3, t4, t3) // alpha = 3(X − delta)(X + delta)
  // Z3 = (Y + Z)^2 − gamma − delta
  feAdd(t4, Y, Z)
  feSqr(t4, t4)
  feSub(t4, t4, t1)
  feSub(Z, t4, t0)
  // X3 = alpha^2 − 8 beta
  feAdd(t2, t2, t2)
  feAdd(t2, t2, t2) // 4 beta
  feSqr(t4, t3)
  feSub(t4, t4, t2)
  feSub(X, t4, t2)
  // Y3 = alpha (4 beta − X3) − 8 gamma^2
  feSub(t2, t2, X)
  feMul(t2, t3, t2)
  feSqr(t1, t1)
  feAdd(t1, t1, t1)
  feAdd(t1, t1, t1)
  feAdd(t1, t1, t1)
  feSub(Y, t2, t1)
}

/**
 * p += (x, y) (Jacobian plus affine, madd-2007-bl style); `inf` says whether p is the point at
 * infinity on entry; returns whether it is on exit. Handles p = ±(x, y).
 */
function pointAddAffine(p: usize, inf: bool, x: usize, y: usize): bool {
  const X = p, Y = p + 32, Z = p + 64
  if (inf) {
    feCopy(X, x)
    feCopy(Y, y)
    feCopy(Z, ONE)
    return false
  }
  feSqr(t0, Z) // Z1Z1
  feMul(t1, x, t0) // U2
  feMul(t2, Z, t0)
  feMul(t2, y, t2) // S2
  feSub(t1, t1, X) // H
  feSub(t2, t2, Y) // r
  if (feIsZero(t1)) {
    if (feIsZero(t2)) {
      pointDouble(p)
      return false
    }
    return true
  }
  feSqr(t3, t1) // HH
  feMul(t4, t1, t3) // HHH
  feMul(t3, X, t3) // V
  feMul(Z, Z, t1) // Z3 = Z1 H
  // X3 = r^2 − HHH − 2V
  feSqr(t5, t2)
  feSub(t5, t5, t4)
  feSub(t5, t5, t3)
  feSub(X, t5, t3)
  // Y3 = r (V − X3) − Y1 HHH
  feSub(t3, t3, X)
  feMul(t3, t2, t3)
  feMul(t4, Y, t4)
  feSub(Y, t3, t4)
  return false
}

/** The affine point of Jacobian `p` into (x, y) at `out` (p not at infinity). */
function toAffine(out: usize, p: usize): void {
  feInv(t6, p + 64)
  feSqr(t5, t6)
  feMul(out, p, t5)
  feMul(t5, t5, t6)
  feMul(out + 32, p + 32, t5)
}

/**
 * Builds the table of the affine point (x, y) (Montgomery form) at `table`: for each window i,
 * j·2^(8i)·Q for j = 1..128. One inversion per row (batch inversion of the row's 128 Z's).
 */
function buildTable(table: usize, x: usize, y: usize): void {
  feCopy(BA, x)
  feCopy(BA + 32, y)
  for (let i = 0; i < WINDOWS; i++) {
    // row in Jacobian: RJ[0] = B, RJ[j] = RJ[j−1] + B
    const row = table + <usize>i * <usize>ROW * AFF
    feCopy(RJ, BA)
    feCopy(RJ + 32, BA + 32)
    feCopy(RJ + 64, ONE)
    for (let j = 1; j < ROW; j++) {
      const q = RJ + <usize>j * 96
      memory.copy(q, q - 96, 96)
      // never infinity: j·B ≠ O for 1 ≤ j ≤ 128 < n
      pointAddAffine(q, false, BA, BA + 32)
    }
    // batch inversion of the Z's: PRE[j] = Z_0 ⋯ Z_j
    feCopy(PRE, RJ + 64)
    for (let j = 1; j < ROW; j++) feMul(PRE + (<usize>j << 5), PRE + (<usize>(j - 1) << 5), RJ + <usize>j * 96 + 64)
    feInv(t6, PRE + (<usize>(ROW - 1) << 5)) // (Z_0 ⋯ Z_127)⁻¹
    for (let j = ROW - 1; j >= 0; j--) {
      const q = RJ + <usize>j * 96
      // zi = Z_j⁻¹ = t6 · PRE[j−1]; then t6 ·= Z_j
      if (j > 0) feMul(t5, t6, PRE + (<usize>(j - 1) << 5))
      else feCopy(t5, t6)
      if (j > 0) feMul(t6, t6, q + 64)
      const out = row + <usize>j * AFF
      feSqr(t4, t5)
      feMul(out, q, t4)
      feMul(t4, t4, t5)
      feMul(out + 32, q + 32, t4)
    }
    // next base: 2^8 · B = 2 · (128 B)
    if (i + 1 < WINDOWS) {
      memory.copy(BJ, RJ + <usize>(ROW - 1) * 96, 96)
      pointDouble(BJ)
      toAffine(BA, BJ)
    }
  }
}

/** Signed 8-bit digits of the 256-bit scalar (limbs at `k`) into `d` (33 i16 in [−127, 128]: 128 is no i8). */
function recode(d: usize, k: usize): void {
  let carry: i32 = 0
  for (let i = 0; i < WINDOWS; i++) {
    let v: i32 = (i < 32 ? <i32>load<u8>(k + <usize>i) : 0) + carry
    if (v > 128) {
      v -= 256
      carry = 1
    } else {
      carry = 0
    }
    store<i16>(d + (<usize>i << 1), <i16>v)
  }
}

/** ACC += the table's point for digit `v` of window i. */
function addDigit(table: usize, i: i32, v: i32): void {
  if (v == 0) return
  const neg = v < 0
  const j = (neg ? -v : v) - 1
  const q = table + (<usize>i * <usize>ROW + <usize>j) * AFF
  if (neg) {
    feSub(NEGY, P_, q + 32) // y ≠ 0 on this curve, so p − y is reduced
    accInf = pointAddAffine(ACC, accInf, q, NEGY)
  } else {
    accInf = pointAddAffine(ACC, accInf, q, q + 32)
  }
}

// ------------------------------------------------------------------------------------------------
// exports

/** The I/O area: s (32 bytes, big-endian) at 0, t at 32, a key's x at 64 and y at 96, the result x at 128. */
export function io(): usize {
  return IO
}

/** Builds G's table and reserves `slots` key tables; call once. Returns false if memory cannot grow. */
export function init(slots: i32): bool {
  if (gTable != 0) return true
  // R^2 mod p: R mod p doubled 256 times
  feCopy(R2, ONE)
  for (let i = 0; i < 256; i++) feAdd(R2, R2, R2)

  // the tables: the stub runtime's allocator (nothing is ever freed)
  gTable = heap.alloc(TABLE_BYTES * <usize>(slots + 1))
  slotBase = gTable + TABLE_BYTES
  slotCount = slots
  toMont(t0, GX)
  toMont(t1, GY)
  buildTable(gTable, t0, t1)
  return true
}

/**
 * Builds slot `slot`'s table from the key at io()+64 (x ‖ y, big-endian). The caller has checked
 * the point is on the curve and not the identity.
 */
export function setKey(slot: i32): bool {
  if (slot < 0 || slot >= slotCount) return false
  fromBE(t0, IO + 64)
  fromBE(t1, IO + 96)
  if (geP(t0) || geP(t1)) return false
  toMont(t2, t0)
  toMont(t3, t1)
  feCopy(t0, t2)
  feCopy(t1, t3)
  buildTable(slotBase + <usize>slot * TABLE_BYTES, t0, t1)
  return true
}

/**
 * x of sG + tP for s at io() and t at io()+32 (big-endian, each below 2^256) and P the key in
 * `slot`: writes x (big-endian) at io()+128 and returns true, or returns false if the sum is the
 * point at infinity.
 */
export function mulAdd(slot: i32): bool {
  if (slot < 0 || slot >= slotCount) return false
  const pTable = slotBase + <usize>slot * TABLE_BYTES
  // scalars to little-endian bytes: reverse the 32 big-endian bytes
  for (let i = 0; i < 32; i++) {
    store<u8>(t0 + <usize>i, load<u8>(IO + 31 - <usize>i))
    store<u8>(t1 + <usize>i, load<u8>(IO + 63 - <usize>i))
  }
  recode(digS, t0)
  recode(digT, t1)
  accInf = true
  for (let i = 0; i < WINDOWS; i++) {
    addDigit(gTable, i, <i32>load<i16>(digS + (<usize>i << 1)))
    addDigit(pTable, i, <i32>load<i16>(digT + (<usize>i << 1)))
  }
  if (accInf) return false
  feInv(t6, ACC + 64)
  feSqr(t5, t6)
  feMul(t4, ACC, t5)
  fromMont(t3, t4)
  toBE(IO + 128, t3)
  return true
}
