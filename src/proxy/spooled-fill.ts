// A blob fill through a local spool file (a store slow to write, S3): the upstream's bytes go
// into the fill's shared blocks and the spool at the upstream's pace and are hashed here, so the
// followers (who read the spool for what memory no longer holds) finish at network speed; the
// upload to the store reads the spool meanwhile, at its own pace, and verifies the digest again.
// A fill that streams another replica's fill (`writes()` false) does not write the store at all:
// that replica commits the blob (this one does only if it took the fill over).
import type { Readable } from 'node:stream'
import { createDigestHash, digestAlgorithm, digestOfHash, type Digest } from '../core/digest.js'
import { RegistryError } from '../core/errors.js'
import type { BlobService } from '../core/registry.js'
import type { SpoolFile } from '../transfer/fill-spool.js'

/** What the spooled path sees of its BlobFill. */
export interface SpooledFill {
  readonly digest: Digest
  readonly size: number
  /** Bytes counted so far (in the spool). */
  received(): number
  /** The cache repository's blobs, where the blob is stored. */
  readonly target: BlobService
  /** Whether this process writes the blob to the store (asked at the start and again at the end). */
  writes(): boolean
  /** Copies the chunk at `offset` into the fill's shared blocks. */
  hold(chunk: Buffer, offset: number): void
  /** Counts bytes that are now readable (in the spool), waking followers at block ends. */
  count(bytes: number): void
  /** Every byte arrived and the digest matched: followers may send their last byte. */
  markVerified(): void
}

export async function fillThroughSpool(fill: SpooledFill, body: Readable, spool: SpoolFile): Promise<void> {
  const upload = fill.writes() ? store(fill, spool.reader()) : undefined
  upload?.catch(() => {})
  try {
    await pump(fill, body, spool)
  } catch (err) {
    spool.fail(err)
    await upload?.catch(() => {})
    throw err
  }
  if (upload) await upload
  else if (fill.writes() && !(await fill.target.stat(fill.digest))) await store(fill, spool.reader())
}

async function pump(fill: SpooledFill, body: Readable, spool: SpoolFile): Promise<void> {
  const hash = createDigestHash(digestAlgorithm(fill.digest))
  let verified = false
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      if (fill.received() + chunk.length > fill.size) {
        throw new RegistryError('SIZE_INVALID', 'upstream sent more than the blob size', { declared: fill.size })
      }
      fill.hold(chunk, fill.received())
      await spool.write(chunk)
      hash.update(chunk)
      fill.count(chunk.length)
      if (fill.received() === fill.size) {
        // Verified now, not when the source ends: a stream from a peer ends once its commit landed.
        const actual = digestOfHash(digestAlgorithm(fill.digest), hash)
        if (actual !== fill.digest) throw new RegistryError('DIGEST_INVALID', undefined, { expected: fill.digest, actual })
        verified = true
        fill.markVerified()
      }
    }
  } finally {
    body.destroy()
  }
  if (!verified)
    throw new RegistryError('SIZE_INVALID', 'upstream sent less than the blob size', { declared: fill.size, received: fill.received() })
}

/** Writes `body` to the store under the digest (verified there again) and links it into the cache repository. */
async function store(fill: SpooledFill, body: Readable): Promise<void> {
  const session = await fill.target.uploads.start()
  try {
    await fill.target.uploads.complete(session.id, fill.digest, body, { length: fill.size })
  } catch (err) {
    body.destroy()
    await fill.target.uploads.cancel(session.id).catch(() => {})
    throw err
  }
}
