// The staging repository of a bundle push (`<namespace>/ferry-bundle-staging`): blobs are uploaded
// into it as they stream by, before anyone knows which image they belong to (a docker save names
// its images last), and mounted into their repositories once the images are known. It is emptied
// after a run in which every image landed (blob DELETEs: the registry unlinks them there only, and
// Ferry drops the empty repository); after a failure or a kill it keeps its blobs, so a rerun
// finds them there (a HEAD each) and sends only what is missing.
import type { Readable } from 'node:stream'
import type { Digest } from '../core/digest.js'
import { bundleStagingRepository } from '../core/imports.js'
import { countPushed, repositoryIn, type PushContext } from './push-context.js'
import type { ImageResult, StagingOutcome } from './results.js'
import { StreamedOnceError } from './sink.js'

export const stagingRepository = bundleStagingRepository

/** Ingested blobs committing at once while the next ones are read (each an fsync and a few renames). */
const maxCommitting = 2

export class Staging {
  readonly repository: string
  readonly #context: PushContext
  /** Blobs this run uploaded into, or found in, the staging repository. */
  readonly #held = new Set<Digest>()
  /** Commits of ingested blobs still running, each settling either way. */
  readonly #committing = new Set<Promise<void>>()
  /** Streamed blobs whose upload failed with the bytes gone (StreamedOnceError): their origins, for a second reading. */
  readonly #replays = new Map<Digest, string>()

  constructor(context: PushContext, namespace: string) {
    this.#context = context
    this.repository = repositoryIn(namespace, stagingRepository)
  }

  /** Whether the destination has the blob already (an earlier run pushed it, or left it staged): then it is not uploaded again. */
  async has(digest: Digest): Promise<boolean> {
    const { homes, stats, limiter, sink, signal } = this.#context
    if (homes.has(digest)) {
      // Pushed by an earlier run: mounted from where it is.
      stats.blobsSkipped++
      return true
    }
    try {
      const present = await limiter.run(() => sink.hasBlob(this.repository, digest, signal))
      if (present) {
        stats.blobsSkipped++
        homes.set(digest, Promise.resolve(this.repository))
        this.#held.add(digest)
      }
      return present
    } catch (err) {
      this.#context.fail(err)
      throw err
    }
  }

  /** Uploads a blob that streams by (`open` may be called again for a retry). */
  async upload(blob: {
    digest: Digest
    size: number
    origin: string
    open: () => Readable
    lend?: () => AsyncIterable<Buffer>
  }): Promise<void> {
    const context = this.#context
    try {
      await context.limiter.run(async () => {
        context.signal.throwIfAborted()
        // Not asked again here: the collector asked `has` just before reading it.
        this.#held.add(blob.digest)
        await context.sink.putBlob(this.repository, blob.digest, blob.size, blob.open, context.signal, blob.lend)
        countPushed(context, blob.digest, blob.size)
      })
      context.homes.set(blob.digest, Promise.resolve(this.repository))
    } catch (err) {
      context.fail(err)
      throw new Error(`${blob.origin}: upload failed: ${(err as Error).message}`, { cause: err })
    }
  }

  /**
   * Stores a blob from its bytes as they stream by (a sink that takes bytes once, with no spool).
   * Resolves once the bytes have passed: the blob's commit (fsync, rename, link) goes on while
   * the next blob is read, at most `maxCommitting` at once. Whoever mounts it waits for its home,
   * which fails when the commit did, so an image of a blob that was not stored is never tagged.
   */
  async ingest(blob: { stream: Readable; size: number; expected: Digest | undefined; origin: string }): Promise<Digest> {
    const context = this.#context
    try {
      context.signal.throwIfAborted()
      while (this.#committing.size >= maxCommitting) await Promise.race(this.#committing)
      const { digest, committed } = await context.sink.writeBlob!(this.repository, blob.stream, blob.size, blob.expected, context.signal)
      if (blob.expected !== undefined && digest !== blob.expected) return digest
      const home = committed.then(
        () => {
          // A server import unlinks its staged blobs itself (import-housekeeping.ts).
          if (context.sink.deleteBlob !== undefined) this.#held.add(digest)
          countPushed(context, digest, blob.size)
          return this.repository
        },
        (err: unknown) => {
          context.fail(err)
          if (err instanceof StreamedOnceError) this.#replays.set(digest, blob.origin)
          throw new Error(`${blob.origin}: ${(err as Error).message}`, { cause: err })
        },
      )
      const settled = home.then(
        () => undefined,
        () => undefined,
      )
      this.#committing.add(settled)
      void settled.then(() => this.#committing.delete(settled))
      context.homes.set(digest, home)
      return digest
    } catch (err) {
      context.fail(err)
      // The bundle itself broke (corrupt, truncated): its own message names it.
      if (err === blob.stream.errored) throw err
      throw new Error(`${blob.origin}: ${(err as Error).message}`, { cause: err })
    }
  }

  /** Blobs to send again from a second reading of the bundle (after settled()): digest → origin. */
  get replays(): ReadonlyMap<Digest, string> {
    return this.#replays
  }

  /** Uploads a blob of the second reading (`upload`), its home then what that gave, either way. */
  async replay(blob: Parameters<Staging['upload']>[0]): Promise<void> {
    const uploading = this.upload(blob)
    const home = uploading.then(() => this.repository)
    home.catch(() => undefined)
    this.#context.homes.set(blob.digest, home)
    await uploading
  }

  /** Waits until every blob ingest() took has been committed, or failed to. */
  async settled(): Promise<void> {
    while (this.#committing.size > 0) await Promise.all(this.#committing)
  }

  /**
   * Once every image landed, the staging repository is emptied again (on a registry that allows
   * deletes: Ferry and distribution unlink the blob only, the content stays with the images, and
   * Ferry drops the emptied repository). After a failure its blobs are kept for the rerun.
   */
  async empty(images: ImageResult[], failedRun: boolean): Promise<StagingOutcome | undefined> {
    const { sink, signal } = this.#context
    if (this.#held.size === 0) return undefined
    const outcome: StagingOutcome = { repository: this.repository, blobs: this.#held.size, removed: 0 }
    if (failedRun || images.some((i) => i.status !== 'pushed' && i.status !== 'unchanged')) {
      outcome.kept = 'some images did not land; a rerun reuses these blobs'
      return outcome
    }
    if (sink.deleteBlob === undefined) {
      outcome.kept = 'the destination cannot delete blobs'
      return outcome
    }
    for (const digest of this.#held) {
      if (signal.aborted) break
      if (!(await sink.deleteBlob(this.repository, digest, signal))) {
        outcome.kept = 'the registry refused to delete blobs (deletes disabled, or no delete permission)'
        break
      }
      outcome.removed++
    }
    return outcome
  }
}
