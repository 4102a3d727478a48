// Blobs of a mirrored repository: pushed (local) first, then the cache, then one shared fill
// from the upstream. Writes (uploads, mounts, deletes) always go to the local repository.
import { Readable } from 'node:stream'
import type { Digest } from '../core/digest.js'
import { isRegistryError } from '../core/errors.js'
import { rangeToServe, type RangeOptions } from '../core/range.js'
import type { BlobBody, BlobInfo, BlobRedirect, BlobService, Op, UploadService } from '../core/registry.js'
import { isUpstreamFailure } from '../upstream/upstream.js'
import { BlobFill } from './blob-fill.js'
import { BlobLanded, LeasedUpstream } from './leased-upstream.js'
import type { MirrorContext } from './mirror-context.js'
import type { MirrorTarget } from './mirror-target.js'

export class MirrorBlobs implements BlobService {
  readonly uploads: UploadService

  constructor(
    private readonly local: BlobService,
    private readonly target: MirrorTarget,
    private readonly context: MirrorContext,
  ) {
    this.uploads = local.uploads
  }

  async stat(digest: Digest, op?: Op): Promise<BlobInfo | undefined> {
    const local = await this.local.stat(digest, op)
    if (local || (await this.target.pushed())) return local
    // An upstream that cannot answer means "not here": a client pushing into a mirrored name
    // HEADs every blob before uploading it.
    try {
      return await this.statMirrored(digest, op)
    } catch (err) {
      if (isUpstreamFailure(err)) return undefined
      throw err
    }
  }

  /** The blob in the cache, in a fill, or at the upstream: a HEAD there, never a download. Upstream failures throw. */
  async statMirrored(digest: Digest, op?: Op): Promise<BlobInfo | undefined> {
    const found = await this.target.cache.blobs.stat(digest, op)
    if (found) return found
    const fill = this.context.fills.get(this.fillKey(digest))
    if (fill) {
      const size = await fill.ready.catch(async (err: unknown) => {
        if (err instanceof BlobLanded) return (await this.target.cache.blobs.stat(digest, op))?.size
        throw err
      })
      if (size !== undefined) return { digest, size }
    }
    const upstream = await this.target.upstream.statBlob(this.target.repository, digest, op)
    return upstream ? { digest, size: upstream.size } : undefined
  }

  async open(digest: Digest, options: RangeOptions & Op = {}): Promise<BlobBody | BlobRedirect> {
    if ((await this.local.stat(digest, options)) || (await this.target.pushed())) return this.local.open(digest, options)
    return this.openMirrored(digest, options)
  }

  /** The blob from the cache, else from one shared upstream fill. */
  async openMirrored(digest: Digest, options: RangeOptions & Op = {}): Promise<BlobBody | BlobRedirect> {
    // Opened straight away, not after a stat: on S3 a stat is a link GET and a HEAD, and open does both again.
    const cached = await this.target.cache.blobs.open(digest, options).catch((err: unknown) => {
      if (isRegistryError(err) && err.code === 'BLOB_UNKNOWN') return undefined
      throw err
    })
    if (cached) {
      this.context.metrics.cacheLookups.inc({ kind: 'blob', result: 'hit' })
      return cached
    }
    const fill = this.fill(digest)
    let size: number
    try {
      size = await fill.ready
    } catch (err) {
      // Another replica filled it while this one waited for the lease.
      if (err instanceof BlobLanded) return this.target.cache.blobs.open(digest, options)
      throw err
    }
    const range = rangeToServe(size, options)
    const stream = size === 0 ? Readable.from([]) : fill.follow(range)
    return range ? { kind: 'body', digest, size, range, stream } : { kind: 'body', digest, size, stream }
  }

  mount(from: Parameters<BlobService['mount']>[0], digest: Digest, op?: Op): Promise<BlobInfo | undefined> {
    return this.local.mount(from, digest, op)
  }

  delete(digest: Digest, op?: Op): Promise<void> {
    return this.local.delete(digest, op)
  }

  private fill(digest: Digest): BlobFill {
    const key = this.fillKey(digest)
    const existing = this.context.fills.get(key)
    // An unstored fill (full volume) keeps only what its followers have yet to send: start anew.
    if (existing && !existing.unstored) {
      this.context.metrics.coalescedWaiters.inc({ kind: 'blob' })
      return existing
    }
    this.context.metrics.cacheLookups.inc({ kind: 'blob', result: 'miss' })
    const { repository } = this.target
    // Replicas on one storage: the fill takes the blob's lease, or follows the replica holding it.
    const coordinator = this.context.coordinator
    const leased = coordinator?.shared ? new LeasedUpstream(this.target.upstream, coordinator, key, this.target.cache.blobs) : undefined
    const upstream = leased ?? this.target.upstream
    // A fill streaming the lease holder's fill leaves the writing to it.
    const writes = (): boolean => !leased || leased.holding
    const countBytes = (bytes: number): void => {
      // Bytes streamed from another replica are not the upstream's.
      if (!leased || leased.fromUpstream) this.context.metrics.upstreamBytes.inc({ upstream: upstream.name }, bytes)
    }
    const source = { upstream, repository, digest, writes }
    const fill = new BlobFill(source, this.target.cache.blobs, this.context.blockBudget, countBytes, this.context.spool)
    this.context.fills.set(key, fill)
    this.context.metrics.fillsInFlight.inc()
    const started = this.context.now()
    fill.settled
      .then(
        () =>
          this.context.logger.info({ upstream: upstream.name, repo: repository, digest, ms: this.context.now() - started }, 'blob cached'),
        (err: unknown) => {
          if (fill.unstored && fill.state === 'done') {
            this.context.metrics.fillsUnstored.inc({ upstream: upstream.name })
            const cause = fill.unstored.message
            this.context.logger.warn(
              { upstream: upstream.name, repo: repository, digest, cause },
              'blob streamed to its clients but not cached',
            )
            return
          }
          // "The upstream does not have it" is an answer, not a failure worth a warning.
          const level = (isRegistryError(err) && err.code === 'BLOB_UNKNOWN') || err instanceof BlobLanded ? 'debug' : 'warn'
          this.context.logger[level]({ upstream: upstream.name, repo: repository, digest, err }, 'blob fill failed')
        },
      )
      .finally(() => {
        void leased?.release()
        if (this.context.fills.get(key) === fill) this.context.fills.delete(key)
        this.context.metrics.fillsInFlight.dec()
      })
    return fill
  }

  private fillKey(digest: Digest): string {
    return `${this.target.cache.name}@${digest}`
  }
}
