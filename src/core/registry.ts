// The contracts the HTTP layer meets. A local (storage-backed) registry implements them, and so
// does the pull-through decorator, so routes never know where content comes from.
import type { Readable } from 'node:stream'
import type { Digest } from './digest.js'
import type { Descriptor } from './manifest.js'
import type { Page, PageResult } from './pagination.js'
import type { ByteRange, RangeOptions } from './range.js'
import type { RepositoryName } from './reference.js'

/** Per-operation context: cancellation plus what the client will accept (forwarded upstream). */
export interface Op {
  signal?: AbortSignal
  /** The client's Accept media types, in order; empty means "anything". */
  accept?: readonly string[]
  /** containerd's `?ns=` parameter: the registry the client is pulling from. */
  ns?: string
  /** Told when the answer did not come fresh from where it normally would (e.g. served stale). */
  notify?: (notice: Notice) => void
  /** Read storage, not what this process remembers of it: another replica has just written there. */
  fresh?: boolean
  /** A listing reads it (the Harbor-compatible API), not a client pulling: no pull time is recorded. */
  listing?: boolean
  /** The caller reads the bytes itself (it copies them elsewhere): a blob is never answered with a redirect. */
  wantBytes?: boolean
}

/** Something the HTTP layer should surface in a header, log line or metric. */
export interface Notice {
  kind: 'stale'
  /** The upstream that could not be asked, and why. */
  upstream: string
  reason: string
}

export interface BlobInfo {
  digest: Digest
  size: number
}

export interface BlobBody {
  kind: 'body'
  digest: Digest
  /** Size of the whole blob. */
  size: number
  /** The range the stream covers, when one was asked for. */
  range?: ByteRange
  stream: Readable
}

/** A storage backend that can hand out a URL (e.g. a presigned S3 GET) instead of bytes. */
export interface BlobRedirect {
  kind: 'redirect'
  digest: Digest
  size: number
  url: string
}

export interface BlobService {
  /** The blob's size if it is available in this repository, else undefined. */
  stat(digest: Digest, op?: Op): Promise<BlobInfo | undefined>
  /**
   * Opens the blob, or the part of it `range` (or a client's `rangeHeader`) asks for. Throws
   * BLOB_UNKNOWN when the repository does not have it, RANGE_INVALID (416) for a range outside it.
   */
  open(digest: Digest, options?: RangeOptions & Op): Promise<BlobBody | BlobRedirect>
  /** Makes a blob of repository `from` available here; undefined when `from` does not have it. */
  mount(from: RepositoryName, digest: Digest, op?: Op): Promise<BlobInfo | undefined>
  /** Unlinks the blob from this repository. Throws BLOB_UNKNOWN when it is not linked. */
  delete(digest: Digest, op?: Op): Promise<void>
  readonly uploads: UploadService
}

export interface UploadStatus {
  id: string
  /** Bytes received so far. */
  size: number
  startedAt: Date
}

export interface AppendOptions extends Op {
  /** Where the chunk starts; must equal the bytes received so far, else RANGE_INVALID (416). */
  offset?: number
  /** The declared chunk length; a body of another length fails with SIZE_INVALID. */
  length?: number
  /**
   * complete() only: called once every byte is in the upload file and the digest matched, before
   * the commit makes it durable (a mirror fill's followers may send the last byte from then on).
   */
  onVerified?: () => void
  /**
   * complete() only: called when the store runs out of space part-way (ENOSPC, EDQUOT). Instead of
   * failing at once, the rest of the body is still read and hashed to its end (onVerified runs if
   * it matches) with nothing more written, then complete() rejects with the out-of-space error and
   * nothing is stored. A mirror fill uses it to stream on to its clients from memory.
   */
  onStorageFull?: (err: Error) => void
  /**
   * put() only: the blob goes straight to its content address (no upload session), its sha256
   * computed on another thread where the registry has some. A bulk import asks for it: its main
   * thread is busy reading the bundle, and nothing reads an upload session of its blobs.
   */
  offThread?: boolean
}

export interface UploadService {
  start(op?: Op): Promise<UploadStatus>
  /** Throws BLOB_UPLOAD_UNKNOWN for an id that is unknown, finished or cancelled. */
  status(id: string, op?: Op): Promise<UploadStatus>
  /** Streams a chunk onto the upload. Bytes received before a failure stay (see status()). */
  append(id: string, body: Readable, options?: AppendOptions): Promise<UploadStatus>
  /**
   * Appends an optional last chunk, verifies the whole upload against `digest` and commits it.
   * DIGEST_INVALID or SIZE_INVALID on mismatch: nothing is stored and the upload is discarded.
   */
  complete(id: string, digest: Digest, body?: Readable, options?: AppendOptions): Promise<BlobInfo>
  /**
   * A whole blob in one request (`POST ?digest=`), with no session anyone could resume: stores
   * that can (S3) write it straight to its content address. Optional: without it, the caller
   * runs start() then complete(). DIGEST_INVALID or SIZE_INVALID on mismatch, nothing stored.
   */
  put?(digest: Digest, body: Readable, options?: AppendOptions): Promise<BlobInfo>
  /** Throws BLOB_UPLOAD_UNKNOWN for an unknown id. */
  cancel(id: string, op?: Op): Promise<void>
  /**
   * Reads bytes already received (the mirror serves a blob while it is still arriving). Short
   * reads are possible at the growing end. Throws BLOB_UPLOAD_UNKNOWN once the upload is gone.
   */
  read(id: string, range: ByteRange, op?: Op): Promise<Readable>
}

export interface StoredManifest {
  /** mediaType, digest and size of the exact bytes. */
  descriptor: Descriptor
  bytes: Buffer
}

export interface ManifestPutResult {
  descriptor: Descriptor
  /** The subject's digest when the manifest has one (echoed as OCI-Subject). */
  subject?: Digest
}

export interface ManifestPutOptions extends Op {
  /** The digest the client named (PUT by digest): the bytes must hash to it, else DIGEST_INVALID. */
  digest?: Digest
  /**
   * Skip the check that referenced blobs and child manifests exist here: a mirror caches a
   * manifest before (or without) its blobs, which it fetches on demand.
   */
  trustReferences?: boolean
}

export interface ManifestService {
  stat(digest: Digest, op?: Op): Promise<Descriptor | undefined>
  get(digest: Digest, op?: Op): Promise<StoredManifest | undefined>
  /**
   * Validates and stores manifest bytes exactly as given. MANIFEST_INVALID for a malformed
   * document, MANIFEST_BLOB_UNKNOWN when a referenced blob or child manifest is missing here.
   */
  put(bytes: Buffer, contentType: string, options?: ManifestPutOptions): Promise<ManifestPutResult>
  /** Deletes the manifest and every tag pointing at it. Throws MANIFEST_UNKNOWN. */
  delete(digest: Digest, op?: Op): Promise<void>
  /** Manifests whose subject is `digest`, filtered by artifactType when given. */
  referrers(digest: Digest, filter?: { artifactType?: string }, op?: Op): Promise<Descriptor[]>
}

export interface TagService {
  /** The descriptor the tag points at, or undefined. */
  resolve(tag: string, op?: Op): Promise<Descriptor | undefined>
  /** Points the tag at a manifest that exists in this repository. */
  tag(tag: string, digest: Digest, op?: Op): Promise<void>
  /** Throws MANIFEST_UNKNOWN when the tag does not exist. */
  untag(tag: string, op?: Op): Promise<void>
  /** Tags in lexical order; undefined when the repository is unknown. */
  list(page: Page, op?: Op): Promise<PageResult | undefined>
}

export interface Repository {
  readonly name: RepositoryName
  readonly blobs: BlobService
  readonly manifests: ManifestService
  readonly tags: TagService
  /** Present when the repository's misses go to an upstream: who may pull depends on it. */
  readonly mirror?: RepositoryMirror
}

export interface RepositoryMirror {
  /** The upstream-qualified name its cached content lives under, e.g. `gcr.io/pause`. */
  readonly upstreamName: string
  /** The configured upstream's canonical name, e.g. `gcr.io` (never the client's spelling of it). */
  readonly upstream: string
  /** Whether the repository was pushed here: pushed content is served locally, never mirrored. */
  pushed(): Promise<boolean>
}

export interface Registry {
  /** The repository a request names; `op.ns` may route it (mirror). Throws NAME_UNKNOWN when it cannot be served. */
  repository(name: RepositoryName, op?: Op): Repository
  /** Repository names in lexical order. */
  catalog(page: Page, op?: Op): Promise<PageResult>
}
