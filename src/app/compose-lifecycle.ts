// Composes the storage lifecycle (src/storage/lifecycle/) around the two storage registries: the
// recording decorators requests go through, and the background jobs (access-time flushes, quota
// checks and eviction, GC and scrub on their schedules, free-space readings), their metrics and
// log lines. The HTTP admin endpoint and `/readyz` reach it through `Lifecycle`.
import { statfs } from 'node:fs/promises'
import type { Logger } from 'pino'
import type { Config } from '../config/schema.js'
import { unsharedActivity, type ClusterActivity } from '../core/cluster-activity.js'
import { RegistryError } from '../core/errors.js'
import type { Registry } from '../core/registry.js'
import { StartupError } from '../core/startup-error.js'
import type { Metrics } from '../observability/metrics.js'
import type { StorageDriver } from '../storage/driver/driver.js'
import { FilesystemDriver } from '../storage/driver/filesystem.js'
import { AccessTimes } from '../storage/lifecycle/access-times.js'
import { BlobActivity } from '../storage/lifecycle/blob-activity.js'
import { Evictor, type CacheLimits } from '../storage/lifecycle/eviction.js'
import { collectGarbage, type GcReport } from '../storage/lifecycle/gc.js'
import { cachePrefix, takeInventory, upstreamOf, type Inventory } from '../storage/lifecycle/inventory.js'
import { RecordingRegistry } from '../storage/lifecycle/recording-registry.js'
import { scrub, type ScrubReport } from '../storage/lifecycle/scrub.js'
import { SpaceMonitor } from '../storage/lifecycle/space-monitor.js'
import { StorageTotals } from '../storage/lifecycle/storage-totals.js'
import { measureUsage, type Usage } from '../storage/lifecycle/usage.js'
import { blobDataPath } from '../storage/paths.js'
import type { Digest } from '../core/digest.js'
import type { LocalRegistry } from '../storage/local-registry.js'

export interface Lifecycle {
  /** The pushed registry as requests see it (recorded). */
  registry: Registry
  /** The mirror's cache as requests see it (recorded, quota-watched). */
  cache: Registry
  times: AccessTimes
  /** Why storage cannot take writes, while it cannot. */
  problem(): string | undefined
  gc(dryRun: boolean): Promise<GcReport>
  scrub(dryRun: boolean): Promise<ScrubReport>
  evict(): Promise<{ images: number; bytesFreed: number }>
  /** Bytes stored by kind, measured by walking storage now (reported as metrics too). */
  usage(): Promise<Usage>
  /** What is stored, read from storage now. */
  inventory(): Promise<Inventory>
  start(): void
  /** Stops the timers and writes out the recorded times. */
  stop(): Promise<void>
}

/** Volume size and free bytes of a filesystem store; undefined for other drivers. */
async function volume(config: Config): Promise<{ size: number; free: number } | undefined> {
  if (config.storage.driver !== 'filesystem') return undefined
  const stats = await statfs(config.storage.filesystem.path)
  return { size: stats.blocks * stats.bsize, free: stats.bavail * stats.bsize }
}

export function composeLifecycle(
  config: Config,
  driver: StorageDriver,
  stores: { registry: LocalRegistry; cache: LocalRegistry },
  metrics: Metrics,
  logger: Logger,
  /** Replicas on one storage: their blob uses, and one pass at a time. */
  cluster: ClusterActivity = unsharedActivity,
): Lifecycle {
  const quota = config.cache.maxSize
  if (quota && 'percent' in quota && config.storage.driver !== 'filesystem') {
    throw new StartupError('cache.maxSize', 'a share of the volume needs storage.driver filesystem; give a size like "200GiB"')
  }
  const times = new AccessTimes(driver)
  const activity = new BlobActivity(Date.now, cluster)
  const limits = async (): Promise<CacheLimits> => {
    let total: number | undefined
    if (quota && 'bytes' in quota) total = quota.bytes
    else if (quota) total = Math.floor((((await volume(config))?.size ?? 0) * quota.percent) / 100)
    return { total, upstreams: new Map(config.cache.upstreams.map((u) => [u.name, u.maxSize])), lowWatermark: config.cache.lowWatermark }
  }
  const bounded = quota !== undefined || config.cache.upstreams.length > 0
  // ferry_storage_bytes between walks: running totals, re-based by every walk.
  const totals = new StorageTotals((current) => {
    metrics.storageBytes.reset()
    metrics.storageBytes.set({ kind: 'pushed', upstream: '' }, current.pushed)
    metrics.storageBytes.set({ kind: 'unreferenced', upstream: '' }, current.unreferenced)
    for (const [upstream, bytes] of current.cached) metrics.storageBytes.set({ kind: 'cached', upstream }, bytes)
  })
  const holds = (digest: Digest): Promise<boolean> =>
    driver.stat(blobDataPath(digest), { fileOnly: true }).then((found) => found !== undefined)
  const evictor = new Evictor(driver, stores.cache, times, activity, limits, {
    evicted: ({ upstream, repository, digest, bytes }) => {
      totals.add('cached', -bytes, upstream)
      metrics.cacheEvictions.inc({ upstream })
      logger.info({ repo: repository, digest, upstream }, 'cached image evicted')
    },
    measured: (usage) => report(usage),
    failed: (err) => logger.error({ err }, 'eviction failed'),
  })
  const space = new SpaceMonitor({
    full: (cause) => {
      metrics.storageFull.set(1)
      logger.error({ cause }, 'storage is full: pushes and cache fills fail until space is freed; evicting cached content')
      // Free what the cache can give even under its quota: a tenth of it, at least 64 MiB.
      void evictor
        .run(64 * 1024 * 1024)
        .then((result) => metrics.cacheEvictedBytes.inc(result.bytesFreed))
        .catch((err: unknown) => logger.error({ err }, 'eviction failed'))
    },
    recovered: () => {
      metrics.storageFull.set(0)
      logger.info('storage accepts writes again')
    },
  })
  const report = (usage: Usage): void => totals.rebase(usage)

  const registry = new RecordingRegistry(stores.registry, {
    times,
    activity,
    space,
    holds,
    stored: (bytes, _repository, fresh) => fresh && totals.add('pushed', bytes),
  })
  const cache = new RecordingRegistry(stores.cache, {
    times,
    activity,
    space,
    holds,
    storagePrefix: cachePrefix,
    stored: (bytes, repository, fresh) => {
      if (fresh) totals.add('cached', bytes, upstreamOf(repository) ?? '')
      if (bounded) evictor.stored(bytes, repository)
    },
  })

  const evict = async (): Promise<{ images: number; bytesFreed: number }> => {
    const result = await evictor.run()
    metrics.cacheEvictedBytes.inc(result.bytesFreed)
    if (result.images > 0) {
      logger.info({ images: result.images, bytes: result.bytesFreed, cachedBytes: result.cachedBytesAfter }, 'cache evicted to its quota')
    }
    return result
  }
  const gc = async (dryRun: boolean): Promise<GcReport> => {
    // A dry run deletes nothing: it need not wait for another replica's pass.
    const report = dryRun ? await collect(true) : await cluster.exclusive('gc', () => collect(false))
    if (report === undefined)
      throw new RegistryError('UNKNOWN', 'another replica is collecting garbage now; try again later', undefined, { status: 409 })
    return report
  }
  const collect = async (dryRun: boolean): Promise<GcReport> => {
    try {
      await times.flush()
      const { grace } = config.maintenance.gc
      const cutoffPurge = async (olderThan: Date): Promise<number> =>
        (await stores.registry.purgeUploads(olderThan)) + (await stores.cache.purgeUploads(olderThan))
      const hooks = {
        purgeUploads: cutoffPurge,
        ...(driver instanceof FilesystemDriver ? { purgeTemp: (ms: number) => driver.purgeTemp(ms) } : {}),
      }
      const result = await collectGarbage(driver, activity, { dryRun, graceMs: grace, uploadMaxAge: config.storage.uploads.maxAge }, hooks)
      metrics.gcRuns.inc({ result: 'ok' })
      if (!dryRun) {
        metrics.gcFreedBytes.inc(result.bytes)
        totals.add('unreferenced', -result.bytes)
      }
      logger.info({ dryRun, blobs: result.blobs.length, bytes: result.bytes, uploads: result.uploads.length }, 'garbage collected')
      return result
    } catch (err) {
      metrics.gcRuns.inc({ result: 'error' })
      throw err
    }
  }
  const runScrub = async (dryRun: boolean): Promise<ScrubReport> => {
    const report = await cluster.exclusive('scrub', () => scrubNow(dryRun))
    if (report === undefined)
      throw new RegistryError('UNKNOWN', 'another replica is scrubbing now; try again later', undefined, { status: 409 })
    return report
  }
  const scrubNow = (dryRun: boolean): Promise<ScrubReport> =>
    scrub(
      driver,
      activity,
      { bytesPerSecond: config.maintenance.scrub.rate, dryRun },
      (found) => {
        metrics.scrubCorrupt.inc({ kind: found.kind })
        const message =
          found.kind === 'pushed'
            ? 'pushed content is corrupt and lost: push it again'
            : 'corrupt content quarantined; it is fetched again on its next pull'
        logger.error({ digest: found.digest, kind: found.kind }, message)
      },
      stores.cache,
    )

  /** Walks storage now: the usage, also re-basing the running totals. */
  const measure = async (): Promise<Usage> => {
    const usage = measureUsage(await takeInventory(driver))
    report(usage)
    return usage
  }

  const timers: NodeJS.Timeout[] = []
  const every = (ms: number, job: () => Promise<unknown>, what: string): void => {
    if (ms <= 0) return
    let busy = false
    const timer = setInterval(() => {
      if (busy) return
      busy = true
      job()
        .catch((err: unknown) => logger.error({ err }, `${what} failed`))
        .finally(() => (busy = false))
    }, ms)
    timer.unref()
    timers.push(timer)
  }
  const readSpace = async (): Promise<void> => {
    const found = await volume(config)
    if (!found) return
    metrics.storageFreeBytes.set(found.free)
    // Room for a few layers again: the condition has passed.
    if (found.free > Math.min(256 * 1024 * 1024, found.size / 20)) space.sawFreeSpace()
  }

  return {
    registry,
    cache,
    times,
    problem: () => space.problem,
    gc,
    scrub: runScrub,
    evict,
    inventory: () => takeInventory(driver),
    usage: measure,
    start() {
      every(config.maintenance.accessTimesFlush, () => times.flush(), 'writing pull times')
      if (bounded) {
        every(config.maintenance.evictionInterval, evict, 'eviction')
        // A cache over its quota at start (a lowered limit) need not wait for the first interval.
        void evict().catch((err: unknown) => logger.error({ err }, 'eviction failed'))
      } else {
        // No eviction pass to measure: the same walk re-bases the running totals.
        every(config.maintenance.evictionInterval, measure, 'measuring storage')
        void measure().catch((err: unknown) => logger.error({ err }, 'measuring storage failed'))
      }
      // On schedule, a pass another replica is running now is simply skipped.
      every(config.maintenance.gc.interval, () => cluster.exclusive('gc', () => collect(false)), 'garbage collection')
      every(config.maintenance.scrub.interval, () => cluster.exclusive('scrub', () => scrubNow(false)), 'scrub')
      every(10_000, readSpace, 'reading free space')
      void readSpace().catch(() => {})
    },
    async stop() {
      for (const timer of timers) clearInterval(timer)
      timers.length = 0
      await evictor.close()
      await times.flush()
    },
  }
}
