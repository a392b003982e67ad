/**
 * The error a call throws, as `CODE detail` for a VnError (undefined when it does not throw), so a
 * test can compare refusals as strings; any other error is rethrown.
 */
import { VnError } from '../src/errors.js'

export function failure(fn: () => unknown): string | undefined {
  try {
    fn()
    return undefined
  } catch (e) {
    if (e instanceof VnError) return `${e.code} ${e.detail ?? ''}`
    throw e
  }
}
