#!/usr/bin/env node
/** The `verinode` executable: runs src/cli/main.ts with the process's arguments and streams. */
import { availableParallelism } from 'node:os'
import { defaultThreadpoolSize } from '../node/threadpool.js'

// Before anything can touch libuv's pool (see src/node/threadpool.ts); an operator's value wins.
process.env.UV_THREADPOOL_SIZE ??= String(defaultThreadpoolSize(availableParallelism()))
const { main, processIo } = await import('./main.js')

const argv = process.argv.slice(2)
process.exitCode = await main(argv, processIo(argv))
