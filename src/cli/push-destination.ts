// Where `ferry push images` pushes: the --private-registry value parsed into a registry URL and a
// namespace, and the client that reaches it with the credentials the flags (or a prompt) give.
import { readFile } from 'node:fs/promises'
import { staticCredentials, type CredentialProvider } from '../client/credentials.js'
import { RegistryClient } from '../client/registry-client.js'
import { Transport } from '../client/transport.js'
import { isRepositoryName } from '../core/reference.js'
import { runCredentialHelper } from '../credentials/credential-helper.js'
import { lookupDockerConfig, parseDockerConfig } from '../credentials/docker-config.js'
import type { CliIo } from './io.js'

/** The flags that say how to reach and log in to the destination. */
export interface DestinationAccess {
  cacert?: string
  username?: string
  password?: string
  dockerConfig?: string
  needCredential: boolean
}

export interface Destination {
  /** https://host:port (http:// only when written so). */
  url: string
  host: string
  namespace: string
}

/** `host:port/namespace`, optionally with `http://` or `https://` in front. */
export function parseDestination(value: string): Destination {
  const match = /^(?:(https?):\/\/)?([^/]+)(?:\/(.*))?$/.exec(value.trim())
  if (match === null) throw new Error(`--private-registry "${value}": expected HOST[:PORT][/NAMESPACE]`)
  const scheme = match[1] ?? 'https'
  const host = match[2]!
  const namespace = (match[3] ?? '').replace(/\/+$/, '')
  try {
    new URL(`${scheme}://${host}`)
  } catch {
    throw new Error(`--private-registry "${value}": "${host}" is not a host`)
  }
  if (namespace !== '' && !isRepositoryName(namespace))
    throw new Error(`--private-registry "${value}": "${namespace}" is not a valid namespace`)
  return { url: `${scheme}://${host}`, host, namespace }
}

export async function destinationClient(
  access: DestinationAccess,
  destination: Destination,
  stallMs: number,
  io: CliIo,
): Promise<RegistryClient> {
  const credentials = await credentialsFor(access, destination.host, io)
  const ca = access.cacert === undefined ? undefined : await readFile(access.cacert)
  // A download's body is watched by the connection's idle timeout, an upload's by the client.
  const transport = new Transport({
    timeouts: { connectMs: 10_000, headersMs: 120_000, bodyIdleMs: stallMs },
    ...(ca ? { tls: { ca } } : {}),
  })
  return new RegistryClient({
    url: destination.url,
    transport,
    timeouts: { sendStallMs: stallMs },
    ...(credentials ? { credentials } : {}),
    userAgent: 'ferry-push',
  })
}

async function credentialsFor(options: DestinationAccess, host: string, io: CliIo): Promise<CredentialProvider | undefined> {
  if (options.username !== undefined || options.password !== undefined) {
    let password = options.password
    // On a terminal, a missing password is asked for rather than taken from the command line.
    if (options.username !== undefined && password === undefined && io.ask !== undefined) {
      password = await io.ask(`password for ${options.username}@${host}: `, true)
      if (password === undefined) throw new Error('no password given')
    }
    if (options.username === undefined || password === undefined) throw new Error('--username and --password go together')
    return staticCredentials({ [host]: { username: options.username, password } })
  }
  if (options.dockerConfig !== undefined) {
    let config
    try {
      config = parseDockerConfig(await readFile(options.dockerConfig, 'utf8'))
    } catch (err) {
      throw new Error(`--docker-config ${options.dockerConfig}: ${(err as Error).message}`, { cause: err })
    }
    const found = lookupDockerConfig(config, [host])
    if (found.kind === 'none') throw new Error(`--docker-config ${options.dockerConfig} has no credentials for ${host}`)
    const credentials = found.kind === 'credentials' ? found.credentials : await runCredentialHelper(found.helper, found.serverUrl)
    if (credentials === undefined) throw new Error(`the credential helper of ${options.dockerConfig} has no credentials for ${host}`)
    return staticCredentials({ [host]: credentials })
  }
  if (options.needCredential && io.ask !== undefined) {
    const username = await io.ask(`username for ${host}: `, false)
    const password = username ? await io.ask(`password for ${username}@${host}: `, true) : undefined
    if (!username || password === undefined) throw new Error('no credentials given')
    return staticCredentials({ [host]: { username, password } })
  }
  if (options.needCredential) {
    throw new Error(
      'credentials needed: give --username and --password, or --docker-config, or --need-credential=false to push anonymously',
    )
  }
  return undefined
}
