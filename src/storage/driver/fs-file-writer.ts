// The filesystem driver's FileWriter: bytes go through a FileHandle the writer owns, so commit
// can fsync after the last write and only then publish (rename a temp file into place).
import type { FileHandle } from 'node:fs/promises'
import { addAbortSignal, Writable } from 'node:stream'
import type { FileWriter } from './driver.js'
import { endAndWait, swallowErrorEvents, WriterBase } from './writer-base.js'

/** Lets a 1 MiB chunk from a fast source queue without stalling the pipeline on every write. */
const HIGH_WATER_MARK = 1024 * 1024

/**
 * A Writable over a FileHandle the writer owns. Not fs.WriteStream: that one keeps a reference
 * on the handle until the stream is destroyed (so handle.close() would wait forever after
 * 'finish') and closes it on destroy, while commit needs to fsync after 'finish' and close itself.
 */
class HandleWritable extends Writable {
  /** Bytes that reached the file; a partial write(2) counts only what it wrote. */
  bytesWritten = 0
  readonly #handle: FileHandle

  constructor(handle: FileHandle) {
    super({ highWaterMark: HIGH_WATER_MARK })
    this.#handle = handle
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#writeAll(chunk).then(() => callback(), callback)
  }

  // Chunks that queued while a write was in flight go down in one writev(2): network reads
  // arrive in ~64 KiB pieces, and one thread-pool round trip per piece dominated upload cost.
  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    this.#writevAll(chunks.map(({ chunk }) => chunk)).then(() => callback(), callback)
  }

  async #writevAll(buffers: Buffer[]): Promise<void> {
    const { bytesWritten } = await this.#handle.writev(buffers)
    this.bytesWritten += bytesWritten
    const total = buffers.reduce((sum, buffer) => sum + buffer.length, 0)
    if (bytesWritten === total) return
    // A partial writev: finish the rest chunk by chunk.
    let skip = bytesWritten
    for (const buffer of buffers) {
      if (skip >= buffer.length) {
        skip -= buffer.length
        continue
      }
      await this.#writeAll(buffer.subarray(skip))
      skip = 0
    }
  }

  async #writeAll(chunk: Buffer): Promise<void> {
    // Position null: the handle's own offset (or the end, for an append handle).
    for (let offset = 0; offset < chunk.length;) {
      const { bytesWritten } = await this.#handle.write(chunk, offset, chunk.length - offset, null)
      offset += bytesWritten
      this.bytesWritten += bytesWritten
    }
  }
}

export class FsFileWriter extends WriterBase implements FileWriter {
  readonly stream: HandleWritable
  readonly #handle: FileHandle
  readonly #baseSize: number
  readonly #publish: () => Promise<void>
  readonly #discard: () => Promise<void>

  constructor(
    handle: FileHandle,
    baseSize: number,
    signal: AbortSignal | undefined,
    publish: () => Promise<void>,
    discard: () => Promise<void>,
  ) {
    super()
    this.#handle = handle
    this.#baseSize = baseSize
    this.#publish = publish
    this.#discard = discard
    this.stream = new HandleWritable(handle)
    if (signal !== undefined) addAbortSignal(signal, this.stream)
    swallowErrorEvents(this.stream)
  }

  get size(): number {
    return this.#baseSize + this.stream.bytesWritten
  }

  protected async finish(): Promise<void> {
    try {
      await endAndWait(this.stream)
      await this.#handle.sync()
      await this.#handle.close()
      await this.#publish()
    } catch (err) {
      await this.abandon()
      throw err
    }
  }

  protected async abandon(): Promise<void> {
    this.stream.destroy()
    // FileHandle.close waits for an in-flight write and is a no-op when already closed.
    await this.#handle.close().catch(() => {})
    await this.#discard().catch(() => {})
  }
}
