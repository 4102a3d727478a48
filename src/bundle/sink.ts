// Where a bundle's images go. The CLI pushes through an OCI registry client (registry-sink.ts);
// a server-side import can write into storage behind the same five calls (and an optional sixth).
import type { Readable } from 'node:stream'
import type { Digest } from '../core/digest.js'

export interface BundleSink {
  /** Whether `repo` already holds the blob. */
  hasBlob(repo: string, digest: Digest, signal?: AbortSignal): Promise<boolean>
  /**
   * Uploads a blob. `open` gives its bytes and may be called again for a retry. Rejects when the
   * bytes do not hash to `digest` (nothing is then committed) or the upload failed for good.
   * `lend`, when given, gives the same bytes in reused buffers (lent-chunks.ts), for a sink whose
   * client takes them one at a time; a sink may ignore it. They are not checked on the way: a sink
   * that takes them must have its destination check the digest (a registry's PUT `?digest=`).
   */
  putBlob(
    repo: string,
    digest: Digest,
    size: number,
    open: () => Readable,
    signal?: AbortSignal,
    lend?: () => AsyncIterable<Buffer>,
  ): Promise<void>
  /**
   * Optional: stores a blob in `repo` from its bytes as they stream by, read once (a sink over
   * local storage, which needs no spool and no retry). Resolves once the bytes have passed, with
   * their digest; the blob is stored only when that is `expected` (or nothing was expected), and
   * `committed` settles once it is (durable and linked), rejecting when that failed. The caller
   * reads on while a blob commits.
   */
  writeBlob?(repo: string, stream: Readable, size: number, expected: Digest | undefined, signal?: AbortSignal): Promise<WrittenBlob>
  /** writeBlob takes only blobs whose digest the bundle names (a registry's upload carries it up front). */
  readonly writeBlobNeedsDigest?: boolean
  /** Links a blob `from` another repository; false when the destination would not (it then has nothing new). */
  mountBlob(repo: string, digest: Digest, from: string, signal?: AbortSignal): Promise<boolean>
  /** The digest `reference` (a tag or digest) resolves to in `repo`, undefined when absent. */
  resolveManifest(repo: string, reference: string, signal?: AbortSignal): Promise<Digest | undefined>
  /** Stores manifest bytes under `reference` (a tag, or its digest). */
  putManifest(repo: string, reference: string, bytes: Buffer, mediaType: string, signal?: AbortSignal): Promise<void>
  /**
   * Optional: unlinks a blob from `repo` (the content stays wherever else it is linked). False
   * when the destination does not allow it. Used to empty the staging repository after a run.
   */
  deleteBlob?(repo: string, digest: Digest, signal?: AbortSignal): Promise<boolean>
  /** Optional: a manifest's bytes and media type, undefined when absent. Lets a rerun find the blobs an earlier run pushed. */
  readManifest?(repo: string, reference: string, signal?: AbortSignal): Promise<{ bytes: Buffer; mediaType: string } | undefined>
}

/** A blob whose bytes have passed (writeBlob): its digest, and the commit still running. */
export interface WrittenBlob {
  digest: Digest
  committed: Promise<void>
}

/** A failure that ends the whole run (credentials refused, destination unreachable), not one image. */
export class FatalSinkError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'FatalSinkError'
  }
}

/** What a blob's bytes end with when they do not match its digest: an upload of them fails, and is not retried. */
export class ContentMismatchError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'ContentMismatchError'
  }
}

/** A streamed upload (writeBlob) that failed with its bytes gone: the blob must be read from the bundle again. */
export class StreamedOnceError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'StreamedOnceError'
  }
}
