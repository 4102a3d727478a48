// When each manifest and tag was last pulled and when it was pushed (or, in the mirror's cache,
// fetched). Requests only touch memory; dirty repositories are written out in batches, one small
// JSON file per repository, merged with what is stored (the newest time wins), so replicas on
// one storage and a restart see the same times. Eviction orders cached images by it; a listing
// API can read `pushTime`/`pullTime` from it.
//
// Memory is bounded: what is not yet written stays until the next flush; past that, only the
// most recently used repositories' times are kept (up to `maxEntries` manifests and tags), and
// any other is read back from its file when asked for.
import { LRUCache } from 'lru-cache'
import type { AccessTime, AccessTimeReader } from '../../core/access-times.js'
import type { Digest } from '../../core/digest.js'
import type { StorageDriver } from '../driver/driver.js'
import { accessTimesPath, accessTimesRoot } from './lifecycle-paths.js'

/** What the recorder knows about one repository. Keys are digests or tags. */
interface RepositoryTimes {
  manifests: Map<string, AccessTime>
  tags: Map<string, AccessTime>
  /** Whether storage's record was merged in. */
  loaded: boolean
  /** Removed here since the last flush: not to be merged back from storage. */
  forgotten: Set<string>
  /** Changes since it was created: a flush lets it go to the bounded part only if none came while writing. */
  changes: number
}

/** Manifests and tags whose written times stay in memory: a few MiB. */
export const defaultMaxEntries = 50_000

interface StoredTimes {
  manifests?: Record<string, [number | null, number | null]>
  tags?: Record<string, [number | null, number | null]>
}

export interface AccessTimeRecorder extends AccessTimeReader {
  /** A manifest (and, when pulled by tag, the tag) was served. `repository` is the stored name (`_cache/...` for the cache). */
  pulled(repository: string, digest: Digest, tag?: string): void
  /** A manifest was stored (pushed, or fetched into the cache), optionally under a tag. */
  pushed(repository: string, digest: Digest, tag?: string): void
}

export class AccessTimes implements AccessTimeRecorder {
  /** Changed since last written: kept until a flush writes them. */
  private readonly unflushed = new Map<string, RepositoryTimes>()
  /** Written (or read) and unchanged since: the most recently used, within the bound. */
  private readonly recent: LRUCache<string, RepositoryTimes>
  private flushing: Promise<void> = Promise.resolve()

  constructor(
    private readonly driver: StorageDriver,
    private readonly now: () => number = Date.now,
    maxEntries = defaultMaxEntries,
  ) {
    this.recent = new LRUCache({ maxSize: maxEntries, sizeCalculation: (times) => Math.max(1, times.manifests.size + times.tags.size) })
  }

  /** Manifests and tags whose times are in memory now (written or not). */
  get entries(): number {
    let unflushed = 0
    for (const times of this.unflushed.values()) unflushed += times.manifests.size + times.tags.size
    return unflushed + this.recent.calculatedSize
  }

  pulled(repository: string, digest: Digest, tag?: string): void {
    this.touch(repository, digest, tag, 'pullTime')
  }

  pushed(repository: string, digest: Digest, tag?: string): void {
    this.touch(repository, digest, tag, 'pushTime')
  }

  async manifest(repository: string, digest: Digest): Promise<AccessTime> {
    return { ...(await this.load(repository)).manifests.get(digest) }
  }

  async tag(repository: string, tag: string): Promise<AccessTime> {
    return { ...(await this.load(repository)).tags.get(tag) }
  }

  /** Forgets manifests and tags that no longer exist (eviction, GC); written out with the next flush. */
  async forget(repository: string, digests: readonly string[], tags: readonly string[] = []): Promise<void> {
    const times = await this.load(repository)
    for (const digest of digests) times.manifests.delete(digest)
    for (const tag of tags) times.tags.delete(tag)
    for (const key of [...digests, ...tags]) times.forgotten.add(key)
    this.changed(repository, times)
  }

  /** Writes every repository changed since the last flush. One flush at a time; never rejects for one bad file. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(() => this.flushDirty())
    return this.flushing
  }

  /** Every repository with recorded times on storage or in memory (a background walk, never on a request path). */
  async repositories(): Promise<string[]> {
    const names = new Set([...this.unflushed.keys(), ...this.recent.keys()])
    const walk = async (dir: string, prefix: string): Promise<void> => {
      for (const child of await this.driver.list(dir)) {
        if (child === '_times') names.add(prefix)
        else await walk(`${dir}/${child}`, prefix === '' ? child : `${prefix}/${child}`)
      }
    }
    await walk(accessTimesRoot, '')
    names.delete('')
    return [...names].sort()
  }

  private touch(repository: string, digest: Digest, tag: string | undefined, field: keyof AccessTime): void {
    // Updated in place (readers get copies): this runs on every manifest request.
    const at = this.now()
    const times = this.memory(repository)
    stamp(times.manifests, digest, field, at)
    if (tag !== undefined) stamp(times.tags, tag, field, at)
    this.changed(repository, times)
  }

  /** Kept until written. */
  private changed(repository: string, times: RepositoryTimes): void {
    times.changes++
    if (this.unflushed.get(repository) === times) return
    this.recent.delete(repository)
    this.unflushed.set(repository, times)
  }

  /** The in-memory record, else a new empty one (merged with storage when flushed or loaded). */
  private memory(repository: string): RepositoryTimes {
    return (
      this.unflushed.get(repository) ??
      this.recent.get(repository) ?? { manifests: new Map(), tags: new Map(), loaded: false, forgotten: new Set(), changes: 0 }
    )
  }

  private async load(repository: string): Promise<RepositoryTimes> {
    const times = this.memory(repository)
    if (times.loaded) return times
    merge(times, await this.read(repository))
    times.loaded = true
    // Read, not changed: memory keeps it only while it is among the recent.
    if (!this.unflushed.has(repository)) this.recent.set(repository, times)
    return times
  }

  private async read(repository: string): Promise<StoredTimes> {
    const content = await this.driver.getContent(accessTimesPath(repository)).catch(() => undefined)
    if (!content) return {}
    try {
      return JSON.parse(content.toString('utf8')) as StoredTimes
    } catch {
      return {} // a torn or foreign file: start over rather than stop recording
    }
  }

  private async flushDirty(): Promise<void> {
    for (const [repository, times] of [...this.unflushed]) {
      const changes = times.changes
      try {
        // Another replica may have written newer times since we loaded: merge before writing.
        merge(times, await this.read(repository))
        times.loaded = true
        await this.driver.putContent(accessTimesPath(repository), JSON.stringify(encode(times)))
      } catch {
        continue // storage unavailable or full: still unflushed, tried again with the next flush
      }
      // Changed while being written: stays (with what it forgot) for the next flush.
      if (times.changes !== changes) continue
      times.forgotten.clear()
      this.unflushed.delete(repository)
      this.recent.set(repository, times)
    }
  }
}

/** Adds stored entries to memory, keeping the newer of each time; what this process forgot stays forgotten. */
function merge(times: RepositoryTimes, stored: StoredTimes): void {
  for (const [key, [push, pull]] of Object.entries(stored.manifests ?? {})) {
    if (!times.forgotten.has(key)) times.manifests.set(key, newer(times.manifests.get(key), push, pull))
  }
  for (const [key, [push, pull]] of Object.entries(stored.tags ?? {})) {
    if (!times.forgotten.has(key)) times.tags.set(key, newer(times.tags.get(key), push, pull))
  }
}

function newer(current: AccessTime | undefined, push: number | null, pull: number | null): AccessTime {
  const result: AccessTime = { ...current }
  if (push !== null && (result.pushTime === undefined || push > result.pushTime)) result.pushTime = push
  if (pull !== null && (result.pullTime === undefined || pull > result.pullTime)) result.pullTime = pull
  return result
}

function encode(times: RepositoryTimes): StoredTimes {
  const pairs = (map: Map<string, AccessTime>) =>
    Object.fromEntries([...map].map(([key, t]) => [key, [t.pushTime ?? null, t.pullTime ?? null] as [number | null, number | null]]))
  return { manifests: pairs(times.manifests), tags: pairs(times.tags) }
}

function stamp(entries: Map<string, AccessTime>, key: string, field: keyof AccessTime, at: number): void {
  const entry = entries.get(key)
  if (entry) entry[field] = at
  else entries.set(key, { [field]: at })
}
