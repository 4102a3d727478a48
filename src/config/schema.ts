// The config file schema (what operators write) and the resolved Config (what code reads).
// The schema carries every default; `expected` on a leaf is the phrase used in error messages
// ("expected <expected>, got <value>"). Durations resolve to milliseconds, sizes to bytes.
import { Type, type Static, type TLiteral, type TSchema, type TUnion } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { durationExpected, durationPattern, listenExpected, listenPattern, sizeExpected, sizePattern } from './units.js'
import { resolveConfig } from './resolve.js'

export const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = (typeof logLevels)[number]
// auto: readable lines on a terminal, JSON lines anywhere else (a pipe, a file, a log shipper).
export const logFormats = ['auto', 'json', 'pretty'] as const
export type LogFormat = (typeof logFormats)[number]

// Drivers name a sibling section holding their settings (storage.filesystem, later storage.s3),
// so adding S3 means one more literal here and one more optional section below.
export const storageDrivers = ['filesystem'] as const
export type StorageDriverName = (typeof storageDrivers)[number]

export const tlsVersions = ['TLSv1.2', 'TLSv1.3'] as const
export type TlsVersion = (typeof tlsVersions)[number]

export const roleNames = ['viewer', 'editor', 'admin'] as const

export const gcrKeyFlows = ['jsonKey', 'oauth2'] as const
export type GcrKeyFlow = (typeof gcrKeyFlows)[number]
export type RoleName = (typeof roleNames)[number]

type Literals<T extends readonly string[]> = { -readonly [K in keyof T]: TLiteral<T[K] & string> }

// The cast keeps each literal in the static type; TypeBox cannot infer it through map().
function oneOf<T extends readonly string[]>(values: T, defaultValue: T[number]): TUnion<Literals<T>> {
  const schema = Type.Union(
    values.map((v) => Type.Literal(v)),
    {
      default: defaultValue,
      expected: `one of ${values.join(', ')}`,
    },
  )
  return schema as TUnion as TUnion<Literals<T>>
}

function duration(defaultValue: string) {
  return Type.Union([Type.String({ pattern: durationPattern }), Type.Integer({ minimum: 0 })], {
    default: defaultValue,
    expected: durationExpected,
  })
}

function size(defaultValue: string) {
  return Type.Union([Type.String({ pattern: sizePattern }), Type.Integer({ minimum: 0 })], {
    default: defaultValue,
    expected: sizeExpected,
  })
}

// Every section defaults to {} so that TypeBox fills the defaults of its keys when it is absent.
function section<T extends Record<string, TSchema>>(properties: T) {
  return Type.Object(properties, { default: {}, additionalProperties: false, expected: 'a mapping of keys' })
}

// A registry name as it appears in paths: lowercase repository-name components ("gcr.io",
// "registry.k8s.io", "localhost-5000"), so an upstream's name can prefix a repository path.
const registryNamePattern = '^[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*)*$'

// Proxy URLs (http(s)://[user:pass@]host:port, or a bare host:port meaning http://) are checked
// in resolve.ts, not by a pattern here: a schema error quotes the value, and it may hold a password.
const upstreamSchema = Type.Object(
  {
    name: Type.String({ pattern: registryNamePattern, expected: 'a registry name like "gcr.io" or "docker.io"' }),
    url: Type.String({ pattern: '^https?://[^/?#\\s]+/?$', expected: 'an http(s) base URL like "https://gcr.io"' }),
    aliases: Type.Array(Type.String({ minLength: 1 }), { default: [], expected: 'a list of registry hosts' }),
    tagTtl: duration('5m'),
    retries: Type.Integer({ minimum: 0, maximum: 10, default: 2, expected: 'an integer from 0 to 10' }),
    timeouts: section({
      connect: duration('5s'),
      headers: duration('30s'),
      bodyIdle: duration('1m'),
    }),
    breaker: section({
      failures: Type.Integer({ minimum: 1, default: 5, expected: 'an integer of at least 1' }),
      cooldown: duration('30s'),
    }),
    // Upstream credentials; "" means unset. One of gcrKeyPath and pullCredentialConfigPath.
    gcrKeyPath: Type.String({ default: '', expected: 'a path to a Google service-account key file (JSON, or base64 of it), or ""' }),
    gcrKeyFlow: oneOf(gcrKeyFlows, 'jsonKey'),
    pullCredentialConfigPath: Type.String({
      default: '',
      expected: 'a path to a Docker config.json, or "" for mirror.pullCredentialConfigPath',
    }),
    // "" means unset, as in the top-level tls section.
    tls: section({
      caPath: Type.String({ default: '', expected: 'a path to a PEM CA bundle trusted besides the public roots, or ""' }),
      certPath: Type.String({ default: '', expected: 'a path to a PEM client certificate shown to the upstream (mTLS), or ""' }),
      keyPath: Type.String({ default: '', expected: 'a path to the PEM private key of tls.certPath, or ""' }),
      insecureSkipVerify: Type.Boolean({ default: false, expected: 'true or false' }),
    }),
    proxy: Type.String({ default: '', expected: '"" (mirror.proxy applies), "none", or a proxy URL like "http://proxy.corp:3128"' }),
  },
  { additionalProperties: false, expected: 'a mapping with name and url' },
)

const namespaceSchema = Type.Object(
  {
    name: Type.String({ pattern: registryNamePattern, expected: 'a repository path like "test-namespace"' }),
    upstream: Type.String({ minLength: 1, expected: 'the name of a configured upstream' }),
  },
  { additionalProperties: false, expected: 'a mapping with name and upstream' },
)

// Namespace patterns of role bindings: components separated by "/", where "*" stands for one
// component (or part of one: "team-*") and "**" for any number of them, none included.
const namespacePatternPattern = '^(?:\\*\\*|[a-z0-9._*-]+)(?:/(?:\\*\\*|[a-z0-9._*-]+))*$'
const namespacePatternExpected = 'a namespace pattern like "team-a/*", "team-a/**" or "**"'

const userSchema = Type.Object(
  {
    name: Type.String({ pattern: '^[^:\\s]+$', expected: 'a user name without ":" or spaces' }),
    // Optional: an entry without a password gives groups to the htpasswd user of that name.
    password: Type.Optional(
      Type.String({
        pattern: '^\\$2[aby]\\$\\d{2}\\$[./A-Za-z0-9]{53}$',
        expected: 'a bcrypt hash like "$2y$10$..." (htpasswd -nB <user>)',
      }),
    ),
    groups: Type.Array(Type.String({ pattern: '^[^:\\s]+$', expected: 'a group name' }), {
      default: [],
      expected: 'a list of group names',
    }),
  },
  { additionalProperties: false, expected: 'a mapping with name, password and groups' },
)

const roleBindingSchema = Type.Object(
  {
    subjects: Type.Array(Type.String({ pattern: '^[^:\\s]+$|^group:[^:\\s]+$', expected: 'a user name, "group:<name>" or "anonymous"' }), {
      minItems: 1,
      expected: 'a non-empty list of subjects',
    }),
    namespaces: Type.Array(Type.String({ pattern: namespacePatternPattern, expected: namespacePatternExpected }), {
      minItems: 1,
      expected: 'a non-empty list of namespace patterns',
    }),
    role: Type.Union([Type.Literal('viewer'), Type.Literal('editor'), Type.Literal('admin')], {
      expected: `one of ${roleNames.join(', ')}`,
    }),
  },
  { additionalProperties: false, expected: 'a mapping with subjects, namespaces and role' },
)

export const configSchema = section({
  listen: Type.Union([Type.String({ pattern: listenPattern }), Type.Integer({ minimum: 0 })], {
    default: ':5000',
    expected: listenExpected,
  }),
  storage: section({
    driver: oneOf(storageDrivers, 'filesystem'),
    filesystem: section({
      path: Type.String({ minLength: 1, default: './data', expected: 'a non-empty path' }),
    }),
    deleteEnabled: Type.Boolean({ default: true, expected: 'true or false' }),
    uploads: section({
      maxAge: duration('24h'),
      purgeInterval: duration('1h'),
    }),
  }),
  http: section({
    idleTimeout: duration('75s'),
    shutdownTimeout: duration('30s'),
    sendfile: Type.Boolean({ default: true, expected: 'true or false' }),
  }),
  // "" means unset: env and flags can only carry strings, and an empty one must mean "none".
  tls: section({
    cert: Type.String({ default: '', expected: 'a path to a PEM certificate (chain) file, or "" for plain HTTP' }),
    key: Type.String({ default: '', expected: 'a path to a PEM private key file, or ""' }),
    clientCa: Type.String({ default: '', expected: 'a path to a PEM CA bundle, or "" to not ask for client certificates' }),
    minVersion: oneOf(tlsVersions, 'TLSv1.2'),
    http2: Type.Boolean({ default: true, expected: 'true or false' }),
  }),
  cache: section({
    manifestMemory: size('64MiB'),
    metadataTtl: duration('5s'),
  }),
  log: section({
    level: oneOf(logLevels, 'info'),
    format: oneOf(logFormats, 'auto'),
  }),
  // "" means unset, as in the tls section: env and flags can only carry strings.
  auth: section({
    htpasswd: Type.String({ default: '', expected: 'a path to an htpasswd file (bcrypt entries, htpasswd -B), or "" for none' }),
    users: Type.Array(userSchema, { default: [], expected: 'a list of users' }),
    roles: Type.Array(roleBindingSchema, { default: [], expected: 'a list of role bindings' }),
    anonymousPull: Type.Array(Type.String({ pattern: namespacePatternPattern, expected: namespacePatternExpected }), {
      default: [],
      expected: 'a list of namespace patterns',
    }),
    anonymousMirrorPull: Type.Array(
      Type.String({ pattern: namespacePatternPattern, expected: 'an upstream-qualified pattern like "gcr.io/**"' }),
      {
        default: ['**'],
        expected: 'a list of namespace patterns',
      },
    ),
    token: section({
      issuer: Type.String({ minLength: 1, default: 'ferry', expected: 'a non-empty string' }),
      service: Type.String({ minLength: 1, default: 'ferry', expected: 'a non-empty string' }),
      realm: Type.String({
        default: '',
        pattern: '^(?:https?://\\S+)?$',
        expected: 'an http(s) URL of the token endpoint, or "" to derive it from each request',
      }),
      ttl: duration('5m'),
      refreshTtl: duration('7d'),
      key: Type.String({ default: '', expected: 'a path to a PEM private key (EC P-256 or RSA), or "" for a key generated at start' }),
    }),
    failedLogins: section({
      max: Type.Integer({ minimum: 1, default: 10, expected: 'an integer of at least 1' }),
      window: duration('5m'),
    }),
  }),
  mirror: section({
    defaultUpstream: Type.Optional(Type.String({ expected: 'the name of a configured upstream, or "" for none' })),
    upstreams: Type.Array(upstreamSchema, {
      default: [{ name: 'gcr.io', url: 'https://gcr.io' }],
      expected: 'a list of upstreams',
    }),
    namespaces: Type.Array(namespaceSchema, { default: [], expected: 'a list of namespaces' }),
    pullCredentialConfigPath: Type.String({
      default: '',
      expected: 'a path to a Docker config.json used by every upstream without credentials of its own, or ""',
    }),
    // Defaults come from HTTPS_PROXY, HTTP_PROXY and NO_PROXY (or their lowercase forms).
    proxy: section({
      httpsProxy: Type.String({ default: '', expected: 'a proxy URL for https upstreams like "http://proxy.corp:3128", or "" for none' }),
      httpProxy: Type.String({ default: '', expected: 'a proxy URL for http upstreams, or "" for none' }),
      noProxy: Type.String({
        default: '',
        expected: 'a comma-separated list of hosts, domains, IP addresses or CIDR ranges reached directly',
      }),
    }),
  }),
})

/** The config file as written, after defaults: durations and sizes may still be strings. */
export type RawConfig = Static<typeof configSchema>

export type DeepPartial<T> = T extends object ? { [K in keyof T]?: DeepPartial<T[K]> } : T

export interface Config {
  /** Where the HTTP server listens; host '0.0.0.0' when the address was ':port'. */
  listen: { host: string; port: number }
  storage: {
    driver: StorageDriverName
    filesystem: { path: string }
    /** Whether DELETE of manifests, tags and blobs is allowed. */
    deleteEnabled: boolean
    uploads: {
      /** Milliseconds after which an abandoned upload session is purged. */
      maxAge: number
      /** Milliseconds between purges of abandoned upload sessions. */
      purgeInterval: number
    }
  }
  http: {
    /** Milliseconds an idle keep-alive socket is kept open. There is no request timeout. */
    idleTimeout: number
    /** Milliseconds in-flight requests may take to finish after SIGTERM. */
    shutdownTimeout: number
    /** Send stored blobs with sendfile(2) over plain HTTP/1.1 (Linux, when the helper is built). */
    sendfile: boolean
  }
  tls: TlsConfig
  cache: {
    /** Bytes of manifests kept in memory; 0 disables the cache. */
    manifestMemory: number
    /**
     * Milliseconds tag, manifest and repository metadata read from storage is reused without
     * re-reading it (this process's own writes update it at once); 0 reads storage every time.
     */
    metadataTtl: number
  }
  log: { level: LogLevel; format: LogFormat }
  auth: AuthConfig
  mirror: MirrorConfig
}

export interface TlsConfig {
  /** PEM files of the serving certificate (+ intermediates) and its key; undefined serves plain HTTP. */
  serving: { cert: string; key: string } | undefined
  /** PEM CA bundle that client certificates must chain to (mTLS); undefined asks for none. */
  clientCa: string | undefined
  minVersion: TlsVersion
  /** HTTP/2 negotiated by ALPN, with HTTP/1.1 for clients that do not offer h2. */
  http2: boolean
}

export interface AuthConfig {
  /** htpasswd file (bcrypt entries), watched and re-read on change; undefined for none. */
  htpasswd: string | undefined
  /** Inline accounts; one without a password only gives groups to the htpasswd user of that name. */
  users: Array<{ name: string; password: string | undefined; groups: string[] }>
  roles: Array<{ subjects: string[]; namespaces: string[]; role: RoleName }>
  /** Namespace patterns of pushed repositories anonymous clients may pull. Anonymous push and delete are never allowed. */
  anonymousPull: string[]
  /** Patterns over `<upstream>/<repository>` that anyone may pull from the mirror (content not pushed here). */
  anonymousMirrorPull: string[]
  token: {
    issuer: string
    /** The `service` of challenges and the `aud` of tokens. */
    service: string
    /** The token endpoint URL advertised in challenges; undefined derives it from the request. */
    realm: string | undefined
    /** Milliseconds an access token is valid. */
    ttl: number
    /** Milliseconds a refresh token is valid. */
    refreshTtl: number
    /** PEM private key file signing tokens; undefined generates one in memory at start. */
    key: string | undefined
  }
  /** Per client address: `max` failed logins within `window` milliseconds, then 429 until the window frees. */
  failedLogins: { max: number; window: number }
}

export interface UpstreamConfig {
  /** The registry's name: the `?ns=` value and path prefix that select it, and its cache prefix. */
  name: string
  /** Base URL, e.g. https://gcr.io or http://127.0.0.1:5001. */
  url: string
  /** Other `?ns=` values (registry hosts) that select this upstream. */
  aliases: string[]
  /** Milliseconds a tag → digest answer is served without asking the upstream again. */
  tagTtl: number
  /** Retries of idempotent requests on connection errors, 5xx and 429. */
  retries: number
  timeouts: { connect: number; headers: number; bodyIdle: number }
  /** Consecutive failures that open the circuit, and how long it stays open. */
  breaker: { failures: number; cooldown: number }
  /** Service-account key file (gcr.io, Artifact Registry), watched; undefined for none. */
  gcrKeyPath: string | undefined
  /** `jsonKey`: Basic `_json_key` at the registry; `oauth2`: JWT-bearer exchange at the key's token_uri. */
  gcrKeyFlow: GcrKeyFlow
  /** Docker config.json for this upstream (else mirror.pullCredentialConfigPath applies), watched. */
  pullCredentialConfigPath: string | undefined
  tls: UpstreamTlsConfig
  /** `default`: mirror.proxy's rules; `direct`: never a proxy; `url`: every request through that proxy. */
  proxy: { kind: 'default' } | { kind: 'direct' } | { kind: 'url'; url: string }
}

/** Files are watched and re-read on SIGHUP; undefined means not set. */
export interface UpstreamTlsConfig {
  /** PEM CA certificates trusted in addition to the public roots. */
  caPath: string | undefined
  /** PEM client certificate (and chain) and its key, for upstreams that require mTLS. */
  certPath: string | undefined
  keyPath: string | undefined
  /** Skip certificate verification (warned about at start and on every reload). */
  insecureSkipVerify: boolean
}

/** HTTPS_PROXY / HTTP_PROXY / NO_PROXY as config; proxy URLs may carry user:pass@ (never logged). */
export interface ProxyConfig {
  httpsProxy: string | undefined
  httpProxy: string | undefined
  noProxy: string
}

export interface MirrorConfig {
  upstreams: UpstreamConfig[]
  /** The upstream unprefixed repository names fall back to; undefined for none. */
  defaultUpstream: string | undefined
  /** `/v2/<name>/<repo>` is local content under `<name>/<repo>`, falling back to `<upstream>/<repo>`. */
  namespaces: Array<{ name: string; upstream: string }>
  /** Docker config.json for upstreams without credentials settings of their own; undefined for none. */
  pullCredentialConfigPath?: string | undefined
  /** The proxy rules of upstreams whose `proxy` is unset; absent means none. */
  proxy?: ProxyConfig
}

/** The raw config with every default filled in (a fresh object on each call). */
export function defaultRawConfig(): RawConfig {
  return Value.Default(configSchema, {}) as RawConfig
}

export function defaultConfig(): Config {
  return resolveConfig(defaultRawConfig())
}
