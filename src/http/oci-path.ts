// Parses the path under /v2/ into an endpoint. Names may have any number of components, and a
// component may itself be `blobs`, `manifests`, `tags` or `uploads`: every endpoint is
// recognised from the end of the path, so the name is whatever precedes its fixed suffix.
import { RegistryError } from '../core/errors.js'
import { parseRepositoryName, type RepositoryName } from '../core/reference.js'

export type OciEndpoint =
  | { kind: 'base' }
  | { kind: 'catalog' }
  | { kind: 'manifest'; name: RepositoryName; reference: string }
  | { kind: 'blob'; name: RepositoryName; digest: string }
  | { kind: 'upload-start'; name: RepositoryName }
  | { kind: 'upload'; name: RepositoryName; id: string }
  | { kind: 'tags'; name: RepositoryName }
  | { kind: 'referrers'; name: RepositoryName; digest: string }

export type OciEndpointKind = OciEndpoint['kind']

const suffixes: Array<{ pattern: RegExp; build: (name: RepositoryName, last: string) => OciEndpoint }> = [
  { pattern: /^(.+)\/manifests\/([^/]+)$/, build: (name, reference) => ({ kind: 'manifest', name, reference }) },
  { pattern: /^(.+)\/blobs\/uploads\/?$/, build: (name) => ({ kind: 'upload-start', name }) },
  { pattern: /^(.+)\/blobs\/uploads\/([^/]+)$/, build: (name, id) => ({ kind: 'upload', name, id }) },
  { pattern: /^(.+)\/blobs\/([^/]+)$/, build: (name, digest) => ({ kind: 'blob', name, digest }) },
  { pattern: /^(.+)\/tags\/list$/, build: (name) => ({ kind: 'tags', name }) },
  { pattern: /^(.+)\/referrers\/([^/]+)$/, build: (name, digest) => ({ kind: 'referrers', name, digest }) },
]

/**
 * `path` is the part after `/v2/`, percent-decoded, without the query. Returns undefined for
 * paths that are no endpoint (404), throws NAME_INVALID for an endpoint with a malformed name.
 */
export function parseOciPath(path: string): OciEndpoint | undefined {
  if (path === '') return { kind: 'base' }
  if (path === '_catalog') return { kind: 'catalog' }
  for (const { pattern, build } of suffixes) {
    const match = pattern.exec(path)
    if (match) return build(parseRepositoryName(match[1]!), match[2] ?? '')
  }
  return undefined
}

/** The request path a repository's Location headers start with. */
export function repositoryBase(name: RepositoryName): string {
  return `/v2/${name}`
}

export function throwNotFound(path: string): never {
  throw new RegistryError('UNSUPPORTED', 'no such endpoint', { path: path.slice(0, 300) }, { status: 404 })
}
