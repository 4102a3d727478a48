// The config schema: what operators write, with every default, and through its Transforms what
// code reads. `Config` is the decoded type, `RawConfig` the written one; there is no third shape.
// Durations decode to milliseconds, sizes to bytes, "" paths to undefined.
import { KindGuard, TransformKind, Type, type StaticDecode, type StaticEncode, type TSchema } from '@sinclair/typebox'
import { TransformDecodeError, Value } from '@sinclair/typebox/value'
import { authSchema } from './auth-schema.js'
import { coordinationSchema } from './coordination-schema.js'
import { ConfigIssue } from './errors.js'
import { duration, listenAddress, oneOf, optionalPath, section, size } from './leaves.js'
import { cacheQuotaKeys, maintenanceSchema } from './lifecycle-schema.js'
import { mirrorSchema } from './mirror-schema.js'
import { storageSchema } from './storage-schema.js'

export const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = (typeof logLevels)[number]
// auto: readable lines on a terminal, JSON lines anywhere else (a pipe, a file, a log shipper).
export const logFormats = ['auto', 'json', 'pretty'] as const
export type LogFormat = (typeof logFormats)[number]

export { storageDrivers, type StorageDriverName, type S3StorageConfig } from './storage-schema.js'

export const tlsVersions = ['TLSv1.2', 'TLSv1.3'] as const
export type TlsVersion = (typeof tlsVersions)[number]

// Only the pairing is checked here: whether the files exist and hold a matching certificate and
// key is for start-up (src/tls), which reads them, and again on every reload.
const tlsSchema = Type.Transform(
  section({
    cert: optionalPath('a path to a PEM certificate (chain) file, or "" for plain HTTP'),
    key: optionalPath('a path to a PEM private key file, or ""'),
    /** PEM CA bundle that client certificates must chain to (mTLS); undefined asks for none. */
    clientCa: optionalPath('a path to a PEM CA bundle, or "" to not ask for client certificates'),
    minVersion: oneOf(tlsVersions, 'TLSv1.2'),
    /**
     * HTTP/2 offered by ALPN, with HTTP/1.1 for clients that do not offer h2. Off by default: Node's
     * HTTP/2 over TLS served blobs at ~0.8x and manifests at ~0.6x its HTTP/1.1 (bench scenario 12),
     * and containerd takes h2 whenever it is offered.
     */
    http2: Type.Boolean({ default: false, expected: 'true or false' }),
  }),
)
  .Decode(({ cert, key, ...tls }) => {
    if (cert !== undefined && key === undefined)
      throw new ConfigIssue(['key'], 'required when tls.cert is set (the private key of that certificate)')
    if (key !== undefined && cert === undefined)
      throw new ConfigIssue(['cert'], 'required when tls.key is set (the certificate of that key)')
    if (tls.clientCa !== undefined && cert === undefined) {
      throw new ConfigIssue(['clientCa'], 'needs tls.cert and tls.key: client certificates can only be verified over TLS')
    }
    // The serving certificate (+ intermediates) and its key; undefined serves plain HTTP.
    const serving = cert === undefined || key === undefined ? undefined : { cert, key }
    return { serving, ...tls }
  })
  .Encode(({ serving, ...tls }) => ({ cert: serving?.cert, key: serving?.key, ...tls }))

export const configSchema = section({
  /** Where the HTTP server listens; host '0.0.0.0' when the address was ':port'. */
  listen: listenAddress(':5000'),
  storage: storageSchema,
  http: section({
    // 0 would disable the idle timeout and let dead keep-alive sockets pile up.
    /** An idle keep-alive socket is kept open this long. There is no request timeout. */
    idleTimeout: duration('75s', { positive: true }),
    /** In-flight requests may take this long to finish after SIGTERM. */
    shutdownTimeout: duration('30s'),
    /** Send stored blobs with sendfile(2) over plain HTTP/1.1 (Linux, when the helper is built). */
    sendfile: Type.Boolean({ default: true, expected: 'true or false' }),
  }),
  tls: tlsSchema,
  cache: section({
    /** Bytes of manifests kept in memory; 0 disables the cache. */
    manifestMemory: size('64MiB'),
    /**
     * Tag, manifest and repository metadata read from storage is reused this long without re-reading
     * it (this process's own writes update it at once); 0 reads storage every time.
     */
    metadataTtl: duration('5s'),
    ...cacheQuotaKeys,
  }),
  log: section({
    level: oneOf(logLevels, 'info'),
    format: oneOf(logFormats, 'auto'),
  }),
  auth: authSchema,
  mirror: mirrorSchema,
  coordination: coordinationSchema,
  maintenance: maintenanceSchema,
  imports: section({
    /** Finished server-side import records older than this are deleted (the newest `keep` stay whatever their age). */
    retention: duration('7d'),
    keep: Type.Integer({ minimum: 0, default: 20, expected: 'an integer of at least 0' }),
  }),
})

/** What code reads: the decoded config. */
export type Config = StaticDecode<typeof configSchema>
/** What operators write (after defaults): durations and sizes as strings, "" for unset paths. */
export type RawConfig = StaticEncode<typeof configSchema>

export type TlsConfig = Config['tls']
export type AuthConfig = Config['auth']
export type MirrorConfig = Config['mirror']
export type { CoordinationConfig } from './coordination-schema.js'
export type UpstreamConfig = MirrorConfig['upstreams'][number]
export type UpstreamTlsConfig = UpstreamConfig['tls']
/** HTTPS_PROXY / HTTP_PROXY / NO_PROXY as config; proxy URLs may carry user:pass@ (never logged). */
export type ProxyConfig = MirrorConfig['proxy']

export type DeepPartial<T> = T extends object ? { [K in keyof T]?: DeepPartial<T[K]> } : T

/**
 * Decodes a raw config that passed the schema's checks. Throws a ConfigIssue naming the key of
 * the first value that does not decode (a port out of range, a cert without its key, ...).
 */
export function decodeConfig(raw: unknown): Config {
  try {
    return Value.Decode(configSchema, raw)
  } catch (err) {
    if (!(err instanceof TransformDecodeError) || !(err.error instanceof ConfigIssue)) throw err
    const at = err.path
      .split('/')
      .slice(1)
      .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    throw new ConfigIssue([...at, ...err.error.path], err.error.problem)
  }
}

/** The inverse of decodeConfig, with units chosen for reading (`86400000` → `"1d"`). */
export function toRawConfig(config: Config): RawConfig {
  const raw = encode(configSchema, config)
  if (!Value.Check(configSchema, raw)) throw new Error('the config does not encode to a valid config file')
  return raw
}

// Value.Encode skips a Transform whose decoded value is undefined (TypeBox's rule for optional
// properties), which is what an unset path decodes to; so the walk is ours. Sections and lists
// are walked after their own Encode, as Value.Encode does.
function encode(schema: TSchema, value: unknown): unknown {
  const transform = (schema as { [TransformKind]?: { Encode(value: unknown): unknown } })[TransformKind]
  const written = transform === undefined ? value : transform.Encode(value)
  if (KindGuard.IsArray(schema) && Array.isArray(written)) return written.map((item) => encode(schema.items, item))
  if (!KindGuard.IsObject(schema) || typeof written !== 'object' || written === null) return written
  const entries = Object.entries(written).map(([key, child]) => {
    const property = Object.hasOwn(schema.properties, key) ? schema.properties[key] : undefined
    return [key, property === undefined ? child : encode(property, child)] as const
  })
  return Object.fromEntries(entries.filter(([, child]) => child !== undefined))
}

/** The raw config with every default filled in (a fresh object on each call). */
export function defaultRawConfig(): RawConfig {
  return Value.Default(configSchema, {}) as RawConfig
}

export function defaultConfig(): Config {
  return decodeConfig(defaultRawConfig())
}
