// Server-side bulk imports: a bundle sent as a request body, or read from an `s3://` object, goes
// through the same reader, plan and naming as `ferry push images` (importer.ts), into storage
// through StorageSink: blobs are written as they stream by, manifests after their blobs, indexes
// after their children, tags last, so an image is tagged whole or not at all.
//
// Each import's record is kept in storage (ImportRecords) and saved on every change of state and
// every few seconds of progress. After a restart, an import that was still running is resumed
// when its source can be read again (an `s3://` object: the blobs already stored are recognised
// and not written twice), and failed otherwise (a body whose sender is gone). Imports are
// idempotent on the bundle: the same `s3://` object (same ETag), or a body whose sha256 the client
// names (`?digest=`) or that turns out to match an earlier import's, finds the earlier import.
import { randomUUID } from 'node:crypto'
import { Transform, type Readable, type TransformCallback } from 'node:stream'
import { createDigestHash, digestOfHash, type Digest } from '../core/digest.js'
import { RegistryError } from '../core/errors.js'
import {
  isFinished,
  type ImportedImage,
  type ImportRecords,
  type ImportRequest,
  type ImportService,
  type ImportStarted,
  type ImportStatus,
  type ObjectReader,
} from '../core/imports.js'
import type { Registry } from '../core/registry.js'
import { earlierImages, pruneRecords, StagingCleaner, stagingRepositoryOf, type RecordRetention } from './import-housekeeping.js'
import { BundlePush } from './importer.js'
import type { ImageResult } from './results.js'
import { StorageSink } from './storage-sink.js'

export interface ImportJobsOptions {
  registry: Registry
  records: ImportRecords
  /** Reads `s3://` sources; absent: they are refused. */
  objects?: ObjectReader | undefined
  /** Blob writes in flight at once per import. */
  concurrency?: number
  /** How often a running import's progress is saved. */
  saveIntervalMs?: number
  /** Which finished records are pruned (after each import, at start and when listing); none when absent. */
  retention?: RecordRetention
  /** Told of every change (metrics, the audit line when `status` is finished). */
  onChange?: (status: ImportStatus, change: { bytesRead?: number; image?: ImportedImage }) => void
  /** Told of what could not be saved (storage trouble); the import goes on. */
  onError?: (err: unknown, status: ImportStatus) => void
}

interface Job {
  status: ImportStatus
  abort: AbortController
  done: Promise<void>
}

class Shutdown extends Error {}

export class ImportJobs implements ImportService {
  readonly #options: ImportJobsOptions
  readonly #jobs = new Map<string, Job>()
  readonly #saving = new Map<string, Promise<void>>()
  readonly #staging: StagingCleaner
  #prunedAt = 0

  constructor(options: ImportJobsOptions) {
    this.#options = options
    this.#staging = new StagingCleaner(options.registry)
  }

  /** After a restart: resumes `s3://` imports that were running, fails the others; prunes old records. */
  async resume(): Promise<void> {
    await this.#prune(true)
    for (const status of await this.#options.records.list()) {
      if (isFinished(status.state)) continue
      const object = parseS3Url(status.source)
      if (object !== undefined && this.#options.objects !== undefined && status.object !== undefined) {
        this.#launch(
          { ...status, state: 'reading', bytesRead: 0 },
          () => this.#openObject(status),
          () => true,
        )
        continue
      }
      status.state = 'failed'
      status.error = 'interrupted by a restart while the bundle was being sent; send it again (blobs already stored are not written twice)'
      await this.#save(status)
      this.#options.onChange?.(status, {})
    }
  }

  async start(request: ImportRequest): Promise<ImportStarted> {
    const { namespace, source } = request
    const now = new Date().toISOString()
    const status: ImportStatus = {
      id: randomUUID(),
      namespace,
      source: source.kind === 'body' ? 'body' : source.url,
      state: 'reading',
      bytesRead: 0,
      bytesWritten: 0,
      imagesDone: 0,
      imagesTotal: 0,
      images: [],
      user: request.user,
      createdAt: now,
      updatedAt: now,
    }
    if (source.kind === 's3') {
      const location = parseS3Url(source.url)
      if (location === undefined) throw new RegistryError('UNSUPPORTED', 'source must be s3://<bucket>/<key>')
      const objects = this.#options.objects
      if (objects === undefined) throw new RegistryError('UNSUPPORTED', 's3:// sources need the storage.s3 connection settings')
      const object = await objects.stat(location.bucket, location.key, request.signal)
      if (object === undefined) throw new RegistryError('NAME_UNKNOWN', 'no such object', { source: source.url.slice(0, 300) })
      const earlier = await this.#find((s) => s.namespace === namespace && s.source === source.url && s.object?.etag === object.etag)
      if (earlier !== undefined) return { status: earlier, existing: true }
      status.object = object
      status.bytesTotal = object.size
      await this.#save(status)
      this.#launch(status, () => this.#openObject(status), request.mayPush)
      return { status, existing: false }
    }
    if (source.digest !== undefined) {
      const digest = source.digest
      const earlier = await this.#find((s) => s.namespace === namespace && s.bundleDigest === digest)
      if (earlier !== undefined) return { status: earlier, existing: true }
      status.bundleDigest = digest
    }
    if (source.length !== undefined) status.bytesTotal = source.length
    await this.#save(status)
    const job = this.#launch(status, () => source.stream, request.mayPush, source.digest)
    const onClientGone = (): void => job.abort.abort(new Error('the client went away before the bundle was sent whole'))
    request.signal?.addEventListener('abort', onClientGone, { once: true })
    await job.done
    request.signal?.removeEventListener('abort', onClientGone)
    if (status.state === 'done' || status.state === 'partial') {
      // The same bytes were imported before: that import is the answer, this one did no new work.
      const digest = status.bundleDigest
      const earlier = await this.#find((s) => s.id !== status.id && s.namespace === namespace && s.bundleDigest === digest)
      if (earlier !== undefined && status.bytesWritten === 0 && status.images.every((i) => i.status === 'unchanged')) {
        this.#jobs.delete(status.id)
        await this.#options.records.delete(status.id)
        return { status: earlier, existing: true }
      }
    }
    return { status, existing: false }
  }

  async get(id: string): Promise<ImportStatus | undefined> {
    return this.#jobs.get(id)?.status ?? (isImportId(id) ? await this.#options.records.load(id) : undefined)
  }

  async list(): Promise<ImportStatus[]> {
    await this.#prune(false)
    const stored = new Map((await this.#options.records.list()).map((s) => [s.id, s]))
    for (const job of this.#jobs.values()) stored.set(job.status.id, job.status)
    return [...stored.values()].sort((a, b) => b.createdAt.localeCompare(a.createdAt))
  }

  async cancel(id: string): Promise<ImportStatus | undefined> {
    const job = this.#jobs.get(id)
    if (job === undefined) return this.get(id)
    if (!isFinished(job.status.state)) {
      job.abort.abort(new Error('cancelled'))
      await job.done
    }
    return job.status
  }

  /** Stops every running import without finishing its record: the next start resumes or fails it. */
  async close(): Promise<void> {
    const running = [...this.#jobs.values()].filter((job) => !isFinished(job.status.state))
    for (const job of running) job.abort.abort(new Shutdown('shutting down'))
    await Promise.allSettled(running.map((job) => job.done))
  }

  #launch(status: ImportStatus, open: () => Readable, mayPush: (repo: string) => boolean, expected?: Digest): Job {
    const abort = new AbortController()
    const job: Job = { status, abort, done: Promise.resolve() }
    job.done = this.#run(job, open, mayPush, expected)
    this.#jobs.set(status.id, job)
    return job
  }

  async #run(job: Job, open: () => Readable, mayPush: (repo: string) => boolean, expected: Digest | undefined): Promise<void> {
    const { status, abort } = job
    const signal = abort.signal
    let dirty = false
    const timer = setInterval(() => {
      if (dirty) void this.#save(status)
      dirty = false
    }, this.#options.saveIntervalMs ?? 2000)
    timer.unref()
    const sink = new StorageSink(this.#options.registry, { mayPush, staging: stagingRepositoryOf(status.namespace) })
    const byDestination = new Map<string, ImportedImage>()
    const counted = hashing(
      (bytes) => {
        status.bytesRead += bytes
        dirty = true
        this.#options.onChange?.(status, { bytesRead: bytes })
      },
      expected,
      (digest) => {
        status.bundleDigest = digest
      },
    )
    let stream: Readable | undefined
    // A cancel or shutdown ends the read at once, even while the sender is between two bytes.
    const stop = (): void => void counted.destroy(signal.reason as Error)
    signal.addEventListener('abort', stop, { once: true })
    try {
      stream = open()
      stream.on('error', (err) => counted.destroy(err))
      // Its error (a short or misnamed bundle) may come before the reader iterates it, which then meets it.
      counted.on('error', () => undefined)
      stream.pipe(counted)
      const push = new BundlePush({
        source: { stream: counted, label: status.source === 'body' ? 'bundle' : status.source },
        namespace: status.namespace,
        sink,
        earlier: earlierImages(await this.#options.records.list(), status),
        concurrency: this.#options.concurrency ?? 8,
        keepGoing: true,
        signal,
        onEvent: (event) => {
          if (event.type === 'read.done') {
            status.state = 'importing'
            status.imagesTotal = event.images
            void this.#save(status)
            this.#options.onChange?.(status, {})
          } else if (event.type === 'image.done' || event.type === 'image.failed') {
            status.imagesDone++
            dirty = true
          }
        },
      })
      const report = await push.run()
      status.bytesWritten = push.stats.bytesPushed
      for (const image of report.images) {
        const imported = importedImage(image)
        byDestination.set(imported.destination, imported)
        this.#options.onChange?.(status, { image: imported })
      }
      status.images = [...byDestination.values()]
      status.imagesTotal = status.images.length
      status.imagesDone = status.images.filter((i) => i.status === 'pushed' || i.status === 'unchanged').length
      if (signal.aborted) throw signal.reason
      if (report.fatal !== undefined) {
        status.state = 'failed'
        status.error = report.fatal
      } else {
        const failed = status.images.filter((i) => i.status === 'failed' || i.status === 'skipped').length
        status.state = failed === 0 ? 'done' : status.imagesDone === 0 ? 'failed' : 'partial'
      }
    } catch (err) {
      stream?.destroy()
      if (err instanceof Shutdown || signal.reason instanceof Shutdown) {
        clearInterval(timer)
        await this.#save(status)
        return
      }
      status.state = signal.aborted && (signal.reason as Error).message === 'cancelled' ? 'cancelled' : 'failed'
      status.error = signal.aborted ? (signal.reason as Error).message : (err as Error).message
    } finally {
      clearInterval(timer)
      signal.removeEventListener('abort', stop)
    }
    if (status.state === 'done') this.#staging.add(status.namespace, sink.staged())
    await this.#save(status)
    // Finished imports are read back from their records: memory does not grow with their number.
    this.#jobs.delete(status.id)
    this.#options.onChange?.(status, {})
    await this.#housekeeping(status)
  }

  /** Empties the namespace's staging repository when no import into it runs any more; prunes old records. */
  async #housekeeping(status: ImportStatus): Promise<void> {
    const busy = [...this.#jobs.values()].some((job) => job.status.namespace === status.namespace && !isFinished(job.status.state))
    try {
      await this.#staging.empty(status.namespace, busy)
      await this.#prune(true)
    } catch (err) {
      this.#options.onError?.(err, status)
    }
  }

  /** Prunes finished records past the retention; when listing, at most once a minute. */
  async #prune(now: boolean): Promise<void> {
    const retention = this.#options.retention
    if (retention === undefined || (!now && Date.now() - this.#prunedAt < 60_000)) return
    this.#prunedAt = Date.now()
    await pruneRecords(this.#options.records, retention)
  }

  #openObject(status: ImportStatus): Readable {
    const location = parseS3Url(status.source)!
    return this.#options.objects!.open(location.bucket, location.key, status.object!)
  }

  async #find(match: (status: ImportStatus) => boolean): Promise<ImportStatus | undefined> {
    const usable = (s: ImportStatus) => s.state !== 'failed' && s.state !== 'cancelled' && match(s)
    for (const job of this.#jobs.values()) if (usable(job.status)) return job.status
    return (await this.#options.records.list()).find(usable)
  }

  /** Saves in order per import: a progress save that ended late must never overwrite the final state. */
  #save(status: ImportStatus): Promise<ImportStatus> {
    const previous = this.#saving.get(status.id) ?? Promise.resolve()
    const saved = previous.then(async () => {
      status.updatedAt = new Date().toISOString()
      try {
        await this.#options.records.save(status)
      } catch (err) {
        this.#options.onError?.(err, status)
      }
      return status
    })
    const settled = saved.then(() => {
      if (this.#saving.get(status.id) === settled) this.#saving.delete(status.id)
    })
    this.#saving.set(status.id, settled)
    return saved
  }
}

/** What the bundle is read in: a request body arrives in pieces of 64 KiB or less, and each piece costs every stage after this one. */
const readChunk = 1024 * 1024

/**
 * Counts and hashes the bundle's bytes as they pass, gathered into chunks of about `readChunk`
 * (one copy, far cheaper than the per-chunk work of the tar reader, the hashes and the writes).
 * With `expected`, fails at the end (before any tag) unless they match.
 */
function hashing(onBytes: (bytes: number) => void, expected: Digest | undefined, onDigest: (digest: Digest) => void): Transform {
  const hash = createDigestHash('sha256')
  let pending: Buffer[] = []
  let length = 0
  const gathered = (): Buffer => {
    const chunk = pending.length === 1 ? pending[0]! : Buffer.concat(pending, length)
    pending = []
    length = 0
    hash.update(chunk)
    return chunk
  }
  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      onBytes(chunk.length)
      pending.push(chunk)
      length += chunk.length
      callback(null, length >= readChunk ? gathered() : undefined)
    },
    flush(callback: TransformCallback) {
      const last = length > 0 ? gathered() : undefined
      const digest = digestOfHash('sha256', hash)
      if (expected !== undefined && digest !== expected) {
        return callback(new Error(`the bundle's sha256 is ${digest}, not ${expected} as the request said`))
      }
      onDigest(digest)
      callback(null, last)
    },
  })
}

function importedImage(image: ImageResult): ImportedImage {
  return {
    source: image.source ?? null,
    destination: image.destination,
    ...(image.digest !== undefined ? { digest: image.digest } : {}),
    status: image.status,
    ...(image.error !== undefined ? { error: image.error } : {}),
  }
}

export function parseS3Url(url: string): { bucket: string; key: string } | undefined {
  const match = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])\/(.+)$/.exec(url)
  return match === null ? undefined : { bucket: match[1]!, key: match[2]! }
}

export function isImportId(id: string): boolean {
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(id)
}
