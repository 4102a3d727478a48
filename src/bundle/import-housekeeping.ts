// What server-side imports leave behind, cleared away: the staging repository of a namespace is
// emptied once an import into it completed (as `ferry push images` empties its own), and the
// records of finished imports are pruned after a retention.
//
// Staging: the blobs a completed import stored in (or found in) `<namespace>/ferry-bundle-staging`
// are unlinked from it; their content stays with the images they were linked into, and the
// emptied repository leaves the catalog. Another import into the same namespace may still be
// reading, and mount from the staging repository what it found there: the unlinking waits until
// no import into that namespace runs. A failed or partial import keeps its blobs there, so
// sending the bundle again stores only what is missing; a bundle sent again after a completed
// import finds its blobs in the images that import landed (earlierImages) and stores none.
import { tryParseDigest, type Digest } from '../core/digest.js'
import { RegistryError } from '../core/errors.js'
import { bundleStagingRepository, isFinished, type ImportRecords, type ImportStatus } from '../core/imports.js'
import type { RepositoryName } from '../core/reference.js'
import type { Registry } from '../core/registry.js'

export function stagingRepositoryOf(namespace: string): string {
  return namespace === '' ? bundleStagingRepository : `${namespace}/${bundleStagingRepository}`
}

export class StagingCleaner {
  readonly #registry: Registry
  /** Per namespace, the staged blobs of completed imports not unlinked yet. */
  readonly #pending = new Map<string, Set<Digest>>()

  constructor(registry: Registry) {
    this.#registry = registry
  }

  /** A completed import's staged blobs, to unlink once no import into `namespace` runs. */
  add(namespace: string, digests: Digest[]): void {
    if (digests.length === 0) return
    const pending = this.#pending.get(namespace) ?? new Set<Digest>()
    for (const digest of digests) pending.add(digest)
    this.#pending.set(namespace, pending)
  }

  /** Unlinks the pending blobs of `namespace` unless `busy`. Returns how many were unlinked. */
  async empty(namespace: string, busy: boolean): Promise<number> {
    const pending = this.#pending.get(namespace)
    if (busy || pending === undefined) return 0
    this.#pending.delete(namespace)
    const blobs = this.#registry.repository(stagingRepositoryOf(namespace) as RepositoryName).blobs
    let removed = 0
    for (const digest of pending) {
      try {
        await blobs.delete(digest)
        removed++
      } catch (err) {
        // Unlinked already (by another replica's cleaner, or an earlier run): nothing to do.
        if (!(err instanceof RegistryError && err.code === 'BLOB_UNKNOWN')) throw err
      }
    }
    return removed
  }
}

export interface RecordRetention {
  /** Finished records last changed longer ago than this go. */
  retentionMs: number
  /** The newest finished records kept whatever their age, so a quiet site still sees its last imports. */
  keep: number
}

/** Deletes the records of finished imports older than the retention, but the newest `keep`. Returns the ids deleted. */
export async function pruneRecords(records: ImportRecords, retention: RecordRetention, now = Date.now()): Promise<string[]> {
  const finished = (await records.list()).filter((s) => isFinished(s.state)).sort((a, b) => b.createdAt.localeCompare(a.createdAt))
  const stale = finished.slice(retention.keep).filter((s) => now - Date.parse(s.updatedAt) > retention.retentionMs)
  for (const status of stale) await records.delete(status.id)
  return stale.map((s) => s.id)
}

/** Earlier imports (and images of them) consulted for blobs already stored: a few manifest reads each. */
const maxEarlier = 50

/**
 * The images earlier imports into `status`'s namespace landed, newest first: their blobs count as
 * stored (mounted from there), so a bundle sent again after its staging repository was emptied
 * stores no blob again.
 */
export function earlierImages(records: ImportStatus[], status: ImportStatus): Array<{ repository: string; digest: Digest }> {
  const earlier = records
    .filter((s) => s.id !== status.id && s.namespace === status.namespace && (s.state === 'done' || s.state === 'partial'))
    .sort((a, b) => b.createdAt.localeCompare(a.createdAt))
    .slice(0, maxEarlier)
  const images = new Map<string, { repository: string; digest: Digest }>()
  for (const image of earlier.flatMap((s) => s.images)) {
    const digest = image.digest === undefined ? undefined : tryParseDigest(image.digest)
    // `<namespace>/<path>:<tag>` or `…@<digest>`.
    const repository = /^(.+?)(?::[^/:@]+|@.+)$/.exec(image.destination)?.[1]
    if (digest === undefined || repository === undefined || (image.status !== 'pushed' && image.status !== 'unchanged')) continue
    images.set(`${repository}@${digest}`, { repository, digest })
  }
  return [...images.values()].slice(0, maxEarlier)
}
