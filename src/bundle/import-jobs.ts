// Server-side bulk imports: a bundle sent as a request body, or read from an `s3://` object, goes
// through the same reader, plan and naming as `ferry push images` (importer.ts), into storage
// through StorageSink: blobs are written as they stream by, manifests after their blobs, indexes
// after their children, tags last, so an image is tagged whole or not at all. One import's run is
// import-run.ts; this file keeps the jobs, their records, resumption and idempotence.
//
// Each import's record is kept in storage (ImportRecords) and saved on every change of state and
// every few seconds of progress. After a restart, an import that was still running is resumed
// when its source can be read again (an `s3://` object: the blobs already stored are recognised
// and not written twice), and failed otherwise (a body whose sender is gone). Imports are
// idempotent on the bundle: the same `s3://` object (same ETag), or a body whose sha256 the client
// names (`?digest=`) or that turns out to match an earlier import's, finds the earlier import.
import { randomUUID } from 'node:crypto'
import type { Readable } from 'node:stream'
import type { DeferredHashes, Digest } from '../core/digest.js'
import { RegistryError } from '../core/errors.js'
import {
  isFinished,
  type ImportRecords,
  type ImportRequest,
  type ImportService,
  type ImportStarted,
  type ImportStatus,
  type ObjectReader,
} from '../core/imports.js'
import type { Registry } from '../core/registry.js'
import { earlierImages, pruneRecords, StagingCleaner, type RecordRetention } from './import-housekeeping.js'
import { runImport, type ImportChangeListener } from './import-run.js'

export interface ImportJobsOptions {
  registry: Registry
  records: ImportRecords
  /** Reads `s3://` sources; absent: they are refused. */
  objects?: ObjectReader | undefined
  /** Threads the bundle's sha256 is computed on (and, through storage, each blob's); absent: the main thread. */
  hashes?: DeferredHashes
  /** Told of a blob storage failed to take: the detail for the server's log (the import reports the blob and the reason). */
  onStorageError?: (err: unknown, digest: Digest | undefined, status: ImportStatus) => void
  /** Blob writes in flight at once per import. */
  concurrency?: number
  /** How often a running import's progress is saved. */
  saveIntervalMs?: number
  /** Which finished records are pruned (after each import, at start and when listing); none when absent. */
  retention?: RecordRetention
  /** Told of every change (metrics, the audit line when `status` is finished). */
  onChange?: ImportChangeListener
  /** Told of what could not be saved (storage trouble); the import goes on. */
  onError?: (err: unknown, status: ImportStatus) => void
  /** Told when an import starts running and when it has ended (serve steers V8's heap meanwhile). */
  watch?: { begin(): void; end(): void }
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
    const { status } = job
    const { onChange, onStorageError, watch } = this.#options
    watch?.begin()
    const staged = await runImport(status, job.abort.signal, open, expected, {
      registry: this.#options.registry,
      mayPush,
      earlier: async () => earlierImages(await this.#options.records.list(), status),
      ...(this.#options.hashes ? { hashes: this.#options.hashes } : {}),
      concurrency: this.#options.concurrency ?? 8,
      saveIntervalMs: this.#options.saveIntervalMs ?? 2000,
      save: (status) => this.#save(status),
      ...(onChange ? { onChange } : {}),
      ...(onStorageError ? { onStorageError: (err: unknown, digest: Digest | undefined) => onStorageError(err, digest, status) } : {}),
      isShutdown: (reason) => reason instanceof Shutdown,
    }).finally(() => watch?.end())
    // A shutdown saved the record as it was: the next start resumes or fails it.
    if (staged === undefined) return
    if (status.state === 'done') this.#staging.add(status.namespace, staged)
    await this.#save(status)
    // Finished imports are read back from their records: memory does not grow with their number.
    this.#jobs.delete(status.id)
    onChange?.(status, {})
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

export function parseS3Url(url: string): { bucket: string; key: string } | undefined {
  const match = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])\/(.+)$/.exec(url)
  return match === null ? undefined : { bucket: match[1]!, key: match[2]! }
}

export function isImportId(id: string): boolean {
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(id)
}
