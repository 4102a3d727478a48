// Blob bytes between the archive and the upload. A tar stream moves on to the next entry while a
// blob is still being uploaded, and a failed upload must be sent again, so each blob is written
// to a temp file as it passes (hashed on the way) and deleted once uploaded. A blob is admitted
// while the files spooled so far fit a budget, so the disk used is at most the budget plus the
// largest blob. `tee` lets uploads read a blob's file while it is still being written, so the
// archive is read once, each byte hashed once here, and uploads start at once and overlap.
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs'
import { mkdtemp, open, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable, Transform, type TransformCallback } from 'node:stream'
import { finished, pipeline } from 'node:stream/promises'
import { createDigestHash, digestOfHash, type Digest } from '../core/digest.js'
import { fileChunks, minLentChunk } from './lent-chunks.js'
import { ContentMismatchError } from './sink.js'

export const defaultSpoolBudget = 64 * 1024 * 1024
// A decompressor's pipe gives 64 KiB chunks. Below fs streams' 16 KiB mark each was one write on
// the thread pool, awaited before the next; with room for 1 MiB, chunks that gather while one write runs go as one.
const writeBuffer = 1024 * 1024

export interface SpooledBlob {
  digest: Digest
  size: number
  /** Opens the bytes again (for an upload or its retry). */
  open(): Readable
  /** The same in reused buffers (lent-chunks.ts). */
  lend(): AsyncIterable<Buffer>
  /** Deletes the file and gives its room back. Idempotent. */
  release(): Promise<void>
}

export class Spool {
  readonly #budget: number
  #dir: string | undefined
  #used = 0
  #sequence = 0
  #waiters: Array<() => void> = []
  /** The most bytes spooled at once, for the run's report. */
  peak = 0

  readonly #parent: string

  constructor(budget: number = defaultSpoolBudget, parent: string = tmpdir()) {
    this.#budget = budget
    this.#parent = parent
  }

  /**
   * Writes `content` (of `size` bytes) to a temp file, hashing it. Waits for room first. With
   * `transform` (a compressor), the file holds what it makes of the content: the blob's digest and
   * size are those of the file, and `plain` those of the content.
   */
  async write(
    content: AsyncIterable<Buffer> | Iterable<Buffer>,
    size: number,
    transform?: (plain: Readable) => Readable,
  ): Promise<SpooledBlob & { plain: { digest: Digest; size: number } }> {
    // Admitted while what is spooled fits the budget, whatever this blob's size: reading the next
    // blob overlaps uploading the last, and the total stays under the budget plus one blob.
    // A compressed blob is counted at its plain size, which it does not exceed by more than a few bytes per block.
    const { path, release } = await this.#admit(size)
    try {
      const plain = counting(content)
      const stored = transform === undefined ? plain : counting(transform(Readable.from(plain.chunks())))
      await pipeline(
        transform === undefined ? Readable.from(plain.chunks()) : Readable.from(stored.chunks()),
        createWriteStream(path, { highWaterMark: writeBuffer }),
      )
      if (plain.size !== size) throw new Error(`expected ${size} bytes, read ${plain.size}`)
      const digest = stored.digest()
      const lend = (): AsyncIterable<Buffer> => fileChunks(path, 0, stored.size)
      return { digest, size: stored.size, plain: { digest: plain.digest(), size }, open: () => createReadStream(path), lend, release }
    } catch (err) {
      await release()
      throw err
    }
  }

  /**
   * Like write, and `open` reads the file while it is being written (following the writer), so an
   * upload starts with the blob's first bytes and runs alongside the reading, and several uploads
   * overlap while the spool has room; a retry opens it again. What `open` gives ends with
   * ContentMismatchError instead of its last byte when the bytes are not `size` bytes hashing to
   * `expected`, so an upload of them never completes. `lend` gives the same in reused buffers
   * (lent-chunks.ts), its last chunk only once the whole blob was checked.
   */
  tee(
    content: AsyncIterable<Buffer> | Iterable<Buffer>,
    size: number,
    expected: Digest,
  ): { open: () => Readable; lend: () => AsyncIterable<Buffer>; spooled: Promise<SpooledBlob> } {
    const progress: Progress = { path: undefined, size, flushed: 0, done: false, failure: undefined, waiters: [] }
    const spooled = this.#tee(content, size, expected, progress)
    spooled.catch(() => undefined)
    return { open: () => Readable.from(follow(progress, false), { objectMode: false }), lend: () => follow(progress, true), spooled }
  }

  async #tee(content: AsyncIterable<Buffer> | Iterable<Buffer>, size: number, expected: Digest, progress: Progress): Promise<SpooledBlob> {
    const wake = (): void => {
      for (const waiter of progress.waiters.splice(0)) waiter()
    }
    const { path, release } = await this.#admit(size)
    progress.path = path
    const file = createWriteStream(path, { highWaterMark: writeBuffer })
    try {
      let fileError: Error | undefined
      file.on('error', (err) => (fileError = err))
      const hash = createDigestHash('sha256')
      let written = 0
      for await (const chunk of content) {
        if (fileError !== undefined) throw fileError
        hash.update(chunk)
        written += chunk.length
        const length = chunk.length
        // Counted once the bytes are in the file, where a follower reads them.
        const full = !file.write(chunk, (err) => {
          if (err) return
          progress.flushed += length
          wake()
        })
        if (full) await drained(file)
      }
      file.end()
      await finished(file)
      const digest = digestOfHash('sha256', hash)
      if (written !== size || digest !== expected) {
        progress.failure = new ContentMismatchError(`content does not match its digest ${expected} (${written} bytes hash to ${digest})`)
      }
      progress.done = true
      wake()
      return { digest, size: written, open: () => createReadStream(path), lend: () => fileChunks(path, 0, written), release }
    } catch (err) {
      file.destroy()
      progress.failure = err as Error
      progress.done = true
      wake()
      await release()
      throw err
    }
  }

  async #admit(size: number): Promise<{ path: string; release: () => Promise<void> }> {
    while (this.#used > this.#budget) await new Promise<void>((resolve) => this.#waiters.push(resolve))
    this.#used += size
    this.peak = Math.max(this.peak, this.#used)
    if (this.#dir === undefined) {
      this.#dir = await mkdtemp(join(this.#parent, `ferry-push-${process.pid}-`))
    }
    const path = join(this.#dir, `blob-${this.#sequence++}`)
    let released = false
    const release = async (): Promise<void> => {
      if (released) return
      released = true
      await rm(path, { force: true })
      this.#used -= size
      for (const wake of this.#waiters.splice(0)) wake()
    }
    return { path, release }
  }

  /** Removes the spool folder and whatever is left in it. */
  async close(): Promise<void> {
    if (this.#dir !== undefined) await rm(this.#dir, { recursive: true, force: true })
  }
}

/** Hashes content without keeping it (a dry run, or a blob the destination already has). */
export async function digestOf(content: AsyncIterable<Buffer>): Promise<{ digest: Digest; size: number }> {
  const hash = createDigestHash('sha256')
  let size = 0
  for await (const chunk of content) {
    hash.update(chunk)
    size += chunk.length
  }
  return { digest: digestOfHash('sha256', hash), size }
}

/** Hashes what `transform` (a compressor) makes of content, and the content itself, keeping neither. */
export async function transformedDigestOf(
  content: AsyncIterable<Buffer>,
  transform: (plain: Readable) => Readable,
): Promise<{ digest: Digest; size: number; plain: { digest: Digest; size: number } }> {
  const plain = counting(content)
  const { digest, size } = await digestOf(transform(Readable.from(plain.chunks())))
  return { digest, size, plain: { digest: plain.digest(), size: plain.size } }
}

/** Passes chunks through, hashing and counting them. */
function counting(content: AsyncIterable<Buffer> | Iterable<Buffer>): {
  chunks: () => AsyncGenerator<Buffer>
  digest: () => Digest
  readonly size: number
} {
  const hash = createDigestHash('sha256')
  let digest: Digest | undefined
  const state = {
    size: 0,
    async *chunks(): AsyncGenerator<Buffer> {
      for await (const chunk of content) {
        hash.update(chunk)
        state.size += chunk.length
        yield chunk
      }
    },
    digest: () => (digest ??= digestOfHash('sha256', hash)),
  }
  return state
}

interface Progress {
  /** Set once the blob was admitted. */
  path: string | undefined
  /** The bytes expected. */
  size: number
  /** Bytes written to the file so far. */
  flushed: number
  done: boolean
  failure: Error | undefined
  waiters: Array<() => void>
}

// A follower that keeps up waits for a whole chunk (or the rest of the blob) before it reads: the
// upload then writes 1 MiB at a time, not each 64 KiB the decompressor gave, which costs the
// registry less (a 1.1 GiB .tar.zst push: its CPU 4.29-4.44 s against 4.40-5.37 s).
const followChunk = 1024 * 1024

/**
 * The bytes of a spool file being written, as they land, until the writer is done. `lent`: in two
 * buffers used in turn, each a whole `followChunk` (or the rest of the blob) once the writer is
 * that far, but the last, which waits for the writer's verdict on the whole blob.
 */
async function* follow(progress: Progress, lent: boolean): AsyncGenerator<Buffer> {
  const next = (): Promise<void> => new Promise((resolve) => progress.waiters.push(resolve))
  while (progress.path === undefined && !progress.done) await next()
  if (progress.path === undefined) throw progress.failure ?? new Error('spool write failed')
  const handle = await open(progress.path, 'r')
  const size = Math.max(1, Math.min(followChunk, progress.size))
  const buffers = lent ? [Buffer.allocUnsafe(size), Buffer.allocUnsafe(size)] : []
  let turn = 0
  try {
    let position = 0
    for (;;) {
      if (lent && progress.done && progress.failure !== undefined) throw progress.failure
      const available = progress.flushed - position
      const last = position + Math.min(followChunk, available) >= progress.size
      if (lent && !progress.done && (available < Math.min(followChunk, progress.size - position) || last)) {
        await next()
        continue
      }
      if (available > 0) {
        const buffer = lent ? buffers[(turn ^= 1)]! : Buffer.allocUnsafe(Math.min(followChunk, available))
        const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, available), position)
        if (bytesRead === 0) throw new Error(`spool file ${progress.path} ended early`)
        position += bytesRead
        const chunk = bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead)
        yield lent && bytesRead < minLentChunk ? Buffer.from(chunk) : chunk
        continue
      }
      if (progress.failure !== undefined) throw progress.failure
      if (progress.done) return
      await next()
    }
  } finally {
    await handle.close()
  }
}

/** Resolves once `stream` can take more, or is gone. */
function drained(stream: WriteStream): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      stream.off('drain', done)
      stream.off('close', done)
      stream.off('error', done)
      resolve()
    }
    stream.once('drain', done)
    stream.once('close', done)
    stream.once('error', done)
  })
}

/** The bytes `open` gives, ending with ContentMismatchError instead of their end unless they are `size` bytes hashing to `digest`. */
export function verified(open: () => Readable, digest: Digest, size: number): Readable {
  const hash = createDigestHash('sha256')
  let seen = 0
  const check = new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      hash.update(chunk)
      seen += chunk.length
      callback(null, chunk)
    },
    flush(callback: TransformCallback) {
      const actual = digestOfHash('sha256', hash)
      if (actual === digest && seen === size) return callback()
      callback(new ContentMismatchError(`content does not match its digest ${digest} (${seen} bytes hash to ${actual})`))
    },
  })
  const source = open()
  source.once('error', (err) => check.destroy(err))
  return source.pipe(check)
}

/** Removes the spool folders of runs that were killed (SIGKILL leaves them): named after a process that is gone. */
export async function removeOrphanSpools(parent: string = tmpdir()): Promise<void> {
  let names: string[]
  try {
    names = await readdir(parent)
  } catch {
    return
  }
  for (const name of names) {
    const pid = Number(/^ferry-push-(\d+)-/.exec(name)?.[1])
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || alive(pid)) continue
    await rm(join(parent, name), { recursive: true, force: true })
  }
}

/** Whether the process `pid` exists (also as another user's). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    // EPERM: it exists, as another user's.
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}
