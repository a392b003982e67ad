/**
 * A fast acceptance test in front of zod, for the auditor's hot path (every leaf and every evidence
 * payload of a log of millions). The zod schema stays the one definition: `fastParser` reads it
 * (its `_zod.def`) once and builds a plain predicate for the parts it fully understands (strict
 * objects, strings with length and regex checks, safe integers with bounds, literals, enums,
 * booleans, arrays, tuples, records with string keys, optionals, discriminated unions). The
 * predicate only ever says "certainly valid": then the value is returned as it is (for these
 * types zod's output is an equal copy). Anything else, a value it doubts or a schema part it does
 * not know (refinements, pipes, transforms, defaults, non-strict objects with extra members...),
 * goes to zod's own `safeParse`, which gives the same result and the error message as before.
 */
import type { z } from 'zod'

type Pred = (v: unknown) => boolean

/** zod's internal definition, as far as this file reads it. */
interface Def {
  type: string
  checks?: { _zod: { def: CheckDef } }[]
  shape?: Record<string, Schema>
  catchall?: Schema
  innerType?: Schema
  element?: Schema
  options?: Schema[]
  discriminator?: string
  keyType?: Schema
  valueType?: Schema
  items?: Schema[]
  rest?: Schema | null
  values?: unknown[]
  entries?: Record<string, unknown>
  coerce?: boolean
}
interface CheckDef {
  check: string
  format?: string
  pattern?: RegExp
  minimum?: number
  maximum?: number
  length?: number
  value?: number
  inclusive?: boolean
}
interface Schema {
  _zod: { def: Def }
}

class Unsupported extends Error {}

const isPlain = (v: unknown): v is Record<string, unknown> => {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false
  const p = Object.getPrototypeOf(v) as unknown
  return p === Object.prototype || p === null
}

/** The checks on a string, number or array, as one predicate over the already type-checked value. */
function checksOf(def: Def, kind: 'string' | 'number' | 'array'): Pred[] {
  const out: Pred[] = []
  for (const c of def.checks ?? []) {
    const d = c._zod.def
    if ((d.check === 'min_length' || d.check === 'max_length' || d.check === 'length_equals') && kind !== 'number') {
      const n = (d.check === 'min_length' ? d.minimum : d.check === 'max_length' ? d.maximum : d.length) as number
      if (typeof n !== 'number') throw new Unsupported()
      const len = (v: unknown): number => (v as { length: number }).length
      out.push(d.check === 'min_length' ? (v) => len(v) >= n : d.check === 'max_length' ? (v) => len(v) <= n : (v) => len(v) === n)
    } else if (d.check === 'string_format' && d.format === 'regex' && kind === 'string' && d.pattern instanceof RegExp && !d.pattern.global && !d.pattern.sticky) {
      const re = d.pattern
      out.push((v) => re.test(v as string))
    } else if (d.check === 'number_format' && d.format === 'safeint' && kind === 'number') {
      out.push((v) => Number.isSafeInteger(v))
    } else if ((d.check === 'greater_than' || d.check === 'less_than') && kind === 'number' && typeof d.value === 'number' && typeof d.inclusive === 'boolean') {
      const x = d.value
      if (d.check === 'greater_than') out.push(d.inclusive ? (v) => (v as number) >= x : (v) => (v as number) > x)
      else out.push(d.inclusive ? (v) => (v as number) <= x : (v) => (v as number) < x)
    } else throw new Unsupported()
  }
  return out
}

const all = (type: Pred, checks: Pred[]): Pred => {
  if (checks.length === 0) return type
  return (v) => {
    if (!type(v)) return false
    for (const c of checks) if (!c(v)) return false
    return true
  }
}

function build(s: Schema): Pred {
  const def = s._zod.def
  if (def.coerce === true) throw new Unsupported()
  switch (def.type) {
    case 'string':
      return all((v) => typeof v === 'string', checksOf(def, 'string'))
    case 'number':
      return all((v) => typeof v === 'number' && Number.isFinite(v), checksOf(def, 'number'))
    case 'boolean':
      if ((def.checks ?? []).length > 0) throw new Unsupported()
      return (v) => typeof v === 'boolean'
    case 'unknown':
      if ((def.checks ?? []).length > 0) throw new Unsupported()
      return () => true
    case 'literal': {
      if ((def.checks ?? []).length > 0 || def.values === undefined) throw new Unsupported()
      const values = def.values.filter((x) => typeof x === 'string' || (typeof x === 'number' && Number.isFinite(x)) || typeof x === 'boolean')
      if (values.length !== def.values.length) throw new Unsupported()
      return (v) => values.includes(v)
    }
    case 'enum': {
      if ((def.checks ?? []).length > 0 || def.entries === undefined) throw new Unsupported()
      const values = Object.values(def.entries)
      if (!values.every((x) => typeof x === 'string')) throw new Unsupported()
      return (v) => (values as unknown[]).includes(v)
    }
    case 'optional': {
      if ((def.checks ?? []).length > 0 || def.innerType === undefined) throw new Unsupported()
      const inner = build(def.innerType)
      return (v) => v === undefined || inner(v)
    }
    case 'array': {
      if (def.element === undefined) throw new Unsupported()
      const el = build(def.element)
      return all((v) => {
        if (!Array.isArray(v)) return false
        for (let i = 0; i < v.length; i++) if (!Object.hasOwn(v, i) || !el(v[i])) return false
        return true
      }, checksOf(def, 'array'))
    }
    case 'tuple': {
      if ((def.checks ?? []).length > 0 || def.items === undefined || (def.rest !== undefined && def.rest !== null)) throw new Unsupported()
      if (def.items.some((i) => i._zod.def.type === 'optional')) throw new Unsupported()
      const items = def.items.map(build)
      return (v) => Array.isArray(v) && v.length === items.length && items.every((p, i) => Object.hasOwn(v, i) && p(v[i]))
    }
    case 'record': {
      if ((def.checks ?? []).length > 0 || def.keyType === undefined || def.valueType === undefined) throw new Unsupported()
      if (def.keyType._zod.def.type !== 'string') throw new Unsupported()
      const key = build(def.keyType)
      const val = build(def.valueType)
      return (v) => {
        if (!isPlain(v)) return false
        for (const k of Object.keys(v)) if (k === '__proto__' || !key(k) || !val(v[k])) return false
        return true
      }
    }
    case 'object': {
      if ((def.checks ?? []).length > 0 || def.shape === undefined) throw new Unsupported()
      // strict (catchall never): an unknown member is an error; plain (no catchall): zod would drop
      // it from its output, so such a value is left to zod too
      const catchall = def.catchall?._zod.def.type
      if (catchall !== undefined && catchall !== 'never') throw new Unsupported()
      const fields = new Map<string, { pred: Pred; optional: boolean }>()
      for (const [k, f] of Object.entries(def.shape)) fields.set(k, { pred: build(f), optional: f._zod.def.type === 'optional' })
      const required = [...fields].filter(([, f]) => !f.optional).map(([k]) => k)
      return (v) => {
        if (!isPlain(v)) return false
        for (const k of required) if (!Object.hasOwn(v, k)) return false
        for (const k of Object.keys(v)) {
          const f = fields.get(k)
          if (f === undefined || !f.pred(v[k])) return false
        }
        return true
      }
    }
    case 'union': {
      if ((def.checks ?? []).length > 0 || def.options === undefined) throw new Unsupported()
      const disc = def.discriminator
      if (disc === undefined) throw new Unsupported()
      // a discriminated union: the option whose literal the discriminator names decides
      const byValue = new Map<unknown, Pred>()
      for (const o of def.options) {
        const d = o._zod.def.shape?.[disc]?._zod.def
        if (d?.type !== 'literal' || d.values === undefined) throw new Unsupported()
        const p = build(o)
        for (const x of d.values) {
          if (byValue.has(x)) throw new Unsupported()
          byValue.set(x, p)
        }
      }
      return (v) => {
        if (!isPlain(v)) return false
        const p = byValue.get(v[disc])
        return p !== undefined && p(v)
      }
    }
    default:
      throw new Unsupported()
  }
}

const cache = new WeakMap<object, Pred | null>()

/** The fast predicate of `schema`, or null when some part of it is left to zod. */
export function fastPredicate(schema: z.ZodType): Pred | null {
  let p = cache.get(schema)
  if (p === undefined) {
    try {
      p = build(schema as unknown as Schema)
    } catch (e) {
      if (!(e instanceof Unsupported)) throw e
      p = null
    }
    cache.set(schema, p)
  }
  return p
}

/** `schema.safeParse(value)`, answered without zod when the fast predicate accepts the value. */
export function safeParseFast<S extends z.ZodType>(schema: S, value: unknown): z.ZodSafeParseResult<z.output<S>> {
  const p = fastPredicate(schema)
  if (p !== null && p(value)) return { success: true, data: value as z.output<S> }
  return schema.safeParse(value) as z.ZodSafeParseResult<z.output<S>>
}
