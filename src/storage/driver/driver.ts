// StorageDriver: bytes at slash-separated paths, nothing more. Blob verification, links and
// layout live above it (storage/), so a new backend (S3) plugs in by implementing this alone.
// Paths are always built by storage/paths.ts from validated names, never from raw input.
import type { Readable, Writable } from 'node:stream'

export interface FileInfo {
  path: string
  size: number
  modTime: Date
  isDirectory: boolean
}

export interface ReadOptions {
  /** Inclusive byte offsets; end defaults to the last byte. */
  start?: number
  end?: number
  signal?: AbortSignal
}

export interface StatOptions {
  /**
   * Only a file is of interest: a store that tells directories apart at extra cost (a LIST on
   * S3) answers undefined for anything but a file, without that cost. Every request path asks so.
   */
  fileOnly?: boolean
}

export interface WriteOptions {
  /** The size the new file will have, when known (S3 sizes its parts by it). */
  size?: number | undefined
  /**
   * Never replace an existing file (S3 with conditional writes: If-None-Match: *): commit()
   * rejects with FileExistsError when one is already there, and this writer's bytes are dropped.
   * A store without conditional writes replaces it, as without the option.
   */
  ifAbsent?: boolean
  /**
   * Append to the existing file (upload sessions grow across requests). Without it a writer
   * produces a new file that becomes visible at `path` only on commit().
   */
  append?: boolean
  signal?: AbortSignal
}

/**
 * A file being written. Pipe bytes into `stream`, then either commit() — durable (fsync) and,
 * for a new file, atomically visible at its path — or cancel(), which leaves nothing new behind
 * (for an append writer: the bytes already written stay, as an upload's received bytes must).
 */
export interface FileWriter {
  readonly stream: Writable
  /** Total size of the file including previously existing bytes (append) and bytes written so far. */
  readonly size: number
  commit(): Promise<void>
  cancel(): Promise<void>
}

export interface StorageDriver {
  readonly name: string
  /**
   * True when a blob whose digest is known up front should be written straight to its content
   * address rather than through an upload session: moving a session's bytes would copy them
   * (S3). False or absent where a move is a rename and readers follow a growing file (filesystem).
   */
  readonly directWrites?: boolean
  /**
   * True when list() is a billed request that scans keys (S3): request paths then read small
   * index objects instead (storage/name-index.ts). Absent or false: listing is cheap (readdir).
   */
  readonly costlyLists?: boolean
  /** A URL clients may GET the file from directly for `expiresInSeconds` (a presigned S3 GET); absent where the store has none. */
  downloadUrl?(path: string, expiresInSeconds: number): Promise<string>
  /**
   * Compare-and-swap of a small file, where the store has it (S3 with conditional writes):
   * getVersioned() returns the content with a version (the ETag), putIfVersion() writes only
   * if the file is still at that version (undefined: still absent) and tells whether it did.
   */
  getVersioned?(path: string): Promise<{ content: Buffer; version: string } | undefined>
  putIfVersion?(path: string, content: string, version: string | undefined): Promise<boolean>
  /**
   * Housekeeping only (a listing): aborts multipart uploads under this driver's keys started
   * before `olderThan`; how many, or undefined when the store cannot list them.
   */
  abortStaleUploads?(olderThan: Date): Promise<number | undefined>
  /** Whether the store is reachable (for /readyz): never a listing. Absent: list('') is used. */
  check?(): Promise<void>
  /** Metadata of a file or directory; undefined when nothing is at `path`. */
  stat(path: string, options?: StatOptions): Promise<FileInfo | undefined>
  /** Streams a file or a byte range of it. Throws PathNotFoundError when absent. */
  read(path: string, options?: ReadOptions): Promise<Readable>
  /**
   * A whole file with its size, in one request where stat() and read() would cost two (S3: one
   * GetObject, not a HeadObject first); undefined when absent. Absent: callers stat, then read.
   */
  readWhole?(path: string, options?: Pick<ReadOptions, 'signal'>): Promise<{ stream: Readable; size: number } | undefined>
  writer(path: string, options?: WriteOptions): Promise<FileWriter>
  /** Whole small file (links, metadata); undefined when absent. */
  getContent(path: string): Promise<Buffer | undefined>
  /** Replaces a small file atomically: readers see the old or the new content, never a mix. */
  putContent(path: string, content: Uint8Array | string): Promise<void>
  /** Moves a file, replacing the destination atomically. Throws PathNotFoundError when `from` is absent. */
  move(from: string, to: string): Promise<void>
  /** Deletes a file or a whole directory tree (not with `fileOnly`); no error when absent. */
  delete(path: string, options?: StatOptions): Promise<void>
  /** Names of the direct children of a directory, sorted; [] when absent. */
  list(path: string): Promise<string[]>
}

/** A commit with `ifAbsent` found a file at its path: someone else wrote it first. */
export class FileExistsError extends Error {
  readonly path: string
  constructor(path: string) {
    super(`file exists: ${path}`)
    this.name = 'FileExistsError'
    this.path = path
  }
}

export class PathNotFoundError extends Error {
  readonly path: string
  constructor(path: string) {
    super(`path not found: ${path}`)
    this.name = 'PathNotFoundError'
    this.path = path
  }
}

/** Rejects anything that is not a clean relative path: the last line of defence against traversal. */
export function assertCleanPath(path: string): void {
  if (path === '' || path.startsWith('/') || path.includes('\\') || path.includes('\0')) {
    throw new Error(`invalid storage path: ${JSON.stringify(path)}`)
  }
  for (const part of path.split('/')) {
    if (part === '' || part === '.' || part === '..') throw new Error(`invalid storage path: ${JSON.stringify(path)}`)
  }
}
