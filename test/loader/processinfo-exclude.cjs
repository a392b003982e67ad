/**
 * `--require` entry for the tests (a tap node-arg in package.json): with coverage off, tap's
 * processinfo stops recording the modules under node_modules.
 *
 * tap starts every test process with `--import` of @tapjs/processinfo first (in NODE_OPTIONS). For
 * every module a process loads it then sends the source from the module hooks thread to the main
 * thread, which splits it into lines and parses its source map (ES modules), or splits it in a
 * `require` hook (CommonJS): bookkeeping for coverage and for `tap --changed`. tap's own modules
 * and fastify, undici, pino and the rest are most of what a test loads, and recording them was
 * 0.3 to 0.45 s of CPU per test process (a file that loads only tap: 1.15 s -> 0.87 s; the plain
 * exchange test's main thread: 3.6 s -> 3.2 s). node_modules is never in coverage anyway.
 *
 * processinfo reads its exclusion pattern from `_TAPJS_PROCESSINFO_EXCLUDE_` when it registers
 * its hooks, before any `--import` of ours runs, and tap sets that variable itself (the
 * `test-env` option cannot change it). A `--require` runs before every `--import`, NODE_OPTIONS'
 * included, so it is set here: tap's pattern plus node_modules. Worker threads and child
 * processes inherit it. With coverage on (`TAP_DISABLE_COVERAGE=0 npx tap`) nothing changes.
 */
'use strict'
if (process.env._TAPJS_PROCESSINFO_COVERAGE_ === '0') {
  process.env._TAPJS_PROCESSINFO_EXCLUDE_ = String(/(^(node|tapmock):|[\\/](\.tap|tap-snapshots|node_modules)[\\/])/)
}
