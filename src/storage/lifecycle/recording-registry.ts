// A decorator of a storage-backed Registry that tells the lifecycle what requests do: manifest and
// tag pulls and pushes go to the access-time recorder (memory only), and blob reads, uploads,
// mounts and manifest pushes mark their blobs in use (BlobActivity), so eviction and GC leave
// them alone. Nothing here writes to storage.
import type { Readable } from 'node:stream'
import type { Digest } from '../../core/digest.js'
import { parseManifest } from '../../core/manifest.js'
import { digestBytes } from '../../core/digest.js'
import type { RangeOptions } from '../../core/range.js'
import type { RepositoryName } from '../../core/reference.js'
import type {
  AppendOptions,
  BlobBody,
  BlobInfo,
  BlobRedirect,
  BlobService,
  ManifestPutOptions,
  ManifestPutResult,
  ManifestService,
  Op,
  Registry,
  Repository,
  TagService,
  UploadService,
} from '../../core/registry.js'
import type { AccessTimeRecorder } from './access-times.js'
import type { BlobActivity } from './blob-activity.js'
import type { SpaceMonitor } from './space-monitor.js'

export interface RecordingServices {
  times: AccessTimeRecorder
  activity: BlobActivity
  /** Turns a full volume into a clear error and a known condition. */
  space: SpaceMonitor
  /** The registry's storage prefix (`_cache` for the mirror's cache), so times are kept by stored name. */
  storagePrefix?: string
  /**
   * A blob or manifest of `bytes` was stored in `repository` (stored name; the cache's quota
   * watches it); `fresh` when the store did not hold it before (its bytes are new on the volume).
   */
  stored?(bytes: number, repository: string, fresh: boolean): void
  /** Whether the store holds `digest` already (in any repository). */
  holds?(digest: Digest): Promise<boolean>
}

export class RecordingRegistry implements Registry {
  /**
   * The decorated repository per inner one: an inner registry that hands out the same repository
   * object for a name (LocalRegistry does) gets the same wrappers, not ~20 new closures a request.
   */
  private readonly wrapped = new WeakMap<Repository, Repository>()

  constructor(
    private readonly inner: Registry,
    private readonly services: RecordingServices,
  ) {}

  repository(name: RepositoryName, op?: Op): Repository {
    const repo = this.inner.repository(name, op)
    let recording = this.wrapped.get(repo)
    if (recording === undefined) {
      const prefix = this.services.storagePrefix
      const stored = prefix ? `${prefix}/${name}` : name
      const blobs = recordingBlobs(repo.blobs, stored, this.services)
      const manifests = recordingManifests(repo.manifests, stored, this.services)
      const tags = recordingTags(repo.tags, stored, this.services)
      recording = { ...repo, blobs, manifests, tags }
      this.wrapped.set(repo, recording)
    }
    return recording
  }

  catalog(...args: Parameters<Registry['catalog']>): ReturnType<Registry['catalog']> {
    return this.inner.catalog(...args)
  }
}

/** Resolves whether `digest` was new to the store, asked before its commit (a failed check counts it as not new). */
function freshness(services: RecordingServices, digest: Digest): Promise<boolean> {
  return services.holds
    ? services.holds(digest).then(
        (held) => !held,
        () => false,
      )
    : Promise.resolve(false)
}

function recordingBlobs(inner: BlobService, name: string, services: RecordingServices): BlobService {
  const { activity, space, stored } = services
  // A session a full volume cut short holds bytes nobody can finish: give the space back.
  const discard = (id: string) => () => inner.uploads.cancel(id).catch(() => {})
  const uploads: UploadService = {
    start: (op) => space.write(() => inner.uploads.start(op)),
    status: (id, op) => inner.uploads.status(id, op),
    append: (id, body, options) => space.write(() => inner.uploads.append(id, body, options), discard(id)),
    complete: async (id: string, digest: Digest, body?: Readable, options?: AppendOptions) => {
      // A fill streaming on past a full volume: the condition starts now, not when its body ends.
      const onFull = options?.onStorageFull
      const told = onFull && {
        ...options,
        onStorageFull: (err: Error) => {
          space.report(err)
          onFull(err)
        },
      }
      const fresh = freshness(services, digest)
      const info = await activity.using(
        digest,
        () => space.write(() => inner.uploads.complete(id, digest, body, told || options), discard(id)),
        true,
      )
      stored?.(info.size, name, await fresh)
      return info
    },
    cancel: (id, op) => inner.uploads.cancel(id, op),
    read: (id, range, op) => inner.uploads.read(id, range, op),
  }
  // A monolithic push written straight to its content address (S3) has no session to discard.
  const put = inner.uploads.put?.bind(inner.uploads)
  if (put !== undefined) {
    uploads.put = async (digest: Digest, body: Readable, options?: AppendOptions) => {
      const fresh = freshness(services, digest)
      const info = await activity.using(digest, () => space.write(() => put(digest, body, options)), true)
      stored?.(info.size, name, await fresh)
      return info
    }
  }
  return {
    uploads,
    stat: (digest, op) => inner.stat(digest, op),
    async open(digest: Digest, options?: RangeOptions & Op): Promise<BlobBody | BlobRedirect> {
      const end = await activity.begin(digest)
      try {
        const body = await inner.open(digest, options)
        // In use until the stream is done with the file (a redirect leaves at once).
        if (body.kind === 'body') body.stream.once('close', end)
        else end()
        return body
      } catch (err) {
        end()
        throw err
      }
    },
    mount: (from, digest, op): Promise<BlobInfo | undefined> =>
      activity.using(digest, () => space.write(() => inner.mount(from, digest, op)), true),
    delete: (digest, op) => inner.delete(digest, op),
  }
}

function recordingManifests(inner: ManifestService, stored: string, services: RecordingServices): ManifestService {
  const { times, activity, space } = services
  return {
    stat: (digest, op) => inner.stat(digest, op),
    async get(digest, op) {
      const found = await inner.get(digest, op)
      if (found && !op?.listing) times.pulled(stored, digest)
      return found
    },
    async put(bytes: Buffer, contentType: string, options?: ManifestPutOptions): Promise<ManifestPutResult> {
      // The blobs it references are being linked: no sweep may take them from under the push.
      const ends = await Promise.all(referencedBy(bytes, contentType).map((digest) => activity.begin(digest, true)))
      try {
        const fresh = services.holds ? freshness(services, digestOf(bytes)) : undefined
        const result = await space.write(() => inner.put(bytes, contentType, options))
        times.pushed(stored, result.descriptor.digest)
        if (fresh) services.stored?.(bytes.length, stored, await fresh)
        return result
      } finally {
        for (const end of ends) end()
      }
    },
    delete: (digest, op) => inner.delete(digest, op),
    referrers: (digest, filter, op) => inner.referrers(digest, filter, op),
  }
}

function recordingTags(inner: TagService, stored: string, { times, space }: RecordingServices): TagService {
  return {
    async resolve(tag, op) {
      const found = await inner.resolve(tag, op)
      if (found && !op?.listing) times.pulled(stored, found.digest, tag)
      return found
    },
    async tag(tag, digest, op) {
      await space.write(() => inner.tag(tag, digest, op))
      times.pushed(stored, digest, tag)
    },
    untag: (tag, op) => inner.untag(tag, op),
    list: (page, op) => inner.list(page, op),
  }
}

/** A manifest's own digest, as it is stored (sha256 of its bytes). */
function digestOf(bytes: Buffer): Digest {
  return digestBytes(bytes, 'sha256')
}

function referencedBy(bytes: Buffer, contentType: string): Digest[] {
  try {
    const manifest = parseManifest(bytes, contentType)
    return [...new Set([...manifest.blobs, ...manifest.manifests].map((d) => d.digest))]
  } catch {
    return [] // the put itself reports what is wrong with it
  }
}
