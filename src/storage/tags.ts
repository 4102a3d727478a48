import { RegistryError } from '../core/errors.js'
import { tryParseDigest, type Digest } from '../core/digest.js'
import type { Descriptor } from '../core/manifest.js'
import { compareLexically, paginate, type Page, type PageResult } from '../core/pagination.js'
import type { RepositoryName } from '../core/reference.js'
import type { ManifestService, Op, TagService } from '../core/registry.js'
import type { StorageDriver } from './driver/driver.js'
import { tagKey, type MetadataCache } from './metadata-cache.js'
import type { RegistryIndexes } from './name-index.js'
import { repositoryPath, tagIndexPath, tagLinkPath, tagsPath } from './paths.js'

export class RepositoryTags implements TagService {
  constructor(
    private readonly name: RepositoryName,
    private readonly driver: StorageDriver,
    private readonly manifests: ManifestService,
    private readonly metadata: MetadataCache,
    /** Where listing is costly (S3): the tag list and existence come from index objects. */
    private readonly indexes?: RegistryIndexes,
  ) {}

  async resolve(tag: string, op?: Op): Promise<Descriptor | undefined> {
    // Fresh: another replica may have written the tag within the TTL (a leased cold tag).
    if (op?.fresh === true) this.metadata.tags.forget(tagKey(this.name, tag))
    const digest = await this.metadata.tags.get(tagKey(this.name, tag), () => this.readLink(tag))
    return digest ? this.manifests.stat(digest, op) : undefined
  }

  async tag(tag: string, digest: Digest, _op?: Op): Promise<void> {
    await this.driver.putContent(tagLinkPath(this.name, tag), digest)
    this.metadata.tags.set(tagKey(this.name, tag), digest)
    await this.indexes?.names.add(tagIndexPath(this.name), tag)
  }

  async untag(tag: string, _op?: Op): Promise<void> {
    // Writes read storage itself: another replica may have changed the tag within the TTL.
    if (!(await this.readLink(tag))) {
      this.metadata.tags.set(tagKey(this.name, tag), undefined)
      throw new RegistryError('MANIFEST_UNKNOWN', 'tag unknown', { tag })
    }
    // The link by its key (the filesystem prunes the emptied folder): never a folder delete, a LIST on S3.
    await this.driver.delete(tagLinkPath(this.name, tag), { fileOnly: true })
    this.metadata.tags.set(tagKey(this.name, tag), undefined)
    await this.indexes?.names.remove(tagIndexPath(this.name), tag)
    // Deleting the last entry prunes empty folders, possibly the repository's own.
    this.metadata.repositories.forget(this.name)
  }

  async list(page: Page, _op?: Op): Promise<PageResult | undefined> {
    if (!(await this.exists())) return undefined
    if (page.n === 0) return { items: [] } // "does it exist?" (the mirror asks it on every request)
    const stored = this.indexes ? await this.indexes.names.read(tagIndexPath(this.name)) : await this.driver.list(tagsPath(this.name))
    const tags = stored.sort(compareLexically)
    return paginate(tags, page)
  }

  // The repository exists while it holds manifests or blobs: deleting its last manifest leaves
  // an empty list, not an unknown name (the conformance suite lists tags right after that).
  private exists(): Promise<true | undefined> {
    return this.metadata.repositories.get(this.name, async () => {
      if (this.indexes) return (await this.indexes.repositoryExists(this.name)) ? true : undefined
      const entries = await this.driver.list(repositoryPath(this.name))
      return entries.includes('_manifests') || entries.includes('_layers') ? true : undefined
    })
  }

  private async readLink(tag: string): Promise<Digest | undefined> {
    const link = await this.driver.getContent(tagLinkPath(this.name, tag))
    return link ? tryParseDigest(link.toString('utf8')) : undefined
  }
}
