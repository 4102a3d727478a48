// The `mirror` section: upstream registries, namespaced mirror paths, credentials and proxies.
// Decoding also checks what one value cannot say alone: unique names, references to configured
// upstreams, settings that come in pairs.
import { Type } from '@sinclair/typebox'
import { ConfigIssue } from './errors.js'
import { checkUnique, duration, oneOf, optionalPath, optionalProxyUrl, section, upstreamProxy } from './leaves.js'

export const gcrKeyFlows = ['jsonKey', 'oauth2'] as const
export type GcrKeyFlow = (typeof gcrKeyFlows)[number]

// A registry name as it appears in paths: lowercase repository-name components ("gcr.io",
// "registry.k8s.io", "localhost-5000"), so an upstream's name can prefix a repository path.
const registryNamePattern = '^[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*)*$'

// Files are watched and re-read on SIGHUP.
const upstreamTlsSchema = Type.Transform(
  section({
    /** PEM CA certificates trusted in addition to the public roots. */
    caPath: optionalPath('a path to a PEM CA bundle trusted besides the public roots, or ""'),
    /** PEM client certificate (and chain) and its key, for upstreams that require mTLS. */
    certPath: optionalPath('a path to a PEM client certificate shown to the upstream (mTLS), or ""'),
    keyPath: optionalPath('a path to the PEM private key of tls.certPath, or ""'),
    /** Skip certificate verification (warned about at start and on every reload). */
    insecureSkipVerify: Type.Boolean({ default: false, expected: 'true or false' }),
  }),
)
  // Only the pairing is checked here; the files are read and checked at start-up and on reload.
  .Decode((tls) => {
    if (tls.certPath !== undefined && tls.keyPath === undefined)
      throw new ConfigIssue(['keyPath'], 'required when tls.certPath is set (the private key of that client certificate)')
    if (tls.keyPath !== undefined && tls.certPath === undefined)
      throw new ConfigIssue(['certPath'], 'required when tls.keyPath is set (the client certificate of that key)')
    return tls
  })
  .Encode((tls) => tls)

const upstreamSchema = Type.Transform(
  Type.Object(
    {
      /** The registry's name: the `?ns=` value and path prefix that select it, and its cache prefix. */
      name: Type.String({ pattern: registryNamePattern, expected: 'a registry name like "gcr.io" or "docker.io"' }),
      /** Base URL, e.g. https://gcr.io or http://127.0.0.1:5001. */
      url: Type.Transform(Type.String({ pattern: '^https?://[^/?#\\s]+/?$', expected: 'an http(s) base URL like "https://gcr.io"' }))
        .Decode((url) => url.replace(/\/$/, ''))
        .Encode((url) => url),
      /** Other `?ns=` values (registry hosts) that select this upstream. */
      aliases: Type.Transform(Type.Array(Type.String({ minLength: 1 }), { default: [], expected: 'a list of registry hosts' }))
        .Decode((aliases) => aliases.map((alias) => alias.toLowerCase()))
        .Encode((aliases) => aliases),
      /** Milliseconds a tag → digest answer is served without asking the upstream again. */
      tagTtl: duration('5m'),
      /** Retries of idempotent requests on connection errors, 5xx and 429. */
      retries: Type.Integer({ minimum: 0, maximum: 10, default: 2, expected: 'an integer from 0 to 10' }),
      timeouts: section({
        connect: duration('5s', { positive: true }),
        headers: duration('30s', { positive: true }),
        bodyIdle: duration('1m', { positive: true }),
      }),
      /** Consecutive failures that open the circuit, and how long it stays open. */
      breaker: section({
        failures: Type.Integer({ minimum: 1, default: 5, expected: 'an integer of at least 1' }),
        cooldown: duration('30s', { positive: true }),
      }),
      /** Service-account key file (gcr.io, Artifact Registry), watched. One of gcrKeyPath and pullCredentialConfigPath. */
      gcrKeyPath: optionalPath('a path to a Google service-account key file (JSON, or base64 of it), or ""'),
      /** `jsonKey`: Basic `_json_key` at the registry; `oauth2`: JWT-bearer exchange at the key's token_uri. */
      gcrKeyFlow: oneOf(gcrKeyFlows, 'jsonKey'),
      /** Docker config.json for this upstream (else mirror.pullCredentialConfigPath applies), watched. */
      pullCredentialConfigPath: optionalPath('a path to a Docker config.json, or "" for mirror.pullCredentialConfigPath'),
      tls: upstreamTlsSchema,
      /** `default`: mirror.proxy's rules; `direct`: never a proxy; `url`: every request through that proxy. */
      proxy: upstreamProxy('"" (mirror.proxy applies), "none", or a proxy URL like "http://proxy.corp:3128"'),
    },
    { additionalProperties: false, expected: 'a mapping with name and url' },
  ),
)
  // Whether the files exist and hold usable credentials is checked at start-up, which reads them.
  .Decode((upstream) => {
    if (upstream.gcrKeyPath !== undefined && upstream.pullCredentialConfigPath !== undefined) {
      throw new ConfigIssue(['pullCredentialConfigPath'], 'set either gcrKeyPath or pullCredentialConfigPath on one upstream, not both')
    }
    if (upstream.gcrKeyFlow === 'oauth2' && upstream.gcrKeyPath === undefined) {
      throw new ConfigIssue(['gcrKeyFlow'], 'oauth2 needs gcrKeyPath (the service-account key that signs the assertion)')
    }
    return upstream
  })
  .Encode((upstream) => upstream)

const namespaceSchema = Type.Object(
  {
    name: Type.String({ pattern: registryNamePattern, expected: 'a repository path like "test-namespace"' }),
    upstream: Type.String({ minLength: 1, expected: 'the name of a configured upstream' }),
  },
  { additionalProperties: false, expected: 'a mapping with name and upstream' },
)

export const mirrorSchema = Type.Transform(
  section({
    /** The upstream unprefixed repository names fall back to: unset means the first upstream, "" none. */
    defaultUpstream: Type.Optional(Type.String({ expected: 'the name of a configured upstream, or "" for none' })),
    upstreams: Type.Transform(
      Type.Array(upstreamSchema, {
        default: [{ name: 'gcr.io', url: 'https://gcr.io' }],
        expected: 'a list of upstreams',
      }),
    )
      .Decode((upstreams) => {
        checkUnique(upstreams, 'name', 'upstream name')
        return upstreams
      })
      .Encode((upstreams) => upstreams),
    /** `/v2/<name>/<repo>` is local content under `<name>/<repo>`, falling back to `<upstream>/<repo>`. */
    namespaces: Type.Array(namespaceSchema, { default: [], expected: 'a list of namespaces' }),
    /** Docker config.json for upstreams without credentials settings of their own. */
    pullCredentialConfigPath: optionalPath('a path to a Docker config.json used by every upstream without credentials of its own, or ""'),
    // The proxy rules of upstreams whose `proxy` is unset. Defaults come from HTTPS_PROXY,
    // HTTP_PROXY and NO_PROXY (or their lowercase forms); URLs may carry user:pass@ (never logged).
    proxy: section({
      httpsProxy: optionalProxyUrl('a proxy URL for https upstreams like "http://proxy.corp:3128", or "" for none'),
      httpProxy: optionalProxyUrl('a proxy URL for http upstreams, or "" for none'),
      noProxy: Type.String({
        default: '',
        expected: 'a comma-separated list of hosts, domains, IP addresses or CIDR ranges reached directly',
      }),
    }),
  }),
)
  .Decode((mirror) => {
    const names = mirror.upstreams.map((u) => u.name)
    const known = (name: string) => names.includes(name)
    const knownList = names.length > 0 ? names.join(', ') : 'none configured'
    // Unset means the first upstream, so a single --upstream makes a working mirror; "" means none.
    const defaultUpstream = mirror.defaultUpstream === undefined ? names[0] : mirror.defaultUpstream || undefined
    if (defaultUpstream !== undefined && !known(defaultUpstream)) {
      throw new ConfigIssue(['defaultUpstream'], `no upstream named "${defaultUpstream}" (known: ${knownList})`)
    }
    mirror.namespaces.forEach((ns, i) => {
      if (!known(ns.upstream))
        throw new ConfigIssue(['namespaces', String(i), 'upstream'], `no upstream named "${ns.upstream}" (known: ${knownList})`)
      if (known(ns.name)) throw new ConfigIssue(['namespaces', String(i), 'name'], `"${ns.name}" is already an upstream's path prefix`)
    })
    return { ...mirror, defaultUpstream }
  })
  // Unset stands for "the first upstream", so that value prints as unset and round-trips.
  .Encode(({ defaultUpstream, ...mirror }) => {
    if (defaultUpstream === undefined) return { ...mirror, defaultUpstream: '' }
    return defaultUpstream === mirror.upstreams[0]?.name ? mirror : { ...mirror, defaultUpstream }
  })
