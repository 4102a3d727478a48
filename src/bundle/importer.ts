// Pushes the images of a bundle (a file of any supported format, or an OCI layout folder) into a
// namespace of a registry, in one streaming pass with bounded disk and memory.
//
// Design. A compressed bundle cannot be seeked, and a docker save writes manifest.json last, so
// which image a blob belongs to is often unknown while the blob streams by. Rather than extract
// the bundle (disk as large as the bundle) or read it twice, every blob is uploaded as it passes,
// once per digest, into a staging repository of the namespace (`<namespace>/ferry-bundle-staging`):
// written to a temp file while hashed (spool.ts: at most 64 MiB plus the largest blob on disk, so
// the archive keeps streaming while up to --concurrency uploads run, and a failed upload can be
// sent again; uploads read the file as it is written, so several overlap the reading), checked
// against its digest, uploaded, deleted. Only small JSON documents
// (manifests, indexes, configs, index.json, manifest.json) stay in memory. Once the archive has
// ended, the images are known (plan.ts); each is pushed in order: every blob mounted from the
// staging repository (or from the repository a folder's blob was first uploaded to; a mount of
// a blob already there succeeds as well), or, with no copy yet, a HEAD in its repository
// (present: skipped) and an upload; then child manifests by digest,
// and the root manifest under its tag last. An image already tagged with the same digest is left
// alone. An image with a missing, corrupt or mismatching blob (or from an archive that could not
// be read to its end) is never tagged; the others are.
//
// The staging repository is emptied once every image landed (blob DELETEs: the registry unlinks
// them there only, and Ferry drops the empty repository); after a failure or a kill it keeps its
// blobs, so the rerun finds them there (a HEAD each) and sends only what is missing. A rerun after
// a complete run finds the blobs through the digest map instead: the images it lists are read
// first (a manifest GET each) and their blobs mounted from there, so it uploads no blob bytes.
import type { Readable } from 'node:stream'
import { digestBytes, type Digest } from '../core/digest.js'
import { bundleStagingRepository } from '../core/imports.js'
import { parseManifest } from '../core/manifest.js'
import { isRepositoryName } from '../core/reference.js'
import { Collector, type StreamSource } from './collector.js'
import type { BlobRecord, BundleContent } from './content.js'
import { Limiter } from './limiter.js'
import { renamePath, selected, type NameStrategy } from './naming.js'
import { planImages, withoutConflicts, type ImagePlan, type Platform } from './plan.js'
import type { ImageResult, PushEvent, PushReport, PushStats, StagingOutcome } from './results.js'
import { FatalSinkError, type BundleSink } from './sink.js'
import { Spool, defaultSpoolBudget } from './spool.js'

export const stagingRepository = bundleStagingRepository

export interface PushOptions {
  /** A bundle file or an OCI layout (or docker save) folder, or a bundle streaming in. */
  source: string | StreamSource
  /** Namespace inside the destination registry (`test-namespace`), '' for none. */
  namespace: string
  /** Absent: a dry run, which reads and checks the bundle and plans names without pushing. */
  sink?: BundleSink
  /** Blob uploads in flight at once. */
  concurrency: number
  /** Go on after an image failed (the default stops starting new images). */
  keepGoing: boolean
  /** Push only these platforms of multi-arch indexes. */
  platforms?: Platform[]
  /** How source paths become repository paths (default keep-path), and their most components. */
  nameStrategy?: NameStrategy
  maxDepth?: number
  /** Globs over image names: only images matching one of `include` (when given) and none of `exclude`. */
  include?: string[]
  exclude?: string[]
  /** Images an earlier run pushed (from its digest map): their blobs count as present, with that repository to mount from. */
  earlier?: Array<{ repository: string; digest: Digest }>
  spoolDir?: string
  spoolBudget?: number
  onEvent?: (event: PushEvent) => void
  signal?: AbortSignal
}

export class BundlePush {
  readonly stats: PushStats = {
    readBytes: 0,
    blobsPushed: 0,
    blobsSkipped: 0,
    blobsMounted: 0,
    bytesPushed: 0,
    spoolPeak: 0,
    imagesExcluded: 0,
    phase: 'reading',
  }
  readonly #options: PushOptions
  readonly #limiter: Limiter
  readonly #abort = new AbortController()
  readonly #signal: AbortSignal
  readonly #staging: string
  /** Per digest, the repository this run first uploaded it into (mount source for the others). */
  readonly #homes = new Map<Digest, Promise<string>>()
  readonly #ensured = new Map<string, Promise<void>>()
  /** Blobs this run uploaded into, or found in, the staging repository. */
  readonly #inStaging = new Set<Digest>()
  #content: BundleContent | undefined
  /** The failure that ended the run (credentials refused, destination unreachable). */
  #fatalReason: Error | undefined

  constructor(options: PushOptions) {
    this.#options = options
    this.#limiter = new Limiter(options.concurrency)
    this.#signal = options.signal ? AbortSignal.any([options.signal, this.#abort.signal]) : this.#abort.signal
    this.#staging = repositoryIn(options.namespace, stagingRepository)
  }

  async run(): Promise<PushReport> {
    await this.#recallEarlier()
    const spool = new Spool(this.#options.spoolBudget ?? defaultSpoolBudget, this.#options.spoolDir)
    let fatal: Error | undefined
    const collector = new Collector({
      spool,
      signal: this.#signal,
      onRead: (bytes) => {
        this.stats.readBytes = bytes
      },
      ...(this.#options.sink ? { stage: (blob) => this.#stage(blob), isStaged: (digest) => this.#isStaged(digest) } : {}),
      ...(this.#options.sink?.writeBlob ? { ingest: (blob) => this.#ingest(blob) } : {}),
    })
    try {
      await collector.read(this.#options.source)
    } catch (err) {
      fatal = this.#fatalReason ?? (err as Error)
    } finally {
      this.stats.spoolPeak = spool.peak
    }
    this.#content = collector.content
    if (fatal !== undefined) {
      // Uploads still running are of no use now; let them settle before the spool goes.
      this.#abort.abort(fatal)
      await collector.settled()
      await spool.close()
      this.stats.phase = 'done'
      return { images: [], stats: this.stats, fatal: fatal.message }
    }
    const planned = planImages(collector.content, this.#options.platforms ? { platforms: this.#options.platforms } : {})
    const plans = withoutConflicts(this.#select(planned))
    this.stats.imagesExcluded = planned.length - plans.length
    this.#options.onEvent?.({ type: 'read.done', bytes: this.stats.readBytes, images: plans.length })
    this.stats.phase = 'pushing'
    try {
      if (plans.length === 0) return { images: [], stats: this.stats, fatal: `${this.#label}: no images found` }
      const images = await this.#pushAll(plans)
      const report: PushReport = { images, stats: this.stats }
      if (this.#fatalReason !== undefined) report.fatal = this.#fatalReason.message
      await collector.settled()
      const staging = await this.#emptyStaging(images)
      if (staging !== undefined) report.staging = staging
      return report
    } finally {
      await collector.settled()
      this.stats.spoolPeak = spool.peak
      await spool.close()
      this.stats.phase = 'done'
    }
  }

  get #label(): string {
    const source = this.#options.source
    return typeof source === 'string' ? source : source.label
  }

  /**
   * The blobs of the images an earlier run pushed, by digest, with a repository holding each: a
   * rerun then mounts them instead of uploading them again, although the staging repository was
   * emptied. A few manifest GETs per image; what cannot be read is simply not known.
   */
  async #recallEarlier(): Promise<void> {
    const sink = this.#options.sink
    if (sink?.readManifest === undefined) return
    const read = async (repository: string, digest: Digest, depth: number): Promise<void> => {
      const found = await sink.readManifest!(repository, digest, this.#signal).catch(() => undefined)
      if (found === undefined || digestBytes(found.bytes) !== digest) return
      let parsed
      try {
        parsed = parseManifest(found.bytes, found.mediaType)
      } catch {
        return
      }
      for (const blob of parsed.blobs) if (!this.#homes.has(blob.digest)) this.#homes.set(blob.digest, Promise.resolve(repository))
      if (depth < 2) await Promise.all(parsed.manifests.map((child) => read(repository, child.digest, depth + 1)))
    }
    const pool = new Limiter(this.#options.concurrency)
    await Promise.all((this.#options.earlier ?? []).map((image) => pool.run(() => read(image.repository, image.digest, 0))))
  }

  /** --include/--exclude, then --name-strategy and --max-depth. An archive that broke is always reported. */
  #select(plans: ImagePlan[]): ImagePlan[] {
    const { include = [], exclude = [], nameStrategy = 'keep-path', maxDepth } = this.#options
    // Referrers go with the image they refer to: chosen and renamed as it is.
    const named = (plan: ImagePlan): boolean => plan.source !== undefined || plan.referrerOf !== undefined
    return plans
      .filter((plan) => (plan.path === '' && plan.problem !== undefined) || selected(plan.source ?? plan.referrerOf, include, exclude))
      .map((plan) => (!named(plan) || plan.path === '' ? plan : { ...plan, path: renamePath(plan.path, nameStrategy, maxDepth) }))
  }

  #fail(err: unknown): void {
    if (err instanceof FatalSinkError && this.#fatalReason === undefined) {
      this.#fatalReason = err
      this.#abort.abort(err)
    }
  }

  async #isStaged(digest: Digest): Promise<boolean> {
    if (this.#homes.has(digest)) {
      // Pushed by an earlier run: mounted from where it is.
      this.stats.blobsSkipped++
      return true
    }
    try {
      const present = await this.#limiter.run(() => this.#options.sink!.hasBlob(this.#staging, digest, this.#signal))
      if (present) {
        this.stats.blobsSkipped++
        this.#homes.set(digest, Promise.resolve(this.#staging))
        this.#inStaging.add(digest)
      }
      return present
    } catch (err) {
      this.#fail(err)
      throw err
    }
  }

  /** Uploads a blob that streams by into the staging repository. */
  async #stage(blob: { digest: Digest; size: number; origin: string; open: () => Readable }): Promise<void> {
    const sink = this.#options.sink!
    try {
      await this.#limiter.run(async () => {
        this.#signal.throwIfAborted()
        // Not asked again here: the collector asked isStaged just before reading it.
        this.#inStaging.add(blob.digest)
        await sink.putBlob(this.#staging, blob.digest, blob.size, blob.open, this.#signal)
        this.#pushed(blob.digest, blob.size)
      })
      this.#homes.set(blob.digest, Promise.resolve(this.#staging))
    } catch (err) {
      this.#fail(err)
      throw new Error(`${blob.origin}: upload failed: ${(err as Error).message}`, { cause: err })
    }
  }

  /** Stores a blob into the staging repository as it streams by (a sink that can take bytes once). */
  async #ingest(blob: { stream: Readable; size: number; expected: Digest | undefined; origin: string }): Promise<Digest> {
    try {
      this.#signal.throwIfAborted()
      const digest = await this.#options.sink!.writeBlob!(this.#staging, blob.stream, blob.size, blob.expected, this.#signal)
      if (blob.expected === undefined || digest === blob.expected) {
        this.#homes.set(digest, Promise.resolve(this.#staging))
        this.stats.blobsPushed++
        this.stats.bytesPushed += blob.size
      }
      return digest
    } catch (err) {
      this.#fail(err)
      throw new Error(`${blob.origin}: ${(err as Error).message}`, { cause: err })
    }
  }

  /**
   * Once every image landed, the staging repository is emptied again (on a registry that allows
   * deletes: Ferry and distribution unlink the blob only, the content stays with the images, and
   * Ferry drops the emptied repository). After a failure its blobs are kept for the rerun.
   */
  async #emptyStaging(images: ImageResult[]): Promise<StagingOutcome | undefined> {
    const sink = this.#options.sink
    if (sink === undefined || this.#inStaging.size === 0) return undefined
    const outcome: StagingOutcome = { repository: this.#staging, blobs: this.#inStaging.size, removed: 0 }
    if (this.#fatalReason !== undefined || images.some((i) => i.status !== 'pushed' && i.status !== 'unchanged')) {
      outcome.kept = 'some images did not land; a rerun reuses these blobs'
      return outcome
    }
    if (sink.deleteBlob === undefined) {
      outcome.kept = 'the destination cannot delete blobs'
      return outcome
    }
    for (const digest of this.#inStaging) {
      if (this.#signal.aborted) break
      if (!(await sink.deleteBlob(this.#staging, digest, this.#signal))) {
        outcome.kept = 'the registry refused to delete blobs (deletes disabled, or no delete permission)'
        break
      }
      outcome.removed++
    }
    return outcome
  }

  async #pushAll(plans: ImagePlan[]): Promise<ImageResult[]> {
    const results: ImageResult[] = plans.map((plan) => ({
      source: plan.source,
      archive: plan.archive,
      destination: destinationOf(this.#options.namespace, plan),
      digest: plan.digest === '' ? undefined : plan.digest,
      status: 'planned',
      ...(plan.problem !== undefined ? { error: plan.problem } : {}),
    }))
    if (this.#options.sink === undefined) {
      for (const result of results) if (result.error !== undefined) result.status = 'failed'
      return results
    }
    let stop = false
    const pool = new Limiter(Math.max(1, this.#options.concurrency))
    await Promise.all(
      plans.map((plan, i) =>
        pool.run(async () => {
          const result = results[i]!
          if (stop || this.#signal.aborted) {
            result.status = 'skipped'
            result.error ??= 'not attempted: an earlier image failed'
            return
          }
          await this.#pushImage(plan, result)
          if (result.status === 'failed' && !this.#options.keepGoing) stop = true
        }),
      ),
    )
    return results
  }

  async #pushImage(plan: ImagePlan, result: ImageResult): Promise<void> {
    const sink = this.#options.sink!
    const events = this.#options.onEvent
    const { destination } = result
    events?.({ type: 'image.start', source: plan.source, destination })
    const failed = (error: string): void => {
      result.status = 'failed'
      result.error = error
      events?.({ type: 'image.failed', source: plan.source, destination, error })
    }
    if (plan.problem !== undefined) return failed(plan.problem)
    const repo = repositoryIn(this.#options.namespace, plan.path)
    if (!isRepositoryName(repo)) return failed(`"${repo}" is not a valid repository name`)
    const what = plan.source ?? plan.digest
    try {
      const reference = plan.tag ?? plan.digest
      if ((await sink.resolveManifest(repo, reference, this.#signal)) === plan.digest) {
        result.status = 'unchanged'
        events?.({ type: 'image.done', source: plan.source, destination, digest: plan.digest, unchanged: true })
        return
      }
      await Promise.all(plan.blobs.map((blob) => this.#ensureBlob(repo, blob.digest)))
      for (const manifest of plan.manifests.slice(0, -1)) {
        if ((await sink.resolveManifest(repo, manifest.digest, this.#signal)) !== manifest.digest) {
          await sink.putManifest(repo, manifest.digest, manifest.bytes, manifest.mediaType, this.#signal)
        }
      }
      const root = plan.manifests.at(-1)!
      await sink.putManifest(repo, reference, root.bytes, root.mediaType, this.#signal)
      result.status = 'pushed'
      events?.({ type: 'image.done', source: plan.source, destination, digest: plan.digest, unchanged: false })
    } catch (err) {
      this.#fail(err)
      failed(`${what} (from ${plan.archive}): ${(err as Error).message}`)
    }
  }

  /** Makes `digest` present in `repo`: already there, mounted, or uploaded (once per run). */
  #ensureBlob(repo: string, digest: Digest): Promise<void> {
    const key = `${repo}\n${digest}`
    let ensured = this.#ensured.get(key)
    if (ensured === undefined) {
      ensured = this.#placeBlob(repo, digest)
      this.#ensured.set(key, ensured)
    }
    return ensured
  }

  async #placeBlob(repo: string, digest: Digest): Promise<void> {
    const sink = this.#options.sink!
    const record = this.#content!.blobs.get(digest)
    if (record === undefined) throw new Error(`blob ${digest} is missing from the bundle`)
    if (record.staged !== undefined) await record.staged
    const signal = this.#signal
    const home = this.#homes.get(digest)
    // A mount of a blob the repository has already succeeds too: no HEAD first.
    if (home === undefined && (await this.#limiter.run(() => sink.hasBlob(repo, digest, signal)))) {
      this.stats.blobsSkipped++
      return
    }
    if (home !== undefined) {
      const from = await home
      if (await this.#limiter.run(() => sink.mountBlob(repo, digest, from, signal))) {
        this.stats.blobsMounted++
        return
      }
      if (record.open === undefined)
        throw new Error(`the registry would not mount blob ${digest} from ${from}, and the bundle's copy has streamed by`)
      await this.#upload(repo, record)
      return
    }
    const upload = this.#upload(repo, record).then(() => repo)
    this.#homes.set(digest, upload)
    await upload
  }

  async #upload(repo: string, record: BlobRecord): Promise<void> {
    const open = record.open
    if (open === undefined) throw new Error(`blob ${record.digest} has no readable copy`)
    try {
      await this.#limiter.run(() => this.#options.sink!.putBlob(repo, record.digest, record.size, open, this.#signal))
    } catch (err) {
      if (err instanceof FatalSinkError) throw err
      throw new Error(`${record.origin}: ${(err as Error).message}`, { cause: err })
    }
    this.#pushed(record.digest, record.size)
  }

  #pushed(digest: Digest, size: number): void {
    this.stats.blobsPushed++
    this.stats.bytesPushed += size
    this.#options.onEvent?.({ type: 'blob.progress', digest, size, bytesPushed: this.stats.bytesPushed })
  }
}

export function repositoryIn(namespace: string, path: string): string {
  return namespace === '' ? path : `${namespace}/${path}`
}

function destinationOf(namespace: string, plan: ImagePlan): string {
  if (plan.path === '') return ''
  const repo = repositoryIn(namespace, plan.path)
  return plan.tag !== undefined ? `${repo}:${plan.tag}` : `${repo}@${plan.digest}`
}
