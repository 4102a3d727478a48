// A body stream that can also be read straight into the caller's buffers. A server sending a
// large blob reuses two buffers per response instead of allocating a fresh 1 MiB one per read:
// in a heap of Ferry's size those allocations ended in a major GC every few hundred MiB, a
// quarter of the CPU of a download (issue #6).
import type { Readable } from 'node:stream'

export interface PullSource {
  /**
   * Reads the next bytes into `target`; resolves how many (0: the source is exhausted, which is
   * early if fewer bytes exist than promised). Once used, the stream side must not be read, and
   * the caller destroys the stream when done (which releases the file).
   */
  readInto(target: Buffer): Promise<number>
}

export function isPullSource(stream: Readable): stream is Readable & PullSource {
  return typeof (stream as Partial<PullSource>).readInto === 'function'
}
