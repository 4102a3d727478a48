// One upstream download of one blob, shared by every client that wants it. The bytes stream
// into an upload session of the cache repository (hashed on the way, committed only when the
// digest matches), and each client follows the growing upload at its own pace, so nobody waits
// for the whole layer and the upstream serves it once. The fill runs to the end whoever
// disconnects; a failed or mismatched fill is discarded and its followers get an error.
import { Readable, Transform } from 'node:stream'
import { setTimeout as delay } from 'node:timers/promises'
import type { Digest } from '../core/digest.js'
import { RegistryError, isRegistryError } from '../core/errors.js'
import type { ByteRange } from '../core/range.js'
import type { BlobService } from '../core/registry.js'
import type { Upstream } from '../upstream/upstream.js'
import { RecentBlocks } from './recent-blocks.js'

export interface BlobFillSource {
  upstream: Upstream
  repository: string
  digest: Digest
}

type FillState = 'starting' | 'streaming' | 'done' | 'failed'

// Followers wait for this much new data (or the end) before reading, to avoid a file open per
// small network chunk; small enough that time to first byte stays low.
const minimumRead = 1024 * 1024
/** The newest bytes kept in memory for followers (per fill in progress). */
const recentWindow = 16 * 1024 * 1024

export class BlobFill {
  readonly digest: Digest
  /** Resolves with the blob's size once the upstream answered; rejects if it never does. */
  readonly ready: Promise<number>
  /** Resolves once the blob is verified and committed to the cache; rejects when the fill failed. */
  readonly settled: Promise<void>
  private size = 0
  private received = 0
  private state: FillState = 'starting'
  private error: unknown
  private sessionId = ''
  private wakeUps: Array<() => void> = []
  private readonly recent = new RecentBlocks(recentWindow)

  constructor(
    private readonly source: BlobFillSource,
    private readonly target: BlobService,
    private readonly onBytes: (bytes: number) => void = () => {},
  ) {
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
    const start = range?.start ?? 0
    const end = range?.end ?? this.size - 1
    return Readable.from(this.followBytes(start, end), { objectMode: false })
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
          this.recent.append(chunk)
          this.received += chunk.length
          this.onBytes(chunk.length)
          callback(null, chunk)
          this.wake()
        },
      })
      blob.stream.on('error', (err) => counter.destroy(err))
      await this.target.uploads.complete(session.id, digest, blob.stream.pipe(counter), { length: blob.size })
      this.state = 'done'
    } catch (err) {
      this.state = 'failed'
      this.error = err
      if (this.sessionId) await this.target.uploads.cancel(this.sessionId).catch(() => {})
      throw err
    } finally {
      this.recent.clear()
      this.wake()
    }
  }

  private async *followBytes(start: number, end: number): AsyncGenerator<Buffer> {
    let position = start
    while (position <= end) {
      if (this.state === 'failed') throw this.error
      if (this.state === 'done') {
        const body = await this.target.open(this.digest, { range: { start: position, end } })
        if (body.kind !== 'body') throw new RegistryError('UNKNOWN', 'cache answered a redirect')
        yield* body.stream as AsyncIterable<Buffer>
        return
      }
      // The last byte waits for verification: a corrupt fill never completes anyone's body.
      const limit = Math.min(end, this.received - 1, this.size - 2)
      const pending = limit - position + 1
      if (pending <= 0 || (pending < minimumRead && limit < end && this.received < this.size)) {
        await this.nextChange()
        continue
      }
      // Close behind the download: the bytes are still in memory.
      const inMemory = this.recent.copy(position, Math.min(limit, position + minimumRead - 1))
      if (inMemory) {
        position += inMemory.length
        yield inMemory
        continue
      }
      // Fallen behind the window: read the upload file.
      let got = 0
      try {
        for await (const chunk of await this.target.uploads.read(this.sessionId, { start: position, end: limit })) {
          got += (chunk as Buffer).length
          position += (chunk as Buffer).length
          yield chunk as Buffer
        }
      } catch (err) {
        // The upload was just committed (or discarded): the next turn reads from the cache or fails.
        if (!(isRegistryError(err) && err.code === 'BLOB_UPLOAD_UNKNOWN')) throw err
        await this.settled.catch(() => {})
      }
      // Counted bytes may not have reached the file yet.
      if (got === 0) await delay(2)
    }
  }

  private nextChange(): Promise<void> {
    return new Promise((resolve) => this.wakeUps.push(resolve))
  }

  private wake(): void {
    const wakeUps = this.wakeUps
    this.wakeUps = []
    for (const wakeUp of wakeUps) wakeUp()
  }
}
