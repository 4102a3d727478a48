import { RegistryError } from '../core/errors.js'
import { tryParseDigest, type Digest } from '../core/digest.js'
import type { Descriptor } from '../core/manifest.js'
import { compareLexically, paginate, type Page, type PageResult } from '../core/pagination.js'
import type { RepositoryName } from '../core/reference.js'
import type { ManifestService, Op, TagService } from '../core/registry.js'
import type { StorageDriver } from './driver/driver.js'
import { repositoryPath, tagLinkPath, tagPath, tagsPath } from './paths.js'

export class RepositoryTags implements TagService {
  constructor(
    private readonly name: RepositoryName,
    private readonly driver: StorageDriver,
    private readonly manifests: ManifestService,
  ) {}

  async resolve(tag: string, op?: Op): Promise<Descriptor | undefined> {
    const link = await this.driver.getContent(tagLinkPath(this.name, tag))
    const digest = link ? tryParseDigest(link.toString('utf8')) : undefined
    return digest ? this.manifests.stat(digest, op) : undefined
  }

  async tag(tag: string, digest: Digest, _op?: Op): Promise<void> {
    await this.driver.putContent(tagLinkPath(this.name, tag), digest)
  }

  async untag(tag: string, _op?: Op): Promise<void> {
    if (!(await this.driver.getContent(tagLinkPath(this.name, tag)))) {
      throw new RegistryError('MANIFEST_UNKNOWN', 'tag unknown', { tag })
    }
    await this.driver.delete(tagPath(this.name, tag))
  }

  async list(page: Page, _op?: Op): Promise<PageResult | undefined> {
    // The repository exists while it holds manifests or blobs: deleting its last manifest leaves
    // an empty list, not an unknown name (the conformance suite lists tags right after that).
    const entries = await this.driver.list(repositoryPath(this.name))
    if (!entries.includes('_manifests') && !entries.includes('_layers')) return undefined
    const tags = (await this.driver.list(tagsPath(this.name))).sort(compareLexically)
    return paginate(tags, page)
  }
}
