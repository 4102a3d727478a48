// Pushes the images of a bundle (a file of any supported format, or an OCI layout folder) into a
// namespace of a registry, in one streaming pass with bounded disk and memory.
//
// Design. A compressed bundle cannot be seeked, and a docker save writes manifest.json last, so
// which image a blob belongs to is often unknown while the blob streams by. Rather than extract
// the bundle (disk as large as the bundle), every blob is uploaded as it passes, once per digest,
// into a staging repository of the namespace (staging.ts). A blob the bundle names by digest (OCI
// layouts, Docker 25+ saves, Zarf, Hauler) streams straight from the decompressor into one PUT
// (the sink's writeBlob): no disk, one copy, the registry checks the digest. Its bytes are gone
// once sent, so a PUT that fails is not retried in place: once the archive has ended, the bundle
// file is read a second time and only those blobs are sent, through the spool (#readAgain). A
// layer named by its path (a legacy docker save) needs its digest before its PUT: it is written
// to a temp file while hashed (spool.ts: at most 64 MiB plus the largest blob on disk; uploads
// read the file as it is written and a failed one is sent again), uploaded, deleted. Only small
// JSON documents (manifests, indexes, configs, index.json, manifest.json) stay in memory. A
// folder, or a plain tar file (read by position, tar-file.ts), needs none of this: its blobs are
// uploaded from where they lie once their image is pushed.
// Once the archive has ended, the images are known (plan.ts); each is pushed in order
// (image-pusher.ts): blobs mounted from the staging repository, then its manifests, the tag last. An image with a missing, corrupt or mismatching blob (or from an
// archive that could not be read to its end) is never tagged; the others are.
//
// The staging repository is emptied once every image landed and kept after a failure, so a rerun
// sends only what is missing. A rerun after a complete run finds the blobs through the digest map
// instead (recall.ts), so it uploads no blob bytes either.
import { setMaxListeners } from 'node:events'
import type { Digest } from '../core/digest.js'
import { Collector, type StreamSource } from './collector.js'
import { ImagePusher } from './image-pusher.js'
import type { LayerCompression } from './layer-compression.js'
import { Limiter } from './limiter.js'
import { renamePath, selected, type NameStrategy } from './naming.js'
import { planImages, withoutConflicts, type ImagePlan, type Platform } from './plan.js'
import { repositoryIn, type PushContext } from './push-context.js'
import { recallEarlier, type EarlierImage } from './recall.js'
import { initialPushStats, type ImageProgress, type ImageResult, type PushEvent, type PushReport, type PushStats } from './results.js'
import { FatalSinkError, type BundleSink } from './sink.js'
import { Spool, defaultSpoolBudget, removeOrphanSpools } from './spool.js'
import { Staging } from './staging.js'

export { stagingRepository } from './staging.js'
export { repositoryIn } from './push-context.js'

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
  /** Compress the plain layers of legacy docker saves on the way (default none: pushed as they are). */
  layerCompression?: LayerCompression
  /** Images an earlier run pushed (from its digest map): their blobs count as present, with that repository to mount from. */
  earlier?: EarlierImage[]
  spoolDir?: string
  spoolBudget?: number
  onEvent?: (event: PushEvent) => void
  signal?: AbortSignal
}

export class BundlePush {
  readonly stats: PushStats = initialPushStats()
  /** One per image once the bundle has been read, in the order of the report. */
  readonly images: ImageProgress[] = []
  readonly #options: PushOptions
  readonly #abort = new AbortController()
  /** Shared with the parts; its sink is absent in a dry run, which never reaches them. */
  readonly #context: PushContext
  readonly #staging: Staging
  /** The failure that ended the run (credentials refused, destination unreachable). */
  #fatalReason: Error | undefined

  constructor(options: PushOptions) {
    this.#options = options
    const signal = options.signal ? AbortSignal.any([options.signal, this.#abort.signal]) : this.#abort.signal
    // Every request in flight listens on it (up to --concurrency uploads, each with its own
    // requests and stall watch, plus the reader): more than Node's default of 10 is normal here.
    setMaxListeners(16 + 4 * Math.max(1, options.concurrency), signal)
    this.#context = {
      sink: options.sink!,
      stats: this.stats,
      limiter: new Limiter(options.concurrency),
      signal,
      homes: new Map<Digest, Promise<string>>(),
      fail: (err) => this.#fail(err),
      onEvent: options.onEvent,
    }
    this.#staging = new Staging(this.#context, options.namespace)
  }

  async run(): Promise<PushReport> {
    if (this.#options.sink !== undefined) await recallEarlier(this.#context, this.#options.earlier ?? [], this.#options.concurrency)
    await removeOrphanSpools(this.#options.spoolDir)
    const spool = new Spool(this.#options.spoolBudget ?? defaultSpoolBudget, this.#options.spoolDir)
    let fatal: Error | undefined
    const staging = this.#staging
    const { layerCompression = 'none' } = this.#options
    const collector = new Collector({
      spool,
      ...(layerCompression !== 'none' ? { layerCompression } : {}),
      signal: this.#context.signal,
      onRead: (bytes) => {
        this.stats.readBytes = bytes
      },
      ...(this.#options.sink ? { stage: (blob) => staging.upload(blob), isStaged: (digest) => staging.has(digest) } : {}),
      ...(this.#options.sink?.writeBlob ? { ingest: (blob) => staging.ingest(blob) } : {}),
      ...(this.#options.sink?.writeBlobNeedsDigest === true ? { ingestNamedOnly: true } : {}),
    })
    try {
      await collector.read(this.#options.source)
      await this.#readAgain(spool)
    } catch (err) {
      fatal = this.#fatalReason ?? (err as Error)
    } finally {
      this.stats.spoolPeak = spool.peak
    }
    if (fatal !== undefined) {
      // Uploads still running are of no use now; let them settle before the spool goes.
      this.#abort.abort(fatal)
      await collector.settled()
      await staging.settled()
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
      const images = await this.#pushAll(plans, new ImagePusher(this.#context, collector.content, this.#options.namespace))
      const report: PushReport = { images, stats: this.stats }
      if (this.#fatalReason !== undefined) report.fatal = this.#fatalReason.message
      await collector.settled()
      await staging.settled()
      const outcome = this.#options.sink ? await staging.empty(images, this.#fatalReason !== undefined) : undefined
      if (outcome !== undefined) report.staging = outcome
      return report
    } finally {
      await collector.settled()
      await staging.settled()
      this.stats.spoolPeak = spool.peak
      await spool.close()
      this.stats.phase = 'done'
    }
  }

  /**
   * Sends the blobs whose streamed upload failed (staging.replays) from a second reading of the
   * bundle file, through the spool, whose uploads are retried. Only those blobs are written; the
   * rest of the bundle is read and dropped. A bundle that streamed in cannot be read again: the
   * images of those blobs fail, and a rerun sends them.
   */
  async #readAgain(spool: Spool): Promise<void> {
    const staging = this.#staging
    await staging.settled()
    const wanted = staging.replays
    const source = this.#options.source
    if (wanted.size === 0 || typeof source !== 'string') return
    this.#options.onEvent?.({ type: 'read.again', blobs: wanted.size })
    const again = new Collector({
      spool,
      signal: this.#context.signal,
      stage: (blob) => staging.replay(blob),
      isStaged: async (digest) => !wanted.has(digest),
    })
    try {
      await again.read(source)
    } finally {
      await again.settled()
    }
  }

  get #label(): string {
    const source = this.#options.source
    return typeof source === 'string' ? source : source.label
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

  async #pushAll(plans: ImagePlan[], pusher: ImagePusher): Promise<ImageResult[]> {
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
    for (const [i, plan] of plans.entries()) {
      const bytesTotal = plan.blobs.reduce((sum, blob) => sum + blob.size, 0)
      this.images.push({ name: plan.source ?? (results[i]!.destination || plan.archive), state: 'waiting', bytesDone: 0, bytesTotal })
    }
    let stop = false
    const pool = new Limiter(Math.max(1, this.#options.concurrency))
    await Promise.all(
      plans.map((plan, i) =>
        pool.run(async () => {
          const result = results[i]!
          const progress = this.images[i]!
          if (stop || this.#context.signal.aborted) {
            result.status = 'skipped'
            progress.state = 'skipped'
            result.error ??= 'not attempted: an earlier image failed'
            return
          }
          await pusher.push(plan, result, progress)
          if (result.status === 'failed' && !this.#options.keepGoing) stop = true
        }),
      ),
    )
    return results
  }
}

function destinationOf(namespace: string, plan: ImagePlan): string {
  if (plan.path === '') return ''
  const repo = repositoryIn(namespace, plan.path)
  return plan.tag !== undefined ? `${repo}:${plan.tag}` : `${repo}@${plan.digest}`
}
