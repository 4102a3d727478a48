// What a node needs to pull through Ferry, checked once: Ferry's endpoint, an optional namespace,
// and the registries it mirrors, each with the upstream server containerd falls back to. Every
// output format (hosts.toml, the CRI snippet, Anthos, OpenShift) is rendered from this plan.
// Pure: strings in, a plan or a NodeConfigError out.

/** A flag value that cannot make a working node configuration; the message names the flag. */
export class NodeConfigError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'NodeConfigError'
  }
}

export interface MirroredRegistry {
  /** The registry host as image references name it (`gcr.io`, `registry.local:5000`): containerd's `?ns=` value. */
  host: string
  /** The upstream containerd falls back to when Ferry fails (hosts.toml `server`). */
  server: string
  /** The Ferry upstream name serving it, the path prefix clients without `?ns=` use; undefined when unknown. */
  upstreamName: string | undefined
}

export interface MirrorPlan {
  /** Ferry's origin: `https://ferry.example:5000`. */
  origin: string
  /** `host:port` of the origin: the key of registry settings in the older CRI config and in OpenShift's CA ConfigMap. */
  authority: string
  tls: boolean
  namespace: string | undefined
  registries: MirroredRegistry[]
  /** The CA that signed Ferry's certificate: its path as given (made absolute by the caller) and its PEM text. */
  ca: { path: string; pem: string } | undefined
  /** Docker config.json holding Ferry credentials, for Anthos' pullCredentialConfigPath. */
  pullCredentialConfigPath: string | undefined
}

export interface MirrorPlanInput {
  endpoint: string
  namespace?: string | undefined
  /** `host` or `host=serverURL` entries. */
  registries: readonly string[]
  ca?: { path: string; pem: string } | undefined
  pullCredentialConfigPath?: string | undefined
  /** Ferry's upstreams (from its config), to name the upstream behind each registry host. */
  upstreams?: ReadonlyArray<{ name: string; hosts: readonly string[] }> | undefined
}

// Lowercase DNS labels with an optional port: also a safe directory name under certs.d.
const hostPattern = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*(?::\d{1,5})?$/
// As mirror.namespaces[].name accepts it.
const namespacePattern = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/

// Registries whose API is not served at the host image references use.
const knownServers: Readonly<Record<string, string>> = { 'docker.io': 'https://registry-1.docker.io' }

export function mirrorPlan(input: MirrorPlanInput): MirrorPlan {
  const endpoint = parseEndpoint(input.endpoint)
  const namespace = input.namespace === undefined || input.namespace === '' ? undefined : input.namespace.replace(/^\/+|\/+$/g, '')
  if (namespace !== undefined && !namespacePattern.test(namespace)) {
    throw new NodeConfigError(
      `--namespace "${input.namespace}": use a repository path like "test-namespace" (lowercase, "/" between parts)`,
    )
  }
  if (input.ca !== undefined && !endpoint.tls) {
    throw new NodeConfigError('--ca needs an https:// --endpoint: a CA only matters when Ferry serves TLS')
  }
  const registries = input.registries.map((entry) => parseRegistry(entry, input.upstreams))
  if (registries.length === 0) throw new NodeConfigError('--registries: name at least one registry, like "gcr.io"')
  const seen = new Set<string>()
  for (const { host } of registries) {
    if (seen.has(host)) throw new NodeConfigError(`--registries: ${host} is listed twice`)
    seen.add(host)
  }
  return { ...endpoint, namespace, registries, ca: input.ca, pullCredentialConfigPath: input.pullCredentialConfigPath || undefined }
}

/** The mirror URL containerd is given: the origin, plus `/v2/<namespace>` when there is one. */
export function mirrorUrl(plan: MirrorPlan): string {
  return plan.namespace === undefined ? plan.origin : `${plan.origin}/v2/${plan.namespace}`
}

function parseEndpoint(text: string): { origin: string; authority: string; tls: boolean } {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw new NodeConfigError(`--endpoint "${text}": use Ferry's base URL, like https://ferry.example:5000`)
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new NodeConfigError(`--endpoint "${text}": use an https:// (or http://) URL`)
  }
  if (url.pathname !== '/' || url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
    throw new NodeConfigError(`--endpoint "${text}": give only scheme, host and port; a namespace goes in --namespace`)
  }
  const tls = url.protocol === 'https:'
  // URL drops a default port; the CRI config and OpenShift key settings by host[:port] as written.
  const port = url.port === '' ? '' : `:${url.port}`
  return { origin: `${url.protocol}//${url.hostname}${port}`, authority: `${url.hostname}${port}`, tls }
}

function parseRegistry(entry: string, upstreams: MirrorPlanInput['upstreams']): MirroredRegistry {
  const [rawHost = '', server, ...rest] = entry.trim().split('=')
  const host = rawHost.toLowerCase()
  if (!hostPattern.test(host) || rest.length > 0) {
    throw new NodeConfigError(
      `--registries: "${entry}" is not a registry host like "gcr.io" or "registry.local:5000" (optionally =https://server)`,
    )
  }
  if (server !== undefined && !/^https?:\/\/[^/?#\s]+\/?$/.test(server)) {
    throw new NodeConfigError(`--registries: the server of ${host} ("${server}") must be an http(s) base URL like https://mirror.gcr.io`)
  }
  const upstreamName =
    upstreams === undefined ? (/^[a-z0-9.-]+$/.test(host) ? host : undefined) : upstreams.find((u) => u.hosts.includes(host))?.name
  return { host, server: server?.replace(/\/$/, '') ?? knownServers[host] ?? `https://${host}`, upstreamName }
}
