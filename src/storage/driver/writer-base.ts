// commit()/cancel() bookkeeping shared by the drivers, so every FileWriter settles the same way
// whatever order (or how often) callers invoke them — e.g. an error path cancelling after a
// failed commit, or a route handler committing twice.
import type { Writable } from 'node:stream'
import { finished } from 'node:stream/promises'

const ignore = (): void => {}

export abstract class WriterBase {
  #commit: Promise<void> | undefined
  #cancel: Promise<void> | undefined

  /** Runs finish() once; rejects when the writer was cancelled first. */
  commit(): Promise<void> {
    this.#commit ??= this.#cancel !== undefined ? Promise.reject(new Error('writer was cancelled')) : this.finish()
    return this.#commit
  }

  /** Runs abandon() once. After commit() it only waits: a failed commit has already cleaned up. */
  cancel(): Promise<void> {
    if (this.#commit !== undefined) return this.#commit.then(ignore, ignore)
    this.#cancel ??= this.abandon()
    return this.#cancel
  }

  /** Makes the bytes durable and visible; on failure it must abandon() before rejecting. */
  protected abstract finish(): Promise<void>
  /** Releases resources and discards what a new file would have become; never rejects. */
  protected abstract abandon(): Promise<void>
}

/**
 * Ends `stream` unless the caller (usually pipeline) already did, and waits until every byte
 * has been handed to the sink. Rejects with the stream's error when it failed or was destroyed.
 */
export async function endAndWait(stream: Writable): Promise<void> {
  if (stream.errored) throw stream.errored
  if (!stream.writableEnded && !stream.destroyed) stream.end()
  await finished(stream, { readable: false })
}

/**
 * Errors surface through commit() (via stream.errored); without a listener an abort or a failed
 * write with no pipeline attached would crash the process as an unhandled 'error' event.
 */
export function swallowErrorEvents(stream: Writable): void {
  stream.on('error', ignore)
}
