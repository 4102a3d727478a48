// Manifests of a mirrored repository. Content by digest never changes, so once fetched it is
// served from the cache for good; a miss fetches once however many clients ask at the same time.
import { tryParseDigest, type Digest } from '../core/digest.js'
import { isRegistryError, RegistryError } from '../core/errors.js'
import { parseManifest, type Descriptor } from '../core/manifest.js'
import { manifestMediaTypes } from '../core/media-types.js'
import type { BlobService, ManifestPutOptions, ManifestPutResult, ManifestService, Op, StoredManifest } from '../core/registry.js'
import { isUpstreamFailure } from '../upstream/upstream.js'
import { adoptBlobs, missingLocally } from './blob-adoption.js'
import type { MirrorBlobs } from './mirror-blobs.js'
import type { MirrorContext } from './mirror-context.js'
import type { MirrorTarget } from './mirror-target.js'
import { leasedFetch } from './leased-fetch.js'

/** By digest any representation is the right one: ask for every manifest type. */
export const everyManifestType: readonly string[] = [...manifestMediaTypes, '*/*']

export class MirrorManifests implements ManifestService {
  constructor(
    private readonly local: ManifestService,
    /** This repository's blobs through the mirror, and its local blobs. */
    private readonly blobs: MirrorBlobs,
    private readonly localBlobs: BlobService,
    private readonly target: MirrorTarget,
    private readonly context: MirrorContext,
  ) {}

  /** Like a blob HEAD, an upstream that cannot answer means "not here" (pushers HEAD first). */
  async stat(digest: Digest, op?: Op): Promise<Descriptor | undefined> {
    const local = await this.local.stat(digest, op)
    if (local || (await this.target.pushed())) return local
    const found = await this.cached(digest, op)
    if (found) return found
    try {
      return await this.fetch(digest)
    } catch (err) {
      if (isUpstreamFailure(err)) return undefined
      throw err
    }
  }

  async get(digest: Digest, op?: Op): Promise<StoredManifest | undefined> {
    const local = await this.local.get(digest, op)
    if (local || (await this.target.pushed())) return local
    if (!(await this.cached(digest, op)) && !(await this.fetch(digest))) throw this.unknownUpstream({ digest })
    return this.target.cache.manifests.get(digest, op)
  }

  /**
   * The upstream has no such manifest: MANIFEST_UNKNOWN naming it and the repository asked there,
   * which routing may have changed (`pause?ns=docker.io` is `library/pause` at docker.io).
   */
  unknownUpstream(reference: { tag: string } | { digest: Digest }): RegistryError {
    return new RegistryError('MANIFEST_UNKNOWN', undefined, {
      ...reference,
      upstream: this.target.upstream.name,
      upstreamRepository: this.target.repository,
    })
  }

  async put(bytes: Buffer, contentType: string, options?: ManifestPutOptions): Promise<ManifestPutResult> {
    try {
      return await this.local.put(bytes, contentType, options)
    } catch (err) {
      if (!(isRegistryError(err) && err.code === 'MANIFEST_BLOB_UNKNOWN')) throw err
      // Our blob HEADs answer from the upstream, so a client seeding a mirrored name skips the
      // blobs the upstream has: bring those into the repository, then store the manifest.
      const blobs = new Set(parseManifest(bytes, contentType).blobs.map((d) => d.digest))
      const missing = missingOf(err) ?? (await missingLocally([...blobs], this.localBlobs))
      // A missing child manifest is not the upstream's to give: nothing to adopt would help.
      if (missing.some((digest) => !blobs.has(digest))) throw err
      await adoptBlobs(missing, this.blobs, this.localBlobs, this.context.adoption)
      return this.local.put(bytes, contentType, options)
    }
  }

  delete(digest: Digest, op?: Op): Promise<void> {
    return this.local.delete(digest, op)
  }

  async referrers(digest: Digest, filter?: { artifactType?: string }, op?: Op): Promise<Descriptor[]> {
    const [local, cached] = await Promise.all([
      this.local.referrers(digest, filter, op),
      this.target.cache.manifests.referrers(digest, filter, op),
    ])
    const seen = new Set(local.map((d) => d.digest))
    return [...local, ...cached.filter((d) => !seen.has(d.digest))]
  }

  /**
   * Fetches a manifest (by digest or tag) from the upstream into the cache, coalescing
   * concurrent fetches of the same reference. undefined when the upstream does not have it.
   */
  fetchIntoCache(reference: string, accept: readonly string[]): Promise<Descriptor | undefined> {
    const key = `${this.target.cache.name}@${reference}|${accept.join(',')}`
    return this.context.manifestFetches.run(
      key,
      async () => {
        this.context.metrics.cacheLookups.inc({ kind: 'manifest', result: 'miss' })
        const fetch = async (): Promise<Descriptor | undefined> => {
          // Shared work: no client's signal may cancel it.
          const manifest = await this.target.upstream.getManifest(this.target.repository, reference, { accept })
          if (!manifest) return undefined
          await this.target.cache.manifests.put(manifest.bytes, manifest.mediaType, { digest: manifest.digest, trustReferences: true })
          return { mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.size }
        }
        // Replicas on one storage fetch a manifest by digest once: one holds its lease, the others find it in the cache.
        const coordinator = this.context.coordinator
        const digest = tryParseDigest(reference)
        if (!coordinator?.shared || !digest) return fetch()
        return leasedFetch(
          coordinator,
          `manifest:${this.target.cache.name}@${digest}`,
          () => this.target.cache.manifests.stat(digest, { fresh: true }),
          fetch,
        )
      },
      () => this.context.metrics.coalescedWaiters.inc({ kind: 'manifest' }),
    )
  }

  private async cached(digest: Digest, op?: Op): Promise<Descriptor | undefined> {
    const found = await this.target.cache.manifests.stat(digest, op)
    if (found) this.context.metrics.cacheLookups.inc({ kind: 'manifest', result: 'hit' })
    return found
  }

  private fetch(digest: Digest): Promise<Descriptor | undefined> {
    return this.fetchIntoCache(digest, everyManifestType)
  }
}

/** The digests a MANIFEST_BLOB_UNKNOWN from storage names as missing, if it lists them. */
function missingOf(err: RegistryError): Digest[] | undefined {
  const missing = typeof err.detail === 'object' ? err.detail.missing : undefined
  return Array.isArray(missing) && missing.every((d) => typeof d === 'string') ? (missing as Digest[]) : undefined
}
