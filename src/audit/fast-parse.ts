/**
 * zod on the auditor's hot path (every leaf and every evidence payload of a log of millions):
 * `safeParseFast` parses with zod's own ahead-of-time compiled form of a schema (`z.compile`, made
 * once per schema), which runs a generated fast path and falls back to zod's runtime parser for
 * anything the fast path refuses, so the result and every error message are zod's. The schemas
 * stay the one definition; a schema part the compiler cannot model is left uncompiled by zod itself.
 */
import { z } from 'zod'

const compiled = new WeakMap<z.ZodType, z.ZodType>()

/** The compiled form of `schema` (made once). */
export function compiledSchema<S extends z.ZodType>(schema: S): S {
  let c = compiled.get(schema)
  if (c === undefined) {
    c = z.compile(schema)
    compiled.set(schema, c)
  }
  return c as S
}

/** `schema.safeParse(value)`, through its compiled form. */
export function safeParseFast<S extends z.ZodType>(schema: S, value: unknown): z.ZodSafeParseResult<z.output<S>> {
  return compiledSchema(schema).safeParse(value) as z.ZodSafeParseResult<z.output<S>>
}
