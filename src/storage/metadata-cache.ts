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

type Read<V> = () => Promise<V | undefined>

/** A read that failed by itself, as opposed to a fetch lru-cache aborted (a write, an eviction). */
class ReadFailed extends Error {
  constructor(readonly error: unknown) {
    super('metadata read failed')
  }
}

/** One kind of answer (e.g. tag → digest), keyed by repository and name. */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- lru-cache's own value bound
export class MetadataMap<V extends {}> {
  /**
   * lru-cache's fetch() reads a missing or expired key once however many requests ask for it,
   * and a set() or delete() of the key aborts a read in flight, so an answer read before a write
   * is never remembered over it. So does the eviction of the key while its read is in flight
   * (more keys asked for at once than the cache holds, e.g. 100k tags).
   */
  private readonly entries: LRUCache<string, Entry<V>, Read<V>> | undefined

  constructor(ttlMs: number, maxEntries: number) {
    this.entries =
      ttlMs > 0
        ? new LRUCache<string, Entry<V>, Read<V>>({
            max: maxEntries,
            ttl: ttlMs,
            fetchMethod: async (_key, _stale, { context: read }) => {
              try {
                return { value: await read() }
              } catch (err) {
                throw new ReadFailed(err)
              }
            },
          })
        : undefined
  }

  /** The remembered answer for `key`, else `read()`'s (then remembered). */
  async get(key: string, read: Read<V>): Promise<V | undefined> {
    if (this.entries === undefined) return read()
    // A fresh entry is answered from get(), much cheaper than fetch() (its options, its checks):
    // a warm manifest GET asks 5 or 6 of these. A stale or missing key, or one being read, goes
    // through fetch() as before.
    const known = this.entries.get(key)
    if (known !== undefined) return known.value
    try {
      return (await this.entries.fetch(key, { context: read }))?.value
    } catch (err) {
      if (err instanceof ReadFailed) throw err.error
      // Aborted: by a write of this key, whose record is newer (forgotten: read again), or by the
      // key's eviction, which leaves nothing to reuse: this request reads for itself.
      const known = this.entries.get(key)
      return known ? known.value : read()
    }
  }

  /** Records what this process just wrote (undefined: just deleted). */
  set(key: string, value: V | undefined): void {
    this.entries?.set(key, { value })
  }

  /** Forgets `key`: the next get() reads storage (for writes whose outcome is not known here). */
  forget(key: string): void {
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
