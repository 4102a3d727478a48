// Flags that say how to read from registries (`bundle create`, `pull`, `extract`): a CA file,
// one account for every registry or a Docker config.json looked up per host, and plain HTTP.
// Without credentials, pulls are anonymous (registries then grant what they grant anonymously).
import { readFile } from 'node:fs/promises'
import type { Command } from 'commander'
import type { CredentialProvider, Credentials } from '../client/credentials.js'
import { RegistryClient } from '../client/registry-client.js'
import { Transport } from '../client/transport.js'
import { runCredentialHelper } from '../credentials/credential-helper.js'
import { lookupDockerConfig, parseDockerConfig } from '../credentials/docker-config.js'
import { RegistrySource } from '../bundle/registry-source.js'

export interface AccessOptions {
  cacert?: string
  username?: string
  password?: string
  dockerConfig?: string
  plainHttp?: boolean
}

export function addAccessOptions(command: Command): Command {
  return command
    .option('--cacert <file>', 'PEM CA certificate(s) registries are verified against, besides the public roots')
    .option('--username <user>', 'registry account (sent to every registry asked)')
    .option('--password <password>', 'its password')
    .option('--docker-config <file>', 'a Docker config.json: credentials looked up per registry host')
    .option('--plain-http', 'talk to the registries over plain HTTP')
}

export async function registrySource(options: AccessOptions): Promise<RegistrySource> {
  const credentials = await credentialProvider(options)
  const ca = options.cacert === undefined ? undefined : await readFile(options.cacert)
  const scheme = options.plainHttp === true ? 'http' : 'https'
  return new RegistrySource(
    (host) =>
      new RegistryClient({
        url: `${scheme}://${host}`,
        transport: new Transport({
          timeouts: { connectMs: 10_000, headersMs: 120_000, bodyIdleMs: 120_000 },
          ...(ca ? { tls: { ca } } : {}),
        }),
        ...(credentials ? { credentials } : {}),
        userAgent: 'ferry-pull',
      }),
  )
}

async function credentialProvider(options: AccessOptions): Promise<CredentialProvider | undefined> {
  if (options.username !== undefined || options.password !== undefined) {
    if (options.username === undefined || options.password === undefined) throw new Error('--username and --password go together')
    const account: Credentials = { username: options.username, password: options.password }
    return { credentials: async () => account }
  }
  if (options.dockerConfig === undefined) return undefined
  const path = options.dockerConfig
  let config: ReturnType<typeof parseDockerConfig>
  try {
    config = parseDockerConfig(await readFile(path, 'utf8'))
  } catch (err) {
    throw new Error(`--docker-config ${path}: ${(err as Error).message}`, { cause: err })
  }
  const known = new Map<string, Promise<Credentials | undefined>>()
  return {
    credentials: (host) => {
      let found = known.get(host)
      if (found === undefined) {
        const lookup = lookupDockerConfig(config, host === 'registry-1.docker.io' ? ['docker.io'] : [host])
        found =
          lookup.kind === 'none'
            ? Promise.resolve(undefined)
            : lookup.kind === 'credentials'
              ? Promise.resolve(lookup.credentials)
              : runCredentialHelper(lookup.helper, lookup.serverUrl)
        known.set(host, found)
      }
      return found
    },
  }
}
