// A blob's bytes streamed from a bundle into one request body (RegistrySink.writeBlob), read
// once: the decompressor's output is not kept, so a second body cannot be given.
import type { Readable } from 'node:stream'
import { StreamedOnceError } from './sink.js'

/**
 * A blob's bytes as one request body, read once. A second body (the client retrying, or
 * answering a 401) fails at once: those bytes are gone. `drain` reads what the request left;
 * `failure` is the stream's own error (a corrupt or truncated bundle), which is the reader's.
 */
export class StreamedOnce {
  readonly #stream: Readable
  #taken = false
  #ended = false
  failure: Error | undefined
  readonly passed: Promise<void>
  #pass!: () => void

  constructor(stream: Readable) {
    this.#stream = stream
    this.passed = new Promise((resolve) => (this.#pass = resolve))
  }

  body(): AsyncIterable<Buffer> {
    if (this.#taken) throw new StreamedOnceError('the blob went by in the bundle once and cannot be sent again from there')
    this.#taken = true
    return this.#chunks()
  }

  async *#chunks(): AsyncGenerator<Buffer> {
    try {
      // Not destroyed when the request stops taking chunks: drain() reads the rest.
      for await (const chunk of this.#stream.iterator({ destroyOnReturn: false })) yield chunk as Buffer
      this.#ended = true
      this.#pass()
    } catch (err) {
      this.failure = err as Error
      this.#pass()
      throw err
    }
  }

  async drain(): Promise<void> {
    if (this.#ended || this.failure !== undefined) return
    try {
      for await (const chunk of this.#stream.iterator({ destroyOnReturn: false })) void chunk
    } catch (err) {
      this.failure = err as Error
    }
    this.#ended = true
    this.#pass()
  }
}
