/**
 * The published grid of money amounts that `he`-mode bounds live on.
 *
 * 64 levels (one segment of 64 batching slots per subject, docs/HE.md §Grid):
 * - level 0 is 0 fen ("any recorded, non-negative amount");
 * - levels 1..63 are the ISO 3 R10 preferred numbers (1, 1.25, 1.6, 2, 2.5, 3.15, 4, 5, 6.3, 8)
 *   times 10^3 .. 10^9 yuan: 1,000 yuan up to 1,600,000,000 yuan, ten levels per decade, so
 *   neighbouring levels differ by about 26 %.
 * Amounts are integer fen (1 yuan = 100 fen), all far below 2^53.
 *
 * The consumer's bound is a grid index: a bound that is not a grid point must be rounded by the
 * consumer first (`gridIndexForBound(x, 'up')` is the conservative choice for "at least x").
 * The provider compares its exact value with the grid point: the bit is exactly [v >= g_T].
 */
import { VnError } from '../errors.js'

export const GRID_SIZE = 64

const R10 = [100, 125, 160, 200, 250, 315, 400, 500, 630, 800] as const // ISO 3, in hundredths

const GRID: readonly number[] = Object.freeze(
  Array.from({ length: GRID_SIZE }, (_, k) => {
    if (k === 0) return 0
    const decade = Math.floor((k - 1) / 10) // 10^3 yuan .. 10^9 yuan
    const mantissa = R10[(k - 1) % 10] as number
    // mantissa/100 * 10^(3+decade) yuan * 100 fen/yuan = mantissa * 10^(3+decade) fen
    return mantissa * 10 ** (3 + decade)
  }),
)

/** The grid points in fen, ascending; index = level. */
export function gridValues(): readonly number[] {
  return GRID
}

/** The amount in fen of grid level `index`. */
export function gridValueAt(index: number): number {
  checkIndex(index, 'index')
  return GRID[index] as number
}

export type GridRounding = 'exact' | 'up' | 'down'

/**
 * The grid index of a bound given in fen. `exact` (default) rejects amounts that are not grid
 * points; `up` takes the smallest grid point >= amount (a "yes" then still implies v >= amount);
 * `down` the largest grid point <= amount. Errors: VN_ERR_HE_BOUND.
 */
export function gridIndexForBound(amountFen: number, rounding: GridRounding = 'exact', field = 'bound'): number {
  if (!Number.isSafeInteger(amountFen) || amountFen < 0) {
    throw new VnError('VN_ERR_HE_BOUND', `${field}: not a non-negative integer amount in fen`)
  }
  const below = bucketIndex(amountFen) // largest j with g_j <= amount; >= 0 since g_0 = 0
  if ((GRID[below] as number) === amountFen) return below
  if (rounding === 'down') return below
  if (rounding === 'up') {
    if (below + 1 >= GRID_SIZE) throw new VnError('VN_ERR_HE_BOUND', `${field}: above the top of the grid`)
    return below + 1
  }
  throw new VnError('VN_ERR_HE_BOUND', `${field}: not a grid point (round it up or down first)`)
}

/** Largest j with g_j <= v, or -1 when v is below every grid point (negative). */
export function bucketIndex(v: number): number {
  if (!(v >= 0)) return -1
  let lo = 0
  let hi = GRID_SIZE - 1
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1
    if ((GRID[mid] as number) <= v) lo = mid
    else hi = mid - 1
  }
  return lo
}

/** Throws VN_ERR_HE_BOUND unless `index` is an integer grid level. */
export function checkIndex(index: unknown, field: string, max = GRID_SIZE - 1): asserts index is number {
  if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index > max) {
    throw new VnError('VN_ERR_HE_BOUND', `${field}: not a grid index 0..${max}`)
  }
}
