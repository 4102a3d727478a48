// When each manifest and tag was last pulled and when it was pushed (or, in the mirror's cache,
// fetched). Requests only touch memory; dirty repositories are written out in batches, one small
// JSON file per repository, merged with what is stored (the newest time wins), so replicas on
// one storage and a restart see the same times. Eviction orders cached images by it; a listing
// API can read `pushTime`/`pullTime` from it.
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
}

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
  private readonly known = new Map<string, RepositoryTimes>()
  private readonly dirty = new Set<string>()
  private flushing: Promise<void> = Promise.resolve()

  constructor(
    private readonly driver: StorageDriver,
    private readonly now: () => number = Date.now,
  ) {}

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
    this.dirty.add(repository)
  }

  /** Writes every repository changed since the last flush. One flush at a time; never rejects for one bad file. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(() => this.flushDirty())
    return this.flushing
  }

  /** Every repository with recorded times on storage or in memory (a background walk, never on a request path). */
  async repositories(): Promise<string[]> {
    const names = new Set(this.known.keys())
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
    this.dirty.add(repository)
  }

  /** The in-memory record, created empty (merged with storage when flushed or loaded). */
  private memory(repository: string): RepositoryTimes {
    let times = this.known.get(repository)
    if (!times) {
      times = { manifests: new Map(), tags: new Map(), loaded: false, forgotten: new Set() }
      this.known.set(repository, times)
    }
    return times
  }

  private async load(repository: string): Promise<RepositoryTimes> {
    const times = this.memory(repository)
    if (times.loaded) return times
    merge(times, await this.read(repository))
    times.loaded = true
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
    const batch = [...this.dirty]
    this.dirty.clear()
    for (const repository of batch) {
      try {
        // Another replica may have written newer times since we loaded: merge before writing.
        const times = this.memory(repository)
        merge(times, await this.read(repository))
        times.loaded = true
        await this.driver.putContent(accessTimesPath(repository), JSON.stringify(encode(times)))
        times.forgotten.clear()
      } catch {
        this.dirty.add(repository) // storage unavailable or full: try again with the next flush
      }
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
