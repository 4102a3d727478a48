// Manifests of one repository. Bytes live in the global blob store (byte-exact, by digest);
// the repository holds a revision link carrying the media type and size, so HEAD and tag
// resolution never parse a manifest.
import type { LRUCache } from 'lru-cache'
import { digestAlgorithm, digestBytes, type Digest } from '../core/digest.js'
import { RegistryError } from '../core/errors.js'
import { maxManifestBytes, parseManifest, type Descriptor, type ParsedManifest } from '../core/manifest.js'
import type { RepositoryName } from '../core/reference.js'
import type { BlobService, ManifestPutOptions, ManifestPutResult, ManifestService, Op, StoredManifest } from '../core/registry.js'
import type { BlobStore } from './blob-store.js'
import type { StorageDriver } from './driver/driver.js'
import { revisionKey, tagKey, type MetadataCache } from './metadata-cache.js'
import type { RegistryIndexes } from './name-index.js'
import { referrerIndexPath, referrerLinkPath, referrersPath, revisionLinkPath, tagIndexPath, tagLinkPath, tagsPath } from './paths.js'

interface RevisionLink {
  mediaType: string
  size: number
}

export class RepositoryManifests implements ManifestService {
  constructor(
    private readonly name: RepositoryName,
    private readonly driver: StorageDriver,
    private readonly blobStore: BlobStore,
    private readonly blobs: BlobService,
    /** Manifest bytes by digest, shared by all repositories: content by digest never changes. */
    private readonly cache: LRUCache<string, Buffer>,
    private readonly metadata: MetadataCache,
    /** Where listing is costly (S3): tags, referrers and the catalog come from index objects. */
    private readonly indexes?: RegistryIndexes,
  ) {}

  stat(digest: Digest, op?: Op): Promise<Descriptor | undefined> {
    const key = revisionKey(this.name, digest)
    if (op?.fresh === true) this.metadata.revisions.forget(key)
    return this.metadata.revisions.get(key, () => this.readRevision(digest))
  }

  async get(digest: Digest, op?: Op): Promise<StoredManifest | undefined> {
    const descriptor = await this.stat(digest, op)
    if (!descriptor) return undefined
    let bytes = this.cache.get(digest)
    if (!bytes) {
      bytes = await this.blobStore.getContent(digest)
      if (!bytes) return undefined
      this.cache.set(digest, bytes)
    }
    return { descriptor, bytes }
  }

  async put(bytes: Buffer, contentType: string, options: ManifestPutOptions = {}): Promise<ManifestPutResult> {
    if (bytes.length > maxManifestBytes) {
      throw new RegistryError('MANIFEST_INVALID', 'manifest is too large', { limit: maxManifestBytes }, { status: 413 })
    }
    const digest = digestBytes(bytes, options.digest ? digestAlgorithm(options.digest) : 'sha256')
    if (options.digest && options.digest !== digest) {
      throw new RegistryError('DIGEST_INVALID', 'manifest digest does not match its content', { expected: options.digest, actual: digest })
    }
    const manifest = parseManifest(bytes, contentType)
    if (!options.trustReferences) await this.checkReferences(manifest, options)

    await this.blobStore.putContent(digest, bytes)
    const link: RevisionLink = { mediaType: manifest.mediaType, size: bytes.length }
    await this.driver.putContent(revisionLinkPath(this.name, digest), JSON.stringify(link))
    const descriptor: Descriptor = { mediaType: manifest.mediaType, digest, size: bytes.length }
    this.metadata.revisions.set(revisionKey(this.name, digest), descriptor)
    this.metadata.repositories.set(this.name, true)
    await this.indexes?.catalogue(this.name)
    if (manifest.subject) {
      await this.driver.putContent(
        referrerLinkPath(this.name, manifest.subject.digest, digest),
        JSON.stringify(referrerDescriptor(descriptor, manifest)),
      )
      await this.indexes?.names.add(referrerIndexPath(this.name, manifest.subject.digest), referrerEntry(digest))
      return { descriptor, subject: manifest.subject.digest }
    }
    return { descriptor }
  }

  async delete(digest: Digest, op?: Op): Promise<void> {
    const stored = await this.get(digest, op)
    if (!stored) throw new RegistryError('MANIFEST_UNKNOWN', undefined, { digest })
    await this.untagAll(digest)
    const subject = subjectOf(stored)
    if (subject) {
      await this.driver.delete(referrerLinkPath(this.name, subject, digest), { fileOnly: true })
      await this.indexes?.names.remove(referrerIndexPath(this.name, subject), referrerEntry(digest))
    }
    await this.driver.delete(revisionLinkPath(this.name, digest), { fileOnly: true })
    this.metadata.revisions.set(revisionKey(this.name, digest), undefined)
    // Deleting the last manifest prunes empty folders, possibly the repository's own.
    this.metadata.repositories.forget(this.name)
  }

  async referrers(digest: Digest, filter: { artifactType?: string } = {}, _op?: Op): Promise<Descriptor[]> {
    const dir = referrersPath(this.name, digest)
    const entries = this.indexes
      ? await this.indexes.names.read(referrerIndexPath(this.name, digest))
      : (await this.driver.list(dir)).filter((entry) => entry !== 'index')
    const found = await Promise.all(entries.map((entry) => this.driver.getContent(`${dir}/${entry}`)))
    return found
      .filter((content): content is Buffer => content !== undefined)
      .map((content) => JSON.parse(content.toString('utf8')) as Descriptor)
      .filter((descriptor) => filter.artifactType === undefined || descriptor.artifactType === filter.artifactType)
  }

  private async readRevision(digest: Digest): Promise<Descriptor | undefined> {
    const link = await this.driver.getContent(revisionLinkPath(this.name, digest))
    if (!link) return undefined
    const { mediaType, size } = JSON.parse(link.toString('utf8')) as RevisionLink
    return { mediaType, size, digest }
  }

  private async checkReferences(manifest: ParsedManifest, op: Op): Promise<void> {
    const [blobs, manifests] = await Promise.all([
      Promise.all(manifest.blobs.map(async (d) => ((await this.blobs.stat(d.digest, op)) ? undefined : d.digest))),
      Promise.all(manifest.manifests.map(async (d) => ((await this.stat(d.digest, op)) ? undefined : d.digest))),
    ])
    const missing = [...blobs, ...manifests].filter((d): d is Digest => d !== undefined)
    if (missing.length > 0) {
      throw new RegistryError('MANIFEST_BLOB_UNKNOWN', undefined, { missing: [...new Set(missing)] })
    }
  }

  // Tags pointing at a deleted manifest would dangle; CNCF distribution removes them too.
  private async untagAll(digest: Digest): Promise<void> {
    const tags = this.indexes ? await this.indexes.names.read(tagIndexPath(this.name)) : await this.driver.list(tagsPath(this.name))
    const removed: string[] = []
    for (const tag of tags) {
      const target = await this.driver.getContent(tagLinkPath(this.name, tag))
      if (target?.toString('utf8') !== digest) continue
      await this.driver.delete(tagLinkPath(this.name, tag), { fileOnly: true })
      this.metadata.tags.set(tagKey(this.name, tag), undefined)
      removed.push(tag)
    }
    if (removed.length > 0) await this.indexes?.names.remove(tagIndexPath(this.name), ...removed)
  }
}

/** The descriptor the referrers API lists for a manifest. */
function referrerDescriptor(descriptor: Descriptor, manifest: ParsedManifest): Descriptor {
  const result: Descriptor = { ...descriptor }
  if (manifest.artifactType !== undefined) result.artifactType = manifest.artifactType
  if (manifest.annotations !== undefined) result.annotations = manifest.annotations
  return result
}

/** A referrer's entry name under its subject (as in referrerLinkPath). */
function referrerEntry(referrer: Digest): string {
  return referrer.replace(':', '-')
}

function subjectOf(stored: StoredManifest): Digest | undefined {
  try {
    return parseManifest(stored.bytes, stored.descriptor.mediaType).subject?.digest
  } catch {
    return undefined // stored before validation tightened: nothing to unlink
  }
}
