// The storage-backed Registry: what was pushed (or cached by the mirror) on one StorageDriver.
import { LRUCache } from 'lru-cache'
import type { DeferredHashes } from '../core/digest.js'
import { compareLexically, paginate, type Page, type PageResult } from '../core/pagination.js'
import type { RepositoryName } from '../core/reference.js'
import type { Op, Registry, Repository } from '../core/registry.js'
import { BlobStore } from './blob-store.js'
import { RepositoryBlobs } from './blobs.js'
import type { StorageDriver } from './driver/driver.js'
import { KeyedLock } from './keyed-lock.js'
import { RepositoryManifests } from './manifests.js'
import { MetadataCache } from './metadata-cache.js'
import { RegistryIndexes } from './name-index.js'
import { uploadDataPath, uploadPath, uploadsPath } from './paths.js'
import { walkRepositories } from './repository-walk.js'
import { RepositoryTags } from './tags.js'
import { UploadState } from './uploads.js'
import type { UploadWatch } from './digesting-stream.js'

export interface LocalRegistryOptions {
  /** Bytes of manifest content kept in memory (content by digest never changes). */
  manifestCacheBytes?: number
  /**
   * Milliseconds tag, revision and repository-existence answers read from storage are reused
   * (this registry's own writes update them at once). 0 reads storage every time; default 5 s.
   */
  metadataTtlMs?: number
  /**
   * Keeps this registry's repositories under `repositories/<storagePrefix>/` (a `_` name no
   * pushed repository can have), sharing the blob store with the others on the same driver:
   * the mirror's cache is a second registry that stores each blob once with pushed content.
   */
  storagePrefix?: `_${string}`
  /** Whole-blob GETs answer with a URL of the store valid this many seconds (S3: presigned), not the bytes. */
  redirectSeconds?: number
  /** Threads that blobs put with `offThread` (a bulk import's) are hashed on. */
  hashes?: DeferredHashes
  /** Told when uploads start and end taking bytes in; not a bulk import's (serve steers V8's heap on it). */
  uploadWatch?: UploadWatch
}

/** Repository objects kept per registry (each a few small objects). */
const maxRepositoryObjects = 1024

export class LocalRegistry implements Registry {
  readonly blobStore: BlobStore
  private readonly uploadState = new UploadState(new KeyedLock())
  private readonly manifestCache: LRUCache<string, Buffer>
  private readonly metadata: MetadataCache
  private readonly storagePrefix: string
  /** Index objects instead of listings, where listing is costly (S3). */
  private readonly indexes: RegistryIndexes | undefined
  /**
   * Repositories by name: they hold no state of their own (all of it is in the shared stores and
   * caches), and building one per request was three objects plus their upload service each time.
   */
  private readonly repositories = new Map<string, Repository>()

  constructor(
    private readonly driver: StorageDriver,
    options: LocalRegistryOptions = {},
  ) {
    this.blobStore = new BlobStore(driver, {
      redirectSeconds: options.redirectSeconds,
      hashes: options.hashes,
      uploadWatch: options.uploadWatch,
    })
    this.storagePrefix = options.storagePrefix ?? ''
    this.indexes = driver.costlyLists ? new RegistryIndexes(driver, new KeyedLock(), this.storagePrefix) : undefined
    this.metadata = new MetadataCache({ ttlMs: options.metadataTtlMs ?? 5000 })
    this.manifestCache = new LRUCache<string, Buffer>({
      maxSize: Math.max(1, options.manifestCacheBytes ?? 64 * 1024 * 1024),
      sizeCalculation: (bytes) => Math.max(1, bytes.length),
    })
  }

  repository(name: RepositoryName): Repository {
    let repository = this.repositories.get(name)
    if (repository === undefined) {
      // Bounded: past the limit the map starts over (a rebuilt repository is as good as the old one).
      if (this.repositories.size >= maxRepositoryObjects) this.repositories.clear()
      // Storage classes see the prefixed name, so every path they build lands under the prefix.
      const stored = (this.storagePrefix ? `${this.storagePrefix}/${name}` : name) as RepositoryName
      const blobs = new RepositoryBlobs(stored, this.driver, this.blobStore, this.uploadState, this.metadata, this.indexes)
      const manifests = new RepositoryManifests(stored, this.driver, this.blobStore, blobs, this.manifestCache, this.metadata, this.indexes)
      const tags = new RepositoryTags(stored, this.driver, manifests, this.metadata, this.indexes)
      repository = Object.freeze({ name, blobs, manifests, tags })
      this.repositories.set(name, repository)
    }
    return repository
  }

  async catalog(page: Page, _op?: Op): Promise<PageResult> {
    const names: string[] = []
    const strip = this.storagePrefix ? this.storagePrefix.length + 1 : 0
    if (this.indexes) {
      const stored = await this.indexes.names.read(this.indexes.catalogPath)
      return paginate(stored.map((name) => name.slice(strip)).sort(compareLexically), page)
    }
    for await (const repo of walkRepositories(this.driver, this.storagePrefix)) {
      if (repo.internals.includes('_manifests')) names.push(repo.name.slice(strip))
    }
    return paginate(names.sort(compareLexically), page)
  }

  /**
   * Removes upload sessions that received no bytes since `olderThan`; returns how many. A session
   * in use (its lock held or awaited) is active whatever its age; the others are checked again
   * under their lock, so a request resuming one waits for the purge and then finds it gone,
   * rather than writing into a session being deleted.
   */
  async purgeUploads(olderThan: Date): Promise<number> {
    let purged = 0
    const locks = this.uploadState.locks
    for await (const repo of walkRepositories(this.driver, this.storagePrefix)) {
      if (!repo.internals.includes('_uploads')) continue
      const name = repo.name as RepositoryName
      for (const id of await this.driver.list(uploadsPath(name))) {
        if (locks.busy(id)) continue
        const removed = await locks.run(id, async () => {
          // No data file means a session broken by a crash: purge it too.
          const data = await this.driver.stat(uploadDataPath(name, id))
          if (data && data.modTime >= olderThan) return false
          this.uploadState.hashes.delete(id)
          await this.driver.delete(uploadPath(name, id))
          return true
        })
        if (removed) purged++
      }
    }
    return purged
  }
}
