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
