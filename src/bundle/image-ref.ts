// A reference to pull (`gcr.io/x/y:1.0`, `ubuntu`, `127.0.0.1:5000/x@sha256:…`): the registry to
// ask and the repository and tag or digest there. Docker Hub names are normalised as docker does.
import type { Digest } from '../core/digest.js'
import { parseSourceName } from './naming.js'

export interface ImageRef {
  /** What the user wrote, normalised: `docker.io/library/ubuntu:latest`. */
  text: string
  /** The registry's host as written (`gcr.io`, `127.0.0.1:5000`, `docker.io`). */
  domain: string
  repository: string
  tag?: string
  digest?: Digest
}

export function parseImageRef(value: string): ImageRef {
  const parsed = parseSourceName(value)
  if (parsed === undefined) throw new Error(`"${value}" is not an image reference (host/repository[:tag][@digest])`)
  const tag = parsed.tag ?? (parsed.digest === undefined ? 'latest' : undefined)
  const text = `${parsed.domain}/${parsed.path}${tag !== undefined ? `:${tag}` : ''}${parsed.digest !== undefined ? `@${parsed.digest}` : ''}`
  return {
    text,
    domain: parsed.domain,
    repository: parsed.path,
    ...(tag !== undefined ? { tag } : {}),
    ...(parsed.digest !== undefined ? { digest: parsed.digest } : {}),
  }
}

/** The host serving a domain's registry API: Docker Hub's is not docker.io itself. */
export function registryHost(domain: string): string {
  return domain === 'docker.io' ? 'registry-1.docker.io' : domain
}
