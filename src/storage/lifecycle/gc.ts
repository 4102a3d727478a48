// Online garbage collection. Mark: every manifest a repository links (pushed or cached, tagged or
// not) and what it references. Sweep: blobs nothing marked holds, with their dangling blob links,
// upload sessions no byte reached for `uploadMaxAge`, and abandoned temp files. It is safe beside
// pushes: a blob written, linked or referenced by a manifest push within the grace period (by its
// file time, and by what this process saw) is kept, as is any blob a request is using.
import type { Digest } from '../../core/digest.js'
import type { RepositoryName } from '../../core/reference.js'
import type { StorageDriver } from '../driver/driver.js'
import { blobDataPath, uploadDataPath, uploadPath, uploadsPath } from '../paths.js'
import { walkRepositories } from '../repository-walk.js'
import type { BlobActivity } from './blob-activity.js'
import { cachePrefix, storedLayerLink, takeInventory } from './inventory.js'

export interface GcOptions {
  /** Only report what would go. */
  dryRun?: boolean
  /** Milliseconds a blob nothing references yet is kept after it was written or linked. */
  graceMs: number
  /** Upload sessions no byte reached for this long are orphaned. */
  uploadMaxAge: number
}

export interface GcReport {
  dryRun: boolean
  blobs: Array<{ digest: Digest; size: number }>
  bytes: number
  uploads: string[]
  tempFiles: number
}

export interface GcHooks {
  /** Removes upload sessions older than the cutoff through their owner (which holds their locks); else GC deletes them. */
  purgeUploads?(olderThan: Date): Promise<number>
  /** Removes the driver's abandoned temp files older than `ms`. */
  purgeTemp?(ms: number): Promise<number>
}

export async function collectGarbage(
  driver: StorageDriver,
  activity: BlobActivity,
  options: GcOptions,
  hooks: GcHooks = {},
  now: () => number = Date.now,
): Promise<GcReport> {
  const dryRun = options.dryRun === true
  const markedAt = now()
  const since = markedAt - options.graceMs
  const inventory = await takeInventory(driver)
  const marked = new Set<Digest>()
  for (const repo of inventory.repositories) {
    for (const manifest of repo.manifests.values()) {
      marked.add(manifest.digest)
      for (const digest of manifest.blobs) marked.add(digest)
      for (const digest of manifest.children) marked.add(digest)
    }
  }
  const report: GcReport = { dryRun, blobs: [], bytes: 0, uploads: [], tempFiles: 0 }
  for (const blob of inventory.blobs.values()) {
    if (marked.has(blob.digest) || blob.modTime.getTime() >= since || activity.writtenSince(blob.digest, since)) continue
    if (activity.inUse(blob.digest)) continue
    if (!dryRun) {
      const deleted = await activity.delete(blob.digest, since, () => driver.delete(blobDataPath(blob.digest).replace(/\/data$/, '')))
      if (!deleted) continue
    }
    report.blobs.push({ digest: blob.digest, size: blob.size })
    report.bytes += blob.size
  }
  if (!dryRun) {
    // Links to blobs that are gone would make a repository claim a blob it cannot serve.
    const swept = new Set(report.blobs.map((b) => b.digest))
    for (const repo of inventory.repositories) {
      for (const digest of repo.layers)
        if (swept.has(digest)) await driver.delete(storedLayerLink(repo.name, digest).replace(/\/link$/, ''))
    }
  }
  const cutoff = new Date(markedAt - options.uploadMaxAge)
  report.uploads = await orphanedUploads(driver, cutoff)
  if (!dryRun) {
    if (hooks.purgeUploads) await hooks.purgeUploads(cutoff)
    else for (const upload of report.uploads) await driver.delete(upload)
    if (hooks.purgeTemp) report.tempFiles = await hooks.purgeTemp(options.uploadMaxAge)
  }
  return report
}

/** Upload session folders whose data file is older than `cutoff` (or missing). */
async function orphanedUploads(driver: StorageDriver, cutoff: Date): Promise<string[]> {
  const found: string[] = []
  for (const prefix of ['', cachePrefix]) {
    for await (const repo of walkRepositories(driver, prefix)) {
      if (!repo.internals.includes('_uploads')) continue
      const name = repo.name as RepositoryName
      for (const id of await driver.list(uploadsPath(name))) {
        const data = await driver.stat(uploadDataPath(name, id))
        if (!data || data.modTime < cutoff) found.push(uploadPath(name, id))
      }
    }
  }
  return found
}
