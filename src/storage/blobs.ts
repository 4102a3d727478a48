import type { Digest } from '../core/digest.js'
import { RegistryError } from '../core/errors.js'
import { rangeToServe, type RangeOptions } from '../core/range.js'
import type { RepositoryName } from '../core/reference.js'
import type { BlobBody, BlobInfo, BlobRedirect, BlobService, Op, UploadService } from '../core/registry.js'
import type { BlobStore } from './blob-store.js'
import type { StorageDriver } from './driver/driver.js'
import type { MetadataCache } from './metadata-cache.js'
import type { RegistryIndexes } from './name-index.js'
import { layerLinkPath } from './paths.js'
import { RepositoryUploads, type UploadState } from './uploads.js'

/** Blobs of one repository: links into the global blob store. */
export class RepositoryBlobs implements BlobService {
  readonly uploads: UploadService

  constructor(
    private readonly name: RepositoryName,
    private readonly driver: StorageDriver,
    private readonly blobStore: BlobStore,
    uploadState: UploadState,
    private readonly metadata: MetadataCache,
    /** Where listing is costly (S3): a marker object says the repository exists. */
    private readonly indexes?: RegistryIndexes,
  ) {
    this.uploads = new RepositoryUploads(name, driver, blobStore, uploadState, (digest) => this.link(this.name, digest))
  }

  async stat(digest: Digest, _op?: Op): Promise<BlobInfo | undefined> {
    return this.statIn(this.name, digest)
  }

  async open(digest: Digest, options: RangeOptions & Op = {}): Promise<BlobBody | BlobRedirect> {
    const whole = options.range === undefined && options.rangeHeader === undefined
    if (whole && (options.wantBytes || !this.blobStore.redirects)) {
      // The size comes with the bytes: no stat of the blob first (on S3 a HeadObject, a round trip).
      const body = (await this.linked(this.name, digest)) ? await this.blobStore.readWhole(digest, options.signal) : undefined
      if (!body) throw new RegistryError('BLOB_UNKNOWN', undefined, { digest })
      return { kind: 'body', digest, size: body.size, stream: body.stream }
    }
    const info = await this.stat(digest)
    if (!info) throw new RegistryError('BLOB_UNKNOWN', undefined, { digest })
    const range = rangeToServe(info.size, options)
    // Ranges are served here: not every client sends its Range header again after a redirect.
    const url = range === undefined && !options.wantBytes ? await this.blobStore.redirectUrl(digest) : undefined
    if (url !== undefined) return { kind: 'redirect', digest, size: info.size, url }
    const stream = await this.blobStore.read(digest, range, options.signal)
    return range ? { kind: 'body', digest, size: info.size, range, stream } : { kind: 'body', digest, size: info.size, stream }
  }

  async mount(from: RepositoryName, digest: Digest, _op?: Op): Promise<BlobInfo | undefined> {
    const info = await this.statIn(from, digest)
    if (info) await this.link(this.name, digest)
    return info
  }

  async delete(digest: Digest, _op?: Op): Promise<void> {
    if (!(await this.driver.getContent(layerLinkPath(this.name, digest)))) {
      throw new RegistryError('BLOB_UNKNOWN', undefined, { digest })
    }
    await this.driver.delete(layerLinkPath(this.name, digest), { fileOnly: true })
    // Unlinking the last blob prunes empty folders, possibly the repository's own.
    this.metadata.repositories.forget(this.name)
  }

  private async linked(name: RepositoryName, digest: Digest): Promise<boolean> {
    return (await this.driver.getContent(layerLinkPath(name, digest))) !== undefined
  }

  private async statIn(name: RepositoryName, digest: Digest): Promise<BlobInfo | undefined> {
    if (!(await this.linked(name, digest))) return undefined
    const size = await this.blobStore.size(digest)
    return size === undefined ? undefined : { digest, size }
  }

  private async link(name: RepositoryName, digest: Digest): Promise<void> {
    await this.driver.putContent(layerLinkPath(name, digest), digest)
    await this.indexes?.markRepository(name)
    this.metadata.repositories.set(name, true)
  }
}
