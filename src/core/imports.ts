// Server-side bulk imports (`/ferry/v1/imports`): the contract between the HTTP routes and the
// import service (bundle/import-jobs.ts), and the record an import leaves in storage so that a
// restart finds it. Types only.
import type { Readable } from 'node:stream'
import type { Digest } from './digest.js'

/**
 * reading: the bundle streams in (blobs are stored as they pass); importing: manifests and tags;
 * then done (every image landed), partial (some failed), failed (none landed, or the bundle could
 * not be read) or cancelled.
 */
/** The repository of a namespace every bundle's blobs are first stored in (then linked into each image's). */
export const bundleStagingRepository = 'ferry-bundle-staging'

export const importStates = ['reading', 'importing', 'done', 'partial', 'failed', 'cancelled'] as const
export type ImportState = (typeof importStates)[number]

export function isFinished(state: ImportState): boolean {
  return state !== 'reading' && state !== 'importing'
}

export interface ImportedImage {
  /** The name in the bundle; null for an image without one. */
  source: string | null
  /** `<namespace>/<path>:<tag>` (or `@digest`) in this registry; '' when it has none. */
  destination: string
  digest?: string
  status: 'pushed' | 'unchanged' | 'failed' | 'skipped' | 'planned'
  error?: string
}

/** What GET /ferry/v1/imports/<id> answers, and what is kept in storage per import. */
export interface ImportStatus {
  id: string
  namespace: string
  /** `s3://bucket/key`, or `body` for a bundle sent as the request body. */
  source: string
  state: ImportState
  /** sha256 of the bundle's bytes (as sent, before decompression), once read to the end or told by the client. */
  bundleDigest?: string
  /** Bytes of the bundle read so far, and its size when known. */
  bytesRead: number
  bytesTotal?: number
  /** Blob bytes written into storage (blobs already there are not written again). */
  bytesWritten: number
  imagesDone: number
  imagesTotal: number
  images: ImportedImage[]
  /** Why the whole import failed (an unreadable bundle, a restart cut a streamed body short). */
  error?: string
  /** The account that started it. */
  user: string
  createdAt: string
  updatedAt: string
  /** For an `s3://` source: the object's ETag and size, so the same object is recognised without reading it. */
  object?: { etag: string; size: number }
}

export type ImportSource =
  { kind: 'body'; stream: Readable; length?: number | undefined; digest?: Digest | undefined } | { kind: 's3'; url: string }

export interface ImportRequest {
  namespace: string
  source: ImportSource
  user: string
  /** Whether the principal may push into a repository (each image's is checked before it is written). */
  mayPush: (repository: string) => boolean
  /** Aborted when the client went away while its body was still being read. */
  signal?: AbortSignal
}

export interface ImportStarted {
  status: ImportStatus
  /** An earlier import of the same bundle into the same namespace: nothing new was done. */
  existing: boolean
}

export interface ImportService {
  /**
   * Starts an import, or finds the earlier one of the same bundle (its digest, or the same S3
   * object). For a body it resolves once the body has been read; for an `s3://` source once
   * the object was found. Throws a RegistryError for a bad request.
   */
  start(request: ImportRequest): Promise<ImportStarted>
  get(id: string): Promise<ImportStatus | undefined>
  /** Newest first. */
  list(): Promise<ImportStatus[]>
  /** Cancels an import still running; undefined for an unknown id. */
  cancel(id: string): Promise<ImportStatus | undefined>
}

/** Where import records are kept (storage, so they survive restarts and are shared by replicas). */
export interface ImportRecords {
  save(status: ImportStatus): Promise<void>
  load(id: string): Promise<ImportStatus | undefined>
  list(): Promise<ImportStatus[]>
  delete(id: string): Promise<void>
}

/** An object store's objects, read for `s3://bucket/key` sources (storage/driver/s3-object-reader.ts). */
export interface ObjectReader {
  /** Size and ETag; undefined when there is no such object. */
  stat(bucket: string, key: string, signal?: AbortSignal): Promise<{ size: number; etag: string } | undefined>
  /** The object's bytes, read in ranges; fails if the object changed from `etag` meanwhile. */
  open(bucket: string, key: string, object: { size: number; etag: string }, signal?: AbortSignal): Readable
}
