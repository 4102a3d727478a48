// One client's body while a blob fill runs: bytes `start`..`end` of the blob, following the
// download. Chunks are slices of the fill's shared blocks (block-reader.ts), lent to the sender
// (send-lent.ts) until its write finished; a block no longer in memory is read from the upload
// file (after the commit, the blob file) through the one handle this follower keeps. Read as an
// ordinary stream (not over HTTP), chunks are copied. A follower that starts once the fill is
// verified may have the kernel send the upload file instead (GrowingFileSource, send-file.ts).
import { Readable } from 'node:stream'
import { setTimeout as delay } from 'node:timers/promises'
import { RegistryError } from '../core/errors.js'
import type { FileDescriptorSource, GrowingFileSource, PositionalSource, SharedChunk, SharedChunkSource } from './body-sources.js'
import { BlockReader, type NotLent } from './block-reader.js'
import { blockSize, type SharedBlocks } from './shared-blocks.js'

/** What a follower sees of its fill. */
export interface FollowedFill {
  readonly state: 'starting' | 'streaming' | 'done' | 'failed'
  /** Every byte is in the file and verified, though the commit may still be running. */
  readonly verified: boolean
  readonly error: unknown
  readonly size: number
  /** Bytes received from the upstream (possibly not yet in the upload file). */
  readonly received: number
  readonly blocks: SharedBlocks
  nextChange(): Promise<void>
  /** A handle on the upload file, or on the blob file once committed. */
  openFile(): Promise<PositionalSource & { destroy(): unknown }>
  unfollow(): void
}

/** Reads when the budget has no block to spare (the fill's share is pinned by writes in flight): small, private, and rare. */
const overflowRead = 64 * 1024

export class FillFollower extends Readable implements SharedChunkSource, GrowingFileSource {
  readonly start: number
  #position: number
  /** Exclusive. */
  readonly #end: number
  #file: Promise<PositionalSource & { destroy(): unknown }> | undefined
  #reading = false
  readonly #reader: BlockReader

  constructor(
    private readonly fill: FollowedFill,
    start: number,
    endInclusive: number,
  ) {
    super()
    this.start = start
    this.#position = start
    this.#end = endInclusive + 1
    this.#reader = new BlockReader(fill.blocks, (buffer, position) => this.#readFully(buffer, position), overflowRead)
  }

  get end(): number {
    return this.#end
  }

  /** The next byte this follower sends. */
  get position(): number {
    return this.#position
  }

  get growing(): boolean {
    return !this.#complete()
  }

  /** Every byte may be sent: verified (or committed). */
  #complete(): boolean {
    return this.fill.state === 'done' || this.fill.verified
  }

  nextChange(): Promise<void> {
    return this.fill.nextChange()
  }

  async fileDescriptor(): Promise<number | undefined> {
    if (this.destroyed) return undefined
    this.#file ??= this.fill.openFile()
    const fd = ((await this.#file) as Partial<FileDescriptorSource>).fd
    return typeof fd === 'number' ? fd : undefined
  }

  async sendableFrom(position: number): Promise<number> {
    const fill = this.fill
    for (;;) {
      if (this.destroyed) throw new Error('follower closed')
      if (fill.state === 'failed') throw fill.error
      // The last byte waits for verification: a corrupt fill never completes anyone's body.
      const available = this.#complete() ? fill.size : Math.min(fill.received, fill.size - 1)
      const limit = Math.min(this.#end, available)
      // A whole block at least (or the rest): one transfer per network chunk would cost more than it sends.
      const more = limit < this.#end && fill.received < fill.size
      if (limit > position && (limit - position >= blockSize || !more)) return limit
      await fill.nextChange()
    }
  }

  async nextShared(): Promise<SharedChunk | undefined> {
    const fill = this.fill
    for (;;) {
      // Destroyed (the client left) while waiting: never reopen the file.
      if (this.#position >= this.#end || this.destroyed) return undefined
      if (fill.state === 'failed') throw fill.error
      const done = this.#complete()
      // The last byte waits for verification: a corrupt fill never completes anyone's body.
      const available = done ? fill.size : Math.min(fill.received, fill.size - 1)
      const blockStart = Math.floor(this.#position / blockSize) * blockSize
      const blockEnd = Math.min(blockStart + blockSize, fill.size)
      const stop = Math.min(this.#end, available, blockEnd)
      // Whole blocks (or the rest of the body), not every network chunk: fewer, larger writes.
      if (stop <= this.#position || (stop < blockEnd && stop < this.#end && !done && fill.received < fill.size)) {
        await fill.nextChange()
        continue
      }
      let lent: SharedChunk | NotLent
      try {
        // A block not in memory is read from the file once it is whole there.
        lent = await this.#reader.lend(this.#position, stop, blockEnd - blockStart, done || fill.received >= blockEnd)
      } catch (err) {
        // A failed fill's own error says more than the read that failed with it.
        throw (fill.state as FollowedFill['state']) === 'failed' ? fill.error : err
      }
      if (lent === 'load-failed-elsewhere') continue
      // The fill's newest block did not fit the budget, or is not filled that far yet.
      if (typeof lent === 'string') {
        await fill.nextChange()
        continue
      }
      this.#position += lent.bytes.length
      return lent
    }
  }

  /** Fills `buffer` from the file at `position`; waits for bytes counted but not yet written. */
  async #readFully(buffer: Buffer, position: number): Promise<void> {
    if (this.destroyed) throw new Error('follower closed')
    this.#file ??= this.fill.openFile()
    const file = await this.#file
    for (let got = 0; got < buffer.length;) {
      const read = await file.readAt(got === 0 ? buffer : buffer.subarray(got), position + got)
      got += read
      if (read > 0) continue
      if (this.#complete()) throw new RegistryError('UNKNOWN', 'cached blob is shorter than its size')
      if (this.fill.state === 'failed') throw this.fill.error
      await delay(2)
    }
  }

  override _read(): void {
    if (this.#reading) return
    this.#reading = true
    this.nextShared().then(
      (chunk) => {
        this.#reading = false
        if (!chunk) {
          this.push(null)
          return
        }
        // A stream consumer keeps what it is given: hand it a copy of the shared bytes.
        const copy = Buffer.from(chunk.bytes)
        chunk.release()
        if (this.push(copy)) this._read()
      },
      (err: Error) => this.destroy(err),
    )
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.fill.unfollow()
    const file = this.#file
    this.#file = undefined
    if (!file) return callback(err)
    file.then(
      (handle) => {
        handle.destroy()
        callback(err)
      },
      () => callback(err),
    )
  }
}
