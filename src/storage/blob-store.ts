// The global content-addressed store. Every byte that reaches a content address here was
// verified against it first: writers stream into a temp file while hashing, and only a
// matching file is committed (fsync + rename); anything else is discarded.
import type { Hash } from 'node:crypto'
import { pipeline } from 'node:stream/promises'
import type { Readable } from 'node:stream'
import { createDigestHash, digestAlgorithm, digestBytes, digestOfHash, type DeferredHashes, type Digest } from '../core/digest.js'
import { RegistryError } from '../core/errors.js'
import type { ByteRange } from '../core/range.js'
import { DigestingStream, type UploadWatch } from './digesting-stream.js'
import { FileExistsError, type StorageDriver } from './driver/driver.js'
import { blobDataPath } from './paths.js'

export interface BlobStoreOptions {
  /** Whole-blob reads are redirected to a URL of the store valid this long, where the driver can sign one. */
  redirectSeconds?: number | undefined
  /** Threads write() may hash on when asked to (a bulk import's blobs). */
  hashes?: DeferredHashes | undefined
  /** Told when writes start and end taking bytes in; not of a bulk import's (`offThread`). */
  uploadWatch?: UploadWatch | undefined
}

export class BlobStore {
  private readonly redirectSeconds: number | undefined
  private readonly hashes: DeferredHashes | undefined
  readonly uploadWatch: UploadWatch | undefined

  constructor(
    private readonly driver: StorageDriver,
    options: BlobStoreOptions = {},
  ) {
    this.redirectSeconds = options.redirectSeconds
    this.hashes = options.hashes
    this.uploadWatch = options.uploadWatch
  }

  async size(digest: Digest): Promise<number | undefined> {
    const info = await this.driver.stat(blobDataPath(digest), { fileOnly: true })
    return info && !info.isDirectory ? info.size : undefined
  }

  /**
   * The whole blob and its size, undefined when absent: one read of the store where the driver
   * has readWhole (S3: one GetObject, not a HeadObject and a GetObject).
   */
  async readWhole(digest: Digest, signal?: AbortSignal): Promise<{ stream: Readable; size: number } | undefined> {
    const path = blobDataPath(digest)
    if (this.driver.readWhole !== undefined) return this.driver.readWhole(path, { signal })
    const size = await this.size(digest)
    return size === undefined ? undefined : { stream: await this.driver.read(path, { signal }), size }
  }

  /** Whether whole-blob reads may be answered with a URL of the store (redirectUrl()). */
  get redirects(): boolean {
    return this.redirectSeconds !== undefined && this.driver.downloadUrl !== undefined
  }

  read(digest: Digest, range?: ByteRange, signal?: AbortSignal): Promise<Readable> {
    return this.driver.read(blobDataPath(digest), range ? { start: range.start, end: range.end, signal } : { signal })
  }

  /** Where redirects are on and the driver can sign one: a URL the client may fetch the blob from directly. */
  async redirectUrl(digest: Digest): Promise<string | undefined> {
    if (this.redirectSeconds === undefined) return undefined
    return this.driver.downloadUrl?.(blobDataPath(digest), this.redirectSeconds)
  }

  async getContent(digest: Digest): Promise<Buffer | undefined> {
    return this.driver.getContent(blobDataPath(digest))
  }

  /** Stores small content (manifests) whose digest the caller computed from these very bytes. */
  async putContent(digest: Digest, bytes: Buffer): Promise<void> {
    if (digestBytes(bytes, digestAlgorithm(digest)) !== digest) throw new Error('putContent: digest does not match bytes')
    if ((await this.size(digest)) === bytes.length) return
    await this.driver.putContent(blobDataPath(digest), bytes)
  }

  /**
   * Streams `body` into the store under `digest`, verifying digest (and `size` when known) on
   * the way. DIGEST_INVALID / SIZE_INVALID on mismatch, and nothing becomes visible. On S3 this
   * is one multipart upload at the content address, completed only after the digest matched.
   * `onVerified` runs once every byte is written and matched, before the commit. With `offThread`
   * (and hash threads given), a sha256 is computed on another thread while the bytes are written.
   */
  async write(
    digest: Digest,
    body: Readable,
    size?: number,
    signal?: AbortSignal,
    onVerified?: () => void,
    offThread = false,
  ): Promise<number> {
    // Two commits of one digest (two replicas filling it, two clients pushing it) both succeed:
    // where the store has conditional writes the second is refused and dropped, else it
    // replaces the first with the same bytes.
    const writer = await this.driver.writer(blobDataPath(digest), { signal, size, ifAbsent: true })
    const algorithm = digestAlgorithm(digest)
    const deferred = offThread && algorithm === 'sha256' ? this.hashes?.sha256() : undefined
    const hash = deferred ?? createDigestHash(algorithm)
    // Not a bulk import's: serve's old-generation room (cli/old-generation.ts) made the server
    // import of 1 GiB take 4.10 s instead of 2.79.
    const digesting = new DigestingStream(hash, size, offThread ? undefined : this.uploadWatch)
    try {
      await pipeline(body, digesting, writer.stream, signal ? { signal } : {})
      if (size !== undefined && digesting.bytes !== size) {
        throw new RegistryError('SIZE_INVALID', 'content is shorter than declared', { declared: size, received: digesting.bytes })
      }
      const actual = deferred ? (`sha256:${await deferred.digest()}` as Digest) : digestOfHash(algorithm, hash as Hash)
      if (actual !== digest) throw new RegistryError('DIGEST_INVALID', undefined, { expected: digest, actual })
      onVerified?.()
      await writer.commit().catch((err: unknown) => {
        if (!(err instanceof FileExistsError)) throw err
      })
      return digesting.bytes
    } catch (err) {
      deferred?.dispose()
      await writer.cancel().catch(() => {})
      throw err
    }
  }

  /** Adopts an already verified file (a finished upload) at its content address. */
  async adopt(path: string, digest: Digest): Promise<void> {
    await this.driver.move(path, blobDataPath(digest))
  }
}
