// One image of a bundle into its repository, once the whole bundle has been read: every blob made
// present (mounted from the repository that has it, or, with no copy yet in the destination, a
// HEAD in its repository and an upload; each distinct digest uploaded once per run), then child
// manifests by digest, and the root manifest under its tag last. An image already tagged with the
// same digest is left alone; one with a missing or unusable blob is never tagged.
import { Transform, type Readable, type TransformCallback } from 'node:stream'
import type { Digest } from '../core/digest.js'
import { isRepositoryName } from '../core/reference.js'
import type { BlobRecord, BundleContent } from './content.js'
import { meteredChunks } from './lent-chunks.js'
import type { ImagePlan } from './plan.js'
import { countPushed, repositoryIn, type PushContext } from './push-context.js'
import type { ImageProgress, ImageResult } from './results.js'
import { FatalSinkError } from './sink.js'

export class ImagePusher {
  readonly #context: PushContext
  readonly #content: BundleContent
  readonly #namespace: string
  /** Per repository and digest: making the blob present there, started once. */
  readonly #ensured = new Map<string, Promise<void>>()

  constructor(context: PushContext, content: BundleContent, namespace: string) {
    this.#context = context
    this.#content = content
    this.#namespace = namespace
  }

  /** Pushes `plan`, recording the outcome in `result` and how far it got in `progress` (never throws). */
  async push(plan: ImagePlan, result: ImageResult, progress: ImageProgress): Promise<void> {
    const { sink, signal, onEvent: events } = this.#context
    const { destination } = result
    const tally = new ImageTally(progress, () =>
      events?.({ type: 'image.progress', destination, bytesDone: progress.bytesDone, bytesTotal: progress.bytesTotal }),
    )
    progress.state = 'pushing'
    events?.({ type: 'image.start', source: plan.source, destination })
    const failed = (error: string): void => {
      result.status = 'failed'
      progress.state = 'failed'
      result.error = error
      events?.({ type: 'image.failed', source: plan.source, destination, error })
    }
    if (plan.problem !== undefined) return failed(plan.problem)
    const repo = repositoryIn(this.#namespace, plan.path)
    if (!isRepositoryName(repo)) return failed(`"${repo}" is not a valid repository name`)
    const what = plan.source ?? plan.digest
    try {
      const reference = plan.tag ?? plan.digest
      if ((await sink.resolveManifest(repo, reference, signal)) === plan.digest) {
        result.status = 'unchanged'
        progress.state = 'unchanged'
        tally.all()
        events?.({ type: 'image.done', source: plan.source, destination, digest: plan.digest, unchanged: true })
        return
      }
      await Promise.all(
        plan.blobs.map(async (blob) => {
          await this.#ensureBlob(repo, blob.digest, (sent) => tally.sent(blob.digest, sent))
          tally.done(blob.digest, blob.size)
        }),
      )
      for (const manifest of plan.manifests.slice(0, -1)) {
        if ((await sink.resolveManifest(repo, manifest.digest, signal)) !== manifest.digest) {
          await sink.putManifest(repo, manifest.digest, manifest.bytes, manifest.mediaType, signal)
        }
      }
      const root = plan.manifests.at(-1)!
      await sink.putManifest(repo, reference, root.bytes, root.mediaType, signal)
      result.status = 'pushed'
      progress.state = 'pushed'
      events?.({ type: 'image.done', source: plan.source, destination, digest: plan.digest, unchanged: false })
    } catch (err) {
      this.#context.fail(err)
      failed(`${what} (from ${plan.archive}): ${(err as Error).message}`)
    }
  }

  /**
   * Makes `digest` present in `repo`: already there, mounted, or uploaded (once per run). `onSent`
   * hears how far an upload it starts got (an image waiting for another's upload hears nothing).
   */
  #ensureBlob(repo: string, digest: Digest, onSent: (bytes: number) => void): Promise<void> {
    const key = `${repo}\n${digest}`
    let ensured = this.#ensured.get(key)
    if (ensured === undefined) {
      ensured = this.#placeBlob(repo, digest, onSent)
      this.#ensured.set(key, ensured)
    }
    return ensured
  }

  async #placeBlob(repo: string, digest: Digest, onSent: (bytes: number) => void): Promise<void> {
    const { sink, signal, limiter, homes, stats } = this.#context
    const record = this.#content.blobs.get(digest)
    if (record === undefined) throw new Error(`blob ${digest} is missing from the bundle`)
    if (record.staged !== undefined) await record.staged
    const home = homes.get(digest)
    // A mount of a blob the repository has already succeeds too: no HEAD first.
    if (home === undefined && (await limiter.run(() => sink.hasBlob(repo, digest, signal)))) {
      stats.blobsSkipped++
      return
    }
    if (home !== undefined) {
      const from = await home
      if (await limiter.run(() => sink.mountBlob(repo, digest, from, signal))) {
        stats.blobsMounted++
        return
      }
      if (record.open === undefined)
        throw new Error(`the registry would not mount blob ${digest} from ${from}, and the bundle's copy has streamed by`)
      await this.#upload(repo, record, onSent)
      return
    }
    const upload = this.#upload(repo, record, onSent).then(() => repo)
    homes.set(digest, upload)
    await upload
  }

  async #upload(repo: string, record: BlobRecord, onSent: (bytes: number) => void): Promise<void> {
    const { sink, signal, limiter } = this.#context
    const { open, lend } = record
    if (open === undefined) throw new Error(`blob ${record.digest} has no readable copy`)
    const lent = lend && ((): AsyncIterable<Buffer> => meteredChunks(lend(), onSent))
    try {
      await limiter.run(() => sink.putBlob(repo, record.digest, record.size, () => metered(open(), onSent), signal, lent))
    } catch (err) {
      if (err instanceof FatalSinkError) throw err
      throw new Error(`${record.origin}: ${(err as Error).message}`, { cause: err })
    }
    countPushed(this.#context, record.digest, record.size)
  }
}

/** An image's bytes in place, as a count that never goes back (ImageProgress.bytesDone). */
class ImageTally {
  readonly #progress: ImageProgress
  readonly #onChange: () => void
  #completed = 0
  /** The most bytes each upload in flight has sent in any attempt. */
  readonly #partial = new Map<Digest, number>()

  constructor(progress: ImageProgress, onChange: () => void) {
    this.#progress = progress
    this.#onChange = onChange
  }

  sent(digest: Digest, bytes: number): void {
    if (bytes <= (this.#partial.get(digest) ?? 0)) return
    this.#partial.set(digest, bytes)
    this.#update()
  }

  done(digest: Digest, size: number): void {
    this.#partial.delete(digest)
    this.#completed += size
    this.#update()
  }

  all(): void {
    this.#progress.bytesDone = this.#progress.bytesTotal
    this.#onChange()
  }

  #update(): void {
    let partial = 0
    for (const bytes of this.#partial.values()) partial += bytes
    const done = this.#completed + partial
    if (done <= this.#progress.bytesDone) return
    this.#progress.bytesDone = done
    this.#onChange()
  }
}

/** `source` as it is read, telling `onSent` the bytes read so far; its error (a digest mismatch) passes on as it is. */
function metered(source: Readable, onSent: (bytes: number) => void): Readable {
  let sent = 0
  const meter = new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      sent += chunk.length
      onSent(sent)
      callback(null, chunk)
    },
  })
  source.once('error', (err) => meter.destroy(err))
  return source.pipe(meter)
}
