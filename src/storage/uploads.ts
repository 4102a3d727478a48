// Upload sessions of one repository. Bytes are appended to `_uploads/<id>/data` as they arrive
// (fsynced per request, so a session survives restarts); the running hash is kept in memory so
// completing an upload does not re-read it, and is rebuilt from the data file when missing
// (after a restart, or on another replica). On a driver with directWrites (shared object storage,
// where any replica may receive the next chunk) the hash's state is also saved after every append
// in `_uploads/<id>/hashstate` (running-hash.ts), so another replica continues it without a re-read.
//
// On a driver with directWrites (S3), a session that is still empty when complete() brings the
// whole body (a monolithic push, a mirror fill) is bypassed: the body goes straight to its
// content address through BlobStore.write, verified before it becomes visible, and never copied.
import { randomUUID } from 'node:crypto'
import type { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { LRUCache } from 'lru-cache'
import { createDigestHash, digestAlgorithm, digestOfHash, type Digest, type DigestAlgorithm } from '../core/digest.js'
import { isRegistryError, RegistryError } from '../core/errors.js'
import { uploadRangeHeader, type ByteRange } from '../core/range.js'
import type { RepositoryName } from '../core/reference.js'
import type { AppendOptions, BlobInfo, Op, UploadService, UploadStatus } from '../core/registry.js'
import type { BlobStore } from './blob-store.js'
import { DigestingStream } from './digesting-stream.js'
import { PathNotFoundError, type StorageDriver } from './driver/driver.js'
import type { KeyedLock } from './keyed-lock.js'
import { isUploadId, uploadDataPath, uploadHashStatePath } from './paths.js'
import { runningSha256, type RunningHash } from './running-hash.js'
import { SpaceTolerantSink } from './space-tolerant-sink.js'

/** The hash of an upload's first `offset` bytes. */
interface HashState {
  hash: RunningHash
  offset: number
}

/** `_uploads/<id>/hashstate`: the saved running hash after `offset` bytes. */
interface SavedHashState {
  offset: number
  /** base64 of hash-wasm's sha256 state. */
  state: string
}

/** State shared by every repository's uploads within one registry instance. */
export class UploadState {
  readonly hashes = new LRUCache<string, HashState>({ max: 10_000 })
  /**
   * Sessions whose body is written straight to its content address: `committed` resolves true
   * once it is there. Kept after the session is discarded, for followers still reading it.
   */
  readonly direct = new LRUCache<string, { digest: Digest; committed: Promise<boolean> }>({ max: 10_000 })
  constructor(readonly locks: KeyedLock) {}
}

// sha256 is what nearly every client uses; other algorithms re-read the data once at the end.
const runningAlgorithm: DigestAlgorithm = 'sha256'

export class RepositoryUploads implements UploadService {
  constructor(
    private readonly name: RepositoryName,
    private readonly driver: StorageDriver,
    private readonly blobStore: BlobStore,
    private readonly state: UploadState,
    /** Links a committed blob into this repository. */
    private readonly link: (digest: Digest) => Promise<void>,
  ) {}

  start(_op?: Op): Promise<UploadStatus> {
    const id = randomUUID()
    // Under the lock, so the purge never sees a session whose data file is not written yet.
    return this.state.locks.run(id, async () => {
      // One file per session: its modification time is the session's age (the purge reads it).
      await this.driver.putContent(uploadDataPath(this.name, id), '')
      const startedAt = new Date()
      this.state.hashes.set(id, { hash: await runningSha256(this.savesHash), offset: 0 })
      return { id, size: 0, startedAt }
    })
  }

  async status(id: string, _op?: Op): Promise<UploadStatus> {
    if (!isUploadId(id)) throw unknownUpload(id)
    const data = await this.driver.stat(uploadDataPath(this.name, id), { fileOnly: true })
    if (!data || data.isDirectory) throw unknownUpload(id)
    return { id, size: data.size, startedAt: data.modTime }
  }

  append(id: string, body: Readable, options: AppendOptions = {}): Promise<UploadStatus> {
    return this.state.locks.run(id, async () => {
      const status = await this.status(id)
      return { ...status, size: await this.appendLocked(status, body, options) }
    })
  }

  complete(id: string, digest: Digest, body?: Readable, options: AppendOptions = {}): Promise<BlobInfo> {
    return this.state.locks.run(id, async () => {
      const status = await this.status(id)
      const { onVerified, ...appendOptions } = options
      if (body && status.size === 0 && this.driver.directWrites && (options.offset ?? 0) === 0) {
        return this.completeDirect(id, digest, body, options)
      }
      // The running sha256 is checked as soon as the last byte is written, before the fsync.
      const onWritten =
        onVerified && digestAlgorithm(digest) === runningAlgorithm
          ? (hash: RunningHash) => `${runningAlgorithm}:${hash.peek()}` === digest && onVerified()
          : undefined
      const size = body ? await this.appendLocked(status, body, appendOptions, onWritten) : status.size
      const actual = await this.finalDigest(id, digestAlgorithm(digest), size)
      if (actual !== digest) {
        await this.discard(id, size)
        throw new RegistryError('DIGEST_INVALID', undefined, { expected: digest, actual })
      }
      if ((await this.blobStore.size(digest)) === undefined) {
        await this.blobStore.adopt(uploadDataPath(this.name, id), digest)
      }
      await this.link(digest)
      await this.discard(id, size)
      return { digest, size }
    })
  }

  async put(digest: Digest, body: Readable, options: AppendOptions = {}): Promise<BlobInfo> {
    if (this.driver.directWrites || options.offThread === true) {
      const { length, signal, onVerified, offThread } = options
      const size = await this.blobStore.write(digest, body, length, signal, onVerified, offThread)
      await this.link(digest)
      return { digest, size }
    }
    const session = await this.start(options)
    try {
      return await this.complete(session.id, digest, body, options)
    } catch (err) {
      await this.cancel(session.id).catch(() => {})
      throw err
    }
  }

  /** The whole blob in complete()'s body: written at its content address, the session only discarded. */
  private async completeDirect(id: string, digest: Digest, body: Readable, options: AppendOptions): Promise<BlobInfo> {
    let size: number
    const writing = this.blobStore.write(digest, body, options.length, options.signal, options.onVerified)
    // read() of this session (a mirror fill's lagging follower) waits for the blob instead.
    this.state.direct.set(id, {
      digest,
      committed: writing.then(
        () => true,
        () => false,
      ),
    })
    try {
      size = await writing
    } catch (err) {
      this.state.direct.delete(id)
      if (isRegistryError(err) && (err.code === 'DIGEST_INVALID' || err.code === 'SIZE_INVALID')) await this.discard(id)
      throw err
    }
    await this.link(digest)
    await this.discard(id)
    return { digest, size }
  }

  cancel(id: string, _op?: Op): Promise<void> {
    return this.state.locks.run(id, async () => {
      await this.discard(id, (await this.status(id)).size)
    })
  }

  async read(id: string, range: ByteRange, op?: Op): Promise<Readable> {
    if (!isUploadId(id)) throw unknownUpload(id)
    const direct = this.state.direct.get(id)
    if (direct !== undefined) {
      // The bytes are not in the session: they become readable at the content address once committed.
      if (!(await direct.committed)) throw unknownUpload(id)
      return this.blobStore.read(direct.digest, range, op?.signal)
    }
    try {
      return await this.driver.read(uploadDataPath(this.name, id), { start: range.start, end: range.end, signal: op?.signal })
    } catch (err) {
      if (err instanceof PathNotFoundError) throw unknownUpload(id)
      throw err
    }
  }

  /** Appends one chunk; returns the new size. Runs under the upload's lock. */
  private async appendLocked(
    status: UploadStatus,
    body: Readable,
    options: AppendOptions,
    onWritten?: (hash: RunningHash) => unknown,
  ): Promise<number> {
    const { id, size } = status
    if (options.offset !== undefined && options.offset !== size) {
      body.resume()
      throw new RegistryError(
        'RANGE_INVALID',
        'chunk does not start where the upload ends',
        { offset: options.offset, size },
        {
          status: 416,
          headers: { Range: uploadRangeHeader(size) },
        },
      )
    }
    const running = await this.runningHash(id, size)
    this.state.hashes.delete(id) // re-added only if every byte below lands
    const writer = await this.driver.writer(uploadDataPath(this.name, id), { append: true, signal: options.signal })
    const digesting = new DigestingStream(running.hash, options.length, this.blobStore.uploadWatch)
    // A fill asks to be told of a full volume and to have its body hashed to the end regardless.
    const sink = options.onStorageFull ? new SpaceTolerantSink(writer.stream, options.onStorageFull) : undefined
    try {
      await pipeline(body, digesting, sink ?? writer.stream)
      if (options.length !== undefined && digesting.bytes !== options.length) {
        throw new RegistryError('SIZE_INVALID', 'chunk is shorter than declared', { declared: options.length, received: digesting.bytes })
      }
      onWritten?.(running.hash)
      if (sink?.full) throw sink.full
      await writer.commit()
    } catch (err) {
      await writer.cancel().catch(() => {})
      throw err
    }
    const newSize = size + digesting.bytes
    this.state.hashes.set(id, { hash: running.hash, offset: newSize })
    const saved = running.hash.save()
    if (saved !== undefined) {
      const record: SavedHashState = { offset: newSize, state: Buffer.from(saved).toString('base64') }
      await this.driver.putContent(uploadHashStatePath(this.name, id), JSON.stringify(record))
    }
    return newSize
  }

  /** Saves hash state where a session may continue on another replica (shared object storage). */
  private get savesHash(): boolean {
    return this.driver.directWrites === true
  }

  /** The sha256 of the session's first `size` bytes: from memory, the saved state, or a re-read. */
  private async runningHash(id: string, size: number): Promise<HashState> {
    const cached = this.state.hashes.get(id)
    if (cached && cached.offset === size) return cached
    if (size === 0) return { hash: await runningSha256(this.savesHash), offset: 0 }
    if (this.savesHash) {
      const saved = await this.driver.getContent(uploadHashStatePath(this.name, id))
      const record = saved === undefined ? undefined : (JSON.parse(saved.toString('utf8')) as SavedHashState)
      // A state of another size was saved before a crash or a failed append: re-read instead.
      if (record?.offset === size) return { hash: await runningSha256(true, Buffer.from(record.state, 'base64')), offset: size }
    }
    const hash = await runningSha256(this.savesHash)
    for await (const chunk of await this.driver.read(uploadDataPath(this.name, id))) hash.update(chunk as Buffer)
    return { hash, offset: size }
  }

  private async finalDigest(id: string, algorithm: DigestAlgorithm, size: number): Promise<Digest> {
    if (algorithm === runningAlgorithm) {
      const running = await this.runningHash(id, size)
      this.state.hashes.delete(id)
      return `${algorithm}:${running.hash.peek()}` as Digest
    }
    const hash = createDigestHash(algorithm)
    for await (const chunk of await this.driver.read(uploadDataPath(this.name, id))) hash.update(chunk as Buffer)
    return digestOfHash(algorithm, hash)
  }

  private async discard(id: string, size = 0): Promise<void> {
    this.state.hashes.delete(id)
    // By known keys, never as a folder (a LIST on S3); the filesystem prunes the empty folder.
    await this.driver.delete(uploadDataPath(this.name, id), { fileOnly: true })
    if (this.savesHash && size > 0) await this.driver.delete(uploadHashStatePath(this.name, id), { fileOnly: true })
  }
}

function unknownUpload(id: string): RegistryError {
  return new RegistryError('BLOB_UPLOAD_UNKNOWN', undefined, { id: id.slice(0, 100) })
}
