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
  /**
   * Whether this repository was pushed to. A pushed repository is authoritative: it is served
   * from local content alone and never falls back to the upstream.
   */
  pushed(): Promise<boolean>
}
