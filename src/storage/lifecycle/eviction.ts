// Keeps the mirror's cache within its quota, online. Above the limit (the high watermark), it
// evicts whole cached images, least recently pulled first, until the cache is back under the low
// watermark: an image's tags and manifest links go, then each blob no remaining manifest or blob
// link of any repository holds, unless a request or fill is using it. Pushed content is never
// touched. Evicted manifests' own bytes (a few KiB) stay for GC, so a pull racing the eviction is
// answered from the bytes it already resolved and refetches the blobs.
import type { Digest } from '../../core/digest.js'
import { isRegistryError } from '../../core/errors.js'
import type { RepositoryName } from '../../core/reference.js'
import type { Registry } from '../../core/registry.js'
import type { StorageDriver } from '../driver/driver.js'
import { blobDataPath } from '../paths.js'
import type { AccessTimes } from './access-times.js'
import type { BlobActivity } from './blob-activity.js'
import { cachePrefix, takeInventory, upstreamOf, type Inventory, type ManifestEntry, type RepositoryEntry } from './inventory.js'
import { heldBy, measureUsage, type Usage } from './usage.js'

export interface CacheLimits {
  /** Bytes the whole cache may hold; undefined: unbounded. */
  total: number | undefined
  /** Per upstream name. */
  upstreams: ReadonlyMap<string, number>
  /** Share of a limit eviction brings the cache down to (0 < low ≤ 1). */
  lowWatermark: number
}

export interface EvictionResult {
  images: number
  bytesFreed: number
  /** Cache usage measured before evicting. */
  before: Usage
  cachedBytesAfter: number
}

export interface EvictionEvents {
  evicted?(image: { repository: string; digest: Digest; upstream: string; bytes: number }): void
  measured?(usage: Usage): void
  /** An eviction a fill started failed (the next one tries again). */
  failed?(err: unknown): void
}

interface Image {
  repo: RepositoryEntry
  root: ManifestEntry
  members: Digest[]
  lastUsed: number
}

export class Evictor {
  private running: Promise<EvictionResult> | undefined
  private queued: Promise<EvictionResult> | undefined
  private queuedAtLeast = 0
  private closed = false
  /** The cache's size as last measured plus what fills stored since: a run starts when it passes a limit. */
  private estimate = 0
  private upstreamEstimates = new Map<string, number>()

  constructor(
    private readonly driver: StorageDriver,
    /** The mirror's cache registry (undecorated), whose repositories are `_cache/<name>` on storage. */
    private readonly cache: Registry,
    private readonly times: AccessTimes,
    private readonly activity: BlobActivity,
    private readonly limits: () => Promise<CacheLimits>,
    private readonly events: EvictionEvents = {},
    private readonly now: () => number = Date.now,
  ) {}

  /** A fill stored `bytes` in cached `repository`: evict now if that puts the cache, or its upstream's share, over a limit. */
  stored(bytes: number, repository: string): void {
    if (this.closed) return
    this.estimate += bytes
    const upstream = upstreamOf(repository)
    if (upstream !== undefined) this.upstreamEstimates.set(upstream, (this.upstreamEstimates.get(upstream) ?? 0) + bytes)
    this.limits()
      .then((limits) => {
        const overTotal = limits.total !== undefined && this.estimate > limits.total
        const max = upstream === undefined ? undefined : limits.upstreams.get(upstream)
        const overUpstream = max !== undefined && (this.upstreamEstimates.get(upstream!) ?? 0) > max
        return overTotal || overUpstream ? this.run() : undefined
      })
      .catch((err: unknown) => {
        if (!this.closed) this.events.failed?.(err)
      })
  }

  /**
   * One eviction pass. While one runs, another is queued (once) to start after it: the running
   * pass may have measured before the bytes that asked for this one landed. `atLeast` bytes are
   * freed even under the quota (a full disk).
   */
  run(atLeast = 0): Promise<EvictionResult> {
    if (this.closed) return Promise.reject(new Error('eviction stopped: the server is shutting down'))
    if (!this.running) return this.start(atLeast)
    this.queuedAtLeast = Math.max(this.queuedAtLeast, atLeast)
    this.queued ??= this.running
      .catch(() => undefined)
      .then(() => {
        if (this.closed) throw new Error('eviction stopped: the server is shutting down')
        const wanted = this.queuedAtLeast
        this.queued = undefined
        this.queuedAtLeast = 0
        return this.start(wanted)
      })
    return this.queued
  }

  /** Starts no more passes; waits for the running and queued ones. */
  async close(): Promise<void> {
    this.closed = true
    await Promise.allSettled([this.running, this.queued])
  }

  private start(atLeast: number): Promise<EvictionResult> {
    // Replicas on one storage: one pass at a time; skipped while another replica runs one.
    const exclusive = this.activity.cluster.exclusive('evict', () => this.evict(atLeast))
    const pass = exclusive
      .then((result) => result ?? this.skipped())
      .finally(() => {
        if (this.running === pass) this.running = undefined
      })
    this.running = pass
    return pass
  }

  private skipped(): EvictionResult {
    const before: Usage = { pushedBytes: 0, cachedBytes: 0, cachedByUpstream: new Map(), unreferencedBytes: 0, byNamespace: new Map() }
    return { images: 0, bytesFreed: 0, before, cachedBytesAfter: this.estimate }
  }

  private async evict(atLeast: number): Promise<EvictionResult> {
    const markedAt = this.now()
    await this.times.flush()
    const inventory = await takeInventory(this.driver)
    const usage = measureUsage(inventory)
    this.events.measured?.(usage)
    const limits = await this.limits()
    const target = targets(usage, limits, atLeast)
    const result: EvictionResult = { images: 0, bytesFreed: 0, before: usage, cachedBytesAfter: usage.cachedBytes }
    if (!target) {
      this.estimate = usage.cachedBytes
      this.upstreamEstimates = new Map(usage.cachedByUpstream)
      return result
    }
    const holders = holderCounts(inventory)
    const images = await this.imagesByAge(inventory)
    // Blobs another replica reads or writes now: their images are in use, as with this one's own.
    const blobs = new Set(images.flatMap((image) => image.members.flatMap((member) => image.repo.manifests.get(member)?.blobs ?? [])))
    const elsewhere = await this.activity.usedElsewhere([...blobs])
    let cached = usage.cachedBytes
    const byUpstream = new Map(usage.cachedByUpstream)
    let freed = 0
    for (const image of images) {
      const upstream = image.repo.upstream!
      const overTotal = cached > target.total || freed < atLeast
      const overUpstream = (byUpstream.get(upstream) ?? 0) > (target.upstreams.get(upstream) ?? Infinity)
      if (!overTotal && !overUpstream) continue
      // An image whose blobs are being read or were written since this pass began is in use now:
      // the most recently used of all, whatever its recorded time. Evicting its manifests while
      // its blobs must stay would free nothing and send the pass on to newer images.
      if (this.inUse(image, markedAt, elsewhere)) continue
      const released = await this.evictImage(image, holders, inventory, markedAt)
      result.images++
      freed += released
      cached -= released
      byUpstream.set(upstream, (byUpstream.get(upstream) ?? 0) - released)
      this.events.evicted?.({ repository: image.repo.name, digest: image.root.digest, upstream, bytes: released })
      if (cached <= target.total && freed >= atLeast && [...target.upstreams].every(([u, max]) => (byUpstream.get(u) ?? 0) <= max)) break
    }
    result.bytesFreed = freed
    result.cachedBytesAfter = cached
    this.estimate = cached
    this.upstreamEstimates = byUpstream
    await this.times.flush()
    return result
  }

  /** Cached images (a root manifest with its child manifests and referrers), least recently used first. */
  private async imagesByAge(inventory: Inventory): Promise<Image[]> {
    const images: Image[] = []
    for (const repo of inventory.repositories) {
      if (repo.upstream === undefined) continue
      const children = new Set<Digest>()
      for (const manifest of repo.manifests.values()) {
        for (const child of manifest.children) children.add(child)
        if (manifest.subject && repo.manifests.has(manifest.subject)) children.add(manifest.digest)
      }
      for (const root of repo.manifests.values()) {
        if (children.has(root.digest)) continue
        const members = closure(repo, root.digest)
        let lastUsed = 0
        for (const digest of members) {
          const time = await this.times.manifest(repo.name, digest)
          lastUsed = Math.max(lastUsed, time.pullTime ?? 0, time.pushTime ?? 0)
        }
        images.push({ repo, root, members, lastUsed })
      }
    }
    return images.sort((a, b) => a.lastUsed - b.lastUsed)
  }

  private inUse(image: Image, markedAt: number, elsewhere: Set<string>): boolean {
    return image.members.some((member) =>
      (image.repo.manifests.get(member)?.blobs ?? []).some(
        (blob) => this.activity.inUse(blob) || this.activity.writtenSince(blob, markedAt) || elsewhere.has(blob),
      ),
    )
  }

  /** Removes one image from its cached repository; returns the bytes it released from the cache. */
  private async evictImage(image: Image, holders: Map<Digest, number>, inventory: Inventory, markedAt: number): Promise<number> {
    const { repo } = image
    // Through the cache registry, so its remembered tag and manifest answers forget them too.
    const stored = this.cache.repository(repo.name.slice(cachePrefix.length + 1) as RepositoryName)
    const members = new Set(image.members)
    const tags = [...repo.tags].filter(([, digest]) => members.has(digest)).map(([tag]) => tag)
    const heldBefore = heldBy(repo)
    for (const digest of members) {
      await stored.manifests.delete(digest).catch(ignoreUnknown)
      repo.manifests.delete(digest)
    }
    for (const tag of tags) repo.tags.delete(tag)
    const heldAfter = heldBy({ ...repo, layers: new Set() })
    let freed = 0
    for (const digest of heldBefore) {
      if (heldAfter.has(digest)) continue
      if (repo.layers.delete(digest)) await stored.blobs.delete(digest).catch(ignoreUnknown)
      const left = (holders.get(digest) ?? 1) - 1
      holders.set(digest, left)
      const blob = inventory.blobs.get(digest)
      if (left > 0 || !blob) continue
      if (members.has(digest)) {
        freed += blob.size // no longer the cache's; GC deletes the bytes
        continue
      }
      const deleted = await this.activity.delete(digest, markedAt, () => this.driver.delete(blobDataPath(digest).replace(/\/data$/, '')))
      if (deleted) {
        freed += blob.size
        inventory.blobs.delete(digest)
      }
    }
    await this.times.forget(repo.name, image.members, tags)
    return freed
  }
}

/** The limits to evict down to, or undefined when nothing is over its limit (and nothing must be freed). */
function targets(usage: Usage, limits: CacheLimits, atLeast: number): { total: number; upstreams: Map<string, number> } | undefined {
  const over =
    atLeast > 0 ||
    (limits.total !== undefined && usage.cachedBytes > limits.total) ||
    [...limits.upstreams].some(([upstream, max]) => (usage.cachedByUpstream.get(upstream) ?? 0) > max)
  if (!over) return undefined
  const low = (limit: number): number => Math.floor(limit * limits.lowWatermark)
  const total = limits.total !== undefined && usage.cachedBytes > limits.total ? low(limits.total) : (limits.total ?? Infinity)
  const upstreams = new Map<string, number>()
  for (const [upstream, max] of limits.upstreams) {
    upstreams.set(upstream, (usage.cachedByUpstream.get(upstream) ?? 0) > max ? low(max) : max)
  }
  return { total, upstreams }
}

/** How many repositories hold each digest; pushed repositories count as holding it for ever. */
function holderCounts(inventory: Inventory): Map<Digest, number> {
  const holders = new Map<Digest, number>()
  for (const repo of inventory.repositories) {
    const weight = repo.upstream === undefined ? Number.MAX_SAFE_INTEGER : 1
    for (const digest of heldBy(repo)) holders.set(digest, Math.min(Number.MAX_SAFE_INTEGER, (holders.get(digest) ?? 0) + weight))
  }
  return holders
}

/** A manifest and, through index entries and referrers, everything under it in the repository. */
function closure(repo: RepositoryEntry, root: Digest): Digest[] {
  const seen = new Set<Digest>([root])
  const queue = [root]
  while (queue.length > 0) {
    const digest = queue.pop()!
    for (const child of repo.manifests.get(digest)?.children ?? []) {
      if (repo.manifests.has(child) && !seen.has(child)) {
        seen.add(child)
        queue.push(child)
      }
    }
    for (const manifest of repo.manifests.values()) {
      if (manifest.subject === digest && !seen.has(manifest.digest)) {
        seen.add(manifest.digest)
        queue.push(manifest.digest)
      }
    }
  }
  return [...seen]
}

/** Gone already (a concurrent eviction, GC or delete): what we wanted. */
function ignoreUnknown(err: unknown): void {
  if (isRegistryError(err) && (err.code === 'MANIFEST_UNKNOWN' || err.code === 'BLOB_UNKNOWN')) return
  throw err
}
