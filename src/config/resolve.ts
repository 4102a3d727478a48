// Raw (file-shaped, schema-checked) config ↔ resolved Config. Resolution also enforces the
// constraints a JSON schema cannot express, such as a port range or a non-zero interval.
import type { Config, RawConfig } from './schema.js'
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
    },
    cache: { manifestMemory: formatSize(config.cache.manifestMemory) },
    log: { level: config.log.level },
  }
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
