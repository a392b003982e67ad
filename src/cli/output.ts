/**
 * The one `--json` shape of every command (docs/CLI.md "JSON output"):
 *   success  { "ok": true,  "command": "<command>", ...what the command returns }
 *   failure  { "ok": false, "command": "<command>", "error": { "code": "VN_ERR_...", "message": "...", ... }, ...any partial result }
 * A list is returned under a named member, never as a bare array. And the usage text, prefixed
 * `usage: ` once, whatever the command's own text starts with.
 */
import { VnError, isVnError } from '../errors.js'

/** `{ ok: true, command, ...fields }` as one line of JSON. */
export function okDoc(command: string, fields: object = {}): string {
  return JSON.stringify({ ok: true, command, ...fields })
}

/** `{ ok: false, command, error: { code, message, ... }, ...fields }` as one line of JSON. */
export function errorDoc(command: string, error: { code: string; message: string } & Record<string, unknown>, fields: object = {}): string {
  return JSON.stringify({ ...fields, ok: false, command, error })
}

/**
 * The error member for any thrown value: a VnError's code, its detail (or title) as the message,
 * its HTTP status and, for a peer's error, what the peer said; anything else VN_ERR_INTERNAL.
 */
export function errorOf(e: unknown): { code: string; message: string } & Record<string, unknown> {
  if (isVnError(e)) {
    const out: { code: string; message: string } & Record<string, unknown> = { code: e.code, message: e.detail ?? e.title, status: e.statusCode, title: e.title }
    if (e.peer !== undefined) out.peer = { ...e.peer }
    return out
  }
  const internal = new VnError('VN_ERR_INTERNAL')
  return { code: internal.code, message: (e as Error)?.message ?? String(e), status: 500, title: internal.title }
}

/** The usage text with a single `usage: ` prefix. */
export function usageText(usage: string): string {
  return usage.startsWith('usage: ') ? usage : `usage: ${usage}`
}
