// Raw (file-shaped, schema-checked) config ↔ resolved Config. Resolution also enforces the
// constraints a JSON schema cannot express, such as a port range or a non-zero interval.
import type { AuthConfig, Config, MirrorConfig, RawConfig, TlsConfig, UpstreamConfig } from './schema.js'
import { ConfigIssue, expectedGot } from './errors.js'
import {
  durationExpected,
  formatDuration,
  formatListen,
  formatSize,
  listenExpected,
  parseDuration,
  parseListen,
  parseSize,
  sizeExpected,
} from './units.js'

/** Throws ConfigIssue naming the key of the first value that does not resolve. */
export function resolveConfig(raw: RawConfig): Config {
  return {
    listen: parsed(['listen'], raw.listen, parseListen, listenExpected),
    storage: {
      driver: raw.storage.driver,
      filesystem: { path: raw.storage.filesystem.path },
      deleteEnabled: raw.storage.deleteEnabled,
      uploads: {
        maxAge: positiveDuration(['storage', 'uploads', 'maxAge'], raw.storage.uploads.maxAge),
        purgeInterval: positiveDuration(['storage', 'uploads', 'purgeInterval'], raw.storage.uploads.purgeInterval),
      },
    },
    http: {
      // 0 would disable the idle timeout and let dead keep-alive sockets pile up.
      idleTimeout: positiveDuration(['http', 'idleTimeout'], raw.http.idleTimeout),
      shutdownTimeout: parsed(['http', 'shutdownTimeout'], raw.http.shutdownTimeout, parseDuration, durationExpected),
      sendfile: raw.http.sendfile,
    },
    tls: resolveTls(raw.tls),
    cache: {
      manifestMemory: parsed(['cache', 'manifestMemory'], raw.cache.manifestMemory, parseSize, sizeExpected),
      metadataTtl: parsed(['cache', 'metadataTtl'], raw.cache.metadataTtl, parseDuration, durationExpected),
    },
    log: { level: raw.log.level, format: raw.log.format },
    auth: resolveAuth(raw.auth),
    mirror: resolveMirror(raw.mirror),
  }
}

// Only the pairing is checked here: whether the files exist and hold a matching certificate and
// key is for start-up (src/tls), which reads them, and again on every reload.
function resolveTls(raw: RawConfig['tls']): TlsConfig {
  if (raw.cert !== '' && raw.key === '')
    throw new ConfigIssue(['tls', 'key'], 'required when tls.cert is set (the private key of that certificate)')
  if (raw.key !== '' && raw.cert === '')
    throw new ConfigIssue(['tls', 'cert'], 'required when tls.key is set (the certificate of that key)')
  if (raw.clientCa !== '' && raw.cert === '') {
    throw new ConfigIssue(['tls', 'clientCa'], 'needs tls.cert and tls.key: client certificates can only be verified over TLS')
  }
  return {
    serving: raw.cert === '' ? undefined : { cert: raw.cert, key: raw.key },
    clientCa: raw.clientCa === '' ? undefined : raw.clientCa,
    minVersion: raw.minVersion,
    http2: raw.http2,
  }
}

// Anonymous push and delete are refused whatever the bindings say; binding "anonymous" to more
// than viewer is reported rather than silently ignored, so nobody believes it works.
function resolveAuth(raw: RawConfig['auth']): AuthConfig {
  const names = raw.users.map((u) => u.name)
  names.forEach((name, i) => {
    if (names.indexOf(name) !== i) throw new ConfigIssue(['auth', 'users', String(i), 'name'], `duplicate user "${name}"`)
  })
  raw.roles.forEach((binding, i) => {
    if (binding.role !== 'viewer' && binding.subjects.includes('anonymous')) {
      throw new ConfigIssue(
        ['auth', 'roles', String(i), 'subjects'],
        `"anonymous" can only be a viewer: anonymous push and delete are never allowed`,
      )
    }
  })
  return {
    htpasswd: raw.htpasswd === '' ? undefined : raw.htpasswd,
    users: raw.users.map((u) => ({ name: u.name, password: u.password, groups: [...u.groups] })),
    roles: raw.roles.map((r) => ({ subjects: [...r.subjects], namespaces: [...r.namespaces], role: r.role })),
    anonymousPull: [...raw.anonymousPull],
    anonymousMirrorPull: [...raw.anonymousMirrorPull],
    token: {
      issuer: raw.token.issuer,
      service: raw.token.service,
      realm: raw.token.realm === '' ? undefined : raw.token.realm,
      ttl: positiveDuration(['auth', 'token', 'ttl'], raw.token.ttl),
      refreshTtl: positiveDuration(['auth', 'token', 'refreshTtl'], raw.token.refreshTtl),
      key: raw.token.key === '' ? undefined : raw.token.key,
    },
    failedLogins: { max: raw.failedLogins.max, window: positiveDuration(['auth', 'failedLogins', 'window'], raw.failedLogins.window) },
  }
}

function rawAuth(auth: AuthConfig): RawConfig['auth'] {
  return {
    htpasswd: auth.htpasswd ?? '',
    users: auth.users.map((u) =>
      u.password === undefined ? { name: u.name, groups: u.groups } : { name: u.name, password: u.password, groups: u.groups },
    ),
    roles: auth.roles,
    anonymousPull: auth.anonymousPull,
    anonymousMirrorPull: auth.anonymousMirrorPull,
    token: {
      issuer: auth.token.issuer,
      service: auth.token.service,
      realm: auth.token.realm ?? '',
      ttl: formatDuration(auth.token.ttl),
      refreshTtl: formatDuration(auth.token.refreshTtl),
      key: auth.token.key ?? '',
    },
    failedLogins: { max: auth.failedLogins.max, window: formatDuration(auth.failedLogins.window) },
  }
}

function resolveMirror(raw: RawConfig['mirror']): MirrorConfig {
  const upstreams = raw.upstreams.map((u, i): UpstreamConfig => {
    const at = (key: string) => ['mirror', 'upstreams', String(i), key]
    return {
      name: u.name,
      url: u.url.replace(/\/$/, ''),
      aliases: u.aliases.map((alias) => alias.toLowerCase()),
      tagTtl: parsed(at('tagTtl'), u.tagTtl, parseDuration, durationExpected),
      retries: u.retries,
      timeouts: {
        connect: positiveDuration([...at('timeouts'), 'connect'], u.timeouts.connect),
        headers: positiveDuration([...at('timeouts'), 'headers'], u.timeouts.headers),
        bodyIdle: positiveDuration([...at('timeouts'), 'bodyIdle'], u.timeouts.bodyIdle),
      },
      breaker: { failures: u.breaker.failures, cooldown: positiveDuration([...at('breaker'), 'cooldown'], u.breaker.cooldown) },
      ...resolveUpstreamCredentials(u, at),
      tls: resolveUpstreamTls(u.tls, at('tls')),
      proxy:
        u.proxy === ''
          ? { kind: 'default' }
          : u.proxy === 'none'
            ? { kind: 'direct' }
            : { kind: 'url', url: proxyUrl(at('proxy'), u.proxy) },
    }
  })
  const names = upstreams.map((u) => u.name)
  names.forEach((name, i) => {
    if (names.indexOf(name) !== i) throw new ConfigIssue(['mirror', 'upstreams', String(i), 'name'], `duplicate upstream name "${name}"`)
  })
  const known = (name: string) => names.includes(name)
  const knownList = names.length > 0 ? names.join(', ') : 'none configured'
  // Unset means the first upstream, so a single --upstream makes a working mirror; "" means none.
  const defaultUpstream = raw.defaultUpstream === undefined ? names[0] : raw.defaultUpstream || undefined
  if (defaultUpstream !== undefined && !known(defaultUpstream)) {
    throw new ConfigIssue(['mirror', 'defaultUpstream'], `no upstream named "${defaultUpstream}" (known: ${knownList})`)
  }
  raw.namespaces.forEach((ns, i) => {
    if (!known(ns.upstream)) {
      throw new ConfigIssue(['mirror', 'namespaces', String(i), 'upstream'], `no upstream named "${ns.upstream}" (known: ${knownList})`)
    }
    if (known(ns.name)) {
      throw new ConfigIssue(['mirror', 'namespaces', String(i), 'name'], `"${ns.name}" is already an upstream's path prefix`)
    }
  })
  const proxy = {
    httpsProxy: raw.proxy.httpsProxy === '' ? undefined : proxyUrl(['mirror', 'proxy', 'httpsProxy'], raw.proxy.httpsProxy),
    httpProxy: raw.proxy.httpProxy === '' ? undefined : proxyUrl(['mirror', 'proxy', 'httpProxy'], raw.proxy.httpProxy),
    noProxy: raw.proxy.noProxy,
  }
  return {
    upstreams,
    defaultUpstream,
    namespaces: raw.namespaces.map((ns) => ({ name: ns.name, upstream: ns.upstream })),
    pullCredentialConfigPath: raw.pullCredentialConfigPath || undefined,
    proxy,
  }
}

// Only the pairing is checked here; the files are read and checked at start-up and on reload.
function resolveUpstreamTls(raw: RawConfig['mirror']['upstreams'][number]['tls'], at: string[]): UpstreamConfig['tls'] {
  if (raw.certPath !== '' && raw.keyPath === '')
    throw new ConfigIssue([...at, 'keyPath'], 'required when tls.certPath is set (the private key of that client certificate)')
  if (raw.keyPath !== '' && raw.certPath === '')
    throw new ConfigIssue([...at, 'certPath'], 'required when tls.keyPath is set (the client certificate of that key)')
  return {
    caPath: raw.caPath === '' ? undefined : raw.caPath,
    certPath: raw.certPath === '' ? undefined : raw.certPath,
    keyPath: raw.keyPath === '' ? undefined : raw.keyPath,
    insecureSkipVerify: raw.insecureSkipVerify,
  }
}

// A bare host:port is http://, as curl and Go read HTTPS_PROXY. Messages never quote the value:
// it may carry a password.
function proxyUrl(path: string[], value: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`
  let url: URL
  try {
    url = new URL(withScheme)
  } catch {
    throw new ConfigIssue(path, 'expected a proxy URL like "http://proxy.corp:3128" (value not shown: it may hold credentials)')
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new ConfigIssue(path, `expected an http:// or https:// proxy URL, got ${url.protocol}//`)
  if (url.hostname === '' || (url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '') {
    throw new ConfigIssue(
      path,
      'expected a proxy URL like "http://proxy.corp:3128", without a path (value not shown: it may hold credentials)',
    )
  }
  return url.toString().replace(/\/$/, '')
}

// Whether the files exist and hold usable credentials is checked at start-up, which reads them.
function resolveUpstreamCredentials(
  raw: RawConfig['mirror']['upstreams'][number],
  at: (key: string) => string[],
): Pick<UpstreamConfig, 'gcrKeyPath' | 'gcrKeyFlow' | 'pullCredentialConfigPath'> {
  if (raw.gcrKeyPath !== '' && raw.pullCredentialConfigPath !== '') {
    throw new ConfigIssue(at('pullCredentialConfigPath'), 'set either gcrKeyPath or pullCredentialConfigPath on one upstream, not both')
  }
  if (raw.gcrKeyFlow === 'oauth2' && raw.gcrKeyPath === '') {
    throw new ConfigIssue(at('gcrKeyFlow'), 'oauth2 needs gcrKeyPath (the service-account key that signs the assertion)')
  }
  return {
    gcrKeyPath: raw.gcrKeyPath === '' ? undefined : raw.gcrKeyPath,
    gcrKeyFlow: raw.gcrKeyFlow,
    pullCredentialConfigPath: raw.pullCredentialConfigPath === '' ? undefined : raw.pullCredentialConfigPath,
  }
}

/** The inverse of resolveConfig, with units chosen for reading (`86400000` → `"1d"`). */
export function toRawConfig(config: Config): RawConfig {
  return {
    listen: formatListen(config.listen),
    storage: {
      driver: config.storage.driver,
      filesystem: { path: config.storage.filesystem.path },
      deleteEnabled: config.storage.deleteEnabled,
      uploads: {
        maxAge: formatDuration(config.storage.uploads.maxAge),
        purgeInterval: formatDuration(config.storage.uploads.purgeInterval),
      },
    },
    http: {
      idleTimeout: formatDuration(config.http.idleTimeout),
      shutdownTimeout: formatDuration(config.http.shutdownTimeout),
      sendfile: config.http.sendfile,
    },
    tls: {
      cert: config.tls.serving?.cert ?? '',
      key: config.tls.serving?.key ?? '',
      clientCa: config.tls.clientCa ?? '',
      minVersion: config.tls.minVersion,
      http2: config.tls.http2,
    },
    cache: { manifestMemory: formatSize(config.cache.manifestMemory), metadataTtl: formatDuration(config.cache.metadataTtl) },
    log: { level: config.log.level, format: config.log.format },
    auth: rawAuth(config.auth),
    mirror: {
      ...rawDefaultUpstream(config.mirror),
      upstreams: config.mirror.upstreams.map((u) => ({
        name: u.name,
        url: u.url,
        aliases: u.aliases,
        tagTtl: formatDuration(u.tagTtl),
        retries: u.retries,
        timeouts: {
          connect: formatDuration(u.timeouts.connect),
          headers: formatDuration(u.timeouts.headers),
          bodyIdle: formatDuration(u.timeouts.bodyIdle),
        },
        breaker: { failures: u.breaker.failures, cooldown: formatDuration(u.breaker.cooldown) },
        gcrKeyPath: u.gcrKeyPath ?? '',
        gcrKeyFlow: u.gcrKeyFlow,
        pullCredentialConfigPath: u.pullCredentialConfigPath ?? '',
        tls: {
          caPath: u.tls.caPath ?? '',
          certPath: u.tls.certPath ?? '',
          keyPath: u.tls.keyPath ?? '',
          insecureSkipVerify: u.tls.insecureSkipVerify,
        },
        proxy: u.proxy.kind === 'default' ? '' : u.proxy.kind === 'direct' ? 'none' : u.proxy.url,
      })),
      namespaces: config.mirror.namespaces,
      pullCredentialConfigPath: config.mirror.pullCredentialConfigPath ?? '',
      proxy: {
        httpsProxy: config.mirror.proxy?.httpsProxy ?? '',
        httpProxy: config.mirror.proxy?.httpProxy ?? '',
        noProxy: config.mirror.proxy?.noProxy ?? '',
      },
    },
  }
}

// Unset stands for "the first upstream", so that value prints as unset and round-trips.
function rawDefaultUpstream(mirror: MirrorConfig): { defaultUpstream?: string } {
  if (mirror.defaultUpstream === undefined) return { defaultUpstream: '' }
  return mirror.defaultUpstream === mirror.upstreams[0]?.name ? {} : { defaultUpstream: mirror.defaultUpstream }
}

function parsed<T>(path: string[], value: unknown, parse: (v: unknown) => T | undefined, expected: string): T {
  const result = parse(value)
  if (result === undefined) throw new ConfigIssue(path, expectedGot(expected, value))
  return result
}

function positiveDuration(path: string[], value: unknown): number {
  const ms = parsed(path, value, parseDuration, durationExpected)
  if (ms === 0) throw new ConfigIssue(path, expectedGot('a duration greater than 0', value))
  return ms
}
