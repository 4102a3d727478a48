// Raw (file-shaped, schema-checked) config ↔ resolved Config. Resolution also enforces the
// constraints a JSON schema cannot express, such as a port range or a non-zero interval.
import type { Config, MirrorConfig, RawConfig, UpstreamConfig } from './schema.js'
import { ConfigIssue, expectedGot } from './errors.js'
import {
  durationExpected, formatDuration, formatListen, formatSize, listenExpected, parseDuration,
  parseListen, parseSize, sizeExpected,
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
    },
    cache: {
      manifestMemory: parsed(['cache', 'manifestMemory'], raw.cache.manifestMemory, parseSize, sizeExpected),
    },
    log: { level: raw.log.level },
    mirror: resolveMirror(raw.mirror),
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
  return { upstreams, defaultUpstream, namespaces: raw.namespaces.map((ns) => ({ name: ns.name, upstream: ns.upstream })) }
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
    },
    cache: { manifestMemory: formatSize(config.cache.manifestMemory) },
    log: { level: config.log.level },
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
      })),
      namespaces: config.mirror.namespaces,
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
