// Reading the first bytes of a stream without losing them: the head decides how the rest is read.
import { Readable } from 'node:stream'

export interface Peeked {
  /** Up to `length` bytes (fewer only when the stream is shorter). */
  head: Buffer
  /** The whole stream again, head included. */
  stream: Readable
}

export async function peek(source: AsyncIterable<Uint8Array>, length: number): Promise<Peeked> {
  const iterator = source[Symbol.asyncIterator]()
  const chunks: Buffer[] = []
  let total = 0
  let done = false
  while (total < length) {
    const next = await iterator.next()
    if (next.done === true) {
      done = true
      break
    }
    const chunk = Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength)
    chunks.push(chunk)
    total += chunk.length
  }
  const buffered = Buffer.concat(chunks, total)
  async function* replay(): AsyncGenerator<Buffer> {
    if (buffered.length > 0) yield buffered
    if (done) return
    for (;;) {
      const next = await iterator.next()
      if (next.done === true) return
      yield Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength)
    }
  }
  const stream = Readable.from(replay(), { objectMode: false })
  // Abandoning the replay (an error downstream) must release the source too.
  stream.once('close', () => void iterator.return?.())
  return { head: buffered.subarray(0, length), stream }
}
