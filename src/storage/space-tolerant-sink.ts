// Where a mirror fill writes its upload file: the bytes go to the file until a write fails for
// lack of space (ENOSPC, EDQUOT); from then on they are taken and dropped, so the stream before
// it (the digest's hash) runs to the end and the fill's clients still get a verified body.
import { Writable } from 'node:stream'
import { isOutOfSpace } from '../core/errors.js'
import { endAndWait } from './driver/writer-base.js'

export class SpaceTolerantSink extends Writable {
  /** The out-of-space error, once a write met it. */
  full: Error | undefined
  #waiting: ((error?: Error | null) => void) | undefined

  constructor(
    private readonly target: Writable,
    private readonly onFull: (err: Error) => void,
  ) {
    super()
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.full) return callback()
    // The target's own buffer batches writes (one writev per queue): wait only when it asks to.
    if (this.target.write(chunk, (err) => err && this.#failed(err))) return callback()
    this.#waiting = callback
    this.target.once('drain', this.#drained)
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.full) return callback()
    endAndWait(this.target).then(
      () => callback(),
      (err: Error) => {
        if (!this.#markFull(err)) return callback(err)
        callback()
      },
    )
  }

  readonly #drained = (): void => {
    const waiting = this.#waiting
    this.#waiting = undefined
    waiting?.()
  }

  #failed(err: Error): void {
    this.target.off('drain', this.#drained)
    const waiting = this.#waiting
    this.#waiting = undefined
    if (this.#markFull(err)) waiting?.()
    else if (waiting) waiting(err)
    else this.destroy(err)
  }

  #markFull(err: Error): boolean {
    if (!isOutOfSpace(err)) return false
    if (!this.full) {
      this.full = err
      this.onFull(err)
    }
    return true
  }
}
