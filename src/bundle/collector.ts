// Reads a bundle in one pass: a file (compressed or not, by its bytes) or a folder, nested
// archives included, filing what it finds into BundleContent: which file is a blob, an index, a
// docker save's manifest or config, a layer, or a nested archive. Where a blob's bytes go (the
// staging repository at once, the spool, memory) is blob-filer.ts's; small JSON documents are
// kept in memory until the archive has ended and the manifests can be matched up.
import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { posix } from 'node:path'
import { Readable } from 'node:stream'
import { maxManifestBytes } from '../core/manifest.js'
import { BlobFiler, collect, type BlobFilerOptions } from './blob-filer.js'
import type { ArchiveFiles, BundleContent, Scope } from './content.js'
import { decompress, decompressFile } from './decompress.js'
import { folderEntries, normalisePath, tarEntries, type Entry } from './entries.js'
import { peek } from './head-stream.js'
import { isCompression, sniff, sniffLength } from './magic.js'
import { readSplitPackage, splitPackageOf } from './split-parts.js'
import { fileKind, tarFileEntries } from './tar-file.js'

/** A bundle that arrives as a stream (an HTTP request body, an object store read), named `label` in messages. */
export interface StreamSource {
  stream: Readable
  label: string
}

export interface CollectorOptions extends BlobFilerOptions {
  /** Bytes of the source file read so far (compressed), for progress. */
  onRead?: (bytes: number) => void
  signal?: AbortSignal
}

/** Nested archives deeper than this are not opened (a zip bomb of tars must end somewhere). */
const maxDepth = 8
const blobPath = /^(?:(.*)\/)?blobs\/(sha256|sha512)\/([0-9a-f]+)$/
// How docker save (`<id>/layer.tar`), skopeo/podman (`<hex>.tar`) and go-containerregistry
// (`<hex>.tar.gz`) name layer files. Inside an archive its paths are the format: a file named
// like a layer is a layer, any other file whose bytes are an archive is a nested bundle.
const layerPath = /(^|\/)([0-9a-f]{64}\/layer\.tar|[0-9a-f]{64}\.tar(\.gz)?)$/

export class Collector {
  readonly content: BundleContent = {
    blobs: new Map(),
    documents: new Map(),
    scopes: [],
    compressedLayers: new Map(),
    broken: [],
  }
  readonly #options: CollectorOptions
  readonly #scopes = new Map<string, Scope>()
  readonly #blobs: BlobFiler
  /** The data parts of split packages found in a folder: read through their first part, not one by one. */
  readonly #splitParts = new Set<string>()

  constructor(options: CollectorOptions) {
    this.#options = options
    this.#blobs = new BlobFiler(this.content, options)
  }

  /** Waits until every upload started while reading has ended, one way or the other. */
  settled(): Promise<void> {
    return this.#blobs.settled()
  }

  /** Reads `source` (a bundle file or folder, or a stream) to the end. Throws only when the source cannot be read at all. */
  async read(source: string | StreamSource): Promise<void> {
    if (typeof source !== 'string') return this.#readSource(source.stream, source.label)
    const path = source
    const stats = await stat(path)
    if (stats.isDirectory()) {
      await this.#readEntries(folderEntries(path), this.#archive(path), 0)
      return
    }
    const { onRead, signal } = this.#options
    const split = await splitPackageOf(path)
    if (split?.problem !== undefined) throw new Error(split.problem)
    if (split !== undefined) {
      await this.#readSource(readSplitPackage(split, { ...(onRead ? { onRead } : {}), ...(signal ? { signal } : {}) }), split.first)
      return
    }
    // A pipe or device cannot be read by position, nor its head twice.
    const kind = stats.isFile() ? await fileKind(path) : undefined
    if (this.#options.stage !== undefined && kind === 'tar') {
      // Read by position: blobs are uploaded straight from the file, never copied to the spool.
      await this.#readEntries(this.#counted(tarFileEntries(path)), this.#archive(path), 0)
      return
    }
    if (isCompression(kind) && kind !== 'gzip') {
      // The decompressor reads the file itself.
      const stream = decompressFile(kind, path, path, onRead)
      const stop = (): void => void stream.destroy(signal?.reason as Error)
      signal?.addEventListener('abort', stop, { once: true })
      try {
        await this.#readSource(stream, path)
        onRead?.(stats.size)
      } finally {
        signal?.removeEventListener('abort', stop)
      }
      return
    }
    async function* counted(): AsyncGenerator<Buffer> {
      let read = 0
      for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) {
        // Checked per chunk: one blob of a bundle may take minutes to pass.
        signal?.throwIfAborted()
        read += (chunk as Buffer).length
        onRead?.(read)
        yield chunk as Buffer
      }
    }
    await this.#readSource(Readable.from(counted()), path)
  }

  /** Entries of a tar file read by position, the position reported as the bytes read. */
  async *#counted(entries: AsyncIterable<Entry>): AsyncGenerator<Entry> {
    for await (const entry of entries) {
      if (entry.range !== undefined) this.#options.onRead?.(entry.range.end)
      yield entry
    }
  }

  async #readSource(stream: Readable, label: string): Promise<void> {
    try {
      await this.#readStream(stream, label, 0)
    } catch (err) {
      const message = (err as Error).message
      throw message.includes(label) ? err : new Error(`${label}: ${message}`, { cause: err })
    }
  }

  #archive(label: string): ArchiveFiles {
    return { label, paths: new Map(), links: new Map() }
  }

  #scope(archive: ArchiveFiles, prefix: string): Scope {
    const key = `${archive.label}\n${prefix}`
    let scope = this.#scopes.get(key)
    if (scope === undefined) {
      scope = { archive, prefix }
      this.#scopes.set(key, scope)
      this.content.scopes.push(scope)
    }
    return scope
  }

  async #readStream(stream: Readable, label: string, depth: number): Promise<void> {
    const { head, stream: whole } = await peek(stream, sniffLength)
    const kind = sniff(head)
    if (isCompression(kind)) return this.#readStream(decompress(kind, whole, label), label, depth)
    if (kind !== 'tar') {
      whole.destroy()
      throw new Error(`${label}: not a bundle (neither a tar archive nor gzip, zstd, xz or bzip2 data)`)
    }
    await this.#readEntries(tarEntries(whole), this.#archive(label), depth)
  }

  async #readEntries(entries: AsyncIterable<Entry>, archive: ArchiveFiles, depth: number): Promise<void> {
    for await (const entry of entries) {
      this.#options.signal?.throwIfAborted()
      if (entry.kind === 'symlink' && entry.linkname !== undefined) {
        const target = entry.linkname.startsWith('/')
          ? normalisePath(entry.linkname)
          : normalisePath(posix.join(posix.dirname(entry.path), entry.linkname))
        archive.links.set(entry.path, target)
        continue
      }
      if (entry.kind !== 'file' || (entry.file !== undefined && this.#splitParts.has(entry.file))) continue
      await this.#readFile(entry, archive, depth)
    }
  }

  async #readFile(entry: Entry, archive: ArchiveFiles, depth: number): Promise<void> {
    const origin = entry.file !== undefined && entry.range === undefined ? entry.file : `${archive.label}!/${entry.path}`
    const base = posix.basename(entry.path)
    const prefix = posix.dirname(entry.path) === '.' ? '' : posix.dirname(entry.path)
    const blob = blobPath.exec(entry.path)
    if (blob !== null) {
      this.#scope(archive, blob[1] ?? '').hasBlobs = true
      await this.#blobs.file(entry, origin, `${blob[2]}:${blob[3]}`)
      return
    }
    if (entry.file !== undefined && entry.size <= 4096 && (await this.#readSplit(entry.file, origin, depth))) return
    if (base === 'index.json' || base === 'manifest.json' || base === 'hauler-index.json') {
      const bytes = await readSmall(entry, origin)
      const scope = this.#scope(archive, prefix)
      if (base === 'index.json') scope.indexJson = bytes
      else if (base === 'hauler-index.json') scope.haulerIndexJson = bytes
      else scope.dockerManifest = bytes
      return
    }
    if (layerPath.test(entry.path)) {
      const digest = await this.#blobs.file(entry, origin, undefined)
      if (digest !== undefined) archive.paths.set(entry.path, digest)
      return
    }
    const { head, stream } = await peek(entry.read(), sniffLength)
    const kind = sniff(head)
    if (kind !== undefined) {
      if (depth >= maxDepth) throw new Error(`${origin}: archives nested more than ${maxDepth} deep`)
      try {
        await this.#readStream(stream, origin, depth + 1)
      } catch (err) {
        // The parent archive goes on: only what this one holds is lost.
        this.content.broken.push({ label: origin, error: (err as Error).message })
      }
      return
    }
    // docker save's image configs (`<hex>.json`), found by path from manifest.json.
    if (entry.size <= maxManifestBytes && head.subarray(0, 1).toString() === '{') {
      archive.paths.set(entry.path, this.#blobs.document(await collect(stream), origin))
      return
    }
    stream.destroy()
  }

  /** A folder's split package (split-parts.ts), read whole through its first part; false when `file` is none. */
  async #readSplit(file: string, origin: string, depth: number): Promise<boolean> {
    const split = await splitPackageOf(file)
    if (split === undefined || split.first !== file) return false
    for (const part of split.parts) this.#splitParts.add(part)
    if (split.problem !== undefined) {
      this.content.broken.push({ label: origin, error: split.problem })
      return true
    }
    try {
      await this.#readStream(readSplitPackage(split, this.#options.signal ? { signal: this.#options.signal } : {}), origin, depth + 1)
    } catch (err) {
      this.content.broken.push({ label: origin, error: (err as Error).message })
    }
    return true
  }
}

async function readSmall(entry: Entry, origin: string): Promise<Buffer> {
  if (entry.size > maxManifestBytes) throw new Error(`${origin}: ${entry.size} bytes is too large for a bundle's ${posix.basename(origin)}`)
  return collect(entry.read())
}
