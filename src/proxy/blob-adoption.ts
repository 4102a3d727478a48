// Bringing the upstream's blobs into a mirrored repository when a client pushes a manifest there:
// its blob HEADs answered from the upstream, so it skipped uploading those. The manifest is
// client-controlled, so one PUT must not turn into an unbounded amount of upstream work: the
// missing blobs are counted and capped, their existence is checked with a few HEADs at a time
// (stopping at the first the upstream lacks), and only then, within a byte cap, copied.
import type { Digest } from '../core/digest.js'
import { isRegistryError, RegistryError } from '../core/errors.js'
import type { BlobService } from '../core/registry.js'
import type { AdoptionLimits } from './adoption-limits.js'
import type { MirrorBlobs } from './mirror-blobs.js'

/** Local existence checks in flight at once: cheap, but 10,000 at a time would flood the thread pool. */
const localChecks = 16

/** Those of `digests` that `local` lacks. */
export async function missingLocally(digests: readonly Digest[], local: BlobService): Promise<Digest[]> {
  const missing: Digest[] = []
  await eachBounded([...new Set(digests)], localChecks, async (digest) => {
    if (!(await local.stat(digest))) missing.push(digest)
    return true
  })
  return missing
}

/**
 * Copies `digests`, which `local` lacks, from the upstream into it. Throws MANIFEST_BLOB_UNKNOWN
 * when there are more than the caps allow or the upstream lacks one, before anything is copied;
 * upstream failures propagate.
 */
export async function adoptBlobs(
  digests: readonly Digest[],
  mirrored: MirrorBlobs,
  local: BlobService,
  limits: AdoptionLimits,
): Promise<void> {
  if (digests.length > limits.blobs) {
    throw new RegistryError(
      'MANIFEST_BLOB_UNKNOWN',
      `manifest references ${digests.length} blobs missing from this repository; at most ${limits.blobs} are copied from the upstream per push`,
      { missing: digests.length, limit: limits.blobs },
    )
  }
  const sizes = new Map<Digest, number>()
  let unknown: Digest | undefined
  await eachBounded(digests, limits.checks, async (digest) => {
    const found = await mirrored.statMirrored(digest).catch((err: unknown) => {
      if (isRegistryError(err) && err.code === 'BLOB_UNKNOWN') return undefined // a fill in flight found nothing upstream
      throw err
    })
    if (!found) unknown ??= digest
    else sizes.set(digest, found.size)
    return found !== undefined
  })
  if (unknown !== undefined) throw new RegistryError('MANIFEST_BLOB_UNKNOWN', undefined, { missing: [unknown] })
  const bytes = [...sizes.values()].reduce((sum, size) => sum + size, 0)
  if (bytes > limits.bytes) {
    throw new RegistryError(
      'MANIFEST_BLOB_UNKNOWN',
      `manifest references ${bytes} bytes of blobs missing from this repository; at most ${limits.bytes} are copied from the upstream per push`,
      { bytes, limit: limits.bytes },
    )
  }
  await eachBounded(digests, limits.copies, async (digest) => {
    const body = await mirrored.openMirrored(digest, { wantBytes: true })
    if (body.kind !== 'body') return true // a redirect is not bytes to copy: the retried put reports the blob
    const session = await local.uploads.start()
    await local.uploads.complete(session.id, digest, body.stream)
    return true
  })
}

/**
 * Runs `task` over `items` with at most `limit` in flight. A task answering false, or throwing,
 * stops new tasks from starting; the ones in flight finish. The first error is rethrown.
 */
async function eachBounded<T>(items: readonly T[], limit: number, task: (item: T) => Promise<boolean>): Promise<void> {
  let next = 0
  let stopped = false
  let failure: { error: unknown } | undefined
  const worker = async (): Promise<void> => {
    while (!stopped && next < items.length) {
      const item = items[next++]!
      try {
        if (!(await task(item))) stopped = true
      } catch (error) {
        stopped = true
        failure ??= { error }
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  if (failure) throw failure.error
}
