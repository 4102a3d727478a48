// Body streams the blob download path can send without a stream's per-chunk allocations: a
// source read at any position into buffers the sender owns (a stored file), or one whose chunks
// are shared with other responses (a mirror fill's blocks). Fresh buffers per read ended in a
// major GC every few hundred MiB in a heap of Ferry's size, a quarter of a download's CPU (#6).
import type { Readable } from 'node:stream'

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

/** A source backed by an open local file that the kernel can send from directly (sendfile). */
export interface FileDescriptorSource {
  /** The open file's descriptor, valid until the stream is destroyed. */
  readonly fd: number
}

export function isFileDescriptorSource(stream: Readable): stream is Readable & FileDescriptorSource {
  return typeof (stream as Partial<FileDescriptorSource>).fd === 'number'
}

/**
 * A body that follows a file still being written (a mirror fill): the kernel can send what is
 * already in the file while the rest arrives. Bytes `start`..`end` (exclusive) of the file.
 */
export interface GrowingFileSource {
  readonly start: number
  readonly end: number
  /** The file's descriptor (still valid after the fill's commit renames the file), or undefined without a local file. */
  fileDescriptor(): Promise<number | undefined>
  /**
   * Waits until bytes from `position` may be sent (received, and verified for the last one);
   * resolves with the exclusive end of them. Rejects when the fill failed.
   */
  sendableFrom(position: number): Promise<number>
  /** Whether bytes counted as sendable may still be on their way into the file. */
  readonly growing: boolean
  /** Resolves at the next change of the fill: more bytes, the commit, or a failure. */
  nextChange(): Promise<void>
}

export function isGrowingFileSource(stream: Readable): stream is Readable & GrowingFileSource {
  return typeof (stream as Partial<GrowingFileSource>).sendableFrom === 'function'
}

/**
 * A body read from a plain-TCP connection of its own (an S3 GET on a plain-HTTP store), whose
 * socket the kernel can splice to the client's.
 */
export interface SocketSource {
  /** How long the source may send nothing before a transfer from it is given up (ms). */
  readonly stallMs: number
  /**
   * Hands the connection to `open` (e.g. the helper's openSplice) when nothing was read from the
   * stream yet and body bytes are left on the socket. Once `open` returned something, Node reads
   * nothing from the socket any more (the descriptor stays valid until the stream is destroyed):
   * the result carries the body bytes that came with the response head, then how many follow on
   * the socket. Undefined (the stream is read as usual) when the connection cannot be taken or
   * `open` returned undefined.
   */
  takeSocket<T>(open: (fd: number) => T | undefined): { taken: T; head: Buffer; length: number } | undefined
}

export function isSocketSource(stream: Readable): stream is Readable & SocketSource {
  return typeof (stream as Partial<SocketSource>).takeSocket === 'function'
}
