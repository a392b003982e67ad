/** The storage conformance suite (store-conformance.ts) against the in-memory backend of the unit tier. */
import t from 'tap'
import { memoryNodeStores } from '../../src/log/memory-store.js'
import { runStoreConformance } from './store-conformance.js'

runStoreConformance(t, {
  open: async (opts) => {
    const stores = memoryNodeStores(opts)
    return {
      stores,
      failNextCommit: () => stores.log.failNextCommit(),
      // the store itself; closing the reader must not close the store
      reader: async () => ({ snapshot: (read) => stores.log.snapshot(read), close: async () => undefined }),
    }
  },
})
