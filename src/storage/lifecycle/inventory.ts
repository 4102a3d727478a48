// What is stored, read by walking the layout (a background job's work, never a request's): every
// repository (pushed, and cached under `_cache/<upstream>/...`) with its manifests, what each
// references, its tags and blob links; and every blob in the store with its size and age.
import { tryParseDigest, type Digest } from '../../core/digest.js'
import { parseManifest } from '../../core/manifest.js'
import type { RepositoryName } from '../../core/reference.js'
import type { StorageDriver } from '../driver/driver.js'
import { blobDataPath, layerLinkPath, manifestsPath, repositoryPath, revisionLinkPath, tagLinkPath, tagsPath } from '../paths.js'
import { walkRepositories } from '../repository-walk.js'

export const cachePrefix = '_cache'

export interface ManifestEntry {
  digest: Digest
  size: number
  mediaType: string
  /** Config and layers. */
  blobs: Digest[]
  /** Child manifests of an index. */
  children: Digest[]
  subject?: Digest
  /** False when its bytes are missing or do not parse: it references nothing we know of. */
  readable: boolean
}

export interface RepositoryEntry {
  /** The stored name: `_cache/<upstream>/<repository>` for cached content. */
  name: string
  /** The upstream a cached repository belongs to; undefined for pushed content. */
  upstream: string | undefined
  manifests: Map<Digest, ManifestEntry>
  tags: Map<string, Digest>
  layers: Set<Digest>
}

export interface BlobEntry {
  digest: Digest
  size: number
  modTime: Date
}

export interface Inventory {
  repositories: RepositoryEntry[]
  blobs: Map<Digest, BlobEntry>
}

export function upstreamOf(stored: string): string | undefined {
  if (!stored.startsWith(`${cachePrefix}/`)) return undefined
  return stored.slice(cachePrefix.length + 1).split('/')[0]
}

export async function takeInventory(driver: StorageDriver): Promise<Inventory> {
  const repositories: RepositoryEntry[] = []
  for (const prefix of ['', cachePrefix]) {
    for await (const walked of walkRepositories(driver, prefix)) {
      if (walked.name === cachePrefix) continue
      repositories.push(await readRepository(driver, walked.name as RepositoryName, walked.internals))
    }
  }
  return { repositories, blobs: await listBlobs(driver) }
}

export async function readRepository(driver: StorageDriver, name: RepositoryName, internals?: string[]): Promise<RepositoryEntry> {
  const inside = internals ?? (await driver.list(repositoryPath(name)))
  const entry: RepositoryEntry = { name, upstream: upstreamOf(name), manifests: new Map(), tags: new Map(), layers: new Set() }
  if (inside.includes('_manifests')) {
    for (const digest of await listDigests(driver, `${manifestsPath(name)}/revisions`)) {
      entry.manifests.set(digest, await readManifest(driver, name, digest))
    }
    for (const tag of await driver.list(tagsPath(name))) {
      const link = await driver.getContent(tagLinkPath(name, tag))
      const digest = link ? tryParseDigest(link.toString('utf8')) : undefined
      if (digest) entry.tags.set(tag, digest)
    }
  }
  if (inside.includes('_layers')) {
    for (const digest of await listDigests(driver, `${repositoryPath(name)}/_layers`)) entry.layers.add(digest)
  }
  return entry
}

/** `<dir>/<alg>/<hex>` folders as digests. */
async function listDigests(driver: StorageDriver, dir: string): Promise<Digest[]> {
  const found: Digest[] = []
  for (const algorithm of await driver.list(dir)) {
    for (const hex of await driver.list(`${dir}/${algorithm}`)) {
      const digest = tryParseDigest(`${algorithm}:${hex}`)
      if (digest) found.push(digest)
    }
  }
  return found
}

async function readManifest(driver: StorageDriver, name: RepositoryName, digest: Digest): Promise<ManifestEntry> {
  const link = await driver.getContent(revisionLinkPath(name, digest))
  let mediaType = ''
  let size = 0
  try {
    const parsed = JSON.parse(link?.toString('utf8') ?? '{}') as { mediaType?: string; size?: number }
    mediaType = parsed.mediaType ?? ''
    size = parsed.size ?? 0
  } catch {
    // an unreadable link still names a manifest that exists
  }
  const entry: ManifestEntry = { digest, size, mediaType, blobs: [], children: [], readable: false }
  const bytes = await driver.getContent(blobDataPath(digest))
  if (!bytes) return entry
  try {
    const manifest = parseManifest(bytes, mediaType)
    entry.blobs = manifest.blobs.map((d) => d.digest)
    entry.children = manifest.manifests.map((d) => d.digest)
    if (manifest.subject) entry.subject = manifest.subject.digest
    entry.readable = true
  } catch {
    // stored bytes that no longer parse reference nothing
  }
  return entry
}

/** Every blob in the store (`blobs/<alg>/<xx>/<hex>/data`). */
export async function listBlobs(driver: StorageDriver): Promise<Map<Digest, BlobEntry>> {
  const blobs = new Map<Digest, BlobEntry>()
  for (const algorithm of await driver.list('blobs')) {
    for (const shard of await driver.list(`blobs/${algorithm}`)) {
      for (const hex of await driver.list(`blobs/${algorithm}/${shard}`)) {
        const digest = tryParseDigest(`${algorithm}:${hex}`)
        if (!digest) continue
        const info = await driver.stat(blobDataPath(digest))
        if (info && !info.isDirectory) blobs.set(digest, { digest, size: info.size, modTime: info.modTime })
      }
    }
  }
  return blobs
}

/** The blob link path of a repository by stored name (for sweeping links of evicted content). */
export function storedLayerLink(name: string, digest: Digest): string {
  return layerLinkPath(name as RepositoryName, digest)
}
