// The building blocks of the config schema. Each is a TypeBox type carrying its default and the
// `expected` phrase of its error messages ("expected <expected>, got <value>"); where the value code
// reads differs from what operators write (durations → milliseconds, "" → undefined), it is a
// Transform whose Decode gives that value and whose Encode writes it back (`ferry config print`).
// A Decode that refuses a value throws a ConfigIssue with a path relative to the value.
import { Type, type TLiteral, type TSchema, type TUnion } from '@sinclair/typebox'
import { ConfigIssue, expectedGot } from './errors.js'
import {
  durationExpected,
  durationPattern,
  formatDuration,
  formatListen,
  formatSize,
  listenExpected,
  listenPattern,
  parseDuration,
  parseListen,
  parseSize,
  sizeExpected,
  sizePattern,
} from './units.js'

type Literals<T extends readonly string[]> = { -readonly [K in keyof T]: TLiteral<T[K] & string> }

/** One of a fixed list of strings; without a default, the key is required. */
export function oneOf<T extends readonly string[]>(values: T, defaultValue?: T[number]): TUnion<Literals<T>> {
  const schema = Type.Union(
    values.map((v) => Type.Literal(v)),
    { ...(defaultValue === undefined ? {} : { default: defaultValue }), expected: `one of ${values.join(', ')}` },
  )
  // The cast keeps each literal in the static type; TypeBox cannot infer it through map().
  return schema as TUnion as TUnion<Literals<T>>
}

/** A mapping of keys that defaults to {}, so TypeBox fills the defaults of its keys when it is absent. */
export function section<T extends Record<string, TSchema>>(properties: T) {
  return Type.Object(properties, { default: {}, additionalProperties: false, expected: 'a mapping of keys' })
}

// `unit` lets an error about a bare number show the fix (validate.ts).
/** "30s", "1h30m" or 0 → milliseconds; `positive` refuses 0 where it would disable something. */
export function duration(defaultValue: string, options: { positive?: boolean } = {}) {
  const written = Type.Union([Type.String({ pattern: durationPattern }), Type.Literal(0)], {
    default: defaultValue,
    expected: durationExpected,
    unit: 'duration',
  })
  return Type.Transform(written)
    .Decode((value) => {
      const ms = parseDuration(value)
      if (ms === undefined) throw new ConfigIssue([], expectedGot(durationExpected, value))
      if (options.positive === true && ms === 0) throw new ConfigIssue([], expectedGot('a duration greater than 0', value))
      return ms
    })
    .Encode((ms) => formatDuration(ms))
}

/** "64MiB", "100MB" or 0 → bytes. */
export function size(defaultValue: string) {
  const written = Type.Union([Type.String({ pattern: sizePattern }), Type.Literal(0)], {
    default: defaultValue,
    expected: sizeExpected,
    unit: 'size',
  })
  return Type.Transform(written)
    .Decode((value) => {
      const bytes = parseSize(value)
      if (bytes === undefined) throw new ConfigIssue([], expectedGot(sizeExpected, value))
      return bytes
    })
    .Encode((bytes) => formatSize(bytes))
}

/** ":5000", "127.0.0.1:5000", "[::1]:5000" or a bare port → host and port; host "0.0.0.0" for ":port". */
export function listenAddress(defaultValue: string) {
  const written = Type.Union([Type.String({ pattern: listenPattern }), Type.Integer({ minimum: 0 })], {
    default: defaultValue,
    expected: listenExpected,
  })
  return Type.Transform(written)
    .Decode((value) => {
      const address = parseListen(value)
      if (address === undefined) throw new ConfigIssue([], expectedGot(listenExpected, value))
      return address
    })
    .Encode((address) => formatListen(address))
}

/**
 * A file path where "" means unset (undefined): environment variables and flags can only carry
 * strings, and an empty one must mean "none".
 */
export function optionalPath(expected: string) {
  return Type.Transform(Type.String({ default: '', expected }))
    .Decode((path): string | undefined => (path === '' ? undefined : path))
    .Encode((path) => path ?? '')
}

/** How one upstream reaches its origin: mirror.proxy's rules, never a proxy, or one proxy. */
export type UpstreamProxy = { kind: 'default' } | { kind: 'direct' } | { kind: 'url'; url: string }

/** An upstream's `proxy`: "" (mirror.proxy applies), "none", or a proxy URL. */
export function upstreamProxy(expected: string) {
  return Type.Transform(Type.String({ default: '', expected }))
    .Decode((value): UpstreamProxy =>
      value === '' ? { kind: 'default' } : value === 'none' ? { kind: 'direct' } : { kind: 'url', url: proxyUrl(value) },
    )
    .Encode((proxy) => (proxy.kind === 'default' ? '' : proxy.kind === 'direct' ? 'none' : proxy.url))
}

/** A proxy URL or "" for none (undefined). */
export function optionalProxyUrl(expected: string) {
  return Type.Transform(Type.String({ default: '', expected }))
    .Decode((value): string | undefined => (value === '' ? undefined : proxyUrl(value)))
    .Encode((url) => url ?? '')
}

// A bare host:port is http://, as curl and Go read HTTPS_PROXY. Proxy URLs are checked here rather
// than by a pattern: a schema error quotes the value, and it may hold a password, so these
// messages never do.
function proxyUrl(value: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`
  let url: URL
  try {
    url = new URL(withScheme)
  } catch {
    throw new ConfigIssue([], 'expected a proxy URL like "http://proxy.corp:3128" (value not shown: it may hold credentials)')
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigIssue([], `expected an http:// or https:// proxy URL, got ${url.protocol}//`)
  }
  if (url.hostname === '' || (url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '') {
    throw new ConfigIssue(
      [],
      'expected a proxy URL like "http://proxy.corp:3128", without a path (value not shown: it may hold credentials)',
    )
  }
  return url.toString().replace(/\/$/, '')
}

/** Throws a ConfigIssue at `[index, key]` for the second item whose `key` repeats an earlier one's. */
export function checkUnique<T>(items: readonly T[], key: keyof T & string, what: string): void {
  const values = items.map((item) => item[key])
  values.forEach((value, i) => {
    if (values.indexOf(value) !== i) throw new ConfigIssue([String(i), key], `duplicate ${what} "${String(value)}"`)
  })
}
