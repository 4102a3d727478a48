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

/** A chunk lent by a SharedChunkSource: `bytes` must not be modified, and release() is called once
 * the chunk has been written (or abandoned), so its memory can be reused. */
export interface SharedChunk {
  bytes: Buffer
  release(): void
}

/**
 * A body whose chunks are shared with other bodies (a mirror fill's blocks, sent to every
 * follower without a copy per follower). Once used, the stream side must not be read, and the
 * caller destroys the stream when done.
 */
export interface SharedChunkSource {
  /** The next chunk, or undefined when every byte has been handed out. */
  nextShared(): Promise<SharedChunk | undefined>
}

export function isSharedChunkSource(stream: Readable): stream is Readable & SharedChunkSource {
  return typeof (stream as Partial<SharedChunkSource>).nextShared === 'function'
}

/** A source that reads at any position of its file (one open handle for many reads). */
export interface PositionalSource {
  /** Reads up to target.length bytes at `position`; resolves how many (0 at the current end). */
  readAt(target: Buffer, position: number): Promise<number>
}

export function isPositionalSource(stream: Readable): stream is Readable & PositionalSource {
  return typeof (stream as Partial<PositionalSource>).readAt === 'function'
}
