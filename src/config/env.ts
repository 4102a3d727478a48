// FERRY_* environment overrides. A variable name is matched against the schema one section at
// a time, case-insensitively, where a camelCase key may be spelled with or without underscores:
// FERRY_HTTP_IDLE_TIMEOUT and FERRY_HTTP_IDLETIMEOUT both set http.idleTimeout. Values are
// strings, so they are coerced to what the key accepts (booleans, integers) before validation.
// A FERRY_* name that is no key is not fatal: Kubernetes injects FERRY_SERVICE_HOST,
// FERRY_PORT_5000_TCP and the like into every pod when a Service is named `ferry`, and other
// tools export FERRY_* helpers. Those shapes are noted at debug level; anything else is a warning
// naming the closest key, so a typo is still visible at start.
import type { TSchema } from '@sinclair/typebox'
import { closest } from './errors.js'
import { leafKinds, leafPaths, sectionProperties, type PlainObject } from './validate.js'

export const envPrefix = 'FERRY_'

export interface EnvOverrides {
  data: PlainObject
  /** Which variable set each key path (dotted), for error messages. */
  sources: Map<string, string>
}

/** A FERRY_* variable that names no config key and was therefore ignored. */
export interface IgnoredEnv {
  variable: string
  /** `service-link`: a Kubernetes service-link variable (debug); `unknown`: likely a typo (warning). */
  kind: 'service-link' | 'unknown'
  /** The closest config variable, for an unknown one. */
  didYouMean?: string
}

// What Kubernetes injects for a Service <NAME> (dashes become underscores): <NAME>_SERVICE_HOST,
// <NAME>_SERVICE_PORT, <NAME>_SERVICE_PORT_<PORT NAME>, <NAME>_PORT, <NAME>_PORT_<n>_<PROTO> and
// <NAME>_PORT_<n>_<PROTO>_{PROTO,PORT,ADDR}. A Service named `ferry-cache` gives FERRY_CACHE_SERVICE_HOST.
const serviceLinkPattern =
  /^FERRY_(?:[A-Z0-9_]+_)?(?:SERVICE_HOST|SERVICE_PORT(?:_[A-Z0-9_]+)?|PORT(?:_\d+_(?:TCP|UDP|SCTP)(?:_(?:PROTO|PORT|ADDR))?)?)$/

/** Whether `name` has the shape of a Kubernetes service-link variable. */
export function isServiceLinkVariable(name: string): boolean {
  return serviceLinkPattern.test(name.toUpperCase())
}

/**
 * Reads FERRY_* variables (except `ignore`d ones that are not config keys, like FERRY_CONFIG).
 * Empty values count as unset, as `FOO=${FOO:-}` in compose files produces them.
 * A FERRY_* variable that names no config key is skipped and told to `onIgnored`.
 */
export function envOverrides(
  schema: TSchema,
  env: Record<string, string | undefined>,
  ignore: readonly string[] = [],
  onIgnored: (ignored: IgnoredEnv) => void = () => {},
): EnvOverrides {
  const data: PlainObject = {}
  const sources = new Map<string, string>()
  const names = Object.keys(env)
    .filter((n) => n.toUpperCase().startsWith(envPrefix))
    .sort()
  for (const name of names) {
    const value = env[name]
    if (value === undefined || value === '' || ignore.includes(name.toUpperCase())) continue
    const segments = name
      .slice(envPrefix.length)
      .toUpperCase()
      .split('_')
      .filter((s) => s !== '')
    const path = matchPath(schema, segments)
    if (path === undefined) {
      if (isServiceLinkVariable(name)) onIgnored({ variable: name, kind: 'service-link' })
      else {
        const hint = closest(name.toUpperCase(), leafPaths(schema).map(envName))
        onIgnored({ variable: name, kind: 'unknown', ...(hint === undefined ? {} : { didYouMean: hint }) })
      }
      continue
    }
    setPath(data, path, coerce(value, leafSchema(schema, path)))
    sources.set(path.join('.'), name)
  }
  return { data, sources }
}

/** The canonical variable for a key path: FERRY_STORAGE_UPLOADS_MAX_AGE. */
export function envName(path: readonly string[]): string {
  return envPrefix + path.map((k) => k.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_')
}

// Tries every split of the segments into keys; backtracking settles names where one key's
// spelling is a prefix of another's.
function matchPath(schema: TSchema, segments: string[]): string[] | undefined {
  const properties = sectionProperties(schema)
  if (properties === undefined) return segments.length === 0 ? [] : undefined
  for (let take = 1; take <= segments.length; take++) {
    const spelled = segments.slice(0, take).join('')
    for (const [key, child] of Object.entries(properties)) {
      if (normalise(key) !== spelled) continue
      const rest = matchPath(child, segments.slice(take))
      if (rest !== undefined) return [key, ...rest]
    }
  }
  return undefined
}

function normalise(key: string): string {
  return key.replace(/[^A-Za-z0-9]/g, '').toUpperCase()
}

function leafSchema(schema: TSchema, path: readonly string[]): TSchema {
  return path.reduce((s, key) => sectionProperties(s)?.[key] ?? s, schema)
}

// Anything that does not coerce cleanly stays a string, so validation reports it as given.
function coerce(value: string, schema: TSchema): unknown {
  const kinds = leafKinds(schema)
  const text = value.trim()
  if (kinds.has('Boolean')) {
    if (/^(true|yes|on|1)$/i.test(text)) return true
    if (/^(false|no|off|0)$/i.test(text)) return false
  }
  if ((kinds.has('Integer') || kinds.has('Number')) && /^-?\d+(\.\d+)?$/.test(text)) return Number(text)
  return value
}

function setPath(target: PlainObject, path: readonly string[], value: unknown): void {
  let node = target
  for (const key of path.slice(0, -1)) {
    const next = node[key]
    node = typeof next === 'object' && next !== null ? (next as PlainObject) : (node[key] = {})
  }
  const last = path[path.length - 1]
  if (last !== undefined) node[last] = value
}
