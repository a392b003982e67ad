/** Every `verinode` command, in the order `verinode --help` lists them. */
import type { Command } from '../types.js'
import { initCommand } from './init.js'
import { federationCommand } from './federation.js'
import { serveCommand } from './serve.js'
import { demoCommand } from './demo.js'
import { auditCommand } from './audit.js'
import { logExportCommand } from './log-export.js'
import { keysCommand } from './keys.js'
import { tagsetCommand } from './tagset.js'
import { catalogCommand } from './catalog.js'
import { verifyCommand } from './verify.js'
import { verifyBatchCommand } from './verify-batch.js'
import { doctorCommand } from './doctor.js'
import { agreementsCommand, applicationsCommand, applyCommand, disputeCommand } from './governance.js'

export const commands: readonly Command[] = [
  demoCommand, initCommand, federationCommand, serveCommand, doctorCommand,
  catalogCommand, verifyCommand, verifyBatchCommand,
  applyCommand, applicationsCommand, agreementsCommand, disputeCommand,
  tagsetCommand, keysCommand, logExportCommand, auditCommand,
]
