// What a manifest request reads besides the bytes: tag → digest, revision descriptors and
// whether a repository exists, kept in memory. Without it every warm manifest GET costs 3 to 6
// small-file reads through libuv's thread pool, which capped Ferry at ~2,400 req/s (issue #6).
//
// Entries come from storage and live `ttlMs`: several replicas on shared storage see each
// other's writes within that time. This process's own writes update the entries at once, so a
// delete or re-tag is visible to its next request. Misses are remembered too (the mirror asks
// "was this pushed here?" on every request, and the answer is usually no).
import { LRUCache } from 'lru-cache'
import type { Digest } from '../core/digest.js'
import type { Descriptor } from '../core/manifest.js'

/** A remembered answer; `value` undefined remembers "not there". */
interface Entry<V> {
  value: V | undefined
}

export interface MetadataCacheOptions {
  /** Milliseconds an answer read from storage is reused; 0 turns the cache off. */
  ttlMs: number
  /** Entries per kind (tags, revisions, repositories). */
  maxEntries?: number
}

/** One kind of answer (e.g. tag → digest), keyed by repository and name. */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- lru-cache's own value bound
export class MetadataMap<V extends {}> {
  private readonly entries: LRUCache<string, Entry<V>> | undefined
  /**
   * Bumped by every write. A read that started before a write may carry the old answer; it is
   * returned to its caller but not remembered, so it cannot overwrite what the write stored.
   */
  private writes = 0
  /** Reads in flight: when an entry expires under load, its key is read from storage once. */
  private readonly loading = new Map<string, Promise<V | undefined>>()

  constructor(ttlMs: number, maxEntries: number) {
    this.entries = ttlMs > 0 ? new LRUCache<string, Entry<V>>({ max: maxEntries, ttl: ttlMs }) : undefined
  }

  /** The remembered answer for `key`, else `read()`'s (then remembered). */
  async get(key: string, read: () => Promise<V | undefined>): Promise<V | undefined> {
    if (this.entries === undefined) return read()
    const hit = this.entries.get(key)
    if (hit) return hit.value
    const pending = this.loading.get(key)
    if (pending) return pending
    const load = this.load(key, read)
    this.loading.set(key, load)
    try {
      return await load
    } finally {
      if (this.loading.get(key) === load) this.loading.delete(key)
    }
  }

  private async load(key: string, read: () => Promise<V | undefined>): Promise<V | undefined> {
    const writes = this.writes
    const value = await read()
    if (writes === this.writes) this.entries?.set(key, { value })
    return value
  }

  /** Records what this process just wrote (undefined: just deleted). */
  set(key: string, value: V | undefined): void {
    this.writes++
    this.loading.delete(key) // a read in flight may predate the write: later readers must not join it
    this.entries?.set(key, { value })
  }

  /** Forgets `key`: the next get() reads storage (for writes whose outcome is not known here). */
  forget(key: string): void {
    this.writes++
    this.loading.delete(key)
    this.entries?.delete(key)
  }
}

/** The metadata of one LocalRegistry (all its repositories). */
export class MetadataCache {
  /** `<repository>:<tag>` → digest. */
  readonly tags: MetadataMap<Digest>
  /** `<repository>@<digest>` → the revision's descriptor. */
  readonly revisions: MetadataMap<Descriptor>
  /** `<repository>` → true when it holds manifests or blobs. */
  readonly repositories: MetadataMap<true>

  constructor(options: MetadataCacheOptions) {
    // lru-cache allocates its index arrays for `max` entries up front: 100k cost ~20 MiB of heap
    // across the maps of both registries; 10k hot tags / manifests per registry is plenty.
    const max = options.maxEntries ?? 10_000
    this.tags = new MetadataMap(options.ttlMs, max)
    this.revisions = new MetadataMap(options.ttlMs, max)
    this.repositories = new MetadataMap(options.ttlMs, max)
  }
}

export function tagKey(repository: string, tag: string): string {
  return `${repository}:${tag}`
}

export function revisionKey(repository: string, digest: Digest): string {
  return `${repository}@${digest}`
}
