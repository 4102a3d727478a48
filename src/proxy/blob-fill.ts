// One upstream download of one blob, shared by every client that wants it. The bytes stream
// into an upload session of the cache repository (hashed on the way, committed only when the
// digest matches), and each client follows the growing upload at its own pace, so nobody waits
// for the whole layer and the upstream serves it once. The fill runs to the end whoever
// disconnects; a failed or mismatched fill is discarded and its followers get an error.
// Where a spool is given (a store slow to write, S3), the bytes go to a local spool file as they
// arrive, followers read it, and the upload to the store reads it at its own pace; a fill that
// streams another replica's fill (`writes()` false) does not write the store at all.
import { Transform, type Readable } from 'node:stream'
import { createDigestHash, digestAlgorithm, digestOfHash, type Digest } from '../core/digest.js'
import { RegistryError, isRegistryError } from '../core/errors.js'
import { isPositionalSource, type PositionalSource } from '../transfer/body-sources.js'
import type { ByteRange } from '../core/range.js'
import type { BlobService } from '../core/registry.js'
import type { Upstream } from '../upstream/upstream.js'
import { blockSize, SharedBlocks, type BlockBudget } from '../transfer/shared-blocks.js'
import { FillFollower, type FollowedFill } from '../transfer/fill-follower.js'
import type { FillSpool, SpoolFile } from '../transfer/fill-spool.js'

export interface BlobFillSource {
  upstream: Upstream
  repository: string
  digest: Digest
  /**
   * Whether this process writes the blob to the store; false while it streams the fill of the
   * replica that does (asked when the source answered, and again at its end: it may have taken over).
   */
  writes?: () => boolean
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
  private spoolFile: SpoolFile | undefined
  private wakeUps: Array<() => void> = []

  constructor(
    private readonly source: BlobFillSource,
    private readonly target: BlobService,
    /** The process-wide memory for blocks, shared with stored-blob downloads. */
    budget: BlockBudget,
    private readonly onBytes: (bytes: number) => void = () => {},
    /** Local files that absorb a store slower than the upstream; undefined: the fill goes at the store's pace. */
    private readonly spool?: FillSpool,
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
      if (this.state !== 'done' && this.spoolFile) {
        const spooled = await this.spoolFile.openReader()
        if (spooled) return spooled
        // Removed as the fill settled: the blob is committed (or the fill failed).
        await this.settled.catch(() => {})
        continue
      }
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
    let spool: SpoolFile | undefined
    try {
      const blob = await upstream.openBlob(repository, digest)
      if (!blob) throw new RegistryError('BLOB_UNKNOWN', `blob unknown to upstream ${upstream.name}`, { digest })
      this.size = blob.size
      spool = blob.size > 0 ? await this.spool?.create(blob.size) : undefined
      this.spoolFile = spool
      this.state = 'streaming'
      markReady(blob.size)
      if (spool) await this.fillSpooled(blob.stream, spool)
      else await this.fillDirect(blob.stream)
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
      // Followers reading it keep their own handles.
      await spool?.close()
    }
  }

  /** The bytes through the blocks into an upload session, at the pace the store takes them. */
  private async fillDirect(body: Readable): Promise<void> {
    const session = await this.target.uploads.start().catch((err: unknown) => {
      body.destroy()
      throw err
    })
    this.sessionId = session.id
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
    body.on('error', (err) => counter.destroy(err))
    // Followers may finish once the bytes are verified: the fsync and rename of the commit
    // take as long again for a large layer, and a client need not wait for them.
    const onVerified = (): void => {
      this.verified = true
      this.wake()
    }
    await this.target.uploads.complete(session.id, this.digest, body.pipe(counter), { length: this.size, onVerified })
  }

  /**
   * The bytes through the blocks into the spool at the upstream's pace, verified here; the
   * upload to the store reads the spool meanwhile. A fill streamed from another replica stores
   * nothing: that replica commits the blob (this one does only if it took the fill over).
   */
  private async fillSpooled(body: Readable, spool: SpoolFile): Promise<void> {
    const writes = this.source.writes ?? (() => true)
    const upload = writes() ? this.store(spool.reader()) : undefined
    upload?.catch(() => {})
    try {
      await this.pump(body, spool)
    } catch (err) {
      spool.fail(err)
      await upload?.catch(() => {})
      throw err
    }
    if (upload) await upload
    else if (writes() && !(await this.target.stat(this.digest))) await this.store(spool.reader())
  }

  private async pump(body: Readable, spool: SpoolFile): Promise<void> {
    const hash = createDigestHash(digestAlgorithm(this.digest))
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        if (this.received + chunk.length > this.size) {
          throw new RegistryError('SIZE_INVALID', 'upstream sent more than the blob size', { declared: this.size })
        }
        this.blocks.append(chunk, this.received)
        await spool.write(chunk)
        hash.update(chunk)
        const before = this.received
        this.received += chunk.length
        this.onBytes(chunk.length)
        // Followers send whole blocks: wake them when one is complete (or the last arrived).
        if (Math.floor(before / blockSize) !== Math.floor(this.received / blockSize) || this.received === this.size) this.wake()
        if (this.received === this.size) {
          // Verified now, not when the source ends: a stream from a peer ends once its commit landed.
          const actual = digestOfHash(digestAlgorithm(this.digest), hash)
          if (actual !== this.digest) throw new RegistryError('DIGEST_INVALID', undefined, { expected: this.digest, actual })
          this.verified = true
          this.wake()
        }
      }
    } finally {
      body.destroy()
    }
    if (!this.verified)
      throw new RegistryError('SIZE_INVALID', 'upstream sent less than the blob size', { declared: this.size, received: this.received })
  }

  /** Writes `body` to the store under the digest (verified there again) and links it into the cache repository. */
  private async store(body: Readable): Promise<void> {
    const session = await this.target.uploads.start()
    try {
      await this.target.uploads.complete(session.id, this.digest, body, { length: this.size })
    } catch (err) {
      body.destroy()
      await this.target.uploads.cancel(session.id).catch(() => {})
      throw err
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
