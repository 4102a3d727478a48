// Where an image goes: the source registry host is dropped and the path kept, so
// `gcr.io/anthos-baremetal-release/foo:1.8.0` lands at `<namespace>/anthos-baremetal-release/foo:1.8.0`,
// which is what a containerd mirror of gcr.io with that namespace looks up. Docker Hub names are
// normalised first (`ubuntu` is `docker.io/library/ubuntu`), as containerd does.
import { digestEncoded, tryParseDigest, type Digest } from '../core/digest.js'
import { isTag } from '../core/reference.js'

export interface SourceName {
  /** `gcr.io`, `docker.io`, ... */
  domain: string
  /** The repository path without the domain: `anthos-baremetal-release/foo`. */
  path: string
  tag?: string
  digest?: Digest
}

/** Parses a reference as bundles write them (`gcr.io/x/y:1.0`, `ubuntu:22.04`, `x/y@sha256:…`); undefined if it is none. */
export function parseSourceName(reference: string): SourceName | undefined {
  let rest = reference.trim()
  let digest: Digest | undefined
  const at = rest.indexOf('@')
  if (at >= 0) {
    digest = tryParseDigest(rest.slice(at + 1))
    if (digest === undefined) return undefined
    rest = rest.slice(0, at)
  }
  let tag: string | undefined
  const colon = rest.lastIndexOf(':')
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1)
    rest = rest.slice(0, colon)
    if (!isTag(tag)) return undefined
  }
  if (rest === '') return undefined
  const slash = rest.indexOf('/')
  const first = slash < 0 ? '' : rest.slice(0, slash)
  const hasDomain = first !== '' && (first.includes('.') || first.includes(':') || first === 'localhost')
  const domain = hasDomain ? first : 'docker.io'
  let path = hasDomain ? rest.slice(slash + 1) : rest
  if (domain === 'docker.io' && !path.includes('/')) path = `library/${path}`
  if (path === '' || path !== path.toLowerCase()) return undefined
  return { domain, path, ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) }
}

/** Whether an OCI ref.name annotation is a whole reference rather than only a tag (`1.0`). */
export function isFullReference(name: string): boolean {
  return name.includes('/') || (name.includes(':') && !isTag(name)) || name.includes('@')
}

export const unnamedRepository = 'unnamed'

/** Repository and tag under the namespace for an image without a usable name: named from its digest. */
export function unnamedDestination(digest: Digest): { path: string; tag: string } {
  return { path: unnamedRepository, tag: `sha256-${digestEncoded(digest)}` }
}

export type NameStrategy = 'keep-path' | 'flatten' | 'basename'
export const nameStrategies: readonly NameStrategy[] = ['keep-path', 'flatten', 'basename']

/**
 * The repository path under the namespace, for registries that limit depth: `keep-path` keeps
 * `anthos-baremetal-release/foo`, `flatten` joins it into `anthos-baremetal-release-foo`,
 * `basename` keeps `foo`. `maxDepth` then joins the leading components with `-` so at most that
 * many remain (`a/b/c/foo` with 2: `a-b-c/foo`).
 */
export function renamePath(path: string, strategy: NameStrategy, maxDepth?: number): string {
  let parts = path.split('/')
  if (strategy === 'flatten') parts = [parts.join('-')]
  if (strategy === 'basename') parts = [parts.at(-1)!]
  if (maxDepth !== undefined && maxDepth >= 1 && parts.length > maxDepth) {
    parts = [parts.slice(0, parts.length - maxDepth + 1).join('-'), ...parts.slice(parts.length - maxDepth + 1)]
  }
  return parts.join('/')
}

/** A glob over image names: `*` and `?` stay within one path component, `**` crosses them. */
export function globMatcher(glob: string): (name: string) => boolean {
  let source = ''
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!
    if (c === '*' && glob[i + 1] === '*') {
      source += '.*'
      i++
    } else if (c === '*') source += '[^/]*'
    else if (c === '?') source += '[^/]'
    else source += c.replace(/[.+^${}()|[\]\\]/g, '\\$&')
  }
  const pattern = new RegExp(`^${source}$`)
  return (name) => pattern.test(name)
}

/** Whether an image passes --include (any, when given) and --exclude (none). Matched against its name with and without the tag. */
export function selected(source: string | undefined, include: string[], exclude: string[]): boolean {
  const name = source ?? unnamedRepository
  const forms = [name, name.replace(/@.*$/, '').replace(/:[^/]*$/, '')]
  const hits = (globs: string[]): boolean => globs.some((glob) => forms.some(globMatcher(glob)))
  return (include.length === 0 || hits(include)) && !hits(exclude)
}
