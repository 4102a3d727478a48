// One server-side import's run (import-jobs.ts keeps the jobs and their records): the bundle read
// from its source, counted and hashed on the way (the sha256 checked against `?digest=` before the
// last chunk goes on), pushed through BundlePush into storage (StorageSink), and the state, the
// images and the errors it ends with written into its status.
import { Transform, type Readable, type TransformCallback } from 'node:stream'
import { createDigestHash, digestOfHash, type DeferredHashes, type Digest } from '../core/digest.js'
import type { ImportedImage, ImportStatus } from '../core/imports.js'
import type { Registry } from '../core/registry.js'
import { stagingRepositoryOf } from './import-housekeeping.js'
import { BundlePush } from './importer.js'
import type { ImageResult } from './results.js'
import { StorageSink } from './storage-sink.js'

/** Told of every change of an import (metrics, the audit line when `status` is finished). */
export type ImportChangeListener = (status: ImportStatus, change: { bytesRead?: number; image?: ImportedImage }) => void

export interface ImportRunContext {
  registry: Registry
  /** Whether the importing account may push into a repository; refused ones fail their image. */
  mayPush: (repository: string) => boolean
  /** What earlier imports of this namespace left (images already imported are not written again). */
  earlier: () => Promise<Array<{ repository: string; digest: Digest }>>
  /** Threads the bundle's sha256 is computed on; absent: the main thread. */
  hashes?: DeferredHashes
  /** Blob writes in flight at once. */
  concurrency: number
  /** How often progress is saved. */
  saveIntervalMs: number
  save: (status: ImportStatus) => Promise<unknown>
  onChange?: ImportChangeListener
  /** Told of a blob storage failed to take (the detail, for the server's log). */
  onStorageError?: (err: unknown, digest: Digest | undefined) => void
  /** Whether an abort reason is a shutdown: the run then stops with its record saved as it was. */
  isShutdown: (reason: unknown) => boolean
}

/**
 * Runs one import to its end, keeping `status` current; the blobs it put into (or found in) its
 * staging repository, or undefined when a shutdown stopped it (its record saved as it was).
 */
export async function runImport(
  status: ImportStatus,
  signal: AbortSignal,
  open: () => Readable,
  expected: Digest | undefined,
  context: ImportRunContext,
): Promise<Digest[] | undefined> {
  let dirty = false
  const timer = setInterval(() => {
    if (dirty) void context.save(status)
    dirty = false
  }, context.saveIntervalMs)
  timer.unref()
  const sink = new StorageSink(context.registry, {
    mayPush: context.mayPush,
    staging: stagingRepositoryOf(status.namespace),
    ...(context.onStorageError ? { onStorageError: context.onStorageError } : {}),
  })
  const byDestination = new Map<string, ImportedImage>()
  const counted = hashing(
    (bytes) => {
      status.bytesRead += bytes
      dirty = true
      context.onChange?.(status, { bytesRead: bytes })
    },
    expected,
    (digest) => {
      status.bundleDigest = digest
    },
    context.hashes,
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
      earlier: await context.earlier(),
      concurrency: context.concurrency,
      keepGoing: true,
      signal,
      onEvent: (event) => {
        if (event.type === 'read.done') {
          status.state = 'importing'
          status.imagesTotal = event.images
          void context.save(status)
          context.onChange?.(status, {})
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
      context.onChange?.(status, { image: imported })
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
    if (context.isShutdown(err) || context.isShutdown(signal.reason)) {
      clearInterval(timer)
      await context.save(status)
      return undefined
    }
    status.state = signal.aborted && (signal.reason as Error).message === 'cancelled' ? 'cancelled' : 'failed'
    status.error = signal.aborted ? (signal.reason as Error).message : (err as Error).message
  } finally {
    clearInterval(timer)
    signal.removeEventListener('abort', stop)
  }
  return sink.staged()
}

/** What the bundle is read in: a request body arrives in pieces of 64 KiB or less, and each piece costs every stage after this one. */
const readChunk = 1024 * 1024

/**
 * Counts and hashes the bundle's bytes as they pass, gathered into chunks of about `readChunk`
 * (one copy, far cheaper than the per-chunk work of the tar reader, the hashes and the writes).
 * The hash runs on another thread where `threads` are given. With `expected`, fails at the end
 * (before the last chunk goes on, so before any tag) unless they match.
 */
function hashing(
  onBytes: (bytes: number) => void,
  expected: Digest | undefined,
  onDigest: (digest: Digest) => void,
  threads: DeferredHashes | undefined,
): Transform {
  const deferred = threads?.sha256()
  const hash = deferred === undefined ? createDigestHash('sha256') : undefined
  let pending: Buffer[] = []
  let length = 0
  const gathered = (): { chunk: Buffer; backlog: Promise<void> | undefined } => {
    const chunk = pending.length === 1 ? pending[0]! : Buffer.concat(pending, length)
    pending = []
    length = 0
    hash?.update(chunk)
    return { chunk, backlog: deferred?.update(chunk) }
  }
  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      onBytes(chunk.length)
      pending.push(chunk)
      length += chunk.length
      if (length < readChunk) return callback()
      const { chunk: gather, backlog } = gathered()
      this.push(gather)
      if (backlog === undefined) callback()
      else backlog.then(() => callback(), callback)
    },
    flush(callback: TransformCallback) {
      const last = length > 0 ? gathered() : undefined
      const finishing = (async (): Promise<Digest> => {
        await last?.backlog
        return deferred !== undefined ? (`sha256:${await deferred.digest()}` as Digest) : digestOfHash('sha256', hash!)
      })()
      finishing.then((digest) => {
        if (expected !== undefined && digest !== expected) {
          return callback(new Error(`the bundle's sha256 is ${digest}, not ${expected} as the request said`))
        }
        onDigest(digest)
        callback(null, last?.chunk)
      }, callback)
    },
    destroy(err, callback) {
      deferred?.dispose()
      callback(err)
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
