// One upstream download of one blob, shared by every client that wants it. The bytes stream
// into an upload session of the cache repository (hashed on the way, committed only when the
// digest matches), and each client follows the growing upload at its own pace, so nobody waits
// for the whole layer and the upstream serves it once. The fill runs to the end whoever
// disconnects; a failed or mismatched fill is discarded and its followers get an error.
//
// A full volume does not end the fill: from the write that failed on, the blob is not stored and
// the followers are served from memory alone. The upstream is then read only as fast as the
// slowest follower sends (its unsent bytes stay in the shared blocks), the digest is still checked
// before anyone's last byte, and a follower already behind what memory holds is cut off.
//
// Where a spool is given (a store slow to write, S3), the bytes go to a local spool file as they
// arrive instead, and the upload to the store reads it at its own pace (spooled-fill.ts).
import { finished, Transform, type Readable } from 'node:stream'
import { setTimeout as delay } from 'node:timers/promises'
import type { Digest } from '../core/digest.js'
import { RegistryError, isRegistryError, isStorageFull } from '../core/errors.js'
import { isPositionalSource } from '../transfer/body-sources.js'
import type { ByteRange } from '../core/range.js'
import type { BlobService } from '../core/registry.js'
import type { Upstream } from '../upstream/upstream.js'
import { blockSize, SharedBlocks, type BlockBudget } from '../transfer/shared-blocks.js'
import { FillFollower, type FollowedFill } from '../transfer/fill-follower.js'
import type { FillSpool, SpoolFile } from '../transfer/fill-spool.js'
import { noFile, rangeReads, type FileSource } from './fill-files.js'
import { fillThroughSpool, type SpooledFill } from './spooled-fill.js'

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

/** Blocks per fill: its newest 16 MiB, which is also what a pack of followers sends from. */
const fillShare = 16

/** Unstored, the upstream may run this far ahead of the slowest follower (within the fill's share). */
const unstoredWindow = 8 * blockSize

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
  /** Why the blob is not being stored (a full volume): followers are served from memory alone. */
  unstored: Error | undefined
  /** What followers send, shared by all of them. */
  readonly blocks: SharedBlocks
  private followers = 0
  private readonly following = new Set<FillFollower>()
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
    const follower = new FillFollower(this, range?.start ?? 0, range?.end ?? this.size - 1)
    this.following.add(follower)
    follower.once('close', () => this.following.delete(follower))
    return follower
  }

  unfollow(): void {
    this.followers--
    this.releaseBlocksWhenUnused()
  }

  /** A handle on the upload file (one per follower, for every block it reads), or the blob once committed. */
  async openFile(): Promise<FileSource> {
    // No file behind an unstored fill: what memory no longer holds cannot be sent.
    if (this.unstored) return noFile(this.unstored)
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
        if (isPositionalSource(stream)) return stream
        return rangeReads(stream, this.size, (range) =>
          this.state === 'done' ? this.openCommitted(range.start, range.end) : this.target.uploads.read(this.sessionId, range),
        )
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
      if (spool) await fillThroughSpool(this.spooled(), blob.stream, spool)
      else await this.fillDirect(blob.stream)
      this.state = 'done'
    } catch (err) {
      // Streamed and verified but not stored: every follower may still finish from memory.
      const streamed = this.verified && (this.unstored !== undefined || isStorageFull(err))
      if (streamed) this.unstored ??= err instanceof Error ? err : new Error(String(err))
      this.state = streamed ? 'done' : 'failed'
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
        if (!this.unstored) return this.take(chunk, callback)
        this.paced(chunk.length).then(
          () => this.take(chunk, callback),
          (err: Error) => callback(err),
        )
      },
    })
    // An upstream that closes mid-body may end its stream with a bare 'close' (no 'end', no
    // 'error'): `finished` reports that as a premature close, so the upload fails instead of
    // waiting forever, and every follower with it.
    finished(body, { writable: false }, (err) => {
      if (err) counter.destroy(err)
    })
    // The upload below reads `counter` and sees its failure through the stream's state; it may
    // not be listening yet when the upstream fails, and that must not be an uncaught error.
    counter.on('error', () => {})
    // Followers may finish once the bytes are verified: the fsync and rename of the commit
    // take as long again for a large layer, and a client need not wait for them.
    const onVerified = (): void => {
      this.verified = true
      this.wake()
    }
    const onStorageFull = (err: Error): void => this.storageFull(err)
    await this.target.uploads.complete(session.id, this.digest, body.pipe(counter), { length: this.size, onVerified, onStorageFull })
  }

  /** This fill as the spooled path (spooled-fill.ts) sees it. */
  private spooled(): SpooledFill {
    return {
      digest: this.digest,
      size: this.size,
      received: () => this.received,
      target: this.target,
      writes: this.source.writes ?? (() => true),
      hold: (chunk, offset) => this.blocks.append(chunk, offset),
      count: (bytes) => this.count(bytes),
      markVerified: () => {
        this.verified = true
        this.wake()
      },
    }
  }

  /** One chunk from the upstream: into the shared blocks, then on to storage. */
  private take(chunk: Buffer, callback: (error?: Error | null, data?: Buffer) => void): void {
    this.blocks.append(chunk, this.received)
    const before = this.received
    this.received += chunk.length
    // With no file behind it, a byte the budget had no block for is lost to the followers.
    if (
      this.unstored &&
      !(this.blocks.holds(Math.floor(before / blockSize)) && this.blocks.holds(Math.floor((this.received - 1) / blockSize)))
    ) {
      return callback(new RegistryError('UNKNOWN', `blob not cached and no memory to stream it: ${this.unstored.message}`))
    }
    callback(null, chunk)
    this.counted(before)
  }

  /** Bytes now readable by followers (in the blocks and the spool). */
  private count(bytes: number): void {
    const before = this.received
    this.received += bytes
    this.counted(before)
  }

  private counted(before: number): void {
    this.onBytes(this.received - before)
    // Followers send whole blocks: wake them when one is complete (or the last arrived).
    if (Math.floor(before / blockSize) !== Math.floor(this.received / blockSize) || this.received >= this.size) this.wake()
  }

  /**
   * The volume is full: from now on the followers are served from memory alone. Those already
   * behind what memory holds are cut off; the others pace the upstream (paced()).
   */
  private storageFull(err: Error): void {
    if (this.unstored) return
    this.unstored = err
    let first = Math.floor(Math.max(0, this.received - 1) / blockSize)
    while (first > 0 && this.blocks.holds(first - 1)) first--
    const held = this.blocks.holds(first) ? first * blockSize : this.received
    const cause = new RegistryError('UNKNOWN', `blob not cached and no longer in memory: ${err.message}`)
    for (const follower of this.following) {
      if (follower.position < Math.min(held, follower.end)) follower.destroy(cause)
    }
    this.blocks.keepFrom = Math.floor(held / blockSize)
    this.wake()
  }

  /** Unstored: waits until the slowest follower is within the window of the next chunk's end. */
  private async paced(length: number): Promise<void> {
    for (;;) {
      let slowest = Infinity
      for (const follower of this.following) {
        if (follower.position < follower.end) slowest = Math.min(slowest, follower.position)
      }
      const next = this.received + length
      if (slowest === Infinity || next - slowest <= Math.max(unstoredWindow, length)) {
        // Bytes behind every follower may be given up; theirs may not.
        this.blocks.keepFrom = Math.floor(Math.min(slowest, next) / blockSize)
        return
      }
      // Followers do not signal their progress; a short poll, only while the volume is full.
      await delay(2)
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
