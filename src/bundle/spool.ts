// Blob bytes between the archive and the upload. A tar stream moves on to the next entry while a
// blob is still being uploaded, and a failed upload must be sent again, so each blob is written
// to a temp file as it passes (hashed on the way) and deleted once uploaded. A blob is admitted
// while the files spooled so far fit a budget, so the disk used is at most the budget plus the
// largest blob.
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createDigestHash, digestOfHash, type Digest } from '../core/digest.js'

export const defaultSpoolBudget = 64 * 1024 * 1024

export interface SpooledBlob {
  digest: Digest
  size: number
  /** Opens the bytes again (for an upload or its retry). */
  open(): Readable
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

  /** Writes `content` (of `size` bytes) to a temp file, hashing it. Waits for room first. */
  async write(content: AsyncIterable<Buffer> | Iterable<Buffer>, size: number): Promise<SpooledBlob> {
    // Admitted while what is spooled fits the budget, whatever this blob's size: reading the next
    // blob overlaps uploading the last, and the total stays under the budget plus one blob.
    while (this.#used > this.#budget) await new Promise<void>((resolve) => this.#waiters.push(resolve))
    this.#used += size
    this.peak = Math.max(this.peak, this.#used)
    this.#dir ??= await mkdtemp(join(this.#parent, 'ferry-push-'))
    const path = join(this.#dir, `blob-${this.#sequence++}`)
    let released = false
    const release = async (): Promise<void> => {
      if (released) return
      released = true
      await rm(path, { force: true })
      this.#used -= size
      for (const wake of this.#waiters.splice(0)) wake()
    }
    try {
      const hash = createDigestHash('sha256')
      let written = 0
      async function* hashing(): AsyncGenerator<Buffer> {
        for await (const chunk of content) {
          hash.update(chunk)
          written += chunk.length
          yield chunk
        }
      }
      await pipeline(Readable.from(hashing()), createWriteStream(path))
      if (written !== size) throw new Error(`expected ${size} bytes, read ${written}`)
      return { digest: digestOfHash('sha256', hash), size, open: () => createReadStream(path), release }
    } catch (err) {
      await release()
      throw err
    }
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
