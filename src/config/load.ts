// Loads the config: YAML file < FERRY_* environment < explicit overrides (CLI flags), then
// defaults, validation and decoding (schema.ts). Every error is a ConfigError naming the key and
// where the offending value came from. The environment is passed in: only the CLI reads process.env.
import { Value } from '@sinclair/typebox/value'
import { ConfigError, ConfigIssue } from './errors.js'
import { envOverrides, type EnvOverrides, type IgnoredEnv } from './env.js'
import { configSchema, decodeConfig, type Config, type DeepPartial, type RawConfig } from './schema.js'
import { checkKeys, checkValues, isPlainObject, type PlainObject } from './validate.js'
import { readConfigFile, type ConfigFile } from './yaml-file.js'

export { ConfigError } from './errors.js'

/** FERRY_* variables that are not config keys and so are not overrides. */
export const nonConfigEnv = ['FERRY_CONFIG'] as const

export interface LoadConfigOptions {
  /** YAML config file; without one, only the environment, overrides and defaults apply. */
  file?: string
  /** Environment variables; FERRY_* ones override the file. */
  env?: Record<string, string | undefined>
  /** Highest-precedence values (e.g. from CLI flags); undefined leaves are ignored. */
  overrides?: DeepPartial<RawConfig>
  /**
   * Lowest-precedence values, below the file, taken from conventional variables such as
   * HTTPS_PROXY; `sources` names the variable behind each dotted key for error messages.
   */
  defaults?: EnvOverrides
  /** Told about each FERRY_* variable that names no config key (a service link, or a typo). */
  onIgnoredEnv?: (ignored: IgnoredEnv) => void
}

interface Layers {
  defaults: EnvOverrides
  file: ConfigFile | undefined
  env: EnvOverrides
  overrides: PlainObject
}

export async function loadConfig(options: LoadConfigOptions = {}): Promise<Config> {
  const file = options.file === undefined ? undefined : await readConfigFile(options.file)
  let layers: Layers | undefined
  try {
    const env = envOverrides(configSchema, options.env ?? {}, nonConfigEnv, options.onIgnoredEnv)
    const defaults = options.defaults ?? { data: {}, sources: new Map<string, string>() }
    layers = { defaults, file, env, overrides: (options.overrides ?? {}) as PlainObject }
    const merged = merge(merge(merge(merge({}, defaults.data), file?.data ?? {}), env.data), layers.overrides)
    checkKeys(configSchema, merged)
    const raw: unknown = Value.Default(configSchema, merged)
    checkValues(configSchema, raw)
    return decodeConfig(raw)
  } catch (err) {
    throw toConfigError(err, layers)
  }
}

function toConfigError(err: unknown, layers: Layers | undefined): unknown {
  if (!(err instanceof ConfigIssue)) return err
  if (err.path.length === 0) return new ConfigError(`config error: ${err.problem}`)
  const key = err.path.join('.')
  const origin = layers === undefined ? 'default' : originOf(layers, err.path)
  if (origin === 'file' && layers?.file !== undefined) {
    const { file } = layers.file
    const line = layers.file.lineOf(err.path)
    const where = line === undefined ? file : `${file}:${line}`
    return new ConfigError(`config error in ${where} at ${key}: ${err.problem}`, { key, file, line })
  }
  if (origin === 'env' || origin === 'env-default') {
    const envVar = (origin === 'env' ? layers?.env : layers?.defaults)?.sources.get(key)
    return new ConfigError(`config error at ${key} (from ${envVar ?? 'the environment'}): ${err.problem}`, { key, envVar })
  }
  return new ConfigError(`config error at ${key}: ${err.problem}`, { key })
}

// The layer the value at `path` came from: the one holding most of the path, the later layer on
// a tie. Lists replace as a whole, so an error inside an item (or a key missing from it) belongs
// to the layer that gave the list. Only defaults hold no path, and they never fail validation.
function originOf(layers: Layers, path: readonly string[]): 'overrides' | 'env' | 'file' | 'env-default' | 'default' {
  const candidates = [
    ['overrides', layers.overrides],
    ['env', layers.env.data],
    ['file', layers.file?.data],
    ['env-default', layers.defaults.data],
  ] as const
  let best: { origin: (typeof candidates)[number][0]; depth: number } | undefined
  for (const [origin, data] of candidates) {
    const held = data === undefined ? 0 : depth(data, path)
    if (held > 0 && (best === undefined || held > best.depth)) best = { origin, depth: held }
  }
  return best?.origin ?? 'default'
}

// How many leading segments of `path` lead to a value in `data`, through sections and lists.
function depth(data: PlainObject, path: readonly string[]): number {
  let node: unknown = data
  let held = 0
  for (const key of path) {
    const next = Array.isArray(node)
      ? /^\d+$/.test(key)
        ? node[Number(key)]
        : undefined
      : isPlainObject(node) && Object.hasOwn(node, key)
        ? node[key]
        : undefined
    if (next === undefined) break
    node = next
    held++
  }
  return held
}

// Sections merge key by key; anything else (scalars, lists) replaces. Inputs are not mutated.
function merge(target: PlainObject, source: PlainObject): PlainObject {
  for (const [key, value] of Object.entries(source)) {
    if (value === undefined) continue
    const current = Object.hasOwn(target, key) ? target[key] : undefined
    const merged = isPlainObject(value) ? merge(isPlainObject(current) ? current : {}, value) : structuredClone(value)
    // defineProperty, not assignment: a "__proto__" key in the file must stay an (unknown) key.
    Object.defineProperty(target, key, { value: merged, enumerable: true, writable: true, configurable: true })
  }
  return target
}
