// A local spool for mirror fills on a store that is slow to write (S3): the upstream's bytes are
// written to a local file as they arrive, clients of the fill are fed from it (and the memory
// blocks) at the upstream's pace, and the multipart upload reads it at the store's own pace. It
// is bounded: a fill reserves its blob's size up front and, past the limit, goes without one
// (paced by the upload as before). Files are removed when their fill settles and, at start-up,
// when the process that made them no longer runs.
import { mkdir, open, readdir, rm, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import type { PositionalSource } from './body-sources.js'

/** What one read of the spool for the upload takes at most. */
const readSize = 1024 * 1024

export class FillSpool {
  #reserved = 0
  #next = 0

  constructor(
    readonly dir: string,
    /** Bytes of spool files at most, all fills together. */
    readonly maxBytes: number,
  ) {}

  /** Bytes reserved by the spool files in use. */
  get reserved(): number {
    return this.#reserved
  }

  /** Creates the directory and removes the files of processes that no longer run (or of an earlier process with our pid). */
  async prepare(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 })
    for (const name of await readdir(this.dir)) {
      const pid = Number(/^(\d+)\.\d+\.spool$/.exec(name)?.[1])
      if (!Number.isSafeInteger(pid) || (pid !== process.pid && running(pid))) continue
      await rm(join(this.dir, name), { force: true })
    }
  }

  /** A spool file for a blob of `size` bytes, or undefined when the spool has no room for it (or cannot be written). */
  async create(size: number): Promise<SpoolFile | undefined> {
    if (this.maxBytes <= 0 || this.#reserved + size > this.maxBytes) return undefined
    this.#reserved += size
    const path = join(this.dir, `${process.pid}.${++this.#next}.spool`)
    const release = (): void => {
      this.#reserved -= size
    }
    try {
      return new SpoolFile(path, await open(path, 'w+', 0o600), size, release)
    } catch {
      release()
      return undefined
    }
  }
}

function running(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    // EPERM: it runs, as another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** One fill's spool: written in order from byte 0, read at any position by followers and the upload. */
export class SpoolFile {
  /** Bytes written (and readable) so far. */
  written = 0
  #failure: unknown
  #closed = false
  #waiters: Array<() => void> = []

  constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    readonly size: number,
    private readonly release: () => void,
  ) {}

  async write(chunk: Buffer): Promise<void> {
    if (this.written + chunk.length > this.size) throw new Error('spool: more bytes than the blob size')
    for (let at = 0; at < chunk.length;) {
      const { bytesWritten } = await this.handle.write(chunk, at, chunk.length - at, this.written + at)
      at += bytesWritten
    }
    this.written += chunk.length
    this.#wake()
  }

  /** No more bytes will come: readers waiting for them fail with `err`. */
  fail(err: unknown): void {
    this.#failure ??= err
    this.#wake()
  }

  /** The spool's bytes from 0 to its size, as they are written (what the upload to the store reads). */
  reader(): Readable {
    return Readable.from(this.#chunks(), { objectMode: false })
  }

  /** A handle of its own for one follower (its descriptor stays valid after close() removed the file), or undefined once removed. */
  async openReader(): Promise<(PositionalSource & { fd: number; destroy(): void }) | undefined> {
    let handle: FileHandle
    try {
      handle = await open(this.path, 'r')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw err
    }
    return {
      fd: handle.fd,
      readAt: async (target, position) => (await handle.read(target, 0, target.length, position)).bytesRead,
      destroy: () => void handle.close().catch(() => {}),
    }
  }

  /** Removes the file and gives its room back; followers with a handle keep reading it. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.fail(new Error('spool closed'))
    this.release()
    await this.handle.close().catch(() => {})
    await rm(this.path, { force: true })
  }

  async *#chunks(): AsyncGenerator<Buffer> {
    for (let position = 0; position < this.size;) {
      if (position >= this.written) {
        if (this.#failure !== undefined) throw this.#failure
        await new Promise<void>((resolve) => this.#waiters.push(resolve))
        continue
      }
      const buffer = Buffer.allocUnsafe(Math.min(readSize, this.written - position))
      const { bytesRead } = await this.handle.read(buffer, 0, buffer.length, position)
      if (bytesRead === 0) throw new Error('spool: file shorter than written')
      position += bytesRead
      yield bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead)
    }
  }

  #wake(): void {
    const waiters = this.#waiters
    this.#waiters = []
    for (const wake of waiters) wake()
  }
}
