import type { Hash } from 'node:crypto'
import { Transform, type TransformCallback } from 'node:stream'
import type { DeferredHash, Digest } from '../core/digest.js'
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

/**
 * DigestingStream with the sha256 computed on another thread (DeferredHash): each chunk is passed
 * on at once and hashed meanwhile; the next is taken once the hash's backlog allows. digest()
 * finishes the hash after the last chunk.
 */
export class DeferredDigestingStream extends Transform {
  bytes = 0
  readonly #hash: DeferredHash
  readonly #limit: number | undefined

  constructor(hash: DeferredHash, limit?: number) {
    super()
    this.#hash = hash
    this.#limit = limit
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length
    if (this.#limit !== undefined && this.bytes > this.#limit) {
      callback(new RegistryError('SIZE_INVALID', 'body is longer than declared', { declared: this.#limit }))
      return
    }
    let backlog: Promise<void> | undefined
    try {
      backlog = this.#hash.update(chunk)
    } catch (err) {
      callback(err as Error)
      return
    }
    this.push(chunk)
    if (backlog === undefined) callback()
    else backlog.then(() => callback(), callback)
  }

  async digest(): Promise<Digest> {
    return `sha256:${await this.#hash.digest()}` as Digest
  }

  dispose(): void {
    this.#hash.dispose()
  }
}
