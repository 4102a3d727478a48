// A byte range of an open file as a Readable that is also a PositionalSource: the blob download
// path reads it at positions into buffers it reuses; any other consumer (hashing, piping into an
// upload) reads it as an ordinary stream; over plain HTTP/1.1 the kernel sends it (its fd).
import type { FileHandle } from 'node:fs/promises'
import { Readable } from 'node:stream'
import type { FileDescriptorSource, PositionalSource } from '../../transfer/body-sources.js'

export class FileRangeStream extends Readable implements PositionalSource, FileDescriptorSource {
  #position: number
  /** Exclusive end; Infinity reads to the end of the file. */
  readonly #end: number
  #reading = false

  constructor(
    private readonly handle: FileHandle,
    start: number,
    endInclusive: number | undefined,
    private readonly chunkSize: number,
    signal?: AbortSignal,
  ) {
    super({ highWaterMark: chunkSize })
    this.#position = start
    this.#end = endInclusive === undefined ? Infinity : endInclusive + 1
    if (signal) {
      const abort = () => this.destroy(signal.reason instanceof Error ? signal.reason : new Error('aborted'))
      signal.addEventListener('abort', abort, { once: true })
      this.once('close', () => signal.removeEventListener('abort', abort))
    }
  }

  get fd(): number {
    return this.handle.fd
  }

  /** A read anywhere in the file (a growing upload file too), independent of the stream's position. */
  async readAt(target: Buffer, position: number): Promise<number> {
    if (this.destroyed) throw new Error('read from a closed file stream')
    const { bytesRead } = await this.handle.read(target, 0, target.length, position)
    return bytesRead
  }

  override _read(): void {
    if (this.#reading) return
    this.#reading = true
    const length = Math.min(this.chunkSize, this.#end - this.#position)
    if (length <= 0) {
      this.push(null)
      return
    }
    // The stream side hands its chunks away, so each gets its own buffer.
    this.handle.read(Buffer.allocUnsafeSlow(length), 0, length, this.#position).then(
      ({ bytesRead, buffer }) => {
        this.#reading = false
        this.#position += bytesRead
        if (bytesRead === 0) this.push(null)
        else if (this.push(bytesRead === length ? buffer : buffer.subarray(0, bytesRead))) this._read()
      },
      (err: Error) => this.destroy(err),
    )
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.handle.close().then(
      () => callback(err),
      (closeErr: Error) => callback(err ?? closeErr),
    )
  }
}
