// Docker's client config file (~/.docker/config.json) as far as pull credentials go: `auths`
// entries (base64 `auth`, `username`/`password`, `identitytoken`), `credHelpers` per registry and
// a default `credsStore`. Keys are matched by registry host, whatever scheme or path they were
// written with (`https://index.docker.io/v1/` is Docker Hub).
import type { Credentials } from '../client/credentials.js'
import { identityTokenUsername } from '../client/credentials.js'

export interface DockerConfig {
  /** Normalised host → credentials written in the file. */
  auths: Map<string, Credentials>
  /** Normalised host → helper name (`docker-credential-<name>`). */
  credHelpers: Map<string, string>
  credsStore: string | undefined
}

export type DockerConfigLookup =
  { kind: 'credentials'; credentials: Credentials } | { kind: 'helper'; helper: string; serverUrl: string } | { kind: 'none' }

const dockerHubHosts = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com'])
/** The server URL Docker's tools store Docker Hub credentials under. */
export const dockerHubServerUrl = 'https://index.docker.io/v1/'
const helperNamePattern = /^[A-Za-z0-9][A-Za-z0-9._-]*$/

/** `https://Index.Docker.io/v1/` → `docker.io`; `gcr.io/v2` → `gcr.io`; `host:5000` stays. */
export function normaliseRegistryHost(value: string): string {
  const host = value
    .trim()
    .replace(/^[a-z][a-z0-9+.-]*:\/\//i, '')
    .split('/')[0]!
    .toLowerCase()
  return dockerHubHosts.has(host) ? 'docker.io' : host
}

export function parseDockerConfig(text: string): DockerConfig {
  let document: unknown
  try {
    document = JSON.parse(text)
  } catch {
    // JSON.parse's message quotes the text around the error, which may be a password.
    throw new Error('is not valid JSON')
  }
  if (document === null || typeof document !== 'object' || Array.isArray(document)) throw new Error('is not a JSON object')
  const { auths, credHelpers, credsStore } = document as Record<string, unknown>
  const config: DockerConfig = { auths: new Map(), credHelpers: new Map(), credsStore: undefined }
  for (const [key, entry] of Object.entries(objectField(auths, 'auths'))) {
    const credentials = entryCredentials(entry, key)
    if (credentials !== undefined) config.auths.set(normaliseRegistryHost(key), credentials)
  }
  for (const [key, helper] of Object.entries(objectField(credHelpers, 'credHelpers'))) {
    config.credHelpers.set(normaliseRegistryHost(key), helperName(helper, `credHelpers["${key}"]`))
  }
  if (credsStore !== undefined && credsStore !== '') config.credsStore = helperName(credsStore, 'credsStore')
  return config
}

/** Where the credentials for the first of `hosts` that the file knows come from. */
export function lookupDockerConfig(config: DockerConfig, hosts: readonly string[]): DockerConfigLookup {
  const candidates = [...new Set(hosts.map(normaliseRegistryHost))]
  // As Docker does, a registry's own helper comes first; then what the file itself holds; then
  // the default store.
  for (const host of candidates) {
    const helper = config.credHelpers.get(host)
    if (helper !== undefined) return { kind: 'helper', helper, serverUrl: serverUrlFor(host) }
  }
  for (const host of candidates) {
    const credentials = config.auths.get(host)
    if (credentials !== undefined) return { kind: 'credentials', credentials }
  }
  const first = candidates[0]
  if (config.credsStore !== undefined && first !== undefined)
    return { kind: 'helper', helper: config.credsStore, serverUrl: serverUrlFor(first) }
  return { kind: 'none' }
}

function serverUrlFor(host: string): string {
  return host === 'docker.io' ? dockerHubServerUrl : host
}

function objectField(value: unknown, name: string): Record<string, unknown> {
  if (value === undefined || value === null) return {}
  if (typeof value !== 'object' || Array.isArray(value)) throw new Error(`has a "${name}" that is not an object`)
  return value as Record<string, unknown>
}

function helperName(value: unknown, where: string): string {
  if (typeof value !== 'string' || !helperNamePattern.test(value)) throw new Error(`has a ${where} that is not a helper name`)
  return value
}

// An entry names the registry in the error, never its values.
function entryCredentials(entry: unknown, key: string): Credentials | undefined {
  if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) throw new Error(`has an auths["${key}"] that is not an object`)
  const { auth, username, password, identitytoken: identityToken } = entry as Record<string, unknown>
  if (typeof identityToken === 'string' && identityToken !== '') return { username: identityTokenUsername, password: identityToken }
  if (typeof auth === 'string' && auth !== '') {
    const decoded = Buffer.from(auth, 'base64').toString('utf8')
    // Passwords may contain colons; user names may not.
    const colon = decoded.indexOf(':')
    if (colon <= 0) throw new Error(`has an auths["${key}"].auth that is not base64 of "user:password"`)
    return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) }
  }
  if (typeof username === 'string' && username !== '') {
    if (typeof password !== 'string') throw new Error(`has an auths["${key}"] with a username but no password`)
    return { username, password }
  }
  // `{}`: Docker writes these for registries whose secrets live in credsStore.
  return undefined
}
