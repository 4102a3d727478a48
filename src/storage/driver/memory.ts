// In-memory StorageDriver for fast tests. It mirrors the filesystem driver as observed through
// the interface: directories exist only while they hold files (the filesystem driver prunes
// emptied ones), a file and a directory cannot share a path, and new files appear on commit.
import { posix } from 'node:path'
import { addAbortSignal, Readable, Writable } from 'node:stream'
import { assertCleanPath, PathNotFoundError } from './driver.js'
import type { FileInfo, FileWriter, ReadOptions, StorageDriver, WriteOptions } from './driver.js'
import { readRange } from './read-range.js'
import { endAndWait, swallowErrorEvents, WriterBase } from './writer-base.js'

const CHUNK_SIZE = 1024 * 1024
const TMP_DIR = '_tmp'

interface Entry {
  /** Appends push chunks; reads collapse them into one buffer (no quadratic concatenation). */
  chunks: Buffer[]
  size: number
  modTime: Date
}

export class MemoryDriver implements StorageDriver {
  readonly name = 'memory'
  readonly #files = new Map<string, Entry>()

  async stat(path: string): Promise<FileInfo | undefined> {
    assertCleanPath(path)
    const file = this.#files.get(path)
    if (file !== undefined) return { path, size: file.size, modTime: file.modTime, isDirectory: false }
    let latest: Date | undefined
    for (const [key, entry] of this.#files) {
      if (key.startsWith(`${path}/`) && (latest === undefined || entry.modTime > latest)) latest = entry.modTime
    }
    return latest === undefined ? undefined : { path, size: 0, modTime: latest, isDirectory: true }
  }

  async read(path: string, options?: ReadOptions): Promise<Readable> {
    assertCleanPath(path)
    const range = readRange(options)
    options?.signal?.throwIfAborted()
    const file = this.#files.get(path)
    if (file === undefined) throw new PathNotFoundError(path)
    const end = range.end === undefined ? undefined : range.end + 1
    // A copy, so a consumer mutating chunks cannot corrupt the stored file.
    const bytes = range.empty ? Buffer.alloc(0) : Buffer.from(contents(file).subarray(range.start, end))
    const stream = Readable.from(slices(bytes), { objectMode: false })
    if (options?.signal !== undefined) addAbortSignal(options.signal, stream)
    return stream
  }

  async writer(path: string, options: WriteOptions = {}): Promise<FileWriter> {
    assertCleanPath(path)
    options.signal?.throwIfAborted()
    if (options.append) {
      let entry = this.#files.get(path)
      if (entry === undefined) {
        this.#assertWritable(path)
        entry = { chunks: [], size: 0, modTime: new Date() }
        this.#files.set(path, entry)
      }
      const target = entry
      const append = (chunk: Buffer): void => {
        target.chunks.push(chunk)
        target.size += chunk.length
        target.modTime = new Date()
      }
      return new MemoryFileWriter(target.size, options.signal, append, () => {})
    }
    const chunks: Buffer[] = []
    return new MemoryFileWriter(
      0,
      options.signal,
      (chunk) => chunks.push(chunk),
      () => this.#install(path, chunks),
    )
  }

  async getContent(path: string): Promise<Buffer | undefined> {
    assertCleanPath(path)
    const file = this.#files.get(path)
    return file === undefined ? undefined : Buffer.from(contents(file))
  }

  async putContent(path: string, content: Uint8Array | string): Promise<void> {
    assertCleanPath(path)
    this.#install(path, [Buffer.from(content)])
  }

  async move(from: string, to: string): Promise<void> {
    assertCleanPath(from)
    assertCleanPath(to)
    if (from === to) {
      if ((await this.stat(from)) === undefined) throw new PathNotFoundError(from)
      return
    }
    const file = this.#files.get(from)
    if (file !== undefined) {
      this.#assertWritable(to)
      this.#files.delete(from)
      this.#files.set(to, file)
      return
    }
    const prefix = `${from}/`
    const moved = [...this.#files].filter(([key]) => key.startsWith(prefix))
    if (moved.length === 0) throw new PathNotFoundError(from)
    // As rename(2): a directory cannot replace a non-empty path nor move into itself.
    if (to.startsWith(prefix)) throw fsError('EINVAL', to)
    if (this.#files.has(to) || this.#isDirectory(to)) throw fsError('ENOTEMPTY', to)
    this.#assertWritable(to)
    for (const [key, entry] of moved) {
      this.#files.delete(key)
      this.#files.set(to + key.slice(from.length), entry)
    }
  }

  async delete(path: string): Promise<void> {
    assertCleanPath(path)
    for (const key of [...this.#files.keys()]) {
      if (key === path || key.startsWith(`${path}/`)) this.#files.delete(key)
    }
  }

  /** Also accepts '' for the root, like the filesystem driver. */
  async list(path: string): Promise<string[]> {
    if (path !== '') assertCleanPath(path)
    const prefix = path === '' ? '' : `${path}/`
    const names = new Set<string>()
    for (const key of this.#files.keys()) {
      if (!key.startsWith(prefix)) continue
      const rest = key.slice(prefix.length)
      const slash = rest.indexOf('/')
      names.add(slash === -1 ? rest : rest.slice(0, slash))
    }
    if (path === '') names.delete(TMP_DIR)
    return [...names].sort()
  }

  #install(path: string, chunks: Buffer[]): void {
    this.#assertWritable(path)
    const size = chunks.reduce((total, chunk) => total + chunk.length, 0)
    // A fresh entry: readers and append writers holding the old one keep seeing the old bytes.
    this.#files.set(path, { chunks: [...chunks], size, modTime: new Date() })
  }

  #isDirectory(path: string): boolean {
    for (const key of this.#files.keys()) if (key.startsWith(`${path}/`)) return true
    return false
  }

  /** The errors the filesystem would raise for a file over a directory or under a file. */
  #assertWritable(path: string): void {
    if (this.#isDirectory(path)) throw fsError('EISDIR', path)
    for (let dir = posix.dirname(path); dir !== '.'; dir = posix.dirname(dir)) {
      if (this.#files.has(dir)) throw fsError('ENOTDIR', path)
    }
  }
}

class MemoryFileWriter extends WriterBase implements FileWriter {
  readonly stream: Writable
  readonly #baseSize: number
  readonly #publish: () => void
  #written = 0

  constructor(baseSize: number, signal: AbortSignal | undefined, sink: (chunk: Buffer) => void, publish: () => void) {
    super()
    this.#baseSize = baseSize
    this.#publish = publish
    this.stream = new Writable({
      highWaterMark: CHUNK_SIZE,
      write: (chunk: Buffer, _encoding, callback) => {
        // Copied: producers may reuse their buffers once the write callback has run.
        sink(Buffer.from(chunk))
        this.#written += chunk.length
        callback()
      },
    })
    if (signal !== undefined) addAbortSignal(signal, this.stream)
    swallowErrorEvents(this.stream)
  }

  get size(): number {
    return this.#baseSize + this.#written
  }

  protected async finish(): Promise<void> {
    try {
      await endAndWait(this.stream)
      this.#publish()
    } catch (err) {
      await this.abandon()
      throw err
    }
  }

  protected async abandon(): Promise<void> {
    this.stream.destroy()
  }
}

function contents(file: Entry): Buffer {
  if (file.chunks.length !== 1) file.chunks = [Buffer.concat(file.chunks, file.size)]
  return file.chunks[0] ?? Buffer.alloc(0)
}

function* slices(bytes: Buffer): Generator<Buffer> {
  for (let offset = 0; offset < bytes.length; offset += CHUNK_SIZE) yield bytes.subarray(offset, offset + CHUNK_SIZE)
}

function fsError(code: string, path: string): Error {
  return Object.assign(new Error(`${code}: ${path}`), { code })
}
