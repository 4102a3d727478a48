import type { Hash } from 'node:crypto'
import { Transform, type TransformCallback } from 'node:stream'
import { RegistryError } from '../core/errors.js'

/** Told when an upload starts taking bytes in, and when it is done. */
export interface UploadWatch {
  begin(): void
  end(): void
}

/**
 * Passes bytes through while feeding them to a hash and counting them. With `limit`, a body
 * longer than declared fails before the excess byte is written anywhere. A hash whose update()
 * gives a promise (a DeferredHash, hashing on another thread) has each chunk passed on at once
 * and the next taken once that promise settles: its backlog stays bounded. `watch` is told when
 * the stream starts and when it is done, either way (serve steers V8's heap on how many run at once).
 */
export class DigestingStream<H extends { update(data: Buffer): unknown } = Hash> extends Transform {
  bytes = 0
  readonly hash: H
  private readonly limit: number | undefined
  private readonly watch: UploadWatch | undefined

  constructor(hash: H, limit?: number, watch?: UploadWatch) {
    super()
    this.hash = hash
    this.limit = limit
    this.watch = watch
    watch?.begin()
  }

  // Called once, after the end or on an error.
  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.watch?.end()
    callback(err)
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length
    if (this.limit !== undefined && this.bytes > this.limit) {
      callback(new RegistryError('SIZE_INVALID', 'body is longer than declared', { declared: this.limit }))
      return
    }
    let backlog: unknown
    try {
      backlog = this.hash.update(chunk)
    } catch (err) {
      callback(err as Error)
      return
    }
    this.push(chunk)
    if (backlog instanceof Promise) backlog.then(() => callback(), callback)
    else callback()
  }
}
