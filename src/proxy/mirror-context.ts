// What every mirrored repository of one MirrorRegistry shares: the upstreams and route table
// (replaceable while serving), the in-flight fetches (so concurrent misses coalesce across
// requests), tag freshness, metrics and logger.
import type { Logger } from 'pino'
import { LRUCache } from 'lru-cache'
import type { Descriptor } from '../core/manifest.js'
import type { Registry } from '../core/registry.js'
import type { Metrics } from '../observability/metrics.js'
import type { RouteTable } from '../upstream/routing.js'
import type { Upstream } from '../upstream/upstream.js'
import { defaultAdoptionLimits, type AdoptionLimits } from './adoption-limits.js'
import type { BlobFill } from './blob-fill.js'
import { SingleFlight } from './single-flight.js'
import type { BlockBudget } from '../transfer/shared-blocks.js'
import type { FillSpool } from '../transfer/fill-spool.js'
import type { FillCoordinator } from '../core/fill-lease.js'

export interface MirrorUpstream {
  upstream: Upstream
  /** Milliseconds a tag's digest is served without revalidating. */
  tagTtl: number
}

/**
 * The route table and the upstreams it names, always replaced together: a request reads one
 * snapshot, so it never routes by a new table to an upstream of the old set.
 */
export interface MirrorRoutes {
  table: RouteTable
  upstreams: ReadonlyMap<string, MirrorUpstream>
}

/** A cached tag answer and when the upstream last confirmed it (0: never, in this process). */
export interface TagEntry {
  descriptor: Descriptor
  validatedAt: number
  /** Why the last revalidation failed, while the upstream stays unreachable. */
  failure?: string
}

export class MirrorContext {
  readonly fills = new Map<string, BlobFill>()
  readonly manifestFetches = new SingleFlight<Descriptor | undefined>()
  readonly tagFetches = new SingleFlight<Descriptor | undefined>()
  readonly revalidations = new SingleFlight<Descriptor | undefined>()
  /** Bounded by `maxSize`, not `max`, which would allocate the arrays of 100,000 entries up front (#18). */
  readonly tags = new LRUCache<string, TagEntry>({ maxSize: 100_000, sizeCalculation: () => 1 })

  constructor(
    /** Where cached content lives; repositories named `<upstream>/<repository>`. */
    readonly cache: Registry,
    /** The current routes; a config reload swaps what it returns. */
    readonly routes: () => MirrorRoutes,
    readonly metrics: Metrics,
    readonly logger: Logger,
    /** Memory for the blocks fills share with their followers (and with stored-blob downloads). */
    readonly blockBudget: BlockBudget,
    readonly now: () => number = Date.now,
    /** What one manifest push into a mirrored repository may copy from the upstream. */
    readonly adoption: AdoptionLimits = defaultAdoptionLimits,
    /** Who fills a cold blob when replicas share the storage; undefined: this process fills its own misses. */
    readonly coordinator?: FillCoordinator,
    /** Local files absorbing a store slower than the upstream (S3); undefined: fills go at the store's pace. */
    readonly spool?: FillSpool,
  ) {}

  /** Waits (at most `timeoutMs`) for the blob downloads in flight to be committed or discarded. */
  async drain(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))
    await Promise.race([Promise.allSettled([...this.fills.values()].map((fill) => fill.settled)), deadline])
    clearTimeout(timer)
  }

  /**
   * Forgets when `upstream`'s tags were last confirmed (its URL or settings changed): each is
   * revalidated against the upstream as now configured on its next use.
   */
  forgetTagValidations(upstream: string): void {
    const prefix = `${upstream}/`
    for (const key of [...this.tags.keys()]) if (key.startsWith(prefix)) this.tags.delete(key)
  }
}
