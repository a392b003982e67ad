/** The local API as the console calls it: same origin, the session cookie, and the CSRF token on every change. */

export interface Problem {
  code: string
  title: string
  status: number
  detail?: string
}

export class ApiError extends Error {
  constructor(readonly problem: Problem) {
    super(`${problem.code}: ${problem.title}`)
  }
}

let csrf: string | null = null

export function setCsrf(token: string | null): void {
  csrf = token
}

export async function api<T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' }
  if (body !== undefined) headers['content-type'] = 'application/json'
  if (method !== 'GET' && csrf !== null) headers['x-csrf-token'] = csrf
  const res = await fetch(`/local/v1${path}`, { method, headers, credentials: 'same-origin', ...(body === undefined ? {} : { body: JSON.stringify(body) }) })
  const json = (await res.json().catch(() => ({ code: 'VN_ERR_LOCAL_BAD_RESPONSE', title: 'not JSON', status: res.status }))) as unknown
  if (!res.ok) throw new ApiError(json as Problem)
  return json as T
}

/** A POST of raw bytes (a Blob: the browser streams it) answered with JSON. */
export async function apiUpload<T>(path: string, body: Blob): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json', 'content-type': body.type }
  if (csrf !== null) headers['x-csrf-token'] = csrf
  const res = await fetch(`/local/v1${path}`, { method: 'POST', headers, credentials: 'same-origin', body })
  const json = (await res.json().catch(() => ({ code: 'VN_ERR_LOCAL_BAD_RESPONSE', title: 'not JSON', status: res.status }))) as unknown
  if (!res.ok) throw new ApiError(json as Problem)
  return json as T
}

export interface Session {
  app: string
  role: 'operator' | 'auditor'
  csrf: string | null
  expires: number | null
}

export interface Overview {
  member: string
  now: number
  ready: { ok: boolean; checks: Record<string, { ok: boolean; detail?: string }> }
  manifest: { seq: number; exp: number; federation: string } | null
  keys: { kind: 'message' | 'log'; kid: string; nbf: number; exp: number | null }[]
  certificate: { notAfter: number; pin: string } | null
  log: { size: number; checkpoint: { size: number; root: string; signers: string[]; cosigners: string[] } | null }
  traffic: TrafficSummary
  alerts: { kind: string; subject: string; index?: number }[]
}

export interface TrafficSummary {
  leaves: number
  exchanges: { provider: number; consumer: number }
  latency: { role: string; count: number; p50: number; p90: number; p99: number }[]
  forkEvidence: number
}

export interface Traffic {
  step: 'minute' | 'hour' | 'day'
  by: string
  times: number[]
  series: { name: string; counts: number[] }[]
  total: number
  summary: TrafficSummary
  /** as provider, per service and mode, since the node started (ms; null: above 5 s) */
  providerLatency: { service: string; mode: string; count: number; p50: number | null; p90: number | null; p99: number | null }[]
}

export interface Agreement {
  id: string
  consumer: string
  services: string[]
  purposes: string[]
  modes: string[]
  validFrom: string
  validUntil: string
  inForce: boolean
  day: string
  used: number
  dailyQuota: number
}

export interface Peers {
  federation: string
  seq: number
  self: string
  members: {
    id: string
    name: string
    role: string
    endpoint: string | null
    tlsPins: string[]
    messageKids: string[]
    logKids: string[]
    up: number | null
    lastCosigned: { size: number; at: number | null; root: string } | null
  }[]
}

export interface AuditResult {
  ok: boolean
  member: string
  origin: string
  leaves: number
  checkpoint: { size: number } | null
  counts: { provider: number; consumer: number; evidence: number; errors: number; warnings: number; infos: number }
  findings: { code: string; severity: string; message: string; xid?: string; role?: string; index?: number }[]
  truncated: boolean
}

/** An application as `GET /local/v1/applications` lists it: ids, digests, parties, services, states, deadlines. */
export interface ApplicationItem {
  id: string
  consumer: string
  provider: string
  services: string[]
  filedAt: number
  index: number
  digest: string
  reviewDue?: number
  due?: number
  state: 'filed' | 'under-review' | 'approved' | 'amended' | 'refused'
  decidedAt?: number
  agreement?: string
  role: 'provider' | 'consumer'
  overdue: boolean
  reviewDaysLeft?: number
  dueDaysLeft?: number
}

/** A dispute as `GET /local/v1/disputes` lists it (never the sealed note). */
export interface DisputeItem {
  id: string
  consumer: string
  provider: string
  xid: string
  ref: number
  reason: string
  filedAt: number
  index: number
  digest: string
  due?: number
  state: 'filed' | 'corrected' | 'rejected'
  resolvedAt?: number
  role: 'provider' | 'consumer'
  overdue: boolean
  dueDaysLeft?: number
}

/** The answer to an action on an application or dispute. */
export interface ActionResult {
  state: string
  index: number
  delivered: boolean
  agreement?: { id: string }
}
