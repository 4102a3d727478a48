import type { Repository } from '../core/registry.js'
import type { Upstream } from '../upstream/upstream.js'

/** Where a mirrored repository's misses go: the upstream repository and its cache repository. */
export interface MirrorTarget {
  upstream: Upstream
  /** The repository's name on the upstream. */
  repository: string
  /** The cache repository (`<upstream>/<repository>`) holding what was fetched. */
  cache: Repository
  tagTtl: number
}
