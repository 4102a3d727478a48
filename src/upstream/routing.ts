// Which repository a /v2 path names locally, and which upstream repository it falls back to.
// Order: a configured namespace prefix, then containerd's ?ns=, then an upstream-name path
// prefix, then the default upstream. `ns` is only ever a key into the configured upstreams:
// an unknown value is refused here and never reaches a socket.
import { RegistryError } from '../core/errors.js'
import { parseRepositoryName, type RepositoryName } from '../core/reference.js'

export interface RoutedUpstream {
  /** Hosts (`host` or `host:port`, lowercase) whose ?ns= selects this upstream; includes its name. */
  hosts: readonly string[]
  name: string
  /** Docker Hub puts single-component official images under `library/`. */
  libraryPrefix: boolean
}

export interface RouteTable {
  upstreams: readonly RoutedUpstream[]
  defaultUpstream: string | undefined
  namespaces: ReadonlyArray<{ name: string; upstream: string }>
}

export interface Route {
  /** Where content pushed to this path lives, and what shadows the upstream. */
  localName: RepositoryName
  upstream?: {
    name: string
    /** The repository on the upstream. */
    repository: string
    /** Where the mirror caches it: `<upstream name>/<repository>`, shared by every route to it. */
    cacheName: RepositoryName
  }
}

export function resolveRoute(table: RouteTable, pathName: RepositoryName, ns?: string): Route {
  const byNs = ns ? upstreamForNs(table, ns) : undefined

  const namespace = table.namespaces.find((n) => pathName.startsWith(`${n.name}/`))
  if (namespace) {
    // hosts.toml without override_path inserts /v2 after the mirror path: accept both shapes.
    const rest = pathName.slice(namespace.name.length + 1).replace(/^v2\//, '')
    const localName = parseRepositoryName(`${namespace.name}/${rest}`)
    return route(localName, byNs ?? upstreamNamed(table, namespace.upstream), rest)
  }
  if (byNs) {
    const localName = byNs.name === table.defaultUpstream ? pathName : parseRepositoryName(`${byNs.name}/${pathName}`)
    return route(localName, byNs, pathName)
  }
  const prefixed = [...table.upstreams].sort((a, b) => b.name.length - a.name.length).find((u) => pathName.startsWith(`${u.name}/`))
  if (prefixed) return route(pathName, prefixed, pathName.slice(prefixed.name.length + 1))
  if (table.defaultUpstream !== undefined) return route(pathName, upstreamNamed(table, table.defaultUpstream), pathName)
  return { localName: pathName }
}

function route(localName: RepositoryName, upstream: RoutedUpstream, repository: string): Route {
  const upstreamRepository = upstream.libraryPrefix && !repository.includes('/') ? `library/${repository}` : repository
  return {
    localName,
    upstream: {
      name: upstream.name,
      repository: upstreamRepository,
      cacheName: parseRepositoryName(`${upstream.name}/${upstreamRepository}`),
    },
  }
}

function upstreamForNs(table: RouteTable, ns: string): RoutedUpstream {
  const host = ns.trim().toLowerCase()
  // A host name holds no control characters: such an `ns` names nothing, even once trimmed.
  const found = hasControlCharacter(ns) ? undefined : table.upstreams.find((u) => u.hosts.includes(host))
  // 404 rather than 403: containerd then tries its next host, as with any mirror that lacks an image.
  if (!found) {
    throw new RegistryError('NAME_UNKNOWN', 'no upstream is configured for this registry', { ns: ns.slice(0, 100) })
  }
  return found
}

function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (code < 0x20 || code === 0x7f) return true
  }
  return false
}

function upstreamNamed(table: RouteTable, name: string): RoutedUpstream {
  const found = table.upstreams.find((u) => u.name === name)
  if (!found) throw new Error(`route table names unknown upstream ${name}`) // config validation prevents this
  return found
}

/** Builds a route table from the mirror config's upstream list. */
export function routeTable(config: {
  upstreams: ReadonlyArray<{ name: string; url: string; aliases: readonly string[] }>
  defaultUpstream: string | undefined
  namespaces: ReadonlyArray<{ name: string; upstream: string }>
}): RouteTable {
  return {
    upstreams: config.upstreams.map((u) => {
      const host = new URL(u.url).host.toLowerCase()
      const hosts = [...new Set([u.name, host, ...u.aliases.map((a) => a.toLowerCase())])]
      return { name: u.name, hosts, libraryPrefix: u.name === 'docker.io' || hosts.includes('registry-1.docker.io') }
    }),
    defaultUpstream: config.defaultUpstream,
    namespaces: config.namespaces,
  }
}
