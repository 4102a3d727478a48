// The bundle sink of a server-side import: blobs and manifests go straight into the registry's
// storage through the core Registry contract, with no HTTP round-trip per blob. Blobs are
// written as they stream out of the bundle (writeBlob), verified by the upload service on the
// way (a mismatch commits nothing); manifests are checked for their references as any push. A
// storage failure is reported with the blob and its reason, never the server's paths.
import { Readable, Transform, type TransformCallback } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createDigestHash, digestOfHash, tryParseDigest, type Digest } from '../core/digest.js'
import { RegistryError } from '../core/errors.js'
import { isRepositoryName, type RepositoryName } from '../core/reference.js'
import type { Registry, Repository } from '../core/registry.js'
import type { BundleSink, WrittenBlob } from './sink.js'

export interface StorageSinkOptions {
  /** Whether the importing account may push into `repository`; refused ones fail their image. */
  mayPush?: (repository: string) => boolean
  /** The import's staging repository: the blobs written into it, or found there, are remembered (staged()). */
  staging?: string
  /** Told of a blob that storage failed to take (the detail for the server's log; the import reports only the blob and the reason). */
  onStorageError?: (err: unknown, digest: Digest | undefined) => void
}

export class StorageSink implements BundleSink {
  readonly #registry: Registry
  readonly #mayPush: (repository: string) => boolean
  readonly #staging: string | undefined
  readonly #staged = new Set<Digest>()
  readonly #onStorageError: ((err: unknown, digest: Digest | undefined) => void) | undefined

  constructor(registry: Registry, options: StorageSinkOptions = {}) {
    this.#registry = registry
    this.#mayPush = options.mayPush ?? (() => true)
    this.#staging = options.staging
    this.#onStorageError = options.onStorageError
  }

  /** The blobs this import put into (or found in) its staging repository: what emptying it removes. */
  staged(): Digest[] {
    return [...this.#staged]
  }

  async hasBlob(repo: string, digest: Digest, signal?: AbortSignal): Promise<boolean> {
    const found = (await this.#repository(repo, false).blobs.stat(digest, op(signal))) !== undefined
    if (found && repo === this.#staging) this.#staged.add(digest)
    return found
  }

  async putBlob(repo: string, digest: Digest, size: number, open: () => Readable, signal?: AbortSignal): Promise<void> {
    const uploads = this.#repository(repo, true).blobs.uploads
    if (uploads.put !== undefined) {
      // As writeBlob: at the content address, hashed on another thread, and not counted as a client's upload.
      await uploads.put(digest, open(), { ...op(signal), length: size, offThread: true }).catch((err: unknown) => this.#failed(err, digest))
      return
    }
    const { id } = await uploads.start(op(signal)).catch((err: unknown) => this.#failed(err, digest))
    try {
      await uploads.complete(id, digest, open(), op(signal))
    } catch (err) {
      await uploads.cancel(id).catch(() => undefined)
      this.#failed(err, digest)
    }
  }

  async writeBlob(repo: string, stream: Readable, size: number, expected: Digest | undefined, signal?: AbortSignal): Promise<WrittenBlob> {
    const written = await this.#writeBlob(repo, stream, size, expected, signal)
    if (repo === this.#staging && (expected === undefined || written.digest === expected)) {
      const { digest } = written
      written.committed = written.committed.then(() => void this.#staged.add(digest))
    }
    return written
  }

  async #writeBlob(repo: string, stream: Readable, size: number, expected: Digest | undefined, signal?: AbortSignal): Promise<WrittenBlob> {
    const uploads = this.#repository(repo, true).blobs.uploads
    if (expected !== undefined && uploads.put !== undefined) {
      // Straight to the content address with no upload session, hashed on another thread as it
      // is written, committed only when the digest matches. Storage says so once the last byte is
      // written; the fsync, rename and link then run while the caller reads the next blob.
      const put = uploads.put.bind(uploads)
      return verifiedWrite(
        stream,
        expected,
        (body, onVerified) =>
          put(expected, body, { ...op(signal), length: size, onVerified, offThread: true }).catch((err: unknown) =>
            this.#failed(err, expected),
          ),
        (err) => Promise.reject(err),
      )
    }
    const { id } = await uploads.start(op(signal)).catch((err: unknown) => this.#failed(err, expected))
    const cancelling = async (err: unknown): Promise<never> => {
      await uploads.cancel(id).catch(() => undefined)
      return this.#failed(err, expected)
    }
    try {
      if (expected !== undefined) {
        // A registry without put(): through an upload session, which hashes as it writes.
        return await verifiedWrite(
          stream,
          expected,
          (body, onVerified) => uploads.complete(id, expected, body, { ...op(signal), length: size, onVerified }),
          cancelling,
        )
      }
      // A docker-save layer is named by its path: its digest is known once its last byte passed.
      const hash = createDigestHash('sha256')
      const hashing = new Transform({
        transform(chunk: Buffer, _encoding, callback: TransformCallback) {
          hash.update(chunk)
          callback(null, chunk)
        },
      })
      const appended = uploads.append(id, hashing, op(signal))
      await Promise.all([pipeline(stream, hashing), appended])
      const digest = digestOfHash('sha256', hash)
      const committed = uploads.complete(id, digest, undefined, op(signal)).then(() => undefined, cancelling)
      committed.catch(() => undefined)
      return { digest, committed }
    } catch (err) {
      return cancelling(err)
    }
  }

  /**
   * A storage failure as the import reports it: the blob and the reason, never the server's paths
   * (a system error's message names its file; the error itself goes to `onStorageError`, for the
   * server's log). Any other error (a digest mismatch, a truncated bundle) passes as it is.
   */
  #failed(err: unknown, digest: Digest | undefined): never {
    if (typeof (err as NodeJS.ErrnoException | undefined)?.syscall !== 'string') throw err
    this.#onStorageError?.(err, digest)
    throw new Error(`${digest ?? 'the blob'} could not be stored: ${storageReason(err)}`, { cause: err })
  }

  async mountBlob(repo: string, digest: Digest, from: string, signal?: AbortSignal): Promise<boolean> {
    if (!isRepositoryName(from)) return false
    return (await this.#repository(repo, true).blobs.mount(from, digest, op(signal))) !== undefined
  }

  async resolveManifest(repo: string, reference: string, signal?: AbortSignal): Promise<Digest | undefined> {
    const repository = this.#repository(repo, false)
    const digest = tryParseDigest(reference)
    const descriptor =
      digest !== undefined ? await repository.manifests.stat(digest, op(signal)) : await repository.tags.resolve(reference, op(signal))
    return descriptor?.digest
  }

  async readManifest(repo: string, reference: string, signal?: AbortSignal): Promise<{ bytes: Buffer; mediaType: string } | undefined> {
    const repository = this.#repository(repo, false)
    const digest = tryParseDigest(reference) ?? (await repository.tags.resolve(reference, op(signal)))?.digest
    const stored = digest === undefined ? undefined : await repository.manifests.get(digest, op(signal))
    return stored === undefined ? undefined : { bytes: stored.bytes, mediaType: stored.descriptor.mediaType }
  }

  async putManifest(repo: string, reference: string, bytes: Buffer, mediaType: string, signal?: AbortSignal): Promise<void> {
    const repository = this.#repository(repo, true)
    const digest = tryParseDigest(reference)
    const result = await repository.manifests.put(bytes, mediaType, digest !== undefined ? { ...op(signal), digest } : op(signal))
    if (digest === undefined) await repository.tags.tag(reference, result.descriptor.digest, op(signal))
  }

  #repository(name: string, write: boolean): Repository {
    if (!isRepositoryName(name)) throw new RegistryError('NAME_INVALID', undefined, { name: name.slice(0, 200) })
    if (write && !this.#mayPush(name)) throw new RegistryError('DENIED', `no push right on ${name}`)
    return this.#registry.repository(name as RepositoryName)
  }
}

/**
 * Writes `stream` through `write`, which checks it against `expected` and calls onVerified once the
 * last byte matched: resolves then, with the commit still running behind as `committed` (failures
 * of which go through `whenFailed`), or with the digest the bytes had on a mismatch.
 */
async function verifiedWrite(
  stream: Readable,
  expected: Digest,
  write: (body: Readable, onVerified: () => void) => Promise<unknown>,
  whenFailed: (err: unknown) => Promise<never>,
): Promise<WrittenBlob> {
  let verified!: () => void
  const written = new Promise<void>((resolve) => (verified = resolve))
  const completing = write(Readable.from(coalesced(stream), { objectMode: false }), () => verified())
  const committed = completing.then(() => undefined, whenFailed)
  committed.catch(() => undefined)
  try {
    await Promise.race([written, completing])
    return { digest: expected, committed }
  } catch (err) {
    const actual = err instanceof RegistryError && err.code === 'DIGEST_INVALID' ? mismatchOf(err) : undefined
    if (actual !== undefined) return { digest: actual, committed: Promise.resolve() }
    throw err
  }
}

/** Large writes: a request body arrives in pieces of 64 KiB or less, and each write is a trip to the thread pool. */
const writeChunk = 1024 * 1024

/** The bytes of `stream` in chunks of about `writeChunk` (copied together; a copy costs far less than a write). */
async function* coalesced(stream: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  let pending: Buffer[] = []
  let length = 0
  for await (const chunk of stream) {
    pending.push(chunk)
    length += chunk.length
    if (length < writeChunk) continue
    yield pending.length === 1 ? pending[0]! : Buffer.concat(pending, length)
    pending = []
    length = 0
  }
  if (length > 0) yield pending.length === 1 ? pending[0]! : Buffer.concat(pending, length)
}

function op(signal: AbortSignal | undefined): { signal?: AbortSignal } {
  return signal ? { signal } : {}
}

/** The digest the bytes had, from the upload service's DIGEST_INVALID detail. */
function mismatchOf(err: RegistryError): Digest | undefined {
  const detail = err.detail
  if (detail === undefined || typeof detail === 'string') return undefined
  const actual = detail.actual
  return typeof actual === 'string' ? tryParseDigest(actual) : undefined
}

/** Why storage failed, in words that name no path (a system error's message names the file). */
function storageReason(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code ?? 'unknown'
  const reasons: Record<string, string> = {
    ENOSPC: 'the storage is full',
    EDQUOT: 'the storage quota is used up',
    EACCES: 'the storage refused the write',
    EPERM: 'the storage refused the write',
    EROFS: 'the storage is read-only',
    ENOTDIR: 'a file in the storage is where a folder must be',
    EISDIR: 'a folder in the storage is where a file must be',
    EIO: 'the storage failed to read or write',
  }
  return `${reasons[code] ?? 'a storage error'} (${code})`
}
