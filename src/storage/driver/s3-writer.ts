// The S3 driver's FileWriters. A new file is one ObjectUpload at its key, published by commit().
// An append writer uploads its bytes as the file's next segment object and, on commit or cancel
// (an upload's received bytes must stay), rewrites the small index object at the file's key.
import { addAbortSignal, Writable } from 'node:stream'
import type { FileWriter } from './driver.js'
import { segmentKey, writeIndex, type AppendTarget } from './s3-append.js'
import { ObjectUpload, type ObjectTarget } from './s3-upload.js'
import { endAndWait, swallowErrorEvents, WriterBase } from './writer-base.js'

const HIGH_WATER_MARK = 1024 * 1024

/** A Writable feeding an ObjectUpload; remembers the write in progress so it can be awaited. */
class UploadStream extends Writable {
  pending: Promise<void> = Promise.resolve()

  constructor(readonly upload: ObjectUpload) {
    super({ highWaterMark: HIGH_WATER_MARK })
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.pending = this.upload.write(chunk)
    this.pending.then(() => callback(), callback)
  }

  /** Stops accepting bytes and waits for the write in progress to settle. */
  async stop(): Promise<void> {
    this.destroy()
    await this.pending.catch(() => {})
  }
}

function uploadStream(target: ObjectTarget, signal: AbortSignal | undefined): UploadStream {
  const stream = new UploadStream(new ObjectUpload(target))
  if (signal !== undefined) addAbortSignal(signal, stream)
  swallowErrorEvents(stream)
  return stream
}

/** A new file: invisible until commit, nothing left behind by cancel. */
export class S3ObjectWriter extends WriterBase implements FileWriter {
  readonly stream: UploadStream

  constructor(target: ObjectTarget, signal: AbortSignal | undefined) {
    super()
    this.stream = uploadStream(target, signal)
  }

  get size(): number {
    return this.stream.upload.bytes
  }

  protected async finish(): Promise<void> {
    try {
      await endAndWait(this.stream)
      await this.stream.upload.finish()
    } catch (err) {
      await this.abandon()
      throw err
    }
  }

  protected async abandon(): Promise<void> {
    await this.stream.stop()
    await this.stream.upload.abort()
  }
}

/** Appends to an existing (or new) append file: its next segment, then the updated index. */
export class S3AppendWriter extends WriterBase implements FileWriter {
  readonly stream: UploadStream
  readonly #file: AppendTarget

  constructor(file: AppendTarget, signal: AbortSignal | undefined) {
    super()
    this.#file = file
    const { client, bucket, key, settings, budget } = file
    this.stream = uploadStream({ client, bucket, key: segmentKey(key, file.segments.length + 1), settings, budget }, signal)
  }

  get size(): number {
    return this.#file.segments.reduce((sum, size) => sum + size, 0) + this.stream.upload.bytes
  }

  protected async finish(): Promise<void> {
    try {
      await endAndWait(this.stream)
      await this.#publish()
    } catch (err) {
      await this.stream.upload.abort()
      throw err
    }
  }

  /** Keeps what was received, as the filesystem keeps bytes already appended; never rejects. */
  protected async abandon(): Promise<void> {
    await this.stream.stop()
    try {
      await this.#publish()
    } catch {
      await this.stream.upload.abort()
    }
  }

  async #publish(): Promise<void> {
    const upload = this.stream.upload
    if (upload.bytes === 0 && this.#file.exists) return
    const segments = [...this.#file.segments]
    if (upload.bytes > 0) {
      await upload.finish()
      segments.push(upload.bytes)
    }
    await writeIndex(this.#file, segments)
  }
}
