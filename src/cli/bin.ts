#!/usr/bin/env node
/** The `verinode` executable: runs src/cli/main.ts with the process's arguments and streams. */
import { main, processIo } from './main.js'

const argv = process.argv.slice(2)
process.exitCode = await main(argv, processIo(argv))
