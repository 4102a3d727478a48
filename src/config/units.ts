// Human-friendly units used by the config file: durations, byte sizes and listen addresses.
// Each parser returns undefined for input it does not accept; the caller owns the error message,
// so every message can name the config key. The patterns are exported for the schema, which keeps
// `Value.Check(configSchema, raw)` meaningful on its own. Durations and sizes need a unit: a bare
// number was once read as milliseconds or bytes, so `idleTimeout: 75` silently meant 75 ms. Only
// 0 may stand alone, as it means the same in every unit.

export interface ListenAddress {
  host: string
  port: number
}

export const durationExpected = 'a duration like "24h", "30s" or "500ms"'
export const sizeExpected = 'a size like "64MiB", "1GiB" or "100MB"'
export const listenExpected = 'a listen address like ":5000", "127.0.0.1:5000" or "[::1]:5000" (port 0-65535)'

export const durationPattern = '^(?:\\d+(?:\\.\\d+)?(?:ms|s|m|h|d))+$'
export const sizePattern = '^\\d+(?:\\.\\d+)?\\s*(?:[BbKkMmGgTt]|[KkMmGgTt][Ii]?[Bb])$'
// Unbracketed hosts cannot contain ':', so IPv6 literals must be bracketed as in URLs.
export const listenPattern = '^(?:(?:\\[[0-9A-Za-z:.%]+\\]|[0-9A-Za-z.-]*):)?\\d{1,5}$'

const durationUnits: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

const sizeUnits: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1000,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tb: 1000 ** 4,
  tib: 1024 ** 4,
}

/** `"1h30m"`, `"500ms"`, `"7d"` or 0 → milliseconds. */
export function parseDuration(input: unknown): number | undefined {
  if (typeof input === 'number') return input === 0 ? 0 : undefined
  if (typeof input !== 'string' || !new RegExp(durationPattern).test(input)) return undefined
  let total = 0
  for (const [, amount, unit] of input.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) {
    total += Number(amount) * (durationUnits[unit ?? ''] ?? Number.NaN)
  }
  const ms = Math.round(total)
  return Number.isSafeInteger(ms) ? ms : undefined
}

/** `"64MiB"`, `"100MB"`, `"512k"`, `"100B"` or 0 → bytes. Units ignore case. */
export function parseSize(input: unknown): number | undefined {
  if (typeof input === 'number') return input === 0 ? 0 : undefined
  if (typeof input !== 'string' || !new RegExp(sizePattern).test(input)) return undefined
  const match = /^(\d+(?:\.\d+)?)\s*([A-Za-z]*)$/.exec(input)
  const factor = sizeUnits[(match?.[2] ?? '').toLowerCase()]
  if (match === null || factor === undefined) return undefined
  const bytes = Math.round(Number(match[1]) * factor)
  return Number.isSafeInteger(bytes) ? bytes : undefined
}

/** `"host:port"`, `":port"`, `"[v6]:port"` or a bare port; an empty host means all IPv4 interfaces. */
export function parseListen(input: unknown): ListenAddress | undefined {
  const text = typeof input === 'number' ? String(input) : input
  if (typeof text !== 'string' || !new RegExp(listenPattern).test(text)) return undefined
  const colon = text.lastIndexOf(':')
  const port = Number(text.slice(colon + 1))
  if (!Number.isInteger(port) || port > 65535) return undefined
  const host = colon < 0 ? '' : text.slice(0, colon).replace(/^\[(.*)\]$/, '$1')
  return { host: host === '' ? '0.0.0.0' : host, port }
}

/** Inverse of parseDuration using the largest unit that divides evenly, but "24h" over "1d". */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s'
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    const factor = durationUnits[unit] ?? 1
    if (ms % factor === 0 && !(unit === 'd' && ms === factor)) return `${ms / factor}${unit}`
  }
  return `${ms}ms`
}

/** Inverse of parseSize preferring binary units; sizes no unit divides are written in bytes ("1234B"). */
export function formatSize(bytes: number): string | 0 {
  if (bytes === 0) return 0
  for (const unit of ['TiB', 'GiB', 'MiB', 'KiB', 'TB', 'GB', 'MB', 'kB'] as const) {
    const factor = sizeUnits[unit.toLowerCase()] ?? 1
    if (bytes % factor === 0) return `${bytes / factor}${unit}`
  }
  return `${bytes}B`
}

/**
 * For a bare number other than 0 where a duration or size is expected, the problem and its fix:
 * `75 has no unit; write "75s" or "75ms"`. Undefined for anything else.
 */
export function missingUnit(kind: 'duration' | 'size', value: unknown): string | undefined {
  const text = typeof value === 'number' ? String(value) : typeof value === 'string' ? value.trim() : undefined
  if (text === undefined || !/^\d+(?:\.\d+)?$/.test(text) || Number(text) === 0) return undefined
  if (kind === 'duration') return `${text} has no unit; write "${text}s" or "${text}ms"`
  const bytes = Number(text)
  const formatted = Number.isSafeInteger(bytes) ? formatSize(bytes) : `${text}B`
  return formatted === `${text}B` || formatted === 0
    ? `${text} has no unit; write "${text}MiB" or "${text}B"`
    : `${text} has no unit; write "${formatted}" (${text} bytes) or "${text}B"`
}

/** Inverse of parseListen: all IPv4 interfaces print as ":port", as they are usually written. */
export function formatListen(address: ListenAddress): string {
  if (address.host === '0.0.0.0') return `:${address.port}`
  const host = address.host.includes(':') ? `[${address.host}]` : address.host
  return `${host}:${address.port}`
}
