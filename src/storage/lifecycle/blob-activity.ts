// Which blobs are being read or written right now, and when each was last written or linked, so
// eviction and GC never delete a blob under a request or a fill. A deletion and a reader or
// writer of the same digest exclude each other: the deleter checks for users and publishes its
// deletion in one synchronous step, and a user arriving later waits for the deletion to finish
// (then finds the blob gone and fetches or uploads it again) instead of racing it.
//
// Replicas on one storage see each other's uses through a ClusterActivity (Redis marks): a
// deletion first asks whether any replica uses the digest. That check and the delete are not one
// step across processes: a replica starting to read in between finds the blob gone and, for cached
// content, fetches it again; its marks otherwise keep a blob for a lease TTL after its last use.
import { LRUCache } from 'lru-cache'
import { unsharedActivity, type ClusterActivity } from '../../core/cluster-activity.js'

export class BlobActivity {
  private readonly users = new Map<string, number>()
  private readonly deletions = new Map<string, Promise<unknown>>()
  /**
   * Last write or link per digest; a sweep keeps what changed after it began marking. Bounded by
   * `maxSize` (each entry 1), not `max`: lru-cache allocates its arrays for `max` entries up
   * front (~5 MiB here, #18), and grows them as it fills otherwise.
   */
  private readonly written = new LRUCache<string, number>({ maxSize: 200_000, sizeCalculation: () => 1 })

  constructor(
    private readonly now: () => number = Date.now,
    /** Other replicas' uses (and this one's, for them). */
    readonly cluster: ClusterActivity = unsharedActivity,
  ) {}

  /** Runs `work` as a user of `digest` (a read until its stream closes is `begin`/`end`). */
  async using<T>(digest: string, work: () => Promise<T>, write = false): Promise<T> {
    const end = await this.begin(digest, write)
    try {
      return await work()
    } finally {
      end()
    }
  }

  /** Marks `digest` in use until the returned function is called. */
  async begin(digest: string, write = false): Promise<() => void> {
    this.users.set(digest, (this.users.get(digest) ?? 0) + 1)
    const unmark = this.cluster.use(digest)
    if (write) this.written.set(digest, this.now())
    const deletion = this.deletions.get(digest)
    if (deletion) await deletion.catch(() => {})
    let ended = false
    return () => {
      if (ended) return
      ended = true
      unmark()
      const left = (this.users.get(digest) ?? 1) - 1
      if (left > 0) this.users.set(digest, left)
      else this.users.delete(digest)
      if (write) this.written.set(digest, this.now())
    }
  }

  /** Of `digests`, those another replica marked in use (none without a shared store). */
  usedElsewhere(digests: readonly string[]): Promise<Set<string>> {
    return this.cluster.shared ? this.cluster.inUse(digests) : Promise.resolve(new Set())
  }

  inUse(digest: string): boolean {
    return (this.users.get(digest) ?? 0) > 0
  }

  /** Written or linked at or after `since` (ms since the epoch). */
  writtenSince(digest: string, since: number): boolean {
    const at = this.written.get(digest)
    return at !== undefined && at >= since
  }

  /**
   * Deletes through `remove` unless the digest is in use or was written since `since`; true when
   * it ran. Users arriving while it runs wait for it.
   */
  async delete(digest: string, since: number, remove: () => Promise<void>): Promise<boolean> {
    if (this.cluster.shared && (await this.cluster.inUse([digest])).size > 0) return false
    if (this.inUse(digest) || this.writtenSince(digest, since) || this.deletions.has(digest)) return false
    const deletion = remove()
    this.deletions.set(digest, deletion)
    try {
      await deletion
      return true
    } finally {
      this.deletions.delete(digest)
    }
  }
}
