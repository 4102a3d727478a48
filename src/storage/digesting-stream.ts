import type { Hash } from 'node:crypto'
import { Transform, type TransformCallback } from 'node:stream'
import { RegistryError } from '../core/errors.js'

/**
 * Passes bytes through while feeding them to a hash and counting them. With `limit`, a body
 * longer than declared fails before the excess byte is written anywhere.
 */
export class DigestingStream<H extends { update(data: Buffer): unknown } = Hash> extends Transform {
  bytes = 0
  readonly hash: H
  private readonly limit: number | undefined

  constructor(hash: H, limit?: number) {
    super()
    this.hash = hash
    this.limit = limit
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length
    if (this.limit !== undefined && this.bytes > this.limit) {
      callback(new RegistryError('SIZE_INVALID', 'body is longer than declared', { declared: this.limit }))
      return
    }
    this.hash.update(chunk)
    callback(null, chunk)
  }
}
