// One upstream download of one blob, shared by every client that wants it. The bytes stream
// into an upload session of the cache repository (hashed on the way, committed only when the
// digest matches), and each client follows the growing upload at its own pace, so nobody waits
// for the whole layer and the upstream serves it once. The fill runs to the end whoever
// disconnects; a failed or mismatched fill is discarded and its followers get an error.
import { Transform, type Readable } from 'node:stream'
import type { Digest } from '../core/digest.js'
import { RegistryError, isRegistryError } from '../core/errors.js'
import { isPositionalSource, type PositionalSource } from '../transfer/body-sources.js'
import type { ByteRange } from '../core/range.js'
import type { BlobService } from '../core/registry.js'
import type { Upstream } from '../upstream/upstream.js'
import { blockSize, SharedBlocks, type BlockBudget } from '../transfer/shared-blocks.js'
import { FillFollower, type FollowedFill } from '../transfer/fill-follower.js'

export interface BlobFillSource {
  upstream: Upstream
  repository: string
  digest: Digest
}

type FillState = 'starting' | 'streaming' | 'done' | 'failed'

type FileSource = PositionalSource & { destroy(): unknown }

/** Blocks per fill: its newest 16 MiB, which is also what a pack of followers sends from. */
const fillShare = 16

export class BlobFill implements FollowedFill {
  readonly digest: Digest
  /** Resolves with the blob's size once the upstream answered; rejects if it never does. */
  readonly ready: Promise<number>
  /** Resolves once the blob is verified and committed to the cache; rejects when the fill failed. */
  readonly settled: Promise<void>
  size = 0
  received = 0
  state: FillState = 'starting'
  /** Every byte is in the upload file and the digest matched (the commit may still be running). */
  verified = false
  error: unknown
  /** What followers send, shared by all of them. */
  readonly blocks: SharedBlocks
  private followers = 0
  private sessionId = ''
  private wakeUps: Array<() => void> = []

  constructor(
    private readonly source: BlobFillSource,
    private readonly target: BlobService,
    /** The process-wide memory for blocks, shared with stored-blob downloads. */
    budget: BlockBudget,
    private readonly onBytes: (bytes: number) => void = () => {},
  ) {
    this.blocks = new SharedBlocks(() => fillShare, budget)
    this.digest = source.digest
    let markReady: (size: number) => void = () => {}
    this.ready = new Promise<number>((resolve) => (markReady = resolve))
    this.settled = this.run(markReady)
    // Callers observe failures through ready/settled/followers; never as an unhandled rejection.
    this.settled.catch(() => {})
    this.ready = Promise.race([this.ready, this.settled.then(() => this.size)])
    this.ready.catch(() => {})
  }

  /** A stream of the blob (or `range` of it) that follows the download as it arrives. */
  follow(range?: ByteRange): Readable {
    this.followers++
    return new FillFollower(this, range?.start ?? 0, range?.end ?? this.size - 1)
  }

  unfollow(): void {
    this.followers--
    this.releaseBlocksWhenUnused()
  }

  /** A handle on the upload file (one per follower, for every block it reads), or the blob once committed. */
  async openFile(): Promise<FileSource> {
    for (;;) {
      if (this.state === 'failed') throw this.error
      try {
        const stream =
          this.state === 'done'
            ? await this.openCommitted()
            : await this.target.uploads.read(this.sessionId, { start: 0, end: this.size - 1 })
        return isPositionalSource(stream) ? stream : this.rangeReads(stream)
      } catch (err) {
        // The upload was just committed (or discarded): look again once the fill settled.
        if (!(isRegistryError(err) && err.code === 'BLOB_UPLOAD_UNKNOWN')) throw err
        await this.settled.catch(() => {})
      }
    }
  }

  nextChange(): Promise<void> {
    return new Promise((resolve) => this.wakeUps.push(resolve))
  }

  private async openCommitted(start = 0, end = this.size - 1): Promise<Readable> {
    const body = await this.target.open(this.digest, { range: { start, end } })
    if (body.kind !== 'body') throw new RegistryError('UNKNOWN', 'cache answered a redirect')
    return body.stream
  }

  /** For a storage driver without positional reads: one ranged stream per read. */
  private rangeReads(first: Readable): FileSource {
    first.destroy()
    return {
      readAt: async (target, position) => {
        const range = { start: position, end: Math.min(position + target.length, this.size) - 1 }
        const stream =
          this.state === 'done' ? await this.openCommitted(range.start, range.end) : await this.target.uploads.read(this.sessionId, range)
        let got = 0
        for await (const chunk of stream) got += (chunk as Buffer).copy(target, got)
        return got
      },
      destroy: () => {},
    }
  }

  private async run(markReady: (size: number) => void): Promise<void> {
    const { upstream, repository, digest } = this.source
    try {
      const session = await this.target.uploads.start()
      this.sessionId = session.id
      const blob = await upstream.openBlob(repository, digest)
      if (!blob) throw new RegistryError('BLOB_UNKNOWN', `blob unknown to upstream ${upstream.name}`, { digest })
      this.size = blob.size
      this.state = 'streaming'
      markReady(blob.size)
      const counter = new Transform({
        transform: (chunk: Buffer, _encoding, callback) => {
          this.blocks.append(chunk, this.received)
          const before = this.received
          this.received += chunk.length
          this.onBytes(chunk.length)
          callback(null, chunk)
          // Followers send whole blocks: wake them when one is complete (or the last arrived).
          if (Math.floor(before / blockSize) !== Math.floor(this.received / blockSize) || this.received >= this.size) this.wake()
        },
      })
      blob.stream.on('error', (err) => counter.destroy(err))
      // Followers may finish once the bytes are verified: the fsync and rename of the commit
      // take as long again for a large layer, and a client need not wait for them.
      const onVerified = (): void => {
        this.verified = true
        this.wake()
      }
      await this.target.uploads.complete(session.id, digest, blob.stream.pipe(counter), { length: blob.size, onVerified })
      this.state = 'done'
    } catch (err) {
      this.state = 'failed'
      this.error = err
      if (this.sessionId) await this.target.uploads.cancel(this.sessionId).catch(() => {})
      throw err
    } finally {
      this.blocks.endLive()
      if (this.state === 'failed') this.blocks.clear()
      this.releaseBlocksWhenUnused()
      this.wake()
    }
  }

  /** A settled fill nobody follows any more gives its blocks back to the budget. */
  private releaseBlocksWhenUnused(): void {
    if (this.followers === 0 && (this.state === 'done' || this.state === 'failed')) this.blocks.clear()
  }

  private wake(): void {
    const wakeUps = this.wakeUps
    this.wakeUps = []
    for (const wakeUp of wakeUps) wakeUp()
  }
}
