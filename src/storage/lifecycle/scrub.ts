// Integrity scrub: re-hashes every stored blob and manifest at a limited rate. A corrupt one is
// moved out of the store into quarantine, so it is never served again: a cached one is fetched
// from its upstream on the next pull (its manifest links in cached repositories go too, so a
// manifest is refetched as well); a pushed one is reported as lost.
import { createDigestHash, digestAlgorithm, digestOfHash, type Digest } from '../../core/digest.js'
import type { RepositoryName } from '../../core/reference.js'
import type { Registry } from '../../core/registry.js'
import type { StorageDriver } from '../driver/driver.js'
import { blobDataPath, revisionLinkPath } from '../paths.js'
import type { BlobActivity } from './blob-activity.js'
import { cachePrefix, takeInventory } from './inventory.js'
import { quarantinePath } from './lifecycle-paths.js'

export interface ScrubOptions {
  /** Bytes hashed per second at most; 0: unlimited. */
  bytesPerSecond: number
  /** Only report, move nothing. */
  dryRun?: boolean
  signal?: AbortSignal
}

export interface CorruptObject {
  digest: Digest
  /** pushed: lost (no upstream to fetch it from); cached: fetched again on the next pull. */
  kind: 'pushed' | 'cached' | 'unreferenced'
  actual: string
}

export interface ScrubReport {
  checked: number
  bytes: number
  corrupt: CorruptObject[]
}

export async function scrub(
  driver: StorageDriver,
  activity: BlobActivity,
  options: ScrubOptions,
  onCorrupt: (found: CorruptObject) => void = () => {},
  /** The mirror's cache registry (undecorated): a corrupt cached manifest is unlinked through it, so its remembered answers go too. */
  cache?: Registry,
): Promise<ScrubReport> {
  const inventory = await takeInventory(driver)
  const pushed = new Set<Digest>()
  const cached = new Set<Digest>()
  for (const repo of inventory.repositories) {
    const into = repo.upstream === undefined ? pushed : cached
    for (const digest of repo.layers) into.add(digest)
    for (const manifest of repo.manifests.values()) {
      into.add(manifest.digest)
      for (const digest of manifest.blobs) into.add(digest)
    }
  }
  const report: ScrubReport = { checked: 0, bytes: 0, corrupt: [] }
  const started = Date.now()
  for (const blob of inventory.blobs.values()) {
    options.signal?.throwIfAborted()
    const actual = await hashOf(driver, blob.digest, async (bytes) => {
      report.bytes += bytes
      if (options.bytesPerSecond > 0) {
        const due = started + (report.bytes / options.bytesPerSecond) * 1000 - Date.now()
        if (due > 0) await new Promise((resolve) => setTimeout(resolve, due))
      }
    })
    if (actual === undefined) continue // deleted meanwhile (GC, eviction)
    report.checked++
    if (actual === blob.digest) continue
    const kind = pushed.has(blob.digest) ? 'pushed' : cached.has(blob.digest) ? 'cached' : 'unreferenced'
    const found: CorruptObject = { digest: blob.digest, kind, actual }
    report.corrupt.push(found)
    onCorrupt(found)
    if (options.dryRun === true) continue
    // A cached manifest must be fetched again too: unlinked (while its bytes are still there to
    // read), the cache no longer claims it, and its tags resolve at the upstream again.
    for (const repo of inventory.repositories) {
      if (repo.upstream === undefined || !repo.manifests.has(blob.digest)) continue
      const name = repo.name.slice(cachePrefix.length + 1) as RepositoryName
      if (cache)
        await cache
          .repository(name)
          .manifests.delete(blob.digest)
          .catch(() => {})
      else await driver.delete(revisionLinkPath(repo.name as RepositoryName, blob.digest).replace(/\/link$/, ''))
    }
    await activity.delete(blob.digest, Infinity, async () => {
      await driver.move(blobDataPath(blob.digest), quarantinePath(blob.digest))
      await driver.delete(blobDataPath(blob.digest).replace(/\/data$/, ''))
    })
  }
  return report
}

async function hashOf(driver: StorageDriver, digest: Digest, paced: (bytes: number) => Promise<void>): Promise<string | undefined> {
  const hash = createDigestHash(digestAlgorithm(digest))
  let stream
  try {
    stream = await driver.read(blobDataPath(digest))
  } catch {
    return undefined
  }
  for await (const chunk of stream) {
    hash.update(chunk as Buffer)
    await paced((chunk as Buffer).length)
  }
  return digestOfHash(digestAlgorithm(digest), hash)
}
