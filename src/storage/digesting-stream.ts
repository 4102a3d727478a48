import type { Hash } from 'node:crypto'
import { Transform, type TransformCallback } from 'node:stream'
import { RegistryError } from '../core/errors.js'

/**
 * Passes bytes through while feeding them to a hash and counting them. With `limit`, a body
 * longer than declared fails before the excess byte is written anywhere. A hash whose update()
 * gives a promise (a DeferredHash, hashing on another thread) has each chunk passed on at once
 * and the next taken once that promise settles: its backlog stays bounded. `onBytes` is told of
 * each chunk's length as it passes (composition paces the garbage collector on it).
 */
export class DigestingStream<H extends { update(data: Buffer): unknown } = Hash> extends Transform {
  bytes = 0
  readonly hash: H
  private readonly limit: number | undefined
  private readonly onBytes: ((bytes: number) => void) | undefined

  constructor(hash: H, limit?: number, onBytes?: (bytes: number) => void) {
    super()
    this.hash = hash
    this.limit = limit
    this.onBytes = onBytes
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
    this.onBytes?.(chunk.length)
    if (backlog instanceof Promise) backlog.then(() => callback(), callback)
    else callback()
  }
}
