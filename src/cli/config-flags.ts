// Flags that override config keys, shared by `serve` and `config print` so that print shows
// exactly what serve would run with.
import type { Command } from 'commander'
import type { DeepPartial, RawConfig } from '../config/schema.js'
import type { CliIo } from './io.js'

export interface ConfigFlags {
  config?: string
  listen?: string
  storage?: string
  logLevel?: string
  logFormat?: string
  upstream?: string[]
  defaultUpstream?: string
  namespace?: string[]
  htpasswd?: string
  anonymousPull?: string[]
  tlsCert?: string
  tlsKey?: string
  tlsClientCa?: string
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value]
}

/** `name=value` → [name, value]; a missing `=` leaves the value empty for validation to report. */
function pair(text: string): [string, string] {
  const at = text.indexOf('=')
  return at < 0 ? [text, ''] : [text.slice(0, at), text.slice(at + 1)]
}

export function addConfigFlags(command: Command): Command {
  return command
    .option('-c, --config <file>', 'YAML config file (default: $FERRY_CONFIG)')
    .option('--listen <addr>', 'listen address, e.g. ":5000" or "127.0.0.1:5000" (listen)')
    .option('--storage <path>', 'filesystem storage directory (storage.filesystem.path)')
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent (log.level)')
    .option('--log-format <format>', 'json, pretty, or auto: pretty on a terminal, JSON otherwise (log.format)')
    .option('--upstream <name=url>', 'an upstream registry, repeatable, e.g. gcr.io=https://gcr.io (mirror.upstreams)', collect)
    .option('--default-upstream <name>', 'upstream for unprefixed names; "" for none (mirror.defaultUpstream)')
    .option('--namespace <name=upstream>', 'a namespaced mirror path, repeatable, e.g. test-namespace=gcr.io (mirror.namespaces)', collect)
    .option('--htpasswd <file>', 'users file with bcrypt entries (htpasswd -B), re-read on change (auth.htpasswd)')
    .option(
      '--anonymous-pull <pattern>',
      'pushed namespaces anonymous clients may pull, repeatable, e.g. "test-namespace/**" (auth.anonymousPull)',
      collect,
    )
    .option('--tls-cert <file>', 'PEM certificate (+ intermediates) to serve HTTPS with (tls.cert)')
    .option('--tls-key <file>', 'PEM private key of --tls-cert (tls.key)')
    .option('--tls-client-ca <file>', 'PEM CA bundle: require client certificates issued by it (tls.clientCa)')
}

/** The flag that sets a config key, for messages that tell how to change it. */
export const flagOfSetting: Readonly<Record<string, string>> = {
  listen: '--listen',
  'storage.filesystem.path': '--storage',
  'log.level': '--log-level',
  'log.format': '--log-format',
  'tls.cert': '--tls-cert',
  'tls.key': '--tls-key',
  'tls.clientCa': '--tls-client-ca',
}

/** The config file named by --config, else by FERRY_CONFIG, else none. */
export function configFile(flags: { config?: string }, io: CliIo): string | undefined {
  return flags.config ?? (io.env.FERRY_CONFIG || undefined)
}

// The level is passed through unchecked: the config loader validates it with the key's message.
export function overridesFrom(flags: ConfigFlags): DeepPartial<RawConfig> {
  return {
    listen: flags.listen,
    storage: flags.storage === undefined ? undefined : { filesystem: { path: flags.storage } },
    log:
      flags.logLevel === undefined && flags.logFormat === undefined
        ? undefined
        : { level: flags.logLevel as RawConfig['log']['level'], format: flags.logFormat as RawConfig['log']['format'] },
    tls: { cert: flags.tlsCert, key: flags.tlsKey, clientCa: flags.tlsClientCa },
    auth:
      flags.htpasswd === undefined && flags.anonymousPull === undefined
        ? undefined
        : { htpasswd: flags.htpasswd, anonymousPull: flags.anonymousPull },
    mirror: {
      upstreams: flags.upstream?.map((text) => {
        const [name, url] = pair(text)
        return { name, url }
      }) as RawConfig['mirror']['upstreams'] | undefined,
      defaultUpstream: flags.defaultUpstream,
      namespaces: flags.namespace?.map((text) => {
        const [name, upstream] = pair(text)
        return { name, upstream }
      }),
    },
  }
}
