/**
 * Reads the config file, applies `VERINODE_*` environment overrides and validates the result.
 * Errors are VN_ERR_CONFIG_INVALID with every problem listed by path, so an operator can fix the file
 * in one go. This module is the only place that reads process.env.
 */
import { readFile } from 'node:fs/promises'
import { dirname, resolve, isAbsolute } from 'node:path'
import { z } from 'zod'
import { ConfigSchema, type Config } from './schema.js'
import { VnError } from '../errors.js'

export interface LoadedConfig {
  config: Config
  /** the folder relative paths are resolved against */
  baseDir: string
  path(p: string): string
  /** An environment variable of the environment the config was loaded with (a database password's `passwordEnv`). */
  env(name: string): string | undefined
}

/** Environment variables that override config fields (12-factor style for containers). */
const ENV_OVERRIDES: Array<[string, (c: Record<string, any>, v: string) => void]> = [ // eslint-disable-line @typescript-eslint/no-explicit-any
  ['VERINODE_LISTEN_HOST', (c, v) => { c.listen = { ...c.listen, host: v } }],
  ['VERINODE_LISTEN_PORT', (c, v) => { c.listen = { ...c.listen, port: envPort('VERINODE_LISTEN_PORT', v) } }],
  ['VERINODE_LOCAL_HOST', (c, v) => { c.local = { ...c.local, host: v } }],
  ['VERINODE_LOCAL_PORT', (c, v) => { c.local = { ...c.local, port: envPort('VERINODE_LOCAL_PORT', v) } }],
  ['VERINODE_METRICS_PORT', (c, v) => { c.metrics = { ...c.metrics, port: envPort('VERINODE_METRICS_PORT', v) } }],
  ['VERINODE_LOG_LEVEL', (c, v) => { c.logLevel = v }],
  ['VERINODE_DATA_DIR', (c, v) => { c.dataDir = v }],
  ['VERINODE_KEYS_DIR', (c, v) => { c.keysDir = v }],
  ['VERINODE_INSECURE', (c, v) => { c.insecure = v === '1' || v === 'true' }],
]

/** A port from an environment variable; the error names the variable (the config file is not at fault). */
function envPort(name: string, v: string): number {
  if (!/^[0-9]{1,5}$/.test(v) || Number(v) > 65535) throw new VnError('VN_ERR_CONFIG_INVALID', `${name}: not a port number (an integer from 0 to 65535)`)
  return Number(v)
}

export function formatZodIssues(err: z.ZodError): string {
  return err.issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`).join('; ')
}

export function parseConfig(raw: unknown, env: Record<string, string | undefined> = {}): Config {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new VnError('VN_ERR_CONFIG_INVALID', 'the config must be a JSON object')
  }
  const c: Record<string, unknown> = structuredClone(raw as Record<string, unknown>)
  for (const [name, apply] of ENV_OVERRIDES) {
    const v = env[name]
    if (v !== undefined && v !== '') apply(c, v)
  }
  const r = ConfigSchema.safeParse(c)
  if (!r.success) throw new VnError('VN_ERR_CONFIG_INVALID', formatZodIssues(r.error))
  const cfg = r.data
  // Cross-field rules zod cannot see per field.
  const problems: string[] = []
  const ids = new Set<string>()
  cfg.services.forEach((s, i) => {
    if (ids.has(s.id)) problems.push(`services.${i}.id: duplicate service ${s.id}`)
    ids.add(s.id)
    if (!Object.values(s.fields).some((f) => f.key)) problems.push(`services.${i}.fields: at least one field needs key: true`)
    if (s.kind === 'status' && !s.statuses?.length) problems.push(`services.${i}.statuses: required for kind status`)
    if (s.kind === 'tier' && !s.tiers?.length) problems.push(`services.${i}.tiers: required for kind tier`)
    // A tier answer is the last band whose min the value reaches: the bands must ascend.
    s.tiers?.forEach((t, j) => {
      const prev = s.tiers?.[j - 1]
      if (prev !== undefined && !(t.min > prev.min)) problems.push(`services.${i}.tiers.${j}.min: must be above the previous band's min (lowest first)`)
      if (s.tiers?.findIndex((u) => u.id === t.id) !== j) problems.push(`services.${i}.tiers.${j}.id: duplicate tier ${t.id}`)
    })
    if (s.statuses !== undefined && new Set(s.statuses).size !== s.statuses.length) problems.push(`services.${i}.statuses: duplicates`)
    // he mode evaluates a threshold (kind threshold) or a range (kind tier) over he.valueLookup.
    if (s.modes.includes('he')) {
      if (s.kind !== 'threshold' && s.kind !== 'tier') problems.push(`services.${i}.modes: he mode answers threshold and tier services, not ${s.kind}`)
      if (s.he === undefined) problems.push(`services.${i}.he.valueLookup: required for he mode`)
    }
  })
  if (cfg.services.length > 0 && cfg.dataSource === undefined) problems.push('dataSource: required when the node provides services')
  const agr = new Set<string>()
  cfg.agreements.forEach((a, i) => {
    if (agr.has(a.id)) problems.push(`agreements.${i}.id: duplicate agreement ${a.id}`)
    agr.add(a.id)
    for (const s of a.services) if (!ids.has(s)) problems.push(`agreements.${i}.services: unknown service ${s}`)
  })
  if (problems.length > 0) throw new VnError('VN_ERR_CONFIG_INVALID', problems.join('; '))
  return cfg
}

export async function loadConfig(file: string, env: Record<string, string | undefined> = process.env): Promise<LoadedConfig> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (e) {
    throw new VnError('VN_ERR_CONFIG_INVALID', `${file}: cannot be read`, { cause: e })
  }
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (e) {
    throw new VnError('VN_ERR_CONFIG_INVALID', `${file}: not valid JSON (${(e as Error).message})`)
  }
  const config = parseConfig(raw, env)
  const baseDir = dirname(resolve(file))
  return { config, baseDir, path: (p) => (isAbsolute(p) ? p : resolve(baseDir, p)), env: (name) => env[name] }
}
